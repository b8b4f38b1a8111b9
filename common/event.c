/*
 * event: builders and parser of atende.events (the contract is documented in event.h).
 * Builders write with json_out, member by member in the documented order; the parser reads
 * with cJSON once and points the payload structs into that tree.
 */
#include "event.h"

#include "json.h"
#include "xalloc.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVT_INT_MAX 9007199254740991LL /* 2^53 - 1: a double holds every integer up to it */

static const char *const evt_names[] = {"unknown", "message", "hint", "typing", "presence", "assignment",
					"conversation", "status", "reset", "error", "survey"};

typedef void (*evt_writer_fn)(json_out_t *o, const void *payload);

static char *evt_build(evt_type_t type, const evt_route_t *r, evt_writer_fn write, const void *payload, size_t *len);
static void evt_id(json_out_t *o, const char *name, int64_t id);
static void evt_cjson(json_out_t *o, const char *name, const cJSON *v);
static void evt_write_message(json_out_t *o, const void *payload);
static void evt_write_hint(json_out_t *o, const void *payload);
static void evt_write_typing(json_out_t *o, const void *payload);
static void evt_write_presence(json_out_t *o, const void *payload);
static void evt_write_assignment(json_out_t *o, const void *payload);
static void evt_write_conversation(json_out_t *o, const void *payload);
static void evt_write_status(json_out_t *o, const void *payload);
static void evt_write_reset(json_out_t *o, const void *payload);
static void evt_write_error(json_out_t *o, const void *payload);
static void evt_write_survey(json_out_t *o, const void *payload);
static bool evt_read_payload(evt_t *e, const cJSON *d, char *why, size_t whylen);
static bool evt_read_presence(evt_t *e, const cJSON *d, char *why, size_t whylen);
static bool evt_int(const cJSON *o, const char *name, int64_t min, int64_t *out);
static int64_t evt_id_of(const cJSON *o, const char *name);
static int64_t evt_opt_int(const cJSON *o, const char *name, int64_t lo, int64_t hi, int64_t def);
static bool evt_fail(char *why, size_t whylen, const char *fmt, const char *what);

const char *evt_type_name(evt_type_t type)
{
	return (size_t)type < sizeof(evt_names) / sizeof(evt_names[0]) ? evt_names[type] : "unknown";
}

evt_type_t evt_type_of(const char *name)
{
	for (size_t i = 1; name && i < sizeof(evt_names) / sizeof(evt_names[0]); i++)
		if (strcmp(name, evt_names[i]) == 0)
			return (evt_type_t)i;
	return EVT_UNKNOWN;
}

/* ------------------------------------------------------------------ builders */

char *evt_message(const evt_route_t *r, const evt_message_t *m, size_t *len)
{
	return evt_build(EVT_MESSAGE, r, evt_write_message, m, len);
}

char *evt_hint(const evt_route_t *r, const evt_hint_t *h, size_t *len)
{
	return evt_build(EVT_HINT, r, evt_write_hint, h, len);
}

char *evt_typing(const evt_typing_t *t, size_t *len)
{
	evt_route_t r = {.company = t->company_id, .conversation = t->conversation_id, .agent = t->agent_id};
	return evt_build(EVT_TYPING, &r, evt_write_typing, t, len);
}

char *evt_presence(const evt_presence_t *p, size_t *len)
{
	evt_route_t r = {.company = p->company_id};
	return evt_build(EVT_PRESENCE, &r, evt_write_presence, p, len);
}

char *evt_assignment(const evt_route_t *r, const evt_assignment_t *a, size_t *len)
{
	return evt_build(EVT_ASSIGNMENT, r, evt_write_assignment, a, len);
}

char *evt_conversation(const evt_route_t *r, const evt_conversation_t *c, size_t *len)
{
	return evt_build(EVT_CONVERSATION, r, evt_write_conversation, c, len);
}

char *evt_status(const evt_route_t *r, const evt_status_t *s, size_t *len)
{
	return evt_build(EVT_STATUS, r, evt_write_status, s, len);
}

char *evt_reset(const evt_route_t *r, const evt_reset_t *s, size_t *len)
{
	return evt_build(EVT_RESET, r, evt_write_reset, s, len);
}

char *evt_error(const evt_route_t *r, const evt_error_t *e, size_t *len)
{
	return evt_build(EVT_ERROR, r, evt_write_error, e, len);
}

