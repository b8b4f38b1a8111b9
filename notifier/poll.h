/*
 * poll: the long-poll fallback's response, for networks that block WebSocket. A waiting
 * GET /poll collects the same frames a WebSocket subscriber of its channel would get, and
 * answers them in one JSON body with the seq to pass as `since` next time. Pure.
 */
#ifndef ATENDE_POLL_H
#define ATENDE_POLL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
	char *buf;  /* frames, comma separated */
	size_t len, cap;
	int n;      /* frames held */
} poll_batch_t;

/* Appends one frame (a JSON object as text). */
void poll_batch_add(poll_batch_t *b, const char *frame, size_t len);
void poll_batch_free(poll_batch_t *b);

/* {"channel":CH,"epoch":E,"seq":S,"events":[frames...]}: malloc'd, *len set. channel must be
 * JSON-safe (the caller validated it). */
char *poll_render(const poll_batch_t *b, const char *channel, long long epoch, int64_t seq, size_t *len);

/* Parses a decimal query value in [min, max]; false when empty, not a number or out of range. */
bool poll_parse_ll(const char *s, long long min, long long max, long long *out) __attribute__((warn_unused_result));

#endif
