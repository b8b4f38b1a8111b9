/*
 * log: formatting and writing of log lines (see log.h). One write(2) per line so
 * lines of concurrently logging processes sharing stderr do not interleave.
 */
#include "log.h"
#include "json.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

log_level_t log_current_level = LOG_LVL_INFO;

static const char *log_process = "atende";
static log_format_t log_format = LOG_FMT_TEXT;
static const char *const log_level_names[] = {"error", "warn", "info", "debug"};


void log_init(const char *process_name)
{
	log_process = process_name;
}

void log_set_level(log_level_t level)
{
	log_current_level = level;
}

void log_set_format(log_format_t format)
{
	log_format = format;
}

int log_level_parse(const char *name)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(name, log_level_names[i]) == 0)
			return i;
	return -1;
}

void log_write(log_level_t level, const char *fmt, ...)
{
	char msg[4096], line[8192 + 256], ts[40];
	struct timeval tv;
	struct tm tm;
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = (int)strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - (size_t)n, ".%03dZ", (int)(tv.tv_usec / 1000));

	if (log_format == LOG_FMT_JSON) {
		char esc[8192];
		json_escape(esc, sizeof(esc), msg);
		n = snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"proc\":\"%s\",\"pid\":%d,\"msg\":\"%s\"}\n",
			     ts, log_level_names[level], log_process, (int)getpid(), esc);
	} else {
		n = snprintf(line, sizeof(line), "ts=%s level=%s proc=%s pid=%d %s\n", ts,
			     log_level_names[level], log_process, (int)getpid(), msg);
	}
	if (n > (int)sizeof(line) - 1)
		n = (int)sizeof(line) - 1;
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}

