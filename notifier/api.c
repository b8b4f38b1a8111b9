/*
 * api: the conversation API (see api.h). Each handler checks its parameters, builds one
 * parameterised statement from fixed fragments (no request text ever enters the SQL) and
 * queues it on the least busy connection; PostgreSQL writes each row's JSON, the callback
 * joins the rows into the answer and adds the next page's cursor.
 */
#include "api.h"

#include "db.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "mstore.h"
#include "notifier.h"
#include "upload.h"
#include "xalloc.h"

#include <cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define API_DB_MAX 64
/* Text search reads the company's newest messages, newest first, this many at most: the
 * bound on a search's work, whatever it matches (names and numbers have a trigram index). */
#define API_SEARCH_MESSAGES "10000"

typedef enum { API_LIST, API_MESSAGES, API_READ } api_kind_t;

/* One request waiting for its query. */
typedef struct {
	http_request_t *req;
	api_kind_t kind;
	int limit;          /* rows asked for; the query reads one more to know whether a next page exists */
	long long conv_id;
} api_req_t;

static db_t *api_db[API_DB_MAX];
static mstore_t *api_store; /* media files (read here, written by upload.c) */
static int api_n_db, api_waiting;
static unsigned long long api_requests, api_db_errors, api_timeouts;

static bool api_param(http_request_t *req, const char *name, char *buf, size_t len, bool *present);
static bool api_method(http_request_t *req, const char *method);
static void api_list(http_request_t *req, const token_claims_t *claims);
static void api_messages(http_request_t *req, const token_claims_t *claims, long long conv_id);
static void api_read(http_request_t *req, const token_claims_t *claims, long long conv_id);
static void api_send(http_request_t *req, api_req_t *r, const char *sql, int n, const char *const *params);
static void api_on_result(PGresult *res, void *arg);
static void api_answer_rows(api_req_t *r, PGresult *res);
static void api_answer_read(api_req_t *r, PGresult *res);
static void api_media(http_request_t *req, const token_claims_t *claims, long long id);
static void api_media_result(PGresult *res, void *arg);
static void api_media_serve(http_request_t *req, PGresult *res, long long id);

void api_start(void)
{
	char conninfo[4096];
	const char *base = N.cfg.postgres.conninfo;
	/* named in pg_stat_activity; a startup option bounds every statement without any
	 * per-query SET. The conninfo may be a URI or key=value pairs. */
	int n;
	if (strstr(base, "://"))
		n = snprintf(conninfo, sizeof(conninfo), "%s%capplication_name=atende-notifier-api", base,
			     strchr(base, '?') ? '&' : '?');
	else
		n = snprintf(conninfo, sizeof(conninfo), "%s application_name=atende-notifier-api", base);
	if (N.cfg.notifier.statement_timeout_ms > 0 && n > 0 && (size_t)n < sizeof(conninfo))
		snprintf(conninfo + n, sizeof(conninfo) - (size_t)n,
			 strstr(base, "://") ? "&options=-c%%20statement_timeout%%3D%d" : " options='-c statement_timeout=%d'",
			 N.cfg.notifier.statement_timeout_ms);
	char root[4096], err[256];
	cfg_media_root(&N.cfg, root, sizeof(root));
	api_store = mstore_new(root, err, sizeof(err));
	if (!api_store)
		log_error("api: %s: GET /v1/media answers 503", err);
	api_n_db = N.cfg.notifier.db_connections < API_DB_MAX ? N.cfg.notifier.db_connections : API_DB_MAX;
	for (int i = 0; i < api_n_db; i++) {
		char name[32];
		snprintf(name, sizeof(name), "notifier-api-%d", i);
		api_db[i] = db_new(N.base, conninfo, name);
	}
}

void api_stop(void)
{
	for (int i = 0; i < api_n_db; i++) {
		db_free(api_db[i]); /* the waiting requests get NULL: answered 503 */
		api_db[i] = NULL;
	}
	api_n_db = 0;
	mstore_free(api_store);
	api_store = NULL;
}

mstore_t *api_media_store(void)
{
	return api_store;
}

bool api_db_up(void)
{
	for (int i = 0; i < api_n_db; i++)
		if (db_connected(api_db[i]))
			return true;
	return false;
}

int api_in_flight(void)
{
	return api_waiting;
}

