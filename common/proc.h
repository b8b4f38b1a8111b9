/*
 * proc: small process-level helpers shared by the programs: where the installation
 * lives (paths relative to the executable), the runtime settings the supervisor hands
 * its children through the environment, and child-side set-up after fork.
 */
#ifndef ATENDE_PROC_H
#define ATENDE_PROC_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* Environment variables the supervisor sets for its children. */
#define PROC_ENV_BROKERS "ATENDE_KAFKA_BROKERS"   /* bootstrap of the embedded broker */
#define PROC_ENV_CONNINFO "ATENDE_PG_CONNINFO"    /* conninfo of the embedded PostgreSQL */
#define PROC_ENV_EPOCH "ATENDE_EPOCH"             /* broker incarnation: changes when its data is gone */
#define PROC_ENV_INDEX "ATENDE_INDEX"             /* index of a worker among its siblings */
#define PROC_ENV_POOL "ATENDE_POOL"               /* the worker pool a worker belongs to */

/* Resolves rel (e.g. "schema") against the working directory if it exists there,
 * else against the executable's parent folder (bin/..). Writes into buf. */
const char *proc_find_path(const char *rel, char *buf, size_t len);

/* Applies PROC_ENV_BROKERS / PROC_ENV_CONNINFO to c when set (they win over the file). */
void proc_apply_env(cfg_t *c);

/* The broker epoch handed down by the supervisor (0 when unset). */
long long proc_epoch(void);

/* In a freshly forked child: default signal dispositions, empty mask, its own process
 * group, and death with the parent. */
void proc_child_setup(void);

/* Applies the config's log.level and log.format to this process's logging. */
void proc_apply_log(const cfg_t *c);

/* SIGHUP: parses c->path into a scratch copy; only a fully valid file replaces the
 * reloadable keys of c (env overrides kept) and the log settings. On error logs every
 * problem, keeps c as it is and returns false. */
bool proc_reload_config(cfg_t *c);

/* Loads the config named by -c (default deploy/atende.conf), applies log settings and env
 * overrides; on error prints every problem and exits 1. For the child programs' main(). */
void proc_load_config(int argc, char **argv, const char *process_name, cfg_t *out);

/* Makes room under RLIMIT_NOFILE for `connections` client sockets (the value of the
 * config key named by key) plus PROC_FD_RESERVE for Kafka, PostgreSQL, listeners and
 * files: raises the soft limit, and the hard one too when privileged. Where the hard
 * limit stays lower, warns with both numbers and what raises it: past it, accepts pause
 * instead of the 503 max_connections promises. Returns the soft limit in force. For
 * start and reload of the programs that hold many connections. */
#define PROC_FD_RESERVE 256
long proc_fd_limit(long connections, const char *key);

/* Raises RLIMIT_NOFILE toward want: the soft limit up to the hard one, both when
 * privileged. Returns the soft limit in force (LONG_MAX when unlimited), -1 on error. */
long proc_raise_nofile(long want);

/* This process's index among its siblings (PROC_ENV_INDEX; 0 when unset). */
int proc_index(void);

/* Where a process exports its metrics: <data_dir>/run/metrics/<role>-<index>.prom. */
const char *proc_metrics_path(const cfg_t *c, const char *role, int index, char *buf, size_t len);

#endif
