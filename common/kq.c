/*
 * kq: librdkafka handles wired into libevent (see kq.h). One pipe per handle carries
 * librdkafka's "queue became non-empty" wakeups; the loop then drains the queue with
 * zero-timeout polls, a bounded number per wakeup so one busy consumer cannot starve
 * the other events of the loop.
 */
#include "kq.h"
#include "log.h"
#include "tick.h"
#include "xalloc.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KQ_DRAIN_BUDGET 2000

struct kq {
	rd_kafka_t *rk;
	rd_kafka_queue_t *queue; /* main queue (producer) or consumer queue */
	struct event_base *base;
	struct event *wake_ev;   /* readable end of the wakeup pipe */
	tick_t *tick;            /* safety poll: covers a wakeup lost between drains */
	int pipefd[2];
	bool consumer, paused, fatal;
	int brokers_up;          /* -1 unknown, 0 down, 1 up */
	rd_kafka_topic_t **known_topics; /* held so librdkafka keeps their metadata (kq_known_topics) */
	int n_known_topics;
	/* kq_read_alongside: its topic's partitions, each at the offset to resume from */
	rd_kafka_topic_partition_list_t *side;
	char *side_topic;
	kq_message_fn on_side_message;
	kq_opts_t opts;
};

static kq_t *kq_new(struct event_base *base, const kq_opts_t *opts, bool consumer, char *err, size_t errlen);
static void kq_wake_cb(evutil_socket_t fd, short what, void *arg);
static void kq_drain(kq_t *kq);
static void kq_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);
static void kq_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque);
static int kq_stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque);
static void kq_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts, void *opaque);
static void kq_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf);
static bool kq_set(rd_kafka_conf_t *conf, const char *k, const char *v, char *err, size_t errlen);

kq_t *kq_producer_new(struct event_base *base, const kq_opts_t *opts, char *err, size_t errlen)
{
	return kq_new(base, opts, false, err, errlen);
}

kq_t *kq_consumer_new(struct event_base *base, const kq_opts_t *opts, char *err, size_t errlen)
{
	return kq_new(base, opts, true, err, errlen);
}

rd_kafka_t *kq_handle(kq_t *kq)
{
	return kq->rk;
}

bool kq_produce(kq_t *kq, const char *topic, const void *key, size_t keylen, const void *value, size_t len,
		rd_kafka_headers_t *hdrs, void *opaque, char *err, size_t errlen)
{
	return kq_produce_to(kq, topic, RD_KAFKA_PARTITION_UA, key, keylen, value, len, hdrs, opaque, err, errlen);
}

bool kq_produce_to(kq_t *kq, const char *topic, int32_t partition, const void *key, size_t keylen, const void *value,
		   size_t len, rd_kafka_headers_t *hdrs, void *opaque, char *err, size_t errlen)
{
	rd_kafka_resp_err_t e = rd_kafka_producev(
		kq->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition), RD_KAFKA_V_KEY((void *)key, keylen),
		RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
	if (e) {
		if (hdrs)
			rd_kafka_headers_destroy(hdrs);
		snprintf(err, errlen, "produce to %s: %s", topic, rd_kafka_err2str(e));
		return false;
	}
	return true;
}

void kq_known_topics(kq_t *kq, const char *const *topics, int n)
{
	kq->known_topics = xrealloc(kq->known_topics, sizeof(*kq->known_topics) * (size_t)(kq->n_known_topics + n));
	for (int i = 0; i < n; i++)
		kq->known_topics[kq->n_known_topics++] = rd_kafka_topic_new(kq->rk, topics[i], NULL);
}

