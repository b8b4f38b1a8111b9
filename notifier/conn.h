/*
 * conn: one console's connection (a WebSocket, a waiting long-poll, or a POST /op waiting for
 * its op's answer) and everything sent to it. Output is bounded here: a WebSocket that stays
 * over max_send_buffer for slow_consumer_ms, or reaches a hard multiple of it, is closed with
 * 1008, so one slow reader can neither make the notifier buffer without bound nor slow anyone.
 */
#ifndef ATENDE_CONN_H
#define ATENDE_CONN_H

#include "guard.h"
#include "http.h"
#include "poll.h"
#include "token.h"
#include "ws.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#define CONN_MAX_SUBSCRIPTIONS 64
#define CONN_HARD_BUFFER_FACTOR 4 /* output over this many max_send_buffer: cut at once */

typedef struct conn {
	struct conn *prev, *next;     /* every open connection and waiting poll (N.conns), for the drain */
	ws_conn_t *ws;                /* NULL for a long-poll, and once the socket is gone */
	token_claims_t claims;
	char token_key[64];           /* the token's signature: connections are counted per token */
	char *channels[CONN_MAX_SUBSCRIPTIONS];
	int32_t partitions[CONN_MAX_SUBSCRIPTIONS]; /* each channel's partition of atende.events */
	int n_channels;
	bool cut;                     /* being closed: deliver nothing more */
	bool gone;                    /* closed (ws) or answered (poll); freed when refs reaches 0 */
	int refs;                     /* 1 while open + 1 per outbound message awaiting its report */
	bool tab;                     /* counted as a presence tab */
	struct event *slow_timer;     /* armed when the output went over max_send_buffer */
	struct event *expiry;         /* a WebSocket's: fires at the token's exp */
	size_t slow_ref;              /* output to judge it against: the most queued in the first period, then
					 the backlog at the last judgement (a backlog below it is draining) */
	bool slow_again;              /* judged once already: slow_ref is fixed */
	/* long-poll, and POST /op */
	bool op_request;              /* a POST /op: answered by its op's ack or error */
	int op_status;                /* its HTTP status if not the usual (200 ack, 400 error) */
	http_request_t *req;
	poll_batch_t batch;
	struct event *poll_timer;     /* the poll's timeout; activated early to answer events */
} conn_t;

/* A new connection of claims, linked into N.conns and counted for its token, holding one
 * reference (dropped with conn_unref once it is closed or answered). */
conn_t *conn_new(const token_claims_t *claims, const char *token_key);

/* Takes c out of the hub and the connection list (it stays allocated while refs remain). */
void conn_unlink(conn_t *c);

/* Drops one reference; the last one frees c. */
void conn_unref(conn_t *c);

/* Starts judging a WebSocket's output (the slow-consumer timer). */
void conn_watch_slow(conn_t *c);

/* Sends a frame: to the WebSocket, into a waiting long-poll's answer, or as a POST /op's answer
 * (an error frame answers 400, or op_status). Nothing once c is cut or gone. */
void conn_send(conn_t *c, const char *frame, size_t len);

/* A hub_deliver_fn: conn_send, with the frame encoded once for every WebSocket it goes to. */
void conn_deliver(void *conn, const char *frame, size_t len, void *arg);

/* {"type":"ack","op":OP,"id":ID...}: extra_json (may be NULL) is appended to the members. */
void conn_send_ack(conn_t *c, const char *id_json, const char *op, const char *extra_json);

/* {"type":"error",["id":ID,]["op":OP,]"error":TEXT}. */
void conn_send_error(conn_t *c, const char *id_json, const char *op, const char *error);

#endif
