/*
 * wire: builds the notifier's atende.outbound messages with cJSON (see wire.h).
 */
#include "wire.h"

#include "json.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

static cJSON *wire_request(const char *type, long company, int64_t conversation, long agent);
static char *wire_finish(cJSON *root, const char *client_id_json, const char *request_id, long long at_ms);

char *wire_reply(long company, int64_t conversation, long agent, const char *text, long long media,
		 const char *client_id_json, const char *request_id, long long at_ms)
{
	cJSON *root = wire_request("reply", company, conversation, agent);
	cJSON_AddStringToObject(root, "text", text);
	if (media > 0)
		cJSON_AddNumberToObject(root, "media", (double)media);
	return wire_finish(root, client_id_json, request_id, at_ms);
}

char *wire_transfer(long company, int64_t conversation, long agent, long to_agent, const char *to_domain,
		    const char *client_id_json, const char *request_id, long long at_ms)
{
	cJSON *root = wire_request("transfer", company, conversation, agent);
	if (to_agent > 0)
		cJSON_AddNumberToObject(root, "to_agent", (double)to_agent);
	else
		cJSON_AddStringToObject(root, "to_domain", to_domain);
	return wire_finish(root, client_id_json, request_id, at_ms);
}

char *wire_status_change(const char *type, long company, int64_t conversation, long agent, const char *role,
			 const char *client_id_json, const char *request_id, long long at_ms)
{
	cJSON *root = wire_request(type, company, conversation, agent);
	/* the workers' own roles (bot, system) are never a console's: tokens only carry
	 * agent or supervisor, and anything else is written as agent */
	cJSON_AddStringToObject(root, "role", role && strcmp(role, "supervisor") == 0 ? "supervisor" : "agent");
	return wire_finish(root, client_id_json, request_id, at_ms);
}

/* What every request starts with: who asks what about which conversation. */
static cJSON *wire_request(const char *type, long company, int64_t conversation, long agent)
{
	cJSON *root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "type", type);
	cJSON_AddNumberToObject(root, "company_id", (double)company);
	cJSON_AddNumberToObject(root, "conversation_id", (double)conversation);
	cJSON_AddNumberToObject(root, "agent_id", (double)agent);
	return root;
}

/* What every request ends with (the op's id, ours, when), printed; root is freed. */
static char *wire_finish(cJSON *root, const char *client_id_json, const char *request_id, long long at_ms)
{
	char at[32];
	cJSON_AddRawToObject(root, "client_id", client_id_json ? client_id_json : "null");
	cJSON_AddStringToObject(root, "request_id", request_id);
	cJSON_AddStringToObject(root, "requested_at", json_iso_ms(at_ms, at));
	char *s = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return s;
}
