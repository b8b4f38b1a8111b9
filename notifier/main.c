/*
 * atende-notifier: reads all of atende.events (no consumer group: every instance sees
 * every event) and fans events out over WebSocket to agent consoles, by channel, with
 * tenancy checks at subscribe time and exact resume from a bounded history. Also
 * serves the console page.
 */
#include "config.h"
#include "http.h"
#include "hub.h"
#include "kq.h"
#include "log.h"
#include "proc.h"
#include "token.h"
#include "ws.h"

#include <cJSON.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NTF_CONV_SLOTS (1 << 18)
#define NTF_MAX_SUBSCRIPTIONS 64

/* One console connection. */
typedef struct ntf_conn {
	struct ntf_conn *prev, *next; /* every open connection, for the drain */
	ws_conn_t *ws;
	token_claims_t claims;
	char *channels[NTF_MAX_SUBSCRIPTIONS];
	int n_channels;
	bool cut;                 /* being closed as a slow consumer: deliver nothing more */
} ntf_conn_t;

typedef struct {
	const char *path, *type;
	char *body;
	size_t len;
} ntf_file_t;

typedef struct {
	cfg_t cfg;
	struct event_base *base;
	http_server_t *http;
	kq_t *consumer;
	hub_t *hub;
	char events_topic[160];
	int partitions;
	struct { int64_t conversation; long company; } conv[NTF_CONV_SLOTS]; /* conversation -> company cache */
	ntf_file_t files[3];
	struct ntf_conn *conns;
	int n_conns;
	bool draining;
	uint64_t n_events, n_deliveries, n_slow_cuts, n_refused;
} ntf_t;

static ntf_t N;

static void ntf_http(http_request_t *req, void *arg);
static void ntf_upgrade(http_request_t *req);
static void ntf_on_ws_message(ws_conn_t *ws, const char *data, size_t len, void *arg);
static void ntf_on_ws_close(ws_conn_t *ws, int code, void *arg);
static void ntf_op_subscribe(ntf_conn_t *c, const cJSON *msg, const char *id_json);
static void ntf_op_unsubscribe(ntf_conn_t *c, const cJSON *msg, const char *id_json);
static void ntf_send(ntf_conn_t *c, const char *frame, size_t len);
static void ntf_send_error(ntf_conn_t *c, const char *id_json, const char *op, const char *error);
static void ntf_deliver(void *conn, const char *frame, size_t len, void *arg);
static long ntf_channel_company(const ntf_conn_t *c, const char *channel, char *why, size_t whylen);
static void ntf_on_event(rd_kafka_message_t *msg, void *arg);
static bool ntf_assign_all(char *err, size_t errlen);
static void ntf_load_console(void);
static void ntf_signal_cb(evutil_socket_t sig, short what, void *arg);
static void ntf_drain_cb(evutil_socket_t fd, short what, void *arg);
static void ntf_metrics(http_request_t *req);

int main(int argc, char **argv)
{
	char err[512];
	proc_load_config(argc, argv, "notifier", &N.cfg);
	signal(SIGPIPE, SIG_IGN);
	N.base = event_base_new();
	N.hub = hub_new((size_t)N.cfg.notifier.history_events, proc_epoch());
	cfg_topic(&N.cfg, "events", N.events_topic, sizeof(N.events_topic));
	ntf_load_console();

	kq_opts_t ko = {.brokers = N.cfg.kafka.brokers, .client_id = "atende-notifier", .on_message = ntf_on_event,
			.fetch_wait_max_ms = N.cfg.kafka.fetch_wait_max_ms};
	N.consumer = kq_consumer_new(N.base, &ko, err, sizeof(err));
	if (!N.consumer || !ntf_assign_all(err, sizeof(err))) {
		log_error("kafka: %s", err);
		return 1;
	}
	http_limits_t lim;
	http_limits_default(&lim);
	lim.max_connections = N.cfg.notifier.max_connections;
	lim.max_body_bytes = 65536;
	N.http = http_server_new(N.base, N.cfg.notifier.listen, &lim, ntf_http, NULL, err, sizeof(err));
	if (!N.http) {
		log_error("notifier.listen %s: %s", N.cfg.notifier.listen, err);
		return 1;
	}
	int sigs[] = {SIGTERM, SIGINT, SIGHUP};
	for (int i = 0; i < 3; i++)
		event_add(evsignal_new(N.base, sigs[i], ntf_signal_cb, NULL), NULL);
	log_info("listening on %s (WebSocket /ws, console /), reading %s (%d partitions), epoch %lld", N.cfg.notifier.listen,
		 N.events_topic, N.partitions, hub_epoch(N.hub));

	event_base_dispatch(N.base);

	http_server_free(N.http);
	kq_free(N.consumer, 0);
	hub_free(N.hub);
	log_info("stopped: %llu events, %llu deliveries", (unsigned long long)N.n_events,
		 (unsigned long long)N.n_deliveries);
	return 0;
}

