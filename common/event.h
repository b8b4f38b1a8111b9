/*
 * event: the atende.events contract in one place. Every event is written by one builder
 * here (canonical JSON, straight into a buffer) and read back by one parser here, so the
 * workers and the notifier that produce events, and the notifier and the workers that
 * consume them, cannot drift apart. Pure: no I/O, no clock.
 *
 * The envelope, one Kafka message of atende.events:
 *   {"type":T,"company_id":C,"conversation_id":V,"agent_id":A|null,"data":{...}}
 *   partition company_id % partitions (one ordered sequence per company), key = company id,
 *   headers `type` (T) and `company` (C) so kcat filters and the workers' typing reader
 *   need not parse the body. conversation_id and agent_id are left out of presence (it is
 *   about a company); agent_id null = nobody to route to. The notifier sends data to the
 *   consoles of company:C, agent:A and conversation:V (typing only to conversation:V;
 *   presence to presence:C as changes of the union, see below) as
 *   {"type":T,"channel":CH,"seq":S,"epoch":E,"data":{...}}.
 *
 * The payloads (ISO = "2024-05-01T12:00:00.000Z"; null where a field is unknown):
 *   message     {message_id (the gateway's id), db_id, conversation_id, conversation_key,
 *               company_id, agent_id, domain, channel, customer, sender_name, from_me, kind,
 *               text, [media {id, mime, size, name, status, error, duration_ms, kind}],
 *               [transcript], [update: true], created_at} (a console's reply with a file: kind
 *               image|document and its media); a console's reply adds {status (sent|not_sent|
 *               failed|unknown), [error], request_id, client_id, by_agent, attempts}, and one
 *               not stored has message_id and db_id null; a reply the workers wrote
 *               themselves (bot mode) has by_agent null and adds {by: "bot"}. Workers,
 *               after storing.
 *   hint        {message_ids (every message it covers), message_id (the last), hint_id,
 *               conversation_id, conversation_key, agent_id, company_id, domain, intent,
 *               critical, text, source (ai|rules|cache|fallback), from_cache, routed, model,
 *               created_at, received_at}. Workers, once stored. With ai.stream the AI's hint
 *               is also sent while the model writes it: the same payload with partial: true,
 *               the same hint_id the stored one will have, text the hint so far (growing, at
 *               most one event per 150 ms), intent null until the model has written it,
 *               source "ai", model and created_at null; not stored. The stored hint with that
 *               hint_id follows (no partial member: finals are written as before), whatever
 *               its source (a retry, the rules' fallback), and replaces it. When none will
 *               follow (the agent interval refused it at storage, the messages had a hint
 *               already, the worker stopped), a last partial event with withdrawn: true and
 *               text "" says so. Consoles show a partial hint being written.
 *   typing      {conversation_id, agent_id, company_id, state (start|stop), expires_at,
 *               instance, [reason (expired|disconnected)]}. Notifiers; read back by the
 *               notifiers (consoles) and every worker (coaching waits while an agent types).
 *   presence    an instance's report {agent_id, company_id, status (online|offline),
 *               instance, tabs, at}; its heartbeat every presence_heartbeat_s per company
 *               where it holds tabs {company_id, instance, heartbeat: true,
 *               agents: [{agent_id, tabs}], at}; the expiry of a silent instance's agent,
 *               published by a live one {agent_id, company_id, status "offline", instance,
 *               tabs 0, expired: true, last_seen (Unix ms), by, at}. Notifiers, read back by
 *               every notifier; consoles of presence:C get {agent_id, company_id, status} per
 *               change of the union, or {agents: [ids], company_id} (the whole list: after a
 *               subscribe, and when one message changed several agents).
 *   assignment  {request_id, client_id, conversation_id, conversation_key, company_id,
 *               channel, customer, from_agent, to_agent, agent_id, from_domain, domain,
 *               to_domain, by_agent, at, created_at, [reason, waited_ms]}. Workers (a transfer;
 *               written by atende_outbound_claim in schema/005_outbound.sql), routed to both
 *               agents; workers and notifiers when the queue is handed out (reason "queue":
 *               a resolve freed room, an agent came online), routed to the new agent.
 *   conversation {conversation_id, status (open|pending|resolved), agent_id, domain, by, at};
 *               a console's resolve or reopen adds {request_id, client_id, changed (false:
 *               it already was)}. Workers: a customer message that reopened it, or a
 *               console's op (atende_outbound_claim in schema/008_conversation_ops.sql).
 *   status      {message_id (ours), provider_id, conversation_id, status
 *               (pending|sent|delivered|read|failed), at, [error (failed: the gateway's
 *               reason)]}. Workers, when a gateway's delivery status moved a message atende
 *               sent forward (schema/009_delivery_status.sql), routed to the conversation's
 *               agent and its company.
 *   survey      {survey_id, conversation_id, company_id, agent_id, domain, kind (nps|csat),
 *               score, text, db_id (the answer's messages.id), at}: a customer's answer to the
 *               satisfaction survey, stored (the conversation stays resolved). Workers.
 *   reset       {reason}: never on Kafka; the notifier tells consoles their history is gone.
 *   error       {op, status "refused", error, request_id, client_id, conversation_id,
 *               company_id, agent_id, at, created_at}. Workers (a refused console request,
 *               also written by atende_outbound_claim), routed to the requester.
 * An event of a type not listed here is read as EVT_UNKNOWN and passed on untouched, so a
 * newer producer's events reach consoles through an older notifier.
 */
