/*
 * guard: token bucket and a chained hash of key -> count (see guard.h).
 */
#include "guard.h"
#include "xalloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define GUARD_BUCKETS 4096

typedef struct gc_node {
	struct gc_node *next;
	int count;
	char key[];
} gc_node_t;

struct guard_counts {
	gc_node_t *b[GUARD_BUCKETS];
	int keys;
};

static uint64_t guard_hash(const char *s);

bool guard_take(guard_bucket_t *b, double rate_per_s, double burst, long long now_ms)
{
	if (b->last_ms == 0) {
		b->tokens = burst;
		b->last_ms = now_ms;
	} else if (now_ms > b->last_ms) {
		b->tokens += (double)(now_ms - b->last_ms) * rate_per_s / 1000.0;
		if (b->tokens > burst)
			b->tokens = burst;
		b->last_ms = now_ms;
	}
	if (b->tokens < 1.0)
		return false;
	b->tokens -= 1.0;
	return true;
}

guard_counts_t *guard_counts_new(void)
{
	return xcalloc(1, sizeof(guard_counts_t));
}

void guard_counts_free(guard_counts_t *g)
{
	if (!g)
		return;
	for (int i = 0; i < GUARD_BUCKETS; i++)
		for (gc_node_t *n = g->b[i], *next; n; n = next) {
			next = n->next;
			free(n);
		}
	free(g);
}

int guard_counts_add(guard_counts_t *g, const char *key, int delta)
{
	gc_node_t **pp = &g->b[guard_hash(key) % GUARD_BUCKETS];
	for (; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->key, key) == 0)
			break;
	if (!*pp) {
		if (delta <= 0)
			return 0;
		size_t kl = strlen(key) + 1;
		gc_node_t *n = xcalloc(1, sizeof(*n) + kl);
		memcpy(n->key, key, kl);
		*pp = n;
		g->keys++;
	}
	gc_node_t *n = *pp;
	n->count += delta;
	if (n->count > 0)
		return n->count;
	*pp = n->next;
	free(n);
	g->keys--;
	return 0;
}

int guard_counts_get(const guard_counts_t *g, const char *key)
{
	for (gc_node_t *n = g->b[guard_hash(key) % GUARD_BUCKETS]; n; n = n->next)
		if (strcmp(n->key, key) == 0)
			return n->count;
	return 0;
}

int guard_counts_keys(const guard_counts_t *g)
{
	return g->keys;
}

static uint64_t guard_hash(const char *s)
{
	uint64_t x = 1469598103934665603ULL;
	for (; *s; s++)
		x = (x ^ (unsigned char)*s) * 1099511628211ULL;
	return x;
}
