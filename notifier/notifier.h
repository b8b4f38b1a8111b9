/*
 * notifier: the notifier process's state, shared by its rooms (conn, stream, ops, web) as one
 * process-wide instance N (one event loop, so nothing is locked), its clock and its counters'
 * export to the metrics registry.
 */
#ifndef ATENDE_NOTIFIER_H
#define ATENDE_NOTIFIER_H

#include "config.h"
#include "guard.h"
#include "http.h"
#include "hub.h"
#include "kq.h"
#include "presence.h"
#include "tick.h"
#include "typing.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

struct conn;

typedef struct {
	cfg_t cfg;
	struct event_base *base;
	http_server_t *http;
	kq_t *consumer, *producer;
	hub_t *hub;
	presence_t *presence;
	typing_t *typing;
	guard_counts_t *per_token;    /* open connections per token */
	guard_counts_t *ops_rate;     /* op buckets per agent ("company:agent"), shared by its connections */
	char instance[PRESENCE_INSTANCE_MAX];
	char events_topic[160], outbound_topic[160], typing_topic[160];
	int partitions;               /* of atende.events: a company's channels live in company % partitions */
	int typing_partitions;        /* of atende.typing; 0 when the brokers lack it (typing then only in events) */
	struct conn *conns;           /* every open connection and waiting poll, for the drain */
	int n_ws, n_polls, n_http_ops;
	tick_t *tick, *heartbeat;
	struct event *typing_ev; /* the next typing expiry within the tick's second */
	bool draining;
	uint64_t n_events, n_deliveries, n_slow_cuts, n_refused, n_limited, n_rate_limited, n_replies, n_transfers,
		n_status_changes, n_typing, n_polls_answered, n_produce_errors, n_events_lost;
} ntf_t;

extern ntf_t N;

/* Unix time in milliseconds. */
long long ntf_now_ms(void);

/* Copies the counters into the metrics registry (for GET /metrics and the supervisor's export). */
void ntf_metrics_refresh(void);

#endif
