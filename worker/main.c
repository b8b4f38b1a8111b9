/*
 * atende-worker: one member of the workers' consumer group. Consumed messages are
 * stored in batches (one PostgreSQL round trip per batch, idempotent on redelivery),
 * hinted by the configured provider, published as `message` and `hint` events, and
 * their offsets committed only once all of that is durable.
 */
#include "config.h"
#include "db.h"
#include "json.h"
#include "kq.h"
#include "log.h"
#include "metrics.h"
#include "proc.h"
#include "rules.h"
#include "text.h"
#include "track.h"

#include <cJSON.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define WRK_MAX_IN_FLIGHT 20000
#define WRK_COMMIT_MS 200

/* One consumed message on its way through the batch. */
typedef struct {
	track_item_t *track;
	char topic[128];       /* where it was consumed from (for the DLQ) */
	int32_t partition;
	int64_t offset;
	cJSON *event;          /* the canonical inbound event */
	bool hinted;           /* a hint was attached for storage */
	rules_result_t rules;
	double consumed_at;
} wrk_item_t;

/* A batch stored in one round trip; freed when every event it produced is acknowledged. */
typedef struct {
	wrk_item_t *items;
	int n;
	int outstanding;       /* event deliveries not yet reported */
	int attempts;
	double sent_at;        /* when the store query was queued */
} wrk_batch_t;

typedef struct {
	cfg_t cfg;
	struct event_base *base;
	kq_t *consumer, *producer;
	db_t *db;
	track_t *track;
	wrk_batch_t *open;      /* batch being filled */
	struct event *flush_ev, *commit_ev, *drain_ev;
	char events_topic[160], dlq_topic[160];
	bool draining, paused;
	int index;
	/* metrics */
	metrics_series_t *m_stored, *m_duplicates, *m_hints_rules, *m_dlq, *m_batch_size, *m_db_seconds;
	metrics_series_t *m_in_flight, *m_db_pending, *m_event_failures, *m_rebalances, *m_hint_latency;
	metrics_family_t *m_lag;
} wrk_t;

static wrk_t W;

static void wrk_on_message(rd_kafka_message_t *msg, void *arg);
static void wrk_on_rebalance(kq_t *kq, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts, void *arg);
static void wrk_on_delivery(void *opaque, rd_kafka_resp_err_t err, int32_t partition, int64_t offset, void *arg);
static void wrk_flush_cb(evutil_socket_t fd, short what, void *arg);
static void wrk_store(wrk_batch_t *b);
static void wrk_stored(PGresult *res, void *arg);
static void wrk_retry_cb(evutil_socket_t fd, short what, void *arg);
static void wrk_publish(wrk_batch_t *b, wrk_item_t *it, PGresult *res, int row);
static void wrk_batch_release(wrk_batch_t *b);
static void wrk_dead_letter(const wrk_item_t *it, const void *value, size_t len, const char *why, int attempts);
static void wrk_dlq_stored(PGresult *res, void *arg);
static void wrk_commit_cb(evutil_socket_t fd, short what, void *arg);
static void wrk_commit_one(const char *topic, int32_t partition, int64_t next, void *arg);
static void wrk_signal_cb(evutil_socket_t sig, short what, void *arg);
static void wrk_drain_cb(evutil_socket_t fd, short what, void *arg);
static void wrk_flow_control(void);
static bool wrk_coachable(const cJSON *ev);
static double wrk_now(void);
static void wrk_metrics_init(void);
static void wrk_metrics_refresh(void);
static void wrk_on_lag(const char *topic, int32_t partition, int64_t lag, void *arg);

