/*
 * status: one look at a running system (see status.h). Rates come from two scrapes of
 * the merged /metrics, so they are the last interval's, not averages since start; a
 * counter that went down (its process restarted) counts from zero.
 */
#include "status.h"

#include <cJSON.h>
#include <curl/curl.h>
#include <libpq-fe.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pgembed.h"
#include "xalloc.h"

/* The counter each role is judged by in the table, and its unit. */
static const struct {
	const char *role, *family, *unit;
} status_headline[] = {
	{"ingress", "atende_ingress_requests_total", "req/s"},
	{"worker", "atende_worker_messages_total", "msg/s"},
	{"notifier", "atende_notifier_deliveries_total", "deliveries/s"},
};

static char *status_fetch(const char *url, long *code, char *err, size_t errlen);
static size_t status_sink(char *p, size_t sz, size_t n, void *arg);
static double status_now(void);
static const status_sample_t *status_find(const status_samples_t *s, const char *name, const char *labels);
static void status_rates(cJSON *processes, const status_samples_t *prev, const status_samples_t *cur, double dt,
			 cJSON *refusals);
static cJSON *status_process(cJSON *processes, const char *role, int index);
static void status_lag(const status_samples_t *cur, cJSON *root);
static void status_limits(const cfg_t *cfg, const status_samples_t *cur, cJSON *root);
static double status_agg(const status_samples_t *s, const char *name, bool max, bool *found);
static void status_dlq(const cfg_t *cfg, cJSON *root);
static void status_print(const cJSON *root);
static void status_print_business(const cJSON *root);
static const char *status_fmt_secs(const cJSON *o, const char *name, char *buf, size_t len);
static const char *status_fmt_pct(const cJSON *o, const char *name, char *buf, size_t len);
static void status_fmt_limit(char *buf, size_t len, const cJSON *lim, const char *what);

int status_run(const cfg_t *cfg, bool json, double interval_s)
{
	char url[512], err[256];
	long code = 0, mcode = 0;
	snprintf(url, sizeof(url), "http://%s/healthz", cfg->metrics.listen);
	char *health = status_fetch(url, &code, err, sizeof(err));
	if (!health) {
		fprintf(stderr, "status: atende is not running at %s (%s)\n", cfg->metrics.listen, err);
		return 1;
	}
	cJSON *root = cJSON_Parse(health);
	free(health);
	if (!cJSON_IsObject(root)) {
		fprintf(stderr, "status: %s did not answer JSON\n", url);
		cJSON_Delete(root);
		return 1;
	}
	status_samples_t prev = {0}, cur = {0};
	snprintf(url, sizeof(url), "http://%s/metrics", cfg->metrics.listen);
	double t0 = status_now();
	char *text = status_fetch(url, &mcode, err, sizeof(err));
	if (text) {
		status_parse_metrics(text, &prev);
		free(text);
		usleep((useconds_t)(interval_s * 1e6));
		double t1 = status_now();
		text = status_fetch(url, &mcode, err, sizeof(err));
		if (text) {
			status_parse_metrics(text, &cur);
			free(text);
			cJSON *refusals = cJSON_CreateObject();
			status_rates(cJSON_GetObjectItem(root, "processes"), &prev, &cur, t1 - t0, refusals);
			cJSON_AddNumberToObject(root, "interval_s", round((t1 - t0) * 1000) / 1000);
			status_lag(&cur, root);
			status_limits(cfg, &cur, root);
			cJSON_AddItemToObject(root, "refusals_per_s", refusals);
		}
	}
	if (!text)
		fprintf(stderr, "status: cannot scrape %s (%s): no rates\n", url, err);
	status_dlq(cfg, root);
	if (json) {
		char *s = cJSON_PrintUnformatted(root);
		printf("%s\n", s);
		free(s);
	} else {
		status_print(root);
	}
	cJSON_Delete(root);
	status_samples_free(&prev);
	status_samples_free(&cur);
	return code == 200 ? 0 : 1;
}

