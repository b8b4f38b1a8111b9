/*
 * load: the open-loop schedule, the agent and watcher WebSockets, hint matching and the open-loop
 * report. The fan-out run is this run with S-1 more subscribers (subs) and fanout's counters in
 * place of the report; the webhooks themselves go through post.
 */
#include "load.h"

#include "dial.h"
#include "fanout.h"
#include "loop.h"
#include "post.h"
#include "report.h"
#include "sample.h"
#include "subs.h"
#include "xalloc.h"

#include <cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#define LOAD_TICK_US 1000        /* send timer: messages due within a tick go out together */
#define LOAD_CONNECT_TIMEOUT_S 15 /* every socket must be up (and subscribed) by then */
#define LOAD_GIVEUP_S 40          /* after the schedule ends, stop waiting for unsent/unanswered */
#define LOAD_STEADY_SKIP_S 5.0    /* hints per second are counted from this far into the measured window */
#define LOAD_GROUPED 0x80         /* hint_cls: the hint covers more than one message (the smart buffer) */

/* A hint's "source", as hint_cls numbers it: anything else is the last. */
static const char *const load_sources[] = {"ai", "cache", "rules", "fallback", "other"};
#define LOAD_N_SOURCES (int)(sizeof(load_sources) / sizeof(load_sources[0]))

/* Per-message state bits (one byte per message of the run, indexed by i). */
enum { BM_SENT = 1, BM_ACKED = 2, BM_HINTED = 4 };

typedef enum { BP_CONNECT, BP_SEND, BP_DRAIN, BP_DONE } load_phase_t;

/* One WebSocket to the notifier. */
typedef struct {
	struct bufferevent *bev; /* during the handshake; ws owns it afterwards */
	ws_conn_t *ws;           /* NULL before the handshake and once closed */
	long agent;
	bool watcher;            /* the supervisor socket on company:C that counts hints */
	bool ready;              /* its subscription was acknowledged */
	bool have_seq;           /* last_seq/epoch are known: a reconnect resumes from there */
	long long last_seq;      /* highest event seq received, to resume after a drop */
	long long epoch;         /* the notifier's event-stream epoch, from the first ack */
	char key[25];            /* Sec-WebSocket-Key sent, to check the answer */
	char channel[48];
} load_ws_t;

static struct {
	const cfg_t *cfg;
	opts_t o;
	struct event *tick, *progress, *connect_timer, *sigint;
	load_phase_t phase;
	bool interrupted;

	char prefix[48]; /* "BENCH<runid>-": message ids of this run */
	size_t prefix_len;

	/* Schedule: message i is due at t0 + i/rate; the first warm_n are warm-up. */
	double t0, t_measure, t_sched_end, t_last_send, t_last_ack, t_drain_end, t_end;
	uint64_t warm_n, total, next_send;
	uint8_t *mstate;
	bool measuring;
	int inflight;

	load_ws_t *ws;
	int n_ws, n_ws_ready, n_ws_open, ws_dropped, ws_resets;

	/* Counters over the measured messages. */
	uint64_t sent, acked, rejected, hints, hinted, duplicates, acked_unhinted;
	uint64_t by_status[600], by_error, by_timeout;
	double *ack_ms, *hint_ms;
	size_t n_ack_ms, n_hint_ms;
	uint8_t *hint_cls; /* per hint_ms sample: its hint's source (load_sources), + LOAD_GROUPED */
	/* every message (warm-up too) whose hint came in the steady part of the sending window */
	uint64_t hinted_steady;
	/* Counters over every message, for progress. */
	uint64_t all_sent, all_acked, all_rejected, all_hinted, agent_frames;

	sample_set_t procs;
	/* --fanout: the subscribers besides the watcher, and the watcher's frames of the run */
	bool fanout;
	subs_set_t subs;
	uint64_t watcher_frames;
	/* --ids / --events: per-message outcomes and the watcher's events, for test/chaos/check.py */
	FILE *ids_f, *events_f;
} B;

