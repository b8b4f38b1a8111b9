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

/* This process's index among its siblings (PROC_ENV_INDEX; 0 when unset). */
int proc_index(void);

/* Where a process exports its metrics: <data_dir>/run/metrics/<role>-<index>.prom. */
const char *proc_metrics_path(const cfg_t *c, const char *role, int index, char *buf, size_t len);

#endif
