/*
 * ops: the consoles' ops (see ops.h).
 */
#include "ops.h"

#include "event.h"
#include "hub.h"
#include "json.h"
#include "log.h"
#include "notifier.h"
#include "stream.h"
#include "wire.h"
#include "xalloc.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPS_MAX_REPLY_CHARS 4096  /* WhatsApp's limit for a text message */
#define OPS_MAX_SEQ 9007199254740992LL /* 2^53: the largest integer a JSON number keeps exactly */

/* An outbound message (reply, transfer) whose broker acknowledgement the op's ack waits for. */
typedef struct {
	conn_t *conn;
	char *id_json;
	const char *op;
	char request_id[96];
} ops_pending_t;

static uint64_t ops_request_seq;

static ops_pending_t *ops_pending_new(void);
static void ops_subscribe(conn_t *c, const cJSON *msg, const char *id_json);
static void ops_unsubscribe(conn_t *c, const cJSON *msg, const char *id_json);
static bool ops_conversation(conn_t *c, const cJSON *msg, const char *id_json, const char *op, int64_t *conv);
static void ops_typing(conn_t *c, const cJSON *msg, const char *id_json);
static void ops_produce_outbound(conn_t *c, const char *id_json, const char *op, int64_t conv, char *json,
				 ops_pending_t *p);
static void ops_reply(conn_t *c, const cJSON *msg, const char *id_json);
static void ops_transfer(conn_t *c, const cJSON *msg, const char *id_json);
static void ops_status_change(conn_t *c, const cJSON *msg, const char *id_json, const char *op);

/* One op from a console; every op gets an ack or an error frame. */
void ops_dispatch(conn_t *c, const char *data, size_t len)
{
	cJSON *msg = cJSON_ParseWithLength(data, len);
	const cJSON *op = cJSON_GetObjectItem(msg, "op");
	char *id_json = NULL;
	if (cJSON_GetObjectItem(msg, "id"))
		id_json = cJSON_PrintUnformatted(cJSON_GetObjectItem(msg, "id"));
	char agent_key[48];
	/* one bucket per agent, not per connection or token: each POST /op is a connection of its own,
	 * and each login mints a new token, so either would hand a script a fresh burst at will */
	snprintf(agent_key, sizeof(agent_key), "%ld:%ld", c->claims.company, c->claims.agent);
	if (!guard_counts_take(N.ops_rate, agent_key, N.cfg.notifier.ops_per_second,
			       2.0 * N.cfg.notifier.ops_per_second, ntf_now_ms())) {
		char why[96];
		N.n_rate_limited++;
		snprintf(why, sizeof(why), "rate limit: at most %d ops per second", N.cfg.notifier.ops_per_second);
		if (c->op_request) {
			/* ops_per_second is at least 1: a token is back within a second */
			http_response_add_header(c->req, "Retry-After", "1");
			c->op_status = 429;
		}
		conn_send_error(c, id_json, cJSON_IsString(op) ? op->valuestring : NULL, why);
	} else if (!msg || !cJSON_IsObject(msg)) {
		conn_send_error(c, NULL, NULL, "frame is not a JSON object");
	} else if (!cJSON_IsString(op)) {
		conn_send_error(c, id_json, NULL, "missing field: op");
	} else if (c->op_request && (strcmp(op->valuestring, "subscribe") == 0 || strcmp(op->valuestring, "unsubscribe") == 0)) {
		conn_send_error(c, id_json, op->valuestring, "over HTTP, read channels with GET /poll");
	} else if (strcmp(op->valuestring, "subscribe") == 0) {
		ops_subscribe(c, msg, id_json);
	} else if (strcmp(op->valuestring, "unsubscribe") == 0) {
		ops_unsubscribe(c, msg, id_json);
	} else if (strcmp(op->valuestring, "typing") == 0) {
		ops_typing(c, msg, id_json);
	} else if (strcmp(op->valuestring, "reply") == 0) {
		ops_reply(c, msg, id_json);
	} else if (strcmp(op->valuestring, "transfer") == 0) {
		ops_transfer(c, msg, id_json);
	} else if (strcmp(op->valuestring, "resolve") == 0 || strcmp(op->valuestring, "reopen") == 0 ||
		   strcmp(op->valuestring, "pending") == 0) {
		/* a literal: the ack that names the op is sent after msg is gone */
		ops_status_change(c, msg, id_json, strcmp(op->valuestring, "resolve") == 0 ? "resolve"
						   : strcmp(op->valuestring, "reopen") == 0 ? "reopen" : "pending");
	} else {
		conn_send_error(c, id_json, op->valuestring,
				"unknown op (subscribe, unsubscribe, typing, reply, transfer, resolve, reopen, pending)");
	}
	free(id_json);
	cJSON_Delete(msg);
}

