/*
 * web: the notifier's HTTP side (see web.h).
 */
#include "web.h"

#include "api.h"
#include "login.h"
#include "roster.h"
#include "event.h"
#include "guard.h"
#include "hub.h"
#include "log.h"
#include "metrics.h"
#include "notifier.h"
#include "ops.h"
#include "poll.h"
#include "proc.h"
#include "stream.h"
#include "typing.h"
#include "xalloc.h"

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

/* A console file, read once at start (and on SIGHUP) and served from memory. */
typedef struct {
	const char *path, *type;
	char *body;
	size_t len;
} web_file_t;

static web_file_t web_files[3];

static bool web_admit(http_request_t *req, const char *token_key);
static void web_upgrade(http_request_t *req);
static void web_on_ws_message(ws_conn_t *ws, const char *data, size_t len, void *arg);
static void web_on_ws_close(ws_conn_t *ws, int code, void *arg);
static void web_poll(http_request_t *req);
static void web_poll_answer_cb(evutil_socket_t fd, short what, void *arg);
static void web_op(http_request_t *req);
static void web_metrics(http_request_t *req);
static void web_expiry_cb(evutil_socket_t fd, short what, void *arg);

void web_handle(http_request_t *req, void *arg)
{
	(void)arg;
	const char *path = http_request_path(req);
	if (strcmp(path, "/v1/login") == 0) {
		login_handle(req); /* the one /v1/ path without a token: it hands them out */
		return;
	}
	if (strncmp(path, "/v1/", 4) == 0) {
		char token_key[64];
		token_claims_t claims;
		if (web_authorize(req, &claims, token_key, sizeof(token_key)))
			api_handle(req, &claims);
		return;
	}
	if (strcmp(path, "/ws") == 0) {
		web_upgrade(req);
		return;
	}
	if (strcmp(path, "/poll") == 0) {
		web_poll(req);
		return;
	}
	if (strcmp(path, "/op") == 0) {
		web_op(req);
		return;
	}
	if (strcmp(path, "/healthz") == 0) {
		bool broker = kq_brokers_up(N.consumer) && !kq_fatal(N.producer), db = api_db_up();
		http_respond_json(req, broker && db && !N.draining ? 200 : 503,
				  broker && db && !N.draining ? "{\"ok\":true}"
				  : !broker ? "{\"ok\":false,\"error\":\"broker unreachable\"}"
				  : !db	    ? "{\"ok\":false,\"error\":\"database unreachable\"}"
					    : "{\"ok\":false,\"error\":\"shutting down\"}");
		return;
	}
	if (strcmp(path, "/metrics") == 0 && N.cfg.metrics.on_public_ports) {
		web_metrics(req);
		return;
	}
	if (strcmp(path, "/") == 0)
		path = "/index.html";
	for (int i = 0; i < 3; i++)
		if (web_files[i].body && strcmp(path + 1, web_files[i].path) == 0) {
			http_response_add_header(req, "Cache-Control", "no-cache");
			http_response_add_header(req, "X-Content-Type-Options", "nosniff");
			http_response_add_header(req, "Content-Security-Policy",
						 "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:");
			http_respond(req, 200, web_files[i].type, web_files[i].body, web_files[i].len);
			return;
		}
	http_respond_error(req, 404, "no such path");
}

/* Console files are small: read once at start (and on SIGHUP), served from memory. */
void web_load_console(void)
{
	static const char *const names[3][2] = {{"index.html", "text/html; charset=utf-8"},
						{"app.js", "application/javascript; charset=utf-8"},
						{"style.css", "text/css; charset=utf-8"}};
	char dir[1024], path[1200];
	proc_find_path(N.cfg.notifier.console_dir, dir, sizeof(dir));
	for (int i = 0; i < 3; i++) {
		web_file_t *f = &web_files[i];
		free(f->body);
		f->body = NULL;
		f->path = names[i][0];
		f->type = names[i][1];
		snprintf(path, sizeof(path), "%s/%s", dir, f->path);
		FILE *fp = fopen(path, "rb");
		if (!fp) {
			log_warn("console file %s missing", path);
			continue;
		}
		fseek(fp, 0, SEEK_END);
		long n = ftell(fp);
		fseek(fp, 0, SEEK_SET);
		f->body = xmalloc((size_t)n + 1);
		f->len = fread(f->body, 1, (size_t)n, fp);
		fclose(fp);
	}
}

