/*
 * wire: the notifier's agent actions on atende.outbound, for the workers (what it writes to
 * atende.events is common/event.h's). Pure functions; every char * returned is malloc'd and
 * the caller's.
 *
 * atende.outbound, key = conversation id (default partitioner), headers type, company:
 *   {"type":"reply","company_id":C,"conversation_id":V,"agent_id":A,"text":T,["media":U,]
 *    "client_id":<op id>,"request_id":"<instance>-<n>","requested_at":ISO}
 *   (media: a media_uploads id, the file sent with T as its caption; T may then be "")
 *   {"type":"transfer","company_id":C,"conversation_id":V,"agent_id":A,"to_agent":B | "to_domain":D,
 *    "client_id":<op id>,"request_id":"<instance>-<n>","requested_at":ISO}
 *   {"type":"resolve"|"reopen"|"pending","company_id":C,"conversation_id":V,"agent_id":A,
 *    "role":"agent"|"supervisor","client_id":<op id>,"request_id":"<instance>-<n>","requested_at":ISO}
 * A reply carries no role, a status change only agent or supervisor: role "bot" and "system"
 * (replies the workers write themselves, worker/outbound.h) can never come from a console.
 */
#ifndef ATENDE_WIRE_H
#define ATENDE_WIRE_H

#include <stdint.h>

/* client_id_json: the op's id as JSON text, or NULL (null). request_id: unique. media: an
 * upload's id, 0 for a text reply. */
char *wire_reply(long company, int64_t conversation, long agent, const char *text, long long media,
		 const char *client_id_json, const char *request_id, long long at_ms);
/* to_agent > 0, or to_domain non-NULL. */
char *wire_transfer(long company, int64_t conversation, long agent, long to_agent, const char *to_domain,
		    const char *client_id_json, const char *request_id, long long at_ms);
/* type: "resolve", "reopen" or "pending"; role: the requester's (the history says who changed it). */
char *wire_status_change(const char *type, long company, int64_t conversation, long agent, const char *role,
			 const char *client_id_json, const char *request_id, long long at_ms);

#endif
