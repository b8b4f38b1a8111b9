/*
 * dedup: a bounded memory of recently accepted message keys. The oldest key is
 * forgotten when the window is full, so memory stays fixed however long the ingress
 * runs; a forgotten redelivery is still stored once by the worker's unique key.
 */
#ifndef ATENDE_DEDUP_H
#define ATENDE_DEDUP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct dedup dedup_t;

/* capacity 0 gives a set that remembers nothing. */
dedup_t *dedup_new(size_t capacity);
bool dedup_contains(const dedup_t *d, const char *key);
/* Remembers key (copied); a key already present is not added twice. */
void dedup_add(dedup_t *d, const char *key);
size_t dedup_count(const dedup_t *d);
/* Changes the window, keeping the newest keys that still fit (config reload). */
void dedup_resize(dedup_t *d, size_t capacity);
void dedup_free(dedup_t *d);

#endif