static bool load_setup(char *err, size_t errlen);
static void load_teardown(void);
static void load_maybe_start(void);
static void load_tick_cb(evutil_socket_t fd, short what, void *arg);
static void load_progress_cb(evutil_socket_t fd, short what, void *arg);
static void load_connect_timeout_cb(evutil_socket_t fd, short what, void *arg);
static void load_sigint_cb(evutil_socket_t fd, short what, void *arg);
static void load_finish(void);
static void load_pump(double now);
static void load_post_answer(uint64_t i, int status);
static void load_post_up(void);
static void load_post_idle(void);
static void load_ws_connect(load_ws_t *w);
static void load_ws_failed(load_ws_t *w, const char *why);
static void load_ws_reconnect_cb(evutil_socket_t fd, short what, void *arg);
static void load_ws_hs_read_cb(struct bufferevent *bev, void *arg);
static void load_ws_hs_event_cb(struct bufferevent *bev, short what, void *arg);
static void load_ws_message(ws_conn_t *c, const char *data, size_t len, void *arg);
static void load_ws_close(ws_conn_t *c, int code, void *arg);
static void load_hint_frame(const char *data, size_t len);
static void load_event_record(const char *data, size_t len);
static double load_wall(void);
static void load_hint_id(const char *id, double now, uint8_t cls, bool *measured);
static void load_sub_ready(subs_sock_t *s, const char *ack, size_t len);
static void load_sub_frame(subs_sock_t *s, const char *data, size_t len);
static void load_sub_failed(subs_sock_t *s, const char *why);
static void load_subs_closed(subs_set_t *set);
static void load_report(void);
static void load_fan_report(void);

static const post_callbacks_t load_post_cb = {
	.answer = load_post_answer,
	.up = load_post_up,
	.idle = load_post_idle,
};

/* The fan-out run needs every subscriber: one that cannot get in fails the run. */
static const subs_callbacks_t load_subs_cb = {
	.ready = load_sub_ready,
	.frame = load_sub_frame,
	.failed = load_sub_failed,
	.all_in = NULL,
	.all_closed = load_subs_closed,
};

int load_run(const cfg_t *cfg, const opts_t *opts)
{
	char err[512];
	memset(&B, 0, sizeof(B));
	B.cfg = cfg;
	B.o = *opts;
	if (!load_setup(err, sizeof(err))) {
		fprintf(stderr, "bench: %s\n", err);
		load_teardown();
		return 1;
	}
	if (B.o.fanout)
		fprintf(stderr, "bench: %d HTTP connections to %s, %d supervisor WebSockets on company:%ld of %s; %ld messages at %.0f msg/s\n",
			B.o.connections, cfg->ingress.listen, B.o.fanout, B.o.company, cfg->notifier.listen, B.o.messages, B.o.rate);
	else
		fprintf(stderr, "bench: %d HTTP connections to %s, %d agent WebSockets + 1 watcher on %s; %.0f msg/s for %gs (+%gs warm-up)\n",
			B.o.connections, cfg->ingress.listen, B.o.agents, cfg->notifier.listen, B.o.rate, B.o.seconds, B.o.warmup);
	event_base_dispatch(loop_base());
	if (loop_fatal()[0]) {
		fprintf(stderr, "bench: %s\n", loop_fatal());
		load_teardown();
		return 1;
	}
	sample_end(&B.procs, B.cfg->metrics.listen);
	if (B.o.fanout)
		load_fan_report();
	else
		load_report();
	load_teardown();
	return 0;
}

