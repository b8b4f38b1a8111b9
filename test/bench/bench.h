/*
 * bench: the open-loop load generator behind `atende bench`. It posts Evolution webhooks to a
 * running system at a fixed rate over keep-alive connections, holds agent WebSockets, and measures
 * ack and webhook->hint latency from each message's scheduled time, so a slow system cannot hide
 * its queueing (no coordinated omission). Two notifier runs: --idle (memory per idle WebSocket)
 * and --fanout (deliveries per second to many subscribers of one company channel, and the
 * publish->deliver latency). One libevent loop, nothing blocking while it measures.
 */
#ifndef ATENDE_BENCH_H
#define ATENDE_BENCH_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* What to run; bench_parse_args fills it with the defaults first. */
typedef struct {
	double rate;     /* messages per second (--rate, default 500) */
	double seconds;  /* length of the measured window (--seconds, default 20) */
	double warmup;   /* seconds sent at the same rate before it, not counted (--warmup, default 2) */
	double drain;    /* how long after the last send to wait for hints (--drain, default 10) */
	int connections; /* keep-alive HTTP connections to the ingress (--connections, default 64) */
	int agents;      /* agent WebSockets, agents 1..N of the company (--agents, default 100) */
	long company;    /* company whose channels and agents are used (--company, default 1) */
	int idle;        /* --idle N: only hold N idle agent WebSockets (agents 1..N, each on its own
			    agent:A) and report the notifier's memory; 0 = not this run */
	double hold;     /* --hold S: how long --idle holds them once all are up (default 10) */
	int fanout;      /* --fanout S: S supervisor WebSockets on company:C (agents 1..S) receive the
			    message and hint events of --messages webhooks sent at --rate; 0 = not this run */
	long messages;   /* --messages M of the fan-out run (default 2000); it replaces --seconds and
			    --warmup, and no agent sockets are opened (--agents is ignored) */
} bench_opts_t;

/* Parses the verb's options (argv[0] is the verb; "-c FILE" is skipped, it is the caller's).
 * Returns false with a one-line reason in err for an unknown option or an out-of-range value. */
bool bench_parse_args(int argc, char **argv, bench_opts_t *opts, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Runs one benchmark against the system described by cfg (its ingress, notifier and supervisor
 * ports; auth.token_secret for agent tokens; the Evolution channels of opts->company). Progress goes
 * to stderr once per second; exactly one JSON line goes to stdout at the end ({"bench":"idle",...}
 * and {"bench":"fanout",...} for the notifier runs). RLIMIT_NOFILE is raised first (to what the
 * sockets need, above the hard limit when allowed); stderr says so when the sockets asked for cannot all fit.
 * Returns 0 when it ran (even with rejected or missing messages, refused or dropped sockets), 1 with
 * a one-line reason on stderr when it could not reach the system or set itself up. */
int bench_run(const cfg_t *cfg, const bench_opts_t *opts);

#endif
