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

/* Copies src into dst (cap bytes, NUL-terminated) with control bytes written as \n, \r, \t
 * or \xNN: text from the network (a customer's message, a header) must not start a line of
 * its own that a log reader would take for atende's. */
static void log_escape_controls(char *dst, size_t cap, const char *src)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)src; *p && o + 5 < cap; p++) {
		if (*p >= 0x20 && *p != 0x7f) {
			dst[o++] = (char)*p;
		} else if (*p == '\n' || *p == '\r' || *p == '\t') {
			dst[o++] = '\\';
			dst[o++] = *p == '\n' ? 'n' : *p == '\r' ? 'r' : 't';
		} else {
			dst[o++] = '\\', dst[o++] = 'x', dst[o++] = hex[*p >> 4], dst[o++] = hex[*p & 15];
		}
	}
	dst[o] = '\0';
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
		char safe[8192];
		log_escape_controls(safe, sizeof(safe), msg);
		n = snprintf(line, sizeof(line), "ts=%s level=%s proc=%s pid=%d %s\n", ts,
			     log_level_names[level], log_process, (int)getpid(), safe);
	}
	if (n > (int)sizeof(line) - 1)
		n = (int)sizeof(line) - 1;
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}