/* Reads every partition of the events topic from (at most) history_events back, so
 * the resume history is warm even right after a restart. Blocking: start-up only. */
static bool ntf_assign_all(char *err, size_t errlen)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_t *rk = kq_handle(N.consumer);
	rd_kafka_topic_t *t = rd_kafka_topic_new(rk, N.events_topic, NULL);
	rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
	for (int attempt = 0; attempt < 60; attempt++) {
		e = rd_kafka_metadata(rk, 0, t, &md, 2000);
		if (!e && md->topic_cnt == 1 && md->topics[0].partition_cnt > 0 && !md->topics[0].err)
			break;
		if (!e)
			rd_kafka_metadata_destroy(md), md = NULL;
		usleep(250 * 1000); /* start-up: the broker may still be coming up */
	}
	rd_kafka_topic_destroy(t);
	if (!md) {
		snprintf(err, errlen, "no metadata for %s: %s", N.events_topic, rd_kafka_err2str(e));
		return false;
	}
	N.partitions = md->topics[0].partition_cnt;
	rd_kafka_metadata_destroy(md);
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(N.partitions);
	for (int p = 0; p < N.partitions; p++) {
		int64_t lo = 0, hi = 0;
		e = rd_kafka_query_watermark_offsets(rk, N.events_topic, p, &lo, &hi, 5000);
		if (e) {
			snprintf(err, errlen, "watermarks of %s[%d]: %s", N.events_topic, p, rd_kafka_err2str(e));
			rd_kafka_topic_partition_list_destroy(l);
			return false;
		}
		int64_t start = hi - N.cfg.notifier.history_events > lo ? hi - N.cfg.notifier.history_events : lo;
		hub_set_start(N.hub, p, start);
		rd_kafka_topic_partition_list_add(l, N.events_topic, p)->offset = start;
	}
	e = rd_kafka_assign(rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (e) {
		snprintf(err, errlen, "assign: %s", rd_kafka_err2str(e));
		return false;
	}
	return true;
}

/* A worker event: {"type","company_id","conversation_id","agent_id","data":{...}}. */
static void ntf_on_event(rd_kafka_message_t *msg, void *arg)
{
	(void)arg;
	cJSON *ev = cJSON_ParseWithLength(msg->payload, msg->len);
	const cJSON *type = cJSON_GetObjectItem(ev, "type"), *data = cJSON_GetObjectItem(ev, "data");
	const cJSON *company = cJSON_GetObjectItem(ev, "company_id"), *conv = cJSON_GetObjectItem(ev, "conversation_id");
	const cJSON *agent = cJSON_GetObjectItem(ev, "agent_id");
	if (!cJSON_IsString(type) || !cJSON_IsObject(data) || !cJSON_IsNumber(company)) {
		log_warn("skipping malformed event at %s[%d]@%lld", N.events_topic, (int)msg->partition, (long long)msg->offset);
		cJSON_Delete(ev);
		rd_kafka_message_destroy(msg);
		return;
	}
	char ch[3][64];
	const char *channels[3];
	int n = 0;
	snprintf(ch[n], sizeof(ch[n]), "company:%.0f", company->valuedouble), channels[n] = ch[n], n++;
	if (cJSON_IsNumber(agent))
		snprintf(ch[n], sizeof(ch[n]), "agent:%.0f", agent->valuedouble), channels[n] = ch[n], n++;
	if (cJSON_IsNumber(conv)) {
		int64_t id = (int64_t)conv->valuedouble;
		snprintf(ch[n], sizeof(ch[n]), "conversation:%lld", (long long)id), channels[n] = ch[n], n++;
		N.conv[(uint64_t)id % NTF_CONV_SLOTS].conversation = id;
		N.conv[(uint64_t)id % NTF_CONV_SLOTS].company = (long)company->valuedouble;
	}
	char *data_json = cJSON_PrintUnformatted(data);
	N.n_events++;
	N.n_deliveries += hub_publish(N.hub, msg->partition, msg->offset, type->valuestring, channels, n, data_json, ntf_deliver, NULL);
	free(data_json);
	cJSON_Delete(ev);
	rd_kafka_message_destroy(msg);
}