void api_handle(http_request_t *req, const token_claims_t *claims)
{
	const char *path = http_request_path(req), *rest;
	long long id;
	api_requests++;
	if (strcmp(path, "/v1/conversations") == 0) {
		if (api_method(req, "GET"))
			api_list(req, claims);
		return;
	}
	if (strncmp(path, "/v1/conversations/", 18) == 0 && api_parse_id(path + 18, &id, &rest)) {
		if (strcmp(rest, "/messages") == 0) {
			if (api_method(req, "GET"))
				api_messages(req, claims, id);
			return;
		}
		if (strcmp(rest, "/read") == 0) {
			if (api_method(req, "POST"))
				api_read(req, claims, id);
			return;
		}
		if (strcmp(rest, "/media") == 0) {
			if (api_method(req, "POST"))
				upload_handle(req, claims, id);
			return;
		}
	}
	if (strncmp(path, "/v1/media/", 10) == 0 && api_parse_id(path + 10, &id, &rest) && !*rest) {
		if (api_method(req, "GET"))
			api_media(req, claims, id);
		return;
	}
	http_respond_error(req, 404, "no such path");
}

/* ---- pure helpers ---- */

static const char api_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

bool api_cursor_encode(char kind, long long a, long long b, char *out, size_t outlen)
{
	char raw[64];
	int n = snprintf(raw, sizeof(raw), "%c1.%lld.%lld", kind, a, b);
	size_t o = 0;
	if (n < 0 || (size_t)n >= sizeof(raw))
		return false;
	for (int i = 0; i < n; i += 3) {
		unsigned v = (unsigned char)raw[i] << 16;
		int left = n - i;
		if (left > 1)
			v |= (unsigned char)raw[i + 1] << 8;
		if (left > 2)
			v |= (unsigned char)raw[i + 2];
		int chars = left >= 3 ? 4 : left + 1; /* no padding */
		for (int k = 0; k < chars; k++) {
			if (o + 1 >= outlen)
				return false;
			out[o++] = api_b64[(v >> (18 - 6 * k)) & 63];
		}
	}
	if (o >= outlen)
		return false;
	out[o] = 0;
	return true;
}

bool api_cursor_decode(const char *s, char kind, long long *a, long long *b)
{
	char raw[64], want[64];
	size_t len = strlen(s), r = 0;
	if (len == 0 || len > 80 || len % 4 == 1)
		return false;
	unsigned v = 0;
	int bits = 0;
	for (size_t i = 0; i < len; i++) {
		const char *p = strchr(api_b64, s[i]);
		if (!p || !s[i])
			return false;
		v = (v << 6) | (unsigned)(p - api_b64);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (r + 1 >= sizeof(raw))
				return false;
			raw[r++] = (char)((v >> bits) & 0xff);
		}
	}
	raw[r] = 0;
	char k, dot1, dot2;
	int used = 0;
	if (sscanf(raw, "%c1%c%lld%c%lld%n", &k, &dot1, a, &dot2, b, &used) != 5 || used != (int)r || k != kind ||
	    dot1 != '.' || dot2 != '.' || *a < 0 || *b < 0)
		return false;
	/* only the canonical spelling: no "+1", leading zeros or other encodings of the same key */
	snprintf(want, sizeof(want), "%c1.%lld.%lld", kind, *a, *b);
	return strcmp(want, raw) == 0;
}

bool api_parse_limit(const char *s, int *out)
{
	if (!s) {
		*out = API_LIMIT_DEFAULT;
		return true;
	}
	int v = 0;
	if (!*s || strlen(s) > 3)
		return false;
	for (const char *p = s; *p; p++) {
		if (!isdigit((unsigned char)*p))
			return false;
		v = v * 10 + (*p - '0');
	}
	if (v < 1 || v > API_LIMIT_MAX)
		return false;
	*out = v;
	return true;
}

bool api_parse_id(const char *s, long long *id, const char **end)
{
	long long v = 0;
	int n = 0;
	while (isdigit((unsigned char)s[n])) {
		if (n == 18)
			return false; /* 19 digits and more: too long, and v * 10 could overflow */
		v = v * 10 + (s[n] - '0');
		n++;
	}
	if (n == 0 || (s[n] && s[n] != '/') || v <= 0)
		return false;
	*id = v;
	*end = s + n;
	return true;
}

bool api_search_pattern(const char *q, char *out, size_t outlen)
{
	size_t chars = 0, o = 0;
	for (const unsigned char *p = (const unsigned char *)q; *p; p++)
		chars += (*p & 0xc0) != 0x80; /* UTF-8 continuation bytes are not characters */
	if (chars < 3 || chars > 100 || outlen < 2 * strlen(q) + 3)
		return false;
	out[o++] = '%';
	for (const char *p = q; *p; p++) {
		if (*p == '\\' || *p == '%' || *p == '_')
			out[o++] = '\\';
		out[o++] = *p;
	}
	out[o++] = '%';
	out[o] = 0;
	return true;
}

/* ---- handlers ---- */

/* The first parameter called name; *present tells absent apart from too long or undecodable
 * (both false). */
