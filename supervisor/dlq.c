/*
 * dlq: dead-letter inspection and replay (see dlq.h). A replay is stamped only after the
 * broker acknowledged it, so a failed or interrupted replay can simply be run again
 * (storage is idempotent: a message replayed twice is stored once).
 */
#include "dlq.h"
#include "kq.h"
#include "pgsync.h"
#include "xalloc.h"

#include <cJSON.h>
#include <librdkafka/rdkafka.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DLQ_TIMEOUT_MS 30000
#define DLQ_COLUMNS                                                                                                   \
	"id, topic, partition, \"offset\", msg_key, error, attempts, company_id, provider_id, "                       \
	"to_char(created_at, 'YYYY-MM-DD\"T\"HH24:MI:SSOF'), to_char(replayed_at, 'YYYY-MM-DD\"T\"HH24:MI:SSOF'), payload"

/* One replay in flight: the delivery report fills err. */
typedef struct {
	long long id;
	rd_kafka_resp_err_t err;
	bool reported;
} dlq_replay_t;

static PGconn *dlq_connect(const cfg_t *cfg);
static cJSON *dlq_row_json(PGresult *res, int row, bool with_payload);
static void dlq_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);
static rd_kafka_t *dlq_producer(const cfg_t *cfg);
static bool dlq_inbound_topic(const cfg_t *cfg, const char *topic);
static void dlq_print_json(cJSON *o);

int dlq_list(const cfg_t *cfg, bool all, bool json)
{
	PGconn *pg = dlq_connect(cfg);
	if (!pg)
		return 1;
	PGresult *res = PQexec(pg, all ? "SELECT " DLQ_COLUMNS " FROM dlq ORDER BY id"
				       : "SELECT " DLQ_COLUMNS " FROM dlq WHERE replayed_at IS NULL ORDER BY id");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "dlq: %s", PQresultErrorMessage(res));
		PQclear(res);
		PQfinish(pg);
		return 1;
	}
	if (json) {
		cJSON *arr = cJSON_CreateArray();
		for (int i = 0; i < PQntuples(res); i++)
			cJSON_AddItemToArray(arr, dlq_row_json(res, i, false));
		dlq_print_json(arr);
	} else {
		printf("%-6s %-25s %-30s %-8s %-24s %s\n", "ID", "CREATED", "TOPIC", "ATTEMPTS", "PROVIDER_ID", "ERROR");
		for (int i = 0; i < PQntuples(res); i++) {
			const char *e = PQgetvalue(res, i, 5);
			char replayed[64] = "";
			if (!PQgetisnull(res, i, 10))
				snprintf(replayed, sizeof(replayed), "  (replayed %s)", PQgetvalue(res, i, 10));
			printf("%-6s %-25s %-30s %-8s %-24.24s %.*s%s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 9),
			       PQgetvalue(res, i, 1), PQgetvalue(res, i, 6),
			       PQgetisnull(res, i, 8) ? "-" : PQgetvalue(res, i, 8), (int)strcspn(e, "\n"), e, replayed);
		}
		printf("%d %s\n", PQntuples(res), all ? "dead letters" : "pending dead letters (atende dlq show ID, atende dlq replay ID|--all)");
	}
	PQclear(res);
	PQfinish(pg);
	return 0;
}

/* The dead letter with this id (no rows when there is none). */
static PGresult *dlq_select_id(PGconn *pg, long long id)
{
	char ids[32];
	snprintf(ids, sizeof(ids), "%lld", id);
	const char *params[1] = {ids};
	return PQexecParams(pg, "SELECT " DLQ_COLUMNS " FROM dlq WHERE id = $1::bigint", 1, NULL, params, NULL, NULL, 0);
}

