/* tick: periodic callbacks sharing one timer per period (see tick.h). */
#include "tick.h"

#include "xalloc.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* The ticks of one period on one base, and the one timer that calls them. */
typedef struct tick_group {
	struct tick_group *next;
	struct event_base *base;
	int period_ms;
	struct event *ev;
	tick_t **ticks;
	int n, cap;
	bool firing; /* in tick_group_fire: removals leave a NULL, compacted after */
} tick_group_t;

struct tick {
	tick_group_t *group;
	struct event *now_ev;
	event_callback_fn cb;
	void *arg;
};

static tick_group_t *tick_groups;

static void tick_join(tick_t *t, struct event_base *base, int period_ms);
static void tick_leave(tick_t *t);
static void tick_group_drop_if_empty(tick_group_t *g);
static void tick_group_fire(evutil_socket_t fd, short what, void *arg);
static void tick_fire_now(evutil_socket_t fd, short what, void *arg);

tick_t *tick_new(struct event_base *base, int period_ms, event_callback_fn cb, void *arg)
{
	tick_t *t = xcalloc(1, sizeof(*t));
	t->cb = cb;
	t->arg = arg;
	t->now_ev = evtimer_new(base, tick_fire_now, t);
	tick_join(t, base, period_ms);
	return t;
}

void tick_set_period(tick_t *t, int period_ms)
{
	struct event_base *base = t->group->base;
	if (t->group->period_ms == (period_ms > 0 ? period_ms : 1))
		return;
	tick_leave(t);
	tick_join(t, base, period_ms);
}

void tick_now(tick_t *t)
{
	event_active(t->now_ev, EV_TIMEOUT, 0);
}

void tick_free(tick_t *t)
{
	if (!t)
		return;
	tick_leave(t);
	event_free(t->now_ev);
	free(t);
}

static void tick_join(tick_t *t, struct event_base *base, int period_ms)
{
	if (period_ms <= 0)
		period_ms = 1;
	tick_group_t *g = tick_groups;
	while (g && !(g->base == base && g->period_ms == period_ms))
		g = g->next;
	if (!g) {
		g = xcalloc(1, sizeof(*g));
		g->base = base;
		g->period_ms = period_ms;
		g->ev = event_new(base, -1, EV_PERSIST, tick_group_fire, g);
		struct timeval tv = {period_ms / 1000, (period_ms % 1000) * 1000};
		event_add(g->ev, &tv);
		g->next = tick_groups;
		tick_groups = g;
	}
	if (g->n == g->cap) {
		g->cap = g->cap ? g->cap * 2 : 8;
		g->ticks = xrealloc(g->ticks, (size_t)g->cap * sizeof(*g->ticks));
	}
	g->ticks[g->n++] = t;
	t->group = g;
}

static void tick_leave(tick_t *t)
{
	tick_group_t *g = t->group;
	for (int i = 0; i < g->n; i++)
		if (g->ticks[i] == t) {
			if (g->firing) {
				g->ticks[i] = NULL;
			} else {
				memmove(&g->ticks[i], &g->ticks[i + 1], (size_t)(g->n - i - 1) * sizeof(*g->ticks));
				g->n--;
			}
			break;
		}
	t->group = NULL;
	if (!g->firing)
		tick_group_drop_if_empty(g);
}

/* A group without ticks goes with its timer: its base may be freed next. */
static void tick_group_drop_if_empty(tick_group_t *g)
{
	if (g->n > 0)
		return;
	tick_group_t **at = &tick_groups;
	while (*at != g)
		at = &(*at)->next;
	*at = g->next;
	event_free(g->ev);
	free(g->ticks);
	free(g);
}

static void tick_group_fire(evutil_socket_t fd, short what, void *arg)
{
	tick_group_t *g = arg;
	(void)fd, (void)what;
	g->firing = true;
	int n = g->n; /* ticks that join from a callback start at the next period */
	for (int i = 0; i < n; i++)
		if (g->ticks[i])
			g->ticks[i]->cb(-1, EV_TIMEOUT, g->ticks[i]->arg);
	g->firing = false;
	int kept = 0;
	for (int i = 0; i < g->n; i++)
		if (g->ticks[i])
			g->ticks[kept++] = g->ticks[i];
	g->n = kept;
	tick_group_drop_if_empty(g);
}

static void tick_fire_now(evutil_socket_t fd, short what, void *arg)
{
	tick_t *t = arg;
	(void)fd, (void)what;
	t->cb(-1, EV_TIMEOUT, t->arg);
}
