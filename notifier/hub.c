/*
 * hub: channel table (chained hash of channel -> subscriber array) and the history
 * ring (see hub.h). Frames are formatted once per (event, channel) and written to
 * every subscriber of that channel, which is what makes fan-out cheap.
 */
#include "hub.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HUB_MAX_CHANNELS_PER_EVENT 4
#define HUB_MAX_PARTITIONS 1024

typedef struct hub_chan {
	struct hub_chan *next;
	char *name;
	void **subs;
	int n, cap;
} hub_chan_t;

typedef struct {
	int32_t partition;
	int64_t seq;
	char type[16];
	char *channels[HUB_MAX_CHANNELS_PER_EVENT];
	int n_channels;
	char *data;
} hub_event_t;

struct hub {
	hub_chan_t **buckets;
	size_t nbuckets;
	hub_event_t *ring;
	size_t cap, head, count;
	int64_t first_held[HUB_MAX_PARTITIONS]; /* lowest seq the ring still covers, per partition */
	int64_t last_seq[HUB_MAX_PARTITIONS];
	long long epoch;
	char *frame;
	size_t frame_cap;
	uint64_t frame_gen;
};

static hub_chan_t *hub_chan(const hub_t *h, const char *name, bool create);
static uint64_t hub_hash(const char *s);
static void hub_evict(hub_t *h);
static const char *hub_format(hub_t *h, const hub_event_t *e, const char *channel, size_t *len);

hub_t *hub_new(size_t history, long long epoch)
{
	hub_t *h = xcalloc(1, sizeof(*h));
	h->nbuckets = 4096;
	h->buckets = xcalloc(h->nbuckets, sizeof(hub_chan_t *));
	h->cap = history ? history : 1;
	h->ring = xcalloc(h->cap, sizeof(hub_event_t));
	h->epoch = epoch;
	for (int i = 0; i < HUB_MAX_PARTITIONS; i++)
		h->first_held[i] = 0, h->last_seq[i] = -1;
	return h;
}

void hub_free(hub_t *h)
{
	if (!h)
		return;
	while (h->count)
		hub_evict(h);
	for (size_t i = 0; i < h->nbuckets; i++)
		for (hub_chan_t *c = h->buckets[i], *n; c; c = n) {
			n = c->next;
			free(c->name);
			free(c->subs);
			free(c);
		}
	free(h->buckets);
	free(h->ring);
	free(h->frame);
	free(h);
}

long long hub_epoch(const hub_t *h)
{
	return h->epoch;
}

void hub_subscribe(hub_t *h, const char *channel, void *conn)
{
	hub_chan_t *c = hub_chan(h, channel, true);
	for (int i = 0; i < c->n; i++)
		if (c->subs[i] == conn)
			return;
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 4;
		c->subs = xrealloc(c->subs, (size_t)c->cap * sizeof(void *));
	}
	c->subs[c->n++] = conn;
}

void hub_unsubscribe(hub_t *h, const char *channel, void *conn)
{
	hub_chan_t *c = hub_chan(h, channel, false);
	if (!c)
		return;
	for (int i = 0; i < c->n; i++)
		if (c->subs[i] == conn) {
			c->subs[i] = c->subs[--c->n];
			return;
		}
}

int hub_subscriber_count(const hub_t *h, const char *channel)
{
	hub_chan_t *c = hub_chan(h, channel, false);
	return c ? c->n : 0;
}

void hub_set_start(hub_t *h, int32_t partition, int64_t first)
{
	if (partition >= 0 && partition < HUB_MAX_PARTITIONS) {
		h->first_held[partition] = first;
		if (h->last_seq[partition] < first - 1)
			h->last_seq[partition] = first - 1;
	}
}

