/*
 * json: small helpers over cJSON for the shapes atende reads and writes everywhere:
 * typed member lookups that tolerate absent or mistyped members, and ISO-8601 UTC
 * timestamps with milliseconds (the format of every time field atende emits).
 */
#ifndef ATENDE_JSON_H
#define ATENDE_JSON_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>

/* The member's string, or NULL when absent or not a string. */
const char *json_str(const cJSON *obj, const char *name);

/* The member's number, or def when absent or not a number. */
double json_num(const cJSON *obj, const char *name, double def);

/* True when v is a JSON number holding an integer within lo..hi (both within ±2^53, where a
 * double holds every integer), stored in *out; false for anything else, without casting an
 * out-of-range double (undefined behaviour). */
bool json_int_in(const cJSON *v, long long lo, long long hi, long long *out) __attribute__((warn_unused_result));

/* True only for a JSON true. */
bool json_true(const cJSON *obj, const char *name);

/* Adds name: value, or name: null when value is NULL. */
void json_add_str_or_null(cJSON *obj, const char *name, const char *value);

/* Formats unix seconds (milliseconds when > 1e11) as "2026-11-23T10:00:00.000Z"; a time that
 * is not between 1970 and 9999 (or not a number) as the epoch: callers validate first. */
void json_iso_time(double unix_time, char *buf, size_t len);

/* Unix time in milliseconds, formatted as json_iso_time does but with integer arithmetic (no
 * rounding of the milliseconds); returns buf. */
const char *json_iso_ms(long long ms, char buf[32]);

/* Parses what json_iso_ms writes (also without milliseconds) back to Unix ms; false when s is
 * not such a time. */
bool json_iso_parse_ms(const char *s, long long *ms) __attribute__((warn_unused_result));

/* The current time, formatted as json_iso_time does. */
void json_iso_now(char *buf, size_t len);

/* Writes src escaped for the inside of a JSON string (as cJSON escapes: \" \\ \b \f \n \r \t,
 * other control bytes as \u00XX, UTF-8 as is) into dst, NUL-terminated; stops before an
 * escape that would not fit, so cap = 6 * strlen(src) + 1 always holds all of it. Returns the
 * length written. */
size_t json_escape(char *dst, size_t cap, const char *src);

/* A JSON object written straight into one growing buffer: for documents built per request
 * on a hot path, where a cJSON tree would cost a malloc per member. Members appear in the
 * order written; strings are escaped as cJSON escapes them. Out of memory leaves failed set
 * and json_out_finish returning NULL. */
typedef struct {
	char *buf;
	size_t len, cap;
	bool need_comma;
	bool failed;
} json_out_t;

/* Every member writer takes name NULL for an element of the array being written. */

/* Starts the outermost object. */
void json_out_begin(json_out_t *o);

/* name: "value" (escaped), or name: null when value is NULL. */
void json_out_str(json_out_t *o, const char *name, const char *value);

/* name: number (integers without a fraction). */
void json_out_num(json_out_t *o, const char *name, double value);

void json_out_bool(json_out_t *o, const char *name, bool value);

/* name: { ... opens a nested object, closed by json_out_end. */
void json_out_object(json_out_t *o, const char *name);
void json_out_end(json_out_t *o);

/* name: [ ... opens an array, closed by json_out_array_end. */
void json_out_array(json_out_t *o, const char *name);
void json_out_array_end(json_out_t *o);

/* name: followed by json, a JSON value's text written as is (the caller vouches for it). */
void json_out_json(json_out_t *o, const char *name, const char *json);

/* Closes the outermost object; returns the malloc'd, NUL-terminated document (the caller
 * frees it) and its length, or NULL when memory ran out. */
char *json_out_finish(json_out_t *o, size_t *len);

#endif
