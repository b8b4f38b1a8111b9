/*
 * simcache: recent cached hints per company and domain, searched by trigram similarity
 * (see simcache.h). Each entry keeps its text's trigrams sorted, so a comparison is one
 * merge, given up as soon as too many trigrams went unmatched for the threshold; an entry
 * whose trigram count alone rules it out is not compared. Each ring has a hash map from a
 * text to its slot (open addressing, linear probing), so a reread row finds its entry at once.
 */
#include "simcache.h"
#include "xalloc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	char *norm, *intent, *text;
	uint64_t hash;      /* of norm: replacing and exact lookups compare this first */
	uint32_t *trgm;     /* sorted, unique */
	int n_trgm;
	int64_t hint_id;
	bool critical;
	double created_at;
} simcache_entry_t;

typedef struct {
	long company;
	char domain[32];
	simcache_entry_t *slots; /* ring_cap of them */
	int head, count;         /* the oldest is slots[head] */
	int *map;                /* map_mask + 1 cells: a slot + 1, or 0 */
	unsigned map_mask;
} simcache_group_t;

struct simcache {
	int ring_cap;
	simcache_group_t *groups;
	int n_groups, cap_groups;
	int size;
};

static int simcache_trgm_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static bool simcache_word_byte(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch >= 0x80;
}

static unsigned char simcache_lower(unsigned char ch)
{
	return ch >= 'A' && ch <= 'Z' ? (unsigned char)(ch - 'A' + 'a') : ch;
}

/* pg_trgm's trigrams of s (sorted, unique) into a new array; *n gets their count. */
static uint32_t *simcache_trigrams(const char *s, int *n)
{
	size_t len = strlen(s);
	uint32_t *t = xmalloc((len + 1) * sizeof(uint32_t)); /* a word of k bytes makes k + 1 */
	int k = 0;
	for (size_t i = 0; i < len;) {
		if (!simcache_word_byte((unsigned char)s[i])) {
			i++;
			continue;
		}
		/* the word padded: two spaces before, one after */
		uint32_t w = ((uint32_t)' ' << 16) | ((uint32_t)' ' << 8);
		for (; i < len && simcache_word_byte((unsigned char)s[i]); i++) {
			w = ((w << 8) | simcache_lower((unsigned char)s[i])) & 0xffffff;
			t[k++] = w;
		}
		t[k++] = ((w << 8) | ' ') & 0xffffff;
	}
	qsort(t, (size_t)k, sizeof(uint32_t), simcache_trgm_cmp);
	int u = 0;
	for (int i = 0; i < k; i++)
		if (u == 0 || t[u - 1] != t[i])
			t[u++] = t[i];
	*n = u;
	return t;
}

/* pg_trgm's formula, in float4 arithmetic as its % operator compares it; -1 as soon as more
 * than max_unmatched trigrams of the two found no match (the similarity is then below what
 * the caller asks: shared = (na + nb - unmatched) / 2). */
static float simcache_ratio(const uint32_t *a, int na, const uint32_t *b, int nb, int max_unmatched)
{
	if (na <= 0 || nb <= 0)
		return 0.0f;
	int i = 0, j = 0, common = 0, unmatched = 0;
	while (i < na && j < nb) {
		if (a[i] == b[j]) {
			common++, i++, j++;
			continue;
		}
		if (a[i] < b[j])
			i++;
		else
			j++;
		if (++unmatched > max_unmatched)
			return -1.0f;
	}
	return (float)common / (float)(na + nb - common);
}

float simcache_similarity(const char *a, const char *b)
{
	int na, nb;
	uint32_t *ta = simcache_trigrams(a, &na), *tb = simcache_trigrams(b, &nb);
	float r = simcache_ratio(ta, na, tb, nb, na + nb);
	free(ta);
	free(tb);
	return r;
}

static uint64_t simcache_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

simcache_t *simcache_new(int ring_cap)
{
	simcache_t *s = xcalloc(1, sizeof(*s));
	s->ring_cap = ring_cap > 0 ? ring_cap : 1;
	return s;
}

static void simcache_entry_clear(simcache_entry_t *e)
{
	free(e->norm);
	free(e->intent);
	free(e->text);
	free(e->trgm);
	memset(e, 0, sizeof(*e));
}

void simcache_free(simcache_t *s)
{
	if (!s)
		return;
	for (int g = 0; g < s->n_groups; g++) {
		for (int i = 0; i < s->ring_cap; i++)
			simcache_entry_clear(&s->groups[g].slots[i]);
		free(s->groups[g].slots);
		free(s->groups[g].map);
	}
	free(s->groups);
	free(s);
}

static simcache_group_t *simcache_group(const simcache_t *s, long company, const char *domain)
{
	for (int g = 0; g < s->n_groups; g++)
		if (s->groups[g].company == company && strcmp(s->groups[g].domain, domain) == 0)
			return &s->groups[g];
	return NULL;
}

/* The map cell of g holding text norm (hash h), or of the empty cell where it would go. */
static unsigned simcache_cell(const simcache_group_t *g, const char *norm, uint64_t h)
{
	unsigned i = (unsigned)h & g->map_mask;
	for (; g->map[i]; i = (i + 1) & g->map_mask) {
		const simcache_entry_t *e = &g->slots[g->map[i] - 1];
		if (e->hash == h && strcmp(e->norm, norm) == 0)
			break;
	}
	return i;
}