static bool api_param(http_request_t *req, const char *name, char *buf, size_t len, bool *present)
{
	const char *q = http_request_query(req);
	size_t nl = strlen(name);
	*present = false;
	for (const char *p = q; *p;) {
		if (strncmp(p, name, nl) == 0 && (p[nl] == '=' || p[nl] == '&' || p[nl] == 0)) {
			*present = true;
			break;
		}
		p = strchr(p, '&');
		if (!p)
			break;
		p++;
	}
	if (!*present)
		return false;
	return http_request_query_param(req, name, buf, len);
}

static bool api_method(http_request_t *req, const char *method)
{
	if (strcmp(http_request_method(req), method) == 0)
		return true;
	char msg[64];
	snprintf(msg, sizeof(msg), "use %s", method);
	http_response_add_header(req, "Allow", method);
	http_respond_error(req, 405, msg);
	return false;
}

/* The list's statement: the filters asked for, the keyset after the cursor, one row more
 * than the page. Each variant is an index scan of schema/007's: company or company+status
 * (last_message_at, id), agent (last_message_at, id); a domain filter rides along. */
static void api_list(http_request_t *req, const token_claims_t *claims)
{
	char status[16], agent[24], domain[64], q[512], before[API_CURSOR_MAX], limit_s[8], pattern[1100];
	char company_s[24], me_s[24], limit1_s[16], agent_s[24], us_s[24], id_s[24];
	bool has_status, has_agent, has_domain, has_q, has_before, has_limit;
	long long us = 0, cid = 0;
	int limit;
	const char *params[12];
	int n = 0;

	if ((!api_param(req, "limit", limit_s, sizeof(limit_s), &has_limit) && has_limit) ||
	    !api_parse_limit(has_limit ? limit_s : NULL, &limit)) {
		http_respond_error(req, 400, "limit must be an integer from 1 to 100 (default 30)");
		return;
	}
	if ((!api_param(req, "before", before, sizeof(before), &has_before) && has_before) ||
	    (has_before && !api_cursor_decode(before, 'c', &us, &cid))) {
		http_respond_error(req, 400, "before is not a cursor of this list (pass the \"next\" of the previous page)");
		return;
	}
	if ((!api_param(req, "status", status, sizeof(status), &has_status) && has_status) ||
	    (has_status && strcmp(status, "open") != 0 && strcmp(status, "pending") != 0 && strcmp(status, "resolved") != 0)) {
		http_respond_error(req, 400, "status must be open, pending or resolved");
		return;
	}
	if ((!api_param(req, "domain", domain, sizeof(domain), &has_domain) && has_domain) || (has_domain && !*domain)) {
		http_respond_error(req, 400, "domain must be a domain's name (at most 63 bytes)");
		return;
	}
	if ((!api_param(req, "q", q, sizeof(q), &has_q) && has_q) ||
	    (has_q && !api_search_pattern(q, pattern, sizeof(pattern)))) {
		http_respond_error(req, 400, "q must have 3 to 100 characters");
		return;
	}
	long long agent_id = 0;
	if (!api_param(req, "agent", agent, sizeof(agent), &has_agent) && has_agent) {
		http_respond_error(req, 400, "agent must be me or an agent id");
		return;
	}
	if (has_agent) {
		const char *end;
		if (strcmp(agent, "me") == 0) {
			agent_id = claims->agent;
		} else if (!api_parse_id(agent, &agent_id, &end) || *end) {
			http_respond_error(req, 400, "agent must be me or an agent id");
			return;
		}
		/* as on the WebSocket: an agent follows its own channel, a supervisor anyone's of its company */
		if (agent_id != claims->agent && strcmp(claims->role, "supervisor") != 0) {
			http_respond_error(req, 403, "an agent lists another agent's conversations only as a supervisor (use agent=me)");
			return;
		}
	}

	snprintf(company_s, sizeof(company_s), "%ld", claims->company);
	snprintf(me_s, sizeof(me_s), "%ld", claims->agent);
	snprintf(limit1_s, sizeof(limit1_s), "%d", limit + 1);
	params[n++] = company_s;
	params[n++] = me_s;
	params[n++] = limit1_s;

	char sql[4096], cond[1024] = "";
	size_t cl = 0;
	if (has_status) {
		params[n++] = status;
		cl += (size_t)snprintf(cond + cl, sizeof(cond) - cl, " AND c.status = $%d", n);
	}
	if (has_agent) {
		snprintf(agent_s, sizeof(agent_s), "%lld", agent_id);
		params[n++] = agent_s;
		cl += (size_t)snprintf(cond + cl, sizeof(cond) - cl, " AND c.agent_id = $%d", n);
	}
	if (has_domain) {
		params[n++] = domain;
		cl += (size_t)snprintf(cond + cl, sizeof(cond) - cl, " AND c.domain = $%d", n);
	}
	if (has_before) {
		snprintf(us_s, sizeof(us_s), "%lld", us);
		snprintf(id_s, sizeof(id_s), "%lld", cid);
		params[n++] = us_s;
		params[n++] = id_s;
		cl += (size_t)snprintf(cond + cl, sizeof(cond) - cl,
				       " AND (c.last_message_at, c.id) < (timestamptz 'epoch' + $%d::bigint * interval '1 microsecond', "
				       "$%d::bigint)",
				       n - 1, n);
	}
	const char *with = "";
	char with_buf[1024];
	if (has_q) {
		/* names and numbers through their trigram index; text among the company's newest
		 * API_SEARCH_MESSAGES messages only, so a rare word costs a bounded scan */
		params[n++] = pattern;
		snprintf(with_buf, sizeof(with_buf),
			 "WITH hits AS (SELECT c.id FROM conversations c WHERE c.company_id = $1 "
			 "AND (c.customer || ' ' || coalesce(c.customer_name, '')) ILIKE $%d "
			 "UNION SELECT r.conversation_id FROM (SELECT m.conversation_id, m.text FROM messages m "
			 "WHERE m.company_id = $1 ORDER BY m.received_at DESC LIMIT " API_SEARCH_MESSAGES ") r "
			 "WHERE r.text ILIKE $%d) ",
			 n, n);
		with = with_buf;
		cl += (size_t)snprintf(cond + cl, sizeof(cond) - cl, " AND c.id IN (SELECT id FROM hits)");
	}
	snprintf(sql, sizeof(sql),
		 "%sSELECT (extract(epoch FROM c.last_message_at) * 1000000)::bigint, c.id, json_build_object("
		 "'id', c.id, 'customer', c.customer, 'name', c.customer_name, 'domain', c.domain, 'status', c.status, "
		 "'agent_id', c.agent_id, 'last_message', c.last_message, "
		 "'unread', greatest(c.customer_messages - coalesce(r.customer_messages, 0), 0), "
		 "'waiting_since', atende_iso(c.waiting_since), 'updated_at', atende_iso(c.last_message_at))::text "
		 "FROM conversations c LEFT JOIN conversation_reads r ON r.agent_id = $2 AND r.conversation_id = c.id "
		 "WHERE c.company_id = $1%s ORDER BY c.last_message_at DESC, c.id DESC LIMIT $3",
		 with, cond);
	api_req_t *r = xcalloc(1, sizeof(*r));
	r->kind = API_LIST;
	r->limit = limit;
	api_send(req, r, sql, n, params);
}

