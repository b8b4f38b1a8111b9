/*
 * embed: vectors of recent AI hints per company and domain, searched by cosine similarity
 * (see embed.h). Rings are found by a linear scan of the groups: there are as many as
 * companies x domains with AI hints, and the scan is nothing beside the dot products.
 */
#include "embed.h"
#include "json.h"
#include "xalloc.h"

#include <cJSON.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	long company;
	char domain[32];
	embed_entry_t *slots; /* ring_cap of them */
	int head, count;      /* the oldest is slots[head] */
} embed_group_t;

struct embed_index {
	int ring_cap;
	embed_group_t *groups;
	int n_groups, cap_groups;
	int size;
};

embed_index_t *embed_index_new(int ring_cap)
{
	embed_index_t *x = xcalloc(1, sizeof(*x));
	x->ring_cap = ring_cap > 0 ? ring_cap : 1;
	return x;
}

void embed_index_clear(embed_index_t *x)
{
	for (int g = 0; g < x->n_groups; g++) {
		for (int i = 0; i < x->groups[g].count; i++) {
			embed_entry_t *e = &x->groups[g].slots[(x->groups[g].head + i) % x->ring_cap];
			free(e->vec);
			free(e->text);
		}
		free(x->groups[g].slots);
	}
	free(x->groups);
	x->groups = NULL;
	x->n_groups = x->cap_groups = x->size = 0;
}

void embed_index_free(embed_index_t *x)
{
	if (!x)
		return;
	embed_index_clear(x);
	free(x);
}

static embed_group_t *embed_group(const embed_index_t *x, long company, const char *domain)
{
	for (int g = 0; g < x->n_groups; g++)
		if (x->groups[g].company == company && strcmp(x->groups[g].domain, domain ? domain : "") == 0)
			return &x->groups[g];
	return NULL;
}

bool embed_index_add(embed_index_t *x, long company, const char *domain, const float *vec, int dim, int64_t hint_id,
		     const char *intent, bool critical, const char *text, double created_at)
{
	if (dim < 1 || dim > EMBED_MAX_DIM)
		return false;
	float *v = xmalloc((size_t)dim * sizeof(float));
	memcpy(v, vec, (size_t)dim * sizeof(float));
	if (!embed_normalize(v, dim)) {
		free(v);
		return false;
	}
	embed_group_t *g = embed_group(x, company, domain);
	if (!g) {
		if (x->n_groups == x->cap_groups) {
			x->cap_groups = x->cap_groups ? 2 * x->cap_groups : 8;
			x->groups = xrealloc(x->groups, (size_t)x->cap_groups * sizeof(embed_group_t));
		}
		g = &x->groups[x->n_groups++];
		memset(g, 0, sizeof(*g));
		g->company = company;
		snprintf(g->domain, sizeof(g->domain), "%s", domain ? domain : "");
		g->slots = xcalloc((size_t)x->ring_cap, sizeof(embed_entry_t));
	}
	embed_entry_t *e;
	if (g->count == x->ring_cap) { /* full: the oldest goes */
		e = &g->slots[g->head];
		free(e->vec);
		free(e->text);
		g->head = (g->head + 1) % x->ring_cap;
	} else {
		e = &g->slots[(g->head + g->count) % x->ring_cap];
		g->count++;
		x->size++;
	}
	e->vec = v;
	e->dim = dim;
	e->hint_id = hint_id;
	snprintf(e->intent, sizeof(e->intent), "%s", intent ? intent : "other");
	e->critical = critical;
	e->text = xstrdup(text ? text : "");
	e->created_at = created_at;
	return true;
}

const embed_entry_t *embed_index_nearest(const embed_index_t *x, long company, const char *domain, const float *vec,
					 int dim, double threshold, double not_before, double *sim)
{
	const embed_group_t *g = embed_group(x, company, domain);
	const embed_entry_t *best = NULL;
	double best_sim = -1;
	for (int i = 0; g && i < g->count; i++) {
		const embed_entry_t *e = &g->slots[(g->head + i) % x->ring_cap];
		if (e->dim != dim || e->created_at < not_before)
			continue;
		double s = 0; /* both are unit vectors: the dot product is the cosine */
		for (int k = 0; k < dim; k++)
			s += (double)e->vec[k] * vec[k];
		if (s > best_sim) { /* ties: the older one, first seen */
			best_sim = s;
			best = e;
		}
	}
	if (sim)
		*sim = best_sim;
	return best && best_sim >= threshold ? best : NULL;
}

