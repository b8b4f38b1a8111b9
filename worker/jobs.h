/*
 * jobs: the conversation lifecycle jobs (follow-ups after the customer's silence,
 * auto-resolve, the satisfaction survey after a resolve), run by every worker on a timer.
 * Each tick asks PostgreSQL for the due jobs (atende_lifecycle_due, schema/011_lifecycle.sql:
 * rows locked FOR UPDATE SKIP LOCKED and each job recorded once per conversation, kind and
 * cycle, so concurrent workers on any machine get disjoint sets) and publishes each job's
 * request to atende.outbound, where the outbound path sends or applies it exactly once
 * (worker/outbound.c); a job is marked published once the broker has it, and one whose
 * worker died first is handed out again after its lease, under the same request_id.
 */
#ifndef ATENDE_JOBS_H
#define ATENDE_JOBS_H

#include "config.h"
#include "db.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct job_runner job_runner_t;

/* The broker acknowledged (ok) or gave up on (!ok) one published request. */
typedef void (*job_acked_fn)(void *ctx, bool ok);

/* Publishes one request (json, borrowed) to atende.outbound, keyed by its conversation;
 * calls acked(ctx, ok) exactly once, possibly before returning. */
typedef void (*job_publish_fn)(long company, int64_t conversation, const char *type, const char *json,
			       job_acked_fn acked, void *ctx, void *arg);

/* A runner on base using db for its queries; cfg is read at every tick (the lifecycle.*
 * keys reload). Starts ticking at once. */
job_runner_t *job_new(struct event_base *base, db_t *db, const cfg_t *cfg, job_publish_fn publish, void *arg);

/* Applies a reloaded lifecycle.tick_ms. */
void job_reconfigure(job_runner_t *j);

/* Stops taking jobs (a drain): what was taken and not yet published is handed out again
 * after its lease. */
void job_stop(job_runner_t *j);

/* Whether a tick's query or publications are under way. */
bool job_busy(const job_runner_t *j);

/* Frees; a query still pending on db is answered harmlessly later. */
void job_free(job_runner_t *j);

#endif
