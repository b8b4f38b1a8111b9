/*
 * typing: an unsorted array of active states (see typing.h). An instance holds only the
 * states its own consoles started, a few hundred at most, so linear scans are the
 * simplest thing that is fast enough.
 */
#include "typing.h"
#include "xalloc.h"

#include <stdlib.h>

typedef struct {
	int64_t conversation;
	long agent, company;
	void *owner;
	long long expires_ms;
} ty_state_t;

struct typing {
	ty_state_t *s;
	int n, cap;
};

static int ty_find(const typing_t *t, int64_t conversation, long agent);
static void ty_remove(typing_t *t, int i);

typing_t *typing_new(void)
{
	return xcalloc(1, sizeof(typing_t));
}

void typing_free(typing_t *t)
{
	if (!t)
		return;
	free(t->s);
	free(t);
}

bool typing_start(typing_t *t, int64_t conversation, long agent, long company, void *owner, long long expires_ms)
{
	int i = ty_find(t, conversation, agent);
	if (i >= 0) {
		t->s[i].expires_ms = expires_ms;
		t->s[i].owner = owner; /* the latest tab that typed is the one whose close ends it */
		return false;
	}
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->s = xrealloc(t->s, (size_t)t->cap * sizeof(ty_state_t));
	}
	t->s[t->n++] = (ty_state_t){conversation, agent, company, owner, expires_ms};
	return true;
}

bool typing_stop(typing_t *t, int64_t conversation, long agent)
{
	int i = ty_find(t, conversation, agent);
	if (i < 0)
		return false;
	ty_remove(t, i);
	return true;
}

bool typing_active(const typing_t *t, int64_t conversation, long agent)
{
	return ty_find(t, conversation, agent) >= 0;
}

int typing_expire(typing_t *t, long long now_ms, typing_end_fn fn, void *arg)
{
	int n = 0;
	for (;;) {
		int first = -1;
		for (int i = 0; i < t->n; i++)
			if (t->s[i].expires_ms <= now_ms && (first < 0 || t->s[i].expires_ms < t->s[first].expires_ms))
				first = i;
		if (first < 0)
			return n;
		ty_state_t s = t->s[first];
		ty_remove(t, first);
		n++;
		if (fn)
			fn(s.conversation, s.agent, s.company, arg);
	}
}

int typing_drop_owner(typing_t *t, const void *owner, typing_end_fn fn, void *arg)
{
	int n = 0;
	for (int i = 0; i < t->n;) {
		if (t->s[i].owner != owner) {
			i++;
			continue;
		}
		ty_state_t s = t->s[i];
		ty_remove(t, i);
		n++;
		if (fn)
			fn(s.conversation, s.agent, s.company, arg);
	}
	return n;
}

int typing_count(const typing_t *t)
{
	return t->n;
}

long long typing_next_expiry(const typing_t *t)
{
	long long next = -1;
	for (int i = 0; i < t->n; i++)
		if (next < 0 || t->s[i].expires_ms < next)
			next = t->s[i].expires_ms;
	return next;
}

static int ty_find(const typing_t *t, int64_t conversation, long agent)
{
	for (int i = 0; i < t->n; i++)
		if (t->s[i].conversation == conversation && t->s[i].agent == agent)
			return i;
	return -1;
}

static void ty_remove(typing_t *t, int i)
{
	t->s[i] = t->s[--t->n];
}
