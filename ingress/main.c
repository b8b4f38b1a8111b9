/*
 * atende-ingress: the HTTP front door. Each webhook becomes canonical events produced
 * to atende.inbound.<domain>, keyed by conversation; the answer waits for the broker's
 * acknowledgement of every event in the request (acks=all, idempotent producer), so a
 * 200 always means durable. Backpressure (503 + Retry-After) before the embedded
 * broker's per-partition cap could drop unconsumed data.
 */
#include "backlog.h"
#include "config.h"
#include "dedup.h"
#include "gateway.h"
#include "http.h"
#include "json.h"
#include "kq.h"
#include "log.h"
#include "metrics.h"
#include "proc.h"
#include "tick.h"
#include "xalloc.h"

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define ING_LAG_POLL_MS 250
#define ING_LAG_IDLE_POLL_MS 1000
#define ING_LAG_HOLD_S 5 /* no Admin request this long after the brokers were last seen down */

typedef struct ing_pending ing_pending_t;

/* One produced event awaiting its delivery report. */
typedef struct {
	ing_pending_t *p;
	char *dedup_key;
	int domain;
	size_t bytes;
	struct timeval produced;
} ing_msg_t;

/* One webhook request awaiting acknowledgements. Freed when answered AND every
 * delivery report has arrived (reports may outlive a timed-out answer). */
struct ing_pending {
	http_request_t *req;     /* NULL once answered */
	ing_msg_t *msgs;
	int total, reported, failed, duplicates;
	struct event *timer;
};

typedef struct {
	cfg_t cfg;
	struct event_base *base;
	http_server_t *http;
	kq_t *producer;
	dedup_t *dedup;
	backlog_t *backlog;
	rd_kafka_queue_t *admin_queue;
	bool lag_query_in_flight, draining;
	struct timeval lag_hold_until; /* no committed-offsets query before this (see ing_lag_cb) */
	int lag_pool;            /* the pool whose group is asked next */
	tick_t *lag_tick;
	struct event *lag_soon, *drain_timer; /* lag_soon: the next lag poll while a backlog is read */
	char topics[CFG_MAX_DOMAINS][160];
	int n_pending;
	/* metrics (hot-path series cached) */
	metrics_family_t *m_requests, *m_request_seconds, *m_refused;
	metrics_series_t *m_accepted, *m_duplicates, *m_delivery_failed, *m_produce_seconds;
	metrics_series_t *m_pending, *m_connections, *m_backlog, *m_dedup_entries, *m_broker_up;
} ing_t;

static ing_t I;

static void ing_handle(http_request_t *req, void *arg);
static void ing_webhook(http_request_t *req, gw_result_t *res, const char *received_at);
static void ing_delivery(void *opaque, rd_kafka_resp_err_t err, int32_t partition, int64_t offset, void *arg);
static void ing_answer(ing_pending_t *p);
static void ing_maybe_free(ing_pending_t *p);
static void ing_timeout_cb(evutil_socket_t fd, short what, void *arg);
static void ing_lag_cb(evutil_socket_t fd, short what, void *arg);
static void ing_lag_poll(void);
static void ing_lag_result(rd_kafka_event_t *ev);
static void ing_signal_cb(evutil_socket_t sig, short what, void *arg);
static void ing_drain_cb(evutil_socket_t fd, short what, void *arg);
static void ing_apply_limits(void);
static void ing_metrics(http_request_t *req);
static void ing_metrics_init(void);
static void ing_metrics_refresh(void);
static void ing_observe(const http_request_t *req, int status, double seconds, void *arg);
static void ing_refuse(http_request_t *req, const char *reason, const char *message);

