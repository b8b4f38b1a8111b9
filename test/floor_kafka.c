/*
 * floor_kafka: atende's Kafka work alone, for test/bench_floor.py (issue 19), through atende's
 * own Kafka layer (common/kq, the settings the programs use). The caller reads its CPU.
 *
 * produce BROKERS RATE SECONDS: the ingress's produce path. RATE messages a second for SECONDS
 * to the five inbound topics (atende.inbound.<domain>), each keyed by one of 5,000
 * conversations like the bench's webhooks and the size of the ingress's canonical message, as
 * requests would bring them, waiting for every delivery report. No HTTP, no JSON, no dedup.
 * Prints one JSON line: produced, acked, failed.
 *
 * idle BROKERS SECONDS FETCH_WAIT_MS SESSION_TIMEOUT_MS: a worker's two clients with nothing to
 * do: a group consumer (its own group) on the inbound topics with the workers' fetch wait and
 * session timeout, and a producer, for SECONDS. No event loop work of atende's own. Prints
 * "assigned" when the group gives the consumer its partitions.
 */
#include "kq.h"
#include "log.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const floor_topics[] = {"atende.inbound.financeiro", "atende.inbound.comercial",
					   "atende.inbound.suporte", "atende.inbound.ouvidoria",
					   "atende.inbound.cancelamento"};

static struct {
	kq_t *producer;
	struct event_base *base;
	double rate, seconds, started;
	long produced, acked, failed;
	char value[640];
} F;

static double floor_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void floor_delivered(void *opaque, rd_kafka_resp_err_t err, int32_t partition, int64_t offset, void *arg)
{
	(void)opaque, (void)partition, (void)offset, (void)arg;
	if (err)
		F.failed++;
	else
		F.acked++;
}

/* Every millisecond: the messages due by now, as the ingress would get them from requests. */
static void floor_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	double elapsed = floor_now() - F.started;
	long due = (long)((elapsed < F.seconds ? elapsed : F.seconds) * F.rate);
	char key[48], err[256];
	for (; F.produced < due; F.produced++) {
		snprintf(key, sizeof(key), "evolution:bench|55119%08ld", (F.produced * 7) % 5000);
		if (!kq_produce(F.producer, floor_topics[F.produced % 5], key, strlen(key), F.value, sizeof(F.value) - 1, NULL, NULL, err,
				sizeof(err))) {
			fprintf(stderr, "floor_kafka: %s\n", err);
			F.failed++;
		}
	}
	if (elapsed >= F.seconds && F.acked + F.failed == F.produced)
		event_base_loopbreak(F.base);
}

static void floor_idle_end(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	event_base_loopbreak(arg);
}

static void floor_idle_message(rd_kafka_message_t *msg, void *arg)
{
	(void)msg, (void)arg;
}

static void floor_idle_assigned(kq_t *kq, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts, void *arg)
{
	(void)kq, (void)parts, (void)arg;
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		printf("assigned\n"); /* the caller measures from here: the start and the join are not idle */
		fflush(stdout);
	}
}

static int floor_idle(const char *brokers, double seconds, int fetch_wait_ms, int session_timeout_ms)
{
	char err[512];
	kq_opts_t co = {.brokers = brokers, .client_id = "floor-idle", .group = "floor-idle",
			.session_timeout_ms = session_timeout_ms, .fetch_wait_max_ms = fetch_wait_ms,
			.on_message = floor_idle_message, .on_rebalance = floor_idle_assigned};
	kq_opts_t po = {.brokers = brokers, .client_id = "floor-idle", .on_delivery = floor_delivered};
	kq_t *consumer = kq_consumer_new(F.base, &co, err, sizeof(err));
	kq_t *producer = consumer ? kq_producer_new(F.base, &po, err, sizeof(err)) : NULL;
	if (!producer || !kq_subscribe(consumer, floor_topics, 5, err, sizeof(err))) {
		fprintf(stderr, "floor_kafka: %s\n", err);
		return 1;
	}
	struct event *end = evtimer_new(F.base, floor_idle_end, F.base);
	struct timeval tv = {(time_t)seconds, (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6)};
	evtimer_add(end, &tv);
	event_base_dispatch(F.base);
	event_free(end);
	kq_free(producer, 1000);
	kq_free(consumer, 1000);
	printf("{\"idle_s\":%g}\n", seconds);
	return 0;
}

int main(int argc, char **argv)
{
	log_init("floor");
	F.base = event_base_new();
	if (argc == 6 && strcmp(argv[1], "idle") == 0 && atof(argv[3]) > 0)
		return floor_idle(argv[2], atof(argv[3]), atoi(argv[4]), atoi(argv[5]));
	if (argc != 5 || strcmp(argv[1], "produce") != 0 || atof(argv[3]) <= 0 || atof(argv[4]) <= 0) {
		fprintf(stderr, "usage: floor_kafka produce BROKERS RATE SECONDS\n"
				"       floor_kafka idle BROKERS SECONDS FETCH_WAIT_MS SESSION_TIMEOUT_MS\n");
		return 2;
	}
	char err[512];
	F.rate = atof(argv[3]);
	F.seconds = atof(argv[4]);
	memset(F.value, 'x', sizeof(F.value) - 1);
	kq_opts_t ko = {.brokers = argv[2], .client_id = "floor-produce", .on_delivery = floor_delivered};
	F.producer = kq_producer_new(F.base, &ko, err, sizeof(err));
	if (!F.producer) {
		fprintf(stderr, "floor_kafka: %s\n", err);
		return 1;
	}
	kq_known_topics(F.producer, floor_topics, 5); /* as the ingress does */
	struct event *tick = event_new(F.base, -1, EV_PERSIST, floor_tick, NULL);
	struct timeval ms = {0, 1000};
	F.started = floor_now();
	event_add(tick, &ms);
	event_base_dispatch(F.base);
	event_free(tick);
	kq_free(F.producer, 5000);
	printf("{\"produced\":%ld,\"acked\":%ld,\"failed\":%ld}\n", F.produced, F.acked, F.failed);
	event_base_free(F.base);
	return F.failed ? 1 : 0;
}
