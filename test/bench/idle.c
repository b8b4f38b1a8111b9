/*
 * idle: the --idle run. Memory per connection is the notifier's growth from before the first
 * socket to the settled reading, over the sockets that got in; the settle time lets the
 * notifier's allocator and the kernel's accounting catch up before it is read.
 */
#include "idle.h"

#include "dial.h"
#include "loop.h"
#include "sample.h"
#include "subs.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#define IDLE_STALL_S 20 /* no socket up or refused for this long ends the ramp */
#define IDLE_SETTLE_S 5 /* from the last socket up to the memory reading */

typedef enum { FP_CONNECT, FP_SETTLE, FP_HOLD, FP_DONE } idle_phase_t;

static struct {
	const cfg_t *cfg;
	opts_t o;
	long fd_limit;          /* RLIMIT_NOFILE after raising it */
	subs_set_t subs;
	sample_set_t procs;
	idle_phase_t phase;
	struct event *timer;    /* settle, then hold */
	struct event *progress, *sigint;
	double t_dial0;         /* monotonic */
	pid_t ntf_pid;
	long ntf_fd_limit;
	double rss_before, rss_settled, rss_end;
	unsigned long long ticks0, ticks1;
	double t_hold0, t_hold1;
	uint64_t frames;
} I;

static void idle_teardown(void);
static void idle_connected(subs_set_t *set);
static void idle_frame(subs_sock_t *s, const char *data, size_t len);
static void idle_failed(subs_sock_t *s, const char *why);
static void idle_closed(subs_set_t *set);
static void idle_timer_cb(evutil_socket_t fd, short what, void *arg);
static void idle_progress_cb(evutil_socket_t fd, short what, void *arg);
static void idle_sigint_cb(evutil_socket_t fd, short what, void *arg);
static void idle_report(void);

/* A socket that cannot get in is counted, and the run goes on with the others. */
static const subs_callbacks_t idle_subs_cb = {
	.ready = NULL,
	.frame = idle_frame,
	.failed = idle_failed,
	.all_in = idle_connected,
	.all_closed = idle_closed,
};

int idle_run(const cfg_t *cfg, const opts_t *o, long fd_limit)
{
	char err[512];
	memset(&I, 0, sizeof(I));
	I.cfg = cfg;
	I.o = *o;
	I.fd_limit = fd_limit;
	if (!dial_init(cfg, o->company)) {
		fprintf(stderr, "bench: cannot parse notifier.listen \"%s\"\n", cfg->notifier.listen);
		return 1;
	}
	if (!sample_init(&I.procs, cfg->metrics.listen, err, sizeof(err))) {
		fprintf(stderr, "bench: %s\n", err);
		return 1;
	}
	const sample_proc_t *ntf = sample_find(&I.procs, "notifier");
	I.ntf_pid = ntf ? ntf->pid : 0;
	if (!I.ntf_pid) {
		fprintf(stderr, "bench: http://%s/healthz lists no notifier (supervisor.roles?)\n", cfg->metrics.listen);
		idle_teardown();
		return 1;
	}
	I.rss_before = sample_rss_mb(I.ntf_pid);
	I.ntf_fd_limit = sample_nofile(I.ntf_pid);
	if (I.ntf_fd_limit >= 0 && I.ntf_fd_limit < (long)I.o.idle + OPTS_SPARE_FDS)
		fprintf(stderr, "bench: the notifier (pid %d) may open only %ld files: not all %d connections will fit "
				"(raise the limit atende runs with: ulimit -n)\n",
			(int)I.ntf_pid, I.ntf_fd_limit, I.o.idle);
	if (!subs_init(&I.subs, I.o.idle, "agent", &idle_subs_cb) || !loop_init()) {
		fprintf(stderr, "bench: out of memory for %d connections\n", I.o.idle);
		idle_teardown();
		return 1;
	}
	for (int i = 0; i < I.subs.n; i++) {
		I.subs.socks[i].agent = i + 1;
		snprintf(I.subs.socks[i].channel, sizeof(I.subs.socks[i].channel), "agent:%ld", I.subs.socks[i].agent);
	}
	struct timeval sec = {1, 0};
	I.timer = evtimer_new(loop_base(), idle_timer_cb, NULL);
	I.progress = event_new(loop_base(), -1, EV_PERSIST, idle_progress_cb, NULL);
	event_add(I.progress, &sec);
	I.sigint = evsignal_new(loop_base(), SIGINT, idle_sigint_cb, NULL);
	event_add(I.sigint, NULL);
	fprintf(stderr, "bench: %d idle agent WebSockets to %s (%d handshakes at a time), held %gs; notifier pid %d at %.1f MB\n",
		I.subs.n, cfg->notifier.listen, SUBS_RAMP_WINDOW, I.o.hold, (int)I.ntf_pid, I.rss_before);
	I.t_dial0 = I.subs.t_progress = loop_now();
	subs_ramp(&I.subs);
	if (!loop_fatal()[0])
		event_base_dispatch(loop_base());
	if (loop_fatal()[0]) {
		fprintf(stderr, "bench: %s\n", loop_fatal());
		idle_teardown();
		return 1;
	}
	sample_end(&I.procs, cfg->metrics.listen); /* only for "restarted": the CPU of the hold is measured apart */
	idle_report();
	idle_teardown();
	return 0;
}

/* Frees what the run holds. The sockets get a close handshake first (bounded by ws's own timer). */
static void idle_teardown(void)
{
	if (loop_base()) {
		if (I.progress)
			event_del(I.progress);
		subs_close_all(&I.subs);
	}
	loop_wait_closes(I.subs.open);
	loop_event_free(I.progress);
	loop_event_free(I.sigint);
	loop_event_free(I.timer);
	if (I.subs.open == 0)
		loop_free(); /* else a socket still references it; the process ends anyway */
	sample_free(&I.procs);
	subs_free(&I.subs);
}