int main(int argc, char **argv)
{
	char err[512];
	proc_load_config(argc, argv, "ingress", &I.cfg);
	signal(SIGPIPE, SIG_IGN);
	I.base = event_base_new();
	for (int d = 0; d < CFG_MAX_DOMAINS; d++)
		cfg_topic(&I.cfg, cfg_domains[d], I.topics[d], sizeof(I.topics[d]));

	kq_opts_t ko = {.brokers = I.cfg.kafka.brokers, .properties = I.cfg.kafka.properties, .client_id = "atende-ingress", .linger_ms = I.cfg.ingress.linger_ms,
			.on_delivery = ing_delivery};
	I.producer = kq_producer_new(I.base, &ko, err, sizeof(err));
	if (!I.producer) {
		log_error("kafka producer: %s", err);
		return 1;
	}
	I.admin_queue = rd_kafka_queue_new(kq_handle(I.producer));
	/* without this the first message to each domain waits about a second for its topic's metadata */
	const char *topics[CFG_MAX_DOMAINS];
	for (int d = 0; d < CFG_MAX_DOMAINS; d++)
		topics[d] = I.topics[d];
	kq_known_topics(I.producer, topics, CFG_MAX_DOMAINS);
	I.dedup = dedup_new((size_t)I.cfg.ingress.dedup_window);
	I.backlog = backlog_new();

	http_limits_t lim;
	memset(&lim, 0, sizeof(lim));
	I.http = http_server_new(I.base, I.cfg.ingress.listen, &lim, ing_handle, NULL, err, sizeof(err));
	if (!I.http) {
		log_error("ingress.listen %s: %s", I.cfg.ingress.listen, err);
		return 1;
	}
	ing_apply_limits();
	ing_metrics_init();
	http_server_set_observer(I.http, ing_observe, NULL);
	char mpath[1200];
	metrics_export_start(I.base, proc_metrics_path(&I.cfg, "ingress", proc_index(), mpath, sizeof(mpath)), 1000,
			     ing_metrics_refresh);

	int sigs[] = {SIGTERM, SIGINT, SIGHUP};
	for (int i = 0; i < 3; i++)
		event_add(evsignal_new(I.base, sigs[i], ing_signal_cb, NULL), NULL);
	I.lag_tick = tick_new(I.base, ING_LAG_IDLE_POLL_MS, ing_lag_cb, NULL);
	I.lag_soon = evtimer_new(I.base, ing_lag_cb, NULL);
	log_info("listening on %s, producing to %s.inbound.* via %s", I.cfg.ingress.listen, I.cfg.kafka.topic_prefix,
		 I.cfg.kafka.brokers);

	proc_pidfile_write(&I.cfg, "ingress");
	event_base_dispatch(I.base);

	proc_pidfile_remove(&I.cfg, "ingress");
	http_server_free(I.http);
	tick_free(I.lag_tick);
	event_free(I.lag_soon);
	rd_kafka_queue_destroy(I.admin_queue); /* librdkafka's destroy waits for every queue handle */
	kq_free(I.producer, 5000);
	log_info("stopped");
	return 0;
}

static void ing_apply_limits(void)
{
	http_limits_t lim = {.max_header_bytes = (size_t)I.cfg.ingress.max_header_bytes,
			     .max_body_bytes = (size_t)I.cfg.ingress.max_body_bytes,
			     .max_connections = I.cfg.ingress.max_connections,
			     .request_timeout_ms = I.cfg.ingress.request_timeout_ms,
			     .idle_timeout_ms = I.cfg.ingress.idle_timeout_ms};
	http_server_set_limits(I.http, &lim);
	proc_fd_limit(I.cfg.ingress.max_connections, "ingress.max_connections");
}

