/*
 * jobs: the lifecycle jobs' runner (see jobs.h). One tick at a time: ask for the due jobs,
 * publish their requests, mark the acknowledged ones published, and only then tick again
 * (at once when the batch was full). Nothing here decides what is due or whether a job
 * still applies: PostgreSQL does, in the same transaction that hands the job out.
 */
#include "jobs.h"
#include "log.h"
#include "metrics.h"
#include "tick.h"
#include "xalloc.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define JOB_LEASE_MS 30000 /* a job taken and not published within this is handed out again */
#define JOB_IDLE_EVERY 5   /* after a due query that found nothing, the next one this many ticks later */

struct job_runner {
	struct event_base *base;
	db_t *db;
	const cfg_t *cfg;
	job_publish_fn publish;
	void *arg;
	tick_t *tick;
	int tick_ms;             /* the period tick was armed with */
	char owner[96];          /* conversation_jobs.owner: host:pid */
	bool querying;           /* the due query is in flight */
	bool marking;            /* the published mark is in flight */
	bool publishing;         /* inside the publish loop (acks may come synchronously) */
	bool full;               /* the last batch was full: tick again at once */
	bool stopped;
	bool orphan;             /* job_free ran while answers were pending: free at ext 0 */
	int unacked;             /* publications the broker has not reported yet */
	int ext;                 /* database answers and acknowledgements pending */
	char *done;              /* "{id,id,...}": jobs the broker has, to mark published */
	size_t done_len, done_cap;
	bool logged_error;       /* the last due query failed and said so (logged once until it works) */
	int idle_skips;          /* ticks left to skip: the last due query found nothing */
	metrics_family_t *m_jobs;
	metrics_series_t *m_publish_failures;
};

typedef struct {
	job_runner_t *j;
	long long id;
} job_pub_t;

static void job_tick_cb(evutil_socket_t fd, short what, void *arg);
static void job_due(PGresult *res, void *arg);
static void job_acked(void *ctx, bool ok);
static void job_mark(job_runner_t *j);
static void job_marked(PGresult *res, void *arg);
static void job_finish(job_runner_t *j);
static void job_arm(job_runner_t *j);
static bool job_orphan_release(job_runner_t *j);
static char *job_settings(const cfg_t *cfg);

job_runner_t *job_new(struct event_base *base, db_t *db, const cfg_t *cfg, job_publish_fn publish, void *arg)
{
	char host[64] = "host";
	job_runner_t *j = xcalloc(1, sizeof(*j));
	j->base = base;
	j->db = db;
	j->cfg = cfg;
	j->publish = publish;
	j->arg = arg;
	gethostname(host, sizeof(host) - 1);
	snprintf(j->owner, sizeof(j->owner), "%.60s:%d", host, (int)getpid());
	j->m_jobs = metrics_family("atende_worker_lifecycle_jobs_total", METRICS_COUNTER,
				   "Lifecycle jobs this worker took and published, by kind (followup1, followup2, "
				   "auto_resolve, survey) and how (run: due now; retaken: left unpublished by a worker "
				   "that stopped).",
				   NULL, 0);
	j->m_publish_failures = metrics_series(
		metrics_family("atende_worker_lifecycle_publish_failures_total", METRICS_COUNTER,
			       "Lifecycle requests the broker did not take (handed out again after their lease).", NULL, 0),
		"");
	j->tick_ms = cfg->lifecycle.tick_ms;
	j->tick = tick_new(base, j->tick_ms, job_tick_cb, j);
	return j;
}

void job_reconfigure(job_runner_t *j)
{
	if (j && !j->stopped && j->tick_ms != j->cfg->lifecycle.tick_ms)
		job_arm(j);
}

void job_stop(job_runner_t *j)
{
	if (!j)
		return;
	j->stopped = true;
	tick_free(j->tick);
	j->tick = NULL;
}

bool job_busy(const job_runner_t *j)
{
	return j && (j->querying || j->marking || j->unacked > 0);
}

void job_free(job_runner_t *j)
{
	if (!j)
		return;
	tick_free(j->tick);
	j->tick = NULL;
	j->stopped = true;
	if (j->ext > 0) {
		j->orphan = true;
		return;
	}
	free(j->done);
	free(j);
}

static void job_arm(job_runner_t *j)
{
	j->tick_ms = j->cfg->lifecycle.tick_ms;
	tick_set_period(j->tick, j->tick_ms);
}

static void job_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	job_runner_t *j = arg;
	(void)fd, (void)what;
	if (j->stopped || !j->cfg->lifecycle.enabled || job_busy(j))
		return;
	if (j->idle_skips > 0) {
		j->idle_skips--;
		return;
	}
	char lease[16], limit[16];
	char *settings = job_settings(j->cfg);
	snprintf(lease, sizeof(lease), "%d", JOB_LEASE_MS);
	snprintf(limit, sizeof(limit), "%d", j->cfg->lifecycle.batch);
	const char *params[4] = {settings, j->owner, lease, limit};
	j->full = false;
	if (db_query(j->db,
		     "SELECT job_id, job_kind, job_company, job_conversation, job_request, job_fresh "
		     "FROM atende_lifecycle_due($1::jsonb, $2, $3, $4)",
		     4, params, job_due, j)) {
		j->querying = true;
		j->ext++;
	}
	free(settings);
}

