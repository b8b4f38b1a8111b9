/*
 * wire: builds and parses the notifier's Kafka messages with cJSON (see wire.h).
 */
#include "wire.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static cJSON *wire_envelope(const char *type, long company, cJSON **data);
static char *wire_print(cJSON *root);
static bool wire_long(const cJSON *o, const char *name, long *out);

const char *wire_iso(long long ms, char buf[32])
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&s, &tm);
	size_t n = strftime(buf, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, 32 - n, ".%03dZ", (int)(ms % 1000));
	return buf;
}

char *wire_presence(long company, long agent, bool online, const char *instance, int tabs, long long at_ms)
{
	char at[32];
	cJSON *data, *root = wire_envelope("presence", company, &data);
	cJSON_AddNumberToObject(data, "agent_id", (double)agent);
	cJSON_AddNumberToObject(data, "company_id", (double)company);
	cJSON_AddStringToObject(data, "status", online ? "online" : "offline");
	cJSON_AddStringToObject(data, "instance", instance);
	cJSON_AddNumberToObject(data, "tabs", tabs);
	cJSON_AddStringToObject(data, "at", wire_iso(at_ms, at));
	return wire_print(root);
}

char *wire_heartbeat(long company, const char *instance, const long *agents, const int *tabs, int n, long long at_ms)
{
	char at[32];
	cJSON *data, *root = wire_envelope("presence", company, &data);
	cJSON_AddNumberToObject(data, "company_id", (double)company);
	cJSON_AddStringToObject(data, "instance", instance);
	cJSON_AddBoolToObject(data, "heartbeat", true);
	cJSON *list = cJSON_AddArrayToObject(data, "agents");
	for (int i = 0; i < n; i++) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddNumberToObject(e, "agent_id", (double)agents[i]);
		cJSON_AddNumberToObject(e, "tabs", tabs[i]);
		cJSON_AddItemToArray(list, e);
	}
	cJSON_AddStringToObject(data, "at", wire_iso(at_ms, at));
	return wire_print(root);
}

char *wire_presence_expiry(long company, long agent, const char *instance, long long last_seen_ms, const char *by,
			   long long at_ms)
{
	char at[32];
	cJSON *data, *root = wire_envelope("presence", company, &data);
	cJSON_AddNumberToObject(data, "agent_id", (double)agent);
	cJSON_AddNumberToObject(data, "company_id", (double)company);
	cJSON_AddStringToObject(data, "status", "offline");
	cJSON_AddStringToObject(data, "instance", instance);
	cJSON_AddNumberToObject(data, "tabs", 0);
	cJSON_AddBoolToObject(data, "expired", true);
	cJSON_AddNumberToObject(data, "last_seen", (double)last_seen_ms);
	cJSON_AddStringToObject(data, "by", by);
	cJSON_AddStringToObject(data, "at", wire_iso(at_ms, at));
	return wire_print(root);
}

void wire_presence_parse(const char *data_json, size_t len, wire_presence_t *out)
{
	memset(out, 0, sizeof(*out));
	cJSON *d = cJSON_ParseWithLength(data_json, len);
	const cJSON *inst = cJSON_GetObjectItem(d, "instance");
	if (!cJSON_IsObject(d) || !cJSON_IsString(inst) || !inst->valuestring[0] ||
	    strlen(inst->valuestring) >= sizeof(out->instance) || !wire_long(d, "company_id", &out->company))
		goto bad;
	snprintf(out->instance, sizeof(out->instance), "%s", inst->valuestring);
	if (cJSON_IsTrue(cJSON_GetObjectItem(d, "heartbeat"))) {
		const cJSON *list = cJSON_GetObjectItem(d, "agents"), *e;
		if (!cJSON_IsArray(list))
			goto bad;
		int n = cJSON_GetArraySize(list);
		out->agents = malloc(((size_t)n + 1) * sizeof(long));
		out->agent_tabs = malloc(((size_t)n + 1) * sizeof(int));
		cJSON_ArrayForEach(e, list)
		{
			long agent, tabs;
			if (!wire_long(e, "agent_id", &agent) || !wire_long(e, "tabs", &tabs) || tabs < 0)
				goto bad;
			out->agents[out->n_agents] = agent;
			out->agent_tabs[out->n_agents++] = (int)tabs;
		}
		out->kind = WIRE_PRESENCE_HEARTBEAT;
		cJSON_Delete(d);
		return;
	}
	long tabs;
	if (!wire_long(d, "agent_id", &out->agent) || !wire_long(d, "tabs", &tabs) || tabs < 0)
		goto bad;
	out->tabs = (int)tabs;
	if (cJSON_IsTrue(cJSON_GetObjectItem(d, "expired"))) {
		const cJSON *ls = cJSON_GetObjectItem(d, "last_seen");
		if (!cJSON_IsNumber(ls))
			goto bad;
		out->last_seen_ms = (long long)ls->valuedouble;
		out->kind = WIRE_PRESENCE_EXPIRY;
	} else {
		out->kind = WIRE_PRESENCE_REPORT;
	}
	cJSON_Delete(d);
	return;
bad:
	cJSON_Delete(d);
	wire_presence_free(out);
	memset(out, 0, sizeof(*out));
	out->kind = WIRE_PRESENCE_BAD;
}

