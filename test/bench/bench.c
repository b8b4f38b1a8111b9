/*
 * bench: open-loop load generator (`atende bench`). Message i is due at t0 + i/rate whatever the
 * system does; when every keep-alive connection is busy it waits its turn, and its latencies still
 * count from its due time. Hints are counted on one supervisor WebSocket on company:C, which sees
 * every hint of the company exactly once; the agent sockets are there to hold a realistic load.
 * A dropped socket reconnects and resumes from its last seq, as a console would.
 */
#include "bench.h"

#include "proc.h"
#include "token.h"
#include "ws.h"

#include <cJSON.h>
#include <ctype.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BENCH_POOL 5000                     /* distinct customers (conversations) */
#define BENCH_JID_BASE 5511900000000LL      /* customer k is 5511900000000 + k */
#define BENCH_MAX_TEXTS 20000               /* corpus lines kept */
#define BENCH_MAX_TOTAL 100000000ULL        /* messages per run: bounds the per-message state */
#define BENCH_TICK_US 1000                  /* send timer: messages due within a tick go out together */
#define BENCH_CONNECT_TIMEOUT_S 15          /* every socket must be up (and subscribed) by then */
#define BENCH_REQUEST_TIMEOUT_S 30          /* an unanswered webhook counts as "timeout" after this */
#define BENCH_GIVEUP_S 40                   /* after the schedule ends, stop waiting for unsent/unanswered */
#define BENCH_RECONNECT_MS 100
#define BENCH_HEAD_MAX 16384
#define BENCH_SPARE_FDS 64                  /* descriptors beyond the sockets: files, the loop, curl */
#define BENCH_RAMP_WINDOW 200               /* notifier runs: handshakes in flight at once (its accept backlog is 1024) */
#define BENCH_STALL_S 20                    /* --idle: no socket up or refused for this long ends the ramp */
#define BENCH_IDLE_SETTLE_S 5               /* --idle: from the last socket up to the memory reading */
#define BENCH_HIST_BUCKETS (1 << 20)        /* --fanout: latency histogram, 0.1 ms buckets (up to ~105 s) */
#define BENCH_FAN_QUIET_S 3                 /* --fanout: no frame of the run for this long ends the wait */
#define BENCH_FAN_EXTRA_S 30                /* --fanout: the most it waits for frames after the drain */
#define BENCH_FALLBACK_TEXT "\"Oi, minha internet caiu desde ontem e preciso trabalhar hoje\""

/* Per-message state bits (one byte per message of the run, indexed by i). */
enum { BM_SENT = 1, BM_ACKED = 2, BM_HINTED = 4 };

typedef enum { BP_CONNECT, BP_SEND, BP_DRAIN, BP_DONE } bench_phase_t;

/* One keep-alive connection to the ingress; at most one request in flight. */
typedef struct {
	struct bufferevent *bev; /* NULL while waiting to reconnect */
	bool connected;          /* TCP up: may carry a request */
	bool busy;               /* a request is in flight */
	bool idle_listed;        /* present in B.idle */
	bool close_after;        /* the response in progress said Connection: close */
	uint64_t msg;            /* index of the message in flight */
	int status;              /* of the response in progress */
	size_t head_len;         /* of the response in progress; 0 until its head is complete */
	size_t body_len;         /* its Content-Length */
} bench_http_t;

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
} bench_ws_t;

/* A pid and its CPU ticks, for children that come and go (postgres backends). */
typedef struct {
	pid_t pid;
	unsigned long long ticks;
} bench_ticks_t;

/* One process (or the sum of a process's children) whose cost is reported. */
typedef struct {
	char role[24];
	int index;
	pid_t pid;
	bool children;          /* sums every child of pid instead of pid itself */
	int restarts;           /* as /healthz said at the start */
	bool restarted;         /* pid or restart count changed during the run */
	bool ok;                /* the start sample could be read */
	unsigned long long t0;  /* ticks at the start (not for children) */
	bench_ticks_t *kids0;   /* children ticks at the start */
	int n_kids0;
	double cpu_s, rss_mb;   /* results */
	int count;              /* processes summed at the end */
} bench_proc_t;

static struct {
	const cfg_t *cfg;
	bench_opts_t o;
	struct event_base *base;
	struct event *tick, *progress, *connect_timer, *sigint;
	bench_phase_t phase;
	char fatal[512]; /* why the run could not happen: non-empty stops the loop */
	bool interrupted;

	struct sockaddr_storage ingress_sa, notifier_sa;
	int ingress_len, notifier_len;
	char prefix[48]; /* "BENCH<runid>-": message ids of this run */
	size_t prefix_len;
	uint64_t rng;

	/* Channels and texts. texts[d] holds JSON string literals of domain d, texts[CFG_MAX_DOMAINS] all. */
	const cfg_channel_t **chans;
	int n_chans;
	char **texts[CFG_MAX_DOMAINS + 1];
	int n_texts[CFG_MAX_DOMAINS + 1];
	time_t wall_now;
	char date_time[32];

	/* Schedule: message i is due at t0 + i/rate; the first warm_n are warm-up. */
	double t0, t_measure, t_sched_end, t_last_send, t_last_ack, t_drain_end, t_end;
	uint64_t warm_n, total, next_send;
	uint8_t *mstate;
	bool measuring;

	bench_http_t *http;
	bench_http_t **idle; /* stack of connected, not busy connections */
	int n_idle, n_http_up, inflight;
	bench_ws_t *ws;
	int n_ws, n_ws_ready, n_ws_open, ws_dropped, ws_resets;

	/* Counters over the measured messages. */
	uint64_t sent, acked, rejected, hints, hinted, duplicates, acked_unhinted;
	uint64_t by_status[600], by_error, by_timeout;
	double *ack_ms, *hint_ms;
	size_t n_ack_ms, n_hint_ms;
	/* Counters over every message, for progress. */
	uint64_t all_sent, all_acked, all_rejected, all_hinted, agent_frames;

	bench_proc_t *procs;
	int n_procs;
	pid_t pg_pid;
} B;

/* One WebSocket of the notifier runs (--idle, --fanout): dialled once, never resumed, so a cut
 * is seen as a cut. */
typedef struct {
	struct bufferevent *bev; /* during the handshake; ws owns it afterwards */
	ws_conn_t *ws;           /* NULL before the handshake and once closed */
	long agent;              /* the token's agent (role F.role, company --company) */
	bool ready;              /* its subscription was acknowledged */
	bool done;               /* refused or failed before it was ready: not counted again */
	uint64_t frames;         /* --fanout: frames of the run received */
	char key[25];            /* Sec-WebSocket-Key sent, to check the answer */
	char channel[48];
} bench_sub_t;

typedef enum { FP_CONNECT, FP_SETTLE, FP_HOLD, FP_DONE } bench_fphase_t;

/* State of the notifier runs. The fan-out run also uses B (webhooks, the watcher socket, which
 * is its first subscriber); the idle run uses B only for the loop, addresses and processes. */
static struct {
	bool fanout;
	long fd_limit;          /* RLIMIT_NOFILE after raising it */
	char role[16];
	bench_sub_t *subs;
	int n, next_dial;       /* subscribers, and the next one to dial */
	int in_flight;          /* dialled, not yet ready or refused */
	int ready, failed, open, dropped;
	bool ramping, closing;
	char first_error[200];
	double t_dial0, t_progress; /* monotonic */
	double t_last_ready;    /* when the last socket came up */
	bench_fphase_t phase;   /* --idle */
	struct event *timer;    /* --idle: settle, then hold */
	pid_t ntf_pid;
	long ntf_fd_limit;
	double rss_before, rss_settled, rss_end;
	unsigned long long ticks0, ticks1;
	double t_hold0, t_hold1;
	uint64_t idle_frames;
	/* --fanout */
	uint64_t deliveries, other_frames, watcher_frames;
	double t_send0_ms, t_first_ms, t_last_ms; /* wall clock, ms */
	uint32_t *hist;         /* publish->deliver of message events, 0.1 ms buckets */
	uint64_t n_lat;
	double lat_max;
	long long seq_base;     /* first seq the run's events can have */
	bool have_base;
	uint32_t *seq_count;    /* per event (seq - seq_base): subscribers that received it */
	double *seq_first, *seq_last;
	size_t seq_cap;
	uint64_t events_msg, events_hint; /* distinct events of the run seen */
	char ts_prefix[20];     /* "YYYY-MM-DDTHH:MM:SS" last parsed, and its Unix time */
	long long ts_sec;
} F;

static double bench_now(void);
static struct event_base *bench_base_new(void);
static void bench_failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool bench_addr(const char *listen, struct sockaddr_storage *ss, int *len);
static bool bench_setup(char *err, size_t errlen);
static void bench_load_corpus(void);
static void bench_teardown(void);
static void bench_maybe_start(void);
static void bench_tick_cb(evutil_socket_t fd, short what, void *arg);
static void bench_progress_cb(evutil_socket_t fd, short what, void *arg);
static void bench_connect_timeout_cb(evutil_socket_t fd, short what, void *arg);
static void bench_sigint_cb(evutil_socket_t fd, short what, void *arg);
static void bench_finish(void);
static void bench_pump(double now);
static void bench_send(bench_http_t *h, uint64_t i);
static void bench_answer(bench_http_t *h, int status);
static void bench_http_connect(bench_http_t *h);
static void bench_http_drop(bench_http_t *h);
static void bench_http_reconnect_cb(evutil_socket_t fd, short what, void *arg);
static void bench_http_read_cb(struct bufferevent *bev, void *arg);
static void bench_http_event_cb(struct bufferevent *bev, short what, void *arg);
static void bench_ws_connect(bench_ws_t *w);
static void bench_ws_failed(bench_ws_t *w, const char *why);
static void bench_ws_reconnect_cb(evutil_socket_t fd, short what, void *arg);
static void bench_ws_hs_read_cb(struct bufferevent *bev, void *arg);
static void bench_ws_hs_event_cb(struct bufferevent *bev, short what, void *arg);
static void bench_ws_message(ws_conn_t *c, const char *data, size_t len, void *arg);
static void bench_ws_close(ws_conn_t *c, int code, void *arg);
static void bench_hint_frame(const char *data, size_t len);
static void bench_hint_id(const char *id, double now, bool *measured);
static cJSON *bench_health(char *err, size_t errlen);
static void bench_procs_init(const cJSON *health);
static void bench_procs_start(void);
static void bench_procs_end(void);
static bool bench_stat(pid_t pid, pid_t *ppid, unsigned long long *ticks);
static double bench_rss_mb(pid_t pid);
static int bench_children(pid_t parent, bench_ticks_t **out);
static void bench_report(void);
static void bench_print_latency(FILE *f, const char *name, double *v, size_t n);
static long bench_proc_nofile(pid_t pid);
static double bench_wall_ms(void);
static bool bench_ws_request(struct bufferevent *bev, long agent, const char *role, char key[25]);
static const char *bench_ws_dial(struct bufferevent **bev, bufferevent_data_cb rd, bufferevent_event_cb ev, void *arg);
static const char *bench_ws_connected(struct bufferevent *bev, short what, long agent, const char *role, char key[25]);
static void bench_sub_ramp(void);
static void bench_sub_dial(bench_sub_t *s);
static void bench_sub_failed(bench_sub_t *s, const char *why);
static void bench_sub_hs_event_cb(struct bufferevent *bev, short what, void *arg);
static void bench_sub_hs_read_cb(struct bufferevent *bev, void *arg);
static void bench_sub_message(ws_conn_t *c, const char *data, size_t len, void *arg);
static void bench_sub_close(ws_conn_t *c, int code, void *arg);
static void bench_subs_close(void);
static int bench_idle_run(void);
static void bench_idle_connected(void);
static void bench_idle_timer_cb(evutil_socket_t fd, short what, void *arg);
static void bench_idle_progress_cb(evutil_socket_t fd, short what, void *arg);
static void bench_idle_sigint_cb(evutil_socket_t fd, short what, void *arg);
static void bench_idle_report(void);
static void bench_fan_ack_seq(long long seq);
static void bench_fan_frame(const char *data, size_t len, uint64_t *sub_frames);
static void bench_fan_seq(long long seq, double now_ms, bool is_msg);
static double bench_fan_created_ms(const char *data, size_t len);
static bool bench_fan_settled(double now);
static void bench_fan_print_hist(FILE *f, const char *name);
static const bench_proc_t *bench_proc_role(const char *role);
static void bench_fan_report(void);