/* Answers a long-poll with what it collected; seq is the partition's last seq, so nothing of
 * its channel up to there is left out and nothing is given twice. */
void web_poll_answer(conn_t *c)
{
	size_t len;
	if (c->gone)
		return;
	evtimer_del(c->poll_timer);
	char *body = poll_render(&c->batch, c->channels[0], hub_epoch(N.hub), hub_last_seq(N.hub, c->partitions[0]), &len);
	http_response_add_header(c->req, "Cache-Control", "no-store");
	http_respond(c->req, 200, "application/json", body, len);
	free(body);
	c->req = NULL;
	c->gone = true;
	N.n_polls--;
	N.n_polls_answered++;
	conn_unlink(c);
	conn_unref(c);
}

/* Token (401) and Origin (403) checks shared by /ws, /poll, /op and /v1/. A browser's
 * WebSocket cannot set headers, hence ?token=; API clients send the header. */
bool web_token_check(const http_request_t *req, token_claims_t *claims, char *token_key, size_t keylen, char *why,
		     size_t whylen)
{
	char token[TOKEN_MAX_LEN];
	const char *auth = http_request_header(req, "Authorization");
	if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
		snprintf(token, sizeof(token), "%s", auth + 7 + strspn(auth + 7, " "));
	} else if (!http_request_query_param(req, "token", token, sizeof(token))) {
		snprintf(why, whylen, "missing token (Authorization: Bearer T, or ?token=T)");
		return false;
	}
	long now = (long)time(NULL);
	token_status_t st = token_verify(N.cfg.auth.token_secret, token, now, claims);
	if (st == TOKEN_BAD_SIGNATURE && N.cfg.auth.previous_token_secret[0])
		st = token_verify(N.cfg.auth.previous_token_secret, token, now, claims); /* during a rotation */
	if (st != TOKEN_OK) {
		snprintf(why, whylen, "token refused: %s", token_status_text(st));
		return false;
	}
	if (!web_token_current(claims, now, why, whylen))
		return false;
	const char *sig = strrchr(token, '.');
	snprintf(token_key, keylen, "%.63s", sig ? sig + 1 : token); /* HS256: 43 characters */
	return true;
}

bool web_authorize(http_request_t *req, token_claims_t *claims, char *token_key, size_t keylen)
{
	char why[160];
	if (!web_token_check(req, claims, token_key, keylen, why, sizeof(why))) {
		N.n_refused++;
		http_respond_error(req, 401, why);
		return false;
	}
	const char *origin = http_request_header(req, "Origin");
	if (origin && N.cfg.notifier.allowed_origins[0]) {
		bool ok = false;
		char list[1024];
		snprintf(list, sizeof(list), "%s", N.cfg.notifier.allowed_origins);
		for (char *save, *o = strtok_r(list, " ,", &save); o; o = strtok_r(NULL, " ,", &save))
			ok |= strcmp(o, origin) == 0;
		if (!ok) {
			N.n_refused++;
			http_respond_error(req, 403, "Origin not allowed");
			return false;
		}
	}
	return true;
}

/* Connection limits, global (503) and per token (429). Answers the request when false. */
bool web_token_current(const token_claims_t *claims, long now, char *why, size_t whylen)
{
	char kid[TOKEN_KID_LEN], previous[TOKEN_KID_LEN] = "";
	token_kid(N.cfg.auth.token_secret, kid);
	if (N.cfg.auth.previous_token_secret[0])
		token_kid(N.cfg.auth.previous_token_secret, previous);
	if (claims->exp <= now) {
		snprintf(why, whylen, "token expired: log in again");
		return false;
	}
	if (strcmp(claims->kid, kid) != 0 && strcmp(claims->kid, previous) != 0) {
		snprintf(why, whylen, "token signed with a secret no longer accepted: log in again");
		return false;
	}
	return roster_token_ok(claims, why, whylen);
}

void web_sweep_tokens(void)
{
	char why[160];
	long now = (long)time(NULL);
	for (conn_t *c = N.conns, *next; c; c = next) {
		next = c->next; /* closing may unlink c */
		if (c->ws && !c->gone && !c->cut && !web_token_current(&c->claims, now, why, sizeof(why))) {
			log_info("closing a console of agent %ld: %s", c->claims.agent, why);
			c->cut = true;
			ws_conn_close(c->ws, WEB_CLOSE_RELOGIN, why);
		}
	}
}

/* The token's exp came: the same check as any sweep, for this connection alone (a token
 * may have been renewed by nothing: it is simply over). */