/* One page of a conversation's history, newest first in the query (one more row than the
 * page), oldest first in the answer. The conversation row answers tenancy in the same
 * statement: no row at all = not this company's (404, the same as one that does not exist).
 * The first page (no before) also marks the conversation read up to its newest message. */
static void api_messages(http_request_t *req, const token_claims_t *claims, long long conv_id)
{
	char before[API_CURSOR_MAX], limit_s[8], conv_s[24], company_s[24], me_s[24], limit1_s[16], before_s[24];
	bool has_before, has_limit;
	long long before_id = 0, zero;
	int limit, n = 0;
	const char *params[6];
	if ((!api_param(req, "limit", limit_s, sizeof(limit_s), &has_limit) && has_limit) ||
	    !api_parse_limit(has_limit ? limit_s : NULL, &limit)) {
		http_respond_error(req, 400, "limit must be an integer from 1 to 100 (default 30)");
		return;
	}
	if ((!api_param(req, "before", before, sizeof(before), &has_before) && has_before) ||
	    (has_before && !api_cursor_decode(before, 'm', &before_id, &zero))) {
		http_respond_error(req, 400, "before is not a cursor of this history (pass the \"next\" of the previous page)");
		return;
	}
	snprintf(conv_s, sizeof(conv_s), "%lld", conv_id);
	snprintf(company_s, sizeof(company_s), "%ld", claims->company);
	snprintf(me_s, sizeof(me_s), "%ld", claims->agent);
	snprintf(limit1_s, sizeof(limit1_s), "%d", limit + 1);
	params[n++] = conv_s;
	params[n++] = company_s;
	params[n++] = limit1_s;
	if (has_before) {
		snprintf(before_s, sizeof(before_s), "%lld", before_id);
		params[n++] = before_s; /* $4: the page ends before it */
	} else {
		params[n++] = me_s; /* $4: whose read marker the first page moves */
	}
	char sql[4096];
	snprintf(sql, sizeof(sql),
		 "WITH conv AS (SELECT c.id, c.channel, c.customer, c.agent_id, c.last_message_id, c.customer_messages "
		 "FROM conversations c WHERE c.id = $1 AND c.company_id = $2), "
		 "page AS (SELECT m.id, m.provider_id, m.from_me, m.kind, m.text, m.transcript, m.sent_at, m.received_at, m.hint_id, "
		 "m.status, m.status_error "
		 "FROM messages m WHERE m.conversation_id = $1 AND m.company_id = $2%s ORDER BY m.id DESC LIMIT $3)%s "
		 "SELECT p.id, CASE WHEN p.id IS NOT NULL THEN json_build_object("
		 "'id', p.id, 'provider_id', p.provider_id, 'from_me', p.from_me, "
		 "'by', CASE WHEN NOT p.from_me THEN 'customer' WHEN o.by IS NOT NULL THEN o.by "
		 "ELSE 'agent:' || coalesce(o.agent_id, conv.agent_id, 0) END, "
		 "'kind', p.kind, 'text', p.text, 'transcript', p.transcript, 'media', CASE WHEN md.id IS NULL THEN NULL ELSE json_build_object('id', md.id, 'kind', md.kind, 'mime', md.mime, 'size', md.size, 'name', md.name, 'status', md.status, 'error', md.error, 'duration_ms', md.duration_ms) END, "
		 /* the gateway's latest delivery status (schema/009), else what sending it said */
		 "'status', CASE WHEN NOT p.from_me THEN NULL WHEN p.status IS NOT NULL THEN p.status "
		 "WHEN o.status = 'not_sent' THEN 'pending' ELSE 'sent' END, "
		 "'status_error', CASE WHEN p.status = 'failed' THEN p.status_error END, "
		 "'sent_at', atende_iso(coalesce(p.sent_at, p.received_at)), "
		 "'hint', CASE WHEN h.id IS NULL THEN NULL ELSE json_build_object("
		 "'message_ids', coalesce(to_json(h.provider_ids), json_build_array(p.provider_id)), "
		 "'message_id', p.provider_id, 'hint_id', h.id, 'conversation_id', h.conversation_id, "
		 "'conversation_key', conv.channel || ':' || conv.customer, 'agent_id', h.agent_id, "
		 "'company_id', h.company_id, 'domain', h.domain, 'intent', h.intent, 'critical', h.critical, "
		 "'text', h.text, 'source', h.source, 'from_cache', h.source = 'cache', 'routed', h.routed, 'model', h.model, "
		 "'created_at', atende_iso(h.created_at), 'received_at', atende_iso(p.received_at)) END)::text END "
		 "FROM conv LEFT JOIN page p ON true "
		 /* a hint is stored after the messages it covers: its week is theirs or a later one */
		 "LEFT JOIN hints h ON h.id = p.hint_id AND h.message_id = p.id "
		 "AND h.created_at >= p.received_at - interval '1 day' "
		 "LEFT JOIN outbound_requests o ON o.message_id = p.id "
		 "LEFT JOIN media md ON md.message_id = p.id AND md.received_at = p.received_at "
		 "ORDER BY p.id",
		 has_before ? " AND m.id < $4" : "",
		 has_before ? ""
			    : ", mark AS (INSERT INTO conversation_reads AS r (agent_id, conversation_id, last_read_message_id, "
			      "customer_messages, at) SELECT $4, conv.id, conv.last_message_id, conv.customer_messages, now() "
			      /* a read marker lost in a crash is harmless: no wait for the WAL flush */
			      "FROM conv, set_config('synchronous_commit', 'off', true) WHERE conv.last_message_id IS NOT NULL "
			      "ON CONFLICT (agent_id, conversation_id) DO UPDATE SET last_read_message_id = "
			      "EXCLUDED.last_read_message_id, customer_messages = EXCLUDED.customer_messages, at = EXCLUDED.at "
			      "WHERE r.last_read_message_id < EXCLUDED.last_read_message_id)");
	api_req_t *r = xcalloc(1, sizeof(*r));
	r->kind = API_MESSAGES;
	r->limit = limit;
	r->conv_id = conv_id;
	api_send(req, r, sql, n, params);
}

