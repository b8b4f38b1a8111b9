/*
 * guard: token bucket and a chained hash of key -> count and bucket (see guard.h).
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
	guard_bucket_t bucket;  /* last_ms 0: never taken from */
	char key[];
} gc_node_t;

struct guard_counts {
	gc_node_t *b[GUARD_BUCKETS];
	int keys;
};

static uint64_t guard_hash(const char *s);
static gc_node_t **guard_find(guard_counts_t *g, const char *key);
static gc_node_t *guard_node(guard_counts_t *g, const char *key);
static bool guard_idle(const gc_node_t *n, double rate_per_s, double burst, long long now_ms);

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
	gc_node_t **pp = guard_find(g, key);
	if (!*pp && delta <= 0)
		return 0;
	gc_node_t *n = *pp ? *pp : guard_node(g, key);
	n->count += delta;
	if (n->count > 0)
		return n->count;
	n->count = 0;
	if (n->bucket.last_ms != 0)
		return 0; /* its bucket is kept until guard_counts_evict_idle finds it full */
	*guard_find(g, key) = n->next;
	free(n);
	g->keys--;
	return 0;
}

bool guard_counts_take(guard_counts_t *g, const char *key, double rate_per_s, double burst, long long now_ms)
{
	gc_node_t *n = *guard_find(g, key);
	if (!n)
		n = guard_node(g, key);
	return guard_take(&n->bucket, rate_per_s, burst, now_ms);
}

int guard_counts_evict_idle(guard_counts_t *g, double rate_per_s, double burst, long long now_ms)
{
	int evicted = 0;
	for (int i = 0; i < GUARD_BUCKETS; i++)
		for (gc_node_t **pp = &g->b[i]; *pp;) {
			gc_node_t *n = *pp;
			if (n->count > 0 || !guard_idle(n, rate_per_s, burst, now_ms)) {
				pp = &n->next;
				continue;
			}
			*pp = n->next;
			free(n);
			g->keys--;
			evicted++;
		}
	return evicted;
}

/* Where key's node is, or where it would go (a NULL link at the end of its chain). */
static gc_node_t **guard_find(guard_counts_t *g, const char *key)
{
	gc_node_t **pp = &g->b[guard_hash(key) % GUARD_BUCKETS];
	while (*pp && strcmp((*pp)->key, key) != 0)
		pp = &(*pp)->next;
	return pp;
}

/* A new node for key (not in g yet), count 0 and bucket unused. */
static gc_node_t *guard_node(guard_counts_t *g, const char *key)
{
	size_t kl = strlen(key) + 1;
	gc_node_t *n = xcalloc(1, sizeof(*n) + kl);
	memcpy(n->key, key, kl);
	*guard_find(g, key) = n;
	g->keys++;
	return n;
}

/* Whether n's bucket is unused or would be full again by now_ms. */
static bool guard_idle(const gc_node_t *n, double rate_per_s, double burst, long long now_ms)
{
	if (n->bucket.last_ms == 0)
		return true;
	double refilled = n->bucket.tokens;
	if (now_ms > n->bucket.last_ms)
		refilled += (double)(now_ms - n->bucket.last_ms) * rate_per_s / 1000.0;
	return refilled >= burst;
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
