/*
 * Unit tests of the conversation API's pure helpers: cursors round-trip and refuse anything
 * they did not write, limits and ids parse strictly, search patterns escape LIKE's wildcards.
 */
#include "api.h"
#include "unit.h"

TEST(cursor_round_trip)
{
	char c[API_CURSOR_MAX];
	long long a, b;
	CHECK(api_cursor_encode('c', 1796380394311123LL, 123456789012345LL, c, sizeof(c)));
	CHECK(api_cursor_decode(c, 'c', &a, &b));
	CHECK(a == 1796380394311123LL && b == 123456789012345LL);
	CHECK(strspn(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == strlen(c));
	for (long long id = 0; id < 2000; id += 7) { /* every length modulo 3 */
		CHECK(api_cursor_encode('m', id, 0, c, sizeof(c)));
		CHECK(api_cursor_decode(c, 'm', &a, &b) && a == id && b == 0);
	}
	CHECK(api_cursor_encode('m', 9223372036854775807LL, 9223372036854775807LL, c, sizeof(c)));
	CHECK(strlen(c) < API_CURSOR_MAX);
	CHECK(!api_cursor_encode('m', 1, 0, c, 4)); /* too small */
}

TEST(cursor_refuses_what_it_did_not_write)
{
	char c[API_CURSOR_MAX];
	long long a, b;
	CHECK(api_cursor_encode('c', 10, 20, c, sizeof(c)));
	CHECK(!api_cursor_decode(c, 'm', &a, &b)); /* a list's cursor for a history */
	CHECK(!api_cursor_decode("", 'c', &a, &b));
	CHECK(!api_cursor_decode("xx", 'c', &a, &b));
	CHECK(!api_cursor_decode("not a cursor", 'c', &a, &b));
	CHECK(!api_cursor_decode("YzEuMTAuMjA=", 'c', &a, &b)); /* padding is not ours */
	CHECK(!api_cursor_decode("YzEuLTEwLjIw", 'c', &a, &b)); /* "c1.-10.20" */
	CHECK(!api_cursor_decode("YzEuMDEwLjIw", 'c', &a, &b)); /* "c1.010.20": not canonical */
	CHECK(!api_cursor_decode("YzEuMTAuMjB4", 'c', &a, &b)); /* "c1.10.20x" */
	CHECK(!api_cursor_decode("YzIuMTAuMjA", 'c', &a, &b));  /* "c2.10.20": another version */
	CHECK(api_cursor_decode("YzEuMTAuMjA", 'c', &a, &b) && a == 10 && b == 20);
}

TEST(limit)
{
	int l;
	CHECK(api_parse_limit(NULL, &l) && l == API_LIMIT_DEFAULT);
	CHECK(api_parse_limit("1", &l) && l == 1);
	CHECK(api_parse_limit("100", &l) && l == 100);
	CHECK(!api_parse_limit("101", &l));
	CHECK(!api_parse_limit("0", &l));
	CHECK(!api_parse_limit("", &l));
	CHECK(!api_parse_limit("-5", &l));
	CHECK(!api_parse_limit("+5", &l));
	CHECK(!api_parse_limit("5x", &l));
	CHECK(!api_parse_limit("0005", &l));
	CHECK(!api_parse_limit("99999999999999999999", &l));
}

TEST(ids)
{
	long long id;
	const char *end;
	CHECK(api_parse_id("42/messages", &id, &end) && id == 42 && strcmp(end, "/messages") == 0);
	CHECK(api_parse_id("7", &id, &end) && id == 7 && *end == 0);
	CHECK(api_parse_id("999999999999999999", &id, &end));
	CHECK(!api_parse_id("9999999999999999999", &id, &end));
	CHECK(!api_parse_id("99999999999999999999999999/messages", &id, &end)); /* UBSan: v * 10 overflowed at the 19th digit */
	CHECK(!api_parse_id("0", &id, &end));
	CHECK(!api_parse_id("", &id, &end));
	CHECK(!api_parse_id("12a/messages", &id, &end));
	CHECK(!api_parse_id("-3", &id, &end));
}

TEST(search_pattern)
{
	char p[64];
	CHECK(api_search_pattern("boleto", p, sizeof(p)));
	CHECK_STR(p, "%boleto%");
	CHECK(api_search_pattern("50%_a\\b", p, sizeof(p)));
	CHECK_STR(p, "%50\\%\\_a\\\\b%");
	CHECK(api_search_pattern("ação", p, sizeof(p))); /* 4 characters, 6 bytes */
	CHECK(!api_search_pattern("ab", p, sizeof(p)));
	CHECK(!api_search_pattern("çã", p, sizeof(p))); /* 2 characters, 4 bytes */
	char big[202];
	memset(big, 'a', 101);
	big[101] = 0;
	char out[512];
	CHECK(!api_search_pattern(big, out, sizeof(out)));
	big[100] = 0;
	CHECK(api_search_pattern(big, out, sizeof(out)));
	CHECK(!api_search_pattern("boleto", p, 8)); /* out too small */
}

int main(void)
{
	RUN(cursor_round_trip);
	RUN(cursor_refuses_what_it_did_not_write);
	RUN(limit);
	RUN(ids);
	RUN(search_pattern);
	return unit_done();
}