int main(int argc, char **argv)
{
	char err[512], topics[CFG_MAX_DOMAINS][160];
	const char *topic_ptrs[CFG_MAX_DOMAINS];
	W.index = proc_index();
	proc_load_config(argc, argv, "worker", &W.cfg);
	signal(SIGPIPE, SIG_IGN);
	W.base = event_base_new();
	W.track = track_new();
	cfg_topic(&W.cfg, "events", W.events_topic, sizeof(W.events_topic));
	cfg_topic(&W.cfg, "dlq", W.dlq_topic, sizeof(W.dlq_topic));

	W.db = db_new(W.base, W.cfg.postgres.conninfo, "worker");
	kq_opts_t po = {.brokers = W.cfg.kafka.brokers, .client_id = "atende-worker", .linger_ms = 2,
			.on_delivery = wrk_on_delivery};
	W.producer = kq_producer_new(W.base, &po, err, sizeof(err));
	kq_opts_t co = {.brokers = W.cfg.kafka.brokers, .client_id = "atende-worker", .group = W.cfg.kafka.group,
			.session_timeout_ms = W.cfg.kafka.session_timeout_ms,
			.fetch_wait_max_ms = W.cfg.kafka.fetch_wait_max_ms, .on_message = wrk_on_message,
			.on_rebalance = wrk_on_rebalance, .on_lag = wrk_on_lag};
	W.consumer = W.producer ? kq_consumer_new(W.base, &co, err, sizeof(err)) : NULL;
	if (!W.producer || !W.consumer) {
		log_error("kafka: %s", err);
		return 1;
	}
	for (int d = 0; d < CFG_MAX_DOMAINS; d++)
		topic_ptrs[d] = cfg_topic(&W.cfg, cfg_domains[d], topics[d], sizeof(topics[d]));
	if (!kq_subscribe(W.consumer, topic_ptrs, CFG_MAX_DOMAINS, err, sizeof(err))) {
		log_error("%s", err);
		return 1;
	}
	wrk_metrics_init();
	char mpath[1200];
	metrics_export_start(W.base, proc_metrics_path(&W.cfg, "worker", W.index, mpath, sizeof(mpath)), 1000,
			     wrk_metrics_refresh);
	W.flush_ev = evtimer_new(W.base, wrk_flush_cb, NULL);
	W.commit_ev = event_new(W.base, -1, EV_PERSIST, wrk_commit_cb, NULL);
	struct timeval tv = {0, WRK_COMMIT_MS * 1000};
	event_add(W.commit_ev, &tv);
	int sigs[] = {SIGTERM, SIGINT, SIGHUP};
	for (int i = 0; i < 3; i++)
		event_add(evsignal_new(W.base, sigs[i], wrk_signal_cb, NULL), NULL);
	log_info("worker %d consuming %s.inbound.* in group %s", W.index, W.cfg.kafka.topic_prefix, W.cfg.kafka.group);

	event_base_dispatch(W.base);

	/* final synchronous commit of everything handled, then leave the group */
	rd_kafka_topic_partition_list_t *final = rd_kafka_topic_partition_list_new(16);
	track_all_positions(W.track, wrk_commit_one, final);
	if (final->cnt) {
		rd_kafka_resp_err_t e = rd_kafka_commit(kq_handle(W.consumer), final, 0);
		if (e)
			log_warn("final commit: %s", rd_kafka_err2str(e));
	}
	rd_kafka_topic_partition_list_destroy(final);
	kq_free(W.consumer, 0);
	kq_free(W.producer, 5000);
	db_free(W.db);
	log_info("stopped");
	return 0;
}