/* Everything before the loop: addresses, channels, corpus, process list, sockets, timers. */
static bool load_setup(char *err, size_t errlen)
{
	const cfg_t *cfg = B.cfg;
	struct sockaddr_storage ingress_sa;
	int ingress_len;
	if (!dial_addr(cfg->ingress.listen, &ingress_sa, &ingress_len) || !dial_init(cfg, B.o.company)) {
		snprintf(err, errlen, "cannot parse ingress.listen \"%s\" or notifier.listen \"%s\"", cfg->ingress.listen,
			 cfg->notifier.listen);
		return false;
	}
	if (!post_init(cfg, B.o.company, &ingress_sa, ingress_len, B.prefix, B.o.connections, B.o.messy, B.o.customers, &load_post_cb,
		       err, errlen))
		return false;
	if (!sample_init(&B.procs, cfg->metrics.listen, err, errlen))
		return false;
	if (B.o.ids_path && !(B.ids_f = fopen(B.o.ids_path, "w"))) {
		snprintf(err, errlen, "cannot write --ids %s: %s", B.o.ids_path, strerror(errno));
		return false;
	}
	if (B.o.events_path && !(B.events_f = fopen(B.o.events_path, "w"))) {
		snprintf(err, errlen, "cannot write --events %s: %s", B.o.events_path, strerror(errno));
		return false;
	}

	B.warm_n = (uint64_t)llround(B.o.warmup * B.o.rate);
	B.total = B.warm_n + (uint64_t)llround(B.o.seconds * B.o.rate);
	uint64_t measured = B.total - B.warm_n;
	B.mstate = xcalloc(B.total ? B.total : 1, 1);
	B.ack_ms = xmalloc((measured ? measured : 1) * sizeof(double));
	B.hint_ms = xmalloc((measured ? measured : 1) * sizeof(double));
	B.hint_cls = xmalloc(measured ? measured : 1);
	if (!B.mstate || !B.ack_ms || !B.hint_ms || !B.hint_cls) {
		snprintf(err, errlen, "out of memory for %llu messages", (unsigned long long)B.total);
		return false;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(B.prefix, sizeof(B.prefix), "BENCH%llx%llx-", (unsigned long long)ts.tv_sec,
		 (unsigned long long)((uint64_t)ts.tv_nsec ^ (uint64_t)getpid()) & 0xffffff);
	B.prefix_len = strlen(B.prefix);

	if (!loop_init()) {
		snprintf(err, errlen, "cannot create an event loop");
		return false;
	}
	B.n_ws = B.o.agents + 1;
	B.ws = xcalloc((size_t)B.n_ws, sizeof(*B.ws));
	post_connect_all();
	for (int i = 0; i < B.n_ws; i++) {
		load_ws_t *w = &B.ws[i];
		w->watcher = i == B.o.agents;
		w->agent = w->watcher ? 1 : i + 1;
		if (w->watcher)
			snprintf(w->channel, sizeof(w->channel), "company:%ld", B.o.company);
		else
			snprintf(w->channel, sizeof(w->channel), "agent:%ld", w->agent);
		load_ws_connect(w);
	}
	if (B.o.fanout) { /* the watcher is subscriber 1 (agent 1); agents 2..S are the others */
		B.fanout = true;
		if (!subs_init(&B.subs, B.o.fanout - 1, "supervisor", &load_subs_cb) || !fan_init(B.prefix, B.prefix_len)) {
			snprintf(err, errlen, "out of memory for %d subscribers", B.o.fanout);
			return false;
		}
		for (int i = 0; i < B.subs.n; i++) {
			B.subs.socks[i].agent = i + 2;
			snprintf(B.subs.socks[i].channel, sizeof(B.subs.socks[i].channel), "company:%ld", B.o.company);
		}
		B.subs.t_progress = loop_now();
		subs_ramp(&B.subs);
	}
	struct timeval tv = {LOAD_CONNECT_TIMEOUT_S + B.subs.n / SUBS_RAMP_WINDOW, 0}, sec = {1, 0};
	B.connect_timer = evtimer_new(loop_base(), load_connect_timeout_cb, NULL);
	evtimer_add(B.connect_timer, &tv);
	B.tick = event_new(loop_base(), -1, EV_PERSIST, load_tick_cb, NULL);
	B.progress = event_new(loop_base(), -1, EV_PERSIST, load_progress_cb, NULL);
	event_add(B.progress, &sec);
	B.sigint = evsignal_new(loop_base(), SIGINT, load_sigint_cb, NULL);
	event_add(B.sigint, NULL);
	if (loop_fatal()[0]) { /* a socket could not even be created: the loop would never start */
		snprintf(err, errlen, "%s", loop_fatal());
		return false;
	}
	return true;
}

/* Frees what the run holds. WebSockets get a close handshake first (bounded by ws's own timer). */
static void load_teardown(void)
{
	struct event *events[] = {B.tick, B.progress, B.connect_timer, B.sigint};
	bool looping = loop_base() != NULL;
	for (size_t i = 0; looping && i < 3; i++) /* not the signal: a Ctrl-C while closing is caught, not fatal */
		if (events[i])
			event_del(events[i]);
	for (int i = 0; looping && B.ws && i < B.n_ws; i++) {
		if (B.ws[i].ws)
			ws_conn_close(B.ws[i].ws, WS_CLOSE_NORMAL, "bench done");
		else if (B.ws[i].bev)
			bufferevent_free(B.ws[i].bev);
		B.ws[i].bev = NULL;
	}
	if (looping)
		subs_close_all(&B.subs);
	post_free();
	B.phase = BP_DONE;
	loop_wait_closes(B.n_ws_open + B.subs.open);
	for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++)
		loop_event_free(events[i]);
	if (B.n_ws_open == 0 && B.subs.open == 0)
		loop_free(); /* else a socket still references it; the process ends anyway */
	sample_free(&B.procs);
	if (B.n_ws_open == 0) /* else a closing socket still points into it */
		free(B.ws);
	if (B.ids_f && fclose(B.ids_f) != 0)
		fprintf(stderr, "bench: writing --ids %s: %s\n", B.o.ids_path, strerror(errno));
	if (B.events_f && fclose(B.events_f) != 0)
		fprintf(stderr, "bench: writing --events %s: %s\n", B.o.events_path, strerror(errno));
	B.ids_f = B.events_f = NULL;
	free(B.mstate);
	free(B.ack_ms);
	free(B.hint_ms);
	free(B.hint_cls);
	subs_free(&B.subs);
	fan_free();
}

