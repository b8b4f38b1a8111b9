/*
 * atende-worker: one member of the workers' consumer group. Consumed messages are
 * stored in batches (one PostgreSQL round trip per batch, idempotent on redelivery) and
 * published as `message` events at once; customer messages then go through the coaching
 * stage (worker/coach.c: filters, shared limits, smart buffer, cache, AI or rules) and
 * their hints are published as `hint` events. A message's offset is committed only once
 * everything about it is durable, so a crash redelivers exactly the unfinished work.
 * Delivery statuses are applied in batches the same way (schema/009: forward only) and
 * published as `status` events when they moved a message. A customer message whose
 * conversation was transferred to another domain is stored here and handed, as stored,
 * to that domain's topic: its pool, prompt and limits coach it.
 */
#include "ai.h"
#include "bot.h"
#include "coach.h"
#include "config.h"
#include "db.h"
#include "event.h"
#include "jobs.h"
#include "json.h"
#include "kq.h"
#include "log.h"
#include "media.h"
#include "metrics.h"
#include "outbound.h"
#include "rules.h"
#include "proc.h"
#include "survey.h"
#include "text.h"
#include "tick.h"
#include "track.h"
#include "xalloc.h"

#include <cJSON.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define WRK_MAX_IN_FLIGHT 20000
#define WRK_COMMIT_MS 200
#define WRK_WATCH_MS 5000      /* how often the stall watchdog looks */
#define WRK_STATUS_SWEEP_MS 1000 /* how often statuses that waited for their message are published */
#define WRK_IDLE_EVERY 5         /* after a sweep that found nothing, the next one this many ticks later */
#define WRK_STATUS_SWEEP_MAX "500"
#define WRK_IMAGE_MARK "[imagem]"      /* an image's description, as coached (ai.vision) */
#define WRK_VISION_EST_TOKENS_IN 1000  /* what one image's description is priced at before the call */
#define WRK_VISION_EST_TOKENS_OUT 150

typedef struct wrk_batch wrk_batch_t;

/* One consumed message. refs counts what is still pending about it: its storage, its
 * message event, its coaching, its hint event; at zero its offset may be committed. */
typedef struct {
	track_item_t *track;
	wrk_batch_t *batch;    /* NULL for a dead letter */
	char topic[128];       /* where it was consumed from (for the DLQ) */
	int32_t partition;
	int64_t offset;
	cJSON *event;          /* the canonical inbound event */
	int64_t message_id, conversation_id; /* once stored */
	int refs;
	double consumed_at;
} wrk_item_t;

/* Messages (or delivery statuses) stored in one round trip; freed when the last of them is done. */
struct wrk_batch {
	bool statuses;         /* status events, applied by atende_apply_statuses */
	wrk_item_t *items;
	int n, cap;
	int items_left;
	int attempts;
	double sent_at;
	struct wrk_batch *live_prev, *live_next; /* W.live: every batch not freed yet */
};

/* What a delivery report releases: the items an event was about. */
typedef struct {
	outbound_acked_fn acked; /* an outbound event: told of the report instead */
	void *acked_ctx;
	int n;
	wrk_item_t *items[];
} wrk_ref_t;

typedef struct {
	cfg_t cfg;
	struct event_base *base;
	kq_t *consumer, *producer;
	db_t *db;               /* storage (and dead letters) */
	db_t *db_coach;         /* the coaching stage's queries, so they never queue ahead of storage */
	int store_in_flight;    /* storage queries sent and not answered */
	ai_t *ai;
	coach_t *coach;
	bot_t *bot;             /* bot mode (companies.bot_domains) */
	db_t *db_bot;           /* the bot's decisions */
	outbound_t *outbound;   /* replies and transfers (workers of the first pool only) */
	job_runner_t *jobs;     /* lifecycle jobs (every worker: each due job goes to one of them) */
	media_t *media;         /* media messages' rows, downloads and files */
	track_t *track;
	wrk_batch_t *open;      /* batch being filled */
	wrk_batch_t *open_st;   /* batch of statuses being filled */
	struct event *flush_ev, *commit_ev, *drain_ev;
	tick_t *sweep_tick;     /* publishes statuses applied when their message was stored */
	bool sweep_in_flight;
	int sweep_skips;        /* ticks left to skip: the last sweep found nothing */
	char events_topic[160], dlq_topic[160], outbound_topic[160];
	bool draining, paused;
	bool drain_to_end;      /* the broker's data dies with it: a drain consumes all it holds */
	bool stopped;           /* the loop has ended: batches still held are dropped, not stored */
	wrk_batch_t *live;      /* every batch not freed yet, so that an exit can drop what it held */
	bool assigned;          /* the group gave us our partitions (none is a valid share) and is
				   not rebalancing: only then does an assignment say what is ours */
	double drain_deadline;  /* wrk_now() after which a drain stops waiting for analyses */
	double drain_next_check; /* drain_to_end: when to ask the broker for its watermarks again */
	int index;
	/* the stall watchdog: counts of messages consumed and finished, as last seen */
	tick_t *watch_tick;
	uint64_t consumed, finished, watch_consumed, watch_finished;
	double watch_progress_at, stalled_since, stall_logged_at, watch_asked_at;
	int64_t watch_unread_asked; /* unread by the broker's own watermarks, last asked */
	int stall_seeks;
	/* metrics */
	metrics_series_t *m_stored, *m_duplicates, *m_dlq, *m_batch_size, *m_db_seconds, *m_in_flight;
	metrics_series_t *m_db_pending, *m_event_failures, *m_rebalances, *m_coach_pending, *m_conversations;
	metrics_family_t *m_stalls;
	metrics_family_t *m_lag, *m_hints, *m_skips, *m_refusals, *m_cache, *m_hint_seconds, *m_routed, *m_shadow;
	metrics_family_t *m_ai_calls, *m_ai_tokens, *m_ai_fallbacks, *m_ai_repaired;
	metrics_family_t *m_semantic, *m_embed_calls, *m_cache_memory;
	metrics_series_t *m_embed_tokens, *m_embed_cost, *m_embed_vectors, *m_cache_memory_entries;
	metrics_series_t *m_ai_in_flight, *m_ai_max_in_flight, *m_ai_queued, *m_ai_cost, *m_ai_breaker;
	metrics_series_t *m_ai_retries, *m_ai_rate_limited, *m_ai_breaker_opens;
	metrics_family_t *m_statuses, *m_status_applied;
	metrics_series_t *m_delivery_failed, *m_delivery_tracked, *m_rerouted;
	metrics_family_t *m_surveys, *m_survey_score;
	metrics_family_t *m_transcriptions;
	metrics_series_t *m_transcription_seconds, *m_media_pending;
} wrk_t;

static wrk_t W;

static void wrk_on_message(rd_kafka_message_t *msg, void *arg);
static void wrk_on_typing(rd_kafka_message_t *msg, void *arg);
static void wrk_on_rebalance(kq_t *kq, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts, void *arg);
static void wrk_on_delivery(void *opaque, rd_kafka_resp_err_t err, int32_t partition, int64_t offset, void *arg);
static void wrk_flush_cb(evutil_socket_t fd, short what, void *arg);
static void wrk_store(wrk_batch_t *b);
static void wrk_inline_hints(wrk_batch_t *b);
static wrk_batch_t *wrk_batch_new(bool statuses, int cap);
static void wrk_batch_free(wrk_batch_t *b);
static void wrk_batch_abandon(wrk_batch_t *b);
static void wrk_stored(PGresult *res, void *arg);
static void wrk_retry_cb(evutil_socket_t fd, short what, void *arg);
static void wrk_after_store(wrk_item_t *it, PGresult *res, int row);
static void wrk_publish_changes(wrk_item_t *it, PGresult *res, int row, const evt_route_t *route);
static bool wrk_produce_event(const char *type, long company, int64_t conversation, char *json, size_t len,
			      wrk_ref_t *ref);
static wrk_ref_t *wrk_ref(wrk_item_t *const *items, int n);
static void wrk_release(wrk_item_t *it);
static void wrk_dead_letter(wrk_item_t *it, const cJSON *ev, const void *value, size_t len, const char *why,
			    int attempts);
static void wrk_dlq_stored(PGresult *res, void *arg);
static void wrk_coach_hint(const coach_hint_t *h, void *arg);
static void wrk_coach_partial(const evt_hint_t *e, void *arg);
static void wrk_coach_done(void *token, void *arg);
static void wrk_coach_count(const char *kind, const char *what, void *arg);
static void wrk_commit_cb(evutil_socket_t fd, short what, void *arg);
static void wrk_done(track_item_t *item);
static void wrk_commit_one(const char *topic, int32_t partition, int64_t next, void *arg);
static void wrk_signal_cb(evutil_socket_t sig, short what, void *arg);
static void wrk_drain_cb(evutil_socket_t fd, short what, void *arg);
static bool wrk_caught_up(int64_t *unread, bool cached);
static void wrk_flow_control(void);
static void wrk_watch_cb(evutil_socket_t fd, short what, void *arg);
static bool wrk_read_typing(char *err, size_t errlen);
static double wrk_now(void);
static void wrk_metrics_init(void);
static void wrk_metrics_refresh(void);
static void wrk_on_lag(const char *topic, int32_t partition, int64_t lag, void *arg);
static void wrk_outbound_publish(const evt_t *e, outbound_acked_fn acked, void *ctx, void *arg);
static void wrk_outbound_done(void *token, bool ok, const char *why);
static wrk_batch_t **wrk_open_batch(bool statuses);
static void wrk_after_status(wrk_item_t *it, PGresult *res, int row);
static void wrk_count_status(bool first, const char *status);
static void wrk_sweep_cb(evutil_socket_t fd, short what, void *arg);
static void wrk_swept(PGresult *res, void *arg);
static bool wrk_reroute(wrk_item_t *it, const char *domain);
static void wrk_job_publish(long company, int64_t conversation, const char *type, const char *json,
			    job_acked_fn acked, void *ctx, void *arg);
static void wrk_publish_survey(wrk_item_t *it, PGresult *res, int row, int64_t message_id, const evt_route_t *route);
static void wrk_produce_request(long company, int64_t conversation, const char *type, const char *json,
				void (*acked)(void *ctx, bool ok), void *ctx, const char *what);
static void wrk_coach_item(wrk_item_t *it, int64_t agent);
static void wrk_bot_event(const evt_t *e, bot_acked_fn acked, void *ctx, void *arg);
static void wrk_bot_request(long company, int64_t conversation, char *json, bot_acked_fn acked, void *ctx, void *arg);
static void wrk_bot_coach(void *token, int64_t agent, void *arg);
static void wrk_bot_done(void *token, void *arg);
static char *wrk_bot_on(void);
static void wrk_media_done(const media_result_t *r, void *arg);

/* A media message waiting for its file before it is published again and coached. */
typedef struct {
	wrk_item_t *it;
	int64_t message_id, conversation, agent;
	long company;
	bool coach;             /* a customer message without a hint yet */
	cJSON *media;           /* the media object its update events carry (owned) */
	unsigned char *bytes;   /* a voice note's file while it is transcribed, an image's while it is described */
	size_t len;
	char *mime, *transcript;
	int duration_ms;
} wrk_media_t;

static void wrk_media_coach(wrk_media_t *wm, const char *text);
static void wrk_voice_start(wrk_media_t *wm, const media_result_t *r);
static void wrk_voice_admitted(PGresult *res, void *arg);
static void wrk_voice_transcribed(const ai_result_t *res, void *arg);
static void wrk_voice_stored(PGresult *res, void *arg);
static void wrk_media_admit(wrk_media_t *wm, const media_result_t *r, double cost, db_result_fn admitted);
static void wrk_image_admitted(PGresult *res, void *arg);
static void wrk_image_described(const ai_result_t *res, void *arg);