#ifndef ATENDE_EVENT_H
#define ATENDE_EVENT_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EVT_INSTANCE_MAX 64 /* longest notifier instance id in presence, with its NUL */

typedef enum {
	EVT_UNKNOWN,
	EVT_MESSAGE,
	EVT_HINT,
	EVT_TYPING,
	EVT_PRESENCE,
	EVT_ASSIGNMENT,
	EVT_CONVERSATION,
	EVT_STATUS,
	EVT_RESET,
	EVT_ERROR,
	EVT_SURVEY,
} evt_type_t;

/* Where an event goes: its company's partition, and the consoles' channels. 0 = none. */
typedef struct {
	long company;
	int64_t conversation;
	int64_t agent;
} evt_route_t;

/* In every payload struct: a string NULL is written as null (and read back as NULL), an id 0
 * as null; const cJSON * members are any JSON value written as is (NULL: null). */

typedef struct {
	const char *message_id;      /* the gateway's id */
	int64_t db_id;               /* messages.id */
	int64_t conversation_id;
	const char *conversation_key;
	long company_id;
	int64_t agent_id;            /* the conversation's agent */
	const char *domain, *channel, *customer, *sender_name;
	bool from_me;
	const char *kind, *text;
	const cJSON *media;          /* NULL: no media member */
	const char *transcript;      /* a voice note's words; NULL: no transcript member */
	bool update;                 /* true: a later state of a message already published (its media
					stored, its transcript); consoles replace it by db_id */
	const char *created_at;
	/* a console's reply: status NULL leaves these out */
	const char *status;
	const char *error;           /* NULL: no error member */
	const char *request_id;
	const cJSON *client_id;      /* the console op's id */
	int64_t by_agent;
	const char *by;              /* a worker's own reply ("bot"): who wrote it; NULL: no member */
	int attempts;
} evt_message_t;

typedef struct {
	const char *const *message_ids; /* oldest first; message_id is the last */
	int n_message_ids;
	int64_t hint_id, conversation_id;
	const char *conversation_key;
	int64_t agent_id;
	long company_id;
	const char *domain, *intent;
	bool critical;
	const char *text, *source;
	bool from_cache;
	const char *model, *created_at, *received_at;
	bool routed;                 /* source rules by choice: the rules were sure (ai.route_confident) */
	bool partial;                /* the hint as the model writes it (ai.stream): not stored; written only when true */
	bool withdrawn;              /* with partial: the hint of this hint_id will not come (written only when true) */
} evt_hint_t;

typedef struct {
	int64_t conversation_id, agent_id;
	long company_id;
	bool start;                  /* state "start", else "stop" */
	long long expires_ms;        /* Unix ms; 0 read back when absent */
	const char *instance;        /* the notifier instance that holds the state; may be NULL read back */
	const char *reason;          /* NULL: no reason member */
} evt_typing_t;

typedef enum { EVT_PRESENCE_REPORT, EVT_PRESENCE_HEARTBEAT, EVT_PRESENCE_EXPIRY } evt_presence_kind_t;

typedef struct {
	evt_presence_kind_t kind;
	long company_id;
	const char *instance;        /* report, heartbeat: the publisher; expiry: the silent one */
	long agent_id;               /* report, expiry */
	bool online;                 /* report */
	int tabs;                    /* report: tabs the instance now holds; expiry: 0 */
	const long *agents;          /* heartbeat: every agent the instance holds, with its tabs */
	const int *agent_tabs;
	int n_agents;
	long long last_seen_ms;      /* expiry */
	const char *by;              /* expiry: the live instance that publishes it */
	long long at_ms;             /* 0 read back when unreadable */
} evt_presence_t;

