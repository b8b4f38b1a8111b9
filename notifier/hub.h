/*
 * hub: the notifier's routing core, free of I/O. Channels map to subscribers (opaque
 * connection pointers); published events are kept in a bounded history ring so a
 * reconnecting client can be given exactly what it missed. An event's seq is its
 * Kafka offset in the company's partition of atende.events, so every notifier instance
 * gives the same event the same seq.
 */
#ifndef ATENDE_HUB_H
#define ATENDE_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hub hub_t;

/* Writes one frame to one subscriber. */
typedef void (*hub_deliver_fn)(void *conn, const char *frame, size_t len, void *arg);

hub_t *hub_new(size_t history, long long epoch);
void hub_free(hub_t *h);
long long hub_epoch(const hub_t *h);

void hub_subscribe(hub_t *h, const char *channel, void *conn);
void hub_unsubscribe(hub_t *h, const char *channel, void *conn);
int hub_subscriber_count(const hub_t *h, const char *channel);

/* The history starts at offset `first` of partition p (what was read at start-up). */
void hub_set_start(hub_t *h, int32_t partition, int64_t first);

/* Records an event and delivers it to every subscriber of each channel. data_json is
 * the event's data object as JSON text (copied). Returns the number of deliveries. */
size_t hub_publish(hub_t *h, int32_t partition, int64_t seq, const char *type, const char *const *channels, int n_channels,
		   const char *data_json, hub_deliver_fn deliver, void *arg);

/* Delivers to conn, in order, every event of channel with seq > since held in the
 * history of partition p. Returns false (delivering nothing) when the history no
 * longer reaches back to since: the caller must tell the client to reset. */
bool hub_replay(hub_t *h, const char *channel, int32_t partition, int64_t since, void *conn, hub_deliver_fn deliver,
		void *arg);

/* Changes every time a frame is formatted for delivery: a deliver callback seeing the same value
 * gets the same bytes. */
uint64_t hub_frame_gen(const hub_t *h);

/* Highest seq seen on a partition (-1 if none). */
int64_t hub_last_seq(const hub_t *h, int32_t partition);

/* Formats a frame; returns its length (truncates to cap-1 like snprintf). */
size_t hub_frame(char *buf, size_t cap, const char *type, const char *channel, int64_t seq, long long epoch,
		 const char *data_json);

#endif