int main(int argc, char **argv)
{
	char err[512], topics[CFG_MAX_DOMAINS][160];
	const char *topic_ptrs[CFG_MAX_DOMAINS + 1];
	W.index = proc_index();
	proc_load_config(argc, argv, "worker", &W.cfg);
	signal(SIGPIPE, SIG_IGN);
	W.base = event_base_new();
	W.track = track_new();
	cfg_topic(&W.cfg, "events", W.events_topic, sizeof(W.events_topic));
	cfg_topic(&W.cfg, "dlq", W.dlq_topic, sizeof(W.dlq_topic));
	cfg_topic(&W.cfg, "outbound", W.outbound_topic, sizeof(W.outbound_topic)); /* consumed by the first pool */

	W.db = db_new(W.base, W.cfg.postgres.conninfo, "worker");
	W.db_coach = db_new(W.base, W.cfg.postgres.conninfo, "worker-coach");
	W.db_bot = db_new(W.base, W.cfg.postgres.conninfo, "worker-bot");
	kq_opts_t po = {.brokers = W.cfg.kafka.brokers, .properties = W.cfg.kafka.properties, .client_id = "atende-worker", .linger_ms = 2,
			.on_delivery = wrk_on_delivery};
	W.producer = kq_producer_new(W.base, &po, err, sizeof(err));
	if (W.producer) {
		kq_known_topics(W.producer, (const char *const[]){W.events_topic, W.dlq_topic, W.outbound_topic}, 3);
		char dt[CFG_MAX_DOMAINS][160];
		const char *dtp[CFG_MAX_DOMAINS];
		for (int d = 0; d < CFG_MAX_DOMAINS; d++)
			dtp[d] = cfg_topic(&W.cfg, cfg_domains[d], dt[d], sizeof(dt[d])); /* re-routed messages */
		kq_known_topics(W.producer, dtp, CFG_MAX_DOMAINS);
	}
	const char *pool_name = getenv(PROC_ENV_POOL);
	const cfg_pool_t *pool = cfg_pool_find(&W.cfg, pool_name ? pool_name : W.cfg.pools[0].name);
	char group[256];
	if (!pool) {
		log_error("unknown worker pool \"%s\"", pool_name);
		return 1;
	}
	cfg_pool_group(&W.cfg, pool, group, sizeof(group));
	kq_opts_t co = {.brokers = W.cfg.kafka.brokers, .properties = W.cfg.kafka.properties, .client_id = "atende-worker", .group = group,
			.session_timeout_ms = W.cfg.kafka.session_timeout_ms,
			.fetch_wait_max_ms = cfg_fetch_wait_ms(&W.cfg), .on_message = wrk_on_message,
			.on_rebalance = wrk_on_rebalance, .on_lag = wrk_on_lag};
	W.consumer = W.producer ? kq_consumer_new(W.base, &co, err, sizeof(err)) : NULL;
	if (!W.producer || !W.consumer || !wrk_read_typing(err, sizeof(err))) {
		log_error("kafka: %s", err);
		return 1;
	}
	if (strcmp(W.cfg.ai.provider, "openai") == 0) {
		ai_config_t ac;
		ai_config_from_cfg(&ac, &W.cfg);
		W.ai = ai_new(W.base, &ac, err, sizeof(err));
		if (!W.ai) {
			log_error("ai: %s", err);
			return 1;
		}
	}
	W.media = media_new(W.base, W.db, &W.cfg, err, sizeof(err));
	if (!W.media) {
		log_error("media: %s", err);
		return 1;
	}
	coach_callbacks_t cb = {.publish_hint = wrk_coach_hint, .publish_partial = wrk_coach_partial, .message_done = wrk_coach_done, .count = wrk_coach_count};
	W.coach = coach_new(W.base, W.db_coach, &W.cfg, W.ai, &cb, NULL);
	bot_callbacks_t bcb = {.publish_event = wrk_bot_event, .publish_request = wrk_bot_request,
			       .coach = wrk_bot_coach, .done = wrk_bot_done};
	W.bot = bot_new(W.base, W.db_bot, &W.cfg, W.ai, &bcb, NULL);
	int n_topics = 0;
	for (int d = 0; d < CFG_MAX_DOMAINS; d++)
		if (pool->domains[d])
			topic_ptrs[n_topics++] = cfg_topic(&W.cfg, cfg_domains[d], topics[d], sizeof(topics[d]));
	if (pool == &W.cfg.pools[0]) {
		W.outbound = outbound_new(W.base, W.db, &W.cfg, wrk_outbound_publish, NULL, err, sizeof(err));
		if (!W.outbound) {
			log_error("outbound: %s", err);
			return 1;
		}
		topic_ptrs[n_topics++] = W.outbound_topic;
	}
	if (!kq_subscribe(W.consumer, topic_ptrs, n_topics, err, sizeof(err))) {
		log_error("%s", err);
		return 1;
	}
	wrk_metrics_init();
	W.jobs = job_new(W.base, W.db, &W.cfg, wrk_job_publish, NULL);
	char mpath[1200];
	metrics_export_start(W.base, proc_metrics_path(&W.cfg, "worker", W.index, mpath, sizeof(mpath)), 1000,
			     wrk_metrics_refresh);
	W.flush_ev = evtimer_new(W.base, wrk_flush_cb, NULL);
	W.commit_ev = evtimer_new(W.base, wrk_commit_cb, NULL);
	W.watch_tick = tick_new(W.base, WRK_WATCH_MS, wrk_watch_cb, NULL);
	W.watch_progress_at = wrk_now();
	if (W.outbound) {
		/* one pool sweeps: any of its workers may publish any company's status */
		W.sweep_tick = tick_new(W.base, WRK_STATUS_SWEEP_MS, wrk_sweep_cb, NULL);
	}
	int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR2};
	for (int i = 0; i < 4; i++)
		event_add(evsignal_new(W.base, sigs[i], wrk_signal_cb, NULL), NULL);
	log_info("worker %d of pool %s consuming %d domain topics%s in group %s; hints from %s", W.index, pool->name,
		 n_topics - (W.outbound ? 1 : 0), W.outbound ? " and the outbound replies" : "", group,
		 W.ai ? W.cfg.ai.base_url : "the built-in rules");

	event_base_dispatch(W.base);
	W.stopped = true;

	/* final synchronous commit of everything handled, then leave the group */
	rd_kafka_topic_partition_list_t *final = rd_kafka_topic_partition_list_new(16);
	track_all_positions(W.track, wrk_commit_one, final);
	if (final->cnt) {
		rd_kafka_resp_err_t e = rd_kafka_commit(kq_handle(W.consumer), final, 0);
		if (e)
			log_warn("final commit: %s", rd_kafka_err2str(e));
	}
	rd_kafka_topic_partition_list_destroy(final);
	ai_free(W.ai); /* unfinished analyses are cancelled: their messages stay uncommitted */
	bot_free(W.bot);
	kq_free(W.consumer, 0);
	kq_free(W.producer, 5000);
	outbound_free(W.outbound); /* unfinished requests stay uncommitted */
	job_free(W.jobs);          /* jobs taken and not published are handed out again after their lease */
	media_free(W.media);       /* unfinished downloads too */
	db_free(W.db);
	db_free(W.db_coach);
	db_free(W.db_bot);
	/* what is still held (open, being stored, coached by an analysis cancelled above) stays
	 * uncommitted for the next owner of its partitions: only the memory goes */
	while (W.live)
		wrk_batch_abandon(W.live);
	W.open = W.open_st = NULL;
	log_info("stopped");
	return 0;
}

/* Typing states come from the consoles through atende.events; every worker reads them
 * all (no group) from the end: only what is happening now matters. */
static bool wrk_read_typing(char *err, size_t errlen)
{
	/* in the group consumer, beside the group's partitions: a client of its own would cost
	 * its threads and fetches on every worker (docs/performance.md, "Idle"). atende.typing
	 * holds only typing; brokers set up before it existed have atende.events, where typing
	 * is too, among every message and hint */
	char typing_topic[160];
	const char *topic = cfg_topic(&W.cfg, "typing", typing_topic, sizeof(typing_topic));
	if (kq_read_alongside(W.consumer, topic, wrk_on_typing, 10000, err, errlen))
		return true;
	log_warn("kafka: %s (`atende topics --create` makes it): reading typing from every event of %s", err,
		 W.events_topic);
	return kq_read_alongside(W.consumer, W.events_topic, wrk_on_typing, 10000, err, errlen);
}

static void wrk_on_typing(rd_kafka_message_t *msg, void *arg)
{
	rd_kafka_headers_t *hdrs = NULL;
	const void *type_hdr = NULL;
	size_t type_len = 0;
	(void)arg;
	/* on atende.events (brokers without atende.typing) most are messages and hints: the type header spares parsing them */
	if (rd_kafka_message_headers(msg, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
	    rd_kafka_header_get_last(hdrs, "type", &type_hdr, &type_len) == RD_KAFKA_RESP_ERR_NO_ERROR &&
	    !(type_len == 6 && memcmp(type_hdr, "typing", 6) == 0)) {
		rd_kafka_message_destroy(msg);
		return;
	}
	evt_t ev;
	char why[160];
	if (evt_parse(&ev, msg->payload, msg->len, why, sizeof(why))) {
		if (ev.type == EVT_TYPING)
			coach_typing(W.coach, ev.typing.conversation_id, ev.typing.agent_id, ev.typing.start,
				     wrk_now() + W.cfg.notifier.typing_ttl_s);
		evt_free(&ev);
	}
	rd_kafka_message_destroy(msg);
}

static void wrk_on_message(rd_kafka_message_t *msg, void *arg)
{
	(void)arg;
	W.consumed++;
	wrk_item_t item = {.track = track_add(W.track, rd_kafka_topic_name(msg->rkt), msg->partition, msg->offset),
			   .partition = msg->partition, .offset = msg->offset, .refs = 1, .consumed_at = wrk_now()};
	snprintf(item.topic, sizeof(item.topic), "%s", rd_kafka_topic_name(msg->rkt));
	cJSON *ev = cJSON_ParseWithLength(msg->payload, msg->len);
	if (W.outbound && ev && strcmp(item.topic, W.outbound_topic) == 0) {
		/* a reply or transfer from a console (not JSON: dead-lettered below) */
		wrk_item_t *out = xmalloc(sizeof(*out));
		*out = item;
		out->event = ev;
		rd_kafka_message_destroy(msg);
		outbound_handle(W.outbound, ev, wrk_outbound_done, out);
		wrk_flow_control();
		return;
	}
	const char *type = json_str(ev, "type");
	if (!type || !json_str(ev, "provider_id") || !json_str(ev, "channel") || !json_str(ev, "conversation") ||
	    !cJSON_IsNumber(cJSON_GetObjectItem(ev, "company"))) {
		/* retrying cannot fix bad data: dead-letter at once */
		wrk_item_t *dead = xmalloc(sizeof(*dead));
		*dead = item;
		wrk_dead_letter(dead, ev, msg->payload, msg->len,
				ev ? "missing type, provider_id, channel, conversation or company" : "not JSON", 1);
		cJSON_Delete(ev);
		rd_kafka_message_destroy(msg);
		return;
	}
	rd_kafka_message_destroy(msg);
	bool status = strcmp(type, "status") == 0;
	if (!status && strcmp(type, "message") != 0) {
		/* a type this worker does not know (a newer ingress): nothing to do but move on */
		cJSON_Delete(ev);
		wrk_done(item.track);
		return;
	}
	int score;
	if (!status && !json_true(ev, "from_me") && survey_parse(json_str(ev, "text"), &score))
		cJSON_AddNumberToObject(ev, "survey_score", score); /* an answer if its conversation awaits one (schema/011) */
	wrk_batch_t **open = wrk_open_batch(status);
	wrk_item_t *it = &(*open)->items[(*open)->n++];
	*it = item;
	it->batch = *open;
	it->event = ev;
	(*open)->items_left++;
	if ((*open)->n == (*open)->cap) {
		evtimer_del(W.flush_ev);
		wrk_flush_cb(-1, 0, NULL);
	}
	wrk_flow_control();
}

/* The batch of messages (or of statuses) being filled, started when there is none. */
static wrk_batch_t **wrk_open_batch(bool statuses)
{
	wrk_batch_t **open = statuses ? &W.open_st : &W.open;
	if (!*open) {
		*open = wrk_batch_new(statuses, W.cfg.workers.batch_size);
		/* 0: runs after this drain pass, so what arrived together is one batch */
		int ms = W.cfg.workers.batch_wait_ms;
		struct timeval wait = {ms / 1000, (ms % 1000) * 1000};
		if (!evtimer_pending(W.flush_ev, NULL))
			evtimer_add(W.flush_ev, &wait);
	}
	return open;
}

/* Sends the open batch, unless a storage query is still in flight and the batch has
 * room: then it keeps filling and goes when that query returns. Under load batches
 * grow by themselves, so round trips stay few; when idle a message goes at once, or
 * workers.batch_wait_ms after it. */
static void wrk_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)what, (void)arg;
	/* statuses first: what was consumed before a message is applied before it (one
	 * connection runs the queries in order), so its events come out first as well */
	wrk_batch_t **open[2] = {&W.open_st, &W.open};
	for (int i = 0; i < 2; i++) {
		wrk_batch_t *b = *open[i];
		if (!b || !b->n)
			continue;
		if (W.store_in_flight > 0 && b->n < b->cap && fd != -2)
			continue;
		*open[i] = NULL;
		wrk_store(b);
	}
}