void status_parse_metrics(const char *text, status_samples_t *out)
{
	for (const char *line = text; line && *line;) {
		const char *eol = strchr(line, '\n');
		size_t len = eol ? (size_t)(eol - line) : strlen(line);
		const char *next = eol ? eol + 1 : NULL;
		if (len == 0 || line[0] == '#') {
			line = next;
			continue;
		}
		status_sample_t s = {0};
		size_t nl = strcspn(line, "{ \n");
		const char *p = line + nl;
		if (nl == 0 || nl >= sizeof(s.name) || p >= line + len) {
			line = next;
			continue;
		}
		memcpy(s.name, line, nl);
		if (*p == '{') {
			/* the closing brace: the first } outside a quoted value */
			const char *q = p + 1;
			bool quoted = false;
			for (; q < line + len && (quoted || *q != '}'); q++) {
				if (*q == '\\' && quoted)
					q++;
				else if (*q == '"')
					quoted = !quoted;
			}
			if (q >= line + len || (size_t)(q - p - 1) >= sizeof(s.labels)) {
				line = next;
				continue;
			}
			memcpy(s.labels, p + 1, (size_t)(q - p - 1));
			p = q + 1;
		}
		char *end;
		s.value = strtod(p, &end);
		if (end == p) {
			line = next;
			continue;
		}
		if (out->n == out->cap) {
			out->cap = out->cap ? out->cap * 2 : 256;
			out->v = xrealloc(out->v, (size_t)out->cap * sizeof(status_sample_t));
		}
		out->v[out->n++] = s;
		line = next;
	}
}

void status_samples_free(status_samples_t *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

bool status_label(const char *labels, const char *key, char *buf, size_t len)
{
	size_t kl = strlen(key);
	for (const char *p = labels; p && *p;) {
		if (strncmp(p, key, kl) == 0 && p[kl] == '=' && p[kl + 1] == '"') {
			const char *v = p + kl + 2;
			size_t n = 0;
			for (; v[n] && v[n] != '"'; n++)
				if (v[n] == '\\' && v[n + 1])
					n++;
			snprintf(buf, len, "%.*s", (int)n, v);
			return true;
		}
		/* skip this pair: to the comma after its closing quote */
		const char *q = strchr(p, '"');
		if (!q)
			return false;
		for (q++; *q && *q != '"'; q++)
			if (*q == '\\' && q[1])
				q++;
		p = *q ? strchr(q, ',') : NULL;
		if (p)
			p++;
	}
	return false;
}

static size_t status_sink(char *p, size_t sz, size_t n, void *arg)
{
	return fwrite(p, sz, n, arg);
}

/* GET url; the body (malloc'd, NUL-terminated) whatever the status, NULL when unreachable. */
static char *status_fetch(const char *url, long *code, char *err, size_t errlen)
{
	char *body = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&body, &len);
	CURL *c = curl_easy_init();
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 3000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, status_sink);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, mem);
	CURLcode rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, code);
	curl_easy_cleanup(c);
	fclose(mem);
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "%s", curl_easy_strerror(rc));
		free(body);
		return NULL;
	}
	return body;
}

static double status_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const status_sample_t *status_find(const status_samples_t *s, const char *name, const char *labels)
{
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->v[i].name, name) == 0 && strcmp(s->v[i].labels, labels) == 0)
			return &s->v[i];
	return NULL;
}

static cJSON *status_process(cJSON *processes, const char *role, int index)
{
	cJSON *p;
	cJSON_ArrayForEach(p, processes)
	{
		const cJSON *r = cJSON_GetObjectItem(p, "role"), *i = cJSON_GetObjectItem(p, "index");
		if (cJSON_IsString(r) && strcmp(r->valuestring, role) == 0 && cJSON_IsNumber(i) && i->valueint == index)
			return p;
	}
	return NULL;
}

/* Every counter (…_total) becomes a per-second rate, summed per family under its
 * process's "rates"; refusals by reason are also gathered across processes. */
