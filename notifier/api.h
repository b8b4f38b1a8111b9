/*
 * api: the conversation API on the notifier's HTTP side, for consoles that load what they did
 * not see live (after a login, a reload, a reset, or scrolling up): the conversation list with
 * filters, search and unread counts, a conversation's history with each message's hint and
 * delivery status, and read markers. Every request is one query on one of the notifier's own
 * pipelined PostgreSQL connections (common/db.h), answered from its callback: nothing blocks
 * the loop, and each query reads at most a page's worth of index entries (schema/007).
 */
#ifndef ATENDE_API_H
#define ATENDE_API_H

#include "db.h"
#include "http.h"
#include "mstore.h"
#include "token.h"

#include <stdbool.h>
#include <stddef.h>

#define API_LIMIT_DEFAULT 30
#define API_LIMIT_MAX 100
#define API_CURSOR_MAX 96 /* an encoded cursor's length, NUL included, at most */

/* Opens notifier.db_connections connections to postgres.conninfo (non-blocking: they connect
 * in the background and reconnect by themselves). */
void api_start(void);

/* Answers every request still waiting for the database with 503 and closes the connections.
 * Before http_server_free: the answers need their server. */
void api_stop(void);

/* The connected database connection with the least waiting, NULL when none is up: for the
 * notifier's other queries (login, accounts, presence), which share the API's connections. */
db_t *api_db_pick(void);

/* The media store (data_dir/media.dir), or NULL when it could not be opened. */
mstore_t *api_media_store(void);

/* True while at least one connection is up (the notifier's /healthz). */
bool api_db_up(void);

/* Requests waiting for the database (the drain waits for them). */
int api_in_flight(void);

/* Copies the API's counters into the metrics registry (ntf_metrics_refresh calls it). */
void api_metrics_refresh(void);

/* Routes one /v1/ request of a verified token's bearer. Answers it, now or from a database
 * callback: 404 for an unknown path, 405 for a wrong method, 400 naming a bad parameter. */
void api_handle(http_request_t *req, const token_claims_t *claims);

/* ---- pure helpers (unit-tested) ---- */

/* Writes the opaque cursor for sort key (a, b) of a list of kind 'c' (conversations: a =
 * last_message_at in Unix microseconds, b = id) or 'm' (messages: a = id, b = 0): base64url
 * of "<kind>1.<a>.<b>". Returns false when out (API_CURSOR_MAX is enough) is too small. */
bool api_cursor_encode(char kind, long long a, long long b, char *out, size_t outlen);

/* Reads a cursor back; false unless s is exactly what api_cursor_encode wrote for kind, with
 * a and b non-negative. */
bool api_cursor_decode(const char *s, char kind, long long *a, long long *b) __attribute__((warn_unused_result));

/* The limit parameter: absent (NULL) is API_LIMIT_DEFAULT; otherwise decimal digits only,
 * 1 to API_LIMIT_MAX. False for anything else. */
bool api_parse_limit(const char *s, int *out) __attribute__((warn_unused_result));

/* A conversation id in a path segment: 1 to 18 decimal digits, nothing else (the segment ends
 * at '/' or NUL; *end is set after it). False otherwise. */
bool api_parse_id(const char *s, long long *id, const char **end) __attribute__((warn_unused_result));

/* q as an ILIKE pattern that matches q anywhere: "%q%" with \, % and _ escaped. False when
 * q has fewer than 3 or more than 100 characters (UTF-8) or out is too small (6 * strlen + 3). */
bool api_search_pattern(const char *q, char *out, size_t outlen) __attribute__((warn_unused_result));

/* A Range header against a file of size bytes: 1 with [*from, *to] for one satisfiable byte
 * range, 0 when it cannot be satisfied (416), -1 when it is not one byte range (the whole file). */
int api_parse_range(const char *header, long long size, long long *from, long long *to);

#endif