char *evt_survey(const evt_route_t *r, const evt_survey_t *s, size_t *len)
{
	return evt_build(EVT_SURVEY, r, evt_write_survey, s, len);
}

char *evt_write(const evt_t *e, size_t *len)
{
	json_out_t o;
	json_out_begin(&o);
	json_out_str(&o, "type", e->type_name);
	json_out_num(&o, "company_id", (double)e->route.company);
	if (e->type != EVT_PRESENCE) {
		json_out_num(&o, "conversation_id", (double)e->route.conversation);
		evt_id(&o, "agent_id", e->route.agent);
	}
	evt_cjson(&o, "data", e->data);
	size_t n;
	char *s = json_out_finish(&o, &n);
	if (len)
		*len = n;
	return s;
}

char *evt_data_json(const evt_t *e)
{
	return cJSON_PrintUnformatted(e->data);
}

char *evt_presence_change_data(long company, long agent, bool online)
{
	json_out_t o;
	size_t len;
	json_out_begin(&o);
	json_out_num(&o, "agent_id", (double)agent);
	json_out_num(&o, "company_id", (double)company);
	json_out_str(&o, "status", online ? "online" : "offline");
	return json_out_finish(&o, &len);
}

char *evt_presence_list_data(long company, const long *agents, int n)
{
	json_out_t o;
	size_t len;
	json_out_begin(&o);
	json_out_array(&o, "agents");
	for (int i = 0; i < n; i++)
		json_out_num(&o, NULL, (double)agents[i]);
	json_out_array_end(&o);
	json_out_num(&o, "company_id", (double)company);
	return json_out_finish(&o, &len);
}

char *evt_reset_data(const char *reason)
{
	json_out_t o;
	size_t len;
	json_out_begin(&o);
	json_out_str(&o, "reason", reason);
	return json_out_finish(&o, &len);
}

/* {"type","company_id"[,"conversation_id","agent_id"],"data":{payload}}: the envelope, one
 * for every type, around what write writes of payload. */
static char *evt_build(evt_type_t type, const evt_route_t *r, evt_writer_fn write, const void *payload, size_t *len)
{
	json_out_t o;
	size_t n;
	json_out_begin(&o);
	json_out_str(&o, "type", evt_type_name(type));
	json_out_num(&o, "company_id", (double)r->company);
	if (type != EVT_PRESENCE) {
		json_out_num(&o, "conversation_id", (double)r->conversation);
		evt_id(&o, "agent_id", r->agent);
	}
	json_out_object(&o, "data");
	write(&o, payload);
	json_out_end(&o);
	char *s = json_out_finish(&o, &n);
	if (len)
		*len = n;
	return s;
}

/* An id, or null for 0 (nobody, not stored). */
static void evt_id(json_out_t *o, const char *name, int64_t id)
{
	if (id)
		json_out_num(o, name, (double)id);
	else
		json_out_str(o, name, NULL);
}

static void evt_cjson(json_out_t *o, const char *name, const cJSON *v)
{
	char *text = v ? cJSON_PrintUnformatted(v) : NULL;
	json_out_json(o, name, text ? text : "null");
	free(text);
}

static void evt_write_message(json_out_t *o, const void *payload)
{
	const evt_message_t *m = payload;
	json_out_str(o, "message_id", m->message_id);
	evt_id(o, "db_id", m->db_id);
	json_out_num(o, "conversation_id", (double)m->conversation_id);
	json_out_str(o, "conversation_key", m->conversation_key);
	json_out_num(o, "company_id", (double)m->company_id);
	evt_id(o, "agent_id", m->agent_id);
	json_out_str(o, "domain", m->domain);
	json_out_str(o, "channel", m->channel);
	json_out_str(o, "customer", m->customer);
	json_out_str(o, "sender_name", m->sender_name);
	json_out_bool(o, "from_me", m->from_me);
	json_out_str(o, "kind", m->kind);
	json_out_str(o, "text", m->text);
	if (m->media)
		evt_cjson(o, "media", m->media);
	if (m->transcript)
		json_out_str(o, "transcript", m->transcript);
	if (m->update)
		json_out_bool(o, "update", true);
	json_out_str(o, "created_at", m->created_at);
	if (!m->status)
		return;
	json_out_str(o, "status", m->status);
	if (m->error)
		json_out_str(o, "error", m->error);
	json_out_str(o, "request_id", m->request_id);
	evt_cjson(o, "client_id", m->client_id);
	evt_id(o, "by_agent", m->by_agent);
	if (m->by)
		json_out_str(o, "by", m->by);
	json_out_num(o, "attempts", m->attempts);
}