/* Which company a channel belongs to, if claims may subscribe to it; -1 with a reason
 * otherwise. Tenancy: nobody sees another company's anything. */
long ops_channel_company(const token_claims_t *claims, const char *channel, char *why, size_t whylen)
{
	const char *colon = strchr(channel, ':');
	long id = 0;
	/* the canonical form only (type:digits, no sign, space or leading zero): a channel is
	 * matched by its exact text, so "company: 1" would be accepted and never hear anything */
	size_t digits = colon ? strspn(colon + 1, "0123456789") : 0;
	if (colon && digits > 0 && digits <= 15 && colon[1] != '0' && colon[1 + digits] == '\0')
		id = strtol(colon + 1, NULL, 10);
	if (!id || strlen(channel) > 64) {
		snprintf(why, whylen, "bad channel \"%.64s\" (agent:A, conversation:ID, company:C or presence:C)", channel);
		return -1;
	}
	size_t plen = (size_t)(colon - channel);
	if ((plen == 7 && strncmp(channel, "company", 7) == 0) || (plen == 8 && strncmp(channel, "presence", 8) == 0)) {
		if (id != claims->company) {
			snprintf(why, whylen, "channel %s belongs to another company", channel);
			return -1;
		}
		return id;
	}
	if (plen == 5 && strncmp(channel, "agent", 5) == 0) {
		if (id == claims->agent)
			return claims->company;
		const cfg_company_t *co = cfg_company_find(&N.cfg, claims->company);
		if (strcmp(claims->role, "supervisor") == 0 && co && id >= co->agent_first && id <= co->agent_last)
			return claims->company;
		snprintf(why, whylen, "%s", strcmp(claims->role, "supervisor") == 0 ? "agent is not in your company"
									 : "agents may subscribe only to their own agent channel");
		return -1;
	}
	if (plen == 12 && strncmp(channel, "conversation", 12) == 0) {
		if (stream_conversation_company(id) == claims->company)
			return claims->company;
		snprintf(why, whylen, "conversation %ld is not known in your company", id);
		return -1;
	}
	snprintf(why, whylen, "unknown channel type in \"%s\"", channel);
	return -1;
}

void ops_on_delivery(void *opaque, rd_kafka_resp_err_t err, int32_t partition, int64_t offset, void *arg)
{
	ops_pending_t *p = opaque;
	(void)partition, (void)offset, (void)arg;
	if (err) {
		N.n_produce_errors++;
		log_error("%s not delivered: %s", p ? p->op : "presence/typing event", rd_kafka_err2str(err));
	}
	if (!p)
		return;
	if (!p->conn->gone) {
		if (err) {
			conn_send_error(p->conn, p->id_json, p->op, "not delivered (broker unavailable); try again");
		} else {
			char extra[160];
			snprintf(extra, sizeof(extra), ",\"request_id\":\"%s\"", p->request_id);
			conn_send_ack(p->conn, p->id_json, p->op, extra);
		}
	}
	conn_unref(p->conn);
	free(p->id_json);
	free(p);
}

