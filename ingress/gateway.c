/*
 * gateway: webhook formats to canonical events (see gateway.h). Errors name the exact
 * field ("data.key.id") so whoever wired a gateway can fix it from the answer alone.
 */
#include "gateway.h"
#include "json.h"
#include "mstore.h"
#include "xalloc.h"

#include <cJSON.h>
#include <ctype.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Fields of one inbound message before it becomes canonical JSON. */
typedef struct {
	const cfg_channel_t *ch;
	const char *channel_prefix; /* "evolution" | "cloud" | "api" */
	const char *customer;
	const char *provider_id;
	bool from_me;
	const char *kind;
	const char *text;
	const char *sender_name;
	double sent_at;             /* unix seconds, 0 if unknown */
	cJSON *media;               /* owned by the caller's tree; copied */
	const char *b64;            /* inline media bytes (Evolution webhook_base64), checked; NULL: none */
	const char *status;         /* for status events: the gateway's own name */
	const char *status_error;   /* a failed status's reason, NULL when none */
} gw_msg_t;

static void gw_fail(gw_result_t *out, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static cJSON *gw_parse_json(const char *body, size_t len, gw_result_t *out);
static void gw_add(gw_result_t *out, const gw_msg_t *m, const char *received_at);
static bool gw_time_ok(double t);
static void gw_evolution_message(const cfg_t *cfg, const cfg_channel_t *ch, const cJSON *data, int idx, bool array,
				 const char *received_at, gw_result_t *out);
static void gw_evolution_status(const cfg_channel_t *ch, const cJSON *data, const char *received_at, gw_result_t *out);
static void gw_strip_jid(const char *jid, char *buf, size_t len);
static bool gw_cloud_signature_ok(const char *secret, const char *sig, const char *body, size_t len);
static const char *gw_media_kind(const char *message_key);
static void gw_api_message(const cfg_channel_t *ch, const cJSON *one, int idx, const char *received_at, gw_result_t *out);
static void gw_cloud_error(const cJSON *status, char *buf, size_t len);

void gw_parse_evolution(const cfg_t *cfg, const char *apikey_header, const char *body, size_t len,
			const char *received_at, gw_result_t *out)
{
	memset(out, 0, sizeof(*out));
	cJSON *root = gw_parse_json(body, len, out);
	if (!root)
		return;
	const char *event = json_str(root, "event"), *instance = json_str(root, "instance");
	if (!event) {
		gw_fail(out, 422, "missing field: event");
	} else if (!instance) {
		gw_fail(out, 422, "missing field: instance");
	} else {
		const cfg_channel_t *ch = cfg_channel_find(cfg, CHAN_EVOLUTION, instance);
		const char *key = apikey_header ? apikey_header : json_str(root, "apikey");
		if (!ch)
			gw_fail(out, 404, "unknown instance \"%s\"", instance);
		else if (!key)
			gw_fail(out, 401, "missing apikey (header or envelope field)");
		else if (!gw_secure_equal(key, cfg_channel_key(ch, instance)))
			gw_fail(out, 401, "invalid apikey for instance \"%s\"", instance);
		else if (strcmp(event, "messages.upsert") == 0 || strcmp(event, "MESSAGES_UPSERT") == 0) {
			cJSON *data = cJSON_GetObjectItem(root, "data");
			if (cJSON_IsArray(data)) {
				int i = 0;
				cJSON *d;
				cJSON_ArrayForEach(d, data)
				{
					if (out->status)
						break;
					gw_evolution_message(cfg, ch, d, i++, true, received_at, out);
				}
				if (i == 0)
					gw_fail(out, 422, "data is an empty array");
			} else if (cJSON_IsObject(data)) {
				gw_evolution_message(cfg, ch, data, 0, false, received_at, out);
			} else {
				gw_fail(out, 422, "missing field: data");
			}
		} else if (strcmp(event, "messages.update") == 0 || strcmp(event, "MESSAGES_UPDATE") == 0) {
			cJSON *data = cJSON_GetObjectItem(root, "data");
			if (!cJSON_IsObject(data))
				gw_fail(out, 422, "missing field: data");
			else
				gw_evolution_status(ch, data, received_at, out);
		} else {
			out->ignored = true;
		}
	}
	cJSON_Delete(root);
	if (out->status)
		gw_result_free(out), out->events = NULL;
}

void gw_parse_cloud(const cfg_t *cfg, const char *signature, const char *body, size_t len, const char *received_at,
		    gw_result_t *out)
{
	memset(out, 0, sizeof(*out));
	cJSON *root = gw_parse_json(body, len, out);
	if (!root)
		return;
	const char *object = json_str(root, "object");
	cJSON *entries = cJSON_GetObjectItem(root, "entry"), *entry;
	if (!object) {
		gw_fail(out, 422, "missing field: object");
	} else if (strcmp(object, "whatsapp_business_account") != 0) {
		out->ignored = true;
	} else if (!cJSON_IsArray(entries)) {
		gw_fail(out, 422, "missing field: entry");
	}
	int ei = 0;
	cJSON_ArrayForEach(entry, entries)
	{
		cJSON *changes = cJSON_GetObjectItem(entry, "changes"), *change;
		int ci = 0;
		if (out->status || out->ignored)
			break;
		if (!cJSON_IsArray(changes)) {
			gw_fail(out, 422, "missing field: entry[%d].changes", ei);
			break;
		}
		cJSON_ArrayForEach(change, changes)
		{
			cJSON *value = cJSON_GetObjectItem(change, "value");
			const char *field = json_str(change, "field");
			if (out->status)
				break;
			if (field && strcmp(field, "messages") != 0) {
				ci++;
				continue;
			}
			const char *pnid = json_str(cJSON_GetObjectItem(value, "metadata"), "phone_number_id");
			if (!cJSON_IsObject(value) || !pnid) {
				gw_fail(out, 422, "missing field: entry[%d].changes[%d].value.metadata.phone_number_id", ei, ci);
				break;
			}
			const cfg_channel_t *ch = cfg_channel_find(cfg, CHAN_CLOUD, pnid);
			if (!ch) {
				gw_fail(out, 404, "unknown phone_number_id \"%s\"", pnid);
				break;
			}
			if (!signature) {
				gw_fail(out, 401, "missing X-Hub-Signature-256");
				break;
			}
			if (!gw_cloud_signature_ok(ch->app_secret, signature, body, len)) {
				gw_fail(out, 401, "bad X-Hub-Signature-256 for phone_number_id \"%s\"", pnid);
				break;
			}
			cJSON *msgs = cJSON_GetObjectItem(value, "messages"), *m;
			cJSON *contacts = cJSON_GetObjectItem(value, "contacts");
			int mi = 0;
			cJSON_ArrayForEach(m, msgs)
			{
				gw_msg_t gm = {.ch = ch, .channel_prefix = "cloud"};
				const char *type = json_str(m, "type");
				gm.customer = json_str(m, "from");
				gm.provider_id = json_str(m, "id");
				if (!gm.customer || !gm.provider_id || !type) {
					gw_fail(out, 422, "missing field: entry[%d].changes[%d].value.messages[%d].%s", ei, ci, mi,
						!gm.customer ? "from" : !gm.provider_id ? "id" : "type");
					break;
				}
				const char *ts = json_str(m, "timestamp");
				gm.sent_at = ts ? atof(ts) : 0;
				gm.kind = type;
				if (strcmp(type, "text") == 0) {
					gm.text = json_str(cJSON_GetObjectItem(m, "text"), "body");
					if (!gm.text) {
						gw_fail(out, 422, "missing field: entry[%d].changes[%d].value.messages[%d].text.body", ei, ci, mi);
						break;
					}
				} else {
					cJSON *media = cJSON_GetObjectItem(m, type);
					gm.text = json_str(media, "caption");
					if (cJSON_IsObject(media))
						gm.media = media;
				}
				cJSON *c;
				cJSON_ArrayForEach(c, contacts)
				{
					const char *wa = json_str(c, "wa_id");
					if (wa && strcmp(wa, gm.customer) == 0)
						gm.sender_name = json_str(cJSON_GetObjectItem(c, "profile"), "name");
				}
				gw_add(out, &gm, received_at);
				mi++;
			}
			cJSON *statuses = cJSON_GetObjectItem(value, "statuses"), *s;
			cJSON_ArrayForEach(s, statuses)
			{
				gw_msg_t gm = {.ch = ch, .channel_prefix = "cloud", .kind = "status"};
				gm.provider_id = json_str(s, "id");
				gm.status = json_str(s, "status");
				gm.customer = json_str(s, "recipient_id");
				const char *ts = json_str(s, "timestamp");
				char why[300];
				gm.sent_at = ts ? atof(ts) : 0;
				gw_cloud_error(s, why, sizeof(why));
				gm.status_error = why[0] ? why : NULL;
				if (!gm.provider_id || !gm.status || !gm.customer) {
					gw_fail(out, 422, "missing field: statuses[].%s",
						!gm.provider_id ? "id" : !gm.status ? "status" : "recipient_id");
					break;
				}
				gw_add(out, &gm, received_at);
			}
			ci++;
		}
		ei++;
	}
	if (!out->status && !out->ignored && out->n == 0)
		out->ignored = true;
	cJSON_Delete(root);
	if (out->status)
		gw_result_free(out), out->events = NULL;
}

void gw_parse_api(const cfg_t *cfg, const char *authorization, const char *body, size_t len, const char *received_at,
		  gw_result_t *out)
{
	const cfg_channel_t *ch = NULL;
	memset(out, 0, sizeof(*out));
	if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0) {
		gw_fail(out, 401, "missing Authorization: Bearer <channel key>");
		return;
	}
	for (int i = 0; i < cfg->n_channels; i++)
		if (cfg->channels[i].type == CHAN_API && gw_secure_equal(authorization + 7, cfg->channels[i].key))
			ch = &cfg->channels[i];
	if (!ch) {
		gw_fail(out, 401, "invalid bearer key");
		return;
	}
	cJSON *root = gw_parse_json(body, len, out);
	if (!root)
		return;
	if (cJSON_IsArray(root)) {
		cJSON *m;
		int i = 0;
		cJSON_ArrayForEach(m, root)
		{
			if (out->status)
				break;
			gw_api_message(ch, m, i++, received_at, out);
		}
		if (i == 0)
			gw_fail(out, 422, "empty array: no messages");
	} else if (cJSON_IsObject(root)) {
		gw_api_message(ch, root, -1, received_at, out);
	} else {
		gw_fail(out, 422, "body must be a message object or an array of them");
	}
	cJSON_Delete(root);
	if (out->status)
		gw_result_free(out), out->events = NULL;
}