static void wrk_store(wrk_batch_t *b)
{
	if (!b->statuses)
		wrk_inline_hints(b);
	cJSON *arr = cJSON_CreateArray();
	for (int i = 0; i < b->n; i++)
		cJSON_AddItemReferenceToArray(arr, b->items[i].event);
	char *json = cJSON_PrintUnformatted(arr);
	cJSON_Delete(arr);
	char *bot_on = wrk_bot_on();
	const char *params[2] = {json, bot_on};
	b->attempts++;
	b->sent_at = wrk_now();
	W.store_in_flight++;
	metrics_observe(W.m_batch_size, b->n);
	/* atende_store (schema/022, 023): the company domains with the bot on, for this
	 * transaction's new conversations (schema/010_bot.sql), then atende_ingest's rows with each
	 * one's conversation's domain as it was when the batch started (a transfer may have moved
	 * it; NULL for a conversation this batch creates) and the transaction's time (r_now: a
	 * hint stored with its message was made then), read by name */
	const char *sql = b->statuses ? "SELECT * FROM atende_apply_statuses($1::jsonb)"
				      : "SELECT * FROM atende_store($1::jsonb, $2)";
	if (!db_query(W.db, sql, b->statuses ? 1 : 2, params, wrk_stored, b)) {
		W.store_in_flight--;
		struct timeval later = {0, 100 * 1000};
		log_error("database queue full: retrying a batch of %d in 100 ms", b->n);
		event_base_once(W.base, -1, EV_TIMEOUT, wrk_retry_cb, b, &later);
	}
	free(json);
	free(bot_on);
}

/* A customer message's conversation key and its place in a batch, to find the conversations
 * with more than one. */
typedef struct {
	const char *key;
	int idx;
} wrk_conv_ref_t;

static int wrk_conv_ref_cmp(const void *a, const void *b)
{
	return strcmp(((const wrk_conv_ref_t *)a)->key, ((const wrk_conv_ref_t *)b)->key);
}

/* The hints to store with their messages (schema/023; cache hits, 026): each customer
 * message that the coach would hint at once (coach_inline) and that is its conversation's only
 * customer message in the batch (several are one analysis, stored the coach's way) carries
 * its hint. Messages the worker hands elsewhere first never do: media (described or
 * transcribed first), survey answers, the bot's, a transferred conversation's. Decided again
 * on a retry. */
static void wrk_inline_hints(wrk_batch_t *b)
{
	wrk_conv_ref_t *refs = xmalloc((size_t)b->n * sizeof(*refs));
	int n = 0;
	for (int i = 0; i < b->n; i++) {
		cJSON *ev = b->items[i].event;
		cJSON_DeleteItemFromObject(ev, "rules_hint");
		if (!json_true(ev, "from_me"))
			refs[n++] = (wrk_conv_ref_t){.key = json_str(ev, "conversation"), .idx = i};
	}
	qsort(refs, (size_t)n, sizeof(*refs), wrk_conv_ref_cmp);
	for (int k = 0; k < n; k++) {
		if ((k > 0 && strcmp(refs[k - 1].key, refs[k].key) == 0) ||
		    (k + 1 < n && strcmp(refs[k + 1].key, refs[k].key) == 0))
			continue;
		cJSON *ev = b->items[refs[k].idx].event;
		long company = (long)json_num(ev, "company", 0);
		if (cJSON_GetObjectItem(ev, "media") || cJSON_GetObjectItem(ev, "survey_score") ||
		    json_str(ev, "rerouted_from") || bot_wants(W.bot, company, json_str(ev, "domain")))
			continue;
		coach_msg_t m = {.company = company, .conversation_key = refs[k].key, .domain = json_str(ev, "domain"),
				 .text = json_str(ev, "text")};
		coach_inline(W.coach, &m, ev);
	}
	free(refs);
}

/* A new batch of cap items, on W.live until wrk_batch_free. */
static wrk_batch_t *wrk_batch_new(bool statuses, int cap)
{
	wrk_batch_t *b = xcalloc(1, sizeof(*b));
	b->statuses = statuses;
	b->cap = cap;
	b->items = xcalloc((size_t)cap, sizeof(wrk_item_t));
	b->live_next = W.live;
	if (W.live)
		W.live->live_prev = b;
	W.live = b;
	return b;
}

static void wrk_batch_free(wrk_batch_t *b)
{
	if (b->live_prev)
		b->live_prev->live_next = b->live_next;
	else
		W.live = b->live_next;
	if (b->live_next)
		b->live_next->live_prev = b->live_prev;
	free(b->items);
	free(b);
}

/* A batch held when the worker stops: the events of its items not yet released, then the
 * batch (their offsets were never committed). */
static void wrk_batch_abandon(wrk_batch_t *b)
{
	for (int i = 0; i < b->n; i++)
		if (b->items[i].event) {
			cJSON_Delete(b->items[i].event);
			wrk_done(b->items[i].track);
		}
	wrk_batch_free(b);
}

static void wrk_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	wrk_store(arg);
}

static void wrk_stored(PGresult *res, void *arg)
{
	wrk_batch_t *b = arg;
	W.store_in_flight--;
	if ((W.open || W.open_st) && W.store_in_flight == 0 && !evtimer_pending(W.flush_ev, NULL))
		wrk_flush_cb(-1, 0, NULL); /* what accumulated meanwhile goes now (its wait is over) */
	if (!res && W.stopped)
		return; /* db_free at exit answers what it still held with NULL: dropped with W.live */
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
				wrk_batch_t *one = wrk_batch_new(b->statuses, 1);
				one->items[0] = b->items[i];
				one->items[0].batch = one;
				one->n = one->items_left = 1;
				wrk_store(one);
			}
			wrk_batch_free(b);
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
		wrk_item_t *dead = xmalloc(sizeof(*dead));
		*dead = b->items[0];
		dead->batch = NULL;
		cJSON_DeleteItemFromObject(dead->event, "rules_hint"); /* the worker's own, not the message's */
		char *v = cJSON_PrintUnformatted(dead->event);
		wrk_dead_letter(dead, dead->event, v, strlen(v), e, b->attempts);
		free(v);
		wrk_batch_free(b);
		return;
	}
	metrics_observe(W.m_db_seconds, wrk_now() - b->sent_at);
	int rows = PQntuples(res);
	for (int i = 0; i < b->n; i++)
		if (i < rows)
			(b->statuses ? wrk_after_status : wrk_after_store)(&b->items[i], res, i);
	for (int i = b->n - 1; i >= 0; i--)
		wrk_release(&b->items[i]); /* the storage reference; may free b */
}

/* What the message changed in its conversation (schema/006's columns after the first
 * seven: r_status, r_prev_status, r_assigned, r_from_agent, r_queued, r_changed_at): a
 * customer message that reopened it is a `conversation` event, one that moved it from an
 * agent who left to another an `assignment` event, routed to both. A new conversation's
 * first agent needs none: its message event names the agent. */
static void wrk_publish_changes(wrk_item_t *it, PGresult *res, int row, const evt_route_t *route)
{
	cJSON *ev = it->event;
	size_t len;
	if (PQnfields(res) < 13)
		return; /* a database not yet migrated to 006 */
	const char *at = PQgetisnull(res, row, 12) ? NULL : PQgetvalue(res, row, 12);
	if (!PQgetisnull(res, row, 8)) {
		evt_conversation_t c = {.conversation_id = route->conversation, .status = PQgetvalue(res, row, 7),
					.agent_id = route->agent, .domain = json_str(ev, "domain"), .by = "customer", .at = at};
		char *json = evt_conversation(route, &c, &len); /* sets len: not in the call's own arguments */
		wrk_produce_event("conversation", route->company, route->conversation, json, len, wrk_ref(&it, 1));
	}
	int64_t from_agent = PQgetisnull(res, row, 10) ? 0 : atoll(PQgetvalue(res, row, 10));
	if (from_agent && PQgetvalue(res, row, 9)[0] == 't') {
		evt_assignment_t a = {.conversation_id = route->conversation, .conversation_key = json_str(ev, "conversation"),
				      .company_id = route->company, .channel = json_str(ev, "channel"),
				      .customer = json_str(ev, "customer"), .from_agent = from_agent,
				      .to_agent = route->agent, .agent_id = route->agent, .domain = json_str(ev, "domain"),
				      .at = at, .created_at = at};
		char *json = evt_assignment(route, &a, &len);
		wrk_produce_event("assignment", route->company, route->conversation, json, len, wrk_ref(&it, 1));
	}
}

/* Row columns: r_idx, r_message_id, r_conversation_id, r_agent_id, r_inserted, r_hint_id,
 * r_hint_inserted (then what wrk_publish_changes reads, and r_conv_domain). A new message is
 * published; a customer message without a hint goes to the coach (also a redelivered one:
 * the coach knows what was already decided), or, when a transfer moved its conversation to
 * another domain, to that domain's topic to be coached there. */
static void wrk_after_store(wrk_item_t *it, PGresult *res, int row)
{
	cJSON *ev = it->event;
	bool inserted = PQgetvalue(res, row, 4)[0] == 't';
	bool hinted = !PQgetisnull(res, row, 5);
	int64_t message_id = atoll(PQgetvalue(res, row, 1)), conversation = atoll(PQgetvalue(res, row, 2));
	int64_t agent = PQgetisnull(res, row, 3) ? 0 : atoll(PQgetvalue(res, row, 3));
	long company = (long)json_num(ev, "company", 0);
	bool from_me = json_true(ev, "from_me");
	bool rerouted = json_str(ev, "rerouted_from") != NULL;
	int dcol = PQfnumber(res, "r_conv_domain");
	const char *conv_domain = dcol >= 0 && !PQgetisnull(res, row, dcol) ? PQgetvalue(res, row, dcol) : NULL;
	const char *domain = json_str(ev, "domain");
	bool moved = conv_domain && domain && strcmp(conv_domain, domain) != 0;
	int scol = PQfnumber(res, "r_survey"); /* schema/011: the answer to a survey */
	bool survey_answer = scol >= 0 && !PQgetisnull(res, row, scol);
	cJSON *media = cJSON_GetObjectItem(ev, "media");
	/* the hint it was sent with (wrk_inline_hints), stored with it when r_hint_inserted */
	cJSON *rules_hint = cJSON_DetachItemFromObject(ev, "rules_hint");
	/* inline bytes go to the media store, never into events */
	cJSON *b64 = cJSON_IsObject(media) ? cJSON_DetachItemFromObject(media, "base64") : NULL;
	metrics_add(inserted ? W.m_stored : rerouted ? W.m_rerouted : W.m_duplicates, 1);
	/* a redelivered message that no hint covers yet may come from a worker that stored it and
	 * died before the broker took its event: its message event goes out again (consoles drop
	 * a repeat by message_id), or that console would never see it (found by make chaos); so
	 * does one whose hint was stored with it (r_hint), then its hint event */
	int hcol = PQfnumber(res, "r_hint");
	cJSON *stored_hint = !inserted && hcol >= 0 && !PQgetisnull(res, row, hcol)
				     ? cJSON_Parse(PQgetvalue(res, row, hcol)) : NULL;
	if (inserted || (!hinted && !rerouted) || stored_hint) {
		size_t len;
		evt_route_t route = {.company = company, .conversation = conversation, .agent = agent};
		evt_message_t m = {.message_id = json_str(ev, "provider_id"), .db_id = message_id,
				   .conversation_id = conversation, .conversation_key = json_str(ev, "conversation"),
				   .company_id = company, .agent_id = agent, /* 0: no agent in the company yet */
				   .domain = moved ? conv_domain : domain, .channel = json_str(ev, "channel"),
				   .customer = json_str(ev, "customer"), .sender_name = json_str(ev, "sender_name"),
				   .from_me = from_me, .kind = json_str(ev, "kind"), .text = json_str(ev, "text"),
				   .media = cJSON_IsObject(media) ? media : NULL, .created_at = json_str(ev, "received_at")};
		char *json = evt_message(&route, &m, &len);
		wrk_produce_event("message", company, conversation, json, len, wrk_ref(&it, 1));
	}
	/* the hint stored with it: this batch's (sent with it, r_hint_inserted) or a redelivery's */
	const cJSON *with_message =
		stored_hint ? stored_hint : rules_hint && inserted && PQgetvalue(res, row, 6)[0] == 't' ? rules_hint : NULL;
	if (with_message) {
		int ncol = PQfnumber(res, "r_now");
		coach_msg_t m = {.message_id = message_id, .conversation_id = conversation,
				 .agent_id = stored_hint ? (int64_t)json_num(stored_hint, "agent_id", 0) : agent,
				 .company = company, .conversation_key = json_str(ev, "conversation"),
				 .provider_id = json_str(ev, "provider_id"), .domain = json_str(ev, "domain"),
				 .text = json_str(ev, "text"), .received_at = json_str(ev, "received_at"), .token = it};
		it->refs++;
		coach_inline_done(W.coach, &m, with_message, atoll(PQgetvalue(res, row, 5)),
				  stored_hint ? json_str(stored_hint, "created_at")
				  : ncol >= 0 ? PQgetvalue(res, row, ncol) : NULL,
				  it->consumed_at, stored_hint != NULL);
	}
	cJSON_Delete(stored_hint);
	cJSON_Delete(rules_hint);
	if (inserted) {
		evt_route_t route = {.company = company, .conversation = conversation, .agent = agent};
		wrk_publish_changes(it, res, row, &route);
		if (from_me)
			coach_history(W.coach, json_str(ev, "conversation"), true, json_str(ev, "text"));
		if (survey_answer) {
			/* the answer to a survey: stored as such, the conversation stays resolved, no hint */
			wrk_publish_survey(it, res, row, message_id, &route);
			return;
		}
	}
	if (cJSON_IsObject(media) && cJSON_IsString(cJSON_GetObjectItem(ev, "kind")) && !survey_answer) {
		/* its file first: the message is published again with it, then coached */
		wrk_media_t *wm = xcalloc(1, sizeof(*wm));
		*wm = (wrk_media_t){.it = it, .message_id = message_id, .conversation = conversation, .agent = agent,
				    .company = company, .coach = !from_me && !hinted};
		it->refs++;
		media_handle(W.media, ev, conversation, b64, wrk_media_done, wm);
		return;
	}
	cJSON_Delete(b64);
	if (from_me || hinted || survey_answer)
		return;
	/* once: a message handed over is coached where it lands, even if moved again meanwhile */
	if (moved && !rerouted && wrk_reroute(it, conv_domain))
		return;
	it->refs++;
	it->message_id = message_id;
	it->conversation_id = conversation;
	if (bot_wants(W.bot, company, json_str(ev, "domain"))) {
		/* the bot decides (also on a redelivery: it knows what it did) and hands back to
		 * the coach what is not its own */
		bot_msg_t bm = {.message_id = message_id, .conversation_id = conversation, .company = company,
				.conversation_key = json_str(ev, "conversation"), .channel = json_str(ev, "channel"),
				.provider_id = json_str(ev, "provider_id"), .domain = json_str(ev, "domain"),
				.text = json_str(ev, "text"), .token = it};
		bot_add(W.bot, &bm);
		return;
	}
	wrk_coach_item(it, agent);
}

