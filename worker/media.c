/*
 * media: one media message's row, download and file (see media.h). A job walks
 * begin (row) -> [fetch, retried] -> store (file, then row) -> done; every step is a
 * callback on the loop, and every end goes through md_finish, which calls back once.
 */
#include "media.h"
#include "hc.h"
#include "json.h"
#include "log.h"
#include "mstore.h"
#include "xalloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MD_CLOUD_URL "https://graph.facebook.com"
#define MD_CLOUD_VERSION "v21.0"

typedef enum { MD_BEGIN, MD_FETCH, MD_FETCH_URL, MD_MARK, MD_DONE } md_step_t;

typedef struct md_job {
	media_t *m;
	const cJSON *ev;
	int64_t conversation;
	cJSON *b64;               /* inline bytes (taken), NULL when none */
	media_done_fn cb;
	void *arg;
	md_step_t step;
	int64_t id, message_id;
	char kind[16];
	char *name;               /* the customer's file name (display only) */
	int64_t announced;        /* size the gateway announced; -1 unknown */
	int attempts;             /* downloads tried */
	hc_call_t *call;
	struct event *timer;
	/* the outcome, once decided */
	const char *status;
	char *error, *mime, sha[MSTORE_SHA_HEX];
	int64_t size;
	int width, height, duration_ms;
	unsigned char *bytes;
	size_t len;
	bool fresh;
	struct md_job *prev, *next;
} md_job_t;

struct media {
	struct event_base *base;
	db_t *db;
	const cfg_t *cfg;
	hc_t *hc;
	mstore_t *store;
	md_job_t *jobs;
	int n_jobs;
};

