/*
 * dedup: chained hash table whose nodes live in a ring in insertion order; adding to a
 * full ring evicts the oldest node from its bucket first (see dedup.h).
 */
#include "dedup.h"
#include "xalloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	char *key;       /* NULL when the slot is empty */
	uint64_t hash;
	int64_t next;    /* next slot in the same bucket, -1 at the end */
} dedup_node_t;

struct dedup {
	dedup_node_t *ring;
	int64_t *buckets;
	size_t capacity, nbuckets, head, count; /* head: oldest node */
};

static uint64_t dedup_hash(const char *s);
static void dedup_unlink(dedup_t *d, size_t slot);
static void dedup_init(dedup_t *d, size_t capacity);

dedup_t *dedup_new(size_t capacity)
{
	dedup_t *d = xcalloc(1, sizeof(*d));
	dedup_init(d, capacity);
	return d;
}

bool dedup_contains(const dedup_t *d, const char *key)
{
	if (!d->capacity)
		return false;
	uint64_t h = dedup_hash(key);
	for (int64_t i = d->buckets[h & (d->nbuckets - 1)]; i >= 0; i = d->ring[i].next)
		if (d->ring[i].hash == h && strcmp(d->ring[i].key, key) == 0)
			return true;
	return false;
}

void dedup_add(dedup_t *d, const char *key)
{
	if (!d->capacity || dedup_contains(d, key))
		return;
	size_t slot = (d->head + d->count) % d->capacity;
	if (d->count == d->capacity) {
		slot = d->head;
		dedup_unlink(d, slot);
		d->head = (d->head + 1) % d->capacity;
		d->count--;
	}
	uint64_t h = dedup_hash(key);
	size_t b = h & (d->nbuckets - 1);
	d->ring[slot].key = xstrdup(key);
	d->ring[slot].hash = h;
	d->ring[slot].next = d->buckets[b];
	d->buckets[b] = (int64_t)slot;
	d->count++;
}

size_t dedup_count(const dedup_t *d)
{
	return d->count;
}

void dedup_resize(dedup_t *d, size_t capacity)
{
	if (capacity == d->capacity)
		return;
	dedup_t old = *d;
	dedup_init(d, capacity);
	size_t skip = old.count > capacity ? old.count - capacity : 0;
	for (size_t i = 0; i < old.count; i++) {
		dedup_node_t *n = &old.ring[(old.head + i) % old.capacity];
		if (i >= skip)
			dedup_add(d, n->key);
		free(n->key);
	}
	free(old.ring);
	free(old.buckets);
}

void dedup_free(dedup_t *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->count; i++)
		free(d->ring[(d->head + i) % d->capacity].key);
	free(d->ring);
	free(d->buckets);
	free(d);
}

static void dedup_init(dedup_t *d, size_t capacity)
{
	memset(d, 0, sizeof(*d));
	d->capacity = capacity;
	if (!capacity)
		return;
	d->nbuckets = 16;
	while (d->nbuckets < capacity * 2)
		d->nbuckets <<= 1;
	d->ring = xcalloc(capacity, sizeof(dedup_node_t));
	d->buckets = xmalloc(d->nbuckets * sizeof(int64_t));
	memset(d->buckets, 0xff, d->nbuckets * sizeof(int64_t)); /* all -1 */
}

static void dedup_unlink(dedup_t *d, size_t slot)
{
	dedup_node_t *n = &d->ring[slot];
	int64_t *link = &d->buckets[n->hash & (d->nbuckets - 1)];
	while (*link >= 0 && *link != (int64_t)slot)
		link = &d->ring[*link].next;
	if (*link == (int64_t)slot)
		*link = n->next;
	free(n->key);
	n->key = NULL;
}

/* FNV-1a, 64 bit: keys are short and chosen by gateways, not attackers of the table. */
static uint64_t dedup_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}