int dlq_show(const cfg_t *cfg, long long id, bool json)
{
	PGconn *pg = dlq_connect(cfg);
	if (!pg)
		return 1;
	PGresult *res = dlq_select_id(pg, id);
	int rc = 0;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "dlq: %s", PQresultErrorMessage(res));
		rc = 1;
	} else if (PQntuples(res) == 0) {
		fprintf(stderr, "dlq: no dead letter %lld\n", id);
		rc = 1;
	} else if (json) {
		dlq_print_json(dlq_row_json(res, 0, true));
	} else {
		static const char *const labels[] = {"id", "topic", "partition", "offset", "key", "error", "attempts",
						     "company", "provider_id", "created_at", "replayed_at"};
		for (int c = 0; c < 11; c++)
			printf("%-12s %s\n", labels[c], PQgetisnull(res, 0, c) ? "-" : PQgetvalue(res, 0, c));
		cJSON *payload = cJSON_Parse(PQgetvalue(res, 0, 11));
		char *pretty = payload ? cJSON_Print(payload) : NULL;
		printf("payload\n%s\n", pretty ? pretty : PQgetvalue(res, 0, 11));
		free(pretty);
		cJSON_Delete(payload);
	}
	PQclear(res);
	PQfinish(pg);
	return rc;
}

int dlq_replay(const cfg_t *cfg, long long id, bool json)
{
	PGconn *pg = dlq_connect(cfg);
	if (!pg)
		return 1;
	PGresult *res = id > 0 ? dlq_select_id(pg, id)
			       : PQexec(pg, "SELECT " DLQ_COLUMNS " FROM dlq WHERE replayed_at IS NULL ORDER BY id");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || (id > 0 && PQntuples(res) == 0)) {
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			fprintf(stderr, "dlq: %s", PQresultErrorMessage(res));
		else
			fprintf(stderr, "dlq: no dead letter %lld\n", id);
		PQclear(res);
		PQfinish(pg);
		return 1;
	}
	int n = PQntuples(res), failed = 0;
	dlq_replay_t *reps = xcalloc((size_t)n + 1, sizeof(*reps));
	rd_kafka_t *rk = n ? dlq_producer(cfg) : NULL;
	if (n && !rk) {
		free(reps);
		PQclear(res);
		PQfinish(pg);
		return 1;
	}
	for (int i = 0; i < n; i++) {
		dlq_replay_t *r = &reps[i];
		const char *topic = PQgetvalue(res, i, 1), *payload = PQgetvalue(res, i, 11);
		r->id = atoll(PQgetvalue(res, i, 0));
		if (!dlq_inbound_topic(cfg, topic)) {
			r->err = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
			r->reported = true;
			continue;
		}
		rd_kafka_headers_t *h = rd_kafka_headers_new(2);
		rd_kafka_header_add(h, "dlq_id", -1, PQgetvalue(res, i, 0), -1);
		rd_kafka_header_add(h, "type", -1, "message", -1);
		rd_kafka_resp_err_t e = rd_kafka_producev(
			rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			RD_KAFKA_V_KEY(PQgetisnull(res, i, 4) ? NULL : PQgetvalue(res, i, 4),
				       PQgetisnull(res, i, 4) ? 0 : (size_t)PQgetlength(res, i, 4)),
			RD_KAFKA_V_VALUE((void *)payload, (size_t)PQgetlength(res, i, 11)), RD_KAFKA_V_HEADERS(h),
			RD_KAFKA_V_OPAQUE(r), RD_KAFKA_V_END);
		if (e) {
			rd_kafka_headers_destroy(h); /* not handed over on failure */
			r->err = e;
			r->reported = true;
		}
		rd_kafka_poll(rk, 0);
	}
	if (rk)
		rd_kafka_flush(rk, DLQ_TIMEOUT_MS);
	cJSON *out = cJSON_CreateArray();
	for (int i = 0; i < n; i++) {
		dlq_replay_t *r = &reps[i];
		char rid[32], why[256] = "";
		snprintf(rid, sizeof(rid), "%lld", r->id);
		const char *p1[1] = {rid};
		if (!r->reported)
			snprintf(why, sizeof(why), "no delivery report within %d s", DLQ_TIMEOUT_MS / 1000);
		else if (r->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC && !dlq_inbound_topic(cfg, PQgetvalue(res, i, 1)))
			snprintf(why, sizeof(why), "topic %s is not one of atende's inbound topics", PQgetvalue(res, i, 1));
		else if (r->err)
			snprintf(why, sizeof(why), "%s", rd_kafka_err2str(r->err));
		if (!why[0]) {
			PGresult *u = PQexecParams(pg, "UPDATE dlq SET replayed_at = now() WHERE id = $1::bigint", 1, NULL, p1,
						   NULL, NULL, 0);
			if (PQresultStatus(u) != PGRES_COMMAND_OK)
				snprintf(why, sizeof(why), "replayed, but not stamped: %s", PQresultErrorMessage(u));
			PQclear(u);
		}
		why[strcspn(why, "\n")] = 0;
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "id", (double)r->id);
		cJSON_AddStringToObject(o, "topic", PQgetvalue(res, i, 1));
		cJSON_AddBoolToObject(o, "replayed", !why[0]);
		if (why[0])
			cJSON_AddStringToObject(o, "error", why);
		cJSON_AddItemToArray(out, o);
		if (why[0]) {
			failed++;
			fprintf(stderr, "dlq: %lld: %s\n", r->id, why);
		} else if (!json) {
			printf("replayed %lld to %s\n", r->id, PQgetvalue(res, i, 1));
		}
	}
	if (json)
		dlq_print_json(out);
	else {
		cJSON_Delete(out);
		printf("%d replayed, %d failed\n", n - failed, failed);
	}
	if (rk)
		rd_kafka_destroy(rk);
	free(reps);
	PQclear(res);
	PQfinish(pg);
	return failed ? 1 : 0;
}