static void ing_handle(http_request_t *req, void *arg)
{
	(void)arg;
	const char *path = http_request_path(req), *method = http_request_method(req);
	bool post = strcmp(method, "POST") == 0, get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;

	if (strcmp(path, "/healthz") == 0 && get) {
		bool up = kq_brokers_up(I.producer) && !kq_fatal(I.producer) && !I.draining;
		http_respond_json(req, up ? 200 : 503, up ? "{\"ok\":true}" : "{\"ok\":false,\"error\":\"broker unreachable\"}");
		return;
	}
	if (strcmp(path, "/metrics") == 0 && get && I.cfg.metrics.on_public_ports) {
		ing_metrics(req);
		return;
	}
	if (strcmp(path, "/webhooks/whatsapp") == 0 && get) {
		char mode[64], token[256], challenge[256];
		bool have = http_request_query_param(req, "hub.mode", mode, sizeof(mode)) &&
			    http_request_query_param(req, "hub.verify_token", token, sizeof(token)) &&
			    http_request_query_param(req, "hub.challenge", challenge, sizeof(challenge));
		int st = have ? gw_cloud_verify(&I.cfg, mode, token, challenge) : 400;
		if (st == 200)
			http_respond(req, 200, "text/plain", challenge, strlen(challenge));
		else
			http_respond_error(req, st, st == 400 ? "missing hub.mode, hub.verify_token or hub.challenge"
							      : "verify token does not match");
		return;
	}
	bool evo = strcmp(path, "/webhooks/evolution") == 0, cloud = strcmp(path, "/webhooks/whatsapp") == 0,
	     api = strcmp(path, "/v1/messages") == 0;
	if (!evo && !cloud && !api) {
		http_respond_error(req, 404, "no such path");
		return;
	}
	if (!post) {
		http_response_add_header(req, "Allow", "POST");
		http_respond_error(req, 405, "use POST");
		return;
	}
	const char *ct = http_request_header(req, "Content-Type");
	if (!ct || strncasecmp(ct, "application/json", 16) != 0) {
		http_respond_error(req, 415, "Content-Type must be application/json");
		return;
	}
	size_t len;
	const char *body = http_request_body(req, &len);
	char now[40];
	gw_result_t res;
	json_iso_now(now, sizeof(now));
	if (evo)
		gw_parse_evolution(&I.cfg, http_request_header(req, "apikey"), body, len, now, &res);
	else if (cloud)
		gw_parse_cloud(&I.cfg, http_request_header(req, "X-Hub-Signature-256"), body, len, now, &res);
	else
		gw_parse_api(&I.cfg, http_request_header(req, "Authorization"), body, len, now, &res);
	ing_webhook(req, &res, now);
	gw_result_free(&res);
}

/* Produces every new event of a parsed request; the answer comes from ing_delivery. */
static void ing_webhook(http_request_t *req, gw_result_t *res, const char *received_at)
{
	char err[512], which[200];
	if (res->status) {
		http_respond_error(req, res->status, res->error);
		return;
	}
	if (res->ignored) {
		http_respond_json(req, 200, "{\"ignored\":true}");
		return;
	}
	if (I.draining) {
		ing_refuse(req, "draining", "shutting down");
		return;
	}
	if (!kq_brokers_up(I.producer)) {
		ing_refuse(req, "broker_down", "broker unavailable");
		return;
	}
	size_t worst = backlog_max_bytes(I.backlog, which, sizeof(which));
	if (I.cfg.ingress.max_partition_backlog_bytes > 0 && worst >= (size_t)I.cfg.ingress.max_partition_backlog_bytes) {
		char msg[300];
		snprintf(msg, sizeof(msg), "backpressure: %s holds too many unprocessed messages; retry later", which);
		ing_refuse(req, "backpressure", msg);
		return;
	}

	ing_pending_t *p = xcalloc(1, sizeof(*p));
	p->req = req;
	p->msgs = xcalloc((size_t)res->n, sizeof(ing_msg_t));
	I.n_pending++;
	for (int i = 0; i < res->n; i++) {
		gw_event_t *e = &res->events[i];
		bool dup = dedup_contains(I.dedup, e->dedup_key);
		for (int j = 0; j < i && !dup; j++)
			dup = strcmp(res->events[j].dedup_key, e->dedup_key) == 0;
		if (dup) {
			p->duplicates++;
			continue;
		}
		char company[24];
		snprintf(company, sizeof(company), "%ld", e->company);
		rd_kafka_headers_t *h = rd_kafka_headers_new(6);
		rd_kafka_header_add(h, "type", -1, e->type, -1);
		rd_kafka_header_add(h, "company", -1, company, -1);
		rd_kafka_header_add(h, "domain", -1, cfg_domains[e->domain], -1);
		rd_kafka_header_add(h, "channel", -1, e->channel, -1);
		rd_kafka_header_add(h, "message_id", -1, e->provider_id, -1);
		rd_kafka_header_add(h, "received_at", -1, received_at, -1);
		ing_msg_t *m = &p->msgs[p->total];
		m->p = p;
		m->domain = e->domain;
		m->dedup_key = xstrdup(e->dedup_key);
		m->bytes = e->value_len + strlen(e->key) + strlen(e->channel) + strlen(e->provider_id) + 120;
		gettimeofday(&m->produced, NULL);
		if (!kq_produce(I.producer, I.topics[e->domain], e->key, strlen(e->key), e->value, e->value_len, h, m, err,
				sizeof(err))) {
			log_warn("%s (message %s)", err, e->provider_id);
			free(m->dedup_key);
			m->dedup_key = NULL;
			p->failed++;
			continue; /* not counted in total: no report will come */
		}
		p->total++;
	}
	metrics_add(I.m_duplicates, p->duplicates);
	if (p->total == p->reported) {
		ing_answer(p);
		ing_maybe_free(p);
		return;
	}
	p->timer = evtimer_new(I.base, ing_timeout_cb, p);
	struct timeval tv = {I.cfg.ingress.ack_timeout_ms / 1000, (I.cfg.ingress.ack_timeout_ms % 1000) * 1000};
	evtimer_add(p->timer, &tv);
}

