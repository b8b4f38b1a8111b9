/*
 * track: a FIFO of items per partition; finishing the head pops every finished item
 * behind it and advances the partition's commit point (see track.h).
 */
#include "track.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct track_part track_part_t;

struct track_item {
	track_item_t *next;
	track_part_t *part;  /* NULL once the partition was revoked */
	int64_t offset;
	bool done;
};

struct track_part {
	char topic[128];
	int32_t partition;
	track_item_t *head, *tail;
	int64_t next;        /* committable: first offset not yet handled; -1 when nothing done yet */
	int64_t reported;    /* last value given to track_commits */
	bool live;
};

struct track {
	track_part_t **parts;
	int n, cap;
	int in_flight;
};

static track_part_t *track_part(track_t *t, const char *topic, int32_t partition);
static void track_detach(track_t *t, track_part_t *p);

track_t *track_new(void)
{
	return xcalloc(1, sizeof(track_t));
}

void track_free(track_t *t)
{
	if (!t)
		return;
	track_revoke_all(t);
	for (int i = 0; i < t->n; i++)
		free(t->parts[i]);
	free(t->parts);
	free(t);
}

track_item_t *track_add(track_t *t, const char *topic, int32_t partition, int64_t offset)
{
	track_part_t *p = track_part(t, topic, partition);
	track_item_t *it = xcalloc(1, sizeof(*it));
	it->part = p;
	it->offset = offset;
	if (p->tail)
		p->tail->next = it;
	else
		p->head = it;
	p->tail = it;
	t->in_flight++;
	return it;
}

void track_done(track_t *t, track_item_t *it)
{
	track_part_t *p = it->part;
	t->in_flight--;
	if (!p) {
		free(it);
		return;
	}
	it->done = true;
	while (p->head && p->head->done) {
		track_item_t *h = p->head;
		p->next = h->offset + 1;
		p->head = h->next;
		if (!p->head)
			p->tail = NULL;
		free(h);
	}
}

void track_commits(track_t *t, void (*fn)(const char *topic, int32_t partition, int64_t next, void *arg), void *arg)
{
	for (int i = 0; i < t->n; i++) {
		track_part_t *p = t->parts[i];
		if (p->live && p->next >= 0 && p->next != p->reported) {
			p->reported = p->next;
			fn(p->topic, p->partition, p->next, arg);
		}
	}
}

void track_all_positions(track_t *t, void (*fn)(const char *topic, int32_t partition, int64_t next, void *arg), void *arg)
{
	for (int i = 0; i < t->n; i++)
		if (t->parts[i]->live && t->parts[i]->next >= 0)
			fn(t->parts[i]->topic, t->parts[i]->partition, t->parts[i]->next, arg);
}

void track_revoke(track_t *t, const char *topic, int32_t partition)
{
	for (int i = 0; i < t->n; i++)
		if (t->parts[i]->partition == partition && strcmp(t->parts[i]->topic, topic) == 0)
			track_detach(t, t->parts[i]);
}

void track_revoke_all(track_t *t)
{
	for (int i = 0; i < t->n; i++)
		track_detach(t, t->parts[i]);
}

int track_in_flight(const track_t *t)
{
	return t->in_flight;
}

/* Unfinished items become orphans (freed by track_done); finished ones waiting behind
 * an unfinished head are freed now, as nobody holds their handles any more. */
static void track_detach(track_t *t, track_part_t *p)
{
	(void)t;
	for (track_item_t *it = p->head, *next; it; it = next) {
		next = it->next;
		if (it->done) {
			free(it);
		} else {
			it->part = NULL;
			it->next = NULL;
		}
	}
	p->head = p->tail = NULL;
	p->next = p->reported = -1;
	p->live = false;
}

static track_part_t *track_part(track_t *t, const char *topic, int32_t partition)
{
	for (int i = 0; i < t->n; i++)
		if (t->parts[i]->partition == partition && strcmp(t->parts[i]->topic, topic) == 0) {
			t->parts[i]->live = true;
			return t->parts[i];
		}
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->parts = xrealloc(t->parts, (size_t)t->cap * sizeof(track_part_t *));
	}
	track_part_t *p = xcalloc(1, sizeof(*p));
	snprintf(p->topic, sizeof(p->topic), "%s", topic);
	p->partition = partition;
	p->next = p->reported = -1;
	p->live = true;
	t->parts[t->n++] = p;
	return p;
}
