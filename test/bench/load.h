/*
 * load: the open-loop run of `atende bench`, and the driver the fan-out run shares. Message i is
 * due at t0 + i/rate whatever the system does; when every keep-alive connection is busy it waits
 * its turn, and its latencies still count from its due time, so a slow system cannot hide its
 * queueing (no coordinated omission). Hints are counted on one supervisor WebSocket on company:C,
 * which sees every hint of the company exactly once; the agent sockets are there to hold a
 * realistic load. A dropped socket reconnects and resumes from its last seq, as a console would.
 */
#ifndef ATENDE_BENCH_LOAD_H
#define ATENDE_BENCH_LOAD_H

#include "config.h"
#include "opts.h"

/* Runs one benchmark against the system described by cfg (its ingress, notifier and supervisor
 * ports; auth.token_secret for agent tokens; the Evolution channels of o->company): open-loop, or
 * with o->fanout the fan-out run. Progress goes to stderr once per second; exactly one JSON line
 * goes to stdout at the end ({"bench":"fanout",...} for the fan-out run). Returns 0 when it ran
 * (even with rejected or missing messages, refused or dropped sockets), 1 with a one-line reason
 * on stderr when it could not reach the system or set itself up. */
int load_run(const cfg_t *cfg, const opts_t *o);

#endif
