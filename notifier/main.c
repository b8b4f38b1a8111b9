/*
 * atende-notifier: reads all of atende.events (no consumer group: every instance sees
 * every event) and fans events out over WebSocket (and long-poll) to agent consoles, by
 * channel, with tenancy checks at subscribe time and exact resume from a bounded history.
 * Presence and typing are published to atende.events and read back, so every instance
 * agrees and they get seqs like any event; replies and transfers go to atende.outbound for
 * the workers. Also serves the console page, and the conversation API (api.c) on its own
 * PostgreSQL connections: it reads conversations and history and writes read markers only.
 *
 * The rooms, around the shared state of notifier.h: conn (a console's connection, sending,
 * slow consumers), stream (atende.events in and out: hub, presence, resets), ops (what
 * consoles ask), web (the HTTP side: /ws, /poll, /op, the console's files, /healthz, /metrics).
 * This file keeps start-up, the timers, the signals and the drain. What it writes and reads on
 * atende.events is common/event.h's; what it writes to atende.outbound, notifier/wire.h's.
 */
#include "api.h"
#include "login.h"
#include "roster.h"
#include "business.h"
#include "conn.h"
#include "guard.h"
#include "hub.h"
#include "log.h"
#include "metrics.h"
#include "notifier.h"
#include "ops.h"
#include "presence.h"
#include "proc.h"
#include "stream.h"
#include "typing.h"
#include "upload.h"
#include "web.h"

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define NTF_TICK_MS 100       /* typing expiry resolution */
#define NTF_IDLE_TICK_MS 1000 /* the tick with no typing state to expire */

static void ntf_tick_cb(evutil_socket_t fd, short what, void *arg);
static void ntf_heartbeat_cb(evutil_socket_t fd, short what, void *arg);
static void ntf_signal_cb(evutil_socket_t sig, short what, void *arg);
static void ntf_drain_cb(evutil_socket_t fd, short what, void *arg);

int main(int argc, char **argv)
{
	char err[512], host[32] = "host";
	proc_load_config(argc, argv, "notifier", &N.cfg);
	signal(SIGPIPE, SIG_IGN);
	N.base = event_base_new();
	N.hub = hub_new((size_t)N.cfg.notifier.history_events, proc_epoch());
	N.presence = presence_new();
	N.typing = typing_new();
	N.per_token = guard_counts_new();
	N.ops_rate = guard_counts_new();
	gethostname(host, sizeof(host) - 1);
	snprintf(N.instance, sizeof(N.instance), "%.31s:%d:%llx", host, (int)getpid(), ntf_now_ms());
	cfg_topic(&N.cfg, "events", N.events_topic, sizeof(N.events_topic));
	cfg_topic(&N.cfg, "outbound", N.outbound_topic, sizeof(N.outbound_topic));
	cfg_topic(&N.cfg, "typing", N.typing_topic, sizeof(N.typing_topic));
	web_load_console();

	kq_opts_t ko = {.brokers = N.cfg.kafka.brokers, .properties = N.cfg.kafka.properties, .client_id = "atende-notifier", .on_message = stream_on_event,
			.fetch_wait_max_ms = cfg_fetch_wait_ms(&N.cfg)};
	N.consumer = kq_consumer_new(N.base, &ko, err, sizeof(err));
	if (!N.consumer || !stream_assign_all(err, sizeof(err))) {
		log_error("kafka: %s", err);
		return 1;
	}
	kq_opts_t po = {.brokers = N.cfg.kafka.brokers, .properties = N.cfg.kafka.properties, .client_id = "atende-notifier", .linger_ms = 1,
			.on_delivery = ops_on_delivery};
	N.producer = kq_producer_new(N.base, &po, err, sizeof(err));
	if (!N.producer) {
		log_error("kafka producer: %s", err);
		return 1;
	}
	N.typing_partitions = kq_partition_count(N.producer, N.typing_topic, 10000, err, sizeof(err));
	if (N.typing_partitions <= 0) {
		N.typing_partitions = 0;
		log_warn("kafka: %s (`atende topics --create` makes it): typing events go to %s only, which the workers "
			 "then read whole", err, N.events_topic);
	}
	kq_known_topics(N.producer, (const char *const[]){N.events_topic, N.outbound_topic, N.typing_topic},
			N.typing_partitions > 0 ? 3 : 2);
	http_limits_t lim;
	http_limits_default(&lim);
	lim.max_connections = N.cfg.notifier.max_connections;
	proc_fd_limit(N.cfg.notifier.max_connections, "notifier.max_connections");
	lim.max_body_bytes = 65536;
	lim.body_limit = upload_body_limit; /* the console's file uploads take media.max_upload_bytes */
	lim.request_timeout_ms = 10000;
	lim.idle_timeout_ms = (N.cfg.notifier.poll_timeout_s + 30) * 1000; /* a long-poll client comes back */
	char mpath[1200];
	metrics_export_start(N.base, proc_metrics_path(&N.cfg, "notifier", 0, mpath, sizeof(mpath)), 1000,
			     ntf_metrics_refresh);
	api_start();
	if (!login_start())
		return 1;
	roster_start();
	business_start();
	N.http = http_server_new(N.base, N.cfg.notifier.listen, &lim, web_handle, NULL, err, sizeof(err));
	if (!N.http) {
		log_error("notifier.listen %s: %s", N.cfg.notifier.listen, err);
		return 1;
	}
	int sigs[] = {SIGTERM, SIGINT, SIGHUP};
	for (int i = 0; i < 3; i++)
		event_add(evsignal_new(N.base, sigs[i], ntf_signal_cb, NULL), NULL);
	N.tick = tick_new(N.base, NTF_IDLE_TICK_MS, ntf_tick_cb, NULL);
	N.typing_ev = evtimer_new(N.base, ntf_tick_cb, NULL);
	N.heartbeat = tick_new(N.base, N.cfg.notifier.presence_heartbeat_s * 1000, ntf_heartbeat_cb, NULL);
	log_info("listening on %s (WebSocket /ws, long-poll /poll, API /v1/, console /), reading %s (%d partitions), epoch %lld, "
		 "instance %s",
		 N.cfg.notifier.listen, N.events_topic, N.partitions, hub_epoch(N.hub), N.instance);

	event_base_dispatch(N.base);

	api_stop(); /* its waiting requests are answered 503 while their server still exists */
	login_stop();
	roster_stop();
	business_stop();
	http_server_free(N.http);
	kq_free(N.producer, 2000); /* the last offline/stop messages reach the other instances */
	kq_free(N.consumer, 0);
	tick_free(N.tick);
	event_free(N.typing_ev);
	tick_free(N.heartbeat);
	hub_free(N.hub);
	stream_free();
	presence_free(N.presence);
	typing_free(N.typing);
	guard_counts_free(N.per_token);
	guard_counts_free(N.ops_rate);
	log_info("stopped: %llu events, %llu deliveries", (unsigned long long)N.n_events,
		 (unsigned long long)N.n_deliveries);
	return 0;
}



