/*
 * Unit tests of token: HS256 round trip, every way a token must be refused (tampering,
 * wrong secret, expiry, alg "none", garbage), and lifetime parsing.
 */
#include "token.h"
#include "unit.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>

static const char *secret = "test-secret-0123456789";
static const long now = 1700000000;

static char *sign_default(void)
{
	token_claims_t c = {.agent = 7, .company = 1, .role = "agent", .iat = now, .exp = now + 3600};
	return token_sign(secret, &c);
}

/* base64url without padding, for hand-built tokens. */
static void b64url(const char *in, char *out)
{
	int n = EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in, (int)strlen(in));
	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = '\0';
	for (char *p = out; *p; p++)
		*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
}

TEST(round_trip)
{
	char *t = sign_default();
	token_claims_t out;
	CHECK(t != NULL);
	CHECK(t && strncmp(t, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6", 44) == 0); /* {"alg":"HS256","typ":"JWT","kid": */
	CHECK(t && !strchr(t, '=') && !strchr(t, '+') && !strchr(t, '/'));
	CHECK(token_verify(secret, t, now, &out) == TOKEN_OK);
	CHECK(out.agent == 7 && out.company == 1 && out.iat == now && out.exp == now + 3600);
	CHECK_STR(out.role, "agent");
	free(t);

	token_claims_t s = {.agent = 12, .company = 3, .role = "supervisor", .iat = now, .exp = now + 60};
	t = token_sign(secret, &s);
	CHECK(token_verify(secret, t, now + 59, &out) == TOKEN_OK);
	CHECK_STR(out.role, "supervisor");
	CHECK(out.agent == 12 && out.company == 3);
	free(t);
}

TEST(payload_has_expected_claims)
{
	char *t = sign_default();
	char *p1 = strchr(t, '.') + 1, *p2 = strchr(p1, '.');
	char b64[512], json[512];
	size_t n = (size_t)(p2 - p1);
	memcpy(b64, p1, n);
	for (size_t i = 0; i < n; i++)
		b64[i] = b64[i] == '-' ? '+' : b64[i] == '_' ? '/' : b64[i];
	while (n % 4)
		b64[n++] = '=';
	b64[n] = '\0';
	int m = EVP_DecodeBlock((unsigned char *)json, (unsigned char *)b64, (int)n);
	CHECK(m > 0);
	json[m > 0 ? m : 0] = '\0';
	CHECK(strstr(json, "{\"sub\":\"agent:7\",\"agent\":7,\"company\":1,\"role\":\"agent\",\"iat\":1700000000,"
			   "\"exp\":1700003600}") == json);
	free(t);
}

TEST(tampered_payload)
{
	char *t = sign_default();
	char forged_payload[256], forged[1024];
	/* Same signature, payload claiming another company. */
	b64url("{\"sub\":\"agent:7\",\"agent\":7,\"company\":2,\"role\":\"agent\",\"iat\":1700000000,\"exp\":1700003600}",
	       forged_payload);
	char *p1 = strchr(t, '.'), *p2 = strchr(p1 + 1, '.');
	snprintf(forged, sizeof(forged), "%.*s.%s%s", (int)(p1 - t), t, forged_payload, p2);
	CHECK(token_verify(secret, forged, now, NULL) == TOKEN_BAD_SIGNATURE);

	/* One flipped character in the payload or in the signature. */
	char *copy = strdup(t);
	copy[p1 - t + 5] = copy[p1 - t + 5] == 'A' ? 'B' : 'A';
	CHECK(token_verify(secret, copy, now, NULL) != TOKEN_OK);
	strcpy(copy, t);
	copy[strlen(copy) - 3] = copy[strlen(copy) - 3] == 'A' ? 'B' : 'A';
	CHECK(token_verify(secret, copy, now, NULL) == TOKEN_BAD_SIGNATURE);
	free(copy);
	free(t);
}

TEST(wrong_secret)
{
	char *t = sign_default();
	CHECK(token_verify("another-secret", t, now, NULL) == TOKEN_BAD_SIGNATURE);
	CHECK(token_verify("", t, now, NULL) == TOKEN_BAD_SIGNATURE);
	CHECK(token_verify(NULL, t, now, NULL) == TOKEN_BAD_SIGNATURE);
	free(t);
}

TEST(expired)
{
	char *t = sign_default();
	token_claims_t out = {.agent = -5};
	CHECK(token_verify(secret, t, now + 3599, NULL) == TOKEN_OK);
	CHECK(token_verify(secret, t, now + 3600, &out) == TOKEN_EXPIRED);
	CHECK(token_verify(secret, t, now + 99999, &out) == TOKEN_EXPIRED);
	CHECK(out.agent == -5); /* untouched unless TOKEN_OK */
	free(t);
}

TEST(alg_none_and_other_algs)
{
	char h[128], p[256], tok[512];
	b64url("{\"sub\":\"agent:7\",\"agent\":7,\"company\":1,\"role\":\"supervisor\",\"iat\":1700000000,\"exp\":1900000000}",
	       p);
	b64url("{\"alg\":\"none\",\"typ\":\"JWT\"}", h);
	snprintf(tok, sizeof(tok), "%s.%s.", h, p);
	CHECK(token_verify(secret, tok, now, NULL) == TOKEN_BAD_SIGNATURE);
	b64url("{\"alg\":\"HS512\",\"typ\":\"JWT\"}", h);
	snprintf(tok, sizeof(tok), "%s.%s.", h, p);
	CHECK(token_verify(secret, tok, now, NULL) == TOKEN_BAD_SIGNATURE);
	b64url("{\"typ\":\"JWT\"}", h);
	snprintf(tok, sizeof(tok), "%s.%s.", h, p);
	CHECK(token_verify(secret, tok, now, NULL) == TOKEN_MALFORMED);
}

TEST(garbage)
{
	CHECK(token_verify(secret, NULL, now, NULL) == TOKEN_MALFORMED);
	CHECK(token_verify(secret, "", now, NULL) == TOKEN_MALFORMED);
	CHECK(token_verify(secret, "abc", now, NULL) == TOKEN_MALFORMED);
	CHECK(token_verify(secret, "a.b", now, NULL) == TOKEN_MALFORMED);
	CHECK(token_verify(secret, "a.b.c.d", now, NULL) == TOKEN_MALFORMED);
	CHECK(token_verify(secret, "..", now, NULL) == TOKEN_MALFORMED);
	CHECK(token_verify(secret, "!!!.???.***", now, NULL) == TOKEN_MALFORMED);
	CHECK(token_verify(secret, "Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc", now, NULL) == TOKEN_MALFORMED);

	char big[TOKEN_MAX_LEN + 10];
	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	big[10] = big[20] = '.';
	CHECK(token_verify(secret, big, now, NULL) == TOKEN_MALFORMED);

	char *t = sign_default();
	CHECK(token_verify(secret, t + 1, now, NULL) != TOKEN_OK);
	free(t);
}

/* Signs an arbitrary payload with the right secret, as a buggy or hostile signer could. */
static void sign_raw(const char *payload_json, char *out, size_t cap)
{
	char h[128], p[512], sig[128];
	unsigned char mac[32];
	unsigned int mlen = 0;
	b64url("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", h);
	b64url(payload_json, p);
	snprintf(out, cap, "%s.%s", h, p);
	HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)out, strlen(out), mac, &mlen);
	int n = EVP_EncodeBlock((unsigned char *)sig, mac, (int)mlen);
	while (n > 0 && sig[n - 1] == '=')
		n--;
	sig[n] = '\0';
	for (char *q = sig; *q; q++)
		*q = *q == '+' ? '-' : *q == '/' ? '_' : *q;
	size_t len = strlen(out);
	snprintf(out + len, cap - len, ".%s", sig);
}