static void evt_write_hint(json_out_t *o, const void *payload)
{
	const evt_hint_t *h = payload;
	json_out_array(o, "message_ids");
	for (int i = 0; i < h->n_message_ids; i++)
		json_out_str(o, NULL, h->message_ids[i]);
	json_out_array_end(o);
	json_out_str(o, "message_id", h->n_message_ids ? h->message_ids[h->n_message_ids - 1] : NULL);
	json_out_num(o, "hint_id", (double)h->hint_id);
	json_out_num(o, "conversation_id", (double)h->conversation_id);
	json_out_str(o, "conversation_key", h->conversation_key);
	evt_id(o, "agent_id", h->agent_id);
	json_out_num(o, "company_id", (double)h->company_id);
	json_out_str(o, "domain", h->domain);
	json_out_str(o, "intent", h->intent);
	json_out_bool(o, "critical", h->critical);
	json_out_str(o, "text", h->text);
	json_out_str(o, "source", h->source);
	json_out_bool(o, "from_cache", h->from_cache);
	json_out_bool(o, "routed", h->routed);
	json_out_str(o, "model", h->model);
	json_out_str(o, "created_at", h->created_at);
	json_out_str(o, "received_at", h->received_at);
	if (h->partial)
		json_out_bool(o, "partial", true);
	if (h->withdrawn)
		json_out_bool(o, "withdrawn", true);
}

static void evt_write_typing(json_out_t *o, const void *payload)
{
	const evt_typing_t *t = payload;
	char at[32];
	json_out_num(o, "conversation_id", (double)t->conversation_id);
	json_out_num(o, "agent_id", (double)t->agent_id);
	json_out_num(o, "company_id", (double)t->company_id);
	json_out_str(o, "state", t->start ? "start" : "stop");
	json_out_str(o, "expires_at", json_iso_ms(t->expires_ms, at));
	json_out_str(o, "instance", t->instance);
	if (t->reason)
		json_out_str(o, "reason", t->reason);
}

static void evt_write_presence(json_out_t *o, const void *payload)
{
	const evt_presence_t *p = payload;
	char at[32];
	if (p->kind == EVT_PRESENCE_HEARTBEAT) {
		json_out_num(o, "company_id", (double)p->company_id);
		json_out_str(o, "instance", p->instance);
		json_out_bool(o, "heartbeat", true);
		json_out_array(o, "agents");
		for (int i = 0; i < p->n_agents; i++) {
			json_out_object(o, NULL);
			json_out_num(o, "agent_id", (double)p->agents[i]);
			json_out_num(o, "tabs", p->agent_tabs[i]);
			json_out_end(o);
		}
		json_out_array_end(o);
	} else {
		bool expiry = p->kind == EVT_PRESENCE_EXPIRY;
		json_out_num(o, "agent_id", (double)p->agent_id);
		json_out_num(o, "company_id", (double)p->company_id);
		json_out_str(o, "status", p->online && !expiry ? "online" : "offline");
		json_out_str(o, "instance", p->instance);
		json_out_num(o, "tabs", expiry ? 0 : p->tabs);
		if (expiry) {
			json_out_bool(o, "expired", true);
			json_out_num(o, "last_seen", (double)p->last_seen_ms);
			json_out_str(o, "by", p->by);
		}
	}
	json_out_str(o, "at", json_iso_ms(p->at_ms, at));
}

static void evt_write_assignment(json_out_t *o, const void *payload)
{
	const evt_assignment_t *a = payload;
	json_out_str(o, "request_id", a->request_id);
	evt_cjson(o, "client_id", a->client_id);
	json_out_num(o, "conversation_id", (double)a->conversation_id);
	json_out_str(o, "conversation_key", a->conversation_key);
	json_out_num(o, "company_id", (double)a->company_id);
	json_out_str(o, "channel", a->channel);
	json_out_str(o, "customer", a->customer);
	evt_id(o, "from_agent", a->from_agent);
	evt_id(o, "to_agent", a->to_agent);
	evt_id(o, "agent_id", a->agent_id);
	json_out_str(o, "from_domain", a->from_domain);
	json_out_str(o, "domain", a->domain);
	json_out_str(o, "to_domain", a->to_domain);
	evt_id(o, "by_agent", a->by_agent);
	json_out_str(o, "at", a->at);
	json_out_str(o, "created_at", a->created_at);
	if (a->reason) {
		json_out_str(o, "reason", a->reason);
		json_out_num(o, "waited_ms", (double)a->waited_ms);
	}
}

