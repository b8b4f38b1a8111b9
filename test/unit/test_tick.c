/* Unit tests for common/tick: ticks of one period share a wakeup; freeing from a callback;
 * tick_now; moving a tick to another period. Real event loops with short periods, each run
 * ended by a condition (and a 5 s guard that fails the test), never by a sleep. */
#include "tick.h"
#include "unit.h"

#include <event2/event.h>
#include <stdbool.h>

static char calls[64];
static struct timeval call_at[64]; /* the loop's cached time: the same for all of one pass */
static int n_calls;
static struct event_base *base;
static tick_t *a, *b, *c;
static bool guard_fired;

static void record(char who)
{
	if (n_calls < (int)sizeof(calls) - 1) {
		event_base_gettimeofday_cached(base, &call_at[n_calls]);
		calls[n_calls++] = who;
	}
	calls[n_calls] = 0;
}

static void guard_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	guard_fired = true;
	event_base_loopbreak(base);
}

/* Runs the loop until a callback breaks it, or the guard after 5 s. */
static void run_loop(void)
{
	guard_fired = false;
	struct event *guard = evtimer_new(base, guard_cb, NULL);
	struct timeval five = {5, 0};
	evtimer_add(guard, &five);
	event_base_dispatch(base);
	event_free(guard);
}

static void reset(void)
{
	n_calls = 0;
	calls[0] = 0;
	base = event_base_new();
}

static void a_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	record('a');
	if (n_calls >= 12)
		event_base_loopbreak(base);
}

static void b_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	record('b');
}

static void c_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	record('c');
}

static void start_b(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	b = tick_new(base, 20, b_cb, NULL);
}

TEST(ticks_of_one_period_run_in_the_same_pass)
{
	reset();
	a = tick_new(base, 20, a_cb, NULL);
	c = tick_new(base, 30, c_cb, NULL);
	/* b starts 7 ms after a: a timer of its own would fire 7 ms after a's, every time */
	struct event *later = evtimer_new(base, start_b, NULL);
	struct timeval seven = {0, 7000};
	evtimer_add(later, &seven);
	run_loop();
	CHECK(!guard_fired);
	/* every b runs in the pass of an a, right after it, whatever c does */
	int pairs = 0;
	for (int i = 0; i < n_calls; i++)
		if (calls[i] == 'b') {
			CHECK(i > 0 && calls[i - 1] == 'a' && evutil_timercmp(&call_at[i], &call_at[i - 1], ==));
			pairs++;
		}
	CHECK(pairs >= 4);
	CHECK(strchr(calls, 'c') != NULL);
	event_free(later);
	tick_free(a);
	tick_free(b);
	tick_free(c);
	event_base_free(base);
}

static void b_frees_itself_and_c(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	record('b');
	tick_free(b);
	b = NULL;
	tick_free(c);
	c = NULL;
}

static void a_counts(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	record('a');
	if (n_calls >= 5)
		event_base_loopbreak(base);
}

TEST(a_tick_freed_from_a_callback_of_its_pass_is_not_called_again)
{
	reset();
	a = tick_new(base, 20, a_counts, NULL);
	b = tick_new(base, 20, b_frees_itself_and_c, NULL);
	c = tick_new(base, 20, c_cb, NULL); /* after b in the pass: freed before its turn */
	run_loop();
	CHECK(!guard_fired);
	CHECK_STR(calls, "abaaa");
	tick_free(a);
	event_base_free(base);
}

static void now_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	record('n');
	event_base_loopbreak(base);
}

TEST(tick_now_runs_it_without_waiting_for_its_period)
{
	reset();
	a = tick_new(base, 60000, now_cb, NULL);
	tick_now(a);
	run_loop();
	CHECK(!guard_fired);
	CHECK_STR(calls, "n");
	tick_free(a);
	event_base_free(base);
}

TEST(a_tick_moved_to_another_period_leaves_its_old_one)
{
	reset();
	a = tick_new(base, 60000, now_cb, NULL);
	b = tick_new(base, 60000, b_cb, NULL);
	tick_set_period(a, 20);
	run_loop(); /* a, now every 20 ms, ends the loop; b stays at a minute */
	CHECK(!guard_fired);
	CHECK_STR(calls, "n");
	tick_free(a);
	tick_free(b);
	tick_free(NULL);
	event_base_free(base);
}

int main(void)
{
	RUN(ticks_of_one_period_run_in_the_same_pass);
	RUN(a_tick_freed_from_a_callback_of_its_pass_is_not_called_again);
	RUN(tick_now_runs_it_without_waiting_for_its_period);
	RUN(a_tick_moved_to_another_period_leaves_its_old_one);
	return unit_done();
}