static void ntf_deliver(void *conn, const char *frame, size_t len, void *arg)
{
	(void)arg;
	ntf_send(conn, frame, len);
}

/* Sends a frame; a client whose send buffer is over the limit is cut (1008) so it
 * cannot make the notifier buffer without bound or slow anyone else. */
static void ntf_send(ntf_conn_t *c, const char *frame, size_t len)
{
	if (c->cut)
		return;
	if (!ws_conn_send_text(c->ws, frame, len)) {
		c->cut = true;
		N.n_slow_cuts++;
		log_warn("agent %ld: slow consumer (%zu bytes queued): closing", c->claims.agent, ws_conn_pending_bytes(c->ws));
		ws_conn_close(c->ws, 1008, "slow consumer");
	}
}

static void ntf_http(http_request_t *req, void *arg)
{
	(void)arg;
	const char *path = http_request_path(req);
	if (strcmp(path, "/ws") == 0) {
		ntf_upgrade(req);
		return;
	}
	if (strcmp(path, "/healthz") == 0) {
		bool up = kq_brokers_up(N.consumer) && !N.draining;
		http_respond_json(req, up ? 200 : 503, up ? "{\"ok\":true}" : "{\"ok\":false,\"error\":\"broker unreachable\"}");
		return;
	}
	if (strcmp(path, "/metrics") == 0) {
		ntf_metrics(req);
		return;
	}
	if (strcmp(path, "/") == 0)
		path = "/index.html";
	for (int i = 0; i < 3; i++)
		if (N.files[i].body && strcmp(path + 1, N.files[i].path) == 0) {
			http_response_add_header(req, "Cache-Control", "no-cache");
			http_respond(req, 200, N.files[i].type, N.files[i].body, N.files[i].len);
			return;
		}
	http_respond_error(req, 404, "no such path");
}