static void ing_delivery(void *opaque, rd_kafka_resp_err_t err, int32_t partition, int64_t offset, void *arg)
{
	ing_msg_t *m = opaque;
	ing_pending_t *p = m->p;
	(void)arg;
	if (err) {
		p->failed++;
		metrics_add(I.m_delivery_failed, 1);
		log_warn("delivery failed: %s", rd_kafka_err2str(err));
	} else {
		struct timeval now;
		gettimeofday(&now, NULL);
		metrics_observe(I.m_produce_seconds, (double)(now.tv_sec - m->produced.tv_sec) +
							     (double)(now.tv_usec - m->produced.tv_usec) / 1e6);
		backlog_produced(I.backlog, I.topics[m->domain], partition, offset, m->bytes);
		dedup_add(I.dedup, m->dedup_key);
		metrics_add(I.m_accepted, 1);
	}
	free(m->dedup_key);
	m->dedup_key = NULL;
	p->reported++;
	if (p->reported == p->total) {
		if (p->req)
			ing_answer(p);
		ing_maybe_free(p);
	}
}

static void ing_answer(ing_pending_t *p)
{
	char body[128];
	if (p->failed) {
		snprintf(body, sizeof(body), "%d message(s) were not acknowledged by the broker; retry", p->failed);
		ing_refuse(p->req, "not_acknowledged", body);
	} else {
		snprintf(body, sizeof(body), "{\"accepted\":%d,\"duplicates\":%d}", p->total, p->duplicates);
		http_respond_json(p->req, 200, body);
	}
	p->req = NULL;
}

static void ing_maybe_free(ing_pending_t *p)
{
	if (p->req || p->reported < p->total)
		return;
	if (p->timer)
		event_free(p->timer);
	free(p->msgs);
	free(p);
	I.n_pending--;
}

static void ing_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	ing_pending_t *p = arg;
	(void)fd, (void)what;
	if (!p->req)
		return;
	ing_refuse(p->req, "ack_timeout", "broker did not acknowledge in time; retry");
	p->req = NULL;
}

/* Asks the broker for the workers' committed offsets of every partition we produced to. */
static void ing_lag_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	ing_lag_poll();
	/* every ING_LAG_POLL_MS while a partition holds unconsumed bytes or a query is out; else
	 * only with the once-a-second tick, in which no partition can fill
	 * (max_partition_backlog_bytes is MiBs) */
	if ((I.lag_query_in_flight || backlog_max_bytes(I.backlog, NULL, 0) > 0) && !evtimer_pending(I.lag_soon, NULL)) {
		struct timeval tv = {0, ING_LAG_POLL_MS * 1000};
		evtimer_add(I.lag_soon, &tv);
	}
}