static void ops_subscribe(conn_t *c, const cJSON *msg, const char *id_json)
{
	const cJSON *ch = cJSON_GetObjectItem(msg, "channel");
	const cJSON *since = cJSON_GetObjectItem(msg, "since"), *epoch = cJSON_GetObjectItem(msg, "epoch");
	char why[160], frame[512];
	if (!cJSON_IsString(ch)) {
		conn_send_error(c, id_json, "subscribe", "missing field: channel");
		return;
	}
	long company = ops_channel_company(&c->claims, ch->valuestring, why, sizeof(why));
	if (company < 0) {
		conn_send_error(c, id_json, "subscribe", why);
		return;
	}
	int32_t partition = (int32_t)(company % N.partitions);
	bool already = false;
	for (int i = 0; i < c->n_channels; i++)
		already |= strcmp(c->channels[i], ch->valuestring) == 0;
	if (!already) {
		if (c->n_channels == CONN_MAX_SUBSCRIPTIONS) {
			conn_send_error(c, id_json, "subscribe", "too many subscriptions on one connection");
			return;
		}
		c->partitions[c->n_channels] = partition;
		c->channels[c->n_channels++] = xstrdup(ch->valuestring);
		hub_subscribe(N.hub, ch->valuestring, c);
	}
	int64_t last = hub_last_seq(N.hub, partition);
	snprintf(frame, sizeof(frame), "{\"type\":\"ack\",\"op\":\"subscribe\",\"id\":%s,\"channel\":\"%s\",\"seq\":%lld,\"epoch\":%lld}",
		 id_json ? id_json : "null", ch->valuestring, (long long)last, hub_epoch(N.hub));
	conn_send(c, frame, strlen(frame));
	if (since && !cJSON_IsNull(since)) {
		const char *reason = NULL;
		long long since_seq, epoch_id = 0;
		bool has_epoch = epoch && !cJSON_IsNull(epoch);
		/* a seq or epoch no notifier ever handed out (negative, fractional, 1e300) cannot be
		 * resumed from: the console reloads, as after any other gap */
		if (!json_int_in(since, -1, OPS_MAX_SEQ, &since_seq) || (has_epoch && !json_int_in(epoch, 0, OPS_MAX_SEQ, &epoch_id)))
			reason = "since and epoch must be integers the notifier handed out";
		else if (has_epoch && epoch_id != hub_epoch(N.hub))
			reason = "epoch changed: the event stream was reset";
		else if (!hub_replay(N.hub, ch->valuestring, partition, since_seq, c, conn_deliver, NULL))
			reason = "history no longer covers the requested seq";
		if (reason) {
			char *data = evt_reset_data(reason);
			size_t n = hub_frame(frame, sizeof(frame), "reset", ch->valuestring, last, hub_epoch(N.hub), data);
			conn_send(c, frame, n);
			free(data);
		}
	}
	if (strncmp(ch->valuestring, "presence:", 9) == 0)
		stream_send_presence_list(c, ch->valuestring, company, last);
}

static void ops_unsubscribe(conn_t *c, const cJSON *msg, const char *id_json)
{
	const cJSON *ch = cJSON_GetObjectItem(msg, "channel");
	char frame[256];
	if (!cJSON_IsString(ch)) {
		conn_send_error(c, id_json, "unsubscribe", "missing field: channel");
		return;
	}
	for (int i = 0; i < c->n_channels; i++)
		if (strcmp(c->channels[i], ch->valuestring) == 0) {
			hub_unsubscribe(N.hub, c->channels[i], c);
			free(c->channels[i]);
			c->channels[i] = c->channels[--c->n_channels];
			c->partitions[i] = c->partitions[c->n_channels];
			break;
		}
	snprintf(frame, sizeof(frame), "{\"type\":\"ack\",\"op\":\"unsubscribe\",\"id\":%s,\"channel\":\"%.100s\"}",
		 id_json ? id_json : "null", ch->valuestring);
	conn_send(c, frame, strlen(frame));
}

/* The op's conversation, which must be one of the token's company (learned from events). */
static bool ops_conversation(conn_t *c, const cJSON *msg, const char *id_json, const char *op, int64_t *conv)
{
	const cJSON *v = cJSON_GetObjectItem(msg, "conversation");
	char why[128];
	long long id;
	if (!json_int_in(v, 1, OPS_MAX_SEQ, &id)) {
		conn_send_error(c, id_json, op, "missing field: conversation (a conversation id)");
		return false;
	}
	*conv = id;
	if (stream_conversation_company(*conv) != c->claims.company) {
		snprintf(why, sizeof(why), "conversation %lld is not known in your company", (long long)*conv);
		conn_send_error(c, id_json, op, why);
		return false;
	}
	return true;
}