bool kq_subscribe(kq_t *kq, const char *const *topics, int n, char *err, size_t errlen)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
	for (int i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(l, topics[i], RD_KAFKA_PARTITION_UA);
	rd_kafka_resp_err_t e = rd_kafka_subscribe(kq->rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (e) {
		snprintf(err, errlen, "subscribe: %s", rd_kafka_err2str(e));
		return false;
	}
	return true;
}

int kq_partition_count(kq_t *kq, const char *topic, int timeout_ms, char *err, size_t errlen)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *t = rd_kafka_topic_new(kq->rk, topic, NULL);
	rd_kafka_resp_err_t e = rd_kafka_metadata(kq->rk, 0, t, &md, timeout_ms);
	int n = -1;
	if (e)
		snprintf(err, errlen, "metadata of %s: %s", topic, rd_kafka_err2str(e));
	else if (md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt <= 0)
		snprintf(err, errlen, "topic %s: %s", topic,
			 md->topic_cnt == 1 ? rd_kafka_err2str(md->topics[0].err) : "not found");
	else
		n = md->topics[0].partition_cnt;
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(t);
	return n;
}

void kq_commit(kq_t *kq, const rd_kafka_topic_partition_list_t *offsets)
{
	rd_kafka_resp_err_t e = rd_kafka_commit(kq->rk, offsets, 1);
	if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
		log_warn("kafka commit: %s", rd_kafka_err2str(e));
}

int kq_outq_len(kq_t *kq)
{
	return rd_kafka_outq_len(kq->rk);
}

bool kq_brokers_up(const kq_t *kq)
{
	return kq->brokers_up != 0;
}

bool kq_fatal(const kq_t *kq)
{
	return kq->fatal;
}

bool kq_read_alongside(kq_t *kq, const char *topic, kq_message_fn on_message, int timeout_ms, char *err, size_t errlen)
{
	int n = kq_partition_count(kq, topic, timeout_ms, err, errlen);
	if (n <= 0)
		return false;
	kq->side = rd_kafka_topic_partition_list_new(n);
	for (int p = 0; p < n; p++)
		rd_kafka_topic_partition_list_add(kq->side, topic, p)->offset = RD_KAFKA_OFFSET_END;
	kq->side_topic = xstrdup(topic);
	kq->on_side_message = on_message;
	return true;
}

