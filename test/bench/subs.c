/*
 * subs: dialling, counting and closing the notifier runs' subscriber sockets. The owner decides
 * what a failure means (the fan-out run needs every socket; the idle run counts them) through
 * its callbacks; the set only keeps the counts straight.
 */
#include "subs.h"

#include "dial.h"
#include "loop.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void subs_dial(subs_sock_t *s);
static void subs_failed(subs_sock_t *s, const char *why);
static void subs_hs_event_cb(struct bufferevent *bev, short what, void *arg);
static void subs_hs_read_cb(struct bufferevent *bev, void *arg);
static void subs_message(ws_conn_t *c, const char *data, size_t len, void *arg);
static void subs_close(ws_conn_t *c, int code, void *arg);

bool subs_init(subs_set_t *set, int n, const char *role, const subs_callbacks_t *cb)
{
	memset(set, 0, sizeof(*set));
	set->socks = xcalloc((size_t)n + 1, sizeof(*set->socks));
	if (!set->socks)
		return false;
	set->n = n;
	set->cb = cb;
	snprintf(set->role, sizeof(set->role), "%s", role);
	for (int i = 0; i < n; i++)
		set->socks[i].set = set;
	return true;
}

void subs_ramp(subs_set_t *set)
{
	if (set->ramping)
		return; /* a dial that failed at once lands back here: the loop below goes on */
	set->ramping = true;
	while (set->in_flight < SUBS_RAMP_WINDOW && set->next_dial < set->n && !loop_fatal()[0] && !set->closing)
		subs_dial(&set->socks[set->next_dial++]);
	set->ramping = false;
	if (set->cb->all_in && set->ready + set->failed == set->n)
		set->cb->all_in(set);
}

void subs_give_up(subs_set_t *set)
{
	for (int i = 0; i < set->n; i++) {
		subs_sock_t *s = &set->socks[i];
		if (s->ready || s->done)
			continue;
		s->done = true;
		set->failed++;
		if (s->bev) {
			bufferevent_free(s->bev);
			s->bev = NULL;
		}
		if (s->ws)
			ws_conn_close(s->ws, WS_CLOSE_NORMAL, NULL);
	}
	set->next_dial = set->n;
	set->in_flight = 0;
}

void subs_close_all(subs_set_t *set)
{
	set->closing = true;
	for (int i = 0; set->socks && i < set->n; i++) {
		subs_sock_t *s = &set->socks[i];
		if (s->ws) {
			ws_conn_close(s->ws, WS_CLOSE_NORMAL, "bench done");
		} else if (s->bev) {
			bufferevent_free(s->bev);
			s->bev = NULL;
		}
	}
}

void subs_free(subs_set_t *set)
{
	if (set->open == 0) {
		free(set->socks);
		set->socks = NULL;
	}
}

static void subs_dial(subs_sock_t *s)
{
	s->set->in_flight++;
	const char *why = dial_ws(&s->bev, subs_hs_read_cb, subs_hs_event_cb, s);
	if (why)
		subs_failed(s, why);
}

/* A socket refused or failed before it was ready: counted once, then the owner decides. */
static void subs_failed(subs_sock_t *s, const char *why)
{
	subs_set_t *set = s->set;
	if (s->bev)
		bufferevent_free(s->bev);
	s->bev = NULL;
	if (s->done || s->ready)
		return;
	s->done = true;
	set->in_flight--;
	set->failed++;
	set->t_progress = loop_now();
	if (!set->first_error[0])
		snprintf(set->first_error, sizeof(set->first_error), "agent %ld: %s", s->agent, why);
	set->cb->failed(s, why);
	subs_ramp(set);
}

static void subs_hs_event_cb(struct bufferevent *bev, short what, void *arg)
{
	subs_sock_t *s = arg;
	const char *why = dial_connected(bev, what, s->agent, s->set->role, s->key);
	if (why)
		subs_failed(s, why);
}

static void subs_hs_read_cb(struct bufferevent *bev, void *arg)
{
	subs_sock_t *s = arg;
	char why[160] = "";
	ws_callbacks_t cb = {.on_message = subs_message, .on_close = subs_close};
	int r = dial_upgrade(bev, s->key, &cb, s, &s->ws, why, sizeof(why));
	if (r <= 0) {
		if (r < 0 && why[0])
			subs_failed(s, why);
		return;
	}
	s->bev = NULL;
	s->set->open++;
	dial_subscribe(s->ws, s->channel, false, 0, 0);
}

static void subs_message(ws_conn_t *c, const char *data, size_t len, void *arg)
{
	subs_sock_t *s = arg;
	subs_set_t *set = s->set;
	if (s->ready) {
		set->cb->frame(s, data, len);
		return;
	}
	if (memmem(data, len, "\"type\":\"ack\"", 12)) {
		s->ready = true;
		set->in_flight--;
		set->ready++;
		set->t_progress = set->t_last_ready = loop_now();
		if (set->cb->ready)
			set->cb->ready(s, data, len);
		subs_ramp(set);
		return;
	}
	if (memmem(data, len, "\"type\":\"error\"", 14)) {
		char why[256];
		snprintf(why, sizeof(why), "subscription refused: %.200s", data);
		ws_conn_close(c, WS_CLOSE_NORMAL, NULL);
		subs_failed(s, why);
	}
}

/* The notifier closed a socket: before its ack it is a refusal, after it a drop (a cut). */
static void subs_close(ws_conn_t *c, int code, void *arg)
{
	subs_sock_t *s = arg;
	subs_set_t *set = s->set;
	(void)c;
	s->ws = NULL;
	set->open--;
	if (s->ready) {
		s->ready = false;
		s->done = true;
		if (!set->closing) {
			set->dropped++;
			if (set->dropped <= 3)
				fprintf(stderr, "bench: the notifier closed the WebSocket of agent %ld (code %d)\n", s->agent, code);
		}
	} else if (!s->done) {
		char why[96];
		snprintf(why, sizeof(why), "closed (code %d) before its subscription was acknowledged", code);
		subs_failed(s, why);
	}
	if (set->closing && set->open == 0)
		set->cb->all_closed(set);
}