static void evt_write_conversation(json_out_t *o, const void *payload)
{
	const evt_conversation_t *c = payload;
	json_out_num(o, "conversation_id", (double)c->conversation_id);
	json_out_str(o, "status", c->status);
	evt_id(o, "agent_id", c->agent_id);
	json_out_str(o, "domain", c->domain);
	json_out_str(o, "by", c->by);
	json_out_str(o, "at", c->at);
}

static void evt_write_status(json_out_t *o, const void *payload)
{
	const evt_status_t *s = payload;
	evt_id(o, "message_id", s->message_id);
	json_out_str(o, "provider_id", s->provider_id);
	json_out_num(o, "conversation_id", (double)s->conversation_id);
	json_out_str(o, "status", s->status);
	json_out_str(o, "at", s->at);
	if (s->error)
		json_out_str(o, "error", s->error);
}

static void evt_write_survey(json_out_t *o, const void *payload)
{
	const evt_survey_t *s = payload;
	json_out_num(o, "survey_id", (double)s->survey_id);
	json_out_num(o, "conversation_id", (double)s->conversation_id);
	json_out_num(o, "company_id", (double)s->company_id);
	evt_id(o, "agent_id", s->agent_id);
	json_out_str(o, "domain", s->domain);
	json_out_str(o, "kind", s->kind);
	json_out_num(o, "score", s->score);
	json_out_str(o, "text", s->text);
	evt_id(o, "db_id", s->db_id);
	json_out_str(o, "at", s->at);
}

static void evt_write_reset(json_out_t *o, const void *payload)
{
	const evt_reset_t *r = payload;
	json_out_str(o, "reason", r->reason);
}

static void evt_write_error(json_out_t *o, const void *payload)
{
	const evt_error_t *e = payload;
	json_out_str(o, "op", e->op);
	json_out_str(o, "status", e->status);
	json_out_str(o, "error", e->error);
	json_out_str(o, "request_id", e->request_id);
	evt_cjson(o, "client_id", e->client_id);
	json_out_num(o, "conversation_id", (double)e->conversation_id);
	json_out_num(o, "company_id", (double)e->company_id);
	evt_id(o, "agent_id", e->agent_id);
	json_out_str(o, "at", e->at);
	json_out_str(o, "created_at", e->created_at);
}

/* ------------------------------------------------------------------ parser */

bool evt_parse(evt_t *e, const char *json, size_t len, char *why, size_t whylen)
{
	cJSON *root = cJSON_ParseWithLength(json, len);
	if (!root) {
		memset(e, 0, sizeof(*e));
		return evt_fail(why, whylen, "%s", "not JSON");
	}
	return evt_parse_tree(e, root, why, whylen);
}

bool evt_parse_tree(evt_t *e, cJSON *root, char *why, size_t whylen)
{
	memset(e, 0, sizeof(*e));
	e->root = root;
	const char *type = json_str(root, "type");
	const cJSON *data = cJSON_GetObjectItem(root, "data");
	int64_t company;
	bool ok = false;
	if (!cJSON_IsObject(root))
		evt_fail(why, whylen, "%s", "not a JSON object");
	else if (!type)
		evt_fail(why, whylen, "%s", "missing type");
	else if (!evt_int(root, "company_id", 1, &company))
		evt_fail(why, whylen, "%s", "missing company_id");
	else if (!cJSON_IsObject(data))
		evt_fail(why, whylen, "%s", "missing data object");
	else
		ok = true;
	if (ok) {
		e->type = evt_type_of(type);
		e->type_name = type;
		e->data = data;
		e->route.company = (long)company;
		/* presence is routed by company alone (evt_presence, evt_write): an envelope's
		 * conversation or agent there is noise, not a route (found by fuzz_event) */
		if (e->type != EVT_PRESENCE) {
			e->route.conversation = evt_id_of(root, "conversation_id");
			e->route.agent = evt_id_of(root, "agent_id");
		}
		ok = evt_read_payload(e, data, why, whylen);
	}
	if (!ok) {
		evt_free(e);
		return false;
	}
	return true;
}