static void status_rates(cJSON *processes, const status_samples_t *prev, const status_samples_t *cur, double dt,
			 cJSON *refusals)
{
	if (dt <= 0)
		return;
	for (int i = 0; i < cur->n; i++) {
		const status_sample_t *c = &cur->v[i];
		size_t nl = strlen(c->name);
		char role[64], idx[16], reason[64], key[160];
		if (nl < 7 || strcmp(c->name + nl - 6, "_total") != 0 || !status_label(c->labels, "process", role, sizeof(role)) ||
		    !status_label(c->labels, "index", idx, sizeof(idx)))
			continue;
		const status_sample_t *p = status_find(prev, c->name, c->labels);
		double delta = !p ? c->value : c->value >= p->value ? c->value - p->value : c->value;
		double rate = round(delta / dt * 100) / 100;
		cJSON *proc = status_process(processes, role, atoi(idx));
		if (proc) {
			cJSON *rates = cJSON_GetObjectItem(proc, "rates");
			if (!rates)
				rates = cJSON_AddObjectToObject(proc, "rates");
			cJSON *r = cJSON_GetObjectItem(rates, c->name);
			if (r)
				cJSON_SetNumberValue(r, r->valuedouble + rate);
			else
				cJSON_AddNumberToObject(rates, c->name, rate);
		}
		if (strstr(c->name, "refus") && status_label(c->labels, "reason", reason, sizeof(reason))) {
			snprintf(key, sizeof(key), "%s/%s", role, reason);
			cJSON *r = cJSON_GetObjectItem(refusals, key);
			if (r)
				cJSON_SetNumberValue(r, r->valuedouble + rate);
			else
				cJSON_AddNumberToObject(refusals, key, rate);
		}
	}
}

/* Consumer lag of the workers, by topic. A partition reported by two workers (one of
 * them before a rebalance took it away) counts once, at its larger value. */
static void status_lag(const status_samples_t *cur, cJSON *root)
{
	cJSON *lag = cJSON_AddObjectToObject(root, "lag"), *topics = cJSON_CreateObject();
	double total = 0;
	for (int i = 0; i < cur->n; i++) {
		const status_sample_t *s = &cur->v[i];
		char topic[160], part[16], t2[160], p2[16];
		if (strcmp(s->name, "atende_worker_consumer_lag") != 0 || !status_label(s->labels, "topic", topic, sizeof(topic)) ||
		    !status_label(s->labels, "partition", part, sizeof(part)))
			continue;
		bool dominated = false;
		for (int j = 0; j < cur->n && !dominated; j++) {
			const status_sample_t *o = &cur->v[j];
			if (j == i || strcmp(o->name, s->name) != 0 || !status_label(o->labels, "topic", t2, sizeof(t2)) ||
			    !status_label(o->labels, "partition", p2, sizeof(p2)) || strcmp(t2, topic) != 0 || strcmp(p2, part) != 0)
				continue;
			dominated = o->value > s->value || (o->value == s->value && j < i);
		}
		if (dominated)
			continue;
		double v = s->value > 0 ? s->value : 0;
		total += v;
		cJSON *t = cJSON_GetObjectItem(topics, topic);
		if (t)
			cJSON_SetNumberValue(t, t->valuedouble + v);
		else
			cJSON_AddNumberToObject(topics, topic, v);
	}
	cJSON_AddNumberToObject(lag, "total", total);
	cJSON_AddItemToObject(lag, "topics", topics);
}

/* Sum (or max) of a gauge over every process; *found false when no process exports it. */
static double status_agg(const status_samples_t *s, const char *name, bool max, bool *found)
{
	double v = 0;
	*found = false;
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->v[i].name, name) == 0) {
			v = !*found ? s->v[i].value : max ? fmax(v, s->v[i].value) : v + s->v[i].value;
			*found = true;
		}
	return v;
}