static void wrk_on_message(rd_kafka_message_t *msg, void *arg)
{
	(void)arg;
	wrk_item_t item = {.track = track_add(W.track, rd_kafka_topic_name(msg->rkt), msg->partition, msg->offset),
			   .partition = msg->partition, .offset = msg->offset};
	track_item_t *tr = item.track;
	snprintf(item.topic, sizeof(item.topic), "%s", rd_kafka_topic_name(msg->rkt));
	cJSON *ev = cJSON_ParseWithLength(msg->payload, msg->len);
	const cJSON *type = cJSON_GetObjectItem(ev, "type");
	if (!ev || !cJSON_IsString(type) || !json_str(ev, "provider_id") || !json_str(ev, "channel") ||
	    !cJSON_IsNumber(cJSON_GetObjectItem(ev, "company"))) {
		/* retrying cannot fix bad data: dead-letter at once */
		wrk_dead_letter(&item, msg->payload, msg->len, ev ? "missing type, provider_id, channel or company" : "not JSON", 1);
		cJSON_Delete(ev);
		rd_kafka_message_destroy(msg);
		return;
	}
	rd_kafka_message_destroy(msg);
	if (strcmp(type->valuestring, "message") != 0) {
		/* delivery/read statuses are not stored yet: nothing to do but move on */
		cJSON_Delete(ev);
		track_done(W.track, tr);
		return;
	}
	if (!W.open) {
		W.open = calloc(1, sizeof(wrk_batch_t));
		W.open->items = calloc((size_t)W.cfg.workers.batch_size, sizeof(wrk_item_t));
		struct timeval zero = {0, 0};
		evtimer_add(W.flush_ev, &zero); /* runs after this drain pass: batches what arrived together */
	}
	wrk_item_t *it = &W.open->items[W.open->n++];
	*it = item;
	it->event = ev;
	it->consumed_at = wrk_now();
	if (wrk_coachable(ev)) {
		struct timeval t0, t1;
		gettimeofday(&t0, NULL);
		rules_classify(cJSON_GetObjectItem(ev, "text")->valuestring, cJSON_GetObjectItem(ev, "domain")->valuestring,
			       &it->rules);
		gettimeofday(&t1, NULL);
		it->hinted = true;
		cJSON *h = cJSON_AddObjectToObject(ev, "hint");
		cJSON_AddStringToObject(h, "intent", rules_intent_name(it->rules.intent));
		cJSON_AddBoolToObject(h, "critical", it->rules.critical);
		cJSON_AddStringToObject(h, "text", it->rules.text);
		cJSON_AddStringToObject(h, "source", "rules");
		cJSON_AddNullToObject(h, "model");
		cJSON_AddNumberToObject(h, "latency_ms",
					(double)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_usec - t0.tv_usec) / 1000));
	}
	if (W.open->n == W.cfg.workers.batch_size) {
		evtimer_del(W.flush_ev);
		wrk_flush_cb(-1, 0, NULL);
	}
	wrk_flow_control();
}

/* Customer text long enough to coach (characters, not bytes: Portuguese has accents). */
static bool wrk_coachable(const cJSON *ev)
{
	const cJSON *text = cJSON_GetObjectItem(ev, "text");
	if (!W.cfg.coaching.enabled || cJSON_IsTrue(cJSON_GetObjectItem(ev, "from_me")) || !cJSON_IsString(text) ||
	    !cJSON_IsString(cJSON_GetObjectItem(ev, "domain")))
		return false;
	return text_utf8_length(text->valuestring) >= (size_t)W.cfg.coaching.min_message_length &&
	       text->valuestring[0] != 0;
}

static void wrk_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	wrk_batch_t *b = W.open;
	W.open = NULL;
	if (b && b->n)
		wrk_store(b);
}

static void wrk_store(wrk_batch_t *b)
{
	cJSON *arr = cJSON_CreateArray();
	for (int i = 0; i < b->n; i++)
		cJSON_AddItemReferenceToArray(arr, b->items[i].event);
	char *json = cJSON_PrintUnformatted(arr);
	cJSON_Delete(arr);
	const char *params[1] = {json};
	b->attempts++;
	b->sent_at = wrk_now();
	metrics_observe(W.m_batch_size, b->n);
	if (!db_query(W.db, "SELECT * FROM atende_ingest($1::jsonb)", 1, params, wrk_stored, b)) {
		struct timeval later = {0, 100 * 1000};
		log_error("database queue full: retrying a batch of %d in 100 ms", b->n);
		event_base_once(W.base, -1, EV_TIMEOUT, wrk_retry_cb, b, &later);
	}
	free(json);
}

static void wrk_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	wrk_store(arg);
}