TEST(signed_but_invalid_claims)
{
	char tok[1024];
	sign_raw("{\"agent\":7,\"company\":1,\"role\":\"agent\",\"iat\":1700000000,\"exp\":1900000000}", tok, sizeof(tok));
	CHECK(token_verify(secret, tok, now, NULL) == TOKEN_OK); /* sub is informative only */
	sign_raw("{\"agent\":7,\"role\":\"agent\",\"iat\":1700000000,\"exp\":1900000000}", tok, sizeof(tok));
	CHECK(token_verify(secret, tok, now, NULL) == TOKEN_MALFORMED);
	sign_raw("{\"agent\":7,\"company\":1,\"role\":\"agent\",\"iat\":1700000000}", tok, sizeof(tok));
	CHECK(token_verify(secret, tok, now, NULL) == TOKEN_MALFORMED);
	sign_raw("{\"agent\":7,\"company\":1,\"role\":\"admin\",\"iat\":1700000000,\"exp\":1900000000}", tok, sizeof(tok));
	CHECK(token_verify(secret, tok, now, NULL) == TOKEN_MALFORMED);
	sign_raw("{\"agent\":\"7\",\"company\":1,\"role\":\"agent\",\"iat\":1700000000,\"exp\":1900000000}", tok, sizeof(tok));
	CHECK(token_verify(secret, tok, now, NULL) == TOKEN_MALFORMED);
	sign_raw("{\"agent\":7.5,\"company\":1,\"role\":\"agent\",\"iat\":1700000000,\"exp\":1900000000}", tok, sizeof(tok));
	CHECK(token_verify(secret, tok, now, NULL) == TOKEN_MALFORMED);
	sign_raw("{\"agent\":0,\"company\":1,\"role\":\"agent\",\"iat\":1700000000,\"exp\":1900000000}", tok, sizeof(tok));
	CHECK(token_verify(secret, tok, now, NULL) == TOKEN_MALFORMED);
	sign_raw("[1,2,3]", tok, sizeof(tok));
	CHECK(token_verify(secret, tok, now, NULL) == TOKEN_MALFORMED);
}