/* Hands a stored customer message (holding a reference for it) to the coach. */
static void wrk_coach_item(wrk_item_t *it, int64_t agent)
{
	cJSON *ev = it->event;
	coach_msg_t m = {.message_id = it->message_id, .conversation_id = it->conversation_id, .agent_id = agent,
			 .company = (long)json_num(ev, "company", 0), .conversation_key = json_str(ev, "conversation"),
			 .provider_id = json_str(ev, "provider_id"), .domain = json_str(ev, "domain"),
			 .text = json_str(ev, "text"), .received_at = json_str(ev, "received_at"), .token = it};
	coach_add(W.coach, &m);
}

/* Hands a stored customer message to domain's topic (the conversation's domain since a
 * transfer), as it was consumed plus rerouted_from and the new domain: the worker there
 * finds it stored (atende_ingest is idempotent: never stored twice) and coaches it with its
 * domain's prompt, pool and limits. Keyed by conversation like the ingress, so a
 * conversation's messages stay in order. Its offset here waits for the broker's
 * acknowledgement. False (the message is coached here) when it cannot be produced. */
static bool wrk_reroute(wrk_item_t *it, const char *domain)
{
	char topic[160], err[256], company[24];
	bool known = false;
	for (int d = 0; d < CFG_MAX_DOMAINS; d++)
		known = known || strcmp(cfg_domains[d], domain) == 0;
	if (!known)
		return false;
	cJSON *copy = cJSON_Duplicate(it->event, true);
	cJSON_AddStringToObject(copy, "rerouted_from", json_str(it->event, "domain"));
	cJSON_ReplaceItemInObject(copy, "domain", cJSON_CreateString(domain));
	char *json = cJSON_PrintUnformatted(copy);
	cJSON_Delete(copy);
	const char *key = json_str(it->event, "conversation");
	snprintf(company, sizeof(company), "%.0f", json_num(it->event, "company", 0));
	rd_kafka_headers_t *h = rd_kafka_headers_new(3);
	rd_kafka_header_add(h, "type", -1, "message", -1);
	rd_kafka_header_add(h, "company", -1, company, -1);
	rd_kafka_header_add(h, "domain", -1, domain, -1);
	wrk_ref_t *ref = wrk_ref(&it, 1);
	bool ok = kq_produce(W.producer, cfg_topic(&W.cfg, domain, topic, sizeof(topic)), key, strlen(key), json,
			     strlen(json), h, ref, err, sizeof(err));
	free(json);
	if (!ok) {
		log_error("message %s of conversation %s not handed to %s (coached here instead): %s",
			  json_str(it->event, "provider_id"), key, domain, err);
		it->refs--;
		free(ref);
	}
	return ok;
}

/* Row columns of atende_apply_statuses: r_idx, r_result, r_message_id, r_conversation_id,
 * r_company_id, r_agent_id, r_provider_id, r_status, r_prev_status, r_error, r_at. A status
 * that moved its message is published; the item is done once the broker has the event. */
static void wrk_after_status(wrk_item_t *it, PGresult *res, int row)
{
	char labels[64];
	const char *result = PQgetvalue(res, row, 1);
	snprintf(labels, sizeof(labels), "result=\"%s\"", result);
	metrics_inc(W.m_statuses, labels);
	if (strcmp(result, "advanced") != 0)
		return;
	wrk_ref_t *ref = wrk_ref(&it, 1);
	const char *prev = PQgetisnull(res, row, 8) ? NULL : PQgetvalue(res, row, 8);
	char *json;
	size_t len;
	evt_route_t route = {.company = atol(PQgetvalue(res, row, 4)), .conversation = atoll(PQgetvalue(res, row, 3)),
			     .agent = PQgetisnull(res, row, 5) ? 0 : atoll(PQgetvalue(res, row, 5))};
	evt_status_t st = {.message_id = atoll(PQgetvalue(res, row, 2)), .provider_id = PQgetvalue(res, row, 6),
			   .conversation_id = route.conversation, .status = PQgetvalue(res, row, 7),
			   .error = PQgetisnull(res, row, 9) ? NULL : PQgetvalue(res, row, 9),
			   .at = PQgetvalue(res, row, 10)};
	wrk_count_status(prev == NULL, st.status);
	json = evt_status(&route, &st, &len);
	wrk_produce_event("status", route.company, route.conversation, json, len, ref);
}

/* Counts a status that moved a message (first: its first status, the failure rate's
 * denominator). */
static void wrk_count_status(bool first, const char *status)
{
	char labels[64];
	snprintf(labels, sizeof(labels), "status=\"%s\"", status);
	metrics_inc(W.m_status_applied, labels);
	if (first)
		metrics_add(W.m_delivery_tracked, 1);
	if (strcmp(status, "failed") == 0)
		metrics_add(W.m_delivery_failed, 1);
}

/* Statuses that waited for their message were applied by the trigger that stored it
 * (schema/009); their events go out from here. One sweep at a time per worker. */
static void wrk_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	const char *params[1] = {WRK_STATUS_SWEEP_MAX};
	if (W.sweep_in_flight || W.draining || !db_connected(W.db))
		return;
	if (W.sweep_skips > 0) {
		W.sweep_skips--;
		return;
	}
	W.sweep_in_flight = true;
	if (!db_query(W.db, "SELECT * FROM atende_pending_statuses_applied($1::int)", 1, params, wrk_swept, NULL))
		W.sweep_in_flight = false; /* the queue is full: the next tick tries again */
}

/* Rows: r_message_id, r_conversation_id, r_company_id, r_agent_id, r_provider_id, r_status,
 * r_error, r_at. Taken out of the table already: an event the broker refuses is logged
 * (the status itself is stored: the history shows it). */
static void wrk_swept(PGresult *res, void *arg)
{
	(void)arg;
	W.sweep_in_flight = false;
	if (!db_ok(res, "pending statuses sweep"))
		return;
	for (int i = 0; i < PQntuples(res); i++) {
		size_t len;
		evt_route_t route = {.company = atol(PQgetvalue(res, i, 2)), .conversation = atoll(PQgetvalue(res, i, 1)),
				     .agent = PQgetisnull(res, i, 3) ? 0 : atoll(PQgetvalue(res, i, 3))};
		evt_status_t st = {.message_id = atoll(PQgetvalue(res, i, 0)), .provider_id = PQgetvalue(res, i, 4),
				   .conversation_id = route.conversation, .status = PQgetvalue(res, i, 5),
				   .error = PQgetisnull(res, i, 6) ? NULL : PQgetvalue(res, i, 6), .at = PQgetvalue(res, i, 7)};
		wrk_count_status(true, st.status);
		char *json = evt_status(&route, &st, &len);
		wrk_produce_event("status", route.company, route.conversation, json, len, NULL);
	}
	/* none waiting: an idle system asks every WRK_IDLE_EVERY ticks, not every second */
	W.sweep_skips = PQntuples(res) == 0 ? WRK_IDLE_EVERY - 1 : 0;
	if (PQntuples(res) == atoi(WRK_STATUS_SWEEP_MAX))
		wrk_sweep_cb(-1, 0, NULL); /* there may be more */
}

/* "C:domain C:domain": the company domains with the bot on (malloc'd). */
static char *wrk_bot_on(void)
{
	size_t cap = 1, len = 0;
	for (int i = 0; i < W.cfg.n_companies; i++)
		cap += (size_t)CFG_MAX_DOMAINS * 40;
	char *s = xmalloc(cap);
	s[0] = 0;
	for (int i = 0; i < W.cfg.n_companies; i++)
		for (int d = 0; d < CFG_MAX_DOMAINS; d++)
			if (W.cfg.companies[i].bot_domains[d])
				len += (size_t)snprintf(s + len, cap - len, "%s%ld:%s", len ? " " : "", W.cfg.companies[i].id,
							cfg_domains[d]);
	return s;
}

/* A hand-off's assignment event; the bot learns of the broker's report. */
static void wrk_bot_event(const evt_t *e, bot_acked_fn acked, void *ctx, void *arg)
{
	size_t len;
	(void)arg;
	wrk_ref_t *ref = wrk_ref(NULL, 0);
	ref->acked = acked;
	ref->acked_ctx = ctx;
	char *json = evt_write(e, &len);
	wrk_produce_event(e->type_name, e->route.company, e->route.conversation, json, len, ref);
}

/* A bot reply request to atende.outbound (worker/bot.c). */
static void wrk_bot_request(long company, int64_t conversation, char *json, bot_acked_fn acked, void *ctx, void *arg)
{
	(void)arg;
	wrk_produce_request(company, conversation, "reply", json, acked, ctx, "bot reply request");
	free(json);
}

static void wrk_bot_coach(void *token, int64_t agent, void *arg)
{
	(void)arg;
	wrk_coach_item(token, agent);
}

static void wrk_bot_done(void *token, void *arg)
{
	(void)arg;
	wrk_release(token);
}

/* A media message's file is decided (stored, too_large or failed): consoles get the message
 * again with its media (id, type from the bytes, size, status), then it is coached on its
 * caption like a text message. */
