/*
 * topics: Admin API listing and creation (see topics.h). Topic names are validated
 * against the fixed set atende uses, because a broker with auto-creation on would
 * silently create a misspelled one.
 */
#include "topics.h"
#include "kq.h"
#include "log.h"

#include <cJSON.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOPICS_N (CFG_MAX_DOMAINS + CFG_N_OTHER_TOPICS)
#define TOPICS_TIMEOUT_MS 10000

static void topics_names(const cfg_t *cfg, char names[TOPICS_N][160]);
static const char *topics_suffix(int i);
static bool topics_create_missing(rd_kafka_t *rk, const cfg_t *cfg, char names[TOPICS_N][160], const bool *exists);
static void topics_committed(rd_kafka_t *rk, const char *group, rd_kafka_topic_partition_list_t *parts);

int topics_run(const cfg_t *cfg, bool create, bool json)
{
	char err[512], names[TOPICS_N][160];
	bool exists[TOPICS_N] = {false};
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (rd_kafka_conf_set(conf, "bootstrap.servers", cfg->kafka.brokers, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
		fprintf(stderr, "topics: %s\n", err);
		rd_kafka_conf_destroy(conf);
		return 1;
	}
	rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
	if (!kq_conf_properties(conf, cfg->kafka.properties, err, sizeof(err))) {
		fprintf(stderr, "topics: %s\n", err);
		rd_kafka_conf_destroy(conf);
		return 1;
	}
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!rk) {
		fprintf(stderr, "topics: %s\n", err);
		rd_kafka_conf_destroy(conf);
		return 1;
	}
	topics_names(cfg, names);
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, TOPICS_TIMEOUT_MS);
	if (e) {
		fprintf(stderr, "topics: cannot reach the broker at %s: %s\n", cfg->kafka.brokers, rd_kafka_err2str(e));
		rd_kafka_destroy(rk);
		return 1;
	}
	int partitions[TOPICS_N] = {0};
	for (int t = 0; t < md->topic_cnt; t++)
		for (int i = 0; i < TOPICS_N; i++)
			if (strcmp(md->topics[t].topic, names[i]) == 0 && !md->topics[t].err) {
				exists[i] = true;
				partitions[i] = md->topics[t].partition_cnt;
			}
	rd_kafka_metadata_destroy(md);
	int rc = 0;
	if (create) {
		rc = topics_create_missing(rk, cfg, names, exists) ? 0 : 1;
		rd_kafka_destroy(rk);
		return rc;
	}

	/* describe: per partition the high watermark and the workers' committed offset */
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(64);
	for (int i = 0; i < TOPICS_N; i++)
		for (int p = 0; p < partitions[i]; p++)
			rd_kafka_topic_partition_list_add(parts, names[i], p)->offset = RD_KAFKA_OFFSET_INVALID;
	for (int p = 0; p < cfg->n_pools; p++) { /* each pool commits in its own group */
		char group[256];
		topics_committed(rk, cfg_pool_group(cfg, &cfg->pools[p], group, sizeof(group)), parts);
	}
	cJSON *out = cJSON_CreateArray();
	if (!json)
		printf("%-32s %5s %12s %12s %10s\n", "TOPIC", "PARTS", "MESSAGES", "COMMITTED", "LAG");
	for (int i = 0; i < TOPICS_N; i++) {
		int64_t total = 0, committed = 0, lag = 0;
		bool inbound = i < CFG_MAX_DOMAINS;
		cJSON *t = cJSON_CreateObject(), *pl = cJSON_CreateArray();
		for (int p = 0; p < partitions[i]; p++) {
			int64_t lo = 0, hi = 0;
			rd_kafka_query_watermark_offsets(rk, names[i], p, &lo, &hi, TOPICS_TIMEOUT_MS);
			rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_find(parts, names[i], p);
			int64_t c = tp && tp->offset >= 0 ? tp->offset : lo;
			total += hi;
			committed += c;
			lag += hi - c;
			cJSON *po = cJSON_CreateObject();
			cJSON_AddNumberToObject(po, "partition", p);
			cJSON_AddNumberToObject(po, "low", (double)lo);
			cJSON_AddNumberToObject(po, "high", (double)hi);
			if (inbound) {
				cJSON_AddNumberToObject(po, "committed", (double)c);
				cJSON_AddNumberToObject(po, "lag", (double)(hi - c));
			}
			cJSON_AddItemToArray(pl, po);
		}
		cJSON_AddStringToObject(t, "topic", names[i]);
		cJSON_AddBoolToObject(t, "exists", exists[i]);
		cJSON_AddNumberToObject(t, "partitions", partitions[i]);
		cJSON_AddItemToObject(t, "partition_offsets", pl);
		cJSON_AddItemToArray(out, t);
		if (!json) {
			if (!exists[i])
				printf("%-32s %5s\n", names[i], "MISSING");
			else if (inbound)
				printf("%-32s %5d %12lld %12lld %10lld\n", names[i], partitions[i], (long long)total,
				       (long long)committed, (long long)lag);
			else
				printf("%-32s %5d %12lld %12s %10s\n", names[i], partitions[i], (long long)total, "-", "-");
		}
		if (!exists[i])
			rc = 1;
	}
	if (json) {
		char *s = cJSON_PrintUnformatted(out);
		printf("%s\n", s);
		free(s);
	}
	cJSON_Delete(out);
	rd_kafka_topic_partition_list_destroy(parts);
	rd_kafka_destroy(rk);
	return rc;
}

