/*
 * opts: the options of `atende bench` (one run of one kind: open-loop, --idle or --fanout), parsed
 * once so every run reads the same validated values.
 */
#ifndef ATENDE_BENCH_OPTS_H
#define ATENDE_BENCH_OPTS_H

#include <stdbool.h>
#include <stddef.h>

#define OPTS_MAX_TOTAL 100000000ULL /* messages per run: bounds the per-message state */
#define OPTS_SPARE_FDS 64           /* descriptors beyond the sockets: files, the loop, curl */

/* What to run; opts_parse fills it with the defaults first. */
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
	bool messy;      /* --messy: each text as customers type it (test/bench/messy.h) */
	int customers;   /* --customers N: distinct customers, so conversations (default 5000) */
	const char *ids_path;    /* --ids FILE: one line per message sent, "id<TAB>acked<TAB>status"
				    (acked 1 for a 200; status 0 = broken connection, -1 = no answer) */
	const char *events_path; /* --events FILE: what the watcher (company:C) received, one line each:
				    "message<TAB>id", "hint<TAB>id" per covered id, "reset<TAB>frame";
				    for end-to-end checking (test/chaos/check.py) */
} opts_t;

/* Parses the verb's options (argv[0] is the program; "-c FILE" is skipped, it is the caller's).
 * Returns false with a one-line reason in err for an unknown option or an out-of-range value. */
bool opts_parse(int argc, char **argv, opts_t *opts, char *err, size_t errlen) __attribute__((warn_unused_result));

/* How many descriptors the run described by o wants: its sockets plus OPTS_SPARE_FDS. */
long opts_fds_wanted(const opts_t *o);

#endif