void wire_presence_free(wire_presence_t *p)
{
	free(p->agents);
	free(p->agent_tabs);
	p->agents = NULL;
	p->agent_tabs = NULL;
	p->n_agents = 0;
}

char *wire_presence_change_data(long company, long agent, bool online)
{
	char buf[128];
	snprintf(buf, sizeof(buf), "{\"agent_id\":%ld,\"company_id\":%ld,\"status\":\"%s\"}", agent, company,
		 online ? "online" : "offline");
	return strdup(buf);
}

char *wire_presence_list_data(long company, const long *agents, int n)
{
	size_t cap = 64 + (size_t)n * 21, len = 0;
	char *buf = malloc(cap);
	len += (size_t)snprintf(buf, cap, "{\"agents\":[");
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(buf + len, cap - len, "%s%ld", i ? "," : "", agents[i]);
	snprintf(buf + len, cap - len, "],\"company_id\":%ld}", company);
	return buf;
}

char *wire_typing(long company, int64_t conversation, long agent, bool start, long long expires_ms, const char *instance,
		  const char *reason)
{
	char at[32];
	cJSON *data, *root = wire_envelope("typing", company, &data);
	cJSON_AddNumberToObject(root, "conversation_id", (double)conversation);
	cJSON_AddNumberToObject(root, "agent_id", (double)agent);
	cJSON_AddNumberToObject(data, "conversation_id", (double)conversation);
	cJSON_AddNumberToObject(data, "agent_id", (double)agent);
	cJSON_AddNumberToObject(data, "company_id", (double)company);
	cJSON_AddStringToObject(data, "state", start ? "start" : "stop");
	cJSON_AddStringToObject(data, "expires_at", wire_iso(expires_ms, at));
	cJSON_AddStringToObject(data, "instance", instance);
	if (reason)
		cJSON_AddStringToObject(data, "reason", reason);
	return wire_print(root);
}

char *wire_reply(long company, int64_t conversation, long agent, const char *text, const char *client_id_json,
		 const char *request_id, long long at_ms)
{
	char at[32];
	cJSON *root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "type", "reply");
	cJSON_AddNumberToObject(root, "company_id", (double)company);
	cJSON_AddNumberToObject(root, "conversation_id", (double)conversation);
	cJSON_AddNumberToObject(root, "agent_id", (double)agent);
	cJSON_AddStringToObject(root, "text", text);
	cJSON_AddRawToObject(root, "client_id", client_id_json ? client_id_json : "null");
	cJSON_AddStringToObject(root, "request_id", request_id);
	cJSON_AddStringToObject(root, "requested_at", wire_iso(at_ms, at));
	return wire_print(root);
}

char *wire_transfer(long company, int64_t conversation, long agent, long to_agent, const char *to_domain,
		    const char *client_id_json, const char *request_id, long long at_ms)
{
	char at[32];
	cJSON *root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "type", "transfer");
	cJSON_AddNumberToObject(root, "company_id", (double)company);
	cJSON_AddNumberToObject(root, "conversation_id", (double)conversation);
	cJSON_AddNumberToObject(root, "agent_id", (double)agent);
	if (to_agent > 0)
		cJSON_AddNumberToObject(root, "to_agent", (double)to_agent);
	else
		cJSON_AddStringToObject(root, "to_domain", to_domain);
	cJSON_AddRawToObject(root, "client_id", client_id_json ? client_id_json : "null");
	cJSON_AddStringToObject(root, "request_id", request_id);
	cJSON_AddStringToObject(root, "requested_at", wire_iso(at_ms, at));
	return wire_print(root);
}

static cJSON *wire_envelope(const char *type, long company, cJSON **data)
{
	cJSON *root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "type", type);
	cJSON_AddNumberToObject(root, "company_id", (double)company);
	*data = cJSON_AddObjectToObject(root, "data");
	return root;
}

static char *wire_print(cJSON *root)
{
	char *s = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return s;
}

/* A non-negative integral number member. */
static bool wire_long(const cJSON *o, const char *name, long *out)
{
	const cJSON *v = cJSON_GetObjectItem(o, name);
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble != (double)(long)v->valuedouble)
		return false;
	*out = (long)v->valuedouble;
	return true;
}