rd_kafka_topic_partition_list_t *kq_group_assignment(kq_t *kq)
{
	rd_kafka_topic_partition_list_t *parts = NULL;
	if (rd_kafka_assignment(kq->rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR || !parts)
		return NULL;
	if (!kq->side)
		return parts;
	rd_kafka_topic_partition_list_t *group = rd_kafka_topic_partition_list_new(parts->cnt);
	for (int i = 0; i < parts->cnt; i++)
		if (strcmp(parts->elems[i].topic, kq->side_topic) != 0)
			rd_kafka_topic_partition_list_add(group, parts->elems[i].topic, parts->elems[i].partition)->offset =
			    parts->elems[i].offset;
	rd_kafka_topic_partition_list_destroy(parts);
	return group;
}

void kq_pause(kq_t *kq, bool paused)
{
	rd_kafka_topic_partition_list_t *parts = NULL;
	if (kq->paused == paused)
		return;
	kq->paused = paused;
	if ((parts = kq_group_assignment(kq))) {
		if (paused)
			rd_kafka_pause_partitions(kq->rk, parts);
		else
			rd_kafka_resume_partitions(kq->rk, parts);
		rd_kafka_topic_partition_list_destroy(parts);
	}
	if (!paused)
		event_active(kq->wake_ev, EV_READ, 0);
}

void kq_free(kq_t *kq, int flush_ms)
{
	if (!kq)
		return;
	if (kq->consumer) {
		rd_kafka_consumer_close(kq->rk);
	} else if (flush_ms > 0) {
		rd_kafka_resp_err_t e = rd_kafka_flush(kq->rk, flush_ms);
		if (e)
			log_warn("kafka flush: %s with %d messages undelivered", rd_kafka_err2str(e), rd_kafka_outq_len(kq->rk));
	}
	if (kq->wake_ev)
		event_free(kq->wake_ev);
	tick_free(kq->tick);
	for (int i = 0; i < kq->n_known_topics; i++)
		rd_kafka_topic_destroy(kq->known_topics[i]);
	free(kq->known_topics);
	if (kq->side)
		rd_kafka_topic_partition_list_destroy(kq->side);
	free(kq->side_topic);
	rd_kafka_queue_destroy(kq->queue);
	rd_kafka_destroy(kq->rk);
	close(kq->pipefd[0]);
	close(kq->pipefd[1]);
	free(kq);
}

static bool kq_set(rd_kafka_conf_t *conf, const char *k, const char *v, char *err, size_t errlen)
{
	if (rd_kafka_conf_set(conf, k, v, err, errlen) != RD_KAFKA_CONF_OK)
		return false;
	return true;
}

bool kq_conf_properties(rd_kafka_conf_t *conf, const char *props, char *err, size_t errlen)
{
	char pair[1024];
	for (const char *p = props; p && *p;) {
		size_t n = strcspn(p, ";");
		const char *start = p, *end = p + n;
		while (start < end && (*start == ' ' || *start == '\t' || *start == '\n'))
			start++;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n'))
			end--;
		p += n + (p[n] == ';');
		if (start == end)
			continue;
		if ((size_t)(end - start) >= sizeof(pair)) {
			snprintf(err, errlen, "kafka.properties: an entry is longer than %zu characters", sizeof(pair) - 1);
			return false;
		}
		memcpy(pair, start, (size_t)(end - start));
		pair[end - start] = '\0';
		char *eq = strchr(pair, '=');
		if (!eq || eq == pair) {
			snprintf(err, errlen, "kafka.properties: \"%.60s\" is not key=value", pair);
			return false;
		}
		*eq = '\0';
		char why[512];
		if (rd_kafka_conf_set(conf, pair, eq + 1, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
			snprintf(err, errlen, "kafka.properties: %s", why);
			return false;
		}
	}
	return true;
}

static kq_t *kq_new(struct event_base *base, const kq_opts_t *opts, bool consumer, char *err, size_t errlen)
{
	char num[32];
	kq_t *kq = xcalloc(1, sizeof(*kq));
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	kq->opts = *opts;
	kq->base = base;
	kq->consumer = consumer;
	kq->brokers_up = -1;
	kq->pipefd[0] = kq->pipefd[1] = -1;

	rd_kafka_conf_set_opaque(conf, kq);
	rd_kafka_conf_set_error_cb(conf, kq_error_cb);
	rd_kafka_conf_set_stats_cb(conf, kq_stats_cb);
	rd_kafka_conf_set_log_cb(conf, kq_log_cb);
	bool ok = kq_set(conf, "bootstrap.servers", opts->brokers, err, errlen) &&
		  kq_set(conf, "client.id", opts->client_id ? opts->client_id : "atende", err, errlen) &&
		  /* the lag metrics and healthz's broker state come from here: every 5 s is enough for
		   * both, and each snapshot costs the client's main thread a JSON of every partition */
		  kq_set(conf, "statistics.interval.ms", "5000", err, errlen) &&
		  /* small requests, several in flight: Nagle would hold one until the previous is ACKed */
		  kq_set(conf, "socket.nagle.disable", "true", err, errlen) &&
		  kq_set(conf, "reconnect.backoff.max.ms", "1000", err, errlen);
	if (ok && !consumer) {
		snprintf(num, sizeof(num), "%d", opts->linger_ms);
		rd_kafka_conf_set_dr_msg_cb(conf, kq_dr_cb);
		ok = kq_set(conf, "enable.idempotence", "true", err, errlen) &&
		     kq_set(conf, "acks", "all", err, errlen) && kq_set(conf, "linger.ms", num, err, errlen) &&
		     kq_set(conf, "compression.codec", "none", err, errlen) &&
		     kq_set(conf, "queue.buffering.max.messages", "1000000", err, errlen);
	} else if (ok) {
		snprintf(num, sizeof(num), "%d", opts->fetch_wait_max_ms > 0 ? opts->fetch_wait_max_ms : 100);
		ok = kq_set(conf, "fetch.wait.max.ms", num, err, errlen) &&
		     kq_set(conf, "enable.auto.commit", "false", err, errlen) &&
		     kq_set(conf, "enable.auto.offset.store", "false", err, errlen) &&
		     kq_set(conf, "auto.offset.reset", "earliest", err, errlen) &&
		     kq_set(conf, "enable.partition.eof", "false", err, errlen);
		if (ok && opts->group) {
			/* a heartbeat is a request and its answer through two threads of this client and
			 * the broker's: a third of the session, as Kafka advises, and no more often (at
			 * most 3 s, librdkafka's default; at least 1 s) */
			char hb[32];
			int hb_ms = opts->session_timeout_ms / 3;
			snprintf(hb, sizeof(hb), "%d", hb_ms < 1000 ? 1000 : hb_ms > 3000 ? 3000 : hb_ms);
			snprintf(num, sizeof(num), "%d", opts->session_timeout_ms);
			rd_kafka_conf_set_rebalance_cb(conf, kq_rebalance_cb);
			ok = kq_set(conf, "group.id", opts->group, err, errlen) &&
			     kq_set(conf, "session.timeout.ms", num, err, errlen) &&
			     kq_set(conf, "heartbeat.interval.ms", hb, err, errlen);
		} else if (ok) {
			/* librdkafka wants a group.id for any KafkaConsumer; one nobody else uses, never committed to */
			snprintf(num, sizeof(num), "atende-solo-%d", (int)getpid());
			ok = kq_set(conf, "group.id", num, err, errlen);
		}
	}
	ok = ok && kq_conf_properties(conf, opts->properties, err, errlen);
	if (!ok) {
		rd_kafka_conf_destroy(conf);
		free(kq);
		return NULL;
	}
	kq->rk = rd_kafka_new(consumer ? RD_KAFKA_CONSUMER : RD_KAFKA_PRODUCER, conf, err, errlen);
	if (!kq->rk) {
		rd_kafka_conf_destroy(conf);
		free(kq);
		return NULL;
	}
	conf = NULL; /* owned by rk now */
	if (consumer) {
		rd_kafka_poll_set_consumer(kq->rk);
		kq->queue = rd_kafka_queue_get_consumer(kq->rk);
	} else {
		kq->queue = rd_kafka_queue_get_main(kq->rk);
	}
	if (pipe2(kq->pipefd, O_NONBLOCK | O_CLOEXEC) != 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		rd_kafka_queue_destroy(kq->queue);
		rd_kafka_destroy(kq->rk);
		free(kq);
		return NULL;
	}
	rd_kafka_queue_io_event_enable(kq->queue, kq->pipefd[1], "1", 1);
	kq->wake_ev = event_new(base, kq->pipefd[0], EV_READ | EV_PERSIST, kq_wake_cb, kq);
	kq->tick = tick_new(base, 1000, kq_wake_cb, kq);
	event_add(kq->wake_ev, NULL);
	return kq;
}

static void kq_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	kq_t *kq = arg;
	char buf[256];
	(void)what;
	if (fd >= 0)
		while (read(fd, buf, sizeof(buf)) > 0)
			;
	kq_drain(kq);
}

/* Drains up to a budget of events; reschedules itself when more may be waiting. */
static void kq_drain(kq_t *kq)
{
	int n = 0;
	if (!kq->consumer) {
		n = rd_kafka_poll(kq->rk, 0);
		if (n > 0 && rd_kafka_outq_len(kq->rk) > 0)
			event_active(kq->wake_ev, EV_READ, 0);
		return;
	}
	for (; n < KQ_DRAIN_BUDGET; n++) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(kq->rk, 0);
		if (!m)
			return;
		if (m->err) {
			if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
				log_warn("kafka consume: %s", rd_kafka_message_errstr(m));
			rd_kafka_message_destroy(m);
			continue;
		}
		kq->brokers_up = 1;
		if (kq->side && strcmp(rd_kafka_topic_name(m->rkt), kq->side_topic) == 0)
			kq->on_side_message(m, kq->opts.arg);
		else
			kq->opts.on_message(m, kq->opts.arg);
	}
	event_active(kq->wake_ev, EV_READ, 0);
}

