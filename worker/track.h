/*
 * track: per-partition bookkeeping of consumed messages, so offsets are committed only
 * up to the lowest message not yet fully handled. Slow work on one message never lets
 * a commit skip it, and a crash redelivers only unfinished work.
 */
#ifndef ATENDE_TRACK_H
#define ATENDE_TRACK_H

#include <stdbool.h>
#include <stdint.h>

typedef struct track track_t;
typedef struct track_item track_item_t;

track_t *track_new(void);
void track_free(track_t *t);

/* Registers a consumed message; returns the handle to pass to track_done exactly once. */
track_item_t *track_add(track_t *t, const char *topic, int32_t partition, int64_t offset);

/* The message is fully handled; the handle is invalid afterwards. */
void track_done(track_t *t, track_item_t *item);

/* Calls fn for every partition whose committable offset (next offset to read) moved
 * since the last call. */
void track_commits(track_t *t, void (*fn)(const char *topic, int32_t partition, int64_t next, void *arg), void *arg);

/* Calls fn for every partition with its current committable offset, moved or not. */
void track_all_positions(track_t *t, void (*fn)(const char *topic, int32_t partition, int64_t next, void *arg), void *arg);

/* The partition was taken away (rebalance): forget it. Handles of its unfinished
 * messages stay valid until track_done, which then only frees them. */
void track_revoke(track_t *t, const char *topic, int32_t partition);
void track_revoke_all(track_t *t);

/* Messages registered and not yet done (revoked ones included). */
int track_in_flight(const track_t *t);

#endif
