/*
 * fuzz_token: the agent token verifier (token_verify) on any string, at two clocks, and the
 * TTL parser. A token it accepts must carry sane claims and survive being signed again; a
 * token it signs for fuzzed claims must verify back to them.
 */
#include "fuzz.h"
#include "token.h"

#include <assert.h>

#define SECRET "fuzz-token-secret-0123456789"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = strndup((const char *)data, size);
	token_claims_t c;
	long now = size && (data[0] & 1) ? 1700000000L : 0;
	token_status_t st = token_verify(SECRET, s, now, &c);
	assert(st == TOKEN_OK || st == TOKEN_MALFORMED || st == TOKEN_BAD_SIGNATURE || st == TOKEN_EXPIRED);
	(void)token_status_text(st);
	if (st == TOKEN_OK) {
		assert(c.agent > 0 && c.company > 0 && c.exp > now);
		assert(!strcmp(c.role, "agent") || !strcmp(c.role, "supervisor"));
		char *again = token_sign(SECRET, &c);
		token_claims_t c2;
		assert(again && token_verify(SECRET, again, now, &c2) == TOKEN_OK);
		assert(c2.agent == c.agent && c2.company == c.company && c2.exp == c.exp);
		free(again);
	}
	(void)token_verify("another-secret-0123456789", s, now, NULL);
	long ttl = token_parse_ttl(s);
	assert(ttl >= -1);

	/* claims from the bytes, signed and verified back */
	if (size >= 2 * sizeof(long)) {
		token_claims_t in = {0};
		memcpy(&in.agent, data, sizeof(long));
		memcpy(&in.company, data + sizeof(long), sizeof(long));
		snprintf(in.role, sizeof(in.role), "%s", data[0] & 2 ? "agent" : "supervisor");
		in.iat = 1700000000L;
		in.exp = 1700003600L;
		char *t = token_sign(SECRET, &in);
		bool valid = in.agent > 0 && in.company > 0 && in.agent <= 9007199254740991L && in.company <= 9007199254740991L;
		assert(!t == !valid); /* what it signs, and only that, must verify */
		if (valid) {
			token_claims_t out;
			assert(t && token_verify(SECRET, t, 1700000001L, &out) == TOKEN_OK);
			assert(out.agent == in.agent && out.company == in.company);
		}
		free(t);
	}
	free(s);
	return 0;
}