void evt_free(evt_t *e)
{
	cJSON_Delete(e->root);
	free(e->owned[0]);
	free(e->owned[1]);
	memset(e, 0, sizeof(*e));
}

/* Reads the payload of a known type into its struct: what a consumer relies on is required,
 * the rest read as it comes (NULL, 0, false when absent). */
static bool evt_read_payload(evt_t *e, const cJSON *d, char *why, size_t whylen)
{
	switch (e->type) {
	case EVT_MESSAGE: {
		evt_message_t *m = &e->message;
		if (!evt_int(d, "conversation_id", 1, &m->conversation_id))
			return evt_fail(why, whylen, "message: %s", "missing conversation_id");
		m->message_id = json_str(d, "message_id");
		m->db_id = evt_id_of(d, "db_id");
		m->conversation_key = json_str(d, "conversation_key");
		m->company_id = (long)evt_id_of(d, "company_id");
		m->agent_id = evt_id_of(d, "agent_id");
		m->domain = json_str(d, "domain");
		m->channel = json_str(d, "channel");
		m->customer = json_str(d, "customer");
		m->sender_name = json_str(d, "sender_name");
		m->from_me = json_true(d, "from_me");
		m->kind = json_str(d, "kind");
		m->text = json_str(d, "text");
		m->media = cJSON_GetObjectItem(d, "media");
		m->transcript = json_str(d, "transcript");
		m->update = json_true(d, "update");
		m->created_at = json_str(d, "created_at");
		m->status = json_str(d, "status");
		m->error = json_str(d, "error");
		m->request_id = json_str(d, "request_id");
		m->client_id = cJSON_GetObjectItem(d, "client_id");
		m->by_agent = evt_id_of(d, "by_agent");
		m->by = json_str(d, "by");
		m->attempts = (int)evt_opt_int(d, "attempts", 0, INT_MAX, 0);
		return true;
	}
	case EVT_HINT: {
		evt_hint_t *h = &e->hint;
		const cJSON *ids = cJSON_GetObjectItem(d, "message_ids"), *id;
		if (!cJSON_IsArray(ids) || cJSON_GetArraySize(ids) == 0)
			return evt_fail(why, whylen, "hint: %s", "missing message_ids");
		if (!evt_int(d, "hint_id", 1, &h->hint_id) || !evt_int(d, "conversation_id", 1, &h->conversation_id))
			return evt_fail(why, whylen, "hint: %s", "missing hint_id or conversation_id");
		const char **list = xcalloc((size_t)cJSON_GetArraySize(ids), sizeof(*list));
		e->owned[0] = list;
		cJSON_ArrayForEach(id, ids)
		{
			if (!cJSON_IsString(id))
				return evt_fail(why, whylen, "hint: %s", "message_ids holds a non-string");
			list[h->n_message_ids++] = id->valuestring;
		}
		h->message_ids = list;
		h->conversation_key = json_str(d, "conversation_key");
		h->agent_id = evt_id_of(d, "agent_id");
		h->company_id = (long)evt_id_of(d, "company_id");
		h->domain = json_str(d, "domain");
		h->intent = json_str(d, "intent");
		h->critical = json_true(d, "critical");
		h->text = json_str(d, "text");
		h->source = json_str(d, "source");
		h->from_cache = json_true(d, "from_cache");
		h->routed = json_true(d, "routed");
		h->model = json_str(d, "model");
		h->created_at = json_str(d, "created_at");
		h->received_at = json_str(d, "received_at");
		h->partial = json_true(d, "partial");
		h->withdrawn = json_true(d, "withdrawn");
		return true;
	}
	case EVT_TYPING: {
		evt_typing_t *t = &e->typing;
		const char *state = json_str(d, "state");
		if (!evt_int(d, "conversation_id", 1, &t->conversation_id) || !evt_int(d, "agent_id", 1, &t->agent_id))
			return evt_fail(why, whylen, "typing: %s", "missing conversation_id or agent_id");
		if (!state || (strcmp(state, "start") != 0 && strcmp(state, "stop") != 0))
			return evt_fail(why, whylen, "typing: %s", "state is not start or stop");
		t->start = strcmp(state, "start") == 0;
		t->company_id = (long)evt_opt_int(d, "company_id", 1, EVT_INT_MAX, e->route.company);
		if (!json_iso_parse_ms(json_str(d, "expires_at"), &t->expires_ms))
			t->expires_ms = 0;
		t->instance = json_str(d, "instance");
		t->reason = json_str(d, "reason");
		return true;
	}
	case EVT_PRESENCE:
		return evt_read_presence(e, d, why, whylen);
	case EVT_ASSIGNMENT: {
		evt_assignment_t *a = &e->assignment;
		if (!evt_int(d, "conversation_id", 1, &a->conversation_id))
			return evt_fail(why, whylen, "assignment: %s", "missing conversation_id");
		a->request_id = json_str(d, "request_id");
		a->client_id = cJSON_GetObjectItem(d, "client_id");
		a->conversation_key = json_str(d, "conversation_key");
		a->company_id = (long)evt_id_of(d, "company_id");
		a->channel = json_str(d, "channel");
		a->customer = json_str(d, "customer");
		a->from_agent = evt_id_of(d, "from_agent");
		a->to_agent = evt_id_of(d, "to_agent");
		a->agent_id = evt_id_of(d, "agent_id");
		a->from_domain = json_str(d, "from_domain");
		a->domain = json_str(d, "domain");
		a->to_domain = json_str(d, "to_domain");
		a->by_agent = evt_id_of(d, "by_agent");
		a->at = json_str(d, "at");
		a->created_at = json_str(d, "created_at");
		a->reason = json_str(d, "reason");
		a->waited_ms = evt_opt_int(d, "waited_ms", 0, EVT_INT_MAX, 0);
		return true;
	}
	case EVT_CONVERSATION: {
		evt_conversation_t *c = &e->conversation;
		if (!evt_int(d, "conversation_id", 1, &c->conversation_id) || !(c->status = json_str(d, "status")))
			return evt_fail(why, whylen, "conversation: %s", "missing conversation_id or status");
		c->agent_id = evt_id_of(d, "agent_id");
		c->domain = json_str(d, "domain");
		c->by = json_str(d, "by");
		c->at = json_str(d, "at");
		return true;
	}
	case EVT_STATUS: {
		evt_status_t *s = &e->status;
		if (!(s->status = json_str(d, "status")))
			return evt_fail(why, whylen, "status: %s", "missing status");
		s->message_id = evt_id_of(d, "message_id");
		s->provider_id = json_str(d, "provider_id");
		s->conversation_id = evt_id_of(d, "conversation_id");
		s->at = json_str(d, "at");
		s->error = json_str(d, "error");
		return true;
	}
	case EVT_RESET:
		if (!(e->reset.reason = json_str(d, "reason")))
			return evt_fail(why, whylen, "reset: %s", "missing reason");
		return true;
	case EVT_ERROR: {
		evt_error_t *x = &e->error;
		if (!(x->error = json_str(d, "error")))
			return evt_fail(why, whylen, "error: %s", "missing error");
		x->op = json_str(d, "op");
		x->status = json_str(d, "status");
		x->request_id = json_str(d, "request_id");
		x->client_id = cJSON_GetObjectItem(d, "client_id");
		x->conversation_id = evt_id_of(d, "conversation_id");
		x->company_id = (long)evt_id_of(d, "company_id");
		x->agent_id = evt_id_of(d, "agent_id");
		x->at = json_str(d, "at");
		x->created_at = json_str(d, "created_at");
		return true;
	}
	case EVT_SURVEY: {
		evt_survey_t *v = &e->survey;
		long long score;
		if (!evt_int(d, "conversation_id", 1, &v->conversation_id) || !(v->kind = json_str(d, "kind")) ||
		    !json_int_in(cJSON_GetObjectItem(d, "score"), 0, 10, &score))
			return evt_fail(why, whylen, "survey: %s", "missing conversation_id, kind or score (0-10)");
		v->survey_id = evt_id_of(d, "survey_id");
		v->company_id = (long)evt_id_of(d, "company_id");
		v->agent_id = evt_id_of(d, "agent_id");
		v->domain = json_str(d, "domain");
		v->score = (int)score;
		v->text = json_str(d, "text");
		v->db_id = evt_id_of(d, "db_id");
		v->at = json_str(d, "at");
		return true;
	}
	case EVT_UNKNOWN:
		return true;
	}
	return true;
}