static void md_begun(PGresult *res, void *arg);
static void md_fetch(md_job_t *j);
static void md_answer(const hc_result_t *res, void *arg);
static void md_retry_or_fail(md_job_t *j, const char *why);
static void md_retry_cb(evutil_socket_t fd, short what, void *arg);
static void md_got_bytes(md_job_t *j, unsigned char *bytes, size_t len);
static void md_mark(md_job_t *j, const char *status, const char *error);
static void md_marked(PGresult *res, void *arg);
static void md_finish(md_job_t *j);
static void md_set_error(md_job_t *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

media_t *media_new(struct event_base *base, db_t *db, const cfg_t *cfg, char *err, size_t errlen)
{
	char root[4096];
	media_t *m = xcalloc(1, sizeof(*m));
	m->base = base;
	m->db = db;
	m->cfg = cfg;
	cfg_media_root(cfg, root, sizeof(root));
	m->store = mstore_new(root, err, errlen);
	m->hc = m->store ? hc_new(base, "atende-worker-media", err, errlen) : NULL;
	if (!m->hc) {
		mstore_free(m->store);
		free(m);
		return NULL;
	}
	return m;
}

void media_handle(media_t *m, const cJSON *ev, int64_t conversation, cJSON *inline_b64, media_done_fn cb, void *arg)
{
	char company[24], conv[24], size[24];
	md_job_t *j = xcalloc(1, sizeof(*j));
	const cJSON *media = cJSON_GetObjectItem(ev, "media");
	j->m = m;
	j->ev = ev;
	j->conversation = conversation;
	j->b64 = inline_b64;
	j->cb = cb;
	j->arg = arg;
	j->size = -1;
	long long announced; /* a size no file has (negative, fractional, past 2^53) is no announcement */
	j->announced = json_int_in(cJSON_GetObjectItem(media, "size"), 0, 1LL << 53, &announced) ? announced : -1;
	snprintf(j->kind, sizeof(j->kind), "%s", json_str(ev, "kind") ? json_str(ev, "kind") : "document");
	if (json_str(media, "name"))
		j->name = xstrdup(json_str(media, "name"));
	j->next = m->jobs;
	if (m->jobs)
		m->jobs->prev = j;
	m->jobs = j;
	m->n_jobs++;
	snprintf(company, sizeof(company), "%.0f", json_num(ev, "company", 0));
	snprintf(conv, sizeof(conv), "%lld", (long long)conversation);
	if (j->announced >= 0)
		snprintf(size, sizeof(size), "%lld", (long long)j->announced);
	const char *params[8] = {json_str(ev, "channel"), json_str(ev, "provider_id"), company, conv, j->kind,
				 json_str(media, "mimetype"), j->announced >= 0 ? size : NULL, j->name};
	j->step = MD_BEGIN;
	if (!db_query(m->db, "SELECT * FROM atende_media_begin($1, $2, $3, $4, $5, $6, $7, $8)", 8, params, md_begun, j))
		md_begun(NULL, j);
}

int media_pending(const media_t *m)
{
	return m ? m->n_jobs : 0;
}

void media_free(media_t *m)
{
	if (!m)
		return;
	hc_free(m->hc); /* no callbacks: the jobs' messages stay uncommitted */
	while (m->jobs) {
		md_job_t *j = m->jobs;
		m->jobs = j->next;
		if (j->timer)
			event_free(j->timer);
		cJSON_Delete(j->b64);
		free(j->name), free(j->error), free(j->mime), free(j->bytes), free(j);
	}
	mstore_free(m->store);
	free(m);
}

int64_t media_limit(const cfg_t *cfg, const char *kind)
{
	if (strcmp(kind, "audio") == 0)
		return cfg->media.max_audio_bytes;
	if (strcmp(kind, "image") == 0 || strcmp(kind, "sticker") == 0)
		return cfg->media.max_image_bytes;
	if (strcmp(kind, "video") == 0)
		return cfg->media.max_video_bytes;
	return cfg->media.max_document_bytes;
}

/* The row: decided before (a redelivery) -> done; pending -> its bytes. */
static void md_begun(PGresult *res, void *arg)
{
	md_job_t *j = arg;
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		/* the message is stored; its media row could not be made: say so, keep going */
		md_set_error(j, "media row: %s", res ? PQresultErrorMessage(res) : "database unreachable");
		log_error("media of %s: %s", json_str(j->ev, "provider_id"), j->error);
		j->status = "failed";
		md_finish(j);
		return;
	}
	j->id = atoll(PQgetvalue(res, 0, 0));
	j->message_id = atoll(PQgetvalue(res, 0, 7));
	const char *status = PQgetvalue(res, 0, 1);
	if (strcmp(status, "pending") != 0) {
		j->status = strcmp(status, "stored") == 0 ? "stored" : strcmp(status, "too_large") == 0 ? "too_large" : "failed";
		if (!PQgetisnull(res, 0, 2))
			j->mime = xstrdup(PQgetvalue(res, 0, 2));
		j->size = PQgetisnull(res, 0, 3) ? -1 : atoll(PQgetvalue(res, 0, 3));
		if (!PQgetisnull(res, 0, 6))
			j->error = xstrdup(PQgetvalue(res, 0, 6));
		j->duration_ms = PQgetisnull(res, 0, 8) ? 0 : atoi(PQgetvalue(res, 0, 8));
		md_finish(j);
		return;
	}
	j->fresh = true;
	int64_t limit = media_limit(j->m->cfg, j->kind);
	if (j->b64) {
		size_t n = 0;
		unsigned char *bytes = mstore_b64_decode(j->b64->valuestring, strlen(j->b64->valuestring), &n);
		if (bytes) {
			md_got_bytes(j, bytes, n);
			return;
		}
		/* the ingress checked it: only a hand-made event gets here; fetch instead */
	}
	if (j->announced > limit) {
		md_set_error(j, "%lld bytes announced, over media.max_%s_bytes (%lld)", (long long)j->announced,
			     strcmp(j->kind, "sticker") == 0 ? "image" : j->kind, (long long)limit);
		j->size = j->announced;
		md_mark(j, "too_large", j->error);
		return;
	}
	md_fetch(j);
}

