/*
 * backlog: per partition a ring of (offset, cumulative bytes) in offset order; the
 * unconsumed bytes are the cumulative total minus the cumulative count just before the
 * committed offset (see backlog.h).
 */
#include "backlog.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BACKLOG_RING 65536

typedef struct {
	int64_t offset;
	uint64_t cum;      /* bytes produced up to and including this offset */
} backlog_mark_t;

typedef struct {
	char topic[128];
	int32_t partition;
	backlog_mark_t *ring;
	size_t head, count;
	uint64_t total;    /* cumulative bytes produced */
	uint64_t consumed; /* cumulative bytes at the last entry below the committed offset */
	bool overflow;
} backlog_part_t;

struct backlog {
	backlog_part_t *parts;
	int n, cap;
};

static backlog_part_t *backlog_find(backlog_t *b, const char *topic, int32_t partition, bool create);
static void backlog_trim(backlog_part_t *p, int64_t committed);

backlog_t *backlog_new(void)
{
	return xcalloc(1, sizeof(backlog_t));
}

void backlog_free(backlog_t *b)
{
	if (!b)
		return;
	for (int i = 0; i < b->n; i++)
		free(b->parts[i].ring);
	free(b->parts);
	free(b);
}

void backlog_produced(backlog_t *b, const char *topic, int32_t partition, int64_t offset, size_t bytes)
{
	backlog_part_t *p = backlog_find(b, topic, partition, true);
	p->total += bytes;
	if (p->count == BACKLOG_RING) {
		p->overflow = true; /* more unconsumed messages than we can track: that is a backlog */
		p->consumed = p->ring[p->head].cum;
		p->head = (p->head + 1) % BACKLOG_RING;
		p->count--;
	}
	backlog_mark_t *m = &p->ring[(p->head + p->count) % BACKLOG_RING];
	m->offset = offset;
	m->cum = p->total;
	p->count++;
}

void backlog_committed(backlog_t *b, const char *topic, int32_t partition, int64_t committed)
{
	backlog_part_t *p = backlog_find(b, topic, partition, false);
	if (p && committed >= 0)
		backlog_trim(p, committed);
}

size_t backlog_max_bytes(const backlog_t *b, char *which, size_t len)
{
	size_t worst = 0;
	int worst_i = -1;
	for (int i = 0; i < b->n; i++) {
		const backlog_part_t *p = &b->parts[i];
		size_t v = p->overflow ? SIZE_MAX : (size_t)(p->total - p->consumed);
		if (worst_i < 0 || v > worst)
			worst = v, worst_i = i;
	}
	if (which && len)
		snprintf(which, len, "%s[%d]", worst_i >= 0 ? b->parts[worst_i].topic : "-",
			 worst_i >= 0 ? b->parts[worst_i].partition : -1);
	return worst;
}

int backlog_count(const backlog_t *b)
{
	return b->n;
}

void backlog_get(const backlog_t *b, int i, const char **topic, int32_t *partition)
{
	*topic = b->parts[i].topic;
	*partition = b->parts[i].partition;
}

static void backlog_trim(backlog_part_t *p, int64_t committed)
{
	while (p->count && p->ring[p->head].offset < committed) {
		p->consumed = p->ring[p->head].cum;
		p->head = (p->head + 1) % BACKLOG_RING;
		p->count--;
	}
	if (p->count == 0)
		p->overflow = false;
}

static backlog_part_t *backlog_find(backlog_t *b, const char *topic, int32_t partition, bool create)
{
	for (int i = 0; i < b->n; i++)
		if (b->parts[i].partition == partition && strcmp(b->parts[i].topic, topic) == 0)
			return &b->parts[i];
	if (!create)
		return NULL;
	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 16;
		b->parts = xrealloc(b->parts, (size_t)b->cap * sizeof(backlog_part_t));
	}
	backlog_part_t *p = &b->parts[b->n++];
	memset(p, 0, sizeof(*p));
	snprintf(p->topic, sizeof(p->topic), "%s", topic);
	p->partition = partition;
	p->ring = xmalloc(BACKLOG_RING * sizeof(backlog_mark_t));
	return p;
}
