/*
 * presence: per company, a sorted array of agents; per agent, the local tab count and
 * one entry per instance that reports tabs for it (see presence.h). Companies are few and
 * found by a linear scan; agents by binary search, so the online list comes out sorted.
 */
#include "presence.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	char id[PRESENCE_INSTANCE_MAX];
	int tabs;             /* > 0: entries with no tabs are removed */
	long long last_seen;  /* ts of the message that last reported or refreshed it */
	bool stale_reported;  /* presence_stale already handed it out */
} pr_inst_t;

typedef struct {
	long id;
	int local_tabs;       /* tabs held by this instance */
	bool online;          /* union: some instance reports tabs */
	pr_inst_t *inst;
	int n_inst, cap_inst;
} pr_agent_t;

typedef struct {
	long id;
	pr_agent_t **agents;  /* ascending id */
	int n, cap;
} pr_company_t;

struct presence {
	pr_company_t *companies;
	int n, cap;
};

static pr_company_t *pr_company(const presence_t *p, long company, bool create);
static pr_agent_t *pr_agent(pr_company_t *co, long agent, bool create);
static int pr_agent_index(const pr_company_t *co, long agent, bool *found);
static void pr_agent_gc(pr_company_t *co, long agent);
static void pr_set(pr_company_t *co, pr_agent_t *a, const char *instance, int tabs, long long ts);
static void pr_settle(pr_company_t *co, pr_agent_t *a, presence_change_fn fn, void *arg);
static int pr_cmp_long(const void *a, const void *b);

presence_t *presence_new(void)
{
	return xcalloc(1, sizeof(presence_t));
}

void presence_free(presence_t *p)
{
	if (!p)
		return;
	for (int c = 0; c < p->n; c++) {
		for (int i = 0; i < p->companies[c].n; i++) {
			free(p->companies[c].agents[i]->inst);
			free(p->companies[c].agents[i]);
		}
		free(p->companies[c].agents);
	}
	free(p->companies);
	free(p);
}

int presence_local_join(presence_t *p, long company, long agent)
{
	pr_agent_t *a = pr_agent(pr_company(p, company, true), agent, true);
	return ++a->local_tabs;
}

int presence_local_leave(presence_t *p, long company, long agent)
{
	pr_company_t *co = pr_company(p, company, false);
	pr_agent_t *a = co ? pr_agent(co, agent, false) : NULL;
	if (!a || a->local_tabs == 0)
		return -1;
	int left = --a->local_tabs;
	pr_agent_gc(co, agent);
	return left;
}

int presence_local_tabs(const presence_t *p, long company, long agent)
{
	pr_company_t *co = pr_company(p, company, false);
	pr_agent_t *a = co ? pr_agent(co, agent, false) : NULL;
	return a ? a->local_tabs : 0;
}

void presence_local_each(const presence_t *p, presence_company_fn fn, void *arg)
{
	for (int c = 0; c < p->n; c++) {
		const pr_company_t *co = &p->companies[c];
		long *agents = xmalloc(((size_t)co->n + 1) * sizeof(long));
		int *tabs = xmalloc(((size_t)co->n + 1) * sizeof(int));
		int n = 0;
		for (int i = 0; i < co->n; i++)
			if (co->agents[i]->local_tabs > 0) {
				agents[n] = co->agents[i]->id;
				tabs[n++] = co->agents[i]->local_tabs;
			}
		if (n)
			fn(co->id, agents, tabs, n, arg);
		free(agents);
		free(tabs);
	}
}

void presence_report(presence_t *p, long company, long agent, const char *instance, int tabs, long long ts_ms,
		     presence_change_fn fn, void *arg)
{
	pr_company_t *co = pr_company(p, company, tabs > 0);
	pr_agent_t *a = co ? pr_agent(co, agent, tabs > 0) : NULL;
	if (!a)
		return;
	pr_set(co, a, instance, tabs, ts_ms);
	pr_settle(co, a, fn, arg);
}

void presence_snapshot(presence_t *p, long company, const char *instance, const long *agents, const int *tabs, int n,
		       long long ts_ms, presence_change_fn fn, void *arg)
{
	long *listed = xmalloc(((size_t)n + 1) * sizeof(long));
	int n_listed = 0;
	for (int i = 0; i < n; i++)
		if (tabs[i] > 0) {
			presence_report(p, company, agents[i], instance, tabs[i], ts_ms, fn, arg);
			listed[n_listed++] = agents[i];
		}
	qsort(listed, (size_t)n_listed, sizeof(long), pr_cmp_long);
	pr_company_t *co = pr_company(p, company, false);
	/* everything else this instance claimed in company is gone; collect first, the array shrinks */
	long *drop = co ? xmalloc(((size_t)co->n + 1) * sizeof(long)) : NULL;
	int n_drop = 0;
	for (int i = 0; co && i < co->n; i++) {
		pr_agent_t *a = co->agents[i];
		if (bsearch(&a->id, listed, (size_t)n_listed, sizeof(long), pr_cmp_long))
			continue;
		for (int k = 0; k < a->n_inst; k++)
			if (strcmp(a->inst[k].id, instance) == 0)
				drop[n_drop++] = a->id;
	}
	for (int i = 0; i < n_drop; i++)
		presence_report(p, company, drop[i], instance, 0, ts_ms, fn, arg);
	free(drop);
	free(listed);
}