static void ntf_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	long long now = ntf_now_ms();
	static long long swept;
	typing_expire(N.typing, now, stream_typing_ended, "expired");
	if (now - swept >= 1000) { /* keeps the op buckets to the agents active in the last seconds */
		guard_counts_evict_idle(N.ops_rate, N.cfg.notifier.ops_per_second, 2.0 * N.cfg.notifier.ops_per_second, now);
		swept = now;
	}
	/* once a second with the process's other ticks, and at a typing expiry due before the next
	 * one: a start made since expires no sooner (notifier.typing_ttl_s >= 1), so an idle
	 * notifier does not wake ten times a second for it */
	long long next = typing_next_expiry(N.typing);
	if (next >= 0 && next - now < NTF_IDLE_TICK_MS) {
		long long delay = next - now < NTF_TICK_MS ? NTF_TICK_MS : next - now;
		struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
		evtimer_add(N.typing_ev, &tv);
	}
}

static void ntf_heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	stream_heartbeat();
	roster_heartbeat();
}

static void ntf_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what, (void)arg;
	if (sig == SIGHUP) {
		if (!proc_reload_config(&N.cfg))
			return;
		web_load_console();
		web_sweep_tokens(); /* a secret rotated out takes its consoles with it */
		proc_fd_limit(N.cfg.notifier.max_connections, "notifier.max_connections");
		log_info("reload: applied");
		return;
	}
	if (N.draining) {
		event_base_loopbreak(N.base);
		return;
	}
	/* answer the long-polls, close every console with 1001 (going away): they come back to
	 * another instance or later; their offline and typing stops are published on the way */
	N.draining = true;
	http_server_stop_accepting(N.http);
	log_info("draining: closing %d connections and %d long-polls (%d ops in flight)", N.n_ws, N.n_polls, N.n_http_ops);
	for (conn_t *c = N.conns, *next; c; c = next) {
		next = c->next;
		if (c->op_request) {
			continue; /* answered when the broker acknowledges its op */
		} else if (!c->ws) {
			web_poll_answer(c);
		} else if (!c->cut) {
			c->cut = true;
			ws_conn_close(c->ws, WS_CLOSE_GOING_AWAY, "server shutting down");
		}
	}
	struct event *t = event_new(N.base, -1, EV_PERSIST, ntf_drain_cb, NULL);
	struct timeval tv = {0, 20 * 1000};
	event_add(t, &tv);
}

static void ntf_drain_cb(evutil_socket_t fd, short what, void *arg)
{
	static int ticks;
	(void)fd, (void)what, (void)arg;
	if (N.n_ws + N.n_polls + N.n_http_ops + api_in_flight() == 0 || ++ticks > 150)
		event_base_loopbreak(N.base);
}