/* The cfg_topic suffix of the i-th of the TOPICS_N topics: the domains', then the others. */
static const char *topics_suffix(int i)
{
	return i < CFG_MAX_DOMAINS ? cfg_domains[i] : cfg_other_topics[i - CFG_MAX_DOMAINS];
}

static void topics_names(const cfg_t *cfg, char names[TOPICS_N][160])
{
	for (int i = 0; i < TOPICS_N; i++)
		cfg_topic(cfg, topics_suffix(i), names[i], 160);
}

/* The workers' committed offsets, filled into parts (offset stays INVALID when none). */
static void topics_committed(rd_kafka_t *rk, const char *group, rd_kafka_topic_partition_list_t *parts)
{
	if (!parts->cnt)
		return;
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_ListConsumerGroupOffsets_t *req = rd_kafka_ListConsumerGroupOffsets_new(group, parts);
	rd_kafka_ListConsumerGroupOffsets(rk, &req, 1, NULL, q);
	rd_kafka_ListConsumerGroupOffsets_destroy(req);
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, TOPICS_TIMEOUT_MS);
	if (ev && !rd_kafka_event_error(ev)) {
		size_t n = 0;
		const rd_kafka_group_result_t **g =
			rd_kafka_ListConsumerGroupOffsets_result_groups(rd_kafka_event_ListConsumerGroupOffsets_result(ev), &n);
		for (size_t i = 0; i < n; i++) {
			const rd_kafka_topic_partition_list_t *got = rd_kafka_group_result_partitions(g[i]);
			for (int k = 0; got && k < got->cnt; k++) {
				rd_kafka_topic_partition_t *tp =
					rd_kafka_topic_partition_list_find(parts, got->elems[k].topic, got->elems[k].partition);
				if (tp && !got->elems[k].err && got->elems[k].offset >= 0)
					tp->offset = got->elems[k].offset;
			}
		}
	} else if (ev) {
		log_warn("committed offsets of group %s: %s", group, rd_kafka_event_error_string(ev));
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_queue_destroy(q);
}

static bool topics_create_missing(rd_kafka_t *rk, const cfg_t *cfg, char names[TOPICS_N][160], const bool *exists)
{
	char err[256];
	rd_kafka_NewTopic_t *nt[TOPICS_N];
	int n = 0;
	for (int i = 0; i < TOPICS_N; i++)
		if (!exists[i]) {
			nt[n] = rd_kafka_NewTopic_new(names[i], cfg_topic_partitions(cfg, topics_suffix(i)), -1, err, sizeof(err));
			if (!nt[n]) {
				fprintf(stderr, "topics: %s: %s\n", names[i], err);
				continue;
			}
			n++;
		}
	if (n == 0) {
		log_info("topics: all %d topics exist", TOPICS_N);
		return true;
	}
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_CreateTopics(rk, nt, (size_t)n, NULL, q);
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, TOPICS_TIMEOUT_MS * 3);
	bool ok = ev && !rd_kafka_event_error(ev);
	if (ev && ok) {
		size_t cnt = 0;
		const rd_kafka_topic_result_t **res = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
		for (size_t i = 0; i < cnt; i++) {
			rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
			if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
				fprintf(stderr, "topics: create %s: %s\n", rd_kafka_topic_result_name(res[i]),
					rd_kafka_topic_result_error_string(res[i]));
				ok = false;
			} else {
				const char *name = rd_kafka_topic_result_name(res[i]);
				int k = 0;
				while (k < TOPICS_N - 1 && strcmp(names[k], name) != 0)
					k++;
				log_info("topics: created %s (%d partitions)", name, cfg_topic_partitions(cfg, topics_suffix(k)));
			}
		}
	} else {
		fprintf(stderr, "topics: CreateTopics: %s\n", ev ? rd_kafka_event_error_string(ev) : "timed out");
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_NewTopic_destroy_array(nt, (size_t)n);
	rd_kafka_queue_destroy(q);
	return ok;
}