static void wrk_stored(PGresult *res, void *arg)
{
	wrk_batch_t *b = arg;
	if (!res) {
		/* connection lost: the batch may or may not have run; storing is idempotent, so
		 * queue it again (db holds it until the connection is back) */
		wrk_store(b);
		return;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		const char *e = PQresultErrorMessage(res);
		if (b->n > 1) {
			/* one bad message must not hold back the rest: store them one by one */
			log_warn("batch of %d failed (%.*s); retrying one by one", b->n, (int)strcspn(e, "\n"), e);
			for (int i = 0; i < b->n; i++) {
				wrk_batch_t *one = calloc(1, sizeof(*one));
				one->items = calloc(1, sizeof(wrk_item_t));
				one->items[0] = b->items[i];
				one->n = 1;
				wrk_store(one);
			}
			free(b->items);
			free(b);
			return;
		}
		if (b->attempts < W.cfg.workers.retries) {
			int ms = 200 << (b->attempts - 1); /* 200 ms, 400 ms, ...: a lock or a restart may pass */
			struct timeval later = {ms / 1000, (ms % 1000) * 1000};
			log_warn("message %s failed (attempt %d of %d): %.*s", json_str(b->items[0].event, "provider_id"),
				 b->attempts, W.cfg.workers.retries, (int)strcspn(e, "\n"), e);
			event_base_once(W.base, -1, EV_TIMEOUT, wrk_retry_cb, b, &later);
			return;
		}
		char *v = cJSON_PrintUnformatted(b->items[0].event);
		wrk_dead_letter(&b->items[0], v, strlen(v), e, b->attempts);
		free(v);
		cJSON_Delete(b->items[0].event);
		free(b->items);
		free(b);
		return;
	}
	metrics_observe(W.m_db_seconds, wrk_now() - b->sent_at);
	b->outstanding = 1; /* held until every event below is queued */
	for (int i = 0; i < b->n && i < PQntuples(res); i++)
		wrk_publish(b, &b->items[i], res, i);
	wrk_batch_release(b);
}

