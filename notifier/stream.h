/*
 * stream: the notifier's side of atende.events. Reads every partition into the hub (each
 * event to its channels), rebuilds the presence union from every instance's presence
 * messages, notices events the broker dropped (consoles of that partition get reset), learns
 * which company each conversation belongs to (for tenancy), and publishes this instance's
 * presence and typing.
 */
#ifndef ATENDE_STREAM_H
#define ATENDE_STREAM_H

#include "conn.h"

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Assigns every partition of the events topic from (at most) history_events back, so the
 * resume history and presence are warm even right after a restart. Blocking: start-up only.
 * False with err when the topic's metadata or offsets cannot be had. */
bool stream_assign_all(char *err, size_t errlen) __attribute__((warn_unused_result));

/* The consumer's on_message: one event of atende.events (msg is destroyed here). */
void stream_on_event(rd_kafka_message_t *msg, void *arg);

/* Publishes json (an event as event.c wrote it; taken, may be NULL) to the company's
 * partition of atende.events; false if not queued (logged and counted). */
bool stream_publish(long company, const char *type, char *json);

/* Counts (join) or uncounts a WebSocket as a presence tab of its agent; the first tab and the
 * last one are published. */
void stream_tab(conn_t *c, bool join);

/* A typing state ended without a stop from its console (arg: the reason, "expired" or
 * "disconnected"): publishes the stop. A typing_ended_fn. */
void stream_typing_ended(int64_t conversation, long agent, long company, void *arg);

/* The heartbeat: republishes this instance's presence and the expiry of silent instances. */
void stream_heartbeat(void);

/* The company of a conversation an event was seen of, -1 if none. */
long stream_conversation_company(int64_t conversation);

/* Sends c the whole online list of company on channel, at seq. */
void stream_send_presence_list(conn_t *c, const char *channel, long company, int64_t seq);

void stream_free(void);

#endif