/* One neutral-API message: {"customer","id","text","from_me","sender_name","timestamp"}. */
static void gw_api_message(const cfg_channel_t *ch, const cJSON *one, int idx, const char *received_at, gw_result_t *out)
{
	char where[32] = "";
	if (idx >= 0)
		snprintf(where, sizeof(where), "[%d].", idx);
	if (!cJSON_IsObject(one)) {
		gw_fail(out, 422, "%smessage must be an object", where);
		return;
	}
	gw_msg_t gm = {.ch = ch, .channel_prefix = "api", .kind = "text"};
	gm.customer = json_str(one, "customer");
	gm.provider_id = json_str(one, "id");
	gm.text = json_str(one, "text");
	gm.sender_name = json_str(one, "sender_name");
	gm.from_me = cJSON_IsTrue(cJSON_GetObjectItem(one, "from_me"));
	cJSON *ts = cJSON_GetObjectItem(one, "timestamp");
	gm.sent_at = cJSON_IsNumber(ts) ? ts->valuedouble : 0;
	if (!gm.customer || !gm.provider_id || !gm.text)
		gw_fail(out, 422, "missing field: %s%s", where, !gm.customer ? "customer" : !gm.provider_id ? "id" : "text");
	else
		gw_add(out, &gm, received_at);
}