/* ---- options ---- */

bool bench_parse_args(int argc, char **argv, bench_opts_t *o, char *err, size_t errlen)
{
	double connections = 64, agents = 100, company = 1, idle = 0, fanout = 0, messages = 2000;
	struct {
		const char *name;
		double *target;
		double min, max;
		bool integer;
	} opts[] = {
		{"--rate", &o->rate, 0.1, 1e6, false},
		{"--seconds", &o->seconds, 0.1, 86400, false},
		{"--warmup", &o->warmup, 0, 3600, false},
		{"--drain", &o->drain, 0, 3600, false},
		{"--connections", &connections, 1, 4096, true},
		{"--agents", &agents, 0, 100000, true},
		{"--company", &company, 1, 1e15, true},
		{"--idle", &idle, 1, 1000000, true},
		{"--hold", &o->hold, 0, 86400, false},
		{"--fanout", &fanout, 1, 1000000, true},
		{"--messages", &messages, 1, (double)BENCH_MAX_TOTAL, true},
	};
	*o = (bench_opts_t){.rate = 500, .seconds = 20, .warmup = 2, .drain = 10, .hold = 10};
	for (int i = 1; i < argc; i++) {
		size_t k;
		if (strcmp(argv[i], "-c") == 0) {
			i++;
			continue;
		}
		for (k = 0; k < sizeof(opts) / sizeof(opts[0]); k++)
			if (strcmp(argv[i], opts[k].name) == 0)
				break;
		if (k == sizeof(opts) / sizeof(opts[0])) {
			snprintf(err, errlen, "unknown option \"%s\" (atende bench --help)", argv[i]);
			return false;
		}
		char *end = NULL;
		double v = i + 1 < argc ? strtod(argv[i + 1], &end) : NAN;
		if (!end || end == argv[i + 1] || *end || !(v >= opts[k].min && v <= opts[k].max) ||
		    (opts[k].integer && v != floor(v))) {
			snprintf(err, errlen, "%s needs a%s number in [%g, %g]", opts[k].name, opts[k].integer ? "n integer" : "",
				 opts[k].min, opts[k].max);
			return false;
		}
		*opts[k].target = v;
		i++;
	}
	o->connections = (int)connections;
	o->agents = (int)agents;
	o->company = (long)company;
	o->idle = (int)idle;
	o->fanout = (int)fanout;
	o->messages = (long)messages;
	if (o->idle && o->fanout) {
		snprintf(err, errlen, "--idle and --fanout are separate runs");
		return false;
	}
	if (o->fanout) { /* exactly M messages from the first one, and only the subscribers' sockets */
		o->warmup = 0;
		o->seconds = (double)o->messages / o->rate;
		o->agents = 0;
	}
	if ((o->warmup + o->seconds) * o->rate > (double)BENCH_MAX_TOTAL) {
		snprintf(err, errlen, "(warmup + seconds) * rate is over %llu messages", BENCH_MAX_TOTAL);
		return false;
	}
	return true;
}

/* ---- the run ---- */

int bench_run(const cfg_t *cfg, const bench_opts_t *opts)
{
	char err[512];
	memset(&B, 0, sizeof(B));
	memset(&F, 0, sizeof(F));
	B.cfg = cfg;
	B.o = *opts;
	signal(SIGPIPE, SIG_IGN);
	long want = (opts->idle ? opts->idle : (long)opts->connections + opts->agents + opts->fanout + 1) + BENCH_SPARE_FDS;
	F.fd_limit = proc_raise_nofile(want);
	if (F.fd_limit >= 0 && F.fd_limit < want)
		fprintf(stderr, "bench: open files are limited to %ld (RLIMIT_NOFILE hard limit): the %ld sockets asked for "
				"cannot all be opened; raise it (ulimit -Hn, as root)\n",
			F.fd_limit, want - BENCH_SPARE_FDS);
	if (opts->idle)
		return bench_idle_run();
	if (!bench_setup(err, sizeof(err))) {
		fprintf(stderr, "bench: %s\n", err);
		bench_teardown();
		return 1;
	}
	if (B.o.fanout)
		fprintf(stderr, "bench: %d HTTP connections to %s, %d supervisor WebSockets on company:%ld of %s; %ld messages at %.0f msg/s\n",
			B.o.connections, cfg->ingress.listen, B.o.fanout, B.o.company, cfg->notifier.listen, B.o.messages, B.o.rate);
	else
		fprintf(stderr, "bench: %d HTTP connections to %s, %d agent WebSockets + 1 watcher on %s; %.0f msg/s for %gs (+%gs warm-up)\n",
			B.o.connections, cfg->ingress.listen, B.o.agents, cfg->notifier.listen, B.o.rate, B.o.seconds, B.o.warmup);
	event_base_dispatch(B.base);
	if (B.fatal[0]) {
		fprintf(stderr, "bench: %s\n", B.fatal);
		bench_teardown();
		return 1;
	}
	bench_procs_end();
	if (B.o.fanout)
		bench_fan_report();
	else
		bench_report();
	bench_teardown();
	return 0;
}

/* An event loop whose timers fire on time: epoll's millisecond timeout would add up to 1 ms of
 * sending lateness to every scheduled message, which the ack times (taken from the schedule) count. */
static struct event_base *bench_base_new(void)
{
	struct event_config *ec = event_config_new();
	if (!ec)
		return NULL;
	event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
	struct event_base *base = event_base_new_with_config(ec);
	event_config_free(ec);
	return base;
}