/* Row columns: r_idx, r_message_id, r_conversation_id, r_agent_id, r_inserted, r_hint_id, r_hint_inserted */
static void wrk_publish(wrk_batch_t *b, wrk_item_t *it, PGresult *res, int row)
{
	char err[256], company[24], now[40];
	bool inserted = PQgetvalue(res, row, 4)[0] == 't';
	bool hint_inserted = PQgetvalue(res, row, 6)[0] == 't';
	const char *agent = PQgetisnull(res, row, 3) ? NULL : PQgetvalue(res, row, 3);
	cJSON *ev = it->event;
	double company_id = cJSON_GetObjectItem(ev, "company")->valuedouble;
	double conversation_id = atof(PQgetvalue(res, row, 2));
	snprintf(company, sizeof(company), "%.0f", company_id);
	metrics_add(inserted ? W.m_stored : W.m_duplicates, 1);
	for (int kind = 0; kind < 2; kind++) {
		if ((kind == 0 && !inserted) || (kind == 1 && !hint_inserted))
			continue;
		cJSON *out = cJSON_CreateObject(), *data = cJSON_CreateObject();
		cJSON_AddStringToObject(out, "type", kind == 0 ? "message" : "hint");
		cJSON_AddNumberToObject(out, "company_id", company_id);
		cJSON_AddNumberToObject(out, "conversation_id", conversation_id);
		if (agent)
			cJSON_AddNumberToObject(out, "agent_id", atof(agent));
		else
			cJSON_AddNullToObject(out, "agent_id"); /* no agent in the company yet */
		cJSON_AddStringToObject(data, "message_id", cJSON_GetObjectItem(ev, "provider_id")->valuestring);
		cJSON_AddNumberToObject(data, "conversation_id", conversation_id);
		cJSON_AddStringToObject(data, "conversation_key", json_str(ev, "conversation"));
		cJSON_AddNumberToObject(data, "company_id", company_id);
		if (agent)
			cJSON_AddNumberToObject(data, "agent_id", atof(agent));
		else
			cJSON_AddNullToObject(data, "agent_id");
		cJSON_AddStringToObject(data, "domain", json_str(ev, "domain"));
		if (kind == 0) {
			cJSON_AddNumberToObject(data, "db_id", atof(PQgetvalue(res, row, 1)));
			cJSON_AddStringToObject(data, "channel", json_str(ev, "channel"));
			cJSON_AddStringToObject(data, "customer", json_str(ev, "customer"));
			json_add_str_or_null(data, "sender_name", json_str(ev, "sender_name"));
			cJSON_AddBoolToObject(data, "from_me", cJSON_IsTrue(cJSON_GetObjectItem(ev, "from_me")));
			cJSON_AddStringToObject(data, "kind", json_str(ev, "kind"));
			cJSON_AddStringToObject(data, "text", json_str(ev, "text"));
			cJSON *media = cJSON_GetObjectItem(ev, "media");
			if (cJSON_IsObject(media))
				cJSON_AddItemToObject(data, "media", cJSON_Duplicate(media, true));
			cJSON_AddStringToObject(data, "created_at", json_str(ev, "received_at"));
		} else {
			cJSON *ids = cJSON_AddArrayToObject(data, "message_ids");
			cJSON_AddItemToArray(ids, cJSON_CreateString(cJSON_GetObjectItem(ev, "provider_id")->valuestring));
			cJSON_AddNumberToObject(data, "hint_id", atof(PQgetvalue(res, row, 5)));
			cJSON_AddStringToObject(data, "intent", rules_intent_name(it->rules.intent));
			cJSON_AddBoolToObject(data, "critical", it->rules.critical);
			cJSON_AddStringToObject(data, "text", it->rules.text);
			cJSON_AddStringToObject(data, "source", "rules");
			cJSON_AddBoolToObject(data, "from_cache", false);
			json_iso_now(now, sizeof(now));
			cJSON_AddStringToObject(data, "created_at", now);
			cJSON_AddStringToObject(data, "received_at", json_str(ev, "received_at"));
			metrics_add(W.m_hints_rules, 1);
			metrics_observe(W.m_hint_latency, wrk_now() - it->consumed_at);
		}
		cJSON_AddItemToObject(out, "data", data);
		char *json = cJSON_PrintUnformatted(out);
		cJSON_Delete(out);
		rd_kafka_headers_t *h = rd_kafka_headers_new(2);
		rd_kafka_header_add(h, "type", -1, kind == 0 ? "message" : "hint", -1);
		rd_kafka_header_add(h, "company", -1, company, -1);
		if (kq_produce_to(W.producer, W.events_topic, (int32_t)((long)company_id % W.cfg.kafka.partitions), company,
				  strlen(company), json, strlen(json), h, b, err, sizeof(err)))
			b->outstanding++;
		else {
			metrics_add(W.m_event_failures, 1);
			log_error("event for message %s not published: %s", json_str(ev, "provider_id"), err);
		}
		free(json);
	}
}

static void wrk_on_delivery(void *opaque, rd_kafka_resp_err_t err, int32_t partition, int64_t offset, void *arg)
{
	(void)partition, (void)offset, (void)arg;
	if (err) {
		metrics_add(W.m_event_failures, 1);
		log_error("event delivery failed: %s", rd_kafka_err2str(err));
	}
	if (opaque)
		wrk_batch_release(opaque);
}

/* Drops one reference; the last one marks every message of the batch handled. */
static void wrk_batch_release(wrk_batch_t *b)
{
	if (--b->outstanding > 0)
		return;
	for (int i = 0; i < b->n; i++) {
		track_done(W.track, b->items[i].track);
		cJSON_Delete(b->items[i].event);
	}
	free(b->items);
	free(b);
	wrk_flow_control();
}

/* A message that cannot be processed goes to atende.dlq (error, origin and attempts in
 * headers) and to the dlq table; the partition moves on once both have it. */
