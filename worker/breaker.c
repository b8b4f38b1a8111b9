/*
 * breaker: circuit breaker over a sliding window of call outcomes (see breaker.h).
 * The window is a ring of BREAKER_BUCKETS time slices, so memory is fixed and an
 * outcome expires at most one slice late; no clock is read here.
 */
#include "breaker.h"

#include <string.h>

static void breaker_reset_window(breaker_t *b);
static void breaker_open(breaker_t *b, int64_t now_ms);

void breaker_params_default(breaker_params_t *p)
{
	p->window_ms = 60000;
	p->min_calls = 10;
	p->error_pct = 50;
	p->open_ms = 30000;
}

void breaker_init(breaker_t *b, const breaker_params_t *p)
{
	memset(b, 0, sizeof(*b));
	b->p = *p;
	if (b->p.window_ms < 1)
		b->p.window_ms = 1;
	if (b->p.min_calls < 1)
		b->p.min_calls = 1;
	if (b->p.error_pct < 1)
		b->p.error_pct = 1;
	if (b->p.error_pct > 100)
		b->p.error_pct = 100;
	if (b->p.open_ms < 0)
		b->p.open_ms = 0;
	b->bucket_ms = b->p.window_ms / BREAKER_BUCKETS;
	if (b->bucket_ms < 1)
		b->bucket_ms = 1;
	b->state = BREAKER_CLOSED;
	breaker_reset_window(b);
}

bool breaker_allow(breaker_t *b, int64_t now_ms, bool *probe)
{
	if (probe)
		*probe = false;
	switch (b->state) {
	case BREAKER_CLOSED:
		return true;
	case BREAKER_OPEN:
		if (now_ms - b->opened_at < b->p.open_ms)
			return false;
		b->state = BREAKER_HALF_OPEN;
		b->probe_out = false;
		/* this call may be the probe */
		__attribute__((fallthrough));
	case BREAKER_HALF_OPEN:
		if (b->probe_out)
			return false;
		b->probe_out = true;
		if (probe)
			*probe = true;
		return true;
	}
	return false;
}

void breaker_record(breaker_t *b, int64_t now_ms, breaker_outcome_t outcome, bool probe)
{
	if (b->state == BREAKER_HALF_OPEN) {
		if (!probe)
			return; /* a call from before the breaker opened: says nothing about now */
		b->probe_out = false;
		if (outcome == BREAKER_OK) {
			b->state = BREAKER_CLOSED;
			breaker_reset_window(b);
		} else if (outcome == BREAKER_FAIL) {
			breaker_open(b, now_ms);
		}
		return;
	}
	if (b->state == BREAKER_OPEN || outcome == BREAKER_NEUTRAL)
		return;

	int64_t start = now_ms - now_ms % b->bucket_ms;
	int i = (int)((now_ms / b->bucket_ms) % BREAKER_BUCKETS);
	if (i < 0)
		i += BREAKER_BUCKETS;
	if (b->b[i].start != start) {
		b->b[i].start = start;
		b->b[i].calls = b->b[i].errors = 0;
	}
	b->b[i].calls++;
	if (outcome == BREAKER_FAIL)
		b->b[i].errors++;

	int calls, errors;
	breaker_window(b, now_ms, &calls, &errors);
	if (calls >= b->p.min_calls && (int64_t)errors * 100 >= (int64_t)b->p.error_pct * calls)
		breaker_open(b, now_ms);
}

void breaker_half_open(breaker_t *b)
{
	if (b->state != BREAKER_OPEN)
		return;
	b->state = BREAKER_HALF_OPEN;
	b->probe_out = false;
}

breaker_state_t breaker_state(const breaker_t *b)
{
	return b->state;
}

const char *breaker_state_name(breaker_state_t s)
{
	switch (s) {
	case BREAKER_CLOSED:
		return "closed";
	case BREAKER_OPEN:
		return "open";
	case BREAKER_HALF_OPEN:
		return "half_open";
	}
	return "unknown";
}

void breaker_window(const breaker_t *b, int64_t now_ms, int *calls, int *errors)
{
	*calls = *errors = 0;
	for (int i = 0; i < BREAKER_BUCKETS; i++) {
		/* a slice counts while any part of it is inside (now - window, now] */
		if (b->b[i].start > now_ms - b->p.window_ms && b->b[i].start <= now_ms) {
			*calls += b->b[i].calls;
			*errors += b->b[i].errors;
		}
	}
}

static void breaker_reset_window(breaker_t *b)
{
	for (int i = 0; i < BREAKER_BUCKETS; i++) {
		b->b[i].start = INT64_MIN;
		b->b[i].calls = b->b[i].errors = 0;
	}
}

static void breaker_open(breaker_t *b, int64_t now_ms)
{
	b->state = BREAKER_OPEN;
	b->opened_at = now_ms;
	b->probe_out = false;
	b->opens++;
	breaker_reset_window(b);
}