static double bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Records why the run cannot go on (the first reason wins) and stops the loop. */
static void bench_failf(const char *fmt, ...)
{
	if (B.fatal[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(B.fatal, sizeof(B.fatal), fmt, ap);
	va_end(ap);
	if (B.base)
		event_base_loopbreak(B.base);
}

/* "127.0.0.1:8080", "[::1]:8080" or ":8080" (all addresses, so we dial loopback). */
static bool bench_addr(const char *listen, struct sockaddr_storage *ss, int *len)
{
	char buf[300];
	snprintf(buf, sizeof(buf), "%s%s", listen[0] == ':' ? "127.0.0.1" : "", listen);
	*len = (int)sizeof(*ss);
	memset(ss, 0, sizeof(*ss));
	return evutil_parse_sockaddr_port(buf, (struct sockaddr *)ss, len) == 0;
}

/* Everything before the loop: addresses, channels, corpus, process list, sockets, timers. */
static bool bench_setup(char *err, size_t errlen)
{
	const cfg_t *cfg = B.cfg;
	if (!bench_addr(cfg->ingress.listen, &B.ingress_sa, &B.ingress_len) ||
	    !bench_addr(cfg->notifier.listen, &B.notifier_sa, &B.notifier_len)) {
		snprintf(err, errlen, "cannot parse ingress.listen \"%s\" or notifier.listen \"%s\"", cfg->ingress.listen,
			 cfg->notifier.listen);
		return false;
	}
	B.chans = calloc((size_t)cfg->n_channels + 1, sizeof(*B.chans));
	for (int i = 0; i < cfg->n_channels; i++) {
		const cfg_channel_t *c = &cfg->channels[i];
		/* Names and keys go into JSON and a header unescaped: skip any that would need escaping. */
		if (c->type == CHAN_EVOLUTION && c->company == B.o.company && c->name && c->key &&
		    !strpbrk(c->name, "\"\\\r\n") && !strpbrk(c->key, "\"\\\r\n") &&
		    strlen(c->name) + strlen(c->key) + (c->url ? strlen(c->url) : 0) < 1024)
			B.chans[B.n_chans++] = c;
	}
	if (B.n_chans == 0) {
		snprintf(err, errlen, "%s has no Evolution channel of company %ld to post to", cfg->path ? cfg->path : "the config",
			 B.o.company);
		return false;
	}
	bench_load_corpus();

	cJSON *health = bench_health(err, errlen);
	if (!health)
		return false;
	bench_procs_init(health);
	cJSON_Delete(health);

	B.warm_n = (uint64_t)llround(B.o.warmup * B.o.rate);
	B.total = B.warm_n + (uint64_t)llround(B.o.seconds * B.o.rate);
	uint64_t measured = B.total - B.warm_n;
	B.mstate = calloc(B.total ? B.total : 1, 1);
	B.ack_ms = malloc((measured ? measured : 1) * sizeof(double));
	B.hint_ms = malloc((measured ? measured : 1) * sizeof(double));
	if (!B.mstate || !B.ack_ms || !B.hint_ms) {
		snprintf(err, errlen, "out of memory for %llu messages", (unsigned long long)B.total);
		return false;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	B.rng = ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 40) ^ 0x9E3779B97F4A7C15ULL;
	snprintf(B.prefix, sizeof(B.prefix), "BENCH%llx%llx-", (unsigned long long)ts.tv_sec,
		 (unsigned long long)((uint64_t)ts.tv_nsec ^ (uint64_t)getpid()) & 0xffffff);
	B.prefix_len = strlen(B.prefix);

	B.base = bench_base_new();
	if (!B.base) {
		snprintf(err, errlen, "cannot create an event loop");
		return false;
	}
	B.http = calloc((size_t)B.o.connections, sizeof(*B.http));
	B.idle = calloc((size_t)B.o.connections, sizeof(*B.idle));
	B.n_ws = B.o.agents + 1;
	B.ws = calloc((size_t)B.n_ws, sizeof(*B.ws));
	for (int i = 0; i < B.o.connections; i++)
		bench_http_connect(&B.http[i]);
	for (int i = 0; i < B.n_ws; i++) {
		bench_ws_t *w = &B.ws[i];
		w->watcher = i == B.o.agents;
		w->agent = w->watcher ? 1 : i + 1;
		if (w->watcher)
			snprintf(w->channel, sizeof(w->channel), "company:%ld", B.o.company);
		else
			snprintf(w->channel, sizeof(w->channel), "agent:%ld", w->agent);
		bench_ws_connect(w);
	}
	if (B.o.fanout) { /* the watcher is subscriber 1 (agent 1); agents 2..S are the others */
		F.fanout = true;
		F.n = B.o.fanout - 1;
		F.subs = calloc((size_t)F.n + 1, sizeof(*F.subs));
		F.hist = calloc(BENCH_HIST_BUCKETS, sizeof(*F.hist));
		if (!F.subs || !F.hist) {
			snprintf(err, errlen, "out of memory for %d subscribers", B.o.fanout);
			return false;
		}
		for (int i = 0; i < F.n; i++) {
			F.subs[i].agent = i + 2;
			snprintf(F.subs[i].channel, sizeof(F.subs[i].channel), "company:%ld", B.o.company);
		}
		snprintf(F.role, sizeof(F.role), "supervisor");
		F.t_progress = bench_now();
		bench_sub_ramp();
	}
	struct timeval tv = {BENCH_CONNECT_TIMEOUT_S + F.n / BENCH_RAMP_WINDOW, 0}, sec = {1, 0};
	B.connect_timer = evtimer_new(B.base, bench_connect_timeout_cb, NULL);
	evtimer_add(B.connect_timer, &tv);
	B.tick = event_new(B.base, -1, EV_PERSIST, bench_tick_cb, NULL);
	B.progress = event_new(B.base, -1, EV_PERSIST, bench_progress_cb, NULL);
	event_add(B.progress, &sec);
	B.sigint = evsignal_new(B.base, SIGINT, bench_sigint_cb, NULL);
	event_add(B.sigint, NULL);
	if (B.fatal[0]) { /* a socket could not even be created: the loop would never start */
		snprintf(err, errlen, "%s", B.fatal);
		return false;
	}
	return true;
}

/* Loads test/fixtures/corpus.jsonl texts as ready-to-paste JSON string literals, by domain, so the
 * rules provider sees the intents it would see in production. A fixed text if it is missing. */
static void bench_load_corpus(void)
{
	char path[1024], *line = NULL;
	size_t cap = 0;
	int n = 0;
	FILE *f = fopen(proc_find_path("test/fixtures/corpus.jsonl", path, sizeof(path)), "r");
	for (int d = 0; d <= CFG_MAX_DOMAINS; d++)
		B.texts[d] = calloc(BENCH_MAX_TEXTS, sizeof(char *));
	while (f && n < BENCH_MAX_TEXTS && getline(&line, &cap, f) > 0) {
		cJSON *o = cJSON_Parse(line);
		const cJSON *t = cJSON_GetObjectItem(o, "text"), *d = cJSON_GetObjectItem(o, "domain");
		char *lit = cJSON_IsString(t) && t->valuestring[0] ? cJSON_PrintUnformatted(t) : NULL;
		if (lit && strlen(lit) < 1024) {
			int dom = cJSON_IsString(d) ? cfg_domain_index(d->valuestring) : -1;
			B.texts[CFG_MAX_DOMAINS][B.n_texts[CFG_MAX_DOMAINS]++] = lit;
			if (dom >= 0)
				B.texts[dom][B.n_texts[dom]++] = lit;
			n++;
		} else {
			free(lit);
		}
		cJSON_Delete(o);
	}
	free(line);
	if (f)
		fclose(f);
	if (n == 0) {
		fprintf(stderr, "bench: no corpus at %s, every message says the same thing\n", path);
		B.texts[CFG_MAX_DOMAINS][B.n_texts[CFG_MAX_DOMAINS]++] = strdup(BENCH_FALLBACK_TEXT);
	}
}

/* Frees what the run holds. WebSockets get a close handshake first (bounded by ws's own timer). */
static void bench_teardown(void)
{
	if (B.base) {
		if (B.tick)
			event_del(B.tick);
		if (B.progress)
			event_del(B.progress);
		if (B.connect_timer)
			event_del(B.connect_timer);
		for (int i = 0; B.ws && i < B.n_ws; i++) {
			if (B.ws[i].ws)
				ws_conn_close(B.ws[i].ws, WS_CLOSE_NORMAL, "bench done");
			else if (B.ws[i].bev)
				bufferevent_free(B.ws[i].bev);
			B.ws[i].bev = NULL;
		}
		bench_subs_close();
		for (int i = 0; B.http && i < B.o.connections; i++)
			if (B.http[i].bev)
				bufferevent_free(B.http[i].bev);
		B.phase = BP_DONE;
		if (B.n_ws_open > 0 || F.open > 0) {
			/* many sockets close at once: give the notifier time to answer every close frame */
			struct timeval tv = {3 + F.open / 5000, 0};
			event_base_loopexit(B.base, &tv);
			event_base_dispatch(B.base); /* bench_ws_close breaks out when the last one is gone */
		}
		if (B.tick)
			event_free(B.tick);
		if (B.progress)
			event_free(B.progress);
		if (B.connect_timer)
			event_free(B.connect_timer);
		if (B.sigint)
			event_free(B.sigint);
		if (F.timer)
			event_free(F.timer);
		if (B.n_ws_open == 0 && F.open == 0)
			event_base_free(B.base); /* else a socket still references it; the process ends anyway */
	}
	for (int i = 0; i < B.n_texts[CFG_MAX_DOMAINS]; i++)
		free(B.texts[CFG_MAX_DOMAINS][i]);
	for (int d = 0; d <= CFG_MAX_DOMAINS; d++)
		free(B.texts[d]);
	for (int i = 0; i < B.n_procs; i++)
		free(B.procs[i].kids0);
	free(B.procs);
	free(B.chans);
	free(B.http);
	free(B.idle);
	free(B.ws);
	free(B.mstate);
	free(B.ack_ms);
	free(B.hint_ms);
	if (B.n_ws_open == 0 && F.open == 0) /* else a closing socket still points into it */
		free(F.subs);
	free(F.hist);
	free(F.seq_count);
	free(F.seq_first);
	free(F.seq_last);
}

/* Starts the clock once every socket is up and every subscription acknowledged, so connection
 * set-up is never part of the measured window. */
static void bench_maybe_start(void)
{
	if (B.phase != BP_CONNECT || B.n_http_up < B.o.connections || B.n_ws_ready < B.n_ws || F.ready < F.n)
		return;
	struct timeval tick = {0, BENCH_TICK_US};
	B.phase = BP_SEND;
	evtimer_del(B.connect_timer);
	B.t0 = bench_now();
	B.t_measure = B.t0 + (double)B.warm_n / B.o.rate;
	B.t_sched_end = B.t0 + (double)B.total / B.o.rate;
	if (F.fanout) { /* events of the run come after every subscription's seq */
		bench_fan_ack_seq(B.ws[0].last_seq);
		F.t_send0_ms = bench_wall_ms();
	}
	event_add(B.tick, &tick);
	bench_tick_cb(-1, 0, NULL);
}

static void bench_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	double now = bench_now();
	time_t wall = time(NULL);
	if (wall != B.wall_now) {
		struct tm tm;
		B.wall_now = wall;
		gmtime_r(&wall, &tm);
		strftime(B.date_time, sizeof(B.date_time), "%Y-%m-%dT%H:%M:%S.000Z", &tm);
	}
	if (B.phase == BP_SEND) {
		if (!B.measuring && now >= B.t_measure) {
			B.measuring = true;
			bench_procs_start();
		}
		bench_pump(now);
		if (B.next_send == B.total && B.inflight == 0) {
			B.phase = BP_DRAIN;
			B.t_drain_end = B.t_last_send + B.o.drain;
		} else if (now > B.t_sched_end + BENCH_GIVEUP_S) {
			fprintf(stderr, "bench: giving up on %llu unsent and %d unanswered messages\n",
				(unsigned long long)(B.total - B.next_send), B.inflight);
			B.phase = BP_DRAIN;
			B.t_drain_end = now;
		}
	}
	if (B.phase == BP_DRAIN && (B.acked_unhinted == 0 || now >= B.t_drain_end) && (!F.fanout || bench_fan_settled(now)))
		bench_finish();
}

static void bench_progress_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	if (B.phase == BP_CONNECT) {
		fprintf(stderr, "bench: connecting: %d/%d HTTP, %d/%d WebSocket subscribed\n", B.n_http_up, B.o.connections,
			B.n_ws_ready + F.ready, B.n_ws + F.n);
		return;
	}
	double now = bench_now(), due_f = (now - B.t0) * B.o.rate;
	uint64_t due = due_f < 0 ? 0 : (uint64_t)due_f + 1;
	if (due > B.total)
		due = B.total;
	char fan[96] = "";
	if (F.fanout)
		snprintf(fan, sizeof(fan), " deliveries=%llu cut=%d", (unsigned long long)F.deliveries, F.dropped + B.ws_dropped);
	fprintf(stderr, "bench: %5.1fs %-7s sent=%llu acked=%llu rejected=%llu hinted=%llu queued=%llu inflight=%d%s\n",
		now - B.t0, B.phase == BP_DRAIN ? "drain" : B.measuring ? "measure" : "warmup",
		(unsigned long long)B.all_sent, (unsigned long long)B.all_acked, (unsigned long long)B.all_rejected,
		(unsigned long long)B.all_hinted, (unsigned long long)(due > B.next_send ? due - B.next_send : 0), B.inflight,
		fan);
}

static void bench_connect_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	bench_failf("timed out after %ds connecting: %d/%d HTTP connections to %s, %d/%d WebSockets subscribed on %s",
		    BENCH_CONNECT_TIMEOUT_S, B.n_http_up, B.o.connections, B.cfg->ingress.listen, B.n_ws_ready, B.n_ws,
		    B.cfg->notifier.listen);
}

/* Ctrl-C: stop now and still report what was measured. */
static void bench_sigint_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	if (B.phase == BP_CONNECT) {
		bench_failf("interrupted while connecting");
		return;
	}
	B.interrupted = true;
	bench_finish();
}

static void bench_finish(void)
{
	if (B.phase == BP_DONE)
		return;
	B.phase = BP_DONE;
	B.t_end = bench_now();
	if (!B.measuring) {
		B.measuring = true;
		bench_procs_start();
	}
	event_base_loopbreak(B.base);
}