size_t hub_publish(hub_t *h, int32_t partition, int64_t seq, const char *type, const char *const *channels, int n_channels,
		   const char *data_json, hub_deliver_fn deliver, void *arg)
{
	size_t delivered = 0;
	if (partition < 0 || partition >= HUB_MAX_PARTITIONS)
		return 0;
	if (h->count == h->cap)
		hub_evict(h);
	hub_event_t *e = &h->ring[(h->head + h->count) % h->cap];
	h->count++;
	memset(e, 0, sizeof(*e));
	e->partition = partition;
	e->seq = seq;
	snprintf(e->type, sizeof(e->type), "%s", type);
	for (int i = 0; i < n_channels && i < HUB_MAX_CHANNELS_PER_EVENT; i++)
		e->channels[e->n_channels++] = xstrdup(channels[i]);
	e->data = xstrdup(data_json);
	if (seq > h->last_seq[partition])
		h->last_seq[partition] = seq;

	for (int i = 0; i < e->n_channels; i++) {
		hub_chan_t *c = hub_chan(h, e->channels[i], false);
		if (!c || !c->n)
			continue;
		size_t len;
		const char *frame = hub_format(h, e, e->channels[i], &len);
		/* a deliver callback may unsubscribe (slow consumer cut): walk a copy */
		int n = c->n;
		void **subs = xmalloc((size_t)n * sizeof(void *));
		memcpy(subs, c->subs, (size_t)n * sizeof(void *));
		for (int s = 0; s < n; s++)
			deliver(subs[s], frame, len, arg);
		free(subs);
		delivered += (size_t)n;
	}
	return delivered;
}

bool hub_replay(hub_t *h, const char *channel, int32_t partition, int64_t since, void *conn, hub_deliver_fn deliver,
		void *arg)
{
	if (partition < 0 || partition >= HUB_MAX_PARTITIONS)
		return false;
	if (since < h->first_held[partition] - 1) /* not since + 1: since may be INT64_MAX */
		return false;
	for (size_t i = 0; i < h->count; i++) {
		hub_event_t *e = &h->ring[(h->head + i) % h->cap];
		if (e->partition != partition || e->seq <= since)
			continue;
		for (int c = 0; c < e->n_channels; c++)
			if (strcmp(e->channels[c], channel) == 0) {
				size_t len;
				const char *frame = hub_format(h, e, channel, &len);
				deliver(conn, frame, len, arg);
			}
	}
	return true;
}

int64_t hub_last_seq(const hub_t *h, int32_t partition)
{
	if (partition < 0 || partition >= HUB_MAX_PARTITIONS)
		return -1;
	return h->last_seq[partition];
}

size_t hub_frame(char *buf, size_t cap, const char *type, const char *channel, int64_t seq, long long epoch,
		 const char *data_json)
{
	int n = snprintf(buf, cap, "{\"type\":\"%s\",\"channel\":\"%s\",\"seq\":%lld,\"epoch\":%lld,\"data\":%s}", type,
			 channel, (long long)seq, epoch, data_json);
	return n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n;
}

uint64_t hub_frame_gen(const hub_t *h)
{
	return h->frame_gen;
}

static const char *hub_format(hub_t *h, const hub_event_t *e, const char *channel, size_t *len)
{
	h->frame_gen++;
	size_t need = strlen(e->data) + strlen(channel) + strlen(e->type) + 96;
	if (need > h->frame_cap) {
		h->frame_cap = need * 2;
		h->frame = xrealloc(h->frame, h->frame_cap);
	}
	*len = hub_frame(h->frame, h->frame_cap, e->type, channel, e->seq, h->epoch, e->data);
	return h->frame;
}

/* Drops the oldest event; its partition's history now starts after it. */
static void hub_evict(hub_t *h)
{
	hub_event_t *e = &h->ring[h->head];
	if (e->seq + 1 > h->first_held[e->partition])
		h->first_held[e->partition] = e->seq + 1;
	for (int i = 0; i < e->n_channels; i++)
		free(e->channels[i]);
	free(e->data);
	h->head = (h->head + 1) % h->cap;
	h->count--;
}

static hub_chan_t *hub_chan(const hub_t *h, const char *name, bool create)
{
	size_t b = hub_hash(name) & (h->nbuckets - 1);
	for (hub_chan_t *c = h->buckets[b]; c; c = c->next)
		if (strcmp(c->name, name) == 0)
			return c;
	if (!create)
		return NULL;
	hub_chan_t *c = xcalloc(1, sizeof(*c));
	c->name = xstrdup(name);
	c->next = h->buckets[b];
	h->buckets[b] = c;
	return c;
}

static uint64_t hub_hash(const char *s)
{
	uint64_t x = 1469598103934665603ULL;
	for (; *s; s++)
		x = (x ^ (unsigned char)*s) * 1099511628211ULL;
	return x;
}