static void web_expiry_cb(evutil_socket_t fd, short what, void *arg)
{
	conn_t *c = arg;
	char why[160];
	(void)fd, (void)what;
	if (c->ws && !c->gone && !c->cut && !web_token_current(&c->claims, (long)time(NULL), why, sizeof(why))) {
		log_info("closing a console of agent %ld: %s", c->claims.agent, why);
		c->cut = true;
		ws_conn_close(c->ws, WEB_CLOSE_RELOGIN, why);
	}
}

static bool web_admit(http_request_t *req, const char *token_key)
{
	if (N.draining) {
		http_respond_error(req, 503, "shutting down");
		return false;
	}
	if (N.n_ws + N.n_polls + N.n_http_ops >= N.cfg.notifier.max_connections) {
		N.n_limited++;
		http_response_add_header(req, "Retry-After", "5");
		http_respond_error(req, 503, "too many connections");
		return false;
	}
	if (guard_counts_get(N.per_token, token_key) >= N.cfg.notifier.max_connections_per_token) {
		char msg[96];
		N.n_limited++;
		snprintf(msg, sizeof(msg), "too many connections for this token (at most %d)",
			 N.cfg.notifier.max_connections_per_token);
		http_response_add_header(req, "Retry-After", "5");
		http_respond_error(req, 429, msg);
		return false;
	}
	return true;
}

