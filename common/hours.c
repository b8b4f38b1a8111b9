/*
 * hours: business hours (see hours.h). Local time in a zone comes from localtime_r under a
 * temporarily set TZ: the processes are single-threaded, and the value is put back.
 */
#include "hours.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const hours_day_en[7] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
static const char *const hours_day_pt[7] = {"dom", "seg", "ter", "qua", "qui", "sex", "sab"};
static const char *const hours_day_name[7] = {"domingo", "segunda-feira", "terça-feira", "quarta-feira",
					      "quinta-feira", "sexta-feira", "sábado"};

static int hours_day(const char *s, size_t n);
static bool hours_minutes(const char *s, int *out);
static void hours_local(const char *tz, time_t t, struct tm *out);

bool hours_parse(const char *spec, hours_t *out, char *why, size_t whylen)
{
	memset(out, 0, sizeof(*out));
	char buf[512];
	if (!spec)
		return true;
	if (strlen(spec) >= sizeof(buf)) {
		snprintf(why, whylen, "hours: too long");
		return false;
	}
	snprintf(buf, sizeof(buf), "%s", spec);
	for (char *save = NULL, *part = strtok_r(buf, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
		while (isspace((unsigned char)*part))
			part++;
		if (!*part)
			continue;
		if (out->n == HOURS_MAX_SPANS) {
			snprintf(why, whylen, "hours: more than %d spans", HOURS_MAX_SPANS);
			return false;
		}
		char *sp = strchr(part, ' ');
		if (!sp) {
			snprintf(why, whylen, "hours: \"%s\" is not \"<days> HH:MM-HH:MM\" (e.g. \"mon-fri 08:00-18:00\")", part);
			return false;
		}
		*sp = 0;
		char *times = sp + 1;
		while (isspace((unsigned char)*times))
			times++;
		unsigned days = 0;
		for (char *save2 = NULL, *d = strtok_r(part, "+", &save2); d; d = strtok_r(NULL, "+", &save2)) {
			char *dash = strchr(d, '-');
			int a = hours_day(d, dash ? (size_t)(dash - d) : strlen(d));
			int b = dash ? hours_day(dash + 1, strlen(dash + 1)) : a;
			if (a < 0 || b < 0) {
				snprintf(why, whylen, "hours: unknown day in \"%s\" (mon tue wed thu fri sat sun, or seg ter qua qui sex sab dom)", d);
				return false;
			}
			for (int k = a;; k = (k + 1) % 7) {
				days |= 1u << k;
				if (k == b)
					break;
			}
		}
		char *dash = strchr(times, '-');
		int open, close;
		if (!dash || (*dash = 0, !hours_minutes(times, &open)) || !hours_minutes(dash + 1, &close)) {
			snprintf(why, whylen, "hours: \"%s\" is not HH:MM-HH:MM", times);
			return false;
		}
		if (close <= open) {
			snprintf(why, whylen, "hours: a span must close after it opens (%02d:%02d-%02d:%02d)", open / 60,
				 open % 60, close / 60, close % 60);
			return false;
		}
		out->spans[out->n].days = days;
		out->spans[out->n].open = open;
		out->spans[out->n].close = close;
		out->n++;
	}
	return true;
}

bool hours_tz_valid(const char *tz)
{
	char path[512];
	struct stat st;
	if (!tz || !*tz || strcmp(tz, "UTC") == 0)
		return true;
	if (strstr(tz, "..") || tz[0] == '/')
		return false;
	snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", tz);
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

bool hours_open(const hours_t *h, const char *tz, time_t now, char *back, size_t backlen)
{
	if (!h || h->n == 0)
		return true;
	struct tm tm;
	hours_local(tz, now, &tm);
	int minute = tm.tm_hour * 60 + tm.tm_min;
	for (int i = 0; i < h->n; i++)
		if ((h->spans[i].days & (1u << tm.tm_wday)) && minute >= h->spans[i].open && minute < h->spans[i].close)
			return true;
	if (!back || !backlen)
		return false;
	/* the next opening: today later, or one of the next seven days */
	for (int ahead = 0; ahead <= 7; ahead++) {
		int wday = (tm.tm_wday + ahead) % 7, best = -1;
		for (int i = 0; i < h->n; i++)
			if ((h->spans[i].days & (1u << wday)) && (ahead > 0 || h->spans[i].open > minute) &&
			    (best < 0 || h->spans[i].open < best))
				best = h->spans[i].open;
		if (best < 0)
			continue;
		if (ahead == 0)
			snprintf(back, backlen, "hoje às %02d:%02d", best / 60, best % 60);
		else if (ahead == 1)
			snprintf(back, backlen, "amanhã (%s) às %02d:%02d", hours_day_name[wday], best / 60, best % 60);
		else
			snprintf(back, backlen, "%s às %02d:%02d", hours_day_name[wday], best / 60, best % 60);
		return false;
	}
	snprintf(back, backlen, "em breve");
	return false;
}

/* The weekday named by s[0..n) (English or Portuguese, any case), -1 when none. */
static int hours_day(const char *s, size_t n)
{
	char d[4];
	if (n != 3)
		return -1;
	for (size_t i = 0; i < 3; i++)
		d[i] = (char)tolower((unsigned char)s[i]);
	d[3] = 0;
	for (int k = 0; k < 7; k++)
		if (strcmp(d, hours_day_en[k]) == 0 || strcmp(d, hours_day_pt[k]) == 0)
			return k;
	return -1;
}

/* "HH:MM" (24:00 allowed as the end of a day) into minutes. */
static bool hours_minutes(const char *s, int *out)
{
	int hh, mm;
	char tail;
	while (isspace((unsigned char)*s))
		s++;
	if (sscanf(s, "%d:%d%c", &hh, &mm, &tail) != 2 || hh < 0 || mm < 0 || mm > 59 || hh > 24 || (hh == 24 && mm))
		return false;
	*out = hh * 60 + mm;
	return true;
}

static void hours_local(const char *tz, time_t t, struct tm *out)
{
	const char *old = getenv("TZ");
	char *saved = old ? strdup(old) : NULL;
	setenv("TZ", tz && *tz ? tz : "UTC", 1);
	tzset();
	localtime_r(&t, out);
	if (saved) {
		setenv("TZ", saved, 1);
		free(saved);
	} else {
		unsetenv("TZ");
	}
	tzset();
}