static void status_limits(const cfg_t *cfg, const status_samples_t *cur, cJSON *root)
{
	static const struct {
		const char *key, *metric;
		bool max;       /* per process (max over processes) rather than summed */
	} gauges[] = {
		{"ingress_connections", "atende_ingress_connections", false},
		{"notifier_connections", "atende_notifier_connections", false},
		{"partition_backlog_bytes", "atende_ingress_partition_backlog_bytes", true},
		{"ai_in_flight_per_worker", "atende_worker_ai_in_flight", true},
		{"db_pending_queries_per_worker", "atende_worker_db_pending_queries", true},
		{"in_flight_messages", "atende_worker_in_flight_messages", false},
	};
	const long limits[] = {cfg->ingress.max_connections, cfg->notifier.max_connections,
			       cfg->ingress.max_partition_backlog_bytes, cfg->ai.max_in_flight, -1, -1};
	cJSON *out = cJSON_AddObjectToObject(root, "limits");
	for (size_t i = 0; i < sizeof(gauges) / sizeof(gauges[0]); i++) {
		bool found;
		double v = status_agg(cur, gauges[i].metric, gauges[i].max, &found);
		cJSON *o = cJSON_AddObjectToObject(out, gauges[i].key);
		if (found)
			cJSON_AddNumberToObject(o, "used", v);
		else
			cJSON_AddNullToObject(o, "used");
		if (limits[i] >= 0)
			cJSON_AddNumberToObject(o, "max", (double)limits[i]);
		else
			cJSON_AddNullToObject(o, "max");
	}
}

/* Pending dead letters, straight from PostgreSQL (null when it cannot be reached). */
static void status_dlq(const cfg_t *cfg, cJSON *root)
{
	char ci[1024];
	const char *conninfo = cfg->postgres.conninfo[0] ? cfg->postgres.conninfo : pgembed_conninfo(cfg, ci, sizeof(ci));
	const char *keys[] = {"dbname", "connect_timeout", NULL};
	const char *vals[] = {conninfo, "3", NULL};
	PGconn *pg = PQconnectdbParams(keys, vals, 1);
	/* a look at a struggling system must still answer: a slow database costs seconds, not minutes */
	if (PQstatus(pg) == CONNECTION_OK)
		PQclear(PQexec(pg, "SET statement_timeout = 5000"));
	PGresult *res = PQstatus(pg) == CONNECTION_OK ? PQexec(pg, "SELECT count(*) FROM dlq WHERE replayed_at IS NULL") : NULL;
	if (res && PQresultStatus(res) == PGRES_TUPLES_OK) {
		cJSON_AddNumberToObject(root, "dlq_pending", atof(PQgetvalue(res, 0, 0)));
	} else {
		const char *why = res ? PQresultErrorMessage(res) : PQerrorMessage(pg);
		fprintf(stderr, "status: dead letters unknown: %.*s\n", (int)strcspn(why, "\n"), why);
		cJSON_AddNullToObject(root, "dlq_pending");
	}
	PQclear(res);
	/* the business figures of the last hour, per company (schema/012), as the notifier's
	 * gauges have them: every column by its name, NULL when there was nothing to measure */
	res = PQstatus(pg) == CONNECTION_OK ? PQexec(pg, "SELECT * FROM atende_business(now() - interval '1 hour')") : NULL;
	if (res && PQresultStatus(res) == PGRES_TUPLES_OK) {
		cJSON *list = cJSON_AddArrayToObject(root, "business");
		for (int row = 0; row < PQntuples(res); row++) {
			cJSON *o = cJSON_CreateObject();
			for (int col = 0; col < PQnfields(res); col++)
				if (PQgetisnull(res, row, col))
					cJSON_AddNullToObject(o, PQfname(res, col));
				else
					cJSON_AddNumberToObject(o, PQfname(res, col), round(atof(PQgetvalue(res, row, col)) * 1000) / 1000);
			cJSON_AddItemToArray(list, o);
		}
	} else if (PQstatus(pg) == CONNECTION_OK) {
		const char *why = res ? PQresultErrorMessage(res) : PQerrorMessage(pg);
		fprintf(stderr, "status: business figures unknown: %.*s\n", (int)strcspn(why, "\n"), why);
	}
	PQclear(res);
	PQfinish(pg);
}

