/*
 * json: cJSON helpers (see json.h).
 */
#include "json.h"

#include <stdio.h>
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
	time_t s = (time_t)t;
	int ms = (int)((t - (double)s) * 1000.0);
	gmtime_r(&s, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03dZ", ms);
}

void json_iso_now(char *buf, size_t len)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	json_iso_time((double)tv.tv_sec + (double)tv.tv_usec / 1e6, buf, len);
}
