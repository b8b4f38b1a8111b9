/*
 * retention: `atende retention`. Keeps the weekly partitions of messages and hints (see
 * schema/003_retention.sql): creates retention.weeks_ahead weeks ahead, exports every
 * partition older than retention.keep_days to <archive_dir>/<table>-<week>.csv.gz, checks
 * the file, then detaches (CONCURRENTLY: inserts keep flowing) and drops it; prunes old
 * message keys, finished console requests and replayed dead letters. Blocking: a CLI verb, which the supervisor also
 * runs as a child every retention.interval_s. Several machines may run it at once: an
 * advisory lock lets one work and the others return.
 */
#ifndef ATENDE_RETENTION_H
#define ATENDE_RETENTION_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

typedef struct {
	bool dry_run;   /* report what would be archived and dropped; change nothing */
	bool json;      /* one JSON object on stdout instead of the human report */
	bool log;       /* report through the logger (when the supervisor runs it) */
} retention_opts_t;

/* Runs one pass on cfg->postgres.conninfo. Returns the exit status (0 also when another
 * run holds the lock); every problem is reported, and a partition is dropped only after
 * its archive was read back whole. */
int retention_run(const cfg_t *cfg, const retention_opts_t *opts);

/* CSV records (lines outside quoted fields) in a chunk of COPY ... CSV output; *quoted
 * carries the quoting state across chunks (start with false). */
long long retention_csv_records(const char *buf, size_t len, bool *quoted);

#endif