/* "12s", "4m", "2.5h", or "-" for a figure that is absent (null). */
static const char *status_fmt_secs(const cJSON *o, const char *name, char *buf, size_t len)
{
	const cJSON *v = cJSON_GetObjectItem(o, name);
	if (!cJSON_IsNumber(v))
		return "-";
	double s = v->valuedouble;
	if (s < 120)
		snprintf(buf, len, "%.0fs", s);
	else if (s < 7200)
		snprintf(buf, len, "%.0fm", s / 60);
	else
		snprintf(buf, len, "%.1fh", s / 3600);
	return buf;
}

/* "33%" of a ratio, or "-". */
static const char *status_fmt_pct(const cJSON *o, const char *name, char *buf, size_t len)
{
	const cJSON *v = cJSON_GetObjectItem(o, name);
	if (!cJSON_IsNumber(v))
		return "-";
	snprintf(buf, len, "%.1f%%", v->valuedouble * 100);
	return buf;
}

static void status_print_business(const cJSON *root)
{
	const cJSON *list = cJSON_GetObjectItem(root, "business"), *o;
	if (!cJSON_IsArray(list) || !cJSON_GetArraySize(list))
		return;
	printf("\nlast hour  %-8s %-6s %-16s %-12s %-9s %-14s %-7s %-9s %-5s %-5s %s\n", "COMPANY", "CONV", "1ST RESP p50/95",
	       "UNANSWERED", "RESOLVED", "RESOLVE p50/95", "BOT", "TRANSFER", "NPS", "CSAT", "DELIVERY FAILED");
	cJSON_ArrayForEach(o, list)
	{
		char a[16], b[16], c[16], d[16], e[16], f[16], g[16], h[16], fr[40], rs[40], un[40], nps[16], csat[16];
		const cJSON *n = cJSON_GetObjectItem(o, "nps_avg"), *cs = cJSON_GetObjectItem(o, "csat_avg");
		snprintf(fr, sizeof(fr), "%s/%s", status_fmt_secs(o, "first_response_p50_s", a, sizeof(a)),
			 status_fmt_secs(o, "first_response_p95_s", b, sizeof(b)));
		snprintf(rs, sizeof(rs), "%s/%s", status_fmt_secs(o, "resolution_p50_s", c, sizeof(c)),
			 status_fmt_secs(o, "resolution_p95_s", d, sizeof(d)));
		snprintf(un, sizeof(un), "%.0f (%s)", cJSON_GetNumberValue(cJSON_GetObjectItem(o, "unanswered")),
			 status_fmt_secs(o, "unanswered_oldest_s", e, sizeof(e)));
		snprintf(nps, sizeof(nps), cJSON_IsNumber(n) ? "%.1f" : "-", cJSON_IsNumber(n) ? n->valuedouble : 0.0);
		snprintf(csat, sizeof(csat), cJSON_IsNumber(cs) ? "%.1f" : "-", cJSON_IsNumber(cs) ? cs->valuedouble : 0.0);
		printf("           %-8.0f %-6.0f %-16s %-12s %-9.0f %-14s %-7s %-9s %-5s %-5s %s\n",
		       cJSON_GetNumberValue(cJSON_GetObjectItem(o, "company_id")),
		       cJSON_GetNumberValue(cJSON_GetObjectItem(o, "conversations")), fr, un,
		       cJSON_GetNumberValue(cJSON_GetObjectItem(o, "resolved")), rs,
		       status_fmt_pct(o, "automation_ratio", f, sizeof(f)), status_fmt_pct(o, "transfer_ratio", g, sizeof(g)), nps,
		       csat, status_fmt_pct(o, "delivery_failure_ratio", h, sizeof(h)));
	}
}

static void status_fmt_limit(char *buf, size_t len, const cJSON *lim, const char *what)
{
	const cJSON *used = cJSON_GetObjectItem(lim, "used"), *max = cJSON_GetObjectItem(lim, "max");
	if (!cJSON_IsNumber(used))
		buf[0] = 0;
	else if (cJSON_IsNumber(max))
		snprintf(buf, len, "%s %.0f/%.0f", what, used->valuedouble, max->valuedouble);
	else
		snprintf(buf, len, "%s %.0f", what, used->valuedouble);
}