static void wrk_media_done(const media_result_t *r, void *arg)
{
	wrk_media_t *wm = arg;
	wrk_item_t *it = wm->it;
	cJSON *ev = it->event;
	if (r->id && r->fresh) {
		size_t len;
		evt_route_t route = {.company = wm->company, .conversation = wm->conversation, .agent = wm->agent};
		cJSON *mo = cJSON_CreateObject();
		cJSON_AddNumberToObject(mo, "id", (double)r->id);
		cJSON_AddStringToObject(mo, "kind", r->kind);
		json_add_str_or_null(mo, "mime", r->mime);
		if (r->size >= 0)
			cJSON_AddNumberToObject(mo, "size", (double)r->size);
		else
			cJSON_AddNullToObject(mo, "size");
		json_add_str_or_null(mo, "name", r->name);
		cJSON_AddStringToObject(mo, "status", r->status);
		json_add_str_or_null(mo, "error", r->error);
		if (r->duration_ms)
			cJSON_AddNumberToObject(mo, "duration_ms", r->duration_ms);
		evt_message_t m = {.message_id = json_str(ev, "provider_id"), .db_id = wm->message_id,
				   .conversation_id = wm->conversation, .conversation_key = json_str(ev, "conversation"),
				   .company_id = wm->company, .agent_id = wm->agent, .domain = json_str(ev, "domain"),
				   .channel = json_str(ev, "channel"), .customer = json_str(ev, "customer"),
				   .sender_name = json_str(ev, "sender_name"), .from_me = json_true(ev, "from_me"),
				   .kind = json_str(ev, "kind"), .text = json_str(ev, "text"), .media = mo, .update = true,
				   .created_at = json_str(ev, "received_at")};
		char *json = evt_message(&route, &m, &len);
		wrk_produce_event("message", wm->company, wm->conversation, json, len, wrk_ref(&it, 1));
		wm->media = mo;
	}
	const char *kind = json_str(ev, "kind");
	if (kind && strcmp(kind, "audio") == 0) {
		wrk_voice_start(wm, r); /* takes wm */
		return;
	}
	if (kind && strcmp(kind, "image") == 0 && W.cfg.ai.vision && W.ai && r->bytes && wm->coach &&
	    strcmp(r->status, "stored") == 0) {
		/* priced before the call as an image's usual usage (about a thousand tokens in) */
		wrk_media_admit(wm, r, ai_cost_usd(WRK_VISION_EST_TOKENS_IN, WRK_VISION_EST_TOKENS_OUT,
						   W.cfg.ai.price_small_in, W.cfg.ai.price_small_out),
				wrk_image_admitted);
		return;
	}
	wrk_media_coach(wm, json_str(ev, "text"));
}

/* Keeps the just stored file for an AI call, then asks the budget (limits.cost_per_*) for
 * cost; admitted(res, wm) hears its answer (res NULL: no cap to ask). */
static void wrk_media_admit(wrk_media_t *wm, const media_result_t *r, double cost, db_result_fn admitted)
{
	wm->bytes = xmalloc(r->len);
	memcpy(wm->bytes, r->bytes, r->len);
	wm->len = r->len;
	wm->mime = xstrdup(r->mime ? r->mime : "application/octet-stream"); /* stored: decided from the bytes */
	wm->duration_ms = r->duration_ms;
	if (W.cfg.limits.cost_per_hour_usd <= 0 && W.cfg.limits.cost_per_day_usd <= 0) {
		admitted(NULL, wm);
		return;
	}
	char c[32], h[32], d[32];
	snprintf(c, sizeof(c), "%.6f", cost);
	snprintf(h, sizeof(h), "%.6f", W.cfg.limits.cost_per_hour_usd);
	snprintf(d, sizeof(d), "%.6f", W.cfg.limits.cost_per_day_usd);
	const char *params[3] = {c, h, d};
	if (!db_query(W.db_coach, "SELECT atende_transcription_admit($1, $2, $3)", 3, params, admitted, wm)) {
		PGresult *busy = PQmakeEmptyPGresult(NULL, PGRES_FATAL_ERROR);
		admitted(busy, wm); /* refused: coached without the AI's reading */
		PQclear(busy);
	}
}

/* The image's text for coaching: the description with the caption, or the caption alone. */
static void wrk_image_admitted(PGresult *res, void *arg)
{
	wrk_media_t *wm = arg;
	wrk_item_t *it = wm->it;
	const char *caption = json_str(it->event, "text");
	if (res && (PQresultStatus(res) != PGRES_TUPLES_OK || !PQgetisnull(res, 0, 0))) {
		log_warn("image %s not described: %s", json_str(it->event, "provider_id"),
			 PQresultStatus(res) == PGRES_TUPLES_OK ? PQgetvalue(res, 0, 0) : "budget not asked");
		wrk_media_coach(wm, caption);
		return;
	}
	if (!ai_describe_image(W.ai, wm->company, json_str(it->event, "conversation"), wm->bytes, wm->len, wm->mime,
			       caption, wrk_image_described, wm))
		wrk_media_coach(wm, caption);
}

static void wrk_image_described(const ai_result_t *res, void *arg)
{
	wrk_media_t *wm = arg;
	const char *caption = json_str(wm->it->event, "text");
	char *text = NULL;
	if (!res->ok) {
		/* cancelled by ai_free at exit: it stays uncommitted */
		cJSON_Delete(wm->media);
		free(wm->bytes);
		free(wm->mime);
		free(wm);
		return;
	}
	if (!res->transcript || !*res->transcript) {
		log_warn("image %s not described: %s", json_str(wm->it->event, "provider_id"), res->error);
		wrk_media_coach(wm, caption);
		return;
	}
	if (asprintf(&text, caption && *caption ? "%s %s (legenda do cliente: %s)" : "%s %s", WRK_IMAGE_MARK,
		     res->transcript, caption) < 0)
		text = NULL;
	wrk_media_coach(wm, text ? text : caption);
	free(text);
}

/* Coaches a media message on text (its caption, a voice note's marker and transcript), then
 * lets it go. */
static void wrk_media_coach(wrk_media_t *wm, const char *text)
{
	wrk_item_t *it = wm->it;
	cJSON *ev = it->event;
	if (wm->coach) {
		it->refs++;
		coach_msg_t m = {.message_id = wm->message_id, .conversation_id = wm->conversation, .agent_id = wm->agent,
				 .company = wm->company, .conversation_key = json_str(ev, "conversation"),
				 .provider_id = json_str(ev, "provider_id"), .domain = json_str(ev, "domain"),
				 .text = text ? text : "", .received_at = json_str(ev, "received_at"), .token = it};
		coach_add(W.coach, &m);
	}
	cJSON_Delete(wm->media);
	free(wm->bytes);
	free(wm->mime);
	free(wm->transcript);
	free(wm);
	wrk_release(it); /* the media reference */
}

/* A voice note: transcribed (provider openai, file just stored, within the budget), then
 * coached on its transcript; otherwise coached as "listen to it". */
static void wrk_voice_start(wrk_media_t *wm, const media_result_t *r)
{
	if (!W.ai || !r->bytes || strcmp(r->status, "stored") != 0 || !wm->coach) {
		wrk_media_coach(wm, RULES_VOICE_MARK);
		return;
	}
	wrk_media_admit(wm, r, ai_transcription_cost_usd(r->duration_ms, W.cfg.ai.price_transcription_minute),
			wrk_voice_admitted);
}

/* res NULL: no budget to ask. */
static void wrk_voice_admitted(PGresult *res, void *arg)
{
	wrk_media_t *wm = arg;
	wrk_item_t *it = wm->it;
	if (res && (PQresultStatus(res) != PGRES_TUPLES_OK || !PQgetisnull(res, 0, 0))) {
		log_warn("voice note %s not transcribed: %s", json_str(it->event, "provider_id"),
			 PQresultStatus(res) == PGRES_TUPLES_OK ? PQgetvalue(res, 0, 0) : PQresultErrorMessage(res));
		metrics_add(metrics_series(W.m_transcriptions, "result=\"refused\""), 1);
		wrk_media_coach(wm, RULES_VOICE_MARK);
		return;
	}
	if (!ai_transcribe(W.ai, wm->company, json_str(it->event, "conversation"), wm->bytes, wm->len, wm->mime,
			   wm->duration_ms, wrk_voice_transcribed, wm))
		wrk_media_coach(wm, RULES_VOICE_MARK);
}

static void wrk_voice_transcribed(const ai_result_t *res, void *arg)
{
	wrk_media_t *wm = arg;
	char id[24];
	free(wm->bytes);
	wm->bytes = NULL;
	if (!res->ok) {
		/* cancelled by ai_free at exit: nothing more happens to it; it stays uncommitted */
		cJSON_Delete(wm->media);
		free(wm->mime);
		free(wm);
		return;
	}
	if (!res->transcript || !*res->transcript) {
		log_warn("voice note %s not transcribed: %s", json_str(wm->it->event, "provider_id"), res->error);
		metrics_add(metrics_series(W.m_transcriptions, "result=\"failed\""), 1);
		wrk_media_coach(wm, RULES_VOICE_MARK);
		return;
	}
	metrics_add(metrics_series(W.m_transcriptions, "result=\"ok\""), 1);
	metrics_observe(W.m_transcription_seconds, res->latency_ms / 1000.0);
	wm->transcript = xstrdup(res->transcript);
	snprintf(id, sizeof(id), "%lld", (long long)wm->message_id);
	const char *params[2] = {id, wm->transcript};
	if (!db_query(W.db, "UPDATE messages SET transcript = $2 WHERE id = $1", 2, params, wrk_voice_stored, wm))
		wrk_voice_stored(NULL, wm);
}

/* The transcript is stored: consoles get the message again with it, and it is coached. */
static void wrk_voice_stored(PGresult *res, void *arg)
{
	wrk_media_t *wm = arg;
	wrk_item_t *it = wm->it;
	cJSON *ev = it->event;
	char *text = NULL;
	if (!db_ok(res, "transcript update")) {
		wrk_media_coach(wm, RULES_VOICE_MARK);
		return;
	}
	size_t len;
	evt_route_t route = {.company = wm->company, .conversation = wm->conversation, .agent = wm->agent};
	evt_message_t m = {.message_id = json_str(ev, "provider_id"), .db_id = wm->message_id,
			   .conversation_id = wm->conversation, .conversation_key = json_str(ev, "conversation"),
			   .company_id = wm->company, .agent_id = wm->agent, .domain = json_str(ev, "domain"),
			   .channel = json_str(ev, "channel"), .customer = json_str(ev, "customer"),
			   .sender_name = json_str(ev, "sender_name"), .from_me = json_true(ev, "from_me"),
			   .kind = json_str(ev, "kind"), .text = json_str(ev, "text"), .media = wm->media,
			   .transcript = wm->transcript, .update = true, .created_at = json_str(ev, "received_at")};
	char *json = evt_message(&route, &m, &len);
	wrk_produce_event("message", wm->company, wm->conversation, json, len, wrk_ref(&it, 1));
	if (asprintf(&text, "%s %s", RULES_VOICE_MARK, wm->transcript) < 0)
		text = NULL;
	wrk_media_coach(wm, text ? text : RULES_VOICE_MARK);
	free(text);
}

/* Publishes one event (json, as event.c wrote it; taken) to atende.events, in its company's
 * partition (so every channel of a company has one ordered sequence). ref (may be NULL) is
 * released when the broker acknowledges. */
static bool wrk_produce_event(const char *type, long company, int64_t conversation, char *json, size_t len,
			      wrk_ref_t *ref)
{
	char err[256], key[24];
	bool ok = false;
	snprintf(key, sizeof(key), "%ld", company);
	if (!json) {
		snprintf(err, sizeof(err), "out of memory");
	} else {
		rd_kafka_headers_t *h = rd_kafka_headers_new(2);
		rd_kafka_header_add(h, "type", -1, type, -1);
		rd_kafka_header_add(h, "company", -1, key, -1);
		ok = kq_produce_to(W.producer, W.events_topic, (int32_t)(company % W.cfg.kafka.partitions), key, strlen(key),
				   json, len, h, ref, err, sizeof(err));
	}
	if (!ok) {
		metrics_add(W.m_event_failures, 1);
		log_error("%s event of conversation %lld not published: %s", type, (long long)conversation, err);
		wrk_on_delivery(ref, RD_KAFKA_RESP_ERR__FAIL, -1, -1, NULL);
	}
	free(json);
	return ok;
}

/* A reference on each of items, released together by one delivery report. */
static wrk_ref_t *wrk_ref(wrk_item_t *const *items, int n)
{
	wrk_ref_t *r = xmalloc(sizeof(*r) + (size_t)n * sizeof(wrk_item_t *));
	r->acked = NULL;
	r->n = n;
	for (int i = 0; i < n; i++) {
		r->items[i] = items[i];
		items[i]->refs++;
	}
	return r;
}

static void wrk_on_delivery(void *opaque, rd_kafka_resp_err_t err, int32_t partition, int64_t offset, void *arg)
{
	wrk_ref_t *r = opaque;
	(void)partition, (void)offset, (void)arg;
	if (err && err != RD_KAFKA_RESP_ERR__FAIL) {
		metrics_add(W.m_event_failures, 1);
		log_error("event delivery failed: %s", rd_kafka_err2str(err));
	}
	if (!r)
		return;
	if (r->acked)
		r->acked(r->acked_ctx, !err);
	for (int i = 0; i < r->n; i++)
		wrk_release(r->items[i]);
	free(r);
}

/* Drops one reference; at zero the message is fully handled and its offset committable. */
static void wrk_release(wrk_item_t *it)
{
	if (--it->refs > 0)
		return;
	W.finished++;
	wrk_done(it->track);
	cJSON_Delete(it->event);
	it->event = NULL;
	wrk_batch_t *b = it->batch;
	if (!b) {
		free(it); /* a dead letter */
	} else if (--b->items_left == 0) {
		wrk_batch_free(b);
	}
	wrk_flow_control();
}

