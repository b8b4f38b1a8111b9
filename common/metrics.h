/*
 * metrics: the counters, gauges and histograms of one process, rendered in Prometheus
 * text format. Every process also writes its rendering to a file under
 * <data_dir>/run/metrics every second; the supervisor merges those files into one
 * /metrics target with process and index labels (the textfile-collector pattern), so
 * processes without an HTTP port (workers) are scraped too.
 */
#ifndef ATENDE_METRICS_H
#define ATENDE_METRICS_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct metrics_family metrics_family_t;
typedef struct metrics_series metrics_series_t;

typedef enum { METRICS_COUNTER, METRICS_GAUGE, METRICS_HISTOGRAM } metrics_type_t;

/* Latency buckets in seconds, from 1 ms to 30 s. */
extern const double metrics_latency_buckets[];
extern const int metrics_latency_nbuckets;
/* Size buckets (batch sizes, message counts). */
extern const double metrics_size_buckets[];
extern const int metrics_size_nbuckets;

/* Declares a family (idempotent: the same name returns the same family). Names follow
 * Prometheus conventions: atende_<process>_<what>_total / _seconds / _bytes. For a
 * histogram, buckets are upper bounds in increasing order (copied). */
metrics_family_t *metrics_family(const char *name, metrics_type_t type, const char *help, const double *buckets,
				 int nbuckets);

/* The series of a family for a label set written as Prometheus labels without braces
 * ("route=\"/healthz\",status=\"200\""; "" for none). Created on first use; cache the
 * pointer on hot paths. */
metrics_series_t *metrics_series(metrics_family_t *f, const char *labels);

void metrics_add(metrics_series_t *s, double v);      /* counters and gauges */
void metrics_set(metrics_series_t *s, double v);      /* gauges */
void metrics_observe(metrics_series_t *s, double v);  /* histograms */

/* Shorthands for a family's label set, looked up each call (fine off the hot path). */
void metrics_inc(metrics_family_t *f, const char *labels);
void metrics_gauge_set(metrics_family_t *f, const char *labels, double v);

/* Renders every family; returns a malloc'd NUL-terminated text and its length. */
char *metrics_render(size_t *len);

/* Starts writing the rendering to path every interval_ms (write to a temporary file,
 * then rename, so the supervisor never reads half a file). before_export, if not NULL,
 * runs first so gauges can be refreshed. */
void metrics_export_start(struct event_base *base, const char *path, int interval_ms, void (*before_export)(void));

/* Merges the exported files in dir (named <process>-<index>.prom) into Prometheus text,
 * adding process and index labels to every sample and grouping samples by family.
 * extra (may be NULL) is appended as-is (the supervisor's own metrics). Files older
 * than stale_s are skipped. Returns malloc'd text. */
char *metrics_merge_dir(const char *dir, int stale_s, const char *extra, size_t *len);

#endif
