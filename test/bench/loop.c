/*
 * loop: the bench's event loop and fatal reason. One loop per process, so its state is a
 * file-level static, like the run it serves.
 */
#include "loop.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static struct {
	struct event_base *base;
	char fatal[512]; /* why the run could not happen: non-empty stops the loop */
} L;

bool loop_init(void)
{
	struct event_config *ec = event_config_new();
	if (!ec)
		return false;
	event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
	L.base = event_base_new_with_config(ec);
	event_config_free(ec);
	return L.base != NULL;
}

struct event_base *loop_base(void)
{
	return L.base;
}

void loop_free(void)
{
	if (L.base)
		event_base_free(L.base);
	L.base = NULL;
}

void loop_wait_closes(int open)
{
	if (!L.base || open <= 0)
		return;
	struct timeval tv = {3 + open / 5000, 0};
	event_base_loopexit(L.base, &tv);
	event_base_dispatch(L.base);
}

void loop_event_free(struct event *ev)
{
	if (ev)
		event_free(ev);
}

void loop_failf(const char *fmt, ...)
{
	if (L.fatal[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(L.fatal, sizeof(L.fatal), fmt, ap);
	va_end(ap);
	if (L.base)
		event_base_loopbreak(L.base);
}

const char *loop_fatal(void)
{
	return L.fatal;
}

double loop_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double loop_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}