/* POST /v1/conversations/ID/read [{"message_id":N}]: marks the conversation read for the
 * bearer up to N (default: its newest message). A marker never moves back. */
static void api_read(http_request_t *req, const token_claims_t *claims, long long conv_id)
{
	char conv_s[24], company_s[24], me_s[24], mid_s[24];
	const char *params[4];
	size_t len;
	const char *body = http_request_body(req, &len);
	const char *mid = NULL;
	while (len && isspace((unsigned char)*body))
		body++, len--;
	if (len) {
		cJSON *j = cJSON_ParseWithLength(body, len);
		const cJSON *m = j ? cJSON_GetObjectItemCaseSensitive(j, "message_id") : NULL;
		bool ok = j && cJSON_IsObject(j) && (!m || (cJSON_IsNumber(m) && m->valuedouble >= 1 && m->valuedouble < 1e18));
		if (ok && m) {
			snprintf(mid_s, sizeof(mid_s), "%lld", (long long)m->valuedouble);
			mid = mid_s;
		}
		cJSON_Delete(j);
		if (!ok) {
			http_respond_error(req, 400, "body must be empty or {\"message_id\":N} with a message id");
			return;
		}
	}
	snprintf(conv_s, sizeof(conv_s), "%lld", conv_id);
	snprintf(company_s, sizeof(company_s), "%ld", claims->company);
	snprintf(me_s, sizeof(me_s), "%ld", claims->agent);
	params[0] = conv_s;
	params[1] = company_s;
	params[2] = me_s;
	params[3] = mid;
	static const char sql[] =
		"WITH conv AS (SELECT c.id, c.last_message_id, c.customer_messages FROM conversations c "
		"WHERE c.id = $1 AND c.company_id = $2), "
		"upto AS (SELECT conv.id, least(coalesce($4::bigint, conv.last_message_id), conv.last_message_id) AS mid "
		"FROM conv WHERE conv.last_message_id IS NOT NULL), "
		/* the customer messages up to mid: the newest count less those after it */
		"seen AS (SELECT upto.id, upto.mid, conv.customer_messages - (SELECT count(*) FROM messages m "
		"WHERE m.conversation_id = $1 AND m.company_id = $2 AND m.id > upto.mid AND NOT m.from_me) AS n "
		"FROM upto, conv), "
		"ins AS (INSERT INTO conversation_reads AS r (agent_id, conversation_id, last_read_message_id, customer_messages, at) "
		"SELECT $3, seen.id, seen.mid, seen.n, now() FROM seen, set_config('synchronous_commit', 'off', true) "
		"ON CONFLICT (agent_id, conversation_id) DO UPDATE SET last_read_message_id = EXCLUDED.last_read_message_id, "
		"customer_messages = EXCLUDED.customer_messages, at = EXCLUDED.at "
		"WHERE r.last_read_message_id < EXCLUDED.last_read_message_id "
		"RETURNING r.last_read_message_id, r.customer_messages), "
		"mark AS (SELECT i.last_read_message_id, i.customer_messages FROM ins i UNION ALL "
		"SELECT x.last_read_message_id, x.customer_messages FROM conversation_reads x "
		"WHERE x.agent_id = $3 AND x.conversation_id = $1 AND NOT EXISTS (SELECT 1 FROM ins)) "
		"SELECT json_build_object('conversation_id', conv.id, "
		"'last_read_message_id', (SELECT last_read_message_id FROM mark), "
		"'unread', greatest(conv.customer_messages - coalesce((SELECT customer_messages FROM mark), 0), 0))::text "
		"FROM conv";
	api_req_t *r = xcalloc(1, sizeof(*r));
	r->kind = API_READ;
	r->conv_id = conv_id;
	api_send(req, r, sql, 4, params);
}

