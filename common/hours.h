/*
 * hours: a company's business hours ("mon-fri 08:00-18:00, sat 09:00-13:00") in its time
 * zone: parsed once (config validation), then asked whether a moment is inside them and,
 * when not, when they open next (the bot tells customers when agents are back). Pure
 * apart from the time-zone database (TZ files under /usr/share/zoneinfo).
 */
#ifndef ATENDE_HOURS_H
#define ATENDE_HOURS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define HOURS_MAX_SPANS 14

/* Opening spans: each a set of weekdays (bit 0 = Sunday .. bit 6 = Saturday, as tm_wday)
 * and minutes of the day [open, close); close <= open is never open. */
typedef struct {
	struct { unsigned days; int open, close; } spans[HOURS_MAX_SPANS];
	int n;
} hours_t;

/* Parses spec: comma-separated "<days> HH:MM-HH:MM", days "mon".."sun" (Portuguese
 * "seg".."dom" too), a range "mon-fri" (wrapping: "sat-sun", "fri-mon") or a list
 * "mon+wed". Empty spec = always open (n 0). False with why (no "file:line") on error. */
bool hours_parse(const char *spec, hours_t *out, char *why, size_t whylen) __attribute__((warn_unused_result));

/* True when tz (an IANA name such as "America/Sao_Paulo"; "" or NULL = UTC) is known. */
bool hours_tz_valid(const char *tz);

/* True when now is inside h in tz (always, for no spans). When false and back is non-NULL,
 * writes when they open next, in Portuguese, e.g. "amanhã (terça-feira) às 08:00" or
 * "hoje às 08:00" or "segunda-feira às 08:00", local time. */
bool hours_open(const hours_t *h, const char *tz, time_t now, char *back, size_t backlen);

#endif
