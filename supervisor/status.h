/*
 * status: `atende status`. Asks the running supervisor for its processes (/healthz on
 * metrics.listen), scrapes its merged /metrics twice to turn counters into rates, sums the
 * workers' consumer lag, reads the pending dead letters from PostgreSQL and sets gauges
 * beside their configured limits. Blocking: a CLI verb.
 */
#ifndef ATENDE_STATUS_H
#define ATENDE_STATUS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* One sample of Prometheus text: name{labels} value. */
typedef struct {
	char name[128];
	char labels[512];  /* without braces; "" when none */
	double value;
} status_sample_t;

typedef struct {
	status_sample_t *v;
	int n, cap;
} status_samples_t;

/* Prints the status (a table, or JSON with the /healthz fields plus rates, lag, dlq_pending
 * and limits). interval_s: time between the two scrapes. Returns 0 when the supervisor
 * reports every process up, 1 otherwise (or when it cannot be reached). */
int status_run(const cfg_t *cfg, bool json, double interval_s);

/* Parses Prometheus text exposition into out (appending; free with status_samples_free).
 * Comments and malformed lines are skipped. */
void status_parse_metrics(const char *text, status_samples_t *out);
void status_samples_free(status_samples_t *s);

/* The value of label key in a label string (a="x",b="y"); false when absent. */
bool status_label(const char *labels, const char *key, char *buf, size_t len);

#endif
