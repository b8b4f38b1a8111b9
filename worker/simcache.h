/*
 * simcache: the trigram side of the hint cache, in the worker's memory. Per company and
 * domain, a bounded ring of recent cached hints (hint_cache rows: the normalized text, the
 * hint id, intent, critical flag and text) searched by pg_trgm's similarity, computed the
 * way pg_trgm computes it for the [a-z0-9 ] texts rules_cache_key makes, so a hit here is
 * a hit there. Pure and clock-free: the worker loads the rings from PostgreSQL and adds
 * the hints it caches; PostgreSQL stays the authority (a miss here is asked there).
 */
#ifndef ATENDE_SIMCACHE_H
#define ATENDE_SIMCACHE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct simcache simcache_t;

/* What a lookup found; the strings stay valid until the next put or free. */
typedef struct {
	int64_t hint_id;
	const char *intent;
	bool critical;
	const char *text;
	double similarity; /* 1 for the same text */
} simcache_hit_t;

/* An empty cache whose rings hold at most ring_cap entries each (>= 1). */
simcache_t *simcache_new(int ring_cap);
void simcache_free(simcache_t *s);

/* Remembers norm's hint for company and domain: replaces the entry of the same text (a
 * refreshed hint_cache row), else takes the place of the ring's oldest when it is full. */
void simcache_put(simcache_t *s, long company, const char *domain, const char *norm, int64_t hint_id,
		  const char *intent, bool critical, const char *text, double created_at);

/* The entry of company and domain created after not_before whose text is norm, else the
 * one most similar to it at >= threshold (the newest among equals), into *hit. False when
 * there is none. */
bool simcache_find(const simcache_t *s, long company, const char *domain, const char *norm, double threshold,
		   double not_before, simcache_hit_t *hit);

/* Entries kept, all rings together. */
int simcache_size(const simcache_t *s);

/* pg_trgm's similarity(a, b): shared trigrams over all trigrams of the two, each word
 * padded with two spaces before and one after; 0 when either has none. */
float simcache_similarity(const char *a, const char *b);

#endif