/* One download attempt from the message's gateway. */
static void md_fetch(md_job_t *j)
{
	char url[4096], auth[1200], esc[1024], err[256];
	const cfg_t *cfg = j->m->cfg;
	const char *channel = json_str(j->ev, "channel");
	const char *colon = channel ? strchr(channel, ':') : NULL;
	const cfg_channel_t *ch = NULL;
	int64_t limit = media_limit(cfg, j->kind);
	if (colon && strncmp(channel, "evolution:", 10) == 0)
		ch = cfg_channel_find(cfg, CHAN_EVOLUTION, colon + 1);
	else if (colon && strncmp(channel, "cloud:", 6) == 0)
		ch = cfg_channel_find(cfg, CHAN_CLOUD, colon + 1);
	if (!ch || ch->type == CHAN_API) {
		md_set_error(j, "channel %s has no media endpoint in the configuration", channel ? channel : "?");
		md_mark(j, "failed", j->error);
		return;
	}
	const cfg_instance_t *in = ch->n_instances > 0 ? &ch->instances[0] : NULL;
	const char *base = in && in->url ? in->url : ch->url ? ch->url : ch->type == CHAN_CLOUD ? MD_CLOUD_URL : "";
	size_t blen = strlen(base);
	while (blen > 0 && base[blen - 1] == '/')
		blen--;
	j->attempts++;
	j->step = MD_FETCH;
	if (ch->type == CHAN_EVOLUTION) {
		const char *key = in && in->key ? in->key : ch->key;
		hc_path_escape(in && in->instance ? in->instance : ch->name, esc, sizeof(esc));
		snprintf(url, sizeof(url), "%.*s/chat/getBase64FromMediaMessage/%s", (int)blen, base, esc);
		snprintf(auth, sizeof(auth), "apikey: %s", key ? key : "");
		cJSON *body = cJSON_CreateObject(), *msg = cJSON_AddObjectToObject(body, "message");
		cJSON *k = cJSON_AddObjectToObject(msg, "key");
		char jid[160];
		snprintf(jid, sizeof(jid), "%s@s.whatsapp.net", json_str(j->ev, "customer") ? json_str(j->ev, "customer") : "");
		cJSON_AddStringToObject(k, "id", json_str(j->ev, "provider_id"));
		cJSON_AddStringToObject(k, "remoteJid", jid);
		cJSON_AddBoolToObject(k, "fromMe", json_true(j->ev, "from_me"));
		cJSON_AddBoolToObject(body, "convertToMp4", false);
		char *json = cJSON_PrintUnformatted(body);
		cJSON_Delete(body);
		const char *headers[] = {auth, "Content-Type: application/json"};
		/* base64 is 4/3 of the bytes: an answer over that is a file over the limit */
		j->call = hc_post(j->m->hc, url, headers, 2, json, strlen(json), cfg->media.fetch_timeout_ms,
				  (size_t)(limit / 3 * 4 + 65536), md_answer, j, err, sizeof(err));
		free(json);
	} else {
		const char *mid = json_str(cJSON_GetObjectItem(j->ev, "media"), "id");
		if (!mid) {
			md_set_error(j, "the webhook names no media id to fetch");
			md_mark(j, "failed", j->error);
			return;
		}
		hc_path_escape(mid, esc, sizeof(esc));
		snprintf(url, sizeof(url), "%.*s/" MD_CLOUD_VERSION "/%s", (int)blen, base, esc);
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", ch->access_token ? ch->access_token : "");
		const char *headers[] = {auth};
		j->step = MD_FETCH_URL;
		j->call = hc_get(j->m->hc, url, headers, 1, cfg->media.fetch_timeout_ms, 65536, md_answer, j, err, sizeof(err));
	}
	if (!j->call)
		md_retry_or_fail(j, err);
}