static void kq_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	kq_t *kq = opaque;
	(void)rk;
	if (!m->err)
		kq->brokers_up = 1;
	if (kq->opts.on_delivery)
		kq->opts.on_delivery(m->_private, m->err, m->partition, m->offset, kq->opts.arg);
}

static void kq_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	kq_t *kq = opaque;
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
		kq->brokers_up = 0;
	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		char buf[512];
		rd_kafka_fatal_error(rk, buf, sizeof(buf));
		kq->fatal = true;
		log_error("kafka fatal error: %s", buf);
		return;
	}
	log_warn("kafka: %s: %s", rd_kafka_err2name(err), reason);
}

/* Reads broker states out of the stats JSON: healthz needs "can I reach a broker now". */
static int kq_stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
	kq_t *kq = opaque;
	(void)rk;
	cJSON *root = cJSON_ParseWithLength(json, len);
	cJSON *brokers = cJSON_GetObjectItem(root, "brokers"), *b;
	int up = 0;
	cJSON_ArrayForEach(b, brokers)
	{
		cJSON *st = cJSON_GetObjectItem(b, "state");
		cJSON *nodeid = cJSON_GetObjectItem(b, "nodeid");
		if (cJSON_IsString(st) && strcmp(st->valuestring, "UP") == 0 && cJSON_IsNumber(nodeid) && nodeid->valueint >= 0)
			up = 1;
	}
	if (brokers)
		kq->brokers_up = up;
	if (kq->opts.on_lag) {
		cJSON *topic, *part;
		cJSON_ArrayForEach(topic, cJSON_GetObjectItem(root, "topics"))
		{
			cJSON_ArrayForEach(part, cJSON_GetObjectItem(topic, "partitions"))
			{
				cJSON *lag = cJSON_GetObjectItem(part, "consumer_lag");
				cJSON *state = cJSON_GetObjectItem(part, "fetch_state");
				int32_t p = (int32_t)atoi(part->string);
				/* a revoked partition stays in the statistics with its last figures: only
				 * the ones being fetched are this consumer's lag */
				if (p >= 0 && cJSON_IsNumber(lag) && lag->valuedouble >= 0 &&
				    !(kq->side && strcmp(topic->string, kq->side_topic) == 0) &&
				    cJSON_IsString(state) && strcmp(state->valuestring, "active") == 0 &&
				    cJSON_IsNumber(cJSON_GetObjectItem(part, "committed_offset")))
					kq->opts.on_lag(topic->string, p, (int64_t)lag->valuedouble, kq->opts.arg);
			}
		}
	}
	cJSON_Delete(root);
	return 0;
}