/* ---- webhooks ---- */

/* Hands every due message to a free connection, oldest first; the rest wait for one. */
static void bench_pump(double now)
{
	if (B.phase != BP_SEND)
		return;
	double due_f = (now - B.t0) * B.o.rate;
	uint64_t due = due_f < 0 ? 0 : (uint64_t)due_f + 1;
	if (due > B.total)
		due = B.total;
	while (B.next_send < due && B.n_idle > 0) {
		bench_http_t *h = B.idle[--B.n_idle];
		h->idle_listed = false;
		bench_send(h, B.next_send++);
		B.t_last_send = now;
	}
}

static uint64_t bench_rand(void)
{
	B.rng ^= B.rng << 13;
	B.rng ^= B.rng >> 7;
	B.rng ^= B.rng << 17;
	return B.rng;
}

static void bench_send(bench_http_t *h, uint64_t i)
{
	char body[4096], head[2048];
	uint64_t r = bench_rand();
	unsigned k = (unsigned)(r % BENCH_POOL);
	/* A customer always writes to the same instance, as on a real phone line. */
	const cfg_channel_t *ch = B.chans[k % (unsigned)B.n_chans];
	int pool = ch->domain >= 0 && ch->domain < CFG_MAX_DOMAINS && B.n_texts[ch->domain] ? ch->domain : CFG_MAX_DOMAINS;
	const char *text = B.texts[pool][(r >> 24) % (uint64_t)B.n_texts[pool]];
	int blen = snprintf(body, sizeof(body),
			    "{\"event\":\"messages.upsert\",\"instance\":\"%s\",\"data\":{\"key\":{\"remoteJid\":\"%lld@s.whatsapp.net\","
			    "\"fromMe\":false,\"id\":\"%s%llu\"},\"pushName\":\"Cliente %u\",\"status\":\"DELIVERY_ACK\","
			    "\"message\":{\"conversation\":%s},\"messageType\":\"conversation\",\"messageTimestamp\":%lld,"
			    "\"source\":\"android\"},\"destination\":\"http://%s/webhooks/evolution\",\"date_time\":\"%s\","
			    "\"sender\":\"5511988887777@s.whatsapp.net\",\"server_url\":\"%s\",\"apikey\":\"%s\"}",
			    ch->name, BENCH_JID_BASE + (long long)k, B.prefix, (unsigned long long)i, k, text,
			    (long long)B.wall_now, B.cfg->ingress.listen, B.date_time,
			    ch->url && !strpbrk(ch->url, "\"\\") ? ch->url : "", ch->key);
	int hlen = snprintf(head, sizeof(head),
			    "POST /webhooks/evolution HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
			    "apikey: %s\r\nContent-Length: %d\r\n\r\n",
			    B.cfg->ingress.listen, ch->key, blen);
	struct evbuffer *out = bufferevent_get_output(h->bev);
	evbuffer_add(out, head, (size_t)hlen);
	evbuffer_add(out, body, (size_t)blen);
	h->busy = true;
	h->msg = i;
	h->head_len = 0;
	B.inflight++;
	B.mstate[i] |= BM_SENT;
	B.all_sent++;
	if (i >= B.warm_n)
		B.sent++;
}

/* A webhook's outcome: an HTTP status, 0 for a broken connection, -1 for no answer in time. */
static void bench_answer(bench_http_t *h, int status)
{
	uint64_t i = h->msg;
	bool measured = i >= B.warm_n;
	double now = bench_now();
	h->busy = false;
	B.inflight--;
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

static void bench_http_connect(bench_http_t *h)
{
	struct timeval tv = {BENCH_REQUEST_TIMEOUT_S, 0};
	h->bev = bufferevent_socket_new(B.base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!h->bev) {
		bench_failf("cannot create a socket: %s", strerror(errno));
		return;
	}
	bufferevent_setcb(h->bev, bench_http_read_cb, NULL, bench_http_event_cb, h);
	bufferevent_set_timeouts(h->bev, &tv, NULL);
	bufferevent_enable(h->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(h->bev, (struct sockaddr *)&B.ingress_sa, B.ingress_len) < 0) {
		bufferevent_free(h->bev);
		h->bev = NULL;
		if (B.phase == BP_CONNECT)
			bench_failf("cannot connect to the ingress at %s: %s", B.cfg->ingress.listen, strerror(errno));
		else
			event_base_once(B.base, -1, EV_TIMEOUT, bench_http_reconnect_cb, h,
					&(struct timeval){0, BENCH_RECONNECT_MS * 1000});
	}
}

/* Closes a connection (failing its request, if any) and dials again shortly, so a restarted
 * ingress gets its load back. */
static void bench_http_drop(bench_http_t *h)
{
	if (h->busy)
		bench_answer(h, 0);
	if (h->idle_listed) {
		for (int k = 0; k < B.n_idle; k++)
			if (B.idle[k] == h) {
				B.idle[k] = B.idle[--B.n_idle];
				break;
			}
		h->idle_listed = false;
	}
	if (h->connected)
		B.n_http_up--;
	h->connected = false;
	bufferevent_free(h->bev);
	h->bev = NULL;
	if (B.phase == BP_SEND || B.phase == BP_DRAIN)
		event_base_once(B.base, -1, EV_TIMEOUT, bench_http_reconnect_cb, h,
				&(struct timeval){0, BENCH_RECONNECT_MS * 1000});
}

static void bench_http_reconnect_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	bench_http_t *h = arg;
	if (B.phase != BP_DONE && !h->bev)
		bench_http_connect(h);
}

/* Makes h available for the next due message. */
static void bench_http_idle(bench_http_t *h)
{
	if (!h->idle_listed) {
		B.idle[B.n_idle++] = h;
		h->idle_listed = true;
	}
	bench_pump(bench_now());
}

static void bench_http_read_cb(struct bufferevent *bev, void *arg)
{
	bench_http_t *h = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len = evbuffer_get_length(in);
	if (!h->busy) { /* nothing asked: not ours to interpret */
		evbuffer_drain(in, len);
		return;
	}
	if (!h->head_len) {
		struct evbuffer_ptr p = evbuffer_search(in, "\r\n\r\n", 4, NULL);
		char head[BENCH_HEAD_MAX];
		if (p.pos < 0) {
			if (len > BENCH_HEAD_MAX)
				bench_http_drop(h);
			return;
		}
		size_t hl = (size_t)p.pos + 4, n = hl < sizeof(head) - 1 ? hl : sizeof(head) - 1;
		evbuffer_copyout(in, head, n);
		head[n] = 0;
		h->status = strncmp(head, "HTTP/1.", 7) == 0 ? atoi(head + 9) : 0;
		h->body_len = 0;
		h->close_after = strncmp(head, "HTTP/1.0", 8) == 0;
		for (char *l = strstr(head, "\r\n"); l && l[2]; l = strstr(l + 2, "\r\n")) {
			const char *v = l + 2;
			if (strncasecmp(v, "Content-Length:", 15) == 0)
				h->body_len = strtoul(v + 15, NULL, 10);
			else if (strncasecmp(v, "Connection:", 11) == 0)
				h->close_after = strncasecmp(v + 11 + strspn(v + 11, " \t"), "close", 5) == 0;
		}
		if (h->status <= 0) { /* not HTTP: the connection is unusable */
			bench_http_drop(h);
			return;
		}
		h->head_len = hl;
	}
	if (len < h->head_len + h->body_len)
		return;
	evbuffer_drain(in, h->head_len + h->body_len);
	h->head_len = 0;
	bench_answer(h, h->status);
	if (h->close_after)
		bench_http_drop(h);
	else
		bench_http_idle(h);
}

static void bench_http_event_cb(struct bufferevent *bev, short what, void *arg)
{
	bench_http_t *h = arg;
	if (what & BEV_EVENT_CONNECTED) {
		int one = 1;
		setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		h->connected = true;
		B.n_http_up++;
		bench_http_idle(h);
		bench_maybe_start();
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (!h->busy) { /* an idle keep-alive connection, nothing is late */
			bufferevent_enable(bev, EV_READ);
			return;
		}
		bench_answer(h, -1);
		bench_http_drop(h); /* a late answer would be taken for the next request's */
		return;
	}
	if (B.phase == BP_CONNECT) {
		bench_failf("cannot connect to the ingress at %s: %s", B.cfg->ingress.listen,
			    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		return;
	}
	bench_http_drop(h);
}

/* ---- WebSockets ---- */

/* Starts a TCP connection to the notifier into *bev, for a WebSocket handshake (callbacks rd and
 * ev with arg). NULL when under way; else why not (*bev may be set: the failure path frees it). */
static const char *bench_ws_dial(struct bufferevent **bev, bufferevent_data_cb rd, bufferevent_event_cb ev, void *arg)
{
	*bev = bufferevent_socket_new(B.base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!*bev)
		return strerror(errno);
	bufferevent_setcb(*bev, rd, NULL, ev, arg);
	bufferevent_enable(*bev, EV_READ | EV_WRITE);
	return bufferevent_socket_connect(*bev, (struct sockaddr *)&B.notifier_sa, B.notifier_len) < 0 ? strerror(errno)
													: NULL;
}

/* A dialled socket's event: once connected, sends the upgrade request of agent (role) and
 * returns NULL; otherwise returns why the connection failed. */
static const char *bench_ws_connected(struct bufferevent *bev, short what, long agent, const char *role, char key[25])
{
	if (!(what & BEV_EVENT_CONNECTED))
		return what & BEV_EVENT_EOF ? "connection closed during the handshake"
					    : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
	int one = 1;
	setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	bench_ws_request(bev, agent, role, key);
	return NULL;
}

static void bench_ws_connect(bench_ws_t *w)
{
	const char *why = bench_ws_dial(&w->bev, bench_ws_hs_read_cb, bench_ws_hs_event_cb, w);
	if (why)
		bench_ws_failed(w, why);
}

/* A socket that could not be (re)opened: fatal before the start, retried afterwards. */
static void bench_ws_failed(bench_ws_t *w, const char *why)
{
	if (w->bev)
		bufferevent_free(w->bev);
	w->bev = NULL;
	if (B.phase == BP_CONNECT) {
		bench_failf("WebSocket %s on the notifier at %s: %s", w->channel, B.cfg->notifier.listen, why);
		return;
	}
	if (B.phase == BP_DONE)
		return;
	fprintf(stderr, "bench: WebSocket %s: %s; retrying\n", w->channel, why);
	event_base_once(B.base, -1, EV_TIMEOUT, bench_ws_reconnect_cb, w, &(struct timeval){1, 0});
}

static void bench_ws_reconnect_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	bench_ws_t *w = arg;
	if (B.phase != BP_DONE && !w->bev && !w->ws)
		bench_ws_connect(w);
}