static void md_answer(const hc_result_t *res, void *arg)
{
	md_job_t *j = arg;
	const cfg_t *cfg = j->m->cfg;
	int64_t limit = media_limit(cfg, j->kind);
	char why[512], err[256];
	j->call = NULL;
	if (res->too_big) {
		md_set_error(j, "the gateway's answer is over media.max_%s_bytes (%lld)",
			     strcmp(j->kind, "sticker") == 0 ? "image" : j->kind, (long long)limit);
		md_mark(j, "too_large", j->error);
		return;
	}
	if (res->status == 0 || res->status == 429 || res->status >= 500) {
		snprintf(why, sizeof(why), "%s", res->status ? "" : res->error);
		if (res->status)
			snprintf(why, sizeof(why), "HTTP %ld: %.200s", res->status, res->body);
		md_retry_or_fail(j, why);
		return;
	}
	if (res->status < 200 || res->status > 299) {
		md_set_error(j, "the gateway answered HTTP %ld: %.200s", res->status, res->body);
		md_mark(j, "failed", j->error);
		return;
	}
	if (j->step == MD_FETCH_URL) {
		/* Cloud API step 1: {"url": ..., "file_size": N}; step 2 fetches the url */
		cJSON *a = cJSON_ParseWithLength(res->body, res->len);
		const char *url = json_str(a, "url");
		double fsize = json_num(a, "file_size", -1);
		if (!url || strncmp(url, "http", 4) != 0) {
			cJSON_Delete(a);
			md_set_error(j, "the media id's answer has no url");
			md_mark(j, "failed", j->error);
			return;
		}
		if (fsize > (double)limit) {
			cJSON_Delete(a);
			j->size = (int64_t)fsize;
			md_set_error(j, "%.0f bytes, over media.max_%s_bytes (%lld)", fsize,
				     strcmp(j->kind, "sticker") == 0 ? "image" : j->kind, (long long)limit);
			md_mark(j, "too_large", j->error);
			return;
		}
		const char *colon = strchr(json_str(j->ev, "channel"), ':');
		const cfg_channel_t *ch = cfg_channel_find(cfg, CHAN_CLOUD, colon + 1);
		char auth[1200];
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", ch && ch->access_token ? ch->access_token : "");
		const char *headers[] = {auth};
		j->step = MD_FETCH;
		j->call = hc_get(j->m->hc, url, headers, 1, cfg->media.fetch_timeout_ms, (size_t)limit, md_answer, j, err,
				 sizeof(err));
		cJSON_Delete(a);
		if (!j->call)
			md_retry_or_fail(j, err);
		return;
	}
	const char *channel = json_str(j->ev, "channel");
	if (strncmp(channel, "evolution:", 10) == 0) {
		cJSON *a = cJSON_ParseWithLength(res->body, res->len);
		const char *b64 = json_str(a, "base64");
		size_t n = 0;
		unsigned char *bytes = b64 ? mstore_b64_decode(b64, strlen(b64), &n) : NULL;
		cJSON_Delete(a);
		if (!bytes) {
			md_retry_or_fail(j, "the gateway's answer has no base64 that decodes");
			return;
		}
		if ((int64_t)n > limit) {
			free(bytes);
			j->size = (int64_t)n;
			md_set_error(j, "%zu bytes, over media.max_%s_bytes (%lld)", n,
				     strcmp(j->kind, "sticker") == 0 ? "image" : j->kind, (long long)limit);
			md_mark(j, "too_large", j->error);
			return;
		}
		md_got_bytes(j, bytes, n);
		return;
	}
	unsigned char *bytes = xmalloc(res->len + 1);
	memcpy(bytes, res->body, res->len);
	md_got_bytes(j, bytes, res->len);
}

/* A failure that may pass (5xx, 429, timeout, connection): again after a doubling delay,
 * until media.fetch_retries; then failed for good. */
static void md_retry_or_fail(md_job_t *j, const char *why)
{
	const cfg_t *cfg = j->m->cfg;
	if (j->attempts <= cfg->media.fetch_retries) {
		long ms = (long)cfg->media.fetch_retry_base_ms << (j->attempts - 1 < 16 ? j->attempts - 1 : 16);
		struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
		log_warn("media %lld of %s: download attempt %d failed (%s); again in %ld ms", (long long)j->id,
			 json_str(j->ev, "provider_id"), j->attempts, why, ms);
		if (!j->timer)
			j->timer = evtimer_new(j->m->base, md_retry_cb, j);
		evtimer_add(j->timer, &tv);
		return;
	}
	md_set_error(j, "download failed after %d attempts: %s", j->attempts, why);
	md_mark(j, "failed", j->error);
}

static void md_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	md_fetch(arg);
}

