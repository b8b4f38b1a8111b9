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

/* Forks and execs postgres; returns its pid or -1. */
pid_t pgembed_spawn(const cfg_t *cfg);

/* The conninfo clients use to reach the embedded server. */
const char *pgembed_conninfo(const cfg_t *cfg, char *buf, size_t len);

#endif
