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

/* True only for a JSON true. */
bool json_true(const cJSON *obj, const char *name);

/* Adds name: value, or name: null when value is NULL. */
void json_add_str_or_null(cJSON *obj, const char *name, const char *value);

/* Formats unix seconds (milliseconds when > 1e11) as "2026-11-23T10:00:00.000Z". */
void json_iso_time(double unix_time, char *buf, size_t len);

/* The current time, formatted as json_iso_time does. */
void json_iso_now(char *buf, size_t len);

#endif