static void bench_ws_hs_event_cb(struct bufferevent *bev, short what, void *arg)
{
	bench_ws_t *w = arg;
	const char *why = bench_ws_connected(bev, what, w->agent, w->watcher ? "supervisor" : "agent", w->key);
	if (why)
		bench_ws_failed(w, why);
}

/* Writes the upgrade request, with a fresh token for agent (role, --company), and keeps its key to
 * check the answer. False (the run fails) when no token can be signed. */
static bool bench_ws_request(struct bufferevent *bev, long agent, const char *role, char key[25])
{
	token_claims_t claims = {.agent = agent, .company = B.o.company, .iat = (long)time(NULL)};
	claims.exp = claims.iat + 86400;
	snprintf(claims.role, sizeof(claims.role), "%s", role);
	char *tok = token_sign(B.cfg->auth.token_secret, &claims);
	if (!tok) {
		bench_failf("cannot sign an agent token (is auth.token_secret empty?)");
		return false;
	}
	char path[TOKEN_MAX_LEN + 32], req[TOKEN_MAX_LEN + 1024];
	snprintf(path, sizeof(path), "/ws?token=%s", tok);
	free(tok);
	ws_client_key(key);
	int n = ws_client_request(req, sizeof(req), B.cfg->notifier.listen, path, key);
	if (n < 0) {
		bench_failf("WebSocket handshake request does not fit");
		return false;
	}
	bufferevent_write(bev, req, (size_t)n);
	return true;
}

/* Reads the notifier's answer to a handshake sent with key: 1 when bev is now the
 * WebSocket *ws (bev handed over to it, callbacks cb with arg), 0 when more of the answer
 * is needed, -1 when it was refused (why says how). */
static int bench_ws_upgrade(struct bufferevent *bev, const char *key, const ws_callbacks_t *cb, void *arg,
			    ws_conn_t **ws, char *why, size_t whylen)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len = evbuffer_get_length(in);
	const char *buf = (const char *)evbuffer_pullup(in, -1);
	int r = ws_client_check_response(buf, len, key);
	if (r == 0 && len < BENCH_HEAD_MAX)
		return 0;
	if (r <= 0) {
		const char *eol = memchr(buf, '\r', len);
		snprintf(why, whylen, "handshake refused: %.*s", (int)(eol ? eol - buf : (len < 80 ? (int)len : 80)), buf);
		return -1;
	}
	evbuffer_drain(in, (size_t)r);
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	ws_limits_t lim = {.max_message_bytes = 1 << 20, .max_send_buffer = 0, .ping_interval_ms = 0};
	*ws = ws_conn_new(bev, true, &lim, cb, arg);
	if (!*ws) {
		bench_failf("out of memory");
		return -1;
	}
	return 1;
}

static void bench_ws_hs_read_cb(struct bufferevent *bev, void *arg)
{
	bench_ws_t *w = arg;
	char why[160] = "";
	ws_callbacks_t cb = {.on_message = bench_ws_message, .on_close = bench_ws_close};
	int r = bench_ws_upgrade(bev, w->key, &cb, w, &w->ws, why, sizeof(why));
	if (r <= 0) {
		if (r < 0 && why[0])
			bench_ws_failed(w, why);
		return;
	}
	w->bev = NULL;
	B.n_ws_open++;
	/* After a drop, ask for exactly what was missed (the notifier's resume from its history). */
	char frame[256];
	int n = w->have_seq ? snprintf(frame, sizeof(frame), "{\"op\":\"subscribe\",\"channel\":\"%s\",\"since\":%lld,\"epoch\":%lld}",
				       w->channel, w->last_seq, w->epoch)
			    : snprintf(frame, sizeof(frame), "{\"op\":\"subscribe\",\"channel\":\"%s\"}", w->channel);
	if (!ws_conn_send_text(w->ws, frame, (size_t)n))
		ws_conn_close(w->ws, WS_CLOSE_INTERNAL, NULL);
}

/* The number after "key": in a frame, or def. */
static long long bench_json_ll(const char *data, size_t len, const char *key, long long def)
{
	char pat[32];
	int n = snprintf(pat, sizeof(pat), "\"%s\":", key);
	const char *p = memmem(data, len, pat, (size_t)n);
	return p ? strtoll(p + n, NULL, 10) : def;
}

static void bench_ws_message(ws_conn_t *c, const char *data, size_t len, void *arg)
{
	bench_ws_t *w = arg;
	(void)c;
	if (!w->ready) {
		if (memmem(data, len, "\"type\":\"ack\"", 12)) {
			w->ready = true;
			if (!w->have_seq) { /* events after this seq are the ones this socket will see */
				w->last_seq = bench_json_ll(data, len, "seq", -1);
				w->epoch = bench_json_ll(data, len, "epoch", 0);
				w->have_seq = true;
			}
			if (B.phase == BP_CONNECT) {
				B.n_ws_ready++;
				bench_maybe_start();
			}
			return;
		}
		if (memmem(data, len, "\"type\":\"error\"", 14)) {
			char why[256];
			snprintf(why, sizeof(why), "subscription refused: %.200s", data);
			if (B.phase == BP_CONNECT)
				bench_failf("WebSocket %s: %s", w->channel, why);
			else
				fprintf(stderr, "bench: WebSocket %s: %s\n", w->channel, why);
			return;
		}
	}
	long long seq = bench_json_ll(data, len, "seq", -1);
	if (seq > w->last_seq)
		w->last_seq = seq;
	if (memmem(data, len, "\"type\":\"reset\"", 14)) {
		B.ws_resets++;
		fprintf(stderr, "bench: WebSocket %s could not resume (%.200s): its missed events are lost\n", w->channel, data);
	}
	if (w->watcher) {
		if (F.fanout)
			bench_fan_frame(data, len, &F.watcher_frames);
		bench_hint_frame(data, len);
	} else {
		B.agent_frames++;
	}
}

static void bench_ws_close(ws_conn_t *c, int code, void *arg)
{
	bench_ws_t *w = arg;
	(void)c;
	w->ws = NULL;
	w->ready = false;
	B.n_ws_open--;
	if (B.phase == BP_DONE) {
		if (B.n_ws_open == 0 && F.open == 0)
			event_base_loopbreak(B.base);
		return;
	}
	if (B.phase == BP_CONNECT) {
		bench_failf("the notifier closed the WebSocket of %s (code %d)", w->channel, code);
		return;
	}
	/* Measuring goes on: reconnect and resume, as a console would; hints that come late count late. */
	B.ws_dropped++;
	fprintf(stderr, "bench: the notifier closed the WebSocket of %s (code %d); resuming after seq %lld\n", w->channel,
		code, w->last_seq);
	event_base_once(B.base, -1, EV_TIMEOUT, bench_ws_reconnect_cb, w, &(struct timeval){0, 200000});
}

/* ---- hints ---- */

/* A frame on company:C; only hint events matter. Cheap test first: message events are as frequent. */
static void bench_hint_frame(const char *data, size_t len)
{
	if (!memmem(data, len, "\"type\":\"hint\"", 13))
		return;
	double now = bench_now();
	cJSON *root = cJSON_ParseWithLength(data, len);
	const cJSON *type = cJSON_GetObjectItem(root, "type"), *d = cJSON_GetObjectItem(root, "data");
	if (cJSON_IsString(type) && strcmp(type->valuestring, "hint") == 0 && cJSON_IsObject(d)) {
		const cJSON *ids = cJSON_GetObjectItem(d, "message_ids"), *id;
		bool measured = false;
		if (cJSON_IsArray(ids) && cJSON_GetArraySize(ids) > 0) {
			cJSON_ArrayForEach(id, ids)
				if (cJSON_IsString(id))
					bench_hint_id(id->valuestring, now, &measured);
		} else if (cJSON_IsString(id = cJSON_GetObjectItem(d, "message_id"))) {
			bench_hint_id(id->valuestring, now, &measured);
		}
		if (measured)
			B.hints++;
	}
	cJSON_Delete(root);
}

/* One message id a hint covers: ids of other runs are ignored; a second hint for one is a duplicate. */
static void bench_hint_id(const char *id, double now, bool *measured)
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
	if (!is_measured)
		return;
	*measured = true;
	B.hinted++;
	B.hint_ms[B.n_hint_ms++] = (now - (B.t0 + (double)i / B.o.rate)) * 1000.0;
	if (B.mstate[i] & BM_ACKED)
		B.acked_unhinted--;
}

/* ---- notifier runs: subscriber sockets ---- */

/* Dials the next subscribers, at most BENCH_RAMP_WINDOW handshakes at a time, so the notifier's
 * accept queue never overflows (a SYN dropped there costs a second of retransmission). */
static void bench_sub_ramp(void)
{
	if (F.ramping)
		return; /* a dial that failed at once lands back here: the loop below goes on */
	F.ramping = true;
	while (F.in_flight < BENCH_RAMP_WINDOW && F.next_dial < F.n && !B.fatal[0] && !F.closing)
		bench_sub_dial(&F.subs[F.next_dial++]);
	F.ramping = false;
	if (!F.fanout && F.phase == FP_CONNECT && F.ready + F.failed == F.n)
		bench_idle_connected();
}

static void bench_sub_dial(bench_sub_t *s)
{
	F.in_flight++;
	const char *why = bench_ws_dial(&s->bev, bench_sub_hs_read_cb, bench_sub_hs_event_cb, s);
	if (why)
		bench_sub_failed(s, why);
}

/* A subscriber refused or failed before it was ready. The fan-out run needs every one; the idle
 * run counts it and goes on (its report says how many got in). */
static void bench_sub_failed(bench_sub_t *s, const char *why)
{
	if (s->bev)
		bufferevent_free(s->bev);
	s->bev = NULL;
	if (s->done || s->ready)
		return;
	s->done = true;
	F.in_flight--;
	F.failed++;
	F.t_progress = bench_now();
	if (!F.first_error[0])
		snprintf(F.first_error, sizeof(F.first_error), "agent %ld: %s", s->agent, why);
	if (F.fanout) {
		bench_failf("WebSocket %s of agent %ld on the notifier at %s: %s", s->channel, s->agent, B.cfg->notifier.listen,
			    why);
		return;
	}
	if (F.failed <= 3)
		fprintf(stderr, "bench: WebSocket of agent %ld: %s\n", s->agent, why);
	bench_sub_ramp();
}

static void bench_sub_hs_event_cb(struct bufferevent *bev, short what, void *arg)
{
	bench_sub_t *s = arg;
	const char *why = bench_ws_connected(bev, what, s->agent, F.role, s->key);
	if (why)
		bench_sub_failed(s, why);
}