static void kq_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	kq_t *kq = opaque;
	if (kq->opts.on_rebalance)
		kq->opts.on_rebalance(kq, err, parts, kq->opts.arg);
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		rd_kafka_topic_partition_list_t *all = parts;
		if (kq->side) {
			all = rd_kafka_topic_partition_list_copy(parts);
			for (int i = 0; i < kq->side->cnt; i++)
				rd_kafka_topic_partition_list_add(all, kq->side_topic, kq->side->elems[i].partition)->offset =
				    kq->side->elems[i].offset;
		}
		rd_kafka_assign(rk, all);
		if (kq->paused)
			rd_kafka_pause_partitions(rk, parts);
		if (all != parts)
			rd_kafka_topic_partition_list_destroy(all);
	} else {
		/* where the side partitions got to (a partition with nothing read since keeps where
		 * it was resumed from): the next assignment resumes them there */
		if (kq->side) {
			rd_kafka_topic_partition_list_t *at = rd_kafka_topic_partition_list_copy(kq->side);
			if (rd_kafka_position(rk, at) == RD_KAFKA_RESP_ERR_NO_ERROR)
				for (int i = 0; i < at->cnt; i++)
					if (at->elems[i].offset >= 0)
						kq->side->elems[i].offset = at->elems[i].offset;
			rd_kafka_topic_partition_list_destroy(at);
		}
		rd_kafka_assign(rk, NULL);
	}
}

static void kq_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	if (level <= 3)
		log_error("rdkafka %s: %s", fac, buf);
	else if (level <= 5)
		log_warn("rdkafka %s: %s", fac, buf);
	else
		log_debug("rdkafka %s: %s", fac, buf);
}