int embed_index_size(const embed_index_t *x)
{
	return x->size;
}

bool embed_normalize(float *v, int dim)
{
	double n = 0;
	for (int k = 0; k < dim; k++)
		n += (double)v[k] * v[k];
	if (n <= 0)
		return false;
	n = sqrt(n);
	for (int k = 0; k < dim; k++)
		v[k] = (float)(v[k] / n);
	return true;
}

double embed_cosine(const float *a, const float *b, int dim)
{
	double ab = 0, aa = 0, bb = 0;
	for (int k = 0; k < dim; k++) {
		ab += (double)a[k] * b[k];
		aa += (double)a[k] * a[k];
		bb += (double)b[k] * b[k];
	}
	return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
}

bool embed_parse_response(const char *body, size_t len, float **vec, int *dim, int *tokens, char *err, size_t errlen)
{
	cJSON *root = cJSON_ParseWithLength(body, len);
	cJSON *data = cJSON_GetObjectItem(root, "data");
	cJSON *emb = cJSON_GetObjectItem(cJSON_GetArrayItem(data, 0), "embedding");
	int n = cJSON_IsArray(emb) ? cJSON_GetArraySize(emb) : 0;
	*vec = NULL;
	*dim = *tokens = 0;
	if (!root || n < 1 || n > EMBED_MAX_DIM) {
		snprintf(err, errlen, "%s", !root ? "not JSON" : n > EMBED_MAX_DIM ? "embedding too long" : "no data[0].embedding");
		cJSON_Delete(root);
		return false;
	}
	float *v = xmalloc((size_t)n * sizeof(float));
	int k = 0;
	cJSON *it;
	cJSON_ArrayForEach(it, emb)
	{
		/* past FLT_MAX the cast to float is undefined */
		if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || fabs(it->valuedouble) > FLT_MAX) {
			snprintf(err, errlen, "embedding element %d is not a number", k);
			free(v);
			cJSON_Delete(root);
			return false;
		}
		v[k++] = (float)it->valuedouble;
	}
	cJSON *usage = cJSON_GetObjectItem(root, "usage");
	/* the provider's numbers, checked before the cast like the chat call's (worker/ai.c) */
	long long used = 0;
	if (!json_int_in(cJSON_GetObjectItem(usage, "prompt_tokens"), 0, 1000000000, &used) &&
	    !json_int_in(cJSON_GetObjectItem(usage, "total_tokens"), 0, 1000000000, &used))
		used = 0;
	*tokens = (int)used;
	*vec = v;
	*dim = n;
	cJSON_Delete(root);
	return true;
}

char *embed_pg_array(const float *v, int dim)
{
	size_t cap = (size_t)dim * 20 + 3, o = 0;
	char *s = xmalloc(cap);
	s[o++] = '{';
	for (int k = 0; k < dim; k++)
		o += (size_t)snprintf(s + o, cap - o, "%s%.9g", k ? "," : "", (double)v[k]);
	snprintf(s + o, cap - o, "}");
	return s;
}

int embed_pg_parse(const char *s, float **out)
{
	*out = NULL;
	if (!s || *s != '{')
		return -1;
	int n = 1;
	for (const char *p = s; *p; p++)
		n += *p == ',';
	if (n > EMBED_MAX_DIM)
		return -1;
	float *v = xmalloc((size_t)n * sizeof(float));
	int k = 0;
	const char *p = s + 1;
	for (;;) {
		char *end;
		double d = strtod(p, &end);
		if (end == p || k == n) {
			free(v);
			return -1;
		}
		v[k++] = (float)d;
		if (*end == ',')
			p = end + 1;
		else if (end[0] == '}' && end[1] == 0)
			break;
		else {
			free(v);
			return -1;
		}
	}
	*out = v;
	return k;
}