static void status_print(const cJSON *root)
{
	const cJSON *p;
	printf("%-10s %-6s %-8s %-4s %-9s %-9s %s\n", "PROCESS", "INDEX", "PID", "UP", "RESTARTS", "UPTIME", "RATE");
	cJSON_ArrayForEach(p, cJSON_GetObjectItem(root, "processes"))
	{
		const char *role = cJSON_GetStringValue(cJSON_GetObjectItem(p, "role"));
		char uptime[32] = "-", rate[64] = "";
		double up_s = cJSON_GetNumberValue(cJSON_GetObjectItem(p, "uptime_s"));
		if (up_s > 0)
			snprintf(uptime, sizeof(uptime), "%dh%02dm%02ds", (int)up_s / 3600, (int)up_s / 60 % 60, (int)up_s % 60);
		for (size_t i = 0; role && i < sizeof(status_headline) / sizeof(status_headline[0]); i++) {
			const cJSON *r = cJSON_GetObjectItem(cJSON_GetObjectItem(p, "rates"), status_headline[i].family);
			if (strcmp(role, status_headline[i].role) == 0 && cJSON_IsNumber(r))
				snprintf(rate, sizeof(rate), "%.1f %s", r->valuedouble, status_headline[i].unit);
		}
		printf("%-10s %-6d %-8d %-4s %-9d %-9s %s\n", role ? role : "?",
		       (int)cJSON_GetNumberValue(cJSON_GetObjectItem(p, "index")),
		       (int)cJSON_GetNumberValue(cJSON_GetObjectItem(p, "pid")),
		       cJSON_IsTrue(cJSON_GetObjectItem(p, "up")) ? "yes" : "NO",
		       (int)cJSON_GetNumberValue(cJSON_GetObjectItem(p, "restarts")), uptime, rate);
	}
	const cJSON *lag = cJSON_GetObjectItem(root, "lag"), *dlq = cJSON_GetObjectItem(root, "dlq_pending");
	if (lag)
		printf("\nlag        %.0f messages behind on the inbound topics\n",
		       cJSON_GetNumberValue(cJSON_GetObjectItem(lag, "total")));
	if (cJSON_IsNumber(dlq))
		printf("dlq        %.0f pending dead letters%s\n", dlq->valuedouble, dlq->valuedouble > 0 ? " (atende dlq list)" : "");
	const cJSON *limits = cJSON_GetObjectItem(root, "limits");
	if (limits) {
		static const char *const what[][2] = {
			{"ingress_connections", "ingress connections"},
			{"notifier_connections", "notifier connections"},
			{"partition_backlog_bytes", "partition backlog bytes"},
			{"ai_in_flight_per_worker", "AI calls in flight per worker"},
			{"db_pending_queries_per_worker", "queries queued per worker"},
			{"in_flight_messages", "messages in flight"},
		};
		printf("limits    ");
		const char *sep = " ";
		for (size_t i = 0; i < sizeof(what) / sizeof(what[0]); i++) {
			char buf[128];
			status_fmt_limit(buf, sizeof(buf), cJSON_GetObjectItem(limits, what[i][0]), what[i][1]);
			if (buf[0]) {
				printf("%s%s", sep, buf);
				sep = ", ";
			}
		}
		printf("\n");
	}
	const cJSON *ref = cJSON_GetObjectItem(root, "refusals_per_s"), *r;
	if (ref) {
		printf("refusals  ");
		int shown = 0;
		cJSON_ArrayForEach(r, ref) if (r->valuedouble > 0) printf(" %s %.1f/s", r->string, r->valuedouble), shown++;
		printf("%s\n", shown ? "" : " none");
	}
	const char *brokers = cJSON_GetStringValue(cJSON_GetObjectItem(root, "brokers"));
	const char *library = cJSON_GetStringValue(cJSON_GetObjectItem(root, "broker_library"));
	printf("epoch      %.0f, brokers %s", cJSON_GetNumberValue(cJSON_GetObjectItem(root, "epoch")), brokers ? brokers : "?");
	if (library && *library)
		printf(" (embedded, %s librdkafka)", library);
	printf("\n");
	status_print_business(root);
}