/* Every socket is up or refused: the memory is read once the notifier settles. */
static void idle_connected(subs_set_t *set)
{
	struct timeval tv = {IDLE_SETTLE_S, 0};
	if (I.phase != FP_CONNECT)
		return;
	I.phase = FP_SETTLE;
	fprintf(stderr, "bench: %d/%d WebSockets up in %.1fs (%d failed); reading the notifier's memory in %ds\n", set->ready,
		set->n, set->ready ? set->t_last_ready - I.t_dial0 : 0.0, set->failed, IDLE_SETTLE_S);
	evtimer_add(I.timer, &tv);
}

/* An idle console gets no frames; any that comes is counted, it costs the notifier. */
static void idle_frame(subs_sock_t *s, const char *data, size_t len)
{
	(void)s, (void)data, (void)len;
	I.frames++;
}

static void idle_failed(subs_sock_t *s, const char *why)
{
	if (s->set->failed <= 3)
		fprintf(stderr, "bench: WebSocket of agent %ld: %s\n", s->agent, why);
}

static void idle_closed(subs_set_t *set)
{
	(void)set;
	event_base_loopbreak(loop_base());
}

/* Settled: read the memory and start the hold. Held: read the CPU it took and stop. */
static void idle_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	if (I.phase == FP_SETTLE) {
		struct timeval tv = {(time_t)I.o.hold, (suseconds_t)((I.o.hold - floor(I.o.hold)) * 1e6)};
		I.rss_settled = sample_rss_mb(I.ntf_pid);
		sample_stat(I.ntf_pid, NULL, &I.ticks0);
		I.t_hold0 = loop_now();
		I.phase = FP_HOLD;
		fprintf(stderr, "bench: notifier at %.1f MB with %d connections; holding them %gs\n", I.rss_settled, I.subs.open,
			I.o.hold);
		evtimer_add(I.timer, &tv);
		return;
	}
	sample_stat(I.ntf_pid, NULL, &I.ticks1);
	I.t_hold1 = loop_now();
	I.rss_end = sample_rss_mb(I.ntf_pid);
	I.phase = FP_DONE;
	event_base_loopbreak(loop_base());
}

static void idle_progress_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	double now = loop_now();
	if (I.phase != FP_CONNECT) {
		fprintf(stderr, "bench: %s: %d open, %d dropped\n", I.phase == FP_SETTLE ? "settling" : "holding", I.subs.open,
			I.subs.dropped);
		return;
	}
	fprintf(stderr, "bench: %5.1fs connecting: %d/%d up, %d failed, %d in flight\n", now - I.t_dial0, I.subs.ready,
		I.subs.n, I.subs.failed, I.subs.in_flight);
	if (now - I.subs.t_progress < IDLE_STALL_S)
		return;
	/* Nothing moves (the notifier stopped accepting?): measure what is up. */
	fprintf(stderr, "bench: no WebSocket came up or was refused for %ds: going on with %d\n", IDLE_STALL_S, I.subs.ready);
	if (!I.subs.first_error[0])
		snprintf(I.subs.first_error, sizeof(I.subs.first_error), "handshakes stalled for %ds", IDLE_STALL_S);
	subs_give_up(&I.subs);
	idle_connected(&I.subs);
}

static void idle_sigint_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	loop_failf("interrupted");
}

/* The one JSON line of --idle. seconds_to_connect ends when the last socket got in (a stall's wait
 * is not counted); failed = refused, or could not be opened (either side's limit). */
static void idle_report(void)
{
	double hz = (double)sysconf(_SC_CLK_TCK), held = I.t_hold1 - I.t_hold0;
	const subs_set_t *s = &I.subs;
	double kb = s->ready ? (I.rss_settled - I.rss_before) * 1024.0 / s->ready : 0;
	const sample_proc_t *ntf = sample_find(&I.procs, "notifier");
	bool restarted = ntf && ntf->pid == I.ntf_pid && ntf->restarted;
	char error[sizeof(s->first_error)];
	snprintf(error, sizeof(error), "%s", s->first_error);
	for (char *p = error; *p; p++) /* a server's words, kept JSON-safe */
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
			*p = '\'';
	printf("{\"bench\":\"idle\",\"connections\":%d,\"established\":%d,\"failed\":%d,\"dropped\":%d,"
	       "\"notifier_rss_mb\":%.1f,\"notifier_rss_kb_per_connection\":%.2f,\"seconds_to_connect\":%.2f,"
	       "\"notifier_rss_mb_before\":%.1f,\"notifier_rss_mb_after_hold\":%.1f,\"hold_s\":%.1f,"
	       "\"notifier_cpu_pct_idle\":%.2f,\"frames\":%llu,\"fd_limit\":%ld,\"notifier_fd_limit\":%ld,"
	       "\"notifier_restarted\":%s",
	       s->n, s->ready, s->failed, s->dropped, I.rss_settled, kb, s->ready ? s->t_last_ready - I.t_dial0 : 0.0,
	       I.rss_before, I.rss_end, held, held > 0 ? 100.0 * (double)(I.ticks1 - I.ticks0) / hz / held : 0.0,
	       (unsigned long long)I.frames, I.fd_limit, I.ntf_fd_limit, restarted ? "true" : "false");
	if (error[0])
		printf(",\"first_error\":\"%s\"", error);
	printf("}\n");
	fflush(stdout);
}