/* {"op":"typing","conversation":V,"state":"start"|"stop"}: published to atende.events, where
 * consoles (conversation:V) and workers (coaching) read it. A start lasts typing_ttl_s unless
 * repeated; this instance publishes the stop if none comes. */
static void ops_typing(conn_t *c, const cJSON *msg, const char *id_json)
{
	const cJSON *state = cJSON_GetObjectItem(msg, "state");
	int64_t conv;
	if (!ops_conversation(c, msg, id_json, "typing", &conv))
		return;
	bool start = cJSON_IsString(state) && strcmp(state->valuestring, "start") == 0;
	if (!start && !(cJSON_IsString(state) && strcmp(state->valuestring, "stop") == 0)) {
		conn_send_error(c, id_json, "typing", "state must be \"start\" or \"stop\"");
		return;
	}
	long long now = ntf_now_ms(), expires = start ? now + N.cfg.notifier.typing_ttl_s * 1000LL : now;
	if (start) /* a POST /op has no connection whose end would stop it: only the expiry does */
		typing_start(N.typing, conv, c->claims.agent, c->claims.company, c->op_request ? NULL : c, expires);
	else
		typing_stop(N.typing, conv, c->claims.agent);
	N.n_typing++;
	evt_typing_t t = {.conversation_id = conv, .agent_id = c->claims.agent, .company_id = c->claims.company,
			  .start = start, .expires_ms = expires, .instance = N.instance};
	if (!stream_publish(c->claims.company, "typing", evt_typing(&t, NULL))) {
		conn_send_error(c, id_json, "typing", "could not publish (broker unavailable)");
		return;
	}
	char at[32], extra[64];
	snprintf(extra, sizeof(extra), ",\"expires_at\":\"%s\"", json_iso_ms(expires, at));
	conn_send_ack(c, id_json, "typing", extra);
}

/* Queues an outbound message whose op is acked (or refused) on the broker's report. */
static void ops_produce_outbound(conn_t *c, const char *id_json, const char *op, int64_t conv, char *json,
				 ops_pending_t *p)
{
	char key[24], company[24], err[256];
	snprintf(key, sizeof(key), "%lld", (long long)conv);
	snprintf(company, sizeof(company), "%ld", c->claims.company);
	rd_kafka_headers_t *h = rd_kafka_headers_new(2);
	rd_kafka_header_add(h, "type", -1, op, -1);
	rd_kafka_header_add(h, "company", -1, company, -1);
	p->conn = c;
	p->id_json = id_json ? xstrdup(id_json) : NULL;
	p->op = op;
	if (!kq_produce(N.producer, N.outbound_topic, key, strlen(key), json, strlen(json), h, p, err, sizeof(err))) {
		N.n_produce_errors++;
		log_error("%s of agent %ld for conversation %lld not queued: %s", op, c->claims.agent, (long long)conv, err);
		conn_send_error(c, id_json, op, "could not queue the message (broker unavailable)");
		free(p->id_json);
		free(p);
	} else {
		c->refs++;
	}
	free(json);
}

/* {"op":"reply","conversation":V,"text":T}: to atende.outbound for a worker to send and store.
 * {"op":"reply","conversation":V,"media":U[,"text":caption]}: the upload U (POST
 * /v1/conversations/V/media) sent as an image or document, T its caption; the worker checks
 * that U is of this company and conversation. */
