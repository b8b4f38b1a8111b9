/*
 * backlog: how many produced bytes per inbound partition the workers have not yet
 * committed. The embedded broker keeps only ~5 MiB per partition and silently drops
 * older data, so the ingress refuses new messages (503) before any partition's
 * unconsumed bytes reach a configured bound: backpressure instead of silent loss.
 */
#ifndef ATENDE_BACKLOG_H
#define ATENDE_BACKLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct backlog backlog_t;

backlog_t *backlog_new(void);
void backlog_free(backlog_t *b);

/* A delivery report: bytes (key + value + headers) landed at offset. */
void backlog_produced(backlog_t *b, const char *topic, int32_t partition, int64_t offset, size_t bytes);

/* The consumer group's committed offset (next offset it will read) for a partition. */
void backlog_committed(backlog_t *b, const char *topic, int32_t partition, int64_t committed);

/* Unconsumed bytes of the fullest partition; names it in which (may be NULL). A
 * partition whose tracking ring overflowed counts as SIZE_MAX. */
size_t backlog_max_bytes(const backlog_t *b, char *which, size_t len);

/* Number of tracked partitions and access to each (for building offset queries). */
int backlog_count(const backlog_t *b);
void backlog_get(const backlog_t *b, int i, const char **topic, int32_t *partition);

#endif