typedef struct {
	const char *request_id;
	const cJSON *client_id;
	int64_t conversation_id;
	const char *conversation_key;
	long company_id;
	const char *channel, *customer;
	int64_t from_agent, to_agent, agent_id;
	const char *from_domain, *domain, *to_domain;
	int64_t by_agent;
	const char *at, *created_at;
	const char *reason;          /* why it moved without a transfer ("queue"), NULL for a transfer */
	long long waited_ms;         /* with reason "queue": how long it waited for an agent */
} evt_assignment_t;

typedef struct {
	int64_t conversation_id;
	const char *status;
	int64_t agent_id;
	const char *domain, *by, *at;
} evt_conversation_t;

typedef struct {
	int64_t message_id;
	const char *provider_id;
	int64_t conversation_id;
	const char *status, *at;
	const char *error;           /* NULL: no error member */
} evt_status_t;

typedef struct {
	int64_t survey_id, conversation_id;
	long company_id;
	int64_t agent_id;
	const char *domain, *kind;
	int score;
	const char *text;
	int64_t db_id;
	const char *at;
} evt_survey_t;

typedef struct {
	const char *reason;
} evt_reset_t;

typedef struct {
	const char *op, *status, *error, *request_id;
	const cJSON *client_id;
	int64_t conversation_id;
	long company_id;
	int64_t agent_id;
	const char *at, *created_at;
} evt_error_t;

/* A parsed event. Strings and cJSON pointers point into the event's own tree: valid until
 * evt_free. */
typedef struct {
	evt_type_t type;
	const char *type_name;       /* as written, also for EVT_UNKNOWN */
	evt_route_t route;
	const cJSON *data;           /* the payload as read, for passing on */
	union {
		evt_message_t message;
		evt_hint_t hint;
		evt_typing_t typing;
		evt_presence_t presence;
		evt_assignment_t assignment;
		evt_conversation_t conversation;
		evt_status_t status;
		evt_reset_t reset;
		evt_error_t error;
		evt_survey_t survey;
	};
	cJSON *root;                 /* owned */
	void *owned[2];              /* arrays the parser allocated */
} evt_t;

/* The type's name ("message", ...); "unknown" for EVT_UNKNOWN. */
const char *evt_type_name(evt_type_t type);
/* The type named name; EVT_UNKNOWN when none. */
evt_type_t evt_type_of(const char *name);

/* ---- builders: the whole Kafka message, malloc'd and NUL-terminated (the caller frees it),
 * *len set unless len is NULL; NULL only when memory ran out. ---- */

char *evt_message(const evt_route_t *r, const evt_message_t *m, size_t *len);
char *evt_hint(const evt_route_t *r, const evt_hint_t *h, size_t *len);
/* Routed to the typing agent's conversation. */
char *evt_typing(const evt_typing_t *t, size_t *len);
/* Routed to the company alone. */
char *evt_presence(const evt_presence_t *p, size_t *len);
char *evt_assignment(const evt_route_t *r, const evt_assignment_t *a, size_t *len);
char *evt_conversation(const evt_route_t *r, const evt_conversation_t *c, size_t *len);
char *evt_status(const evt_route_t *r, const evt_status_t *s, size_t *len);
char *evt_reset(const evt_route_t *r, const evt_reset_t *s, size_t *len);
char *evt_error(const evt_route_t *r, const evt_error_t *e, size_t *len);
char *evt_survey(const evt_route_t *r, const evt_survey_t *s, size_t *len);

/* A parsed event written again, its data as read (events a worker keeps in PostgreSQL until
 * the broker has them). */
char *evt_write(const evt_t *e, size_t *len);

/* ---- data objects alone, for the notifier's frames to consoles (malloc'd) ---- */

/* The parsed event's data as JSON text. */
char *evt_data_json(const evt_t *e);
/* presence:C, one agent's change of the union. */
char *evt_presence_change_data(long company, long agent, bool online);
/* presence:C, the whole online list. */
char *evt_presence_list_data(long company, const long *agents, int n);
/* reset. */
char *evt_reset_data(const char *reason);

/* ---- the parser ---- */

/* Parses one Kafka message of atende.events into e: the envelope, and the payload of a known
 * type into its struct. False, with why (for the log) and e left needing no evt_free, when
 * the message is not an event or its payload lacks what its type requires. */
bool evt_parse(evt_t *e, const char *json, size_t len, char *why, size_t whylen) __attribute__((warn_unused_result));

/* The same for an event already parsed as cJSON (an event kept in PostgreSQL): root is taken,
 * and freed on failure. */
bool evt_parse_tree(evt_t *e, cJSON *root, char *why, size_t whylen) __attribute__((warn_unused_result));

void evt_free(evt_t *e);

#endif