static void wrk_coach_hint(const coach_hint_t *h, void *arg)
{
	char labels[64];
	size_t len;
	(void)arg;
	const evt_hint_t *e = &h->event;
	evt_route_t route = {.company = e->company_id, .conversation = e->conversation_id, .agent = e->agent_id};
	snprintf(labels, sizeof(labels), "source=\"%s\"", e->source);
	metrics_observe(metrics_series(W.m_hint_seconds, labels), h->seconds);
	/* the hint's messages stay uncommitted until this event is acknowledged */
	char *json = evt_hint(&route, e, &len);
	wrk_produce_event("hint", e->company_id, e->conversation_id, json, len,
			  wrk_ref((wrk_item_t *const *)h->tokens, h->n_tokens));
}

/* A partial hint (ai.stream) or its withdrawal: in the company's partition like the stored
 * hint, so it reaches consoles before it; nothing waits for the broker's report. */
static void wrk_coach_partial(const evt_hint_t *e, void *arg)
{
	size_t len;
	(void)arg;
	evt_route_t route = {.company = e->company_id, .conversation = e->conversation_id, .agent = e->agent_id};
	char *json = evt_hint(&route, e, &len);
	wrk_produce_event("hint", e->company_id, e->conversation_id, json, len, NULL);
}

/* An event about a reply or transfer; outbound learns of the broker's report. A stored reply
 * also joins the conversation's history for the next analysis. */
static void wrk_outbound_publish(const evt_t *e, outbound_acked_fn acked, void *ctx, void *arg)
{
	size_t len;
	(void)arg;
	wrk_ref_t *ref = wrk_ref(NULL, 0);
	ref->acked = acked;
	ref->acked_ctx = ctx;
	if (e->type == EVT_MESSAGE && e->message.from_me && e->message.message_id)
		coach_history(W.coach, e->message.conversation_key, true, e->message.text);
	char *json = evt_write(e, &len);
	wrk_produce_event(e->type_name, e->route.company, e->route.conversation, json, len, ref);
}

/* A survey answer (column r_survey of atende_ingest, schema/011: {"kind","score","survey_id"}):
 * its `survey` event, routed like the conversation's, and the per-company score metrics. */
static void wrk_publish_survey(wrk_item_t *it, PGresult *res, int row, int64_t message_id, const evt_route_t *route)
{
	cJSON *sv = cJSON_Parse(PQgetvalue(res, row, PQfnumber(res, "r_survey")));
	const char *kind = json_str(sv, "kind");
	char labels[96];
	size_t len;
	if (!kind) {
		cJSON_Delete(sv);
		return;
	}
	int score = (int)json_num(sv, "score", 0);
	evt_survey_t s = {.survey_id = (int64_t)json_num(sv, "survey_id", 0), .conversation_id = route->conversation,
			  .company_id = route->company, .agent_id = route->agent, .domain = json_str(it->event, "domain"),
			  .kind = kind, .score = score, .text = json_str(it->event, "text"), .db_id = message_id,
			  .at = json_str(it->event, "received_at")};
	snprintf(labels, sizeof(labels), "company=\"%ld\",kind=\"%s\"", route->company, kind);
	metrics_inc(W.m_surveys, labels);
	metrics_observe(metrics_series(W.m_survey_score, labels), score);
	log_debug("survey answer %d (%s) in conversation %lld", score, kind, (long long)route->conversation);
	char *json = evt_survey(route, &s, &len);
	wrk_produce_event("survey", route->company, route->conversation, json, len, wrk_ref(&it, 1));
	cJSON_Delete(sv);
}

/* A lifecycle job's request to atende.outbound (worker/jobs.c). */
static void wrk_job_publish(long company, int64_t conversation, const char *type, const char *json,
			    job_acked_fn acked, void *ctx, void *arg)
{
	(void)arg;
	wrk_produce_request(company, conversation, type, json, acked, ctx, "lifecycle request");
}

/* A worker's own request to atende.outbound (a bot reply, a lifecycle job), keyed by
 * conversation like the consoles' (notifier/ops.c), so one conversation's requests stay in
 * order on one partition; acked(ctx, ok) once the broker has it or gave up. what names it in
 * the log. */
static void wrk_produce_request(long company, int64_t conversation, const char *type, const char *json,
				void (*acked)(void *ctx, bool ok), void *ctx, const char *what)
{
	char err[256], key[24], comp[24];
	wrk_ref_t *ref = wrk_ref(NULL, 0);
	ref->acked = acked;
	ref->acked_ctx = ctx;
	snprintf(key, sizeof(key), "%lld", (long long)conversation);
	snprintf(comp, sizeof(comp), "%ld", company);
	rd_kafka_headers_t *h = rd_kafka_headers_new(2);
	rd_kafka_header_add(h, "type", -1, type, -1);
	rd_kafka_header_add(h, "company", -1, comp, -1);
	if (!kq_produce(W.producer, W.outbound_topic, key, strlen(key), json, strlen(json), h, ref, err, sizeof(err))) {
		metrics_add(W.m_event_failures, 1);
		log_error("%s of conversation %lld not queued on %s: %s", what, (long long)conversation, W.outbound_topic,
			  err);
		wrk_on_delivery(ref, RD_KAFKA_RESP_ERR__FAIL, -1, -1, NULL);
	}
}

/* A reply or transfer is finished: committable, or dead-lettered when it never can be. */
static void wrk_outbound_done(void *token, bool ok, const char *why)
{
	wrk_item_t *it = token;
	if (ok) {
		wrk_release(it);
		return;
	}
	char *json = cJSON_PrintUnformatted(it->event);
	wrk_dead_letter(it, it->event, json, strlen(json), why ? why : "outbound request cannot be handled", 1);
	free(json);
}

static void wrk_coach_done(void *token, void *arg)
{
	(void)arg;
	wrk_release(token);
}

static void wrk_coach_count(const char *kind, const char *what, void *arg)
{
	char labels[96];
	(void)arg;
	if (strcmp(kind, "source") == 0) {
		snprintf(labels, sizeof(labels), "source=\"%s\"", what);
		metrics_inc(W.m_hints, labels);
	} else if (strcmp(kind, "cache") == 0) {
		snprintf(labels, sizeof(labels), "result=\"%s\"", what);
		metrics_inc(W.m_cache, labels);
	} else if (strcmp(kind, "semantic") == 0) {
		snprintf(labels, sizeof(labels), "result=\"%s\"", what);
		metrics_inc(W.m_semantic, labels);
	} else if (strcmp(kind, "cache_memory") == 0) {
		snprintf(labels, sizeof(labels), "result=\"%s\"", what);
		metrics_inc(W.m_cache_memory, labels);
	} else if (strcmp(kind, "routed") == 0) {
		snprintf(labels, sizeof(labels), "intent=\"%s\"", what);
		metrics_inc(W.m_routed, labels);
	} else if (strcmp(kind, "shadow") == 0) {
		const char *colon = strchr(what, ':');
		snprintf(labels, sizeof(labels), "kind=\"%.*s\",result=\"%s\"", colon ? (int)(colon - what) : 0, what,
			 colon ? colon + 1 : what);
		metrics_inc(W.m_shadow, labels);
	} else {
		snprintf(labels, sizeof(labels), "reason=\"%s\"", what);
		metrics_inc(strcmp(kind, "skip") == 0 ? W.m_skips : W.m_refusals, labels);
	}
}

/* A message that cannot be processed goes to atende.dlq (error, origin and attempts in
 * headers) and to the dlq table; the partition moves on once both have it. it is a
 * malloc'd item (batch NULL) freed when both are done; ev is value as already parsed (NULL
 * when it is not JSON), for the table's company, key and provider id. */
static void wrk_dead_letter(wrk_item_t *it, const cJSON *ev, const void *value, size_t len, const char *why,
			    int attempts)
{
	char err[256], part[16], off[24], att[16], company[24] = "";
	size_t why_len = strcspn(why, "\n");
	log_error("dead-lettering %s[%d]@%lld after %d attempt(s): %.*s", it->topic, (int)it->partition,
		  (long long)it->offset, attempts, (int)why_len, why);
	it->refs = 1;
	wrk_ref_t *ref = wrk_ref(&it, 1); /* the topic's acknowledgement */
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
	if (!kq_produce(W.producer, W.dlq_topic, NULL, 0, value, len, h, ref, err, sizeof(err))) {
		log_error("dead letter not queued on %s: %s", W.dlq_topic, err);
		wrk_on_delivery(ref, RD_KAFKA_RESP_ERR__FAIL, -1, -1, NULL);
	}
	/* the payload as text: a NUL or invalid UTF-8 would make the row unstorable */
	char *payload = text_utf8_sanitize(value, len);
	char *why_copy = xstrndup(why, why_len);
	if (cJSON_IsNumber(cJSON_GetObjectItem(ev, "company")))
		snprintf(company, sizeof(company), "%.0f", json_num(ev, "company", 0));
	const char *params[9] = {it->topic, part, off, json_str(ev, "conversation"), payload, why_copy, att,
				 company[0] ? company : NULL, json_str(ev, "provider_id")};
	if (!db_query(W.db,
		      "INSERT INTO dlq (topic, partition, \"offset\", msg_key, payload, error, attempts, company_id, provider_id) "
		      "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (topic, partition, \"offset\") DO NOTHING",
		      9, params, wrk_dlq_stored, it))
		wrk_dlq_stored(NULL, it);
	free(why_copy);
	free(payload);
}

static void wrk_dlq_stored(PGresult *res, void *arg)
{
	if (!db_ok(res, "dlq insert"))
		log_error("dead letter kept only on the topic (the table insert failed)");
	wrk_release(arg);
}

static void wrk_commit_one(const char *topic, int32_t partition, int64_t next, void *arg)
{
	rd_kafka_topic_partition_list_add(arg, topic, partition)->offset = next;
}

/* A message is handled: its offset is committed within WRK_COMMIT_MS, with whatever else
 * finishes meanwhile. The commit timer runs only then, so an idle worker does not wake for it. */
static void wrk_done(track_item_t *item)
{
	track_done(W.track, item);
	if (!evtimer_pending(W.commit_ev, NULL)) {
		struct timeval tv = {0, WRK_COMMIT_MS * 1000};
		evtimer_add(W.commit_ev, &tv);
	}
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
		W.assigned = true;
		return;
	}
	W.assigned = false;
	/* commit what is finished (may fail while the group rebalances: the new owner then
	 * redelivers it, and storing is idempotent), then forget the partitions */
	wrk_commit_cb(-1, 0, NULL);
	for (int i = 0; i < parts->cnt; i++) {
		track_revoke(W.track, parts->elems[i].topic, parts->elems[i].partition);
		/* the new owner reports that partition's lag now: a stale value here would add to its
		 * figure in the merged /metrics for as long as this worker lives */
		wrk_on_lag(parts->elems[i].topic, parts->elems[i].partition, 0, NULL);
	}
	log_info("revoked %d partitions", parts->cnt);
}

static void wrk_flow_control(void)
{
	int n = track_in_flight(W.track);
	if (!W.paused && n >= WRK_MAX_IN_FLIGHT) {
		W.paused = true;
		kq_pause(W.consumer, true);
	} else if (W.paused && (!W.draining || W.drain_to_end) && n < WRK_MAX_IN_FLIGHT / 2) {
		W.paused = false;
		kq_pause(W.consumer, false);
	}
}

/* Where a worker's messages wait when nothing moves: one line an operator (or a chaos run's
 * post-mortem) can act on, since a stalled worker otherwise logs nothing at all. */
static void wrk_log_stall(const char *kind, double for_s, int64_t unread)
{
	int batches = 0;
	for (wrk_batch_t *b = W.live; b; b = b->live_next)
		batches++;
	rd_kafka_topic_partition_list_t *parts = NULL;
	int assigned = (parts = kq_group_assignment(W.consumer)) ? parts->cnt : 0;
	if (parts)
		rd_kafka_topic_partition_list_destroy(parts);
	log_warn("stalled (%s): nothing consumed or finished for %.0f s; %d messages in flight "
		 "(%d batches held, %d storage queries unanswered, %d queries queued or in flight, %d in coaching, "
		 "%d media, %d events awaiting the broker's ack), %lld unread in %d assigned partitions%s%s, "
		 "brokers %s",
		 kind, for_s, track_in_flight(W.track), batches, W.store_in_flight, db_pending(W.db),
		 coach_pending(W.coach), media_pending(W.media), kq_outq_len(W.producer), (long long)unread, assigned,
		 W.paused ? ", consumption paused (too much in flight)" : "", W.draining ? ", draining" : "",
		 kq_brokers_up(W.consumer) ? "up" : "down");
}

