/*
 * gwpool: weighted round-robin with per-instance breakers and health (see gwpool.h).
 * Smooth WRR: every candidate's current weight grows by its weight, the largest wins and
 * pays back the candidates' total, so 3:1 gives a b a a, a a b a ... never a burst.
 */
#include "gwpool.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool gwp_ready(const breaker_t *b, int64_t now_ms);
static int gwp_choose(gwp_pool_t *p, const bool *cand);
static void gwp_label(gwp_pool_t *p, int i);
static bool gwp_same_str(const char *a, const char *b);

void gwp_init(gwp_pool_t *p, const breaker_params_t *bp)
{
	memset(p, 0, sizeof(*p));
	p->bp = *bp;
}

void gwp_free(gwp_pool_t *p)
{
	for (int i = 0; i < p->n; i++)
		free(p->inst[i].url), free(p->inst[i].instance), free(p->inst[i].key);
	p->n = 0;
}

bool gwp_matches(const gwp_pool_t *p, const cfg_instance_t *in, int n)
{
	if (n > GWP_MAX)
		n = GWP_MAX;
	if (p->n != n)
		return false;
	for (int i = 0; i < n; i++)
		if (!gwp_same_str(p->inst[i].url, in[i].url) || !gwp_same_str(p->inst[i].instance, in[i].instance) ||
		    !gwp_same_str(p->inst[i].key, in[i].key) || p->inst[i].weight != in[i].weight)
			return false;
	return true;
}

void gwp_sync(gwp_pool_t *p, const cfg_instance_t *in, int n)
{
	gwp_inst_t next[GWP_MAX];
	bool taken[GWP_MAX] = {false};
	if (n > GWP_MAX)
		n = GWP_MAX;
	for (int i = 0; i < n; i++) {
		gwp_inst_t *x = &next[i];
		int old = -1;
		for (int k = 0; k < p->n && old < 0; k++)
			if (!taken[k] && gwp_same_str(p->inst[k].url, in[i].url) &&
			    gwp_same_str(p->inst[k].instance, in[i].instance))
				old = k;
		if (old >= 0) {
			*x = p->inst[old];
			taken[old] = true;
			free(x->key);
		} else {
			memset(x, 0, sizeof(*x));
			x->url = xstrdup(in[i].url);
			x->instance = in[i].instance ? xstrdup(in[i].instance) : NULL;
			x->healthy = true;
			breaker_init(&x->breaker, &p->bp);
		}
		x->key = in[i].key ? xstrdup(in[i].key) : NULL;
		x->weight = in[i].weight < 1 ? 1 : in[i].weight;
		x->current = 0;
	}
	for (int k = 0; k < p->n; k++)
		if (!taken[k])
			free(p->inst[k].url), free(p->inst[k].instance), free(p->inst[k].key);
	memcpy(p->inst, next, sizeof(gwp_inst_t) * (size_t)n);
	p->n = n;
	p->gen++;
	for (int i = 0; i < n; i++)
		gwp_label(p, i);
}

int gwp_pick(gwp_pool_t *p, int64_t now_ms, unsigned exclude, bool *probe)
{
	bool cand[GWP_MAX];
	*probe = false;
	for (int tier = 0; tier < 4; tier++) {
		bool need_healthy = tier < 2, skip_tried = tier % 2 == 0, any = false;
		for (int i = 0; i < p->n; i++) {
			const gwp_inst_t *x = &p->inst[i];
			cand[i] = gwp_ready(&x->breaker, now_ms) && (!need_healthy || x->healthy) &&
				  (!skip_tried || !(exclude & (1u << i)));
			any |= cand[i];
		}
		if (!any)
			continue;
		int i = gwp_choose(p, cand);
		if (!breaker_allow(&p->inst[i].breaker, now_ms, probe))
			return -1; /* gwp_ready said it would: cannot happen */
		return i;
	}
	return -1;
}

void gwp_record(gwp_pool_t *p, int i, int64_t now_ms, breaker_outcome_t outcome, bool probe)
{
	if (i >= 0 && i < p->n)
		breaker_record(&p->inst[i].breaker, now_ms, outcome, probe);
}

void gwp_health(gwp_pool_t *p, int i, bool healthy)
{
	if (i < 0 || i >= p->n)
		return;
	p->inst[i].healthy = healthy;
	if (healthy)
		breaker_half_open(&p->inst[i].breaker);
}

int gwp_find(const gwp_pool_t *p, const char *url, const char *instance)
{
	for (int i = 0; i < p->n; i++)
		if (gwp_same_str(p->inst[i].url, url) && gwp_same_str(p->inst[i].instance, instance))
			return i;
	return -1;
}

/* Would breaker_allow let a call through now? (Without its side effects.) */
static bool gwp_ready(const breaker_t *b, int64_t now_ms)
{
	switch (breaker_state(b)) {
	case BREAKER_CLOSED:
		return true;
	case BREAKER_OPEN:
		return now_ms - b->opened_at >= b->p.open_ms;
	case BREAKER_HALF_OPEN:
		return !b->probe_out;
	}
	return false;
}

/* One step of smooth weighted round-robin among the candidates. */
static int gwp_choose(gwp_pool_t *p, const bool *cand)
{
	int best = -1, total = 0;
	for (int i = 0; i < p->n; i++) {
		if (!cand[i])
			continue;
		p->inst[i].current += p->inst[i].weight;
		total += p->inst[i].weight;
		if (best < 0 || p->inst[i].current > p->inst[best].current)
			best = i;
	}
	p->inst[best].current -= total;
	return best;
}

/* host:port of the url (default ports spelled out), "#n" added when an earlier instance has it. */
static void gwp_label(gwp_pool_t *p, int i)
{
	const char *u = p->inst[i].url, *h = strstr(u, "://");
	bool tls = strncmp(u, "https", 5) == 0;
	h = h ? h + 3 : u;
	size_t n = strcspn(h, "/?#");
	const char *at = memchr(h, '@', n); /* no credentials in labels */
	if (at) {
		n -= (size_t)(at + 1 - h);
		h = at + 1;
	}
	bool port = false;
	for (size_t k = n; k > 0 && h[k - 1] != ']'; k--)
		if (h[k - 1] == ':') {
			port = true;
			break;
		}
	snprintf(p->inst[i].label, sizeof(p->inst[i].label), "%.*s%s", (int)(n < 60 ? n : 60), h,
		 port ? "" : tls ? ":443" : ":80");
	for (int k = 0; k < i; k++)
		if (strcmp(p->inst[k].label, p->inst[i].label) == 0) {
			size_t len = strlen(p->inst[i].label);
			snprintf(p->inst[i].label + len, sizeof(p->inst[i].label) - len, "#%d", i);
			break;
		}
}

static bool gwp_same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}
