/*
 * json: cJSON helpers (see json.h).
 */
#include "json.h"
#include "xalloc.h"

#include <math.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

const char *json_str(const cJSON *obj, const char *name)
{
	const cJSON *v = cJSON_GetObjectItem(obj, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

double json_num(const cJSON *obj, const char *name, double def)
{
	const cJSON *v = cJSON_GetObjectItem(obj, name);
	return cJSON_IsNumber(v) ? v->valuedouble : def;
}

bool json_int_in(const cJSON *v, long long lo, long long hi, long long *out)
{
	if (!cJSON_IsNumber(v))
		return false;
	double d = v->valuedouble;
	if (!(d >= (double)lo && d <= (double)hi) || d != (double)(long long)d)
		return false;
	*out = (long long)d;
	return true;
}

bool json_true(const cJSON *obj, const char *name)
{
	return cJSON_IsTrue(cJSON_GetObjectItem(obj, name));
}

void json_add_str_or_null(cJSON *obj, const char *name, const char *value)
{
	if (value)
		cJSON_AddStringToObject(obj, name, value);
	else
		cJSON_AddNullToObject(obj, name);
}

void json_iso_time(double t, char *buf, size_t len)
{
	struct tm tm;
	if (t > 1e11)
		t /= 1000.0;
	if (!(t >= 0 && t < 253402300800.0)) /* NaN, negative, or past 9999: casting it to time_t is undefined */
		t = 0;
	time_t s = (time_t)t;
	int ms = (int)((t - (double)s) * 1000.0);
	gmtime_r(&s, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03dZ", ms);
}

const char *json_iso_ms(long long ms, char buf[32])
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&s, &tm);
	size_t n = strftime(buf, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, 32 - n, ".%03dZ", (int)(ms % 1000));
	return buf;
}

bool json_iso_parse_ms(const char *s, long long *ms)
{
	struct tm tm = {0};
	int frac = 0, used = 0;
	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
			 &tm.tm_sec, &used) != 6)
		return false;
	s += used;
	if (*s == '.') {
		if (sscanf(s + 1, "%3d%n", &frac, &used) != 1 || used != 3)
			return false;
		s += 1 + used;
	}
	if (strcmp(s, "Z") != 0)
		return false;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*ms = (long long)timegm(&tm) * 1000 + frac;
	return true;
}

void json_iso_now(char *buf, size_t len)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	json_iso_time((double)tv.tv_sec + (double)tv.tv_usec / 1e6, buf, len);
}

size_t json_escape(char *dst, size_t cap, const char *src)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)src; *p; p++) {
		char two = 0;
		switch (*p) {
		case '"': two = '"'; break;
		case '\\': two = '\\'; break;
		case '\b': two = 'b'; break;
		case '\f': two = 'f'; break;
		case '\n': two = 'n'; break;
		case '\r': two = 'r'; break;
		case '\t': two = 't'; break;
		}
		size_t need = two ? 2 : *p < 0x20 ? 6 : 1;
		if (o + need + 1 > cap)
			break;
		if (two) {
			dst[o++] = '\\';
			dst[o++] = two;
		} else if (*p < 0x20) {
			memcpy(dst + o, "\\u00", 4);
			dst[o + 4] = hex[*p >> 4];
			dst[o + 5] = hex[*p & 15];
			o += 6;
		} else {
			dst[o++] = (char)*p;
		}
	}
	if (cap)
		dst[o] = 0;
	return o;
}

/* Makes room for n more bytes plus a NUL. */
static bool json_out_reserve(json_out_t *o, size_t n)
{
	if (o->failed)
		return false;
	if (o->len + n + 1 <= o->cap)
		return true;
	size_t cap = o->cap ? o->cap : 512;
	while (cap < o->len + n + 1)
		cap *= 2;
	char *b = xrealloc(o->buf, cap);
	if (!b) {
		o->failed = true;
		return false;
	}
	o->buf = b;
	o->cap = cap;
	return true;
}

static void json_out_raw(json_out_t *o, const char *s, size_t n)
{
	if (!json_out_reserve(o, n))
		return;
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = 0;
}

static void json_out_string(json_out_t *o, const char *s)
{
	size_t cap = 6 * strlen(s) + 1; /* worst case: every byte becomes \u00XX */
	if (!json_out_reserve(o, cap + 2))
		return;
	o->buf[o->len++] = '"';
	o->len += json_escape(o->buf + o->len, cap, s);
	o->buf[o->len++] = '"';
	o->buf[o->len] = 0;
}

static void json_out_name(json_out_t *o, const char *name)
{
	if (o->need_comma)
		json_out_raw(o, ",", 1);
	if (name) {
		json_out_string(o, name);
		json_out_raw(o, ":", 1);
	}
	o->need_comma = true;
}

void json_out_begin(json_out_t *o)
{
	memset(o, 0, sizeof(*o));
	json_out_raw(o, "{", 1);
}

void json_out_str(json_out_t *o, const char *name, const char *value)
{
	json_out_name(o, name);
	if (value)
		json_out_string(o, value);
	else
		json_out_raw(o, "null", 4);
}

void json_out_num(json_out_t *o, const char *name, double value)
{
	char num[40];
	/* the range first: casting a double outside long long's range is undefined (a fuzzed
	 * "fileLength" of 4.5e29 was); JSON has no inf or nan */
	int n = !isfinite(value) ? snprintf(num, sizeof(num), "null")
		: value > -1e15 && value < 1e15 && value == (double)(long long)value
			? snprintf(num, sizeof(num), "%lld", (long long)value)
			: snprintf(num, sizeof(num), "%.17g", value);
	json_out_name(o, name);
	json_out_raw(o, num, (size_t)n);
}

void json_out_bool(json_out_t *o, const char *name, bool value)
{
	json_out_name(o, name);
	json_out_raw(o, value ? "true" : "false", value ? 4 : 5);
}

/* Opens a nested object or array ("{" or "["). */
static void json_out_open(json_out_t *o, const char *name, const char *bracket)
{
	json_out_name(o, name);
	json_out_raw(o, bracket, 1);
	o->need_comma = false;
}

static void json_out_close(json_out_t *o, const char *bracket)
{
	json_out_raw(o, bracket, 1);
	o->need_comma = true;
}

void json_out_object(json_out_t *o, const char *name)
{
	json_out_open(o, name, "{");
}

void json_out_end(json_out_t *o)
{
	json_out_close(o, "}");
}

void json_out_array(json_out_t *o, const char *name)
{
	json_out_open(o, name, "[");
}

void json_out_array_end(json_out_t *o)
{
	json_out_close(o, "]");
}

void json_out_json(json_out_t *o, const char *name, const char *json)
{
	json_out_name(o, name);
	json_out_raw(o, json, strlen(json));
}

char *json_out_finish(json_out_t *o, size_t *len)
{
	json_out_raw(o, "}", 1);
	if (o->failed) {
		free(o->buf);
		o->buf = NULL;
		return NULL;
	}
	*len = o->len;
	return o->buf;
}
