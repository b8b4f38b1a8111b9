/*
 * fanout: the measurements of the fan-out run (--fanout S): S supervisor WebSockets on company:C
 * receive the message and hint events of the run's webhooks. Counts deliveries and distinct events,
 * the publish->deliver latency of message events (from data.created_at, the ingress's receive time)
 * and the spread between the first and the last subscriber to get each event. The sockets and
 * webhooks are the open-loop driver's (load); this module only reads their frames.
 */
#ifndef ATENDE_BENCH_FANOUT_H
#define ATENDE_BENCH_FANOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "opts.h"
#include "sample.h"
#include "subs.h"

/* What the driver measured, for the report. */
typedef struct {
	const opts_t *o;
	uint64_t acked, rejected, hints; /* of the run's webhooks; hint events counted by the watcher */
	double window;                   /* seconds from the first send to the end */
	int cut;                         /* sockets the notifier closed after their subscription */
	bool interrupted;                /* Ctrl-C ended the run */
	uint64_t watcher_frames;         /* frames of the run the watcher (subscriber 1) received */
	const subs_set_t *subs;          /* subscribers 2..S, their frames counted by fan_frame */
	const sample_set_t *procs;
} fan_totals_t;

/* Prepares the counters for the run whose message ids start with prefix (kept, not copied). False
 * when out of memory. */
bool fan_init(const char *prefix, size_t prefix_len) __attribute__((warn_unused_result));

/* A subscription's acknowledged seq: every event of the run comes after the lowest one. */
void fan_ack_seq(long long seq);

/* The first webhook is about to go: the quiet time is counted from here until a frame comes. */
void fan_start(void);

/* One frame on company:C to a subscriber, whose count of the run's frames is *frames. Kept cheap:
 * it runs for every delivery. */
void fan_frame(const char *data, size_t len, uint64_t *frames);

/* Whether the run may end: every subscriber has every event of the run (acked message events, hints
 * events, all_hinted: no acknowledged message still waits for its hint), or none came for a few
 * seconds, or the wait after the drain (drain_end, monotonic) ran out. */
bool fan_settled(double now, double drain_end, uint64_t acked, uint64_t hints, bool all_hinted, int subscribers);

/* Deliveries of the run's events so far, for progress lines. */
uint64_t fan_deliveries(void);

/* Writes the one JSON line of --fanout to stdout. */
void fan_report(const fan_totals_t *t);

/* Frees the counters. */
void fan_free(void);

#endif
