/*
 * wire: the JSON the notifier writes to Kafka (presence and typing to atende.events, agent
 * actions to atende.outbound) and reads back, in one place so the formats are documented
 * and tested once. Pure functions; every char * returned is malloc'd and the caller's.
 * The formats themselves are described in notifier/main.c's header comment.
 */
#ifndef ATENDE_WIRE_H
#define ATENDE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>


/* ISO 8601 UTC with milliseconds ("2024-05-01T12:00:00.000Z") of Unix time ms. */
const char *wire_iso(long long ms, char buf[32]);

/* A presence transition of one instance: status "online" | "offline", tabs it now holds. */
char *wire_presence(long company, long agent, bool online, const char *instance, int tabs, long long at_ms);
/* An instance's heartbeat for one company: every agent it holds there, with tab counts. */
char *wire_heartbeat(long company, const char *instance, const long *agents, const int *tabs, int n, long long at_ms);
/* Expiry of a silent instance's entry, published by instance `by`. */
char *wire_presence_expiry(long company, long agent, const char *instance, long long last_seen_ms, const char *by,
			   long long at_ms);

typedef enum { WIRE_PRESENCE_BAD, WIRE_PRESENCE_REPORT, WIRE_PRESENCE_HEARTBEAT, WIRE_PRESENCE_EXPIRY } wire_presence_kind_t;

/* A presence message's data, parsed. agents/tabs are malloc'd (heartbeat only; free both). */
typedef struct {
	wire_presence_kind_t kind;
	long company, agent;
	char instance[64];
	int tabs;
	long long last_seen_ms; /* expiry */
	long *agents;
	int *agent_tabs;
	int n_agents;
} wire_presence_t;

/* Parses the "data" object text of a presence message; kind WIRE_PRESENCE_BAD when invalid. */
void wire_presence_parse(const char *data_json, size_t len, wire_presence_t *out);
void wire_presence_free(wire_presence_t *p);

/* What consoles get on presence:C: one change, or the whole list (sent after a subscribe). */
char *wire_presence_change_data(long company, long agent, bool online);
char *wire_presence_list_data(long company, const long *agents, int n);

/* A typing event from instance; reason may be NULL ("expired", "disconnected"). */
char *wire_typing(long company, int64_t conversation, long agent, bool start, long long expires_ms, const char *instance,
		  const char *reason);

/* atende.outbound. client_id_json: the op's id as JSON text, or NULL (null). request_id: unique. */
char *wire_reply(long company, int64_t conversation, long agent, const char *text, const char *client_id_json,
		 const char *request_id, long long at_ms);
/* to_agent > 0, or to_domain non-NULL. */
char *wire_transfer(long company, int64_t conversation, long agent, long to_agent, const char *to_domain,
		    const char *client_id_json, const char *request_id, long long at_ms);

#endif