/* A fetcher that stopped fetching: seek each assigned partition to the position already
 * handed to us, which drops its fetch state and starts it again from there (nothing is
 * skipped: what was fetched and not yet consumed is fetched again). */
static int wrk_restart_fetch(void)
{
	rd_kafka_t *rk = kq_handle(W.consumer);
	rd_kafka_topic_partition_list_t *parts = NULL;
	int sought = 0;
	if (!(parts = kq_group_assignment(W.consumer)))
		return 0;
	if (rd_kafka_position(rk, parts) == RD_KAFKA_RESP_ERR_NO_ERROR) {
		rd_kafka_topic_partition_list_t *seek = rd_kafka_topic_partition_list_new(parts->cnt);
		for (int i = 0; i < parts->cnt; i++)
			if (parts->elems[i].offset >= 0)
				rd_kafka_topic_partition_list_add(seek, parts->elems[i].topic, parts->elems[i].partition)
				    ->offset = parts->elems[i].offset;
		rd_kafka_error_t *e = seek->cnt ? rd_kafka_seek_partitions(rk, seek, 0 /* asynchronous: the loop never waits */) : NULL;
		if (e) {
			log_warn("stalled: seeking %d partitions to restart their fetch: %s", seek->cnt, rd_kafka_error_string(e));
			rd_kafka_error_destroy(e);
		} else if (seek->cnt) {
			log_warn("stalled: %d partitions sought to their positions to restart their fetch", seek->cnt);
			sought = seek->cnt;
		}
		rd_kafka_topic_partition_list_destroy(seek);
	}
	rd_kafka_topic_partition_list_destroy(parts);
	return sought;
}

/* The stall watchdog (every WRK_WATCH_MS): progress is a message consumed or finished.
 * With work waiting (messages in flight, or unread in our partitions) and no progress for
 * workers.stall_s, it says where the work waits, once a minute while it lasts, and counts it;
 * a fetch stall (unread messages, none in flight, consumption not paused) also restarts
 * the fetch, and when that cannot help, the worker: librdkafka 2.0.2's consumer was seen
 * (make chaos, after rebalances during a broker outage with commits failing) holding an
 * assignment it never started fetching, with no position to seek to. Nothing is in flight
 * then, so exiting loses nothing: the supervisor starts a fresh consumer, and the group
 * hands it the partitions from their committed offsets. */
static void wrk_watch_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	double now = wrk_now();
	int64_t unread = 0;
	int in_flight = track_in_flight(W.track);
	bool moved = W.consumed != W.watch_consumed || W.finished != W.watch_finished;
	if (moved)
		W.watch_unread_asked = 0;
	else
		wrk_caught_up(&unread, true);
	if (!moved && unread == 0 && in_flight == 0 && W.assigned && !W.paused && !W.draining) {
		/* The watermarks our fetches bring stop with them: a fetcher that stopped sees no
		 * new messages. Ask the broker itself (blocking round trips, at most a second),
		 * once per stall_s of quiet, and count what it said until something moves. */
		if (now - W.watch_asked_at >= W.cfg.workers.stall_s) {
			W.watch_asked_at = now;
			wrk_caught_up(&W.watch_unread_asked, false);
		}
		unread = W.watch_unread_asked;
	}
	if (moved || (in_flight == 0 && unread == 0)) {
		if (W.stalled_since)
			log_info("moving again after %.0f s stalled", now - W.stalled_since);
		W.watch_consumed = W.consumed, W.watch_finished = W.finished;
		W.watch_progress_at = now;
		W.stalled_since = 0;
		W.stall_seeks = 0;
		return;
	}
	/* once a minute while it lasts; but a seek that restarted nothing is known after stall_s */
	double again = W.stall_seeks ? W.cfg.workers.stall_s : 60;
	if (now - W.watch_progress_at < W.cfg.workers.stall_s || (W.stalled_since && now - W.stall_logged_at < again))
		return;
	const char *kind = in_flight ? "finish" : "consume";
	if (!W.stalled_since) {
		W.stalled_since = W.watch_progress_at;
		metrics_inc(W.m_stalls, in_flight ? "kind=\"finish\"" : "kind=\"consume\"");
	}
	W.stall_logged_at = now;
	wrk_log_stall(kind, now - W.watch_progress_at, unread);
	/* a fetch cannot start without brokers: librdkafka reconnects, and exiting would only
	 * add a rebalance to the outage */
	if (in_flight || W.paused || !W.assigned || W.draining || !kq_brokers_up(W.consumer))
		return;
	if (W.stall_seeks++ == 0 && wrk_restart_fetch() > 0)
		return; /* looked at again after stall_s */
	log_error("stalled: the consumer fetches none of its partitions (%lld messages unread, none in flight); "
		  "exiting so that the supervisor starts a fresh consumer",
		  (long long)unread);
	rd_kafka_flush(kq_handle(W.producer), 2000); /* events already produced (jobs, statuses) */
	_exit(3);
}

/* Drill (SIGUSR2): the state librdkafka 2.0.2 was seen in, on purpose. The consumer stops
 * fetching its partitions (paused inside librdkafka, the worker's flow control not told), so
 * an operator or a test can watch the stall watchdog find it and hand the partitions to a
 * fresh consumer without losing or repeating a message. */
static void wrk_drill_wedge(void)
{
	rd_kafka_topic_partition_list_t *parts = NULL;
	if (!(parts = kq_group_assignment(W.consumer)))
		return;
	rd_kafka_pause_partitions(kq_handle(W.consumer), parts);
	log_warn("drill (SIGUSR2): the consumer stops fetching its %d partitions without the worker knowing; "
		 "the stall watchdog has workers.stall_s to find it", parts->cnt);
	rd_kafka_topic_partition_list_destroy(parts);
}

static void wrk_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what, (void)arg;
	if (sig == SIGUSR2) {
		wrk_drill_wedge();
		return;
	}
	if (sig == SIGHUP) {
		char err[512];
		if (!proc_reload_config(&W.cfg))
			return;
		if ((W.open && W.open->n >= W.cfg.workers.batch_size) ||
		    (W.open_st && W.open_st->n >= W.cfg.workers.batch_size))
			wrk_flush_cb(-1, 0, NULL); /* the open batch was sized for the old limit */
		if (W.ai) {
			ai_config_t ac;
			ai_config_from_cfg(&ac, &W.cfg);
			if (!ai_reconfigure(W.ai, &ac, err, sizeof(err)))
				log_error("reload: AI settings kept: %s", err);
		}
		coach_reconfigure(W.coach, &W.cfg);
		job_reconfigure(W.jobs);
		log_info("reload: applied");
		return;
	}
	if (W.draining) {
		event_base_loopbreak(W.base);
		return;
	}
	/* drain: stop taking messages, finish what was consumed (analyses included), commit, leave */
	W.draining = true;
	job_stop(W.jobs);
	W.drain_to_end = getenv(PROC_ENV_BROKER_IN_MEMORY) != NULL;
	/* the supervisor's whole stop has shutdown_timeout_s and keeps a second of it for each
	 * of the notifier, broker and PostgreSQL behind us: leave it 5 s (half of a short one) */
	int budget = W.cfg.supervisor.shutdown_timeout_s;
	W.drain_deadline = wrk_now() + (budget >= 10 ? budget - 5 : budget / 2.0);
	if (!W.drain_to_end)
		kq_pause(W.consumer, true); /* what is not consumed stays in the broker for the next start */
	wrk_flush_cb(-2, 0, NULL); /* at once */
	log_info("draining: %d messages in flight, %d in coaching%s", track_in_flight(W.track), coach_pending(W.coach),
		 W.drain_to_end ? "; consuming what the in-memory broker still holds once the ingress has gone" : "");
	W.drain_ev = event_new(W.base, -1, EV_PERSIST, wrk_drain_cb, NULL);
	struct timeval tv = {0, 20 * 1000};
	event_add(W.drain_ev, &tv);
}

static void wrk_drain_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	double now = wrk_now();
	int64_t unread = 0;
	if (now >= W.drain_deadline) {
		/* they stay uncommitted: a broker that keeps its data redelivers them */
		if (W.drain_to_end && !wrk_caught_up(&unread, true) && unread > 0)
			log_error("drain: %lld acknowledged messages not yet consumed: lost with the in-memory broker "
				  "unless it is kept for the next start (kafka.embedded_orphan_keep_s)", (long long)unread);
		log_warn("drain: stopping with %d messages unfinished (%d in coaching) to stop within "
			 "supervisor.shutdown_timeout_s; they are not committed", track_in_flight(W.track),
			 coach_pending(W.coach));
		event_base_loopbreak(W.base);
		return;
	}
	if (W.drain_to_end && !kq_brokers_up(W.consumer)) {
		log_warn("drain: the in-memory broker is gone, and what it held with it: finishing what is in flight only");
		W.drain_to_end = false;
	}
	if (track_in_flight(W.track) > 0)
		return;
	if (!W.drain_to_end) {
		event_base_loopbreak(W.base);
		return;
	}
	/* Once the ingress has gone nothing new arrives (it answers 200 only after the broker
	 * acknowledged); we are done when our partitions hold nothing we have not consumed. */
	if (now < W.drain_next_check)
		return;
	W.drain_next_check = now + 0.1;
	if (!proc_pidfile_alive(&W.cfg, "ingress", "atende-ingress") && wrk_caught_up(&unread, false)) {
		log_info("drain: every message the broker holds for our partitions is handled");
		event_base_loopbreak(W.base);
	}
}

/* Whether this worker has consumed everything its assigned partitions hold; *unread counts
 * what is left. By the broker's own high watermarks, asked now: blocking round trips, for the
 * drain only, all of them within one second (a vanished broker, or fetches held by a broker
 * that answers them when data comes, must not hold the drain timer for seconds per
 * partition); or, when cached, by the watermarks the last fetches brought (no round trip:
 * for the drain's last word at its deadline). */