static void bench_sub_hs_read_cb(struct bufferevent *bev, void *arg)
{
	bench_sub_t *s = arg;
	char why[160] = "";
	ws_callbacks_t cb = {.on_message = bench_sub_message, .on_close = bench_sub_close};
	int r = bench_ws_upgrade(bev, s->key, &cb, s, &s->ws, why, sizeof(why));
	if (r <= 0) {
		if (r < 0 && why[0])
			bench_sub_failed(s, why);
		return;
	}
	s->bev = NULL;
	F.open++;
	char frame[128];
	int n = snprintf(frame, sizeof(frame), "{\"op\":\"subscribe\",\"channel\":\"%s\"}", s->channel);
	if (!ws_conn_send_text(s->ws, frame, (size_t)n))
		ws_conn_close(s->ws, WS_CLOSE_INTERNAL, NULL);
}

static void bench_sub_message(ws_conn_t *c, const char *data, size_t len, void *arg)
{
	bench_sub_t *s = arg;
	if (s->ready) {
		if (F.fanout)
			bench_fan_frame(data, len, &s->frames);
		else
			F.idle_frames++;
		return;
	}
	if (memmem(data, len, "\"type\":\"ack\"", 12)) {
		s->ready = true;
		F.in_flight--;
		F.ready++;
		F.t_progress = F.t_last_ready = bench_now();
		if (F.fanout) {
			bench_fan_ack_seq(bench_json_ll(data, len, "seq", -1));
			bench_maybe_start();
		}
		bench_sub_ramp();
		return;
	}
	if (memmem(data, len, "\"type\":\"error\"", 14)) {
		char why[256];
		snprintf(why, sizeof(why), "subscription refused: %.200s", data);
		ws_conn_close(c, WS_CLOSE_NORMAL, NULL);
		bench_sub_failed(s, why);
	}
}

/* The notifier closed a socket: before its ack it is a refusal, after it a drop (a cut). */
static void bench_sub_close(ws_conn_t *c, int code, void *arg)
{
	bench_sub_t *s = arg;
	(void)c;
	s->ws = NULL;
	F.open--;
	if (s->ready) {
		s->ready = false;
		s->done = true;
		if (!F.closing) {
			F.dropped++;
			if (F.dropped <= 3)
				fprintf(stderr, "bench: the notifier closed the WebSocket of agent %ld (code %d)\n", s->agent, code);
		}
	} else if (!s->done) {
		char why[96];
		snprintf(why, sizeof(why), "closed (code %d) before its subscription was acknowledged", code);
		bench_sub_failed(s, why);
	}
	if (F.closing && F.open == 0 && B.n_ws_open == 0)
		event_base_loopbreak(B.base);
}

/* Starts the close handshake of every subscriber (bench_teardown waits for them, bounded). */
static void bench_subs_close(void)
{
	F.closing = true;
	for (int i = 0; F.subs && i < F.n; i++) {
		bench_sub_t *s = &F.subs[i];
		if (s->ws) {
			ws_conn_close(s->ws, WS_CLOSE_NORMAL, "bench done");
		} else if (s->bev) {
			bufferevent_free(s->bev);
			s->bev = NULL;
		}
	}
}

/* ---- notifier run: idle connections ---- */

/* --idle N: agents 1..N, each on its own agent:A, dialled through the window. Once every one is up
 * (or refused), BENCH_IDLE_SETTLE_S later the notifier's VmRSS is read; the sockets are then held
 * --hold seconds and any the notifier closes meanwhile is a drop. */
static int bench_idle_run(void)
{
	char err[512];
	const cfg_t *cfg = B.cfg;
	if (!bench_addr(cfg->notifier.listen, &B.notifier_sa, &B.notifier_len)) {
		fprintf(stderr, "bench: cannot parse notifier.listen \"%s\"\n", cfg->notifier.listen);
		return 1;
	}
	cJSON *health = bench_health(err, sizeof(err));
	if (!health) {
		fprintf(stderr, "bench: %s\n", err);
		return 1;
	}
	bench_procs_init(health);
	cJSON_Delete(health);
	for (int i = 0; i < B.n_procs && !F.ntf_pid; i++)
		if (strcmp(B.procs[i].role, "notifier") == 0)
			F.ntf_pid = B.procs[i].pid;
	if (!F.ntf_pid) {
		fprintf(stderr, "bench: http://%s/healthz lists no notifier (supervisor.roles?)\n", cfg->metrics.listen);
		bench_teardown();
		return 1;
	}
	F.rss_before = bench_rss_mb(F.ntf_pid);
	F.ntf_fd_limit = bench_proc_nofile(F.ntf_pid);
	if (F.ntf_fd_limit >= 0 && F.ntf_fd_limit < (long)B.o.idle + BENCH_SPARE_FDS)
		fprintf(stderr, "bench: the notifier (pid %d) may open only %ld files: not all %d connections will fit "
				"(raise the limit atende runs with: ulimit -n)\n",
			(int)F.ntf_pid, F.ntf_fd_limit, B.o.idle);
	F.n = B.o.idle;
	F.subs = calloc((size_t)F.n, sizeof(*F.subs));
	B.base = bench_base_new();
	if (!F.subs || !B.base) {
		fprintf(stderr, "bench: out of memory for %d connections\n", F.n);
		bench_teardown();
		return 1;
	}
	for (int i = 0; i < F.n; i++) {
		F.subs[i].agent = i + 1;
		snprintf(F.subs[i].channel, sizeof(F.subs[i].channel), "agent:%ld", F.subs[i].agent);
	}
	snprintf(F.role, sizeof(F.role), "agent");
	struct timeval sec = {1, 0};
	F.timer = evtimer_new(B.base, bench_idle_timer_cb, NULL);
	B.progress = event_new(B.base, -1, EV_PERSIST, bench_idle_progress_cb, NULL);
	event_add(B.progress, &sec);
	B.sigint = evsignal_new(B.base, SIGINT, bench_idle_sigint_cb, NULL);
	event_add(B.sigint, NULL);
	fprintf(stderr, "bench: %d idle agent WebSockets to %s (%d handshakes at a time), held %gs; notifier pid %d at %.1f MB\n",
		F.n, cfg->notifier.listen, BENCH_RAMP_WINDOW, B.o.hold, (int)F.ntf_pid, F.rss_before);
	F.t_dial0 = F.t_progress = bench_now();
	bench_sub_ramp();
	if (!B.fatal[0])
		event_base_dispatch(B.base);
	if (B.fatal[0]) {
		fprintf(stderr, "bench: %s\n", B.fatal);
		bench_teardown();
		return 1;
	}
	bench_procs_end(); /* only for "restarted": the CPU of the hold is measured apart */
	bench_idle_report();
	bench_teardown();
	return 0;
}

static void bench_idle_connected(void)
{
	struct timeval tv = {BENCH_IDLE_SETTLE_S, 0};
	F.phase = FP_SETTLE;
	fprintf(stderr, "bench: %d/%d WebSockets up in %.1fs (%d failed); reading the notifier's memory in %ds\n", F.ready,
		F.n, F.ready ? F.t_last_ready - F.t_dial0 : 0.0, F.failed, BENCH_IDLE_SETTLE_S);
	evtimer_add(F.timer, &tv);
}

/* Settled: read the memory and start the hold. Held: read the CPU it took and stop. */
static void bench_idle_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	if (F.phase == FP_SETTLE) {
		struct timeval tv = {(time_t)B.o.hold, (suseconds_t)((B.o.hold - floor(B.o.hold)) * 1e6)};
		F.rss_settled = bench_rss_mb(F.ntf_pid);
		bench_stat(F.ntf_pid, NULL, &F.ticks0);
		F.t_hold0 = bench_now();
		F.phase = FP_HOLD;
		fprintf(stderr, "bench: notifier at %.1f MB with %d connections; holding them %gs\n", F.rss_settled, F.open,
			B.o.hold);
		evtimer_add(F.timer, &tv);
		return;
	}
	bench_stat(F.ntf_pid, NULL, &F.ticks1);
	F.t_hold1 = bench_now();
	F.rss_end = bench_rss_mb(F.ntf_pid);
	F.phase = FP_DONE;
	event_base_loopbreak(B.base);
}

static void bench_idle_progress_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	double now = bench_now();
	if (F.phase != FP_CONNECT) {
		fprintf(stderr, "bench: %s: %d open, %d dropped\n", F.phase == FP_SETTLE ? "settling" : "holding", F.open,
			F.dropped);
		return;
	}
	fprintf(stderr, "bench: %5.1fs connecting: %d/%d up, %d failed, %d in flight\n", now - F.t_dial0, F.ready, F.n,
		F.failed, F.in_flight);
	if (now - F.t_progress < BENCH_STALL_S)
		return;
	/* Nothing moves (the notifier stopped accepting?): measure what is up. */
	fprintf(stderr, "bench: no WebSocket came up or was refused for %ds: going on with %d\n", BENCH_STALL_S, F.ready);
	if (!F.first_error[0])
		snprintf(F.first_error, sizeof(F.first_error), "handshakes stalled for %ds", BENCH_STALL_S);
	for (int i = 0; i < F.n; i++) {
		bench_sub_t *s = &F.subs[i];
		if (s->ready || s->done)
			continue;
		s->done = true;
		F.failed++;
		if (s->bev) {
			bufferevent_free(s->bev);
			s->bev = NULL;
		}
		if (s->ws)
			ws_conn_close(s->ws, WS_CLOSE_NORMAL, NULL);
	}
	F.next_dial = F.n;
	F.in_flight = 0;
	bench_idle_connected();
}

static void bench_idle_sigint_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	bench_failf("interrupted");
}

/* The one JSON line of --idle. kb_per_connection is the growth from before the first socket to the
 * settled reading, over the sockets that got in; seconds_to_connect ends when the last one got in
 * (a stall's wait is not counted); failed = refused, or could not be opened (either side's limit). */
static void bench_idle_report(void)
{
	double hz = (double)sysconf(_SC_CLK_TCK), held = F.t_hold1 - F.t_hold0;
	double kb = F.ready ? (F.rss_settled - F.rss_before) * 1024.0 / F.ready : 0;
	bool restarted = false;
	char error[sizeof(F.first_error)];
	for (int i = 0; i < B.n_procs; i++)
		restarted |= B.procs[i].pid == F.ntf_pid && B.procs[i].restarted;
	snprintf(error, sizeof(error), "%s", F.first_error);
	for (char *p = error; *p; p++) /* a server's words, kept JSON-safe */
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
			*p = '\'';
	printf("{\"bench\":\"idle\",\"connections\":%d,\"established\":%d,\"failed\":%d,\"dropped\":%d,"
	       "\"notifier_rss_mb\":%.1f,\"notifier_rss_kb_per_connection\":%.2f,\"seconds_to_connect\":%.2f,"
	       "\"notifier_rss_mb_before\":%.1f,\"notifier_rss_mb_after_hold\":%.1f,\"hold_s\":%.1f,"
	       "\"notifier_cpu_pct_idle\":%.2f,\"frames\":%llu,\"fd_limit\":%ld,\"notifier_fd_limit\":%ld,"
	       "\"notifier_restarted\":%s",
	       F.n, F.ready, F.failed, F.dropped, F.rss_settled, kb, F.ready ? F.t_last_ready - F.t_dial0 : 0.0, F.rss_before, F.rss_end,
	       held, held > 0 ? 100.0 * (double)(F.ticks1 - F.ticks0) / hz / held : 0.0, (unsigned long long)F.idle_frames,
	       F.fd_limit, F.ntf_fd_limit, restarted ? "true" : "false");
	if (error[0])
		printf(",\"first_error\":\"%s\"", error);
	printf("}\n");
	fflush(stdout);
}