/* Starts the clock once every socket is up and every subscription acknowledged, so connection
 * set-up is never part of the measured window. */
static void load_maybe_start(void)
{
	if (B.phase != BP_CONNECT || post_up() < B.o.connections || B.n_ws_ready < B.n_ws || B.subs.ready < B.subs.n)
		return;
	struct timeval tick = {0, LOAD_TICK_US};
	B.phase = BP_SEND;
	post_started();
	evtimer_del(B.connect_timer);
	B.t0 = loop_now();
	B.t_measure = B.t0 + (double)B.warm_n / B.o.rate;
	B.t_sched_end = B.t0 + (double)B.total / B.o.rate;
	if (B.fanout) { /* events of the run come after every subscription's seq */
		fan_ack_seq(B.ws[0].last_seq);
		fan_start();
	}
	event_add(B.tick, &tick);
	load_tick_cb(-1, 0, NULL);
}

static void load_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	double now = loop_now();
	if (B.phase == BP_SEND) {
		if (!B.measuring && now >= B.t_measure) {
			B.measuring = true;
			sample_start(&B.procs);
		}
		load_pump(now);
		if (B.next_send == B.total && B.inflight == 0) {
			B.phase = BP_DRAIN;
			B.t_drain_end = B.t_last_send + B.o.drain;
		} else if (now > B.t_sched_end + LOAD_GIVEUP_S) {
			fprintf(stderr, "bench: giving up on %llu unsent and %d unanswered messages\n",
				(unsigned long long)(B.total - B.next_send), B.inflight);
			B.phase = BP_DRAIN;
			B.t_drain_end = now;
		}
	}
	if (B.phase == BP_DRAIN && (B.acked_unhinted == 0 || now >= B.t_drain_end) &&
	    (!B.fanout || fan_settled(now, B.t_drain_end, B.acked, B.hints, B.acked_unhinted == 0, B.o.fanout)))
		load_finish();
}

static void load_progress_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	if (B.phase == BP_CONNECT) {
		fprintf(stderr, "bench: connecting: %d/%d HTTP, %d/%d WebSocket subscribed\n", post_up(), B.o.connections,
			B.n_ws_ready + B.subs.ready, B.n_ws + B.subs.n);
		return;
	}
	double now = loop_now(), due_f = (now - B.t0) * B.o.rate;
	uint64_t due = due_f < 0 ? 0 : (uint64_t)due_f + 1;
	if (due > B.total)
		due = B.total;
	char fan[96] = "";
	if (B.fanout)
		snprintf(fan, sizeof(fan), " deliveries=%llu cut=%d", (unsigned long long)fan_deliveries(),
			 B.subs.dropped + B.ws_dropped);
	fprintf(stderr, "bench: %5.1fs %-7s sent=%llu acked=%llu rejected=%llu hinted=%llu queued=%llu inflight=%d%s\n",
		now - B.t0, B.phase == BP_DRAIN ? "drain" : B.measuring ? "measure" : "warmup",
		(unsigned long long)B.all_sent, (unsigned long long)B.all_acked, (unsigned long long)B.all_rejected,
		(unsigned long long)B.all_hinted, (unsigned long long)(due > B.next_send ? due - B.next_send : 0), B.inflight,
		fan);
}

static void load_connect_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	loop_failf("timed out after %ds connecting: %d/%d HTTP connections to %s, %d/%d WebSockets subscribed on %s",
		   LOAD_CONNECT_TIMEOUT_S, post_up(), B.o.connections, B.cfg->ingress.listen, B.n_ws_ready, B.n_ws,
		   B.cfg->notifier.listen);
}

/* Ctrl-C: stop now and still report what was measured. */
static void load_sigint_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	if (B.phase == BP_CONNECT) {
		loop_failf("interrupted while connecting");
		return;
	}
	B.interrupted = true;
	load_finish();
}