/* The bytes (taken): into the store, then the row says where they are. */
static void md_got_bytes(md_job_t *j, unsigned char *bytes, size_t len)
{
	char err[512];
	int64_t limit = media_limit(j->m->cfg, j->kind);
	j->bytes = bytes;
	j->len = len;
	j->size = (int64_t)len;
	if ((int64_t)len > limit) {
		md_set_error(j, "%zu bytes, over media.max_%s_bytes (%lld)", len,
			     strcmp(j->kind, "sticker") == 0 ? "image" : j->kind, (long long)limit);
		free(j->bytes), j->bytes = NULL, j->len = 0;
		md_mark(j, "too_large", j->error);
		return;
	}
	if (!mstore_put(j->m->store, bytes, len, j->sha, err, sizeof(err))) {
		log_error("media %lld of %s: %s", (long long)j->id, json_str(j->ev, "provider_id"), err);
		md_set_error(j, "could not be written to the media store");
		free(j->bytes), j->bytes = NULL, j->len = 0;
		md_mark(j, "failed", j->error);
		return;
	}
	j->mime = xstrdup(mstore_sniff(bytes, len));
	mstore_probe(bytes, len, j->mime, &j->width, &j->height, &j->duration_ms);
	md_mark(j, "stored", NULL);
}

static void md_mark(md_job_t *j, const char *status, const char *error)
{
	char id[24], size[24], att[16], w[16], h[16], d[16];
	j->status = status;
	j->step = MD_MARK;
	snprintf(id, sizeof(id), "%lld", (long long)j->id);
	snprintf(size, sizeof(size), "%lld", (long long)j->size);
	snprintf(att, sizeof(att), "%d", j->attempts);
	snprintf(w, sizeof(w), "%d", j->width);
	snprintf(h, sizeof(h), "%d", j->height);
	snprintf(d, sizeof(d), "%d", j->duration_ms);
	bool stored = strcmp(status, "stored") == 0;
	const char *params[10] = {id, status, error, j->size >= 0 ? size : NULL, att, stored ? j->sha : NULL,
				  j->mime, j->width ? w : NULL, j->height ? h : NULL, j->duration_ms ? d : NULL};
	/* only a pending row changes: two workers racing on one message (a rebalance) keep the first */
	if (!db_query(j->m->db,
		      "UPDATE media SET status = $2, error = $3, size = coalesce($4::bigint, size), attempts = $5, "
		      "sha256 = $6, mime = coalesce($7, mime), width = $8, height = $9, duration_ms = $10, "
		      "stored_at = CASE WHEN $2 = 'stored' THEN now() END WHERE id = $1 AND status = 'pending'",
		      10, params, md_marked, j))
		md_marked(NULL, j);
}

static void md_marked(PGresult *res, void *arg)
{
	md_job_t *j = arg;
	if (!db_ok(res, "media update")) {
		/* the row stays pending: a redelivery of the message tries again */
		log_error("media %lld of %s: its %s state was not recorded", (long long)j->id, json_str(j->ev, "provider_id"),
			  j->status);
	} else if (strcmp(j->status, "stored") != 0) {
		log_warn("media %lld of %s: %s: %s", (long long)j->id, json_str(j->ev, "provider_id"), j->status,
			 j->error ? j->error : "");
	}
	md_finish(j);
}

static void md_finish(md_job_t *j)
{
	media_t *m = j->m;
	media_result_t r = {.id = j->id, .message_id = j->message_id, .status = j->status, .kind = j->kind,
			    .mime = j->mime, .name = j->name, .error = j->error, .size = j->size,
			    .duration_ms = j->duration_ms, .fresh = j->fresh, .bytes = j->bytes, .len = j->len};
	if (!r.mime)
		r.mime = json_str(cJSON_GetObjectItem(j->ev, "media"), "mimetype");
	if (j->prev)
		j->prev->next = j->next;
	else
		m->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	m->n_jobs--;
	j->step = MD_DONE;
	j->cb(&r, j->arg);
	if (j->timer)
		event_free(j->timer);
	cJSON_Delete(j->b64);
	free(j->name), free(j->error), free(j->mime), free(j->bytes), free(j);
}

static void md_set_error(md_job_t *j, const char *fmt, ...)
{
	char buf[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	free(j->error);
	j->error = xstrdup(buf);
}