/* Takes a committed-offsets answer if one came, and asks the next pool's when none is out. */
static void ing_lag_poll(void)
{
	rd_kafka_event_t *ev;
	while ((ev = rd_kafka_queue_poll(I.admin_queue, 0))) {
		if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT)
			ing_lag_result(ev);
		rd_kafka_event_destroy(ev);
		I.lag_query_in_flight = false;
	}
	if (I.lag_query_in_flight || backlog_count(I.backlog) == 0 || I.cfg.ingress.max_partition_backlog_bytes == 0)
		return;
	/* librdkafka 2.0.2 aborts the process (`eonce->refcnt > 0`, its issues #4605 and #3663)
	 * when a group-coordinator Admin request cannot be sent on a connection that dropped:
	 * every make chaos run's broker outage killed the ingress on the broker's return. So no
	 * query while the brokers are down, nor in the seconds after they return, while the
	 * coordinator's connection comes back. */
	struct timeval now;
	event_base_gettimeofday_cached(I.base, &now);
	if (!kq_brokers_up(I.producer)) {
		I.lag_hold_until = now;
		I.lag_hold_until.tv_sec += ING_LAG_HOLD_S;
		return;
	}
	if (evutil_timercmp(&now, &I.lag_hold_until, <))
		return;
	/* one pool (consumer group) per query, in turn: the Admin API takes one group at a time */
	const cfg_pool_t *pool = &I.cfg.pools[I.lag_pool++ % I.cfg.n_pools];
	char group[256];
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(backlog_count(I.backlog));
	for (int i = 0; i < backlog_count(I.backlog); i++) {
		const char *topic;
		int32_t partition;
		backlog_get(I.backlog, i, &topic, &partition);
		for (int d = 0; d < CFG_MAX_DOMAINS; d++)
			if (pool->domains[d] && strcmp(topic, I.topics[d]) == 0)
				rd_kafka_topic_partition_list_add(parts, topic, partition);
	}
	if (parts->cnt == 0) {
		rd_kafka_topic_partition_list_destroy(parts);
		return;
	}
	rd_kafka_ListConsumerGroupOffsets_t *req =
		rd_kafka_ListConsumerGroupOffsets_new(cfg_pool_group(&I.cfg, pool, group, sizeof(group)), parts);
	rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(kq_handle(I.producer), RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);
	char err[256];
	rd_kafka_AdminOptions_set_request_timeout(opts, 5000, err, sizeof(err));
	rd_kafka_ListConsumerGroupOffsets(kq_handle(I.producer), &req, 1, opts, I.admin_queue);
	rd_kafka_ListConsumerGroupOffsets_destroy(req);
	rd_kafka_AdminOptions_destroy(opts);
	rd_kafka_topic_partition_list_destroy(parts);
	I.lag_query_in_flight = true;
}

static void ing_lag_result(rd_kafka_event_t *ev)
{
	const rd_kafka_ListConsumerGroupOffsets_result_t *r = rd_kafka_event_ListConsumerGroupOffsets_result(ev);
	size_t n = 0;
	if (rd_kafka_event_error(ev)) {
		log_debug("committed offsets query: %s", rd_kafka_event_error_string(ev));
		return;
	}
	const rd_kafka_group_result_t **groups = rd_kafka_ListConsumerGroupOffsets_result_groups(r, &n);
	for (size_t g = 0; g < n; g++) {
		const rd_kafka_topic_partition_list_t *parts = rd_kafka_group_result_partitions(groups[g]);
		for (int i = 0; parts && i < parts->cnt; i++)
			if (!parts->elems[i].err)
				backlog_committed(I.backlog, parts->elems[i].topic, parts->elems[i].partition,
						  parts->elems[i].offset);
	}
}

static void ing_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what, (void)arg;
	if (sig == SIGHUP) {
		if (!proc_reload_config(&I.cfg))
			return;
		ing_apply_limits();
		dedup_resize(I.dedup, (size_t)I.cfg.ingress.dedup_window);
		log_info("reload: %d channels", I.cfg.n_channels);
		return;
	}
	if (I.draining) {
		event_base_loopbreak(I.base);
		return;
	}
	/* drain: stop accepting, answer what is pending, flush the producer, then exit */
	log_info("draining: %d requests awaiting acknowledgement", I.n_pending);
	I.draining = true;
	http_server_stop_accepting(I.http);
	I.drain_timer = event_new(I.base, -1, EV_PERSIST, ing_drain_cb, NULL);
	struct timeval tv = {0, 20 * 1000};
	event_add(I.drain_timer, &tv);
}

static void ing_drain_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	/* every request answered: what is still queued is flushed by kq_free */
	if (I.n_pending == 0)
		event_base_loopbreak(I.base);
}