static void wrk_dead_letter(const wrk_item_t *it, const void *value, size_t len, const char *why, int attempts)
{
	char err[256], part[16], off[24], att[16], company[24] = "";
	size_t why_len = strcspn(why, "\n");
	log_error("dead-lettering %s[%d]@%lld after %d attempt(s): %.*s", it->topic, (int)it->partition,
		  (long long)it->offset, attempts, (int)why_len, why);
	wrk_batch_t *b = calloc(1, sizeof(*b));
	b->items = calloc(1, sizeof(wrk_item_t));
	b->items[0].track = it->track;
	b->n = 1;
	b->outstanding = 2; /* the topic's ack and the table's insert */
	snprintf(part, sizeof(part), "%d", (int)it->partition);
	snprintf(off, sizeof(off), "%lld", (long long)it->offset);
	snprintf(att, sizeof(att), "%d", attempts);
	rd_kafka_headers_t *h = rd_kafka_headers_new(5);
	rd_kafka_header_add(h, "error", -1, why, (ssize_t)why_len);
	rd_kafka_header_add(h, "topic", -1, it->topic, -1);
	rd_kafka_header_add(h, "partition", -1, part, -1);
	rd_kafka_header_add(h, "offset", -1, off, -1);
	rd_kafka_header_add(h, "attempts", -1, att, -1);
	metrics_add(W.m_dlq, 1);
	if (!kq_produce(W.producer, W.dlq_topic, NULL, 0, value, len, h, b, err, sizeof(err))) {
		log_error("dead letter not queued on %s: %s", W.dlq_topic, err);
		b->outstanding--;
	}
	/* the payload as text: a NUL or invalid UTF-8 would make the row unstorable */
	char *payload = text_utf8_sanitize(value, len);
	char *why_copy = strndup(why, why_len);
	cJSON *ev = cJSON_ParseWithLength(value, len);
	if (cJSON_IsNumber(cJSON_GetObjectItem(ev, "company")))
		snprintf(company, sizeof(company), "%.0f", json_num(ev, "company", 0));
	const char *params[9] = {it->topic, part, off, json_str(ev, "conversation"), payload, why_copy, att,
				 company[0] ? company : NULL, json_str(ev, "provider_id")};
	if (!db_query(W.db,
		      "INSERT INTO dlq (topic, partition, \"offset\", msg_key, payload, error, attempts, company_id, provider_id) "
		      "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (topic, partition, \"offset\") DO NOTHING",
		      9, params, wrk_dlq_stored, b))
		wrk_dlq_stored(NULL, b);
	cJSON_Delete(ev);
	free(why_copy);
	free(payload);
}

static void wrk_dlq_stored(PGresult *res, void *arg)
{
	if (!db_ok(res, "dlq insert"))
		log_error("dead letter kept only on the topic (the table insert failed)");
	wrk_batch_release(arg);
}

static void wrk_commit_one(const char *topic, int32_t partition, int64_t next, void *arg)
{
	rd_kafka_topic_partition_list_add(arg, topic, partition)->offset = next;
}

static void wrk_commit_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
	track_commits(W.track, wrk_commit_one, l);
	if (l->cnt)
		kq_commit(W.consumer, l);
	rd_kafka_topic_partition_list_destroy(l);
}

static void wrk_on_rebalance(kq_t *kq, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts, void *arg)
{
	(void)kq, (void)arg;
	metrics_add(W.m_rebalances, 1);
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		log_info("assigned %d partitions", parts->cnt);
		return;
	}
	/* commit what is finished (may fail while the group rebalances: the new owner then
	 * redelivers it, and storing is idempotent), then forget the partitions */
	wrk_commit_cb(-1, 0, NULL);
	for (int i = 0; i < parts->cnt; i++)
		track_revoke(W.track, parts->elems[i].topic, parts->elems[i].partition);
	log_info("revoked %d partitions", parts->cnt);
}

static void wrk_flow_control(void)
{
	int n = track_in_flight(W.track);
	if (!W.paused && n >= WRK_MAX_IN_FLIGHT) {
		W.paused = true;
		kq_pause(W.consumer, true);
	} else if (W.paused && !W.draining && n < WRK_MAX_IN_FLIGHT / 2) {
		W.paused = false;
		kq_pause(W.consumer, false);
	}
}