static void ntf_upgrade(http_request_t *req)
{
	char token[TOKEN_MAX_LEN], response[512];
	const char *reason = NULL;
	token_claims_t claims;
	if (!http_request_query_param(req, "token", token, sizeof(token))) {
		N.n_refused++;
		http_respond_error(req, 401, "missing token (GET /ws?token=...)");
		return;
	}
	token_status_t st = token_verify(N.cfg.auth.token_secret, token, (long)time(NULL), &claims);
	if (st != TOKEN_OK) {
		char msg[128];
		N.n_refused++;
		snprintf(msg, sizeof(msg), "token refused: %s", token_status_text(st));
		http_respond_error(req, 401, msg);
		return;
	}
	const char *origin = http_request_header(req, "Origin");
	if (origin && N.cfg.notifier.allowed_origins[0]) {
		bool ok = false;
		char list[1024];
		snprintf(list, sizeof(list), "%s", N.cfg.notifier.allowed_origins);
		for (char *save, *o = strtok_r(list, " ,", &save); o; o = strtok_r(NULL, " ,", &save))
			ok |= strcmp(o, origin) == 0;
		if (!ok) {
			http_respond_error(req, 403, "Origin not allowed");
			return;
		}
	}
	if (!ws_handshake_response(http_request_header(req, "Upgrade"), http_request_header(req, "Connection"),
				   http_request_header(req, "Sec-WebSocket-Key"), http_request_header(req, "Sec-WebSocket-Version"),
				   response, sizeof(response), &reason)) {
		http_respond_error(req, 400, reason ? reason : "not a WebSocket upgrade");
		return;
	}
	if (N.draining) {
		http_respond_error(req, 503, "shutting down");
		return;
	}
	struct bufferevent *bev = http_request_take_connection(req);
	bufferevent_write(bev, response, strlen(response));
	ntf_conn_t *c = calloc(1, sizeof(*c));
	c->claims = claims;
	ws_limits_t wl = {.max_message_bytes = 65536, .max_send_buffer = (size_t)N.cfg.notifier.max_send_buffer,
			  .ping_interval_ms = N.cfg.notifier.ping_interval_s * 1000};
	ws_callbacks_t cb = {.on_message = ntf_on_ws_message, .on_close = ntf_on_ws_close};
	c->ws = ws_conn_new(bev, false, &wl, &cb, c);
	c->next = N.conns;
	if (N.conns)
		N.conns->prev = c;
	N.conns = c;
	N.n_conns++;
	log_debug("agent %ld (company %ld, %s) connected", claims.agent, claims.company, claims.role);
}

static void ntf_on_ws_close(ws_conn_t *ws, int code, void *arg)
{
	ntf_conn_t *c = arg;
	(void)ws;
	for (int i = 0; i < c->n_channels; i++) {
		hub_unsubscribe(N.hub, c->channels[i], c);
		free(c->channels[i]);
	}
	log_debug("agent %ld disconnected (%d)", c->claims.agent, code);
	if (c->prev)
		c->prev->next = c->next;
	else
		N.conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
	N.n_conns--;
}

static void ntf_on_ws_message(ws_conn_t *ws, const char *data, size_t len, void *arg)
{
	ntf_conn_t *c = arg;
	(void)ws;
	cJSON *msg = cJSON_ParseWithLength(data, len);
	const cJSON *op = cJSON_GetObjectItem(msg, "op");
	char *id_json = NULL;
	if (cJSON_GetObjectItem(msg, "id"))
		id_json = cJSON_PrintUnformatted(cJSON_GetObjectItem(msg, "id"));
	if (!msg || !cJSON_IsObject(msg))
		ntf_send_error(c, NULL, NULL, "frame is not a JSON object");
	else if (!cJSON_IsString(op))
		ntf_send_error(c, id_json, NULL, "missing field: op");
	else if (strcmp(op->valuestring, "subscribe") == 0)
		ntf_op_subscribe(c, msg, id_json);
	else if (strcmp(op->valuestring, "unsubscribe") == 0)
		ntf_op_unsubscribe(c, msg, id_json);
	else if (strcmp(op->valuestring, "typing") == 0 || strcmp(op->valuestring, "reply") == 0 ||
		 strcmp(op->valuestring, "transfer") == 0)
		ntf_send_error(c, id_json, op->valuestring, "op not available yet in this version");
	else
		ntf_send_error(c, id_json, op->valuestring, "unknown op");
	free(id_json);
	cJSON_Delete(msg);
}

/* Which company a channel belongs to, if this connection may subscribe to it; -1 with
 * a reason otherwise. Tenancy: nobody sees another company's anything. */
