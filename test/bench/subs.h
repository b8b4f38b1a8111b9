/*
 * subs: the subscriber WebSockets of the notifier runs (--idle, --fanout). Each is dialled once and
 * never resumed, so a cut is seen as a cut. They are dialled through a window of handshakes in
 * flight, so the notifier's accept queue never overflows (a SYN dropped there costs a second of
 * retransmission and would be measured as the notifier's slowness).
 */
#ifndef ATENDE_BENCH_SUBS_H
#define ATENDE_BENCH_SUBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/bufferevent.h>

#include "ws.h"

#define SUBS_RAMP_WINDOW 200 /* handshakes in flight at once (the notifier's accept backlog is 1024) */

typedef struct subs_set subs_set_t;

/* One subscriber socket. */
typedef struct {
	subs_set_t *set;
	struct bufferevent *bev; /* during the handshake; ws owns it afterwards */
	ws_conn_t *ws;           /* NULL before the handshake and once closed */
	long agent;              /* the token's agent (role set->role, the dial company) */
	bool ready;              /* its subscription was acknowledged */
	bool done;               /* refused or failed before it was ready: not counted again */
	uint64_t frames;         /* frames of the run received, counted by the owner */
	char key[25];            /* Sec-WebSocket-Key sent, to check the answer */
	char channel[48];
} subs_sock_t;

/* What the owner of a set hears. Called after the set's counters are updated. */
typedef struct {
	/* its subscription was acknowledged (ack is that frame); the ramp goes on afterwards; NULL when
	 * the owner does not ask */
	void (*ready)(subs_sock_t *s, const char *ack, size_t len);
	/* a frame after the acknowledgement */
	void (*frame)(subs_sock_t *s, const char *data, size_t len);
	/* refused or failed before it was ready; the ramp goes on afterwards unless the run failed */
	void (*failed)(subs_sock_t *s, const char *why);
	/* every socket is up or failed; NULL when the owner does not ask */
	void (*all_in)(subs_set_t *set);
	/* after subs_close_all, the last socket is gone */
	void (*all_closed)(subs_set_t *set);
} subs_callbacks_t;

struct subs_set {
	subs_sock_t *socks;
	int n, next_dial;        /* sockets, and the next one to dial */
	int in_flight;           /* dialled, not yet ready or refused */
	int ready, failed, open, dropped;
	bool ramping, closing;
	char role[16];           /* of every socket's token */
	char first_error[200];
	double t_progress;       /* monotonic: the last time a socket came up or failed */
	double t_last_ready;     /* when the last socket came up */
	const subs_callbacks_t *cb;
};

/* Allocates n sockets (agent and channel left for the caller to set) for tokens of role; cb is
 * kept, not copied. False when out of memory. */
bool subs_init(subs_set_t *set, int n, const char *role, const subs_callbacks_t *cb) __attribute__((warn_unused_result));

/* Dials the next sockets, at most SUBS_RAMP_WINDOW handshakes at a time; stops while the run has
 * failed (loop_fatal) or the set is closing. Called again by the set as handshakes finish. */
void subs_ramp(subs_set_t *set);

/* Stops dialling: every socket not up yet counts as failed and is closed. */
void subs_give_up(subs_set_t *set);

/* Starts the close handshake of every socket; all_closed says when the last one is gone. */
void subs_close_all(subs_set_t *set);

/* Frees the sockets, unless some are still open (a closing one still points into them: the
 * process ends anyway). */
void subs_free(subs_set_t *set);

#endif
