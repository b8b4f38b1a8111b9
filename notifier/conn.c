/*
 * conn: a console's connection and what is sent to it (see conn.h).
 */
#include "conn.h"

#include "hub.h"
#include "log.h"
#include "notifier.h"
#include "xalloc.h"

#include <cJSON.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ws_shared_t *conn_shared;  /* the frame being fanned out, encoded once for every WebSocket */
static uint64_t conn_shared_gen;

static void conn_send_ex(conn_t *c, const char *frame, size_t len, ws_shared_t *shared);
static void conn_slow_cb(evutil_socket_t fd, short what, void *arg);
static void conn_op_answer(conn_t *c, const char *frame, size_t len);

conn_t *conn_new(const token_claims_t *claims, const char *token_key)
{
	conn_t *c = xcalloc(1, sizeof(*c));
	c->claims = *claims;
	snprintf(c->token_key, sizeof(c->token_key), "%s", token_key);
	c->refs = 1;
	c->next = N.conns;
	if (N.conns)
		N.conns->prev = c;
	N.conns = c;
	guard_counts_add(N.per_token, c->token_key, 1);
	return c;
}

/* Takes c out of the hub and the connection list (it stays allocated while refs remain). */
void conn_unlink(conn_t *c)
{
	for (int i = 0; i < c->n_channels; i++) {
		hub_unsubscribe(N.hub, c->channels[i], c);
		free(c->channels[i]);
	}
	c->n_channels = 0;
	if (c->prev)
		c->prev->next = c->next;
	else if (N.conns == c)
		N.conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	guard_counts_add(N.per_token, c->token_key, -1);
}

void conn_unref(conn_t *c)
{
	if (--c->refs > 0)
		return;
	if (c->slow_timer)
		event_free(c->slow_timer);
	if (c->expiry)
		event_free(c->expiry);
	if (c->poll_timer)
		event_free(c->poll_timer);
	poll_batch_free(&c->batch);
	free(c);
}

/* Sends a frame (or adds it to a waiting long-poll's answer). A client whose output stays over
 * max_send_buffer for slow_consumer_ms, or reaches CONN_HARD_BUFFER_FACTOR times it, is closed
 * with 1008: it cannot make the notifier buffer without bound or slow anyone else. */
void conn_send(conn_t *c, const char *frame, size_t len)
{
	conn_send_ex(c, frame, len, NULL);
}

void conn_deliver(void *conn, const char *frame, size_t len, void *arg)
{
	conn_t *c = conn;
	(void)arg;
	if (c->ws && !c->cut && !c->gone) {
		uint64_t gen = hub_frame_gen(N.hub);
		if (!conn_shared || conn_shared_gen != gen) {
			ws_shared_release(conn_shared);
			conn_shared = ws_shared_text(frame, len);
			conn_shared_gen = gen;
		}
		conn_send_ex(c, frame, len, conn_shared);
		return;
	}
	conn_send(conn, frame, len);
}

void conn_send_ack(conn_t *c, const char *id_json, const char *op, const char *extra_json)
{
	char frame[512];
	int n = snprintf(frame, sizeof(frame), "{\"type\":\"ack\",\"op\":\"%s\",\"id\":%s%s}", op, id_json ? id_json : "null",
			 extra_json ? extra_json : "");
	if (n > 0 && (size_t)n < sizeof(frame))
		conn_send(c, frame, (size_t)n);
}

void conn_send_error(conn_t *c, const char *id_json, const char *op, const char *error)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "error");
	if (id_json)
		cJSON_AddRawToObject(o, "id", id_json);
	if (op)
		cJSON_AddStringToObject(o, "op", op);
	cJSON_AddStringToObject(o, "error", error);
	char *s = cJSON_PrintUnformatted(o);
	conn_send(c, s, strlen(s));
	free(s);
	cJSON_Delete(o);
}

void conn_watch_slow(conn_t *c)
{
	c->slow_timer = evtimer_new(N.base, conn_slow_cb, c);
}

static void conn_send_ex(conn_t *c, const char *frame, size_t len, ws_shared_t *shared)
{
	if (c->cut || c->gone)
		return;
	if (!c->ws && c->op_request) {
		conn_op_answer(c, frame, len);
		return;
	}
	if (!c->ws) {
		poll_batch_add(&c->batch, frame, len);
		event_active(c->poll_timer, EV_TIMEOUT, 1); /* answer once this loop turn's events are in */
		return;
	}
	size_t soft = (size_t)N.cfg.notifier.max_send_buffer, pending = ws_conn_pending_bytes(c->ws);
	if (pending > soft * CONN_HARD_BUFFER_FACTOR ||
	    !(shared ? ws_conn_send_shared(c->ws, shared) : ws_conn_send_text(c->ws, frame, len))) {
		c->cut = true;
		N.n_slow_cuts++;
		log_warn("agent %ld (company %ld): slow consumer (%zu bytes queued): closing", c->claims.agent,
			 c->claims.company, pending);
		ws_conn_close(c->ws, WS_CLOSE_POLICY, "slow consumer");
		return;
	}
	if (pending + len > soft) {
		if (!evtimer_pending(c->slow_timer, NULL)) {
			struct timeval tv = {N.cfg.notifier.slow_consumer_ms / 1000, (N.cfg.notifier.slow_consumer_ms % 1000) * 1000};
			evtimer_add(c->slow_timer, &tv);
			c->slow_ref = 0;
			c->slow_again = false;
		}
		if (!c->slow_again && pending + len > c->slow_ref)
			c->slow_ref = pending + len;
	}
}

/* slow_consumer_ms after the output went over max_send_buffer: still over, and no smaller than the
 * most it held meanwhile (later: than at the last judgement), means slow. A client whose backlog
 * shrinks is reading, only behind a burst, or behind this process, busy fanning a batch out to
 * everyone: it is judged again a period later. */
static void conn_slow_cb(evutil_socket_t fd, short what, void *arg)
{
	conn_t *c = arg;
	(void)fd, (void)what;
	if (c->cut || c->gone || !c->ws)
		return;
	size_t pending = ws_conn_pending_bytes(c->ws);
	if (pending <= (size_t)N.cfg.notifier.max_send_buffer)
		return;
	if (pending < c->slow_ref) {
		struct timeval tv = {N.cfg.notifier.slow_consumer_ms / 1000, (N.cfg.notifier.slow_consumer_ms % 1000) * 1000};
		c->slow_ref = pending;
		c->slow_again = true;
		evtimer_add(c->slow_timer, &tv);
		return;
	}
	c->cut = true;
	N.n_slow_cuts++;
	log_warn("agent %ld (company %ld): slow consumer (%zu bytes queued for %d ms): closing", c->claims.agent,
		 c->claims.company, pending, N.cfg.notifier.slow_consumer_ms);
	ws_conn_close(c->ws, WS_CLOSE_POLICY, "slow consumer");
}

static void conn_op_answer(conn_t *c, const char *frame, size_t len)
{
	bool error = len > 15 && strncmp(frame, "{\"type\":\"error\"", 15) == 0;
	http_response_add_header(c->req, "Cache-Control", "no-store");
	http_respond(c->req, c->op_status ? c->op_status : error ? 400 : 200, "application/json", frame, len);
	c->req = NULL;
	c->gone = true;
	N.n_http_ops--;
	conn_unlink(c);
	conn_unref(c);
}
