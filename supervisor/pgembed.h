/*
 * pgembed: the embedded PostgreSQL. initdb once into <data_dir>/pg, then `postgres` as
 * a child listening on a unix socket in <data_dir>/run and on a loopback port. When
 * started as root the server runs as an unprivileged system user (created if missing).
 */
#ifndef ATENDE_PGEMBED_H
#define ATENDE_PGEMBED_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "config.h"

/* Creates folders, the system user and the cluster (initdb) when missing. Blocking;
 * start-up only. Returns false with a one-line reason in err. */
bool pgembed_prepare(const cfg_t *cfg, char *err, size_t errlen) __attribute__((warn_unused_result));

/* A postmaster of an earlier run that outlived its supervisor (postmaster.pid names a
 * live postgres whose data directory is ours) is shut down cleanly (fast shutdown,
 * immediate after a minute) before we start ours. A postmaster.pid naming a process that
 * is not a postgres on our data directory is a stale lock: removed. One whose process
 * is gone is left to PostgreSQL. Blocking; start-up only. Returns false with a one-line
 * reason in err when the leftover does not stop. */
bool pgembed_stop_leftover(const cfg_t *cfg, char *err, size_t errlen) __attribute__((warn_unused_result));

/* After the postmaster died (kill -9, a crash), its backends live on until each next
 * looks for it — a long statement for many seconds — and while any does, a new postmaster
 * refuses to start ("pre-existing shared memory block is still in use"). Kills (SIGKILL,
 * what the postmaster itself does in crash recovery) every process running postgres on
 * our data directory; returns how many. Call only while no server of ours is running. */
int pgembed_kill_orphans(const cfg_t *cfg);

/* Forks and execs postgres; returns its pid or -1. The server gets SIGTERM (smart
 * shutdown) if the supervisor dies. */
pid_t pgembed_spawn(const cfg_t *cfg);

/* Linux autogroup puts every session in its own scheduling group, and each PostgreSQL
 * backend starts a session (setsid): without this a backend competes as a whole session
 * and the server's nice value (postgres.priority) is ignored. Gives the autogroup of every
 * child of the postmaster that nice value; returns how many it changed. Called every
 * second: it reads the postmaster's children list and returns at once while that list is
 * one a pass already found settled; a no-op on kernels without autogroup. */
int pgembed_renice_backends(pid_t postmaster, int priority);

/* The conninfo clients use to reach the embedded server. */
const char *pgembed_conninfo(const cfg_t *cfg, char *buf, size_t len);

#endif
