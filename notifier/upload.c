/*
 * upload: the console's file uploads (see upload.h). Two queries: the conversation's company
 * first (so another company's agent never writes a byte into the store), then, with the file
 * stored, its media_uploads row; the answer carries the row's id for the reply op.
 */
#include "upload.h"

#include "api.h"
#include "db.h"
#include "log.h"
#include "mstore.h"
#include "notifier.h"
#include "web.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UPLOAD_SMALL_BODY 65536 /* every other request to the notifier: ops, login, reads */
#define UPLOAD_NAME_MAX 200

/* One upload waiting for the database. */
typedef struct {
	http_request_t *req;
	long long conv_id;
	long company, agent;
	const char *mime, *kind;
	char name[UPLOAD_NAME_MAX + 1];
	char sha[MSTORE_SHA_HEX];
} upload_t;

static void upload_checked(PGresult *res, void *arg);
static void upload_recorded(PGresult *res, void *arg);
static bool upload_query(upload_t *u, const char *sql, int n, const char *const *params, db_result_fn cb);
static bool upload_db_ok(upload_t *u, PGresult *res);

size_t upload_body_limit(const http_request_t *req, void *arg)
{
	(void)arg;
	long long id;
	const char *rest, *path = http_request_path(req);
	token_claims_t claims;
	char key[64], why[160];
	if (strcmp(http_request_method(req), "POST") == 0 && strncmp(path, "/v1/conversations/", 18) == 0 &&
	    api_parse_id(path + 18, &id, &rest) && strcmp(rest, "/media") == 0 &&
	    web_token_check(req, &claims, key, sizeof(key), why, sizeof(why)))
		return (size_t)N.cfg.media.max_upload_bytes;
	return UPLOAD_SMALL_BODY;
}

const char *upload_kind(const char *mime)
{
	/* what both gateways take as an image message; the rest goes as a document (Office files
	 * are ZIP archives: their bytes say zip) */
	if (strcmp(mime, "image/jpeg") == 0 || strcmp(mime, "image/png") == 0)
		return "image";
	if (strcmp(mime, "application/pdf") == 0 || strcmp(mime, "application/zip") == 0)
		return "document";
	return NULL;
}