int gw_cloud_verify(const cfg_t *cfg, const char *mode, const char *token, const char *challenge)
{
	if (!mode || !token || !challenge)
		return 400;
	if (strcmp(mode, "subscribe") != 0)
		return 403;
	for (int i = 0; i < cfg->n_channels; i++)
		if (cfg->channels[i].type == CHAN_CLOUD && gw_secure_equal(token, cfg->channels[i].verify_token))
			return 200;
	return 403;
}

void gw_result_free(gw_result_t *r)
{
	for (int i = 0; i < r->n; i++)
		free(r->events[i].value);
	free(r->events);
	r->events = NULL;
	r->n = r->cap = 0;
}

bool gw_secure_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la != lb)
		return false;
	return CRYPTO_memcmp(a, b, la) == 0;
}

static void gw_fail(gw_result_t *out, int status, const char *fmt, ...)
{
	va_list ap;
	if (out->status)
		return;
	out->status = status;
	va_start(ap, fmt);
	vsnprintf(out->error, sizeof(out->error), fmt, ap);
	va_end(ap);
}

/* True when the body stops inside a string or with objects/arrays still open: the
 * sender cut it short, which deserves a different answer than a syntax error. */
static bool gw_json_unfinished(const char *body, size_t len)
{
	int depth = 0;
	bool in_string = false, escaped = false;
	for (size_t i = 0; i < len; i++) {
		char ch = body[i];
		if (in_string) {
			if (escaped)
				escaped = false;
			else if (ch == '\\')
				escaped = true;
			else if (ch == '"')
				in_string = false;
		} else if (ch == '"') {
			in_string = true;
		} else if (ch == '{' || ch == '[') {
			depth++;
		} else if (ch == '}' || ch == ']') {
			depth--;
		}
	}
	return in_string || depth > 0;
}