static long ntf_channel_company(const ntf_conn_t *c, const char *channel, char *why, size_t whylen)
{
	char *end;
	const char *colon = strchr(channel, ':');
	long id = colon ? strtol(colon + 1, &end, 10) : 0;
	if (!colon || id <= 0 || *end) {
		snprintf(why, whylen, "bad channel \"%s\" (agent:A, conversation:ID, company:C or presence:C)", channel);
		return -1;
	}
	size_t plen = (size_t)(colon - channel);
	if (plen == 7 && strncmp(channel, "company", 7) == 0)
		goto same_company;
	if (plen == 8 && strncmp(channel, "presence", 8) == 0)
		goto same_company;
	if (plen == 5 && strncmp(channel, "agent", 5) == 0) {
		if (id == c->claims.agent)
			return c->claims.company;
		const cfg_company_t *co = cfg_company_find(&N.cfg, c->claims.company);
		if (strcmp(c->claims.role, "supervisor") == 0 && co && id >= co->agent_first && id <= co->agent_last)
			return c->claims.company;
		snprintf(why, whylen, "%s", strcmp(c->claims.role, "supervisor") == 0 ? "agent is not in your company"
										      : "agents may subscribe only to their own agent channel");
		return -1;
	}
	if (plen == 12 && strncmp(channel, "conversation", 12) == 0) {
		uint64_t slot = (uint64_t)id % NTF_CONV_SLOTS;
		if (N.conv[slot].conversation == id && N.conv[slot].company == c->claims.company)
			return c->claims.company;
		snprintf(why, whylen, "conversation %ld is not known in your company", id);
		return -1;
	}
	snprintf(why, whylen, "unknown channel type in \"%s\"", channel);
	return -1;
same_company:
	if (id != c->claims.company) {
		snprintf(why, whylen, "channel %s belongs to another company", channel);
		return -1;
	}
	return id;
}

static void ntf_op_subscribe(ntf_conn_t *c, const cJSON *msg, const char *id_json)
{
	const cJSON *ch = cJSON_GetObjectItem(msg, "channel");
	const cJSON *since = cJSON_GetObjectItem(msg, "since"), *epoch = cJSON_GetObjectItem(msg, "epoch");
	char why[160], frame[512];
	if (!cJSON_IsString(ch)) {
		ntf_send_error(c, id_json, "subscribe", "missing field: channel");
		return;
	}
	long company = ntf_channel_company(c, ch->valuestring, why, sizeof(why));
	if (company < 0) {
		ntf_send_error(c, id_json, "subscribe", why);
		return;
	}
	bool already = false;
	for (int i = 0; i < c->n_channels; i++)
		already |= strcmp(c->channels[i], ch->valuestring) == 0;
	if (!already) {
		if (c->n_channels == NTF_MAX_SUBSCRIPTIONS) {
			ntf_send_error(c, id_json, "subscribe", "too many subscriptions on one connection");
			return;
		}
		c->channels[c->n_channels++] = strdup(ch->valuestring);
		hub_subscribe(N.hub, ch->valuestring, c);
	}
	int32_t partition = (int32_t)(company % N.partitions);
	int64_t last = hub_last_seq(N.hub, partition);
	snprintf(frame, sizeof(frame), "{\"type\":\"ack\",\"op\":\"subscribe\",\"id\":%s,\"channel\":\"%s\",\"seq\":%lld,\"epoch\":%lld}",
		 id_json ? id_json : "null", ch->valuestring, (long long)last, hub_epoch(N.hub));
	ntf_send(c, frame, strlen(frame));
	if (!cJSON_IsNumber(since))
		return;
	const char *reason = NULL;
	if (cJSON_IsNumber(epoch) && (long long)epoch->valuedouble != hub_epoch(N.hub))
		reason = "epoch changed: the event stream was reset";
	else if (!hub_replay(N.hub, ch->valuestring, partition, (int64_t)since->valuedouble, c, ntf_deliver, NULL))
		reason = "history no longer covers the requested seq";
	if (reason) {
		char data[128];
		snprintf(data, sizeof(data), "{\"reason\":\"%s\"}", reason);
		size_t n = hub_frame(frame, sizeof(frame), "reset", ch->valuestring, last, hub_epoch(N.hub), data);
		ntf_send(c, frame, n);
	}
}