static void ops_reply(conn_t *c, const cJSON *msg, const char *id_json)
{
	const cJSON *text = cJSON_GetObjectItem(msg, "text"), *media = cJSON_GetObjectItem(msg, "media");
	int64_t conv;
	long long upload = 0;
	if (!ops_conversation(c, msg, id_json, "reply", &conv))
		return;
	if (media && !json_int_in(media, 1, OPS_MAX_SEQ, &upload)) {
		conn_send_error(c, id_json, "reply", "media must be an upload's id (POST /v1/conversations/ID/media)");
		return;
	}
	if (upload && text && !cJSON_IsString(text)) {
		conn_send_error(c, id_json, "reply", "text (the caption) must be a string");
		return;
	}
	if (!upload && (!cJSON_IsString(text) || strspn(text->valuestring, " \t\r\n") == strlen(text->valuestring))) {
		conn_send_error(c, id_json, "reply", "missing field: text (not blank)");
		return;
	}
	const char *t = cJSON_IsString(text) ? text->valuestring : "";
	size_t chars = 0;
	for (const unsigned char *s = (const unsigned char *)t; *s; s++)
		chars += (*s & 0xC0) != 0x80;
	if (chars > OPS_MAX_REPLY_CHARS) {
		conn_send_error(c, id_json, "reply", "text is longer than 4096 characters");
		return;
	}
	ops_pending_t *p = ops_pending_new();
	N.n_replies++;
	ops_produce_outbound(c, id_json, "reply", conv,
			     wire_reply(c->claims.company, conv, c->claims.agent, t, upload, id_json, p->request_id,
					ntf_now_ms()),
			     p);
}

/* {"op":"transfer","conversation":V,"to_agent":A} or {...,"to_domain":D}: to atende.outbound. */
static void ops_transfer(conn_t *c, const cJSON *msg, const char *id_json)
{
	const cJSON *to_agent = cJSON_GetObjectItem(msg, "to_agent"), *to_domain = cJSON_GetObjectItem(msg, "to_domain");
	int64_t conv;
	char why[160];
	if (!ops_conversation(c, msg, id_json, "transfer", &conv))
		return;
	if ((to_agent != NULL) == (to_domain != NULL)) {
		conn_send_error(c, id_json, "transfer", "give exactly one of to_agent or to_domain");
		return;
	}
	long agent = 0;
	if (to_agent) {
		long long id;
		if (!json_int_in(to_agent, 1, OPS_MAX_SEQ, &id)) {
			conn_send_error(c, id_json, "transfer", "to_agent must be an agent id");
			return;
		}
		agent = (long)id;
		const cfg_company_t *co = cfg_company_find(&N.cfg, c->claims.company);
		if (co && (agent < co->agent_first || agent > co->agent_last)) {
			snprintf(why, sizeof(why), "agent %ld is not in your company", agent);
			conn_send_error(c, id_json, "transfer", why);
			return;
		}
	} else if (!cJSON_IsString(to_domain) || cfg_domain_index(to_domain->valuestring) < 0) {
		conn_send_error(c, id_json, "transfer",
			       "to_domain must be one of financeiro, comercial, suporte, ouvidoria, cancelamento");
		return;
	}
	ops_pending_t *p = ops_pending_new();
	N.n_transfers++;
	ops_produce_outbound(c, id_json, "transfer", conv,
			     wire_transfer(c->claims.company, conv, c->claims.agent, agent,
					   to_domain ? to_domain->valuestring : NULL, id_json, p->request_id, ntf_now_ms()),
			     p);
}

/* {"op":"resolve"|"reopen"|"pending","conversation":V}: to atende.outbound, where a worker applies
 * it once and publishes the conversation event (or an error event when refused). */
static void ops_status_change(conn_t *c, const cJSON *msg, const char *id_json, const char *op)
{
	int64_t conv;
	if (!ops_conversation(c, msg, id_json, op, &conv))
		return;
	ops_pending_t *p = ops_pending_new();
	N.n_status_changes++;
	ops_produce_outbound(c, id_json, op, conv,
			     wire_status_change(op, c->claims.company, conv, c->claims.agent, c->claims.role, id_json,
						p->request_id, ntf_now_ms()),
			     p);
}

/* A pending outbound message with a request id unique to this instance. */
static ops_pending_t *ops_pending_new(void)
{
	ops_pending_t *p = xcalloc(1, sizeof(*p));
	snprintf(p->request_id, sizeof(p->request_id), "%s-%llu", N.instance, (unsigned long long)++ops_request_seq);
	return p;
}