static void load_finish(void)
{
	if (B.phase == BP_DONE)
		return;
	B.phase = BP_DONE;
	B.t_end = loop_now();
	if (B.events_f)
		fprintf(B.events_f, "end\t%.3f\n", load_wall());
	if (!B.measuring) {
		B.measuring = true;
		sample_start(&B.procs);
	}
	event_base_loopbreak(loop_base());
}

/* ---- webhooks ---- */

/* Hands every due message to a free connection, oldest first; the rest wait for one. */
static void load_pump(double now)
{
	if (B.phase != BP_SEND)
		return;
	double due_f = (now - B.t0) * B.o.rate;
	uint64_t due = due_f < 0 ? 0 : (uint64_t)due_f + 1;
	if (due > B.total)
		due = B.total;
	while (B.next_send < due && post_send(B.next_send)) {
		uint64_t i = B.next_send++;
		B.inflight++;
		B.mstate[i] |= BM_SENT;
		B.all_sent++;
		if (i >= B.warm_n)
			B.sent++;
		B.t_last_send = now;
	}
}

/* A webhook's outcome: an HTTP status, 0 for a broken connection, -1 for no answer in time. */
static void load_post_answer(uint64_t i, int status)
{
	bool measured = i >= B.warm_n;
	double now = loop_now();
	B.inflight--;
	if (B.ids_f)
		fprintf(B.ids_f, "%s%llu\t%d\t%d\n", B.prefix, (unsigned long long)i, status == 200, status);
	if (status == 200) {
		B.mstate[i] |= BM_ACKED;
		B.all_acked++;
		if (measured) {
			B.acked++;
			B.ack_ms[B.n_ack_ms++] = (now - (B.t0 + (double)i / B.o.rate)) * 1000.0;
			B.t_last_ack = now;
			if (!(B.mstate[i] & BM_HINTED))
				B.acked_unhinted++;
		}
		return;
	}
	B.all_rejected++;
	if (!measured)
		return;
	B.rejected++;
	if (status == 0)
		B.by_error++;
	else if (status < 0)
		B.by_timeout++;
	else
		B.by_status[status < 600 ? status : 599]++;
}

static void load_post_up(void)
{
	load_maybe_start();
}

static void load_post_idle(void)
{
	load_pump(loop_now());
}

/* ---- agent and watcher WebSockets ---- */

static void load_ws_connect(load_ws_t *w)
{
	const char *why = dial_ws(&w->bev, load_ws_hs_read_cb, load_ws_hs_event_cb, w);
	if (why)
		load_ws_failed(w, why);
}

/* A socket that could not be (re)opened: fatal before the start, retried afterwards. */
static void load_ws_failed(load_ws_t *w, const char *why)
{
	if (w->bev)
		bufferevent_free(w->bev);
	w->bev = NULL;
	if (B.phase == BP_CONNECT) {
		loop_failf("WebSocket %s on the notifier at %s: %s", w->channel, B.cfg->notifier.listen, why);
		return;
	}
	if (B.phase == BP_DONE)
		return;
	fprintf(stderr, "bench: WebSocket %s: %s; retrying\n", w->channel, why);
	event_base_once(loop_base(), -1, EV_TIMEOUT, load_ws_reconnect_cb, w, &(struct timeval){1, 0});
}

static void load_ws_reconnect_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	load_ws_t *w = arg;
	if (B.phase != BP_DONE && !w->bev && !w->ws)
		load_ws_connect(w);
}

static void load_ws_hs_event_cb(struct bufferevent *bev, short what, void *arg)
{
	load_ws_t *w = arg;
	const char *why = dial_connected(bev, what, w->agent, w->watcher ? "supervisor" : "agent", w->key);
	if (why)
		load_ws_failed(w, why);
}

static void load_ws_hs_read_cb(struct bufferevent *bev, void *arg)
{
	load_ws_t *w = arg;
	char why[160] = "";
	ws_callbacks_t cb = {.on_message = load_ws_message, .on_close = load_ws_close};
	int r = dial_upgrade(bev, w->key, &cb, w, &w->ws, why, sizeof(why));
	if (r <= 0) {
		if (r < 0 && why[0])
			load_ws_failed(w, why);
		return;
	}
	w->bev = NULL;
	B.n_ws_open++;
	/* After a drop, ask for exactly what was missed (the notifier's resume from its history). */
	dial_subscribe(w->ws, w->channel, w->have_seq, w->last_seq, w->epoch);
}