TEST(key_ids_name_the_secret)
{
	char kid[TOKEN_KID_LEN], other[TOKEN_KID_LEN], h[128], tok[1024];
	token_kid(secret, kid);
	token_kid("another-secret-0123", other);
	CHECK(strlen(kid) == 8 && strspn(kid, "0123456789abcdef") == 8 && strcmp(kid, other) != 0);
	/* the header names the signer's key id; verification reports the one that verified */
	char *t = sign_default();
	token_claims_t out;
	size_t hn = (size_t)(strchr(t, '.') - t);
	unsigned char header[128];
	char padded[128];
	snprintf(padded, sizeof(padded), "%.*s", (int)hn, t);
	for (char *q = padded; *q; q++)
		*q = *q == '-' ? '+' : *q == '_' ? '/' : *q;
	while (strlen(padded) % 4)
		strcat(padded, "=");
	int n = EVP_DecodeBlock(header, (const unsigned char *)padded, (int)strlen(padded));
	CHECK(n > 0);
	header[n > 0 ? n : 0] = '\0';
	snprintf(h, sizeof(h), "\"kid\":\"%s\"", kid);
	CHECK(strstr((const char *)header, h) != NULL);
	CHECK(token_verify(secret, t, now, &out) == TOKEN_OK && strcmp(out.kid, kid) == 0);
	CHECK(token_verify("another-secret-0123", t, now, NULL) == TOKEN_BAD_SIGNATURE);
	free(t);
	/* a token from before key ids (no kid) is still checked by its MAC alone */
	sign_raw("{\"agent\":7,\"company\":1,\"role\":\"agent\",\"iat\":1700000000,\"exp\":1900000000}", tok, sizeof(tok));
	CHECK(token_verify(secret, tok, now, &out) == TOKEN_OK && strcmp(out.kid, kid) == 0);
}

TEST(sign_refuses_bad_claims)
{
	token_claims_t c = {.agent = 7, .company = 1, .role = "admin", .iat = now, .exp = now + 1};
	CHECK(token_sign(secret, &c) == NULL);
	strcpy(c.role, "agent");
	CHECK(token_sign("", &c) == NULL);
	CHECK(token_sign(NULL, &c) == NULL);
	CHECK(token_sign(secret, NULL) == NULL);
	c.agent = 0;
	CHECK(token_sign(secret, &c) == NULL);
	c.agent = 7;
	c.company = -1;
	CHECK(token_sign(secret, &c) == NULL);
	/* found by fuzz_token: ids above 2^53 were signed into tokens token_verify then refused */
	c.company = 1;
	c.agent = 9007199254740993L;
	CHECK(token_sign(secret, &c) == NULL);
	c.agent = 9007199254740991L; /* 2^53 - 1: the largest that reads back */
	char *t = token_sign(secret, &c);
	token_claims_t out;
	CHECK(t && token_verify(secret, t, now, &out) == TOKEN_OK && out.agent == c.agent);
	free(t);
	c.exp = 9007199254740993L;
	CHECK(token_sign(secret, &c) == NULL);
}

TEST(status_text)
{
	CHECK_STR(token_status_text(TOKEN_OK), "ok");
	CHECK_STR(token_status_text(TOKEN_MALFORMED), "malformed token");
	CHECK_STR(token_status_text(TOKEN_BAD_SIGNATURE), "bad token signature");
	CHECK_STR(token_status_text(TOKEN_EXPIRED), "token expired");
}

TEST(ttl_parsing)
{
	CHECK(token_parse_ttl("8h") == 8 * 3600);
	CHECK(token_parse_ttl("30m") == 1800);
	CHECK(token_parse_ttl("45s") == 45);
	CHECK(token_parse_ttl("2d") == 2 * 86400);
	CHECK(token_parse_ttl("3600") == 3600);
	CHECK(token_parse_ttl("1h30m") == 5400);
	CHECK(token_parse_ttl("0") == 0);
	CHECK(token_parse_ttl(NULL) == -1);
	CHECK(token_parse_ttl("") == -1);
	CHECK(token_parse_ttl("h") == -1);
	CHECK(token_parse_ttl("8x") == -1);
	CHECK(token_parse_ttl("-5") == -1);
	CHECK(token_parse_ttl(" 8h") == -1);
	CHECK(token_parse_ttl("8h ") == -1);
	CHECK(token_parse_ttl("8.5h") == -1);
	CHECK(token_parse_ttl("99999999999999999999") == -1);
	CHECK(token_parse_ttl("999999999999999999d") == -1);
}

int main(void)
{
	RUN(round_trip);
	RUN(payload_has_expected_claims);
	RUN(tampered_payload);
	RUN(wrong_secret);
	RUN(expired);
	RUN(alg_none_and_other_algs);
	RUN(garbage);
	RUN(signed_but_invalid_claims);
	RUN(key_ids_name_the_secret);
	RUN(sign_refuses_bad_claims);
	RUN(status_text);
	RUN(ttl_parsing);
	return unit_done();
}