static bool wrk_caught_up(int64_t *unread, bool cached)
{
	rd_kafka_t *rk = kq_handle(W.consumer);
	rd_kafka_topic_partition_list_t *parts = NULL;
	*unread = 0;
	if (!W.assigned || !(parts = kq_group_assignment(W.consumer)))
		return false;
	double give_up = wrk_now() + 1.0;
	rd_kafka_topic_partition_list_t *committed = rd_kafka_topic_partition_list_copy(parts);
	bool known = rd_kafka_position(rk, parts) == RD_KAFKA_RESP_ERR_NO_ERROR &&
		     (cached || rd_kafka_committed(rk, committed, 500) == RD_KAFKA_RESP_ERR_NO_ERROR);
	for (int i = 0; known && i < parts->cnt; i++) {
		rd_kafka_topic_partition_t *p = &parts->elems[i];
		int64_t low, high;
		int left_ms = (int)((give_up - wrk_now()) * 1000);
		if (cached ? rd_kafka_get_watermark_offsets(rk, p->topic, p->partition, &low, &high) || high < 0
			   : left_ms <= 0 || rd_kafka_query_watermark_offsets(rk, p->topic, p->partition, &low, &high, left_ms)) {
			known = false;
			break;
		}
		/* nothing consumed since the assignment: the position is the committed offset,
		 * or the beginning (auto.offset.reset = earliest) */
		int64_t at = p->offset >= 0 ? p->offset : !cached && committed->elems[i].offset >= 0 ? committed->elems[i].offset : low;
		if (high > at)
			*unread += high - at;
	}
	rd_kafka_topic_partition_list_destroy(committed);
	rd_kafka_topic_partition_list_destroy(parts);
	return known && *unread == 0;
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
						"Consumed messages by outcome: stored, duplicate (already stored), or rerouted "
						"(stored, handed over by a pool whose domain the conversation left).",
						NULL, 0);
	W.m_stored = metrics_series(msgs, "result=\"stored\"");
	W.m_duplicates = metrics_series(msgs, "result=\"duplicate\"");
	W.m_rerouted = metrics_series(msgs, "result=\"rerouted\"");
	W.m_statuses = metrics_family("atende_worker_statuses_total", METRICS_COUNTER,
				      "Delivery statuses consumed, by result: advanced (moved its message forward), "
				      "unchanged (already there or further), kept (its message not stored yet: waits), "
				      "ignored (not one atende keeps, or not a message atende sent).",
				      NULL, 0);
	W.m_status_applied = metrics_family("atende_worker_statuses_applied_total", METRICS_COUNTER,
					    "Delivery statuses that moved a message forward, by status (sent, delivered, "
					    "read, failed); also those that waited for their message.",
					    NULL, 0);
	W.m_delivery_failed = metrics_series(metrics_family("atende_worker_delivery_failed_total", METRICS_COUNTER,
							    "Messages atende sent that the gateway reported failed.",
							    NULL, 0), "");
	W.m_delivery_tracked = metrics_series(metrics_family("atende_worker_delivery_tracked_total", METRICS_COUNTER,
							     "Messages atende sent whose first delivery status arrived "
							     "(the failure rate's denominator).",
							     NULL, 0), "");
	W.m_hints = metrics_family("atende_worker_hints_total", METRICS_COUNTER,
				   "Hints made, by source (ai, rules, cache, fallback).", NULL, 0);
	W.m_hint_seconds = metrics_family("atende_worker_hint_seconds", METRICS_HISTOGRAM,
					  "Stored customer message to hint stored, by source.", metrics_latency_buckets,
					  metrics_latency_nbuckets);
	W.m_skips = metrics_family("atende_worker_coaching_skipped_total", METRICS_COUNTER,
				   "Customer messages not coached, by filter (disabled, short, agent_typing).", NULL, 0);
	W.m_refusals = metrics_family("atende_worker_limit_refusals_total", METRICS_COUNTER,
				      "Limit refusals by reason: agent_interval (no hint), or a budget limit "
				      "(per_minute, cost_hour, cost_day, pending: hint from cache or rules).",
				      NULL, 0);
	W.m_cache = metrics_family("atende_worker_cache_lookups_total", METRICS_COUNTER,
				   "Similarity cache lookups by result (hit, miss).", NULL, 0);
	W.m_routed = metrics_family("atende_worker_hints_routed_total", METRICS_COUNTER,
				    "Hints routed to the rules without an AI call (ai.route_confident), by intent.", NULL, 0);
	W.m_shadow = metrics_family("atende_worker_shadow_checks_total", METRICS_COUNTER,
				    "Cache and routed hints checked by the AI in the background (ai.shadow_share), by kind "
				    "(cache, semantic, routed) and result (agree, disagree, failed).", NULL, 0);
	W.m_cache_memory = metrics_family("atende_worker_cache_memory_lookups_total", METRICS_COUNTER,
					  "Cache lookups in the worker's memory (cache.memory_entries) before PostgreSQL's, by "
					  "result: hit (PostgreSQL not asked), miss and refused (the rules read otherwise; "
					  "both asked there). Hits are also in atende_worker_cache_lookups_total.", NULL, 0);
	W.m_cache_memory_entries = metrics_series(
		metrics_family("atende_worker_cache_memory_entries", METRICS_GAUGE,
			       "Cached hints this worker holds in memory (cache.memory_entries per company and domain).",
			       NULL, 0),
		"");
	W.m_semantic = metrics_family("atende_worker_semantic_lookups_total", METRICS_COUNTER,
				      "Semantic cache lookups (ai.embeddings_model) after a trigram miss, by result: hit, "
				      "miss, refused (the nearest hint's intent or critical flag is not the rules'), failed "
				      "(no embedding: the AI answers).", NULL, 0);
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
	W.m_coach_pending = metrics_series(metrics_family("atende_worker_coaching_pending", METRICS_GAUGE,
							  "Customer messages whose coaching is under way.", NULL, 0), "");
	W.m_conversations = metrics_series(metrics_family("atende_worker_conversations", METRICS_GAUGE,
							  "Conversations with history or buffered messages in memory.", NULL, 0), "");
	W.m_db_pending = metrics_series(metrics_family("atende_worker_db_pending_queries", METRICS_GAUGE,
						       "Queries queued or in flight on the PostgreSQL connection.", NULL, 0), "");
	W.m_event_failures = metrics_series(metrics_family("atende_worker_event_failures_total", METRICS_COUNTER,
							   "Events that could not be published.", NULL, 0), "");
	W.m_rebalances = metrics_series(metrics_family("atende_worker_rebalances_total", METRICS_COUNTER,
						       "Consumer group assignments and revocations.", NULL, 0), "");
	W.m_stalls = metrics_family("atende_worker_stalls_total", METRICS_COUNTER,
				    "Times nothing was consumed or finished for workers.stall_s with work waiting, by kind: "
				    "consume (messages unread, none fetched) or finish (messages in flight, none done).",
				    NULL, 0);
	W.m_transcriptions = metrics_family("atende_worker_transcriptions_total", METRICS_COUNTER,
					    "Voice notes by transcription outcome (ok, failed, refused by the budget).", NULL, 0);
	W.m_transcription_seconds = metrics_series(metrics_family("atende_worker_transcription_seconds", METRICS_HISTOGRAM,
								  "Voice note transcription, queueing and retries included.",
								  metrics_latency_buckets, metrics_latency_nbuckets), "");
	W.m_media_pending = metrics_series(metrics_family("atende_worker_media_pending", METRICS_GAUGE,
							  "Media messages whose file is being fetched or stored.", NULL, 0), "");
	W.m_lag = metrics_family("atende_worker_consumer_lag", METRICS_GAUGE,
				 "Messages behind the end of each assigned inbound partition.", NULL, 0);
	static const double score_buckets[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
	W.m_surveys = metrics_family("atende_worker_surveys_answered_total", METRICS_COUNTER,
				     "Satisfaction survey answers stored, by company and kind (nps, csat).", NULL, 0);
	W.m_survey_score = metrics_family("atende_worker_survey_score", METRICS_HISTOGRAM,
					  "Survey scores by company and kind: _sum / _count is the average (NPS from "
					  "the buckets: share above 8 minus share up to 6).",
					  score_buckets, 11);
	if (!W.ai)
		return;
	W.m_ai_calls = metrics_family("atende_worker_ai_calls_total", METRICS_COUNTER,
				      "AI HTTP calls by model and outcome (2xx, 429, 4xx, 5xx, timeout, garbage, conn).", NULL, 0);
	W.m_ai_tokens = metrics_family("atende_worker_ai_tokens_total", METRICS_COUNTER, "AI tokens by direction.", NULL, 0);
	W.m_ai_fallbacks = metrics_family("atende_worker_ai_fallbacks_total", METRICS_COUNTER,
					  "Analyses answered by the rules instead of the AI, by reason.", NULL, 0);
	W.m_ai_in_flight = metrics_series(metrics_family("atende_worker_ai_in_flight", METRICS_GAUGE,
							 "AI calls in flight.", NULL, 0), "");
	W.m_ai_max_in_flight = metrics_series(metrics_family("atende_worker_ai_in_flight_max", METRICS_GAUGE,
							     "Most AI calls in flight at once since start.", NULL, 0), "");
	W.m_ai_queued = metrics_series(metrics_family("atende_worker_ai_queued", METRICS_GAUGE,
						      "Analyses waiting for an AI slot, a 429 pause or a retry.", NULL, 0), "");
	W.m_ai_cost = metrics_series(metrics_family("atende_worker_ai_cost_usd_total", METRICS_COUNTER,
						    "AI spending (USD) from token usage and the price table.", NULL, 0), "");
	W.m_ai_breaker = metrics_series(metrics_family("atende_worker_ai_breaker_state", METRICS_GAUGE,
						       "Circuit breaker: 0 closed, 1 half-open, 2 open.", NULL, 0), "");
	W.m_ai_breaker_opens = metrics_series(metrics_family("atende_worker_ai_breaker_opens_total", METRICS_COUNTER,
							     "Times the circuit breaker opened.", NULL, 0), "");
	W.m_ai_retries = metrics_series(metrics_family("atende_worker_ai_retries_total", METRICS_COUNTER,
						       "AI calls that were retries.", NULL, 0), "");
	W.m_ai_rate_limited = metrics_series(metrics_family("atende_worker_ai_rate_limited_total", METRICS_COUNTER,
							    "429 answers that paused the provider.", NULL, 0), "");
	W.m_ai_repaired = metrics_family("atende_worker_ai_answers_repaired_total", METRICS_COUNTER,
					 "Usable AI answers repaired instead of retried, by what (intent, critical, hint_cut).",
					 NULL, 0);
	W.m_embed_calls = metrics_family("atende_worker_ai_embedding_calls_total", METRICS_COUNTER,
					 "Embeddings calls (ai.embeddings_model) by model and outcome (2xx, 429, 4xx, 5xx, "
					 "timeout, garbage, conn); not in atende_worker_ai_calls_total.", NULL, 0);
	W.m_embed_tokens = metrics_series(metrics_family("atende_worker_ai_embedding_tokens_total", METRICS_COUNTER,
							 "Tokens of the embeddings calls.", NULL, 0), "");
	W.m_embed_cost = metrics_series(metrics_family("atende_worker_ai_embedding_cost_usd_total", METRICS_COUNTER,
						       "Embeddings spending (USD, ai.price_embeddings); not in "
						       "atende_worker_ai_cost_usd_total.", NULL, 0), "");
	W.m_embed_vectors = metrics_series(metrics_family("atende_worker_semantic_vectors", METRICS_GAUGE,
							  "AI hints' vectors this worker holds for the semantic cache.", NULL, 0), "");
}

static void wrk_metrics_refresh(void)
{
	metrics_set(W.m_in_flight, track_in_flight(W.track));
	metrics_set(W.m_db_pending, db_pending(W.db));
	metrics_set(W.m_coach_pending, coach_pending(W.coach));
	metrics_set(W.m_conversations, coach_conversations(W.coach));
	metrics_set(W.m_media_pending, media_pending(W.media));
	if (!W.ai)
		return;
	ai_stats_t st;
	char labels[256];
	ai_stats(W.ai, &st);
	for (int tier = 0; tier < 2; tier++)
		for (int k = 0; k < AI_CLASS_N; k++)
			if (st.calls[tier][k]) {
				snprintf(labels, sizeof(labels), "model=\"%s\",status=\"%s\"",
					 tier ? W.cfg.ai.model_large : W.cfg.ai.model, ai_class_name((ai_class_t)k));
				metrics_set(metrics_series(W.m_ai_calls, labels), (double)st.calls[tier][k]);
			}
	metrics_set(metrics_series(W.m_ai_tokens, "direction=\"in\""), (double)st.tokens_in);
	metrics_set(metrics_series(W.m_ai_tokens, "direction=\"out\""), (double)st.tokens_out);
	metrics_set(metrics_series(W.m_ai_fallbacks, "reason=\"breaker\""), (double)st.fallback_breaker);
	metrics_set(metrics_series(W.m_ai_fallbacks, "reason=\"deadline\""), (double)st.fallback_deadline);
	metrics_set(metrics_series(W.m_ai_fallbacks, "reason=\"failed\""), (double)st.fallback_failed);
	static const char *const repaired[AI_REPAIRED_N] = {"what=\"intent\"", "what=\"critical\"", "what=\"hint_cut\""};
	for (int k = 0; k < AI_REPAIRED_N; k++)
		metrics_set(metrics_series(W.m_ai_repaired, repaired[k]), (double)st.repaired[k]);
	metrics_set(W.m_ai_in_flight, st.in_flight);
	metrics_set(W.m_ai_max_in_flight, st.max_in_flight_seen);
	metrics_set(W.m_ai_queued, st.queued);
	metrics_set(W.m_ai_cost, st.cost_usd);
	metrics_set(W.m_ai_breaker, st.breaker == BREAKER_OPEN ? 2 : st.breaker == BREAKER_HALF_OPEN ? 1 : 0);
	metrics_set(W.m_ai_breaker_opens, (double)st.breaker_opens);
	metrics_set(W.m_ai_retries, (double)st.retries);
	metrics_set(W.m_ai_rate_limited, (double)st.pauses_429);
	for (int k = 0; k < AI_CLASS_N; k++)
		if (st.embed_calls[k]) {
			snprintf(labels, sizeof(labels), "model=\"%s\",status=\"%s\"", W.cfg.emb.model,
				 ai_class_name((ai_class_t)k));
			metrics_set(metrics_series(W.m_embed_calls, labels), (double)st.embed_calls[k]);
		}
	metrics_set(W.m_embed_tokens, (double)st.embed_tokens);
	metrics_set(W.m_embed_cost, st.embed_cost_usd);
	metrics_set(W.m_embed_vectors, coach_semantic_vectors(W.coach));
	metrics_set(W.m_cache_memory_entries, coach_memory_entries(W.coach));
}

static void wrk_on_lag(const char *topic, int32_t partition, int64_t lag, void *arg)
{
	char labels[256];
	(void)arg;
	snprintf(labels, sizeof(labels), "topic=\"%s\",partition=\"%d\"", topic, (int)partition);
	metrics_gauge_set(W.m_lag, labels, (double)lag);
}