static cJSON *gw_parse_json(const char *body, size_t len, gw_result_t *out)
{
	if (len == 0) {
		gw_fail(out, 400, "empty body: expected JSON");
		return NULL;
	}
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, false);
	if (!root) {
		size_t at = end ? (size_t)(end - body) : 0;
		if (gw_json_unfinished(body, len))
			gw_fail(out, 400, "truncated JSON: the body ends before the document does (%zu bytes)", len);
		else
			gw_fail(out, 400, "body is not valid JSON: syntax error at byte %zu", at);
		return NULL;
	}
	return root;
}

static void gw_evolution_message(const cfg_t *cfg, const cfg_channel_t *ch, const cJSON *data, int idx, bool array,
				 const char *received_at, gw_result_t *out)
{
	char where[24] = "data";
	char customer[128];
	if (array)
		snprintf(where, sizeof(where), "data[%d]", idx);
	cJSON *key = cJSON_GetObjectItem(data, "key");
	const char *jid = json_str(key, "remoteJid"), *id = json_str(key, "id");
	cJSON *message = cJSON_GetObjectItem(data, "message");
	if (!cJSON_IsObject(key)) {
		gw_fail(out, 422, "missing field: %s.key", where);
		return;
	}
	if (!jid) {
		gw_fail(out, 422, "missing field: %s.key.remoteJid", where);
		return;
	}
	if (!id) {
		gw_fail(out, 422, "missing field: %s.key.id", where);
		return;
	}
	if (!cJSON_IsObject(message)) {
		gw_fail(out, 422, "missing field: %s.message", where);
		return;
	}
	gw_strip_jid(jid, customer, sizeof(customer));
	gw_msg_t gm = {.ch = ch, .channel_prefix = "evolution", .customer = customer, .provider_id = id};
	gm.from_me = cJSON_IsTrue(cJSON_GetObjectItem(key, "fromMe"));
	gm.sender_name = json_str(data, "pushName");
	cJSON *ts = cJSON_GetObjectItem(data, "messageTimestamp");
	gm.sent_at = cJSON_IsNumber(ts) ? ts->valuedouble : cJSON_IsString(ts) ? atof(ts->valuestring) : 0;
	const char *conv = json_str(message, "conversation");
	const char *ext = json_str(cJSON_GetObjectItem(message, "extendedTextMessage"), "text");
	if (conv) {
		gm.kind = "text", gm.text = conv;
	} else if (ext) {
		gm.kind = "text", gm.text = ext;
	} else {
		cJSON *part;
		cJSON_ArrayForEach(part, message)
		{
			const char *kind = gw_media_kind(part->string);
			if (kind && cJSON_IsObject(part)) {
				gm.kind = kind;
				gm.text = json_str(part, "caption");
				gm.media = part;
				break;
			}
		}
		if (!gm.kind) {
			const char *mt = json_str(data, "messageType");
			gm.kind = mt ? mt : "unknown";
		}
	}
	cJSON *b64 = cJSON_GetObjectItem(message, "base64");
	if (b64 && gm.media) {
		/* Evolution's webhook_base64: the bytes themselves. Checked here, where the sender
		 * can still be told; small enough ones ride the broker, larger ones are fetched */
		size_t n = 0;
		unsigned char *bytes = cJSON_IsString(b64) ? mstore_b64_decode(b64->valuestring, strlen(b64->valuestring), &n)
							   : NULL;
		if (!bytes) {
			gw_fail(out, 422, "%s.message.base64 is not base64", where);
			return;
		}
		free(bytes);
		if (n > 0 && n <= (size_t)cfg->media.inline_max_bytes)
			gm.b64 = b64->valuestring;
	}
	gw_add(out, &gm, received_at);
}

