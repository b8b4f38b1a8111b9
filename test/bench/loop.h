/*
 * loop: the one libevent loop a bench run lives in, its clocks, and why the run had to stop.
 * Every module of the run reports a fatal problem here, so the first reason is the one printed
 * and nothing else needs to know who stopped the loop.
 */
#ifndef ATENDE_BENCH_LOOP_H
#define ATENDE_BENCH_LOOP_H

#include <stdbool.h>

#include <event2/event.h>

/* Creates the loop, with precise timers: epoll's millisecond timeout would add up to 1 ms of
 * sending lateness to every scheduled message, which the ack times (taken from the schedule)
 * count. False when it cannot be created. */
bool loop_init(void) __attribute__((warn_unused_result));

/* The loop; NULL before loop_init and after loop_free. */
struct event_base *loop_base(void);

/* Frees the loop. Only when no socket references it any more: the process ends anyway. */
void loop_free(void);

/* Runs the loop while open sockets finish their close handshake (the last one to close breaks
 * out), for at most 3 s plus 1 s per 5,000 of them: many close at once, and the notifier answers
 * every close frame. Returns at once when open is 0. */
void loop_wait_closes(int open);

/* event_free that takes NULL, for events a failed set-up never created. */
void loop_event_free(struct event *ev);

/* Records why the run cannot go on (the first reason wins) and stops the loop. */
void loop_failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The reason recorded by loop_failf, "" while there is none. */
const char *loop_fatal(void);

/* Monotonic seconds, for schedules and durations. */
double loop_now(void);

/* Wall-clock Unix milliseconds, to compare with the timestamps the system writes. */
double loop_wall_ms(void);

#endif