static void ntf_op_unsubscribe(ntf_conn_t *c, const cJSON *msg, const char *id_json)
{
	const cJSON *ch = cJSON_GetObjectItem(msg, "channel");
	char frame[256];
	if (!cJSON_IsString(ch)) {
		ntf_send_error(c, id_json, "unsubscribe", "missing field: channel");
		return;
	}
	for (int i = 0; i < c->n_channels; i++)
		if (strcmp(c->channels[i], ch->valuestring) == 0) {
			hub_unsubscribe(N.hub, c->channels[i], c);
			free(c->channels[i]);
			c->channels[i] = c->channels[--c->n_channels];
			break;
		}
	snprintf(frame, sizeof(frame), "{\"type\":\"ack\",\"op\":\"unsubscribe\",\"id\":%s,\"channel\":\"%.100s\"}",
		 id_json ? id_json : "null", ch->valuestring);
	ntf_send(c, frame, strlen(frame));
}

static void ntf_send_error(ntf_conn_t *c, const char *id_json, const char *op, const char *error)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "error");
	if (id_json)
		cJSON_AddRawToObject(o, "id", id_json);
	if (op)
		cJSON_AddStringToObject(o, "op", op);
	cJSON_AddStringToObject(o, "error", error);
	char *s = cJSON_PrintUnformatted(o);
	ntf_send(c, s, strlen(s));
	free(s);
	cJSON_Delete(o);
}

/* Console files are small: read once at start (and on SIGHUP), served from memory. */
static void ntf_load_console(void)
{
	static const char *const names[3][2] = {{"index.html", "text/html; charset=utf-8"},
						{"app.js", "application/javascript; charset=utf-8"},
						{"style.css", "text/css; charset=utf-8"}};
	char dir[1024], path[1200];
	proc_find_path(N.cfg.notifier.console_dir, dir, sizeof(dir));
	for (int i = 0; i < 3; i++) {
		ntf_file_t *f = &N.files[i];
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
		f->body = malloc((size_t)n + 1);
		f->len = fread(f->body, 1, (size_t)n, fp);
		fclose(fp);
	}
}

static void ntf_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what, (void)arg;
	if (sig == SIGHUP) {
		cfg_t scratch;
		char err[8192];
		if (!cfg_load(N.cfg.path, &scratch, err, sizeof(err))) {
			log_error("reload: keeping the current configuration:\n%s", err);
			cfg_free(&scratch);
			return;
		}
		proc_apply_env(&scratch);
		cfg_apply_reload(&N.cfg, &scratch);
		cfg_free(&scratch);
		log_set_level((log_level_t)log_level_parse(N.cfg.log.level));
		ntf_load_console();
		log_info("reload: applied");
		return;
	}
	if (N.draining) {
		event_base_loopbreak(N.base);
		return;
	}
	/* close every console with 1001 (going away); they reconnect to another instance or later */
	N.draining = true;
	http_server_stop_accepting(N.http);
	log_info("draining: closing %d connections", N.n_conns);
	for (ntf_conn_t *c = N.conns, *next; c; c = next) {
		next = c->next;
		if (!c->cut) {
			c->cut = true;
			ws_conn_close(c->ws, 1001, "server shutting down");
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
	if (N.n_conns == 0 || ++ticks > 150)
		event_base_loopbreak(N.base);
}

static void ntf_metrics(http_request_t *req)
{
	char buf[2048];
	int n = snprintf(buf, sizeof(buf),
			 "# TYPE atende_notifier_connections gauge\natende_notifier_connections %d\n"
			 "# TYPE atende_notifier_events_total counter\natende_notifier_events_total %llu\n"
			 "# TYPE atende_notifier_deliveries_total counter\natende_notifier_deliveries_total %llu\n"
			 "# TYPE atende_notifier_slow_consumer_cuts_total counter\natende_notifier_slow_consumer_cuts_total %llu\n"
			 "# TYPE atende_notifier_handshakes_refused_total counter\natende_notifier_handshakes_refused_total %llu\n",
			 N.n_conns, (unsigned long long)N.n_events, (unsigned long long)N.n_deliveries,
			 (unsigned long long)N.n_slow_cuts, (unsigned long long)N.n_refused);
	http_respond(req, 200, "text/plain; version=0.0.4", buf, (size_t)n);
}