static void gw_evolution_status(const cfg_channel_t *ch, const cJSON *data, const char *received_at, gw_result_t *out)
{
	char customer[128];
	const char *id = json_str(data, "keyId");
	const char *jid = json_str(data, "remoteJid");
	const char *status = json_str(data, "status");
	if (!id)
		id = json_str(data, "messageId");
	if (!id || !jid || !status) {
		gw_fail(out, 422, "missing field: data.%s", !id ? "keyId" : !jid ? "remoteJid" : "status");
		return;
	}
	gw_strip_jid(jid, customer, sizeof(customer));
	gw_msg_t gm = {.ch = ch, .channel_prefix = "evolution", .customer = customer, .provider_id = id,
		       .kind = "status", .status = status};
	gm.from_me = cJSON_IsTrue(cJSON_GetObjectItem(data, "fromMe"));
	if (strcasecmp(status, "ERROR") == 0)
		gm.status_error = "the gateway reported ERROR";
	gw_add(out, &gm, received_at);
}

const char *gw_status_name(const char *raw)
{
	static const char *const map[][2] = {
		{"SERVER_ACK", "sent"},     {"sent", "sent"},         {"DELIVERY_ACK", "delivered"},
		{"delivered", "delivered"}, {"READ", "read"},         {"PLAYED", "read"},
		{"ERROR", "failed"},        {"failed", "failed"},     {"PENDING", "pending"},
	};
	for (size_t i = 0; raw && i < sizeof(map) / sizeof(map[0]); i++)
		if (strcasecmp(raw, map[i][0]) == 0)
			return map[i][1];
	return NULL;
}

/* A Cloud API failed status's errors[0] as "title (code N): details", "" when it has none. */
static void gw_cloud_error(const cJSON *status, char *buf, size_t len)
{
	const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItem(status, "errors"), 0);
	const char *title = json_str(e, "title"), *msg = json_str(e, "message");
	const char *details = json_str(cJSON_GetObjectItem(e, "error_data"), "details");
	const cJSON *code = cJSON_GetObjectItem(e, "code");
	buf[0] = 0;
	if (!e)
		return;
	int n = snprintf(buf, len, "%s", title ? title : msg ? msg : "failed");
	if (cJSON_IsNumber(code) && n >= 0 && (size_t)n < len)
		n += snprintf(buf + n, len - (size_t)n, " (code %.0f)", code->valuedouble);
	if (details && n >= 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, ": %s", details);
}

/* "5511999990001@s.whatsapp.net" -> "5511999990001" */
static void gw_strip_jid(const char *jid, char *buf, size_t len)
{
	snprintf(buf, len, "%.*s", (int)strcspn(jid, "@:"), jid);
}

static const char *gw_media_kind(const char *k)
{
	static const char *const map[][2] = {{"imageMessage", "image"}, {"videoMessage", "video"},
					     {"documentMessage", "document"}, {"audioMessage", "audio"},
					     {"stickerMessage", "sticker"}, {"documentWithCaptionMessage", "document"}};
	for (size_t i = 0; k && i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(k, map[i][0]) == 0)
			return map[i][1];
	return NULL;
}

static bool gw_cloud_signature_ok(const char *secret, const char *sig, const char *body, size_t len)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	if (strncmp(sig, "sha256=", 7) != 0)
		return false;
	if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body, len, mac, &maclen))
		return false;
	for (unsigned i = 0; i < maclen; i++)
		snprintf(hex + 2 * i, 3, "%02x", mac[i]);
	char given[2 * EVP_MAX_MD_SIZE + 1];
	snprintf(given, sizeof(given), "%s", sig + 7);
	for (char *p = given; *p; p++)
		if (*p >= 'A' && *p <= 'F')
			*p = (char)(*p - 'A' + 'a');
	return gw_secure_equal(given, hex);
}

/* Appends one canonical event. Field names here are the stable contract read by
 * workers and by ops with kcat: change them only by adding. */
