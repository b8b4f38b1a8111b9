/*
 * log: one line per event on stderr, with level, process name and pid.
 * Lines below the current level are never formatted (the macro tests the level
 * first), so debug logging costs one comparison on hot paths.
 */
#ifndef ATENDE_LOG_H
#define ATENDE_LOG_H

#include <stdarg.h>

typedef enum {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN = 1,
	LOG_LVL_INFO = 2,
	LOG_LVL_DEBUG = 3,
} log_level_t;

typedef enum {
	LOG_FMT_TEXT = 0, /* key=value: "ts=… level=info proc=worker pid=12 msg=…" */
	LOG_FMT_JSON = 1, /* one JSON object per line */
} log_format_t;

extern log_level_t log_current_level;

/* Sets the process name printed on every line (not copied: pass a literal). */
void log_init(const char *process_name);

/* Sets the level; a level name ("error" … "debug") is parsed by log_level_parse,
 * which returns -1 for an unknown name. */
void log_set_level(log_level_t level);
int log_level_parse(const char *name);
void log_set_format(log_format_t format);

/* Writes one line; use the macros below instead, they skip formatting below the level. */
void log_write(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_at(lvl, ...)                                   \
	do {                                                   \
		if ((lvl) <= log_current_level)                    \
			log_write((lvl), __VA_ARGS__);                 \
	} while (0)
#define log_error(...) log_at(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_at(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_at(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_at(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
