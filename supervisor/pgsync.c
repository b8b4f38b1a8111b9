/*
 * pgsync: blocking connections for the CLI verbs. At start-up the embedded server may still be
 * booting, so a refused connection is retried; an answer about the database or credentials means
 * the configuration is wrong, and waiting would only hide it.
 */
#include "pgsync.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

PGconn *pgsync_connect(const char *conninfo, int wait_s, char *err, size_t errlen)
{
	for (int waited_ms = 0;; waited_ms += 200) {
		PGconn *c = PQconnectdb(conninfo);
		if (PQstatus(c) == CONNECTION_OK)
			return c;
		/* wait only for a server that is not up yet; a wrong database or user is final */
		const char *why = PQerrorMessage(c);
		bool final = strstr(why, "does not exist") || strstr(why, "authentication") || strstr(why, "password");
		if (final || waited_ms >= wait_s * 1000) {
			snprintf(err, errlen, "cannot connect to PostgreSQL: %s", PQerrorMessage(c));
			err[strcspn(err, "\n")] = 0;
			PQfinish(c);
			return NULL;
		}
		PQfinish(c);
		usleep(200 * 1000); /* start-up only: waiting for a server that is still booting */
	}
}