static PGconn *dlq_connect(const cfg_t *cfg)
{
	char err[1024];
	PGconn *pg = pgsync_connect(cfg->postgres.conninfo, 5, err, sizeof(err));
	if (!pg)
		fprintf(stderr, "dlq: %s\n", err);
	return pg;
}

static cJSON *dlq_row_json(PGresult *res, int row, bool with_payload)
{
	static const char *const names[] = {"id", "topic", "partition", "offset", "key", "error", "attempts",
					    "company_id", "provider_id", "created_at", "replayed_at", "payload"};
	static const bool numeric[] = {true, false, true, true, false, false, true, true, false, false, false, false};
	cJSON *o = cJSON_CreateObject();
	for (int c = 0; c < (with_payload ? 12 : 11); c++) {
		if (PQgetisnull(res, row, c))
			cJSON_AddNullToObject(o, names[c]);
		else if (numeric[c])
			cJSON_AddNumberToObject(o, names[c], atof(PQgetvalue(res, row, c)));
		else
			cJSON_AddStringToObject(o, names[c], PQgetvalue(res, row, c));
	}
	return o;
}

static void dlq_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk, (void)opaque;
	dlq_replay_t *r = m->_private;
	if (r) {
		r->err = m->err;
		r->reported = true;
	}
}

static rd_kafka_t *dlq_producer(const cfg_t *cfg)
{
	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (rd_kafka_conf_set(conf, "bootstrap.servers", cfg->kafka.brokers, err, sizeof(err)) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof(err)) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "message.timeout.ms", "25000", err, sizeof(err)) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "client.id", "atende-dlq", err, sizeof(err)) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err)) != RD_KAFKA_CONF_OK ||
	    !kq_conf_properties(conf, cfg->kafka.properties, err, sizeof(err))) {
		fprintf(stderr, "dlq: %s\n", err);
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rd_kafka_conf_set_dr_msg_cb(conf, dlq_dr_cb);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!rk) {
		fprintf(stderr, "dlq: %s\n", err);
		rd_kafka_conf_destroy(conf); /* still ours: rd_kafka_new failed */
	}
	return rk;
}

/* Only the inbound topics are replay targets: a dead letter never comes from elsewhere,
 * and a broker with auto-creation would silently make a misspelled one. */
static bool dlq_inbound_topic(const cfg_t *cfg, const char *topic)
{
	char name[160];
	for (int d = 0; d < CFG_MAX_DOMAINS; d++)
		if (strcmp(cfg_topic(cfg, cfg_domains[d], name, sizeof(name)), topic) == 0)
			return true;
	return false;
}

static void dlq_print_json(cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o);
	printf("%s\n", s);
	free(s);
	cJSON_Delete(o);
}