/* Queues on the connection with the least waiting; none up answers 503 at once rather than
 * holding the console until the database is back. */
db_t *api_db_pick(void)
{
	db_t *best = NULL;
	for (int i = 0; i < api_n_db; i++)
		if (db_connected(api_db[i]) && (!best || db_pending(api_db[i]) < db_pending(best)))
			best = api_db[i];
	return best;
}

static void api_send(http_request_t *req, api_req_t *r, const char *sql, int n, const char *const *params)
{
	db_t *best = api_db_pick();
	if (!best || !db_query(best, sql, n, params, api_on_result, r)) {
		free(r);
		api_db_errors++;
		http_response_add_header(req, "Retry-After", "2");
		http_respond_error(req, 503, best ? "database busy" : "database unreachable");
		return;
	}
	r->req = req;
	api_waiting++;
}

static void api_on_result(PGresult *res, void *arg)
{
	api_req_t *r = arg;
	api_waiting--;
	if (!res) {
		api_db_errors++;
		http_response_add_header(r->req, "Retry-After", "2");
		http_respond_error(r->req, 503, "database connection lost");
	} else if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		if (state && strcmp(state, "57014") == 0) {
			api_timeouts++;
			log_warn("api: statement timeout (notifier.statement_timeout_ms) on %s", http_request_path(r->req));
			http_respond_error(r->req, 503, "the query took too long");
		} else {
			api_db_errors++;
			log_error("api %s: %s", http_request_path(r->req), PQresultErrorMessage(res));
			http_respond_error(r->req, 500, "database error");
		}
	} else if (PQntuples(res) == 0 && r->kind != API_LIST) {
		/* the same answer for a conversation that does not exist and another company's */
		char msg[64];
		snprintf(msg, sizeof(msg), "no conversation %lld", r->conv_id);
		http_respond_error(r->req, 404, msg);
	} else if (r->kind == API_READ) {
		api_answer_read(r, res);
	} else {
		api_answer_rows(r, res);
	}
	free(r);
}