static void load_ws_message(ws_conn_t *c, const char *data, size_t len, void *arg)
{
	load_ws_t *w = arg;
	(void)c;
	if (!w->ready) {
		if (memmem(data, len, "\"type\":\"ack\"", 12)) {
			w->ready = true;
			if (!w->have_seq) { /* events after this seq are the ones this socket will see */
				w->last_seq = dial_frame_ll(data, len, "seq", -1);
				w->epoch = dial_frame_ll(data, len, "epoch", 0);
				w->have_seq = true;
			}
			if (B.phase == BP_CONNECT) {
				B.n_ws_ready++;
				load_maybe_start();
			}
			return;
		}
		if (memmem(data, len, "\"type\":\"error\"", 14)) {
			char why[256];
			snprintf(why, sizeof(why), "subscription refused: %.200s", data);
			if (B.phase == BP_CONNECT)
				loop_failf("WebSocket %s: %s", w->channel, why);
			else
				fprintf(stderr, "bench: WebSocket %s: %s\n", w->channel, why);
			return;
		}
	}
	long long seq = dial_frame_ll(data, len, "seq", -1);
	if (seq > w->last_seq)
		w->last_seq = seq;
	if (w->watcher && B.events_f)
		load_event_record(data, len);
	if (memmem(data, len, "\"type\":\"reset\"", 14)) {
		/* a console reloads here and goes on from the new stream: its epoch and seq */
		w->epoch = dial_frame_ll(data, len, "epoch", w->epoch);
		w->last_seq = seq;
		B.ws_resets++;
		fprintf(stderr, "bench: WebSocket %s could not resume (%.200s): its missed events are lost\n", w->channel, data);
	}
	if (w->watcher) {
		if (B.fanout)
			fan_frame(data, len, &B.watcher_frames);
		load_hint_frame(data, len);
	} else {
		B.agent_frames++;
	}
}

static void load_ws_close(ws_conn_t *c, int code, void *arg)
{
	load_ws_t *w = arg;
	(void)c;
	w->ws = NULL;
	w->ready = false;
	B.n_ws_open--;
	if (B.phase == BP_DONE) {
		if (B.n_ws_open == 0 && B.subs.open == 0)
			event_base_loopbreak(loop_base());
		return;
	}
	if (B.phase == BP_CONNECT) {
		loop_failf("the notifier closed the WebSocket of %s (code %d)", w->channel, code);
		return;
	}
	/* Measuring goes on: reconnect and resume, as a console would; hints that come late count late. */
	B.ws_dropped++;
	if (w->watcher && B.events_f)
		fprintf(B.events_f, "drop\t%.3f\t%d\n", load_wall(), code);
	fprintf(stderr, "bench: the notifier closed the WebSocket of %s (code %d); resuming after seq %lld\n", w->channel,
		code, w->last_seq);
	event_base_once(loop_base(), -1, EV_TIMEOUT, load_ws_reconnect_cb, w, &(struct timeval){0, 200000});
}

/* ---- hints ---- */

/* Seconds since the epoch, for --events lines the checker compares with PostgreSQL's times. */
static double load_wall(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --events: one line per message event's id, per id a hint covers, and per reset (its time and
 * frame); the watcher's drops ("drop", time, close code) and the end of the run ("end", time) are
 * written where they happen. */
static void load_event_record(const char *data, size_t len)
{
	bool msg = memmem(data, len, "\"type\":\"message\"", 16) != NULL, hint = !msg && memmem(data, len, "\"type\":\"hint\"", 13);
	if (memmem(data, len, "\"type\":\"reset\"", 14)) {
		fprintf(B.events_f, "reset\t%.3f\t%.*s\n", load_wall(), (int)(len > 400 ? 400 : len), data);
		return;
	}
	if (!msg && !hint)
		return;
	cJSON *root = cJSON_ParseWithLength(data, len);
	const cJSON *d = cJSON_GetObjectItem(root, "data"), *id = cJSON_GetObjectItem(d, "message_id"), *ids, *x;
	if (hint && cJSON_IsTrue(cJSON_GetObjectItem(d, "partial"))) {
		cJSON_Delete(root); /* a hint being written (ai.stream): the stored one follows */
		return;
	}
	if (hint && cJSON_IsArray(ids = cJSON_GetObjectItem(d, "message_ids")) && cJSON_GetArraySize(ids) > 0) {
		cJSON_ArrayForEach(x, ids)
			if (cJSON_IsString(x))
				fprintf(B.events_f, "hint\t%s\n", x->valuestring);
	} else if (cJSON_IsString(id) && !strpbrk(id->valuestring, "\t\n")) {
		fprintf(B.events_f, "%s\t%s\n", msg ? "message" : "hint", id->valuestring);
	}
	cJSON_Delete(root);
}

