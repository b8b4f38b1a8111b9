/*
 * outbound: the workers' side of the consoles' replies, transfers, resolves and reopens
 * (atende.outbound, written by the notifier). A reply is sent to the conversation's
 * gateway (Evolution sendText, Cloud API messages, or an api channel's url) and stored as
 * an agent message; one naming an upload ("media": a media_uploads id, the text its caption)
 * goes to the media endpoint (Evolution sendMedia with the file in base64; Cloud API upload,
 * then messages with the id) and is stored as an image or document with its media row; a transfer changes the conversation's agent (and domain); a resolve or
 * reopen its status (schema/008_conversation_ops.sql). Every request is claimed in
 * PostgreSQL (outbound_requests, schema/005_outbound.sql) before anything leaves, so a
 * redelivered one is never sent or applied twice.
 * The workers write replies of their own to the same topic (bot mode, worker/bot.c):
 *   {"type":"reply","role":"bot","request_id":"bot:<deterministic>","company_id":C,
 *    "conversation_id":V,"agent_id":0,"text":T,"sender_name":N|absent,"client_id":null}
 * sent and stored like an agent's reply, with no requester: by_agent null, "by":"bot" in
 * its message event and in outbound_requests.by (schema/010_bot.sql), sender_name N
 * (default "Assistente virtual"). Role "system" is the same for other automatic messages.
 *
 * Events published (their payloads are common/event.h's), and to whom they are routed:
 *   message     reply stored (status "sent", or "not_sent" on an api channel without url; the
 *               sender_name is the requester's): to the conversation's agent.
 *   message     reply not stored (status "failed": the gateway refused it or was unreachable
 *               after outbound.retries; "unknown": the worker sending it died before the answer
 *               was recorded, so it is not sent again): to the requester.
 *   assignment  transfer applied: to the old and to the new agent (once when the same).
 *   conversation resolve or reopen applied (also when nothing changed, "changed": false): to
 *               the company's consoles and the conversation's agent; after a resolve, the
 *               queue handed out as assignment events ("reason": "queue") to their agents.
 *   error       request refused (conversation not of the requester's company, agent not an
 *               active agent of the company): to the requester.
 */
#ifndef ATENDE_OUTBOUND_H
#define ATENDE_OUTBOUND_H

#include "config.h"
#include "db.h"
#include "event.h"

#include <cJSON.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct outbound outbound_t;

/* The broker acknowledged (ok) or gave up on (!ok) one published event. */
typedef void (*outbound_acked_fn)(void *ctx, bool ok);

/* Publishes one event to atende.events (the worker's producer; event is only borrowed);
 * calls acked(ctx, ok) exactly once, possibly before returning. */
typedef void (*outbound_publish_fn)(const evt_t *event, outbound_acked_fn acked, void *ctx, void *arg);

/* The request is finished: ok when everything about it is durable (recorded, events
 * acknowledged), so its offset may be committed; !ok only for a request that can never
 * succeed (malformed, or the database kept refusing it): why says what, for the DLQ. */
typedef void (*outbound_done_fn)(void *token, bool ok, const char *why);

/* A handler on base, using db for its queries and cfg (read at each use, so reloads of
 * the outbound.* keys and the channels apply) for the gateways. NULL + err on failure. */
outbound_t *outbound_new(struct event_base *base, db_t *db, const cfg_t *cfg, outbound_publish_fn publish, void *arg,
			 char *err, size_t errlen);

/* Handles one consumed atende.outbound message (msg is not kept). done(token, …) is
 * called exactly once, never from inside this call. */
void outbound_handle(outbound_t *o, const cJSON *msg, outbound_done_fn done, void *token);

/* Requests being handled. */
int outbound_pending(const outbound_t *o);

/* Abandons what is under way (no done callbacks: those messages stay uncommitted and
 * are redelivered) and frees. Queries still pending on db are answered harmlessly later. */
void outbound_free(outbound_t *o);

#endif