/* 503 + Retry-After, counted by reason: the gateway retries, nothing is lost. */
static void ing_refuse(http_request_t *req, const char *reason, const char *message)
{
	char ra[16], labels[64];
	snprintf(ra, sizeof(ra), "%d", I.cfg.ingress.retry_after_s);
	snprintf(labels, sizeof(labels), "reason=\"%s\"", reason);
	metrics_inc(I.m_refused, labels);
	http_response_add_header(req, "Retry-After", ra);
	http_respond_error(req, 503, message);
}

static void ing_metrics_init(void)
{
	I.m_requests = metrics_family("atende_ingress_requests_total", METRICS_COUNTER, "HTTP requests by route and status.", NULL, 0);
	I.m_request_seconds = metrics_family("atende_ingress_request_seconds", METRICS_HISTOGRAM,
					     "Time from a complete request to its answer (webhooks wait for the broker's ack).",
					     metrics_latency_buckets, metrics_latency_nbuckets);
	I.m_refused = metrics_family("atende_ingress_refused_total", METRICS_COUNTER, "Webhooks answered 503, by reason.", NULL, 0);
	I.m_accepted = metrics_series(metrics_family("atende_ingress_messages_accepted_total", METRICS_COUNTER,
						     "Messages acknowledged by the broker.", NULL, 0), "");
	I.m_duplicates = metrics_series(metrics_family("atende_ingress_duplicates_total", METRICS_COUNTER,
						       "Redelivered messages answered from the dedup window.", NULL, 0), "");
	I.m_delivery_failed = metrics_series(metrics_family("atende_ingress_delivery_failures_total", METRICS_COUNTER,
							    "Messages the broker did not acknowledge.", NULL, 0), "");
	I.m_produce_seconds = metrics_series(metrics_family("atende_ingress_produce_seconds", METRICS_HISTOGRAM,
							    "Produce to broker acknowledgement.", metrics_latency_buckets,
							    metrics_latency_nbuckets), "");
	I.m_pending = metrics_series(metrics_family("atende_ingress_pending_requests", METRICS_GAUGE,
						    "Webhooks awaiting the broker's acknowledgement.", NULL, 0), "");
	I.m_connections = metrics_series(metrics_family("atende_ingress_connections", METRICS_GAUGE, "Open HTTP connections.", NULL, 0), "");
	I.m_backlog = metrics_series(metrics_family("atende_ingress_partition_backlog_bytes", METRICS_GAUGE,
						    "Unconsumed bytes of the fullest inbound partition (backpressure input).", NULL, 0), "");
	I.m_dedup_entries = metrics_series(metrics_family("atende_ingress_dedup_entries", METRICS_GAUGE,
							  "Message ids remembered for duplicate detection.", NULL, 0), "");
	I.m_broker_up = metrics_series(metrics_family("atende_ingress_broker_up", METRICS_GAUGE,
						      "Whether a broker is reachable.", NULL, 0), "");
}

static void ing_metrics_refresh(void)
{
	size_t worst = backlog_max_bytes(I.backlog, NULL, 0);
	metrics_set(I.m_pending, I.n_pending);
	metrics_set(I.m_connections, http_server_connection_count(I.http));
	metrics_set(I.m_backlog, worst == SIZE_MAX ? -1 : (double)worst);
	metrics_set(I.m_dedup_entries, (double)dedup_count(I.dedup));
	metrics_set(I.m_broker_up, kq_brokers_up(I.producer));
}

/* Routes are a fixed set so the label cannot explode with arbitrary paths. */
static void ing_observe(const http_request_t *req, int status, double seconds, void *arg)
{
	static const char *const routes[] = {"/webhooks/evolution", "/webhooks/whatsapp", "/v1/messages", "/healthz", "/metrics"};
	const char *path = http_request_path(req), *route = "other";
	char labels[128];
	(void)arg;
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (strcmp(path, routes[i]) == 0)
			route = routes[i];
	snprintf(labels, sizeof(labels), "route=\"%s\",status=\"%d\"", route, status);
	metrics_inc(I.m_requests, labels);
	snprintf(labels, sizeof(labels), "route=\"%s\"", route);
	metrics_observe(metrics_series(I.m_request_seconds, labels), seconds);
}

static void ing_metrics(http_request_t *req)
{
	size_t len;
	ing_metrics_refresh();
	char *text = metrics_render(&len);
	http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
	free(text);
}