/* ---- notifier run: fan-out ---- */

static double bench_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* A subscription's seq: every event of the run comes after the lowest one. */
static void bench_fan_ack_seq(long long seq)
{
	if (!F.have_base || seq + 1 < F.seq_base)
		F.seq_base = seq + 1;
	F.have_base = true;
}

/* One frame on company:C. Kept cheap, it runs for every delivery: the type from the frame's fixed
 * start, the run's id prefix near the start (message_id / message_ids come first in data), the
 * seq, and for message events data.created_at from the frame's tail. */
static void bench_fan_frame(const char *data, size_t len, uint64_t *sub_frames)
{
	bool is_msg;
	if (len > 40 && memcmp(data, "{\"type\":\"message\"", 17) == 0)
		is_msg = true;
	else if (len > 40 && memcmp(data, "{\"type\":\"hint\"", 14) == 0)
		is_msg = false;
	else {
		F.other_frames++;
		return;
	}
	size_t head = len < 384 ? len : 384;
	if (!memmem(data, head, B.prefix, B.prefix_len)) {
		F.other_frames++; /* another run's, or another gateway's */
		return;
	}
	double now = bench_wall_ms();
	F.deliveries++;
	(*sub_frames)++;
	if (F.t_first_ms == 0)
		F.t_first_ms = now;
	F.t_last_ms = now;
	const char *p = memmem(data, head, "\"seq\":", 6);
	if (p)
		bench_fan_seq(strtoll(p + 6, NULL, 10), now, is_msg);
	if (!is_msg)
		return;
	double created = bench_fan_created_ms(data, len);
	if (created <= 0)
		return;
	double lat = now - created;
	size_t b = lat > 0 ? (size_t)(lat * 10.0) : 0;
	F.hist[b < BENCH_HIST_BUCKETS ? b : BENCH_HIST_BUCKETS - 1]++;
	F.n_lat++;
	if (lat > F.lat_max)
		F.lat_max = lat;
}

/* Counts a delivery of event seq: how many subscribers got it, the first and the last time. */
static void bench_fan_seq(long long seq, double now_ms, bool is_msg)
{
	if (!F.have_base || seq < F.seq_base)
		return;
	size_t i = (size_t)(seq - F.seq_base);
	if (i >= F.seq_cap) {
		size_t cap = F.seq_cap ? F.seq_cap : 4096;
		while (cap <= i)
			cap *= 2;
		if (cap > ((size_t)1 << 26))
			return; /* a seq far beyond the run's: not tracked */
		uint32_t *c = realloc(F.seq_count, cap * sizeof(*c));
		if (!c)
			return;
		F.seq_count = c;
		double *fi = realloc(F.seq_first, cap * sizeof(*fi));
		if (!fi)
			return;
		F.seq_first = fi;
		double *la = realloc(F.seq_last, cap * sizeof(*la));
		if (!la)
			return;
		F.seq_last = la;
		memset(c + F.seq_cap, 0, (cap - F.seq_cap) * sizeof(*c));
		F.seq_cap = cap;
	}
	if (F.seq_count[i]++ == 0) {
		F.seq_first[i] = now_ms;
		if (is_msg)
			F.events_msg++;
		else
			F.events_hint++;
	}
	F.seq_last[i] = now_ms;
}

/* data.created_at of a message event (the ingress's receive time, ISO with ms) in Unix ms, -1 when
 * absent. The worker writes it last in data: the frame's tail is tried before a search, and the
 * seconds part is converted once per second of timestamps. */
static double bench_fan_created_ms(const char *data, size_t len)
{
	static const char key[] = "\"created_at\":\"";
	const size_t kl = sizeof(key) - 1;
	const char *v = NULL;
	if (len >= kl + 27 && memcmp(data + len - 27 - kl, key, kl) == 0) { /* ..."created_at":"<24>"}} */
		v = data + len - 27;
	} else {
		const char *k = memmem(data, len, key, kl);
		if (k && (size_t)(data + len - (k + kl)) >= 24)
			v = k + kl;
	}
	if (!v || v[4] != '-' || v[10] != 'T' || v[19] != '.' || v[23] != 'Z')
		return -1;
	if (memcmp(v, F.ts_prefix, 19) != 0) {
		struct tm tm;
		memset(&tm, 0, sizeof(tm));
		if (sscanf(v, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
			   &tm.tm_sec) != 6)
			return -1;
		tm.tm_year -= 1900;
		tm.tm_mon -= 1;
		F.ts_sec = (long long)timegm(&tm);
		memcpy(F.ts_prefix, v, 19);
	}
	return (double)F.ts_sec * 1e3 + (v[20] - '0') * 100 + (v[21] - '0') * 10 + (v[22] - '0');
}

/* Whether the fan-out run may end: every subscriber has every event of the run, or none came for
 * BENCH_FAN_QUIET_S, or the wait after the drain ran out. */
static bool bench_fan_settled(double now)
{
	uint64_t events = (B.acked > F.events_msg ? B.acked : F.events_msg) + (B.hints > F.events_hint ? B.hints : F.events_hint);
	if (B.acked_unhinted == 0 && F.deliveries >= events * (uint64_t)B.o.fanout)
		return true;
	double last = F.t_last_ms > 0 ? F.t_last_ms : F.t_send0_ms;
	return bench_wall_ms() - last >= BENCH_FAN_QUIET_S * 1000.0 || now >= B.t_drain_end + BENCH_FAN_EXTRA_S;
}

/* {"p50","p95","p99","max"} of the publish->deliver histogram: bucket lower bounds (0.1 ms). */
static void bench_fan_print_hist(FILE *f, const char *name)
{
	static const double ps[] = {0.50, 0.95, 0.99};
	static const char *const names[] = {"p50", "p95", "p99"};
	fprintf(f, "\"%s\":{", name);
	if (F.n_lat == 0) {
		fprintf(f, "\"p50\":null,\"p95\":null,\"p99\":null,\"max\":null}");
		return;
	}
	size_t b = 0;
	uint64_t below = 0; /* deliveries in the buckets before b */
	for (int k = 0; k < 3; k++) {
		uint64_t rank = (uint64_t)ceil(ps[k] * (double)F.n_lat);
		if (rank == 0)
			rank = 1;
		while (below + F.hist[b] < rank)
			below += F.hist[b++];
		fprintf(f, "\"%s\":%.1f,", names[k], (double)b / 10.0);
	}
	fprintf(f, "\"max\":%.1f}", F.lat_max);
}

static const bench_proc_t *bench_proc_role(const char *role)
{
	for (int i = 0; i < B.n_procs; i++)
		if (strcmp(B.procs[i].role, role) == 0)
			return &B.procs[i];
	return NULL;
}

/* The one JSON line of --fanout. The subscribers are the watcher (agent 1) and agents 2..S.
 * expected = S x the run's events (one message event per acknowledged webhook, and the hint
 * events, fewer when the smart buffer grouped messages); spread = last minus first subscriber
 * to get an event. */
static void bench_fan_report(void)
{
	char *out = NULL;
	size_t outlen = 0;
	FILE *f = open_memstream(&out, &outlen);
	if (!f)
		return;
	uint64_t ev_msg = B.acked > F.events_msg ? B.acked : F.events_msg;
	uint64_t ev_hint = B.hints > F.events_hint ? B.hints : F.events_hint;
	uint64_t expected = (ev_msg + ev_hint) * (uint64_t)B.o.fanout;
	double span = (F.t_last_ms - F.t_first_ms) / 1000.0, window = B.t_end - B.t_measure;
	int complete = F.watcher_frames >= ev_msg + ev_hint;
	for (int i = 0; i < F.n; i++)
		complete += F.subs[i].frames >= ev_msg + ev_hint;
	if (window <= 0)
		window = 1e-9;
	fprintf(f, "{\"bench\":\"fanout\",\"subscribers\":%d,\"messages\":%ld,\"rate\":%g,\"acked\":%llu,\"rejected\":%llu,"
		   "\"events\":{\"message\":%llu,\"hint\":%llu},\"deliveries\":%llu,\"expected\":%llu,\"missing\":%llu,"
		   "\"subscribers_complete\":%d,\"cut\":%d,\"deliveries_per_s\":%.0f,\"delivery_window_s\":%.3f,",
		B.o.fanout, B.o.messages, B.o.rate, (unsigned long long)B.acked, (unsigned long long)B.rejected,
		(unsigned long long)ev_msg, (unsigned long long)ev_hint, (unsigned long long)F.deliveries,
		(unsigned long long)expected, (unsigned long long)(expected > F.deliveries ? expected - F.deliveries : 0),
		complete, F.dropped + B.ws_dropped, span > 0 ? (double)F.deliveries / span : 0.0, span > 0 ? span : 0.0);
	bench_fan_print_hist(f, "deliver_ms");
	size_t n = 0;
	double *spread = malloc((F.seq_cap ? F.seq_cap : 1) * sizeof(double));
	for (size_t i = 0; spread && i < F.seq_cap; i++)
		if (F.seq_count[i])
			spread[n++] = F.seq_last[i] - F.seq_first[i];
	fputc(',', f);
	bench_print_latency(f, "spread_ms", spread, n);
	free(spread);
	const bench_proc_t *ntf = bench_proc_role("notifier"), *self = bench_proc_role("bench");
	if (ntf && ntf->cpu_s >= 0)
		fprintf(f, ",\"notifier_cpu_pct\":%.1f,\"notifier_rss_mb\":%.1f", 100.0 * ntf->cpu_s / window, ntf->rss_mb);
	else
		fprintf(f, ",\"notifier_cpu_pct\":null,\"notifier_rss_mb\":null");
	if (self && self->cpu_s >= 0)
		fprintf(f, ",\"bench_cpu_pct\":%.1f", 100.0 * self->cpu_s / window);
	fprintf(f, ",\"window_s\":%.2f,\"other_frames\":%llu,\"notifier_restarted\":%s,\"interrupted\":%s}\n", window,
		(unsigned long long)F.other_frames, ntf && ntf->restarted ? "true" : "false", B.interrupted ? "true" : "false");
	fclose(f);
	fputs(out, stdout);
	fflush(stdout);
	free(out);
}

