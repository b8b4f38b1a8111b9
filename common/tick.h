/*
 * tick: periodic callbacks that share one timer per period in a process, so that the
 * timers of one loop with the same period (a worker has about ten of 1 s) wake it once
 * instead of each at its own phase. An idle process's CPU is mostly wakeups (the idle
 * measurements in docs/performance.md).
 */
#ifndef ATENDE_TICK_H
#define ATENDE_TICK_H

#include <event2/event.h>

typedef struct tick tick_t;

/* Calls cb(-1, EV_TIMEOUT, arg) every period_ms (> 0), on the same wakeups as every other
 * tick of that period on base; the first call within one period. Returns the tick, owned
 * by the caller (tick_free). */
tick_t *tick_new(struct event_base *base, int period_ms, event_callback_fn cb, void *arg);

/* Moves it to another period. */
void tick_set_period(tick_t *t, int period_ms);

/* Runs the callback once more from the loop as soon as it can, besides its period's calls. */
void tick_now(tick_t *t);

/* Stops and frees it (also from within a tick's callback; the period's timer goes with its
 * last tick); NULL is a no-op. */
void tick_free(tick_t *t);

#endif