static void gw_add(gw_result_t *out, const gw_msg_t *m, const char *received_at)
{
	char sent[40];
	if (!gw_time_ok(m->sent_at)) {
		/* a gateway's clock is never decades off: such a number is a bug or an attack, and
		 * would be formatted (or stored) as nonsense */
		gw_fail(out, 422, "%s out of range for message %.64s (Unix seconds or milliseconds between 2000 and 2100)",
			strcmp(m->channel_prefix, "evolution") == 0 ? "data.messageTimestamp" : "timestamp", m->provider_id);
		return;
	}
	if (out->n == out->cap) {
		out->cap = out->cap ? out->cap * 2 : 4;
		out->events = xrealloc(out->events, (size_t)out->cap * sizeof(gw_event_t));
	}
	gw_event_t *e = &out->events[out->n++];
	memset(e, 0, sizeof(*e));
	snprintf(e->channel, sizeof(e->channel), "%s:%s", m->channel_prefix, m->ch->name);
	snprintf(e->key, sizeof(e->key), "%s:%s", e->channel, m->customer);
	snprintf(e->provider_id, sizeof(e->provider_id), "%s", m->provider_id);
	snprintf(e->type, sizeof(e->type), "%s", m->status ? "status" : "message");
	/* the canonical name: SERVER_ACK and sent, READ and PLAYED, are the same news */
	const char *status = m->status ? gw_status_name(m->status) : NULL;
	char raw_status[32] = "";
	if (m->status && !status) {
		/* a name not (yet) known: passed on in lower case, and ignored by the workers */
		snprintf(raw_status, sizeof(raw_status), "%s", m->status);
		for (char *p = raw_status; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		status = raw_status;
	}
	if (m->status)
		snprintf(e->dedup_key, sizeof(e->dedup_key), "%s\x1fstatus\x1f%s\x1f%s", e->channel, m->provider_id, status);
	else
		snprintf(e->dedup_key, sizeof(e->dedup_key), "%s\x1f%s", e->channel, m->provider_id);
	e->company = m->ch->company;
	e->domain = m->ch->domain;

	/* written straight into one buffer: this runs for every message on the hot path */
	json_out_t o;
	json_out_begin(&o);
	json_out_num(&o, "v", 1);
	json_out_str(&o, "type", e->type);
	json_out_num(&o, "company", (double)e->company);
	json_out_str(&o, "channel", e->channel);
	json_out_str(&o, "domain", cfg_domains[e->domain]);
	json_out_str(&o, "conversation", e->key);
	json_out_str(&o, "customer", m->customer);
	json_out_str(&o, "provider_id", m->provider_id);
	json_out_bool(&o, "from_me", m->from_me);
	if (m->status) {
		json_out_str(&o, "status", status);
		json_out_str(&o, "gateway_status", m->status);
		if (m->status_error && strcmp(status, "failed") == 0)
			json_out_str(&o, "error", m->status_error);
	} else {
		json_out_str(&o, "kind", m->kind ? m->kind : "text");
		json_out_str(&o, "text", m->text ? m->text : "");
		json_out_str(&o, "sender_name", m->sender_name);
	}
	if (m->sent_at > 0)
		json_iso_time(m->sent_at, sent, sizeof(sent));
	json_out_str(&o, "sent_at", m->sent_at > 0 ? sent : NULL);
	json_out_str(&o, "received_at", received_at);
	if (m->media) {
		json_out_object(&o, "media");
		const char *mime = json_str(m->media, "mimetype");
		cJSON *size = cJSON_GetObjectItem(m->media, "fileLength");
		json_out_str(&o, "type", m->kind);
		if (!mime)
			mime = json_str(m->media, "mime_type");
		if (mime)
			json_out_str(&o, "mimetype", mime);
		if (m->text)
			json_out_str(&o, "caption", m->text);
		/* the gateway's file length, as a number or a string (Evolution); one no file has
		 * (negative, fractional, past 2^53: a fuzzed 4.5e29 was cast) is left out */
		double bytes = cJSON_IsString(size) ? atof(size->valuestring) : cJSON_IsNumber(size) ? size->valuedouble : -1;
		if (bytes >= 0 && bytes <= 9007199254740992.0 && bytes == floor(bytes))
			json_out_num(&o, "size", bytes);
		const char *mid = json_str(m->media, "id");
		if (mid)
			json_out_str(&o, "id", mid);
		const char *name = json_str(m->media, "fileName");
		if (!name)
			name = json_str(m->media, "filename");
		if (name)
			json_out_str(&o, "name", name);
		cJSON *secs = cJSON_GetObjectItem(m->media, "seconds");
		if (cJSON_IsNumber(secs))
			json_out_num(&o, "seconds", secs->valuedouble);
		if (m->b64)
			json_out_str(&o, "base64", m->b64);
		json_out_end(&o);
	}
	e->value = json_out_finish(&o, &e->value_len);
}

/* A message time atende accepts: unknown (0), or Unix seconds or milliseconds within
 * 2000-01-01 .. 2100-01-01 (also false for NaN and infinities). */
static bool gw_time_ok(double t)
{
	if (t == 0)
		return true;
	if (t > 1e11)
		t /= 1000.0;
	return t >= 946684800.0 && t < 4102444800.0;
}