/* The configuration atende_lifecycle_due reads (its comment has the shape). */
static char *job_settings(const cfg_t *cfg)
{
	const typeof(cfg->lifecycle) *l = &cfg->lifecycle;
	cJSON *p = cJSON_CreateObject();
	cJSON *after = cJSON_AddArrayToObject(p, "followup_after_s"), *texts = cJSON_AddArrayToObject(p, "followup_texts");
	cJSON_AddItemToArray(after, cJSON_CreateNumber(l->followup1_after_s));
	cJSON_AddItemToArray(after, cJSON_CreateNumber(l->followup2_after_s));
	cJSON_AddItemToArray(texts, cJSON_CreateString(l->followup1_text));
	cJSON_AddItemToArray(texts, cJSON_CreateString(l->followup2_text));
	cJSON_AddNumberToObject(p, "auto_resolve_after_s", l->auto_resolve_after_s);
	cJSON_AddStringToObject(p, "survey", l->survey);
	cJSON *st = cJSON_AddObjectToObject(p, "survey_texts");
	cJSON_AddStringToObject(st, "nps", l->survey_nps_text);
	cJSON_AddStringToObject(st, "csat", l->survey_csat_text);
	cJSON_AddNumberToObject(p, "survey_window_s", l->survey_window_s);
	char *s = cJSON_PrintUnformatted(p);
	cJSON_Delete(p);
	return s;
}

/* Columns: job_id, job_kind, job_company, job_conversation, job_request, job_fresh. */
static void job_due(PGresult *res, void *arg)
{
	job_runner_t *j = arg;
	j->ext--;
	j->querying = false;
	if (job_orphan_release(j))
		return;
	if (!res)
		return; /* connection lost: what it took (if anything) is handed out again after the lease */
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		if (!j->logged_error) {
			const char *e = PQresultErrorMessage(res);
			log_error("lifecycle jobs: atende_lifecycle_due failed (logged once until it works): %.*s",
				  (int)strcspn(e, "\n"), e);
		}
		j->logged_error = true;
		return;
	}
	j->logged_error = false;
	int n = PQntuples(res);
	/* nothing due: an idle system asks every JOB_IDLE_EVERY ticks (a new silence falls due
	 * only lifecycle's first *_after_s later; a resolve's survey waits a few ticks at most) */
	j->idle_skips = n == 0 ? JOB_IDLE_EVERY - 1 : 0;
	j->full = n >= j->cfg->lifecycle.batch;
	j->publishing = true;
	for (int i = 0; i < n; i++) {
		const char *kind = PQgetvalue(res, i, 1);
		long long conv = atoll(PQgetvalue(res, i, 3));
		bool fresh = PQgetvalue(res, i, 5)[0] == 't';
		char labels[96];
		snprintf(labels, sizeof(labels), "kind=\"%s\",result=\"%s\"", kind, fresh ? "run" : "retaken");
		metrics_inc(j->m_jobs, labels);
		log_debug("lifecycle job %s of conversation %lld%s", kind, conv, fresh ? "" : " (taken over)");
		job_pub_t *p = xmalloc(sizeof(*p));
		p->j = j;
		p->id = atoll(PQgetvalue(res, i, 0));
		j->unacked++;
		j->ext++;
		j->publish(atol(PQgetvalue(res, i, 2)), conv, strcmp(kind, "auto_resolve") == 0 ? "resolve" : "reply",
			   PQgetvalue(res, i, 4), job_acked, p, j->arg);
	}
	j->publishing = false;
	if (j->unacked == 0)
		job_mark(j);
}

static void job_acked(void *ctx, bool ok)
{
	job_pub_t *p = ctx;
	job_runner_t *j = p->j;
	long long id = p->id;
	free(p);
	j->ext--;
	if (job_orphan_release(j))
		return;
	j->unacked--;
	if (ok) {
		char num[24];
		int len = snprintf(num, sizeof(num), "%s%lld", j->done_len ? "," : "", id);
		if (j->done_len + (size_t)len + 3 > j->done_cap) {
			j->done_cap = (j->done_cap + (size_t)len + 3) * 2;
			j->done = xrealloc(j->done, j->done_cap);
		}
		memcpy(j->done + j->done_len, num, (size_t)len + 1);
		j->done_len += (size_t)len;
	} else {
		metrics_add(j->m_publish_failures, 1);
		log_warn("lifecycle job %lld: the broker did not take its request; handed out again after %d ms", id,
			 JOB_LEASE_MS);
	}
	if (j->unacked == 0 && !j->publishing)
		job_mark(j);
}

/* Marks what the broker has as published (a lost mark only makes a job run again under
 * the same request_id, which the outbound claim answers as done). */
static void job_mark(job_runner_t *j)
{
	if (!j->done_len) {
		job_finish(j);
		return;
	}
	char *ids = xmalloc(j->done_len + 3);
	snprintf(ids, j->done_len + 3, "{%s}", j->done);
	j->done_len = 0;
	const char *params[1] = {ids};
	if (db_query(j->db,
		     "UPDATE conversation_jobs SET published_at = now() WHERE id = ANY($1::bigint[]) AND published_at IS NULL",
		     1, params, job_marked, j)) {
		j->marking = true;
		j->ext++;
	} else {
		job_finish(j);
	}
	free(ids);
}

static void job_marked(PGresult *res, void *arg)
{
	job_runner_t *j = arg;
	j->ext--;
	j->marking = false;
	if (job_orphan_release(j))
		return;
	if (res)
		(void)db_ok(res, "lifecycle jobs: marking published");
	job_finish(j);
}

static void job_finish(job_runner_t *j)
{
	if (j->full && !j->stopped)
		tick_now(j->tick); /* more are due: the next batch now */
}

/* After job_free: frees once the last pending answer came; true when j is no longer usable. */
static bool job_orphan_release(job_runner_t *j)
{
	if (!j->orphan)
		return false;
	if (j->ext == 0) {
		free(j->done);
		free(j);
	}
	return true;
}
