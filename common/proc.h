/*
 * proc: small process-level helpers shared by the programs: where the installation
 * lives (paths relative to the executable), the runtime settings the supervisor hands
 * its children through the environment, and child-side set-up after fork.
 */
#ifndef ATENDE_PROC_H
#define ATENDE_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "config.h"

/* Environment variables the supervisor sets for its children. */
#define PROC_ENV_BROKERS "ATENDE_KAFKA_BROKERS"   /* bootstrap of the embedded broker */
#define PROC_ENV_CONNINFO "ATENDE_PG_CONNINFO"    /* conninfo of the embedded PostgreSQL */
#define PROC_ENV_EPOCH "ATENDE_EPOCH"             /* broker incarnation: changes when its data is gone */
#define PROC_ENV_INDEX "ATENDE_INDEX"             /* index of a worker among its siblings */
#define PROC_ENV_POOL "ATENDE_POOL"               /* the worker pool a worker belongs to */
#define PROC_ENV_BROKER_IN_MEMORY "ATENDE_BROKER_IN_MEMORY" /* "1": the embedded broker, whose data dies with it */
#define PROC_ENV_BROKER_LIBRARY "ATENDE_BROKER_LIBRARY" /* to the embedded broker: the patched librdkafka it should run on */
#define PROC_ENV_BROKER_WAKES "ATENDE_BROKER_WAKES" /* "1": the embedded broker answers a waiting fetch when data arrives */

/* Resolves rel (e.g. "schema") against the working directory if it exists there,
 * else against the executable's parent folder (bin/..). Writes into buf. */
const char *proc_find_path(const char *rel, char *buf, size_t len);

/* Applies PROC_ENV_BROKERS / PROC_ENV_CONNINFO to c when set (they win over the file). */
void proc_apply_env(cfg_t *c);

/* The broker epoch handed down by the supervisor (0 when unset). */
long long proc_epoch(void);

/* In a freshly forked child of parent (the forking process's pid, taken before fork):
 * default signal dispositions, empty mask, its own process group, and SIGTERM when the
 * parent dies (see proc_die_with_parent). */
void proc_child_setup(pid_t parent);

/* Asks the kernel to send sig to this process when parent dies, and exits at once (127)
 * if parent is already gone: a parent that died between fork and this call would never
 * send it. Changing credentials (setuid) clears the request, so a child that drops
 * privileges calls this again afterwards. */
void proc_die_with_parent(pid_t parent, int sig);

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

/* <data_dir>/run/<role>.pid tells siblings that a process still runs when no supervisor
 * is left to tell them (the workers' drain waits for the ingress). Written at start,
 * removed at a clean exit; a file left by a killed process names a dead or foreign pid. */
void proc_pidfile_write(const cfg_t *c, const char *role);
void proc_pidfile_remove(const cfg_t *c, const char *role);

/* Whether <role>.pid names a running process whose command name is comm. */
bool proc_pidfile_alive(const cfg_t *c, const char *role, const char *comm);

/* TCP socket states as /proc/net/tcp writes them. */
#define PROC_TCP_ESTABLISHED 0x01
#define PROC_TCP_LISTEN 0x0A

/* Number of TCP sockets (IPv4 and IPv6) in this network namespace whose local port is
 * port and whose state is state (PROC_TCP_*); -1 when /proc/net/tcp cannot be read. */
int proc_tcp_count(int port, int state);

/* The process listening on TCP port (IPv4 or IPv6): its pid, with its command name in
 * name; 0 when nothing listens there, -1 when something does but its process is not
 * visible (another namespace or user). */
pid_t proc_port_holder(int port, char *name, size_t len);

#endif