/* Presence is what every notifier rebuilds its union from: all of it must be sound, and the
 * data's company the envelope's. */
static bool evt_read_presence(evt_t *e, const cJSON *d, char *why, size_t whylen)
{
	evt_presence_t *p = &e->presence;
	int64_t company, v, tabs;
	p->instance = json_str(d, "instance");
	if (!p->instance || !p->instance[0] || strlen(p->instance) >= EVT_INSTANCE_MAX)
		return evt_fail(why, whylen, "presence: %s", "missing instance");
	if (!evt_int(d, "company_id", 0, &company) || company != e->route.company)
		return evt_fail(why, whylen, "presence: %s", "company_id missing or not the envelope's");
	p->company_id = (long)company;
	if (!json_iso_parse_ms(json_str(d, "at"), &p->at_ms))
		p->at_ms = 0;
	if (json_true(d, "heartbeat")) {
		const cJSON *list = cJSON_GetObjectItem(d, "agents"), *a;
		if (!cJSON_IsArray(list))
			return evt_fail(why, whylen, "presence: %s", "heartbeat without agents");
		size_t n = (size_t)cJSON_GetArraySize(list) + 1;
		long *agents = xmalloc(n * sizeof(long));
		int *agent_tabs = xmalloc(n * sizeof(int));
		e->owned[0] = agents;
		e->owned[1] = agent_tabs;
		cJSON_ArrayForEach(a, list)
		{
			if (!evt_int(a, "agent_id", 0, &v) || !evt_int(a, "tabs", 0, &tabs) || tabs > INT_MAX)
				return evt_fail(why, whylen, "presence: %s", "heartbeat agent without agent_id or tabs");
			agents[p->n_agents] = (long)v;
			agent_tabs[p->n_agents++] = (int)tabs;
		}
		p->agents = agents;
		p->agent_tabs = agent_tabs;
		p->kind = EVT_PRESENCE_HEARTBEAT;
		return true;
	}
	if (!evt_int(d, "agent_id", 0, &v) || !evt_int(d, "tabs", 0, &tabs) || tabs > INT_MAX)
		return evt_fail(why, whylen, "presence: %s", "missing agent_id or tabs");
	p->agent_id = (long)v;
	p->tabs = (int)tabs;
	const char *status = json_str(d, "status");
	p->online = status && strcmp(status, "online") == 0;
	if (json_true(d, "expired")) {
		long long ls;
		if (!json_int_in(cJSON_GetObjectItem(d, "last_seen"), -EVT_INT_MAX, EVT_INT_MAX, &ls))
			return evt_fail(why, whylen, "presence: %s", "expiry without last_seen");
		p->last_seen_ms = ls;
		p->by = json_str(d, "by");
		p->kind = EVT_PRESENCE_EXPIRY;
	} else {
		p->kind = EVT_PRESENCE_REPORT;
	}
	return true;
}

/* An integral number member, at least min and within the integers a double holds exactly
 * (2^53): a larger or fractional number is refused, never cast (1e300 would be undefined). */
static bool evt_int(const cJSON *o, const char *name, int64_t min, int64_t *out)
{
	long long v;
	if (!json_int_in(cJSON_GetObjectItem(o, name), min, EVT_INT_MAX, &v))
		return false;
	*out = v;
	return true;
}

/* An optional integral member within lo..hi; def when null, absent, not such a number. */
static int64_t evt_opt_int(const cJSON *o, const char *name, int64_t lo, int64_t hi, int64_t def)
{
	long long v;
	return json_int_in(cJSON_GetObjectItem(o, name), lo, hi, &v) ? v : def;
}

/* An id member; 0 when null, absent or not an integer within ±2^53. */
static int64_t evt_id_of(const cJSON *o, const char *name)
{
	return evt_opt_int(o, name, -EVT_INT_MAX, EVT_INT_MAX, 0);
}

/* Says why (fmt has one %s) and returns false. */
static bool evt_fail(char *why, size_t whylen, const char *fmt, const char *what)
{
	if (why && whylen)
		snprintf(why, whylen, fmt, what);
	return false;
}