bool upload_name(const char *given, char *out, size_t outlen)
{
	char dec[1024];
	out[0] = '\0';
	if (!given || !*given)
		return true;
	if (!http_url_decode(given, strlen(given), dec, sizeof(dec)))
		return false;
	const char *base = dec;
	for (const char *p = dec; *p; p++)
		if (*p == '/' || *p == '\\')
			base = p + 1;
	for (const unsigned char *p = (const unsigned char *)base; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	size_t len = strlen(base);
	if (len >= outlen)
		return false;
	memcpy(out, base, len + 1);
	return true;
}

void upload_handle(http_request_t *req, const token_claims_t *claims, long long conv_id)
{
	size_t len;
	char why[200], qname[1024];
	const char *body = http_request_body(req, &len);
	if (len == 0) {
		http_respond_error(req, 422, "empty body: send the file's bytes as the request body");
		return;
	}
	const char *mime = mstore_sniff(body, len), *kind = upload_kind(mime);
	if (!kind) {
		snprintf(why, sizeof(why),
			 "the file is %s by its bytes; atende sends images (JPEG, PNG) and documents (PDF, ZIP/Office)",
			 mime);
		http_respond_error(req, 415, why);
		return;
	}
	const char *given = http_request_header(req, "X-Filename");
	if (!given && http_request_query_param(req, "name", qname, sizeof(qname)))
		given = qname; /* already decoded: decoding it again is harmless for a plain name */
	upload_t *u = xcalloc(1, sizeof(*u));
	if (!upload_name(given, u->name, sizeof(u->name))) {
		free(u);
		http_respond_error(req, 422, "the file name (X-Filename or ?name=) has control characters or is longer "
					     "than 200 bytes");
		return;
	}
	u->conv_id = conv_id;
	u->company = claims->company;
	u->agent = claims->agent;
	u->mime = mime;
	u->kind = kind;
	u->req = req;
	char conv_s[24];
	snprintf(conv_s, sizeof(conv_s), "%lld", conv_id);
	const char *params[1] = {conv_s};
	upload_query(u, "SELECT company_id FROM conversations WHERE id = $1", 1, params, upload_checked);
}

static void upload_checked(PGresult *res, void *arg)
{
	upload_t *u = arg;
	char why[200], err[256];
	if (!upload_db_ok(u, res))
		return;
	if (PQntuples(res) == 0 || atol(PQgetvalue(res, 0, 0)) != u->company) {
		/* another company's conversation does not exist for this token (README, "Conversation
		 * API"): a 403 would tell which ids exist */
		snprintf(why, sizeof(why), "no conversation %lld", u->conv_id);
		http_respond_error(u->req, 404, why);
		free(u);
		return;
	}
	size_t len;
	const char *body = http_request_body(u->req, &len);
	mstore_t *store = api_media_store();
	/* blocking local I/O, bounded by media.max_upload_bytes, as the workers' stores are */
	if (!store || !mstore_put(store, body, len, u->sha, err, sizeof(err))) {
		log_error("upload: conversation %lld, agent %ld: %s", u->conv_id, u->agent,
			  store ? err : "no media store");
		http_respond_error(u->req, 503, "the media store cannot take the file");
		free(u);
		return;
	}
	int w = 0, h = 0, dur = 0;
	mstore_probe(body, len, u->mime, &w, &h, &dur);
	char conv_s[24], company_s[24], agent_s[24], size_s[24], w_s[16], h_s[16];
	snprintf(conv_s, sizeof(conv_s), "%lld", u->conv_id);
	snprintf(company_s, sizeof(company_s), "%ld", u->company);
	snprintf(agent_s, sizeof(agent_s), "%ld", u->agent);
	snprintf(size_s, sizeof(size_s), "%zu", len);
	snprintf(w_s, sizeof(w_s), "%d", w);
	snprintf(h_s, sizeof(h_s), "%d", h);
	if (!u->name[0]) /* a name the customer's phone shows for the document */
		snprintf(u->name, sizeof(u->name), "%s.%s", strcmp(u->kind, "image") == 0 ? "imagem" : "documento",
			 strstr(u->mime, "jpeg") ? "jpg" : strstr(u->mime, "png") ? "png" : strstr(u->mime, "pdf") ? "pdf" : "zip");
	const char *params[10] = {company_s, conv_s, agent_s, u->kind, u->sha, u->mime, size_s, u->name,
				  w ? w_s : NULL, h ? h_s : NULL};
	upload_query(u,
		     "WITH u AS (INSERT INTO media_uploads (company_id, conversation_id, agent_id, kind, sha256, mime, size, "
		     "name, width, height) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING *) "
		     "SELECT json_build_object('media', json_build_object('id', id, 'kind', kind, 'mime', mime, 'size', size, "
		     "'name', name, 'width', width, 'height', height))::text FROM u",
		     10, params, upload_recorded);
}

static void upload_recorded(PGresult *res, void *arg)
{
	upload_t *u = arg;
	if (!upload_db_ok(u, res))
		return;
	log_info("upload: agent %ld stored %s %s (%s) for conversation %lld", u->agent, u->kind, u->sha, u->mime,
		 u->conv_id);
	http_response_add_header(u->req, "Cache-Control", "no-store");
	http_respond(u->req, 201, "application/json", PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
	free(u);
}

/* Queues a query on the least busy API connection; none: 503 now (u freed, false). */
static bool upload_query(upload_t *u, const char *sql, int n, const char *const *params, db_result_fn cb)
{
	db_t *db = api_db_pick();
	if (!db || !db_query(db, sql, n, params, cb, u)) {
		http_response_add_header(u->req, "Retry-After", "2");
		http_respond_error(u->req, 503, db ? "database busy" : "database unreachable");
		free(u);
		return false;
	}
	return true;
}

/* A query's answer is usable; else the request is answered (503/500) and u freed. */
static bool upload_db_ok(upload_t *u, PGresult *res)
{
	if (res && PQresultStatus(res) == PGRES_TUPLES_OK)
		return true;
	if (res)
		log_error("upload: conversation %lld: %s", u->conv_id, PQresultErrorMessage(res));
	http_response_add_header(u->req, "Retry-After", "2");
	http_respond_error(u->req, res ? 500 : 503, res ? "database error" : "database connection lost");
	free(u);
	return false;
}
