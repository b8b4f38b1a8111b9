/*
 * idle: the --idle run of `atende bench`: what an idle console costs the notifier. N agent
 * WebSockets (agents 1..N, each on its own agent:A) are dialled through the ramp window; once every
 * one is up or refused, and a few seconds later, the notifier's VmRSS is read, then the sockets are
 * held --hold seconds (its CPU meanwhile is the idle cost; any socket it closes is a drop).
 */
#ifndef ATENDE_BENCH_IDLE_H
#define ATENDE_BENCH_IDLE_H

#include "config.h"
#include "opts.h"

/* Runs it against the notifier of cfg. fd_limit is this process's RLIMIT_NOFILE, for the report.
 * Exactly one JSON line ({"bench":"idle",...}) goes to stdout. Returns 0 when it ran (even with
 * refused or dropped sockets), 1 with a one-line reason on stderr when it could not. */
int idle_run(const cfg_t *cfg, const opts_t *o, long fd_limit);

#endif
