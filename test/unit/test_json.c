/* Unit tests of common/json: the direct JSON writer (json_out_*) against cJSON, which
 * reads every document it writes, and the ISO time format. */
#include "json.h"
#include "unit.h"

#include <stdlib.h>

TEST(writer_exact_text)
{
	json_out_t o;
	size_t len = 0;
	json_out_begin(&o);
	json_out_num(&o, "v", 1);
	json_out_str(&o, "text", "a\"b\\c\n\t\x01 ção 😀");
	json_out_str(&o, "none", NULL);
	json_out_bool(&o, "yes", true);
	json_out_bool(&o, "no", false);
	json_out_object(&o, "media");
	json_out_num(&o, "size", 1234567);
	json_out_num(&o, "ratio", 0.5);
	json_out_end(&o);
	json_out_num(&o, "neg", -42);
	char *doc = json_out_finish(&o, &len);
	CHECK_STR(doc, "{\"v\":1,\"text\":\"a\\\"b\\\\c\\n\\t\\u0001 ção 😀\",\"none\":null,\"yes\":true,\"no\":false,"
		       "\"media\":{\"size\":1234567,\"ratio\":0.5},\"neg\":-42}");
	CHECK(doc && len == strlen(doc));
	free(doc);
}

/* Every byte from 1 to 255 survives a write and a cJSON read unchanged. */
TEST(writer_round_trips_every_byte)
{
	char all[256];
	for (int i = 1; i < 256; i++)
		all[i - 1] = (char)i;
	all[255] = 0;
	json_out_t o;
	size_t len = 0;
	json_out_begin(&o);
	json_out_str(&o, "s", all);
	char *doc = json_out_finish(&o, &len);
	cJSON *back = cJSON_ParseWithLength(doc, len);
	CHECK(back != NULL);
	CHECK_STR(json_str(back, "s"), all);
	cJSON_Delete(back);
	free(doc);
}

/* Grows past its first buffer without losing anything. */
TEST(writer_grows)
{
	char big[5000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	json_out_t o;
	size_t len = 0;
	json_out_begin(&o);
	for (int i = 0; i < 10; i++)
		json_out_str(&o, "k", big);
	char *doc = json_out_finish(&o, &len);
	CHECK(len == 1 + 10 * (4 + 2 + 4999) + 9 + 1);
	cJSON *back = cJSON_ParseWithLength(doc, len);
	CHECK(back && cJSON_GetArraySize(back) == 10);
	cJSON_Delete(back);
	free(doc);
}

/* Stops before an escape that does not fit, always NUL-terminated. */
TEST(escape_truncates_whole_escapes)
{
	char small[8];
	CHECK(json_escape(small, sizeof(small), "ab\ncd\x01") == 6);
	CHECK_STR(small, "ab\\ncd");
	CHECK(json_escape(small, sizeof(small), "\x01\x02") == 6);
	CHECK_STR(small, "\\u0001");
}

TEST(iso_time)
{
	char buf[40];
	json_iso_time(1763800000.25, buf, sizeof(buf));
	CHECK_STR(buf, "2025-11-22T08:26:40.250Z");
	json_iso_time(1763800000250.0, buf, sizeof(buf)); /* milliseconds */
	CHECK_STR(buf, "2025-11-22T08:26:40.250Z");
	/* out of range: the epoch, never a cast of an unrepresentable double */
	json_iso_time(1e300, buf, sizeof(buf));
	CHECK_STR(buf, "1970-01-01T00:00:00.000Z");
	json_iso_time(-1.0 / 0.0 * 0.0, buf, sizeof(buf)); /* NaN */
	CHECK_STR(buf, "1970-01-01T00:00:00.000Z");
}

TEST(int_in_range)
{
	long long v = 0;
	cJSON *doc = cJSON_Parse("[7, 1e300, -1, 2.5, \"7\", 9007199254740992, -1e300, null]");
	CHECK(json_int_in(cJSON_GetArrayItem(doc, 0), 1, 10, &v) && v == 7);
	CHECK(!json_int_in(cJSON_GetArrayItem(doc, 0), 8, 10, &v));
	CHECK(!json_int_in(cJSON_GetArrayItem(doc, 1), 1, 9007199254740992LL, &v));
	CHECK(!json_int_in(cJSON_GetArrayItem(doc, 2), 0, 10, &v));
	CHECK(json_int_in(cJSON_GetArrayItem(doc, 2), -1, 10, &v) && v == -1);
	CHECK(!json_int_in(cJSON_GetArrayItem(doc, 3), 0, 10, &v));
	CHECK(!json_int_in(cJSON_GetArrayItem(doc, 4), 0, 10, &v));
	CHECK(json_int_in(cJSON_GetArrayItem(doc, 5), 0, 9007199254740992LL, &v) && v == 9007199254740992LL);
	CHECK(!json_int_in(cJSON_GetArrayItem(doc, 6), -9007199254740992LL, 0, &v));
	CHECK(!json_int_in(cJSON_GetArrayItem(doc, 7), 0, 10, &v));
	CHECK(!json_int_in(NULL, 0, 10, &v));
	cJSON_Delete(doc);
}

/* Numbers past long long's range, or no number at all, are written as valid JSON without a
 * cast (fuzz_gw_evolution found a "fileLength" of 4.5e29 cast to long long). */
TEST(writer_numbers_out_of_range)
{
	json_out_t o;
	size_t len = 0;
	json_out_begin(&o);
	json_out_num(&o, "big", 4.5555555555555555e29);
	json_out_num(&o, "huge", -1e300);
	json_out_num(&o, "edge", 9.3e18);
	json_out_num(&o, "inf", 1.0 / 0.0);
	json_out_num(&o, "nan", 0.0 / 0.0);
	char *doc = json_out_finish(&o, &len);
	cJSON *back = cJSON_Parse(doc);
	CHECK(back != NULL);
	CHECK(cJSON_IsNumber(cJSON_GetObjectItem(back, "big")) && cJSON_GetObjectItem(back, "big")->valuedouble > 4.5e29);
	CHECK(cJSON_IsNumber(cJSON_GetObjectItem(back, "huge")) && cJSON_GetObjectItem(back, "huge")->valuedouble < -9e299);
	CHECK(cJSON_IsNumber(cJSON_GetObjectItem(back, "edge")));
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(back, "inf")) && cJSON_IsNull(cJSON_GetObjectItem(back, "nan")));
	cJSON_Delete(back);
	free(doc);
}

int main(void)
{
	RUN(writer_exact_text);
	RUN(writer_round_trips_every_byte);
	RUN(writer_grows);
	RUN(escape_truncates_whole_escapes);
	RUN(iso_time);
	RUN(int_in_range);
	RUN(writer_numbers_out_of_range);
	return unit_done();
}

