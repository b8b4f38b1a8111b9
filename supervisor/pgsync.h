/*
 * pgsync: blocking PostgreSQL for the CLI verbs and the one-shot children the supervisor runs
 * (migrate, dlq, retention). They run outside any event loop, so they may wait for a server that
 * is still starting, which the programs' asynchronous connections (common/db) must never do.
 */
#ifndef ATENDE_PGSYNC_H
#define ATENDE_PGSYNC_H

#include <libpq-fe.h>
#include <stddef.h>

/* Connects to conninfo, retrying every 200 ms for up to wait_s seconds while the server is not up
 * yet; a missing database, user or password is final at once. Returns the connection (the caller
 * PQfinish-es it) or NULL with a one-line reason in err. */
PGconn *pgsync_connect(const char *conninfo, int wait_s, char *err, size_t errlen);

#endif