static void web_upgrade(http_request_t *req)
{
	char response[512], token_key[64];
	const char *reason = NULL;
	token_claims_t claims;
	if (!web_authorize(req, &claims, token_key, sizeof(token_key)))
		return;
	if (!ws_handshake_response(http_request_header(req, "Upgrade"), http_request_header(req, "Connection"),
				   http_request_header(req, "Sec-WebSocket-Key"), http_request_header(req, "Sec-WebSocket-Version"),
				   response, sizeof(response), &reason)) {
		const char *v = http_request_header(req, "Sec-WebSocket-Version");
		if (v && strcmp(v, "13") != 0) {
			http_response_add_header(req, "Sec-WebSocket-Version", "13");
			http_respond_error(req, 426, reason);
		} else {
			http_respond_error(req, 400, reason ? reason : "not a WebSocket upgrade");
		}
		return;
	}
	if (!web_admit(req, token_key))
		return;
	struct bufferevent *bev = http_request_take_connection(req);
	if (!bev)
		return;
	if (N.cfg.notifier.socket_send_buffer > 0) {
		int sz = N.cfg.notifier.socket_send_buffer;
		setsockopt(bufferevent_getfd(bev), SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	}
	bufferevent_write(bev, response, strlen(response));
	conn_t *c = conn_new(&claims, token_key);
	/* the notifier judges slow consumers itself (conn_send, pongs included in the pending bytes); the
	 * codec's limit is the hard cap, so nothing the codec queues on its own (pongs) passes it either */
	ws_limits_t wl = {.max_message_bytes = 65536,
			  .max_send_buffer = (size_t)N.cfg.notifier.max_send_buffer * CONN_HARD_BUFFER_FACTOR,
			  .ping_interval_ms = N.cfg.notifier.ping_interval_s * 1000};
	ws_callbacks_t cb = {.on_message = web_on_ws_message, .on_close = web_on_ws_close};
	conn_watch_slow(c);
	c->ws = ws_conn_new(bev, false, &wl, &cb, c);
	if (!c->ws) {
		c->gone = true;
		conn_unlink(c);
		conn_unref(c);
		return;
	}
	/* closed when the token expires, not only refused at the next handshake */
	long left = c->claims.exp - (long)time(NULL);
	struct timeval tv = {left > 0 ? left : 0, 0};
	c->expiry = evtimer_new(N.base, web_expiry_cb, c);
	evtimer_add(c->expiry, &tv);
	N.n_ws++;
	stream_tab(c, true);
	log_debug("agent %ld (company %ld, %s) connected", claims.agent, claims.company, claims.role);
}

static void web_on_ws_message(ws_conn_t *ws, const char *data, size_t len, void *arg)
{
	(void)ws;
	ops_dispatch(arg, data, len);
}

static void web_on_ws_close(ws_conn_t *ws, int code, void *arg)
{
	conn_t *c = arg;
	(void)ws;
	log_debug("agent %ld disconnected (%d)", c->claims.agent, code);
	c->ws = NULL;
	c->gone = true;
	N.n_ws--;
	typing_drop_owner(N.typing, c, stream_typing_ended, "disconnected");
	stream_tab(c, false);
	conn_unlink(c);
	conn_unref(c);
}

/* GET /poll?token=T&channel=CH[&since=S[&epoch=E]][&timeout=s]: the events of CH after S, as
 * soon as there is one (or an empty list after the timeout), with the seq to pass next.
 * Without since: no events (the presence list for presence:C), just the seq to start from. */
static void web_poll(http_request_t *req)
{
	char token_key[64], channel[96], why[160], buf[32];
	token_claims_t claims;
	long long since = -2, epoch = -1, timeout = N.cfg.notifier.poll_timeout_s;
	if (strcmp(http_request_method(req), "GET") != 0) {
		http_respond_error(req, 405, "use GET");
		return;
	}
	if (!web_authorize(req, &claims, token_key, sizeof(token_key)))
		return;
	if (!http_request_query_param(req, "channel", channel, sizeof(channel))) {
		http_respond_error(req, 400, "missing channel (agent:A, conversation:ID, company:C or presence:C)");
		return;
	}
	long company = ops_channel_company(&claims, channel, why, sizeof(why));
	if (company < 0) {
		http_respond_error(req, 403, why);
		return;
	}
	if ((http_request_query_param(req, "since", buf, sizeof(buf)) && !poll_parse_ll(buf, -1, INT64_MAX, &since)) ||
	    (http_request_query_param(req, "epoch", buf, sizeof(buf)) && !poll_parse_ll(buf, 0, INT64_MAX, &epoch)) ||
	    (http_request_query_param(req, "timeout", buf, sizeof(buf)) &&
	     !poll_parse_ll(buf, 0, N.cfg.notifier.poll_timeout_s, &timeout))) {
		http_respond_error(req, 400, "since, epoch and timeout must be integers (timeout at most poll_timeout_s)");
		return;
	}
	if (!web_admit(req, token_key))
		return;
	conn_t *c = conn_new(&claims, token_key);
	c->req = req;
	c->poll_timer = evtimer_new(N.base, web_poll_answer_cb, c);
	c->partitions[0] = (int32_t)(company % N.partitions);
	c->channels[c->n_channels++] = xstrdup(channel);
	N.n_polls++;
	int64_t last = hub_last_seq(N.hub, c->partitions[0]);
	const char *reset = NULL;
	if (since == -2) {
		if (strncmp(channel, "presence:", 9) == 0)
			stream_send_presence_list(c, channel, company, last);
		web_poll_answer(c);
		return;
	}
	if (epoch >= 0 && epoch != hub_epoch(N.hub))
		reset = "epoch changed: the event stream was reset";
	else if (!hub_replay(N.hub, channel, c->partitions[0], since, c, conn_deliver, NULL))
		reset = "history no longer covers the requested seq";
	if (reset) {
		char frame[512], *data = evt_reset_data(reset);
		size_t n = hub_frame(frame, sizeof(frame), "reset", channel, last, hub_epoch(N.hub), data);
		poll_batch_add(&c->batch, frame, n);
		free(data);
	}
	if (c->batch.n || timeout == 0) {
		web_poll_answer(c);
		return;
	}
	hub_subscribe(N.hub, channel, c);
	struct timeval tv = {(time_t)timeout, 0};
	evtimer_add(c->poll_timer, &tv);
}

static void web_poll_answer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	web_poll_answer(arg);
}

/* POST /op?token=T with one op as the body ({"op":"reply"|"transfer"|"typing",...}): the
 * long-poll clients' way to act. Answered with the op's ack (200) or error (400) frame, a
 * reply or transfer once the broker acknowledged it, like over WebSocket. */
static void web_op(http_request_t *req)
{
	char token_key[64];
	token_claims_t claims;
	size_t len;
	if (strcmp(http_request_method(req), "POST") != 0) {
		http_respond_error(req, 405, "use POST");
		return;
	}
	if (!web_authorize(req, &claims, token_key, sizeof(token_key)) || !web_admit(req, token_key))
		return;
	const char *body = http_request_body(req, &len);
	conn_t *c = conn_new(&claims, token_key);
	c->req = req;
	c->op_request = true;
	c->refs++; /* it may be answered (and released) while the op still runs */
	N.n_http_ops++;
	ops_dispatch(c, body, len);
	conn_unref(c);
}

static void web_metrics(http_request_t *req)
{
	size_t len;
	ntf_metrics_refresh();
	char *text = metrics_render(&len);
	http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
	free(text);
}