/* A frame on company:C; only stored hint events matter (not partial ones, ai.stream). Cheap test
 * first: message events are as frequent. */
static void load_hint_frame(const char *data, size_t len)
{
	if (!memmem(data, len, "\"type\":\"hint\"", 13))
		return;
	double now = loop_now();
	cJSON *root = cJSON_ParseWithLength(data, len);
	const cJSON *type = cJSON_GetObjectItem(root, "type"), *d = cJSON_GetObjectItem(root, "data");
	if (cJSON_IsString(type) && strcmp(type->valuestring, "hint") == 0 && cJSON_IsObject(d) &&
	    !cJSON_IsTrue(cJSON_GetObjectItem(d, "partial"))) {
		const cJSON *ids = cJSON_GetObjectItem(d, "message_ids"), *id, *source = cJSON_GetObjectItem(d, "source");
		uint8_t cls = LOAD_N_SOURCES - 1;
		for (int k = 0; cJSON_IsString(source) && k < LOAD_N_SOURCES - 1; k++)
			if (strcmp(source->valuestring, load_sources[k]) == 0)
				cls = (uint8_t)k;
		bool measured = false;
		if (cJSON_IsArray(ids) && cJSON_GetArraySize(ids) > 0) {
			if (cJSON_GetArraySize(ids) > 1)
				cls |= LOAD_GROUPED;
			cJSON_ArrayForEach(id, ids)
				if (cJSON_IsString(id))
					load_hint_id(id->valuestring, now, cls, &measured);
		} else if (cJSON_IsString(id = cJSON_GetObjectItem(d, "message_id"))) {
			load_hint_id(id->valuestring, now, cls, &measured);
		}
		if (measured)
			B.hints++;
	}
	cJSON_Delete(root);
}

/* Hints per second are counted from this far into the measured window: past the start's
 * transient, while messages are still sent. */
static double load_steady_skip(void)
{
	return B.o.seconds / 2 < LOAD_STEADY_SKIP_S ? B.o.seconds / 2 : LOAD_STEADY_SKIP_S;
}

/* One message id a hint covers: ids of other runs are ignored; a second hint for one is a duplicate. */
static void load_hint_id(const char *id, double now, uint8_t cls, bool *measured)
{
	char *end;
	if (strncmp(id, B.prefix, B.prefix_len) != 0 || !isdigit((unsigned char)id[B.prefix_len]))
		return;
	unsigned long long i = strtoull(id + B.prefix_len, &end, 10);
	if (*end || i >= B.total)
		return;
	bool is_measured = i >= B.warm_n;
	if (B.mstate[i] & BM_HINTED) {
		if (is_measured)
			B.duplicates++;
		return;
	}
	B.mstate[i] |= BM_HINTED;
	B.all_hinted++;
	if (now >= B.t_measure + load_steady_skip() && now <= B.t_sched_end)
		B.hinted_steady++;
	if (!is_measured)
		return;
	*measured = true;
	B.hinted++;
	B.hint_cls[B.n_hint_ms] = cls;
	B.hint_ms[B.n_hint_ms++] = (now - (B.t0 + (double)i / B.o.rate)) * 1000.0;
	if (B.mstate[i] & BM_ACKED)
		B.acked_unhinted--;
}

/* ---- fan-out subscribers ---- */

static void load_sub_ready(subs_sock_t *s, const char *ack, size_t len)
{
	(void)s;
	fan_ack_seq(dial_frame_ll(ack, len, "seq", -1));
	load_maybe_start();
}

static void load_sub_frame(subs_sock_t *s, const char *data, size_t len)
{
	fan_frame(data, len, &s->frames);
}

static void load_sub_failed(subs_sock_t *s, const char *why)
{
	loop_failf("WebSocket %s of agent %ld on the notifier at %s: %s", s->channel, s->agent, B.cfg->notifier.listen, why);
}

static void load_subs_closed(subs_set_t *set)
{
	(void)set;
	if (B.n_ws_open == 0)
		event_base_loopbreak(loop_base());
}

/* ---- reports ---- */

