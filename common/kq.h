/*
 * kq: the Kafka layer over librdkafka, driven from a libevent loop. librdkafka signals
 * its queues through a pipe (rd_kafka_queue_io_event_enable), so delivery reports,
 * consumed messages and stats arrive as ordinary loop events; nothing blocks the loop.
 */
#ifndef ATENDE_KQ_H
#define ATENDE_KQ_H

#include <event2/event.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>

typedef struct kq kq_t;

/* A delivery report for one produced message: opaque is what kq_produce got. */
typedef void (*kq_delivery_fn)(void *opaque, rd_kafka_resp_err_t err, int32_t partition, int64_t offset, void *arg);
/* One consumed message; the callee owns it and must rd_kafka_message_destroy it. */
typedef void (*kq_message_fn)(rd_kafka_message_t *msg, void *arg);
/* Group rebalance, called before kq assigns/unassigns: err is
 * RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS or RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS. */
typedef void (*kq_rebalance_fn)(kq_t *kq, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts, void *arg);

typedef struct {
	const char *brokers;
	const char *properties;  /* kafka.properties: "k=v; k=v" set after atende's own (TLS, SASL, ...) */
	const char *client_id;
	int linger_ms;
	/* producer */
	kq_delivery_fn on_delivery;
	/* consumer: group NULL means no group (the caller assigns partitions itself) */
	const char *group;
	int session_timeout_ms;
	int fetch_wait_max_ms;
	kq_message_fn on_message;
	kq_rebalance_fn on_rebalance;
	/* optional, every second from librdkafka's stats: a consumer's lag per partition */
	void (*on_lag)(const char *topic, int32_t partition, int64_t lag, void *arg);
	void *arg;
} kq_opts_t;

/* Creates an idempotent producer (acks=all) wired into base. NULL + err on failure. */
kq_t *kq_producer_new(struct event_base *base, const kq_opts_t *opts, char *err, size_t errlen);

/* Creates a consumer with manual commits (no auto commit, no auto offset store). */
kq_t *kq_consumer_new(struct event_base *base, const kq_opts_t *opts, char *err, size_t errlen);

rd_kafka_t *kq_handle(kq_t *kq);

/* Queues one message. hdrs (may be NULL) is owned by kq afterwards, whatever the result.
 * Returns false and fills err when the message could not be queued (queue full, unknown topic). */
bool kq_produce(kq_t *kq, const char *topic, const void *key, size_t keylen, const void *value, size_t len,
		rd_kafka_headers_t *hdrs, void *opaque, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Like kq_produce, to an explicit partition (events are partitioned by company so every
 * channel of a company has one ordered sequence). */
bool kq_produce_to(kq_t *kq, const char *topic, int32_t partition, const void *key, size_t keylen, const void *value,
		   size_t len, rd_kafka_headers_t *hdrs, void *opaque, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Makes a producer fetch and keep up to date the metadata of topics it is about to write to,
 * so the first message to each does not wait for a metadata request (about a second). */
void kq_known_topics(kq_t *kq, const char *const *topics, int n);

/* Subscribes a group consumer to topics. */
bool kq_subscribe(kq_t *kq, const char *const *topics, int n, char *err, size_t errlen) __attribute__((warn_unused_result));

/* A group consumer also reads every partition of topic, outside the group: this member
 * adds them to each assignment the group gives it, from where it left them at the last
 * revocation (their end at the first), and never commits them; flow control (kq_pause)
 * leaves them running. Their messages go to on_message instead of opts.on_message. Saves a
 * client (its threads and fetches) against a consumer of its own. Call before the first
 * assignment (after kq_consumer_new, before kq_subscribe). False + err when the topic's
 * partitions cannot be had. */
bool kq_read_alongside(kq_t *kq, const char *topic, kq_message_fn on_message, int timeout_ms, char *err,
		       size_t errlen) __attribute__((warn_unused_result));

/* The partitions the group assigned to this member (without kq_read_alongside's), or NULL;
 * the caller destroys the list. */
rd_kafka_topic_partition_list_t *kq_group_assignment(kq_t *kq);

/* Number of partitions of topic (blocking metadata request: start-up only); -1 and err
 * when the topic is unknown or the broker does not answer within timeout_ms. */
int kq_partition_count(kq_t *kq, const char *topic, int timeout_ms, char *err, size_t errlen);

/* Commits offsets (next offset to read, per partition) asynchronously; failures are logged. */
void kq_commit(kq_t *kq, const rd_kafka_topic_partition_list_t *offsets);

/* Messages queued or in flight not yet reported. */
int kq_outq_len(kq_t *kq);

/* True when the last stats report (every second) showed at least one broker UP,
 * or nothing has been reported yet but the last delivery succeeded. */
bool kq_brokers_up(const kq_t *kq);

/* Set when librdkafka reported a fatal error (e.g. the idempotent producer fenced). */
bool kq_fatal(const kq_t *kq);

/* Pauses/resumes the consumer's message delivery to on_message (assigned partitions). */
void kq_pause(kq_t *kq, bool paused);

/* Stops and destroys: a consumer is closed (leaves its group), a producer flushes for at most
 * flush_ms. Blocking; only for shutdown. */
void kq_free(kq_t *kq, int flush_ms);

/* Sets each "key=value" of props (separated by ';', spaces around them ignored; NULL or
 * empty: nothing) on conf. False with librdkafka's message (naming the key) in err on the
 * first one it refuses, or when a part has no '='. */
bool kq_conf_properties(rd_kafka_conf_t *conf, const char *props, char *err, size_t errlen)
	__attribute__((warn_unused_result));

#endif