/* Rows carry (key a, key b, json) for the list, (id, json) for the history; the extra row
 * beyond the page, if any, says there is a next page and is left out. */
static void api_answer_rows(api_req_t *r, PGresult *res)
{
	int rows = PQntuples(res), first = 0, last;
	bool list = r->kind == API_LIST;
	int jcol = list ? 2 : 1;
	char cursor[API_CURSOR_MAX];
	bool more = rows > r->limit;
	if (!list && PQgetisnull(res, 0, 0))
		rows = 0; /* the conversation exists, with no messages (in this page) */
	if (list) {
		last = more ? r->limit : rows; /* newest first: the extra row is the last */
	} else {
		first = more ? 1 : 0; /* oldest first: the extra row is the first */
		last = rows;
	}
	size_t cap = 64;
	for (int i = first; i < last; i++)
		cap += (size_t)PQgetlength(res, i, jcol) + 1;
	char *body = xmalloc(cap + API_CURSOR_MAX), *o = body;
	o += sprintf(o, list ? "{\"conversations\":[" : "{\"messages\":[");
	for (int i = first; i < last; i++) {
		if (i > first)
			*o++ = ',';
		size_t l = (size_t)PQgetlength(res, i, jcol);
		memcpy(o, PQgetvalue(res, i, jcol), l);
		o += l;
	}
	bool have = false;
	if (more && list)
		have = api_cursor_encode('c', atoll(PQgetvalue(res, last - 1, 0)), atoll(PQgetvalue(res, last - 1, 1)), cursor,
					 sizeof(cursor));
	else if (more)
		have = api_cursor_encode('m', atoll(PQgetvalue(res, first, 0)), 0, cursor, sizeof(cursor));
	o += sprintf(o, have ? "],\"next\":\"%s\"}" : "],\"next\":null}", cursor);
	http_response_add_header(r->req, "Cache-Control", "no-store");
	http_respond(r->req, 200, "application/json", body, (size_t)(o - body));
	free(body);
}

static void api_answer_read(api_req_t *r, PGresult *res)
{
	http_response_add_header(r->req, "Cache-Control", "no-store");
	http_respond_json(r->req, 200, PQgetvalue(res, 0, 0));
}

void api_metrics_refresh(void)
{
	metrics_set(metrics_series(metrics_family("atende_notifier_api_requests_total", METRICS_COUNTER,
						  "Conversation API (/v1/) requests.", NULL, 0), ""),
		    (double)api_requests);
	metrics_set(metrics_series(metrics_family("atende_notifier_api_db_errors_total", METRICS_COUNTER,
						  "Conversation API requests answered 5xx for the database (down, busy, error).",
						  NULL, 0), ""),
		    (double)api_db_errors);
	metrics_set(metrics_series(metrics_family("atende_notifier_api_timeouts_total", METRICS_COUNTER,
						  "Conversation API queries stopped by statement_timeout.", NULL, 0), ""),
		    (double)api_timeouts);
	metrics_set(metrics_series(metrics_family("atende_notifier_api_waiting", METRICS_GAUGE,
						  "Conversation API requests waiting for the database.", NULL, 0), ""),
		    (double)api_waiting);
}

/* GET /v1/media/ID: the file, if the bearer's company holds it (another company's media
 * answers exactly like a missing one). The type is the stored row's, which the worker
 * decided from the bytes; served inline only as audio, image or video, never sniffed. */
static void api_media(http_request_t *req, const token_claims_t *claims, long long id)
{
	char id_s[24], company_s[24];
	snprintf(id_s, sizeof(id_s), "%lld", id);
	snprintf(company_s, sizeof(company_s), "%ld", claims->company);
	const char *params[2] = {id_s, company_s};
	db_t *best = api_db_pick();
	api_req_t *r = xcalloc(1, sizeof(*r));
	r->conv_id = id;
	if (!api_store || !best ||
	    !db_query(best,
		      /* an upload not yet sent (the console's preview) shares the media ids */
		      "SELECT status, mime, size, name, sha256, kind FROM media WHERE id = $1 AND company_id = $2 "
		      "UNION ALL SELECT 'stored', mime, size, name, sha256, kind FROM media_uploads "
		      "WHERE id = $1 AND company_id = $2 LIMIT 1",
		      2, params, api_media_result, r)) {
		free(r);
		api_db_errors++;
		http_response_add_header(req, "Retry-After", "2");
		http_respond_error(req, 503, !api_store ? "media store unavailable" : best ? "database busy" : "database unreachable");
		return;
	}
	r->req = req;
	api_waiting++;
}

