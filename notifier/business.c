/*
 * business: per-company business gauges from atende_business (see business.h).
 */
#include "business.h"

#include "api.h"
#include "log.h"
#include "metrics.h"
#include "notifier.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>

/* One gauge per column of atende_business that is exported, with the column's index. */
typedef struct {
	int column;
	const char *name, *help;
	const char *label; /* an extra label for this column ("quantile=\"0.5\""), or NULL */
} business_gauge_t;

static const business_gauge_t business_gauges[] = {
	{1, "atende_business_conversations", "Conversations created in the last hour.", NULL},
	{3, "atende_business_first_response_seconds", "Time from a conversation's first customer message to the first message from our side (agent or bot), conversations of the last hour.", "quantile=\"0.5\""},
	{4, "atende_business_first_response_seconds", NULL, "quantile=\"0.95\""},
	{5, "atende_business_unanswered", "Conversations of the last hour nobody on our side has answered yet.", NULL},
	{6, "atende_business_unanswered_oldest_seconds", "How long the oldest unanswered conversation of the last hour has waited (0: none).", NULL},
	{7, "atende_business_resolved", "Resolves in the last hour.", NULL},
	{8, "atende_business_resolution_seconds", "Time from a conversation's creation to its resolve, resolves of the last hour.", "quantile=\"0.5\""},
	{9, "atende_business_resolution_seconds", NULL, "quantile=\"0.95\""},
	{11, "atende_business_automation_ratio", "Share of the last hour's resolves that no agent ever took (the bot alone).", NULL},
	{14, "atende_business_transfer_ratio", "Conversations transferred by an agent or supervisor over conversations with a message, last hour.", NULL},
	{16, "atende_business_survey_score", "Average survey answer of the last hour, by kind (nps 0-10, csat 1-5).", "kind=\"nps\""},
	{18, "atende_business_survey_score", NULL, "kind=\"csat\""},
	{15, "atende_business_survey_answers", "Survey answers in the last hour, by kind.", "kind=\"nps\""},
	{17, "atende_business_survey_answers", NULL, "kind=\"csat\""},
	{21, "atende_business_delivery_failure_ratio", "Our messages of the last hour the gateway reported failed, over those it reported any status for.", NULL},
};
#define BUSINESS_N (sizeof(business_gauges) / sizeof(business_gauges[0]))

static struct {
	tick_t *tick;
	bool in_flight;
	metrics_family_t *families[BUSINESS_N];
	metrics_series_t *readings_ok, *readings_failed;
} B;

static void business_tick_cb(evutil_socket_t fd, short what, void *arg);
static void business_read(PGresult *res, void *arg);

void business_start(void)
{
	for (size_t i = 0; i < BUSINESS_N; i++) {
		const business_gauge_t *g = &business_gauges[i];
		/* a family shared by two columns is made once, by the entry with its help text */
		B.families[i] = g->help ? metrics_family(g->name, METRICS_GAUGE, g->help, NULL, 0) : B.families[i - 1];
	}
	metrics_family_t *runs = metrics_family("atende_notifier_business_readings_total", METRICS_COUNTER,
						"Readings of the business gauges by result.", NULL, 0);
	B.readings_ok = metrics_series(runs, "result=\"ok\"");
	B.readings_failed = metrics_series(runs, "result=\"failed\"");
	if (N.cfg.metrics.business_interval_s <= 0)
		return;
	B.tick = tick_new(N.base, N.cfg.metrics.business_interval_s * 1000, business_tick_cb, NULL);
	business_tick_cb(-1, 0, NULL);
}

void business_stop(void)
{
	tick_free(B.tick);
	B.tick = NULL;
}

static void business_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	db_t *db = api_db_pick();
	if (B.in_flight || !db)
		return; /* the last reading stays; the next tick tries again */
	B.in_flight = true;
	if (!db_query(db, "SELECT * FROM atende_business(now() - interval '" BUSINESS_WINDOW "')", 0, NULL,
		      business_read, NULL))
		B.in_flight = false;
}

/* A NULL figure (nothing to measure: no resolve, no survey) is exported as 0 for the counts
 * and left out for the ratios and times, so a dashboard shows a gap rather than a false 0. */
static void business_read(PGresult *res, void *arg)
{
	char labels[96];
	(void)arg;
	B.in_flight = false;
	if (!db_ok(res, "business gauges")) {
		metrics_add(B.readings_failed, 1);
		return;
	}
	for (int row = 0; row < PQntuples(res); row++) {
		const char *company = PQgetvalue(res, row, 0);
		for (size_t i = 0; i < BUSINESS_N; i++) {
			const business_gauge_t *g = &business_gauges[i];
			if (PQgetisnull(res, row, g->column))
				continue;
			snprintf(labels, sizeof(labels), "company=\"%s\"%s%s", company, g->label ? "," : "",
				 g->label ? g->label : "");
			metrics_gauge_set(B.families[i], labels, atof(PQgetvalue(res, row, g->column)));
		}
	}
	metrics_add(B.readings_ok, 1);
}