void presence_expire(presence_t *p, long company, long agent, const char *instance, long long last_seen_ms,
		     presence_change_fn fn, void *arg)
{
	pr_company_t *co = pr_company(p, company, false);
	pr_agent_t *a = co ? pr_agent(co, agent, false) : NULL;
	if (!a)
		return;
	for (int k = 0; k < a->n_inst; k++)
		if (strcmp(a->inst[k].id, instance) == 0) {
			if (a->inst[k].last_seen > last_seen_ms)
				return; /* refreshed after the expiry was decided: the instance is alive */
			pr_set(co, a, instance, 0, last_seen_ms);
			pr_settle(co, a, fn, arg);
			return;
		}
}

void presence_stale(presence_t *p, const char *self, long long now_ms, long long max_age_ms, presence_stale_fn fn,
		    void *arg)
{
	for (int c = 0; c < p->n; c++) {
		pr_company_t *co = &p->companies[c];
		for (int i = 0; i < co->n; i++) {
			pr_agent_t *a = co->agents[i];
			for (int k = 0; k < a->n_inst; k++) {
				pr_inst_t *in = &a->inst[k];
				if (in->stale_reported || in->last_seen >= now_ms - max_age_ms || (self && strcmp(in->id, self) == 0))
					continue;
				in->stale_reported = true;
				fn(co->id, a->id, in->id, in->last_seen, arg);
			}
		}
	}
}

bool presence_online(const presence_t *p, long company, long agent)
{
	pr_company_t *co = pr_company(p, company, false);
	pr_agent_t *a = co ? pr_agent(co, agent, false) : NULL;
	return a && a->online;
}

int presence_list(const presence_t *p, long company, long *out, int cap)
{
	pr_company_t *co = pr_company(p, company, false);
	int n = 0;
	for (int i = 0; co && i < co->n; i++)
		if (co->agents[i]->online) {
			if (n < cap)
				out[n] = co->agents[i]->id;
			n++;
		}
	return n;
}

/* ---------------------------------------------------------------- internals */

static pr_company_t *pr_company(const presence_t *p, long company, bool create)
{
	for (int i = 0; i < p->n; i++)
		if (p->companies[i].id == company)
			return &p->companies[i];
	if (!create)
		return NULL;
	presence_t *w = (presence_t *)p; /* only the create path writes */
	if (w->n == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 8;
		w->companies = xrealloc(w->companies, (size_t)w->cap * sizeof(pr_company_t));
	}
	pr_company_t *co = &w->companies[w->n++];
	memset(co, 0, sizeof(*co));
	co->id = company;
	return co;
}

static int pr_agent_index(const pr_company_t *co, long agent, bool *found)
{
	int lo = 0, hi = co->n;
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (co->agents[mid]->id < agent)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < co->n && co->agents[lo]->id == agent;
	return lo;
}

static pr_agent_t *pr_agent(pr_company_t *co, long agent, bool create)
{
	bool found;
	int i = pr_agent_index(co, agent, &found);
	if (found)
		return co->agents[i];
	if (!create)
		return NULL;
	if (co->n == co->cap) {
		co->cap = co->cap ? co->cap * 2 : 16;
		co->agents = xrealloc(co->agents, (size_t)co->cap * sizeof(pr_agent_t *));
	}
	memmove(co->agents + i + 1, co->agents + i, (size_t)(co->n - i) * sizeof(pr_agent_t *));
	co->agents[i] = xcalloc(1, sizeof(pr_agent_t));
	co->agents[i]->id = agent;
	co->n++;
	return co->agents[i];
}

/* Frees an agent nobody holds or reports any more. */
static void pr_agent_gc(pr_company_t *co, long agent)
{
	bool found;
	int i = pr_agent_index(co, agent, &found);
	if (!found || co->agents[i]->local_tabs || co->agents[i]->n_inst || co->agents[i]->online)
		return;
	free(co->agents[i]->inst);
	free(co->agents[i]);
	memmove(co->agents + i, co->agents + i + 1, (size_t)(co->n - i - 1) * sizeof(pr_agent_t *));
	co->n--;
}

static void pr_set(pr_company_t *co, pr_agent_t *a, const char *instance, int tabs, long long ts)
{
	(void)co;
	for (int k = 0; k < a->n_inst; k++)
		if (strcmp(a->inst[k].id, instance) == 0) {
			if (tabs > 0) {
				a->inst[k].tabs = tabs;
				a->inst[k].last_seen = ts;
				a->inst[k].stale_reported = false;
			} else {
				a->inst[k] = a->inst[--a->n_inst];
			}
			return;
		}
	if (tabs <= 0)
		return;
	if (a->n_inst == a->cap_inst) {
		a->cap_inst = a->cap_inst ? a->cap_inst * 2 : 2;
		a->inst = xrealloc(a->inst, (size_t)a->cap_inst * sizeof(pr_inst_t));
	}
	pr_inst_t *in = &a->inst[a->n_inst++];
	memset(in, 0, sizeof(*in));
	snprintf(in->id, sizeof(in->id), "%s", instance);
	in->tabs = tabs;
	in->last_seen = ts;
}

/* Recomputes the union status of a after a change and reports it if it flipped. */
static void pr_settle(pr_company_t *co, pr_agent_t *a, presence_change_fn fn, void *arg)
{
	bool online = a->n_inst > 0;
	long id = a->id;
	if (online != a->online) {
		a->online = online;
		if (fn)
			fn(co->id, id, online, arg);
	}
	pr_agent_gc(co, id);
}

static int pr_cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return x < y ? -1 : x > y;
}
