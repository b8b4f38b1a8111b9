/*
 * guard: the notifier's protections as pure state: token buckets (ops per second, with a
 * burst) and connection counts, both per key (an agent, a token), so one leaked token or one
 * runaway script cannot take the whole server. No I/O, the caller's clock.
 */
#ifndef ATENDE_GUARD_H
#define ATENDE_GUARD_H

#include <stdbool.h>

/* A token bucket; zero it to start full at the first take. */
typedef struct {
	double tokens;
	long long last_ms; /* 0 = never used */
} guard_bucket_t;

/* Takes one token if there is one: refills rate_per_s tokens per second up to burst. */
bool guard_take(guard_bucket_t *b, double rate_per_s, double burst, long long now_ms) __attribute__((warn_unused_result));

typedef struct guard_counts guard_counts_t;

guard_counts_t *guard_counts_new(void);
void guard_counts_free(guard_counts_t *g);

/* Adds delta to key's count and returns the new count; a key at 0 is forgotten. */
int guard_counts_add(guard_counts_t *g, const char *key, int delta);
int guard_counts_get(const guard_counts_t *g, const char *key);
/* Keys currently counted (with a connection or a bucket still in use). */
int guard_counts_keys(const guard_counts_t *g);

/* guard_take on key's own bucket, created full at its first take: every caller with the same
 * key (every connection of one agent, whatever its transport) draws from one bucket. */
bool guard_counts_take(guard_counts_t *g, const char *key, double rate_per_s, double burst, long long now_ms)
	__attribute__((warn_unused_result));

/* Forgets the keys at count 0 whose bucket has refilled to burst by now_ms: such a bucket is
 * the same as a fresh one, so the table holds only keys taken from in the last burst/rate
 * seconds (plus those with connections). Returns how many were forgotten. */
int guard_counts_evict_idle(guard_counts_t *g, double rate_per_s, double burst, long long now_ms);

#endif