/* ---- processes ---- */

static size_t bench_curl_sink(char *p, size_t sz, size_t n, void *arg)
{
	return fwrite(p, sz, n, (FILE *)arg);
}

/* The supervisor's /healthz (pids and roles of every process). Blocking, so only called outside the
 * measured window. NULL with a reason when the system is not there. */
static cJSON *bench_health(char *err, size_t errlen)
{
	char url[512], *body = NULL;
	size_t len = 0;
	snprintf(url, sizeof(url), "http://%s/healthz", B.cfg->metrics.listen);
	FILE *mem = open_memstream(&body, &len);
	CURL *c = curl_easy_init();
	CURLcode rc = CURLE_FAILED_INIT;
	if (c && mem) {
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 3000L);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, bench_curl_sink);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, mem);
		rc = curl_easy_perform(c);
	}
	if (c)
		curl_easy_cleanup(c);
	if (mem)
		fclose(mem);
	cJSON *root = rc == CURLE_OK ? cJSON_Parse(body) : NULL;
	if (rc != CURLE_OK)
		snprintf(err, errlen, "atende is not running at %s (%s)", B.cfg->metrics.listen, curl_easy_strerror(rc));
	else if (!cJSON_IsArray(cJSON_GetObjectItem(root, "processes")))
		snprintf(err, errlen, "http://%.300s/healthz did not answer a process list", B.cfg->metrics.listen);
	free(body);
	if (root && !cJSON_IsArray(cJSON_GetObjectItem(root, "processes"))) {
		cJSON_Delete(root);
		root = NULL;
	}
	return root;
}

static bench_proc_t *bench_proc_add(const char *role, int index, pid_t pid, bool children)
{
	bench_proc_t *p;
	B.procs = realloc(B.procs, (size_t)(B.n_procs + 1) * sizeof(*B.procs));
	p = &B.procs[B.n_procs++];
	memset(p, 0, sizeof(*p));
	snprintf(p->role, sizeof(p->role), "%s", role);
	p->index = index;
	p->pid = pid;
	p->children = children;
	return p;
}

/* Builds the list: every supervised process, the supervisor (their parent), the postgres
 * children (backends and background processes, summed) and this bench itself. */
static void bench_procs_init(const cJSON *health)
{
	const cJSON *p;
	pid_t parent = 0;
	cJSON_ArrayForEach(p, cJSON_GetObjectItem(health, "processes"))
	{
		const cJSON *role = cJSON_GetObjectItem(p, "role"), *pid = cJSON_GetObjectItem(p, "pid");
		const cJSON *index = cJSON_GetObjectItem(p, "index"), *restarts = cJSON_GetObjectItem(p, "restarts");
		if (!cJSON_IsString(role) || !cJSON_IsNumber(pid) || pid->valueint <= 0)
			continue;
		bench_proc_t *bp = bench_proc_add(role->valuestring, cJSON_IsNumber(index) ? index->valueint : 0,
						  (pid_t)pid->valueint, false);
		bp->restarts = cJSON_IsNumber(restarts) ? restarts->valueint : 0;
		if (!parent)
			bench_stat(bp->pid, &parent, NULL);
		if (strcmp(role->valuestring, "postgres") == 0)
			B.pg_pid = bp->pid;
	}
	if (parent > 1)
		bench_proc_add("supervisor", 0, parent, false);
	if (B.pg_pid)
		bench_proc_add("postgres-children", 0, B.pg_pid, true);
	bench_proc_add("bench", 0, getpid(), false);
}

static void bench_procs_start(void)
{
	for (int i = 0; i < B.n_procs; i++) {
		bench_proc_t *p = &B.procs[i];
		if (p->children) {
			p->n_kids0 = bench_children(p->pid, &p->kids0);
			p->ok = true;
		} else {
			p->ok = bench_stat(p->pid, NULL, &p->t0);
		}
	}
}

/* CPU over the measured window, RSS now, and whether the supervisor restarted anything meanwhile. */
static void bench_procs_end(void)
{
	double hz = (double)sysconf(_SC_CLK_TCK);
	for (int i = 0; i < B.n_procs; i++) {
		bench_proc_t *p = &B.procs[i];
		unsigned long long t1;
		p->cpu_s = -1;
		if (p->children) {
			bench_ticks_t *kids = NULL;
			int n = bench_children(p->pid, &kids);
			unsigned long long sum = 0;
			double rss = 0;
			for (int k = 0; k < n; k++) {
				unsigned long long before = 0;
				for (int j = 0; j < p->n_kids0; j++)
					if (p->kids0[j].pid == kids[k].pid)
						before = p->kids0[j].ticks;
				sum += kids[k].ticks >= before ? kids[k].ticks - before : 0;
				rss += bench_rss_mb(kids[k].pid);
			}
			free(kids);
			p->count = n;
			p->cpu_s = (double)sum / hz;
			p->rss_mb = rss;
		} else if (p->ok && bench_stat(p->pid, NULL, &t1)) {
			p->cpu_s = (double)(t1 - p->t0) / hz;
			p->rss_mb = bench_rss_mb(p->pid);
			p->count = 1;
		}
	}
	char err[256];
	cJSON *health = bench_health(err, sizeof(err));
	const cJSON *e, *list = health ? cJSON_GetObjectItem(health, "processes") : NULL;
	cJSON_ArrayForEach(e, list)
	{
		const cJSON *role = cJSON_GetObjectItem(e, "role"), *pid = cJSON_GetObjectItem(e, "pid");
		const cJSON *index = cJSON_GetObjectItem(e, "index"), *restarts = cJSON_GetObjectItem(e, "restarts");
		for (int i = 0; i < B.n_procs; i++) {
			bench_proc_t *p = &B.procs[i];
			if (!p->children && cJSON_IsString(role) && strcmp(p->role, role->valuestring) == 0 &&
			    cJSON_IsNumber(index) && p->index == index->valueint)
				p->restarted = (cJSON_IsNumber(pid) && pid->valueint != p->pid) ||
					       (cJSON_IsNumber(restarts) && restarts->valueint != p->restarts);
		}
	}
	cJSON_Delete(health);
}

/* utime+stime (clock ticks) and parent of pid from /proc/<pid>/stat; either out may be NULL. */
static bool bench_stat(pid_t pid, pid_t *ppid, unsigned long long *ticks)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	/* The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'. */
	char *p = strrchr(buf, ')');
	int pp;
	unsigned long long ut, st;
	if (!p || sscanf(p + 1, " %*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &pp, &ut, &st) != 3)
		return false;
	if (ppid)
		*ppid = pp;
	if (ticks)
		*ticks = ut + st;
	return true;
}

static double bench_rss_mb(pid_t pid)
{
	char path[64], line[256];
	double mb = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "VmRSS:", 6) == 0) {
			mb = strtod(line + 6, NULL) / 1024.0;
			break;
		}
	if (f)
		fclose(f);
	return mb;
}

/* Every child of parent with its CPU ticks (malloc'd into *out); returns how many. */
static int bench_children(pid_t parent, bench_ticks_t **out)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0, cap = 0;
	*out = NULL;
	while (d && (e = readdir(d))) {
		pid_t pid = (pid_t)atoi(e->d_name), pp;
		unsigned long long t;
		if (pid <= 0 || !bench_stat(pid, &pp, &t) || pp != parent)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			*out = realloc(*out, (size_t)cap * sizeof(**out));
		}
		(*out)[n++] = (bench_ticks_t){pid, t};
	}
	if (d)
		closedir(d);
	return n;
}

/* Raises RLIMIT_NOFILE to want: above the hard limit when allowed (root), else to the hard limit.
 * Returns the soft limit in force, -1 if it cannot be read. */
/* The soft "Max open files" of another process (/proc/<pid>/limits), -1 if unreadable. */
static long bench_proc_nofile(pid_t pid)
{
	char path[64], line[256];
	long v = -1;
	snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
	FILE *f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "Max open files", 14) == 0) {
			const char *p = line + 14 + strspn(line + 14, " ");
			v = strncmp(p, "unlimited", 9) == 0 ? LONG_MAX : strtol(p, NULL, 10);
			break;
		}
	if (f)
		fclose(f);
	return v;
}

/* ---- report ---- */

static int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* {"p50":..,"p95":..,"p99":..,"max":..} in ms, nearest-rank; nulls when there is no sample. */
static void bench_print_latency(FILE *f, const char *name, double *v, size_t n)
{
	static const double ps[] = {0.50, 0.95, 0.99};
	static const char *const names[] = {"p50", "p95", "p99"};
	fprintf(f, "\"%s\":{", name);
	if (n == 0) {
		fprintf(f, "\"p50\":null,\"p95\":null,\"p99\":null,\"max\":null}");
		return;
	}
	qsort(v, n, sizeof(double), bench_cmp_double);
	for (int k = 0; k < 3; k++) {
		size_t rank = (size_t)ceil(ps[k] * (double)n);
		fprintf(f, "\"%s\":%.2f,", names[k], v[(rank ? rank : 1) - 1]);
	}
	fprintf(f, "\"max\":%.2f}", v[n - 1]);
}

/* The one JSON line on stdout. */
static void bench_report(void)
{
	char *out = NULL;
	size_t outlen = 0;
	FILE *f = open_memstream(&out, &outlen);
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
	bench_print_latency(f, "ack_ms", B.ack_ms, B.n_ack_ms);
	fputc(',', f);
	bench_print_latency(f, "hint_ms", B.hint_ms, B.n_hint_ms);
	fprintf(f, ",\"achieved_rate\":%.1f,\"window_s\":%.2f,\"ws_dropped\":%d,\"ws_resets\":%d,\"interrupted\":%s,\"processes\":[",
		B.acked && span > 0 ? (double)B.acked / span : 0.0, window, B.ws_dropped, B.ws_resets, B.interrupted ? "true" : "false");
	for (int i = 0; i < B.n_procs; i++) {
		const bench_proc_t *p = &B.procs[i];
		fprintf(f, "%s{\"role\":\"%s\",\"index\":%d,\"pid\":%d,", i ? "," : "", p->role, p->index, (int)p->pid);
		if (p->cpu_s < 0)
			fprintf(f, "\"cpu_s\":null,\"cpu_pct\":null,\"rss_mb\":null");
		else
			fprintf(f, "\"cpu_s\":%.2f,\"cpu_pct\":%.1f,\"rss_mb\":%.1f", p->cpu_s, 100.0 * p->cpu_s / window,
				p->rss_mb);
		if (p->children)
			fprintf(f, ",\"count\":%d", p->count);
		if (p->restarted)
			fprintf(f, ",\"restarted\":true");
		fputc('}', f);
	}
	fprintf(f, "]}\n");
	fclose(f);
	fputs(out, stdout);
	fflush(stdout);
	free(out);
}