/* The live entry of g whose text is norm (hash h), or NULL. */
static simcache_entry_t *simcache_same(const simcache_group_t *g, const char *norm, uint64_t h)
{
	unsigned i = simcache_cell(g, norm, h);
	return g->map[i] ? &g->slots[g->map[i] - 1] : NULL;
}

/* Takes the text of slot out of g's map, moving back the cells probed past it. */
static void simcache_unmap(simcache_group_t *g, int slot)
{
	unsigned hole = simcache_cell(g, g->slots[slot].norm, g->slots[slot].hash);
	g->map[hole] = 0;
	for (unsigned j = (hole + 1) & g->map_mask; g->map[j]; j = (j + 1) & g->map_mask) {
		unsigned home = (unsigned)g->slots[g->map[j] - 1].hash & g->map_mask;
		/* j's entry may fill the hole unless its home lies cyclically in (hole, j] */
		bool stays = hole < j ? (home > hole && home <= j) : (home > hole || home <= j);
		if (!stays) {
			g->map[hole] = g->map[j];
			g->map[j] = 0;
			hole = j;
		}
	}
}

void simcache_put(simcache_t *s, long company, const char *domain, const char *norm, int64_t hint_id,
		  const char *intent, bool critical, const char *text, double created_at)
{
	if (!norm || !norm[0] || !domain)
		return;
	simcache_group_t *g = simcache_group(s, company, domain);
	if (!g) {
		if (s->n_groups == s->cap_groups) {
			s->cap_groups = s->cap_groups ? 2 * s->cap_groups : 8;
			s->groups = xrealloc(s->groups, (size_t)s->cap_groups * sizeof(*s->groups));
		}
		g = &s->groups[s->n_groups++];
		memset(g, 0, sizeof(*g));
		g->company = company;
		snprintf(g->domain, sizeof(g->domain), "%s", domain);
		g->slots = xcalloc((size_t)s->ring_cap, sizeof(simcache_entry_t));
		unsigned cells = 2;
		while (cells < 2u * (unsigned)s->ring_cap) /* at most half full */
			cells *= 2;
		g->map = xcalloc(cells, sizeof(int));
		g->map_mask = cells - 1;
	}
	uint64_t h = simcache_hash(norm);
	simcache_entry_t *e = simcache_same(g, norm, h);
	if (e) {
		free(e->intent);
		free(e->text);
	} else {
		if (g->count == s->ring_cap) { /* the oldest goes */
			simcache_unmap(g, g->head);
			simcache_entry_clear(&g->slots[g->head]);
			g->head = (g->head + 1) % s->ring_cap;
			g->count--;
			s->size--;
		}
		int slot = (g->head + g->count) % s->ring_cap;
		e = &g->slots[slot];
		g->count++;
		s->size++;
		e->norm = xstrdup(norm);
		e->hash = h;
		e->trgm = simcache_trigrams(norm, &e->n_trgm);
		g->map[simcache_cell(g, norm, h)] = slot + 1;
	}
	e->intent = xstrdup(intent ? intent : "other");
	e->text = xstrdup(text ? text : "");
	e->hint_id = hint_id;
	e->critical = critical;
	e->created_at = created_at;
}

bool simcache_find(const simcache_t *s, long company, const char *domain, const char *norm, double threshold,
		   double not_before, simcache_hit_t *hit)
{
	const simcache_group_t *g = s && domain && norm && norm[0] ? simcache_group(s, company, domain) : NULL;
	if (!g)
		return false;
	const simcache_entry_t *best = simcache_same(g, norm, simcache_hash(norm));
	float best_sim = 1.0f;
	if (!best || best->created_at <= not_before) {
		best = NULL;
		int nq;
		uint32_t *q = simcache_trigrams(norm, &nq);
		for (int i = 0; i < g->count; i++) {
			const simcache_entry_t *e = &g->slots[(g->head + i) % s->ring_cap];
			int lo = e->n_trgm < nq ? e->n_trgm : nq, hi = e->n_trgm < nq ? nq : e->n_trgm;
			/* shared <= the smaller count, so the similarity <= lo / hi */
			if (e->created_at <= not_before || (double)lo < threshold * (double)hi)
				continue;
			/* sim >= t needs shared >= t (na + nb) / (1 + t): at most this many unmatched */
			int max_unmatched = (int)((double)(nq + e->n_trgm) * (1.0 - threshold) / (1.0 + threshold)) + 1;
			float sim = simcache_ratio(q, nq, e->trgm, e->n_trgm, max_unmatched);
			bool better = !best || sim > best_sim || (sim == best_sim && e->created_at >= best->created_at);
			if ((double)sim >= threshold && better) {
				best = e;
				best_sim = sim;
			}
		}
		free(q);
	}
	if (!best)
		return false;
	*hit = (simcache_hit_t){.hint_id = best->hint_id, .intent = best->intent, .critical = best->critical,
				.text = best->text, .similarity = best_sim};
	return true;
}

int simcache_size(const simcache_t *s)
{
	return s ? s->size : 0;
}