static void wrk_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what, (void)arg;
	if (sig == SIGHUP) {
		cfg_t scratch;
		char err[8192];
		if (!cfg_load(W.cfg.path, &scratch, err, sizeof(err))) {
			log_error("reload: keeping the current configuration:\n%s", err);
			cfg_free(&scratch);
			return;
		}
		proc_apply_env(&scratch);
		int old_batch = W.cfg.workers.batch_size;
		cfg_apply_reload(&W.cfg, &scratch);
		cfg_free(&scratch);
		if (W.open && W.cfg.workers.batch_size < old_batch)
			wrk_flush_cb(-1, 0, NULL); /* the open batch was sized for the old limit */
		log_set_level((log_level_t)log_level_parse(W.cfg.log.level));
		log_info("reload: applied");
		return;
	}
	if (W.draining) {
		event_base_loopbreak(W.base);
		return;
	}
	/* drain: stop taking messages, finish what was consumed, commit, leave */
	W.draining = true;
	kq_pause(W.consumer, true);
	wrk_flush_cb(-1, 0, NULL);
	log_info("draining: %d messages in flight", track_in_flight(W.track));
	W.drain_ev = event_new(W.base, -1, EV_PERSIST, wrk_drain_cb, NULL);
	struct timeval tv = {0, 20 * 1000};
	event_add(W.drain_ev, &tv);
}

static void wrk_drain_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	if (track_in_flight(W.track) == 0)
		event_base_loopbreak(W.base);
}

static double wrk_now(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void wrk_metrics_init(void)
{
	metrics_family_t *msgs = metrics_family("atende_worker_messages_total", METRICS_COUNTER,
						"Consumed messages by outcome: stored, or duplicate (already stored).", NULL, 0);
	W.m_stored = metrics_series(msgs, "result=\"stored\"");
	W.m_duplicates = metrics_series(msgs, "result=\"duplicate\"");
	W.m_hints_rules = metrics_series(metrics_family("atende_worker_hints_total", METRICS_COUNTER,
							"Hints stored, by source.", NULL, 0), "source=\"rules\"");
	W.m_hint_latency = metrics_series(metrics_family("atende_worker_hint_seconds", METRICS_HISTOGRAM,
							 "Consumed to hint stored.", metrics_latency_buckets,
							 metrics_latency_nbuckets), "");
	W.m_dlq = metrics_series(metrics_family("atende_worker_dead_letters_total", METRICS_COUNTER,
						"Messages sent to the dead-letter topic.", NULL, 0), "");
	W.m_batch_size = metrics_series(metrics_family("atende_worker_batch_size", METRICS_HISTOGRAM,
						       "Messages per PostgreSQL round trip.", metrics_size_buckets,
						       metrics_size_nbuckets), "");
	W.m_db_seconds = metrics_series(metrics_family("atende_worker_db_seconds", METRICS_HISTOGRAM,
						       "PostgreSQL round trip of a batch.", metrics_latency_buckets,
						       metrics_latency_nbuckets), "");
	W.m_in_flight = metrics_series(metrics_family("atende_worker_in_flight_messages", METRICS_GAUGE,
						      "Consumed messages not fully handled (uncommitted).", NULL, 0), "");
	W.m_db_pending = metrics_series(metrics_family("atende_worker_db_pending_queries", METRICS_GAUGE,
						       "Queries queued or in flight on the PostgreSQL connection.", NULL, 0), "");
	W.m_event_failures = metrics_series(metrics_family("atende_worker_event_failures_total", METRICS_COUNTER,
							   "Events that could not be published.", NULL, 0), "");
	W.m_rebalances = metrics_series(metrics_family("atende_worker_rebalances_total", METRICS_COUNTER,
						       "Consumer group assignments and revocations.", NULL, 0), "");
	W.m_lag = metrics_family("atende_worker_consumer_lag", METRICS_GAUGE,
				 "Messages behind the end of each assigned inbound partition.", NULL, 0);
}

static void wrk_metrics_refresh(void)
{
	metrics_set(W.m_in_flight, track_in_flight(W.track));
	metrics_set(W.m_db_pending, db_pending(W.db));
}

static void wrk_on_lag(const char *topic, int32_t partition, int64_t lag, void *arg)
{
	char labels[256];
	(void)arg;
	snprintf(labels, sizeof(labels), "topic=\"%s\",partition=\"%d\"", topic, (int)partition);
	metrics_gauge_set(W.m_lag, labels, (double)lag);
}