/* "hint_split":{"ai":{"n":..,"hint_ms":{..}},..,"alone":..,"grouped":..}: the hint latency of the
 * measured messages by their hint's source, and by whether the hint covered them alone or with
 * others of their conversation (the smart buffer). Before hint_ms is sorted. */
static void load_report_split(FILE *f)
{
	double *v = xmalloc((B.n_hint_ms ? B.n_hint_ms : 1) * sizeof(double));
	const char *sep = "";
	fprintf(f, "\"hint_split\":{");
	for (int k = 0; k < LOAD_N_SOURCES + 2; k++) {
		size_t n = 0;
		for (size_t j = 0; j < B.n_hint_ms; j++) {
			uint8_t cls = B.hint_cls[j];
			bool in = k < LOAD_N_SOURCES ? (cls & ~LOAD_GROUPED) == k : (k == LOAD_N_SOURCES) == !(cls & LOAD_GROUPED);
			if (in)
				v[n++] = B.hint_ms[j];
		}
		if (n == 0)
			continue;
		fprintf(f, "%s\"%s\":{\"n\":%zu,", sep, k < LOAD_N_SOURCES ? load_sources[k] : k == LOAD_N_SOURCES ? "alone" : "grouped", n);
		report_latency(f, "hint_ms", v, n);
		fputc('}', f);
		sep = ",";
	}
	fputc('}', f);
	free(v);
}

/* The one JSON line of the open-loop run. */
static void load_report(void)
{
	report_line_t line;
	FILE *f = report_begin(&line);
	double window = B.t_end - B.t_measure, span = B.t_last_ack - B.t_measure;
	if (!f)
		return;
	if (window <= 0)
		window = 1e-9;
	fprintf(f, "{\"rate\":%g,\"seconds\":%g,\"warmup\":%g,\"connections\":%d,\"agents\":%d,", B.o.rate, B.o.seconds,
		B.o.warmup, B.o.connections, B.o.agents);
	fprintf(f, "\"sent\":%llu,\"acked\":%llu,\"rejected\":%llu,\"rejected_by_status\":{", (unsigned long long)B.sent,
		(unsigned long long)B.acked, (unsigned long long)B.rejected);
	const char *sep = "";
	for (int s = 0; s < 600; s++)
		if (B.by_status[s]) {
			fprintf(f, "%s\"%d\":%llu", sep, s, (unsigned long long)B.by_status[s]);
			sep = ",";
		}
	if (B.by_error)
		fprintf(f, "%s\"connection\":%llu", sep, (unsigned long long)B.by_error), sep = ",";
	if (B.by_timeout)
		fprintf(f, "%s\"timeout\":%llu", sep, (unsigned long long)B.by_timeout);
	fprintf(f, "},\"unsent\":%llu,\"hints\":%llu,\"hinted\":%llu,\"missing\":%llu,\"duplicates\":%llu,",
		(unsigned long long)(B.total - B.warm_n - B.sent), (unsigned long long)B.hints, (unsigned long long)B.hinted,
		(unsigned long long)B.acked_unhinted, (unsigned long long)B.duplicates);
	report_latency(f, "ack_ms", B.ack_ms, B.n_ack_ms);
	fputc(',', f);
	load_report_split(f);
	fputc(',', f);
	report_latency(f, "hint_ms", B.hint_ms, B.n_hint_ms);
	double steady = B.t_sched_end - B.t_measure - load_steady_skip();
	fprintf(f, ",\"hinted_per_s\":%.1f", steady > 0 ? (double)B.hinted_steady / steady : 0.0);
	fprintf(f, ",\"achieved_rate\":%.1f,\"window_s\":%.2f,\"ws_dropped\":%d,\"ws_resets\":%d,\"interrupted\":%s,",
		B.acked && span > 0 ? (double)B.acked / span : 0.0, window, B.ws_dropped, B.ws_resets, B.interrupted ? "true" : "false");
	report_processes(f, &B.procs, window);
	fputc('}', f);
	report_end(&line);
}

static void load_fan_report(void)
{
	fan_totals_t t = {
		.o = &B.o,
		.acked = B.acked,
		.rejected = B.rejected,
		.hints = B.hints,
		.window = B.t_end - B.t_measure,
		.cut = B.subs.dropped + B.ws_dropped,
		.interrupted = B.interrupted,
		.watcher_frames = B.watcher_frames,
		.subs = &B.subs,
		.procs = &B.procs,
	};
	fan_report(&t);
}
