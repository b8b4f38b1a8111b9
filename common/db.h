/*
 * db: one asynchronous PostgreSQL connection driven by libevent. Queries are sent in
 * libpq pipeline mode (each followed by a sync, so each is its own transaction) and
 * answered in order through callbacks; the connection reconnects with backoff and
 * queries queued while it is down are sent once it is back.
 */
#ifndef ATENDE_DB_H
#define ATENDE_DB_H

#include <event2/event.h>
#include <libpq-fe.h>
#include <stdbool.h>

typedef struct db db_t;

/* res is NULL when the connection failed before the answer came (the query may or may
 * not have run: callers must be idempotent); otherwise it is owned by db and freed
 * after the callback returns. */
typedef void (*db_result_fn)(PGresult *res, void *arg);

/* Starts connecting (non-blocking). name is used in logs. */
db_t *db_new(struct event_base *base, const char *conninfo, const char *name);

/* Queues a parameterised query (text params; NULL param = SQL NULL). Params are copied.
 * Returns false only when the queue is over its bound (caller should back off). */
bool db_query(db_t *db, const char *sql, int nparams, const char *const *params, db_result_fn cb, void *arg)
	__attribute__((warn_unused_result));

bool db_connected(const db_t *db);
int db_pending(const db_t *db); /* queued + in flight */
double db_last_rtt_ms(const db_t *db);

/* Frees; pending callbacks are called with NULL. */
void db_free(db_t *db);

/* True when PQresultStatus is COMMAND_OK or TUPLES_OK; otherwise logs with context. */
bool db_ok(const PGresult *res, const char *what);

#endif