static void api_media_result(PGresult *res, void *arg)
{
	api_req_t *r = arg;
	char msg[160];
	api_waiting--;
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		api_db_errors++;
		if (res)
			log_error("api %s: %s", http_request_path(r->req), PQresultErrorMessage(res));
		http_response_add_header(r->req, "Retry-After", "2");
		http_respond_error(r->req, 503, "database error");
	} else if (PQntuples(res) == 0) {
		snprintf(msg, sizeof(msg), "no media %lld", r->conv_id);
		http_respond_error(r->req, 404, msg);
	} else if (strcmp(PQgetvalue(res, 0, 0), "stored") != 0) {
		snprintf(msg, sizeof(msg), "media %lld has no file (status %s)", r->conv_id, PQgetvalue(res, 0, 0));
		http_respond_error(r->req, 404, msg);
	} else {
		api_media_serve(r->req, res, r->conv_id);
	}
	free(r);
}

static void api_media_serve(http_request_t *req, PGresult *res, long long id)
{
	int64_t size = 0;
	char buf[600], fname[200];
	const char *mime = PQgetvalue(res, 0, 1), *name = PQgetvalue(res, 0, 3);
	int fd = mstore_open(api_store, PQgetvalue(res, 0, 4), &size);
	if (fd < 0) {
		log_error("api: media %lld: its file %s is missing from the media store", id, PQgetvalue(res, 0, 4));
		snprintf(buf, sizeof(buf), "media %lld: file missing", id);
		http_respond_error(req, 404, buf);
		return;
	}
	/* a file name safe in a header whatever the customer called it */
	size_t o = 0;
	for (const char *p = name; *p && o + 1 < sizeof(fname); p++)
		fname[o++] = (isalnum((unsigned char)*p) || strchr("._- ", *p)) ? *p : '_';
	fname[o] = '\0';
	if (!o)
		snprintf(fname, sizeof(fname), "media-%lld", id);
	const char *kind = mstore_kind_of(mime);
	bool inline_ok = strcmp(kind, "document") != 0;
	snprintf(buf, sizeof(buf), "%s; filename=\"%s\"", inline_ok ? "inline" : "attachment", fname);
	http_response_add_header(req, "Content-Disposition", buf);
	http_response_add_header(req, "X-Content-Type-Options", "nosniff");
	http_response_add_header(req, "Content-Security-Policy", "default-src 'none'; sandbox");
	http_response_add_header(req, "Cache-Control", "private, max-age=86400");
	http_response_add_header(req, "Accept-Ranges", "bytes");
	long long from = 0, to = size - 1;
	int status = 200;
	const char *range = http_request_header(req, "Range");
	int rc = range ? api_parse_range(range, (long long)size, &from, &to) : -1;
	if (rc == 0) {
		snprintf(buf, sizeof(buf), "bytes */%lld", (long long)size);
		http_response_add_header(req, "Content-Range", buf);
		close(fd);
		http_respond_error(req, 416, "range not satisfiable");
		return;
	} else if (rc == 1) {
		status = 206;
		snprintf(buf, sizeof(buf), "bytes %lld-%lld/%lld", from, to, (long long)size);
		http_response_add_header(req, "Content-Range", buf);
	}
	http_respond_file(req, status, mime, fd, from, size ? (size_t)(to - from + 1) : 0);
}

int api_parse_range(const char *h, long long size, long long *from, long long *to)
{
	char *end;
	*from = 0, *to = size - 1;
	if (strncmp(h, "bytes=", 6) != 0 || strchr(h, ','))
		return -1; /* not one byte range: the whole file */
	h += 6;
	if (*h == '-') {
		long long n = strtoll(h + 1, &end, 10);
		if (end == h + 1 || *end || n < 0)
			return -1;
		if (n == 0 || size == 0)
			return 0;
		*from = n >= size ? 0 : size - n;
		return 1;
	}
	long long a = strtoll(h, &end, 10), b = size - 1;
	if (end == h || *end != '-' || a < 0)
		return -1;
	if (end[1]) {
		char *e2;
		b = strtoll(end + 1, &e2, 10);
		if (e2 == end + 1 || *e2 || b < a)
			return -1;
	}
	if (a >= size)
		return 0;
	*from = a;
	*to = b >= size ? size - 1 : b;
	return 1;
}
