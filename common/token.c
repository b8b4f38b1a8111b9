/*
 * token: HS256 JWT signing and verification (see token.h). Verification never trusts
 * a claim before the MAC matched, compares MACs with CRYPTO_memcmp so timing reveals
 * nothing, and pins the algorithm so "alg":"none" or RS/HS confusion cannot pass.
 */
#include "token.h"
#include "xalloc.h"

#include <cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_MAC_LEN 32 /* SHA-256 */
#define TOKEN_NUM_MAX 9007199254740991L /* 2^53 - 1: claims are JSON numbers, read as doubles */


static size_t token_b64url_encode(const unsigned char *in, size_t n, char *out);
static long token_b64url_decode(const char *in, size_t n, unsigned char *out, size_t cap);
static bool token_mac(const char *secret, const char *data, size_t n, unsigned char mac[TOKEN_MAC_LEN]);
static cJSON *token_decode_json(const char *part, size_t n);
static bool token_get_long(const cJSON *obj, const char *name, long min, long *out);
static bool token_role_valid(const char *role);

char *token_sign(const char *secret, const token_claims_t *claims)
{
	char payload[256];
	unsigned char mac[TOKEN_MAC_LEN];

	/* token_verify reads numbers as doubles: a claim above 2^53 would make a token it refuses */
	if (!secret || !*secret || !claims || claims->agent <= 0 || claims->company <= 0 || claims->iat < 0 ||
	    claims->exp < 0 || claims->agent > TOKEN_NUM_MAX || claims->company > TOKEN_NUM_MAX ||
	    claims->iat > TOKEN_NUM_MAX || claims->exp > TOKEN_NUM_MAX || !memchr(claims->role, '\0', sizeof(claims->role)) ||
	    !token_role_valid(claims->role))
		return NULL;
	int pn = snprintf(payload, sizeof(payload),
			  "{\"sub\":\"agent:%ld\",\"agent\":%ld,\"company\":%ld,\"role\":\"%s\",\"iat\":%ld,\"exp\":%ld}",
			  claims->agent, claims->agent, claims->company, claims->role, claims->iat, claims->exp);
	if (pn < 0 || (size_t)pn >= sizeof(payload))
		return NULL;

	char header[64], kid[TOKEN_KID_LEN];
	token_kid(secret, kid);
	size_t hn = (size_t)snprintf(header, sizeof(header), "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
	/* base64 grows by 4/3 (+4 for EVP_EncodeBlock's padding and NUL); 3 parts, 2 dots, NUL. */
	size_t cap = (hn + 2) / 3 * 4 + 4 + ((size_t)pn + 2) / 3 * 4 + 4 + (TOKEN_MAC_LEN + 2) / 3 * 4 + 4 + 3;
	char *tok = xmalloc(cap);
	size_t o = token_b64url_encode((const unsigned char *)header, hn, tok);
	tok[o++] = '.';
	o += token_b64url_encode((const unsigned char *)payload, (size_t)pn, tok + o);
	if (!token_mac(secret, tok, o, mac)) {
		free(tok);
		return NULL;
	}
	tok[o++] = '.';
	o += token_b64url_encode(mac, sizeof(mac), tok + o);
	tok[o] = '\0';
	return tok;
}

token_status_t token_verify(const char *secret, const char *token, long now, token_claims_t *out)
{
	unsigned char mac[TOKEN_MAC_LEN], sig[TOKEN_MAX_LEN];
	token_status_t st = TOKEN_MALFORMED;
	cJSON *header = NULL, *payload = NULL;

	if (!token)
		return TOKEN_MALFORMED;
	size_t len = strnlen(token, TOKEN_MAX_LEN + 1);
	if (len == 0 || len > TOKEN_MAX_LEN)
		return TOKEN_MALFORMED;
	const char *dot1 = memchr(token, '.', len);
	const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
	if (!dot1 || !dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
		return TOKEN_MALFORMED;
	size_t signed_len = (size_t)(dot2 - token);

	/* The header decides how to check the MAC, so it is read first, but only to pin alg. */
	header = token_decode_json(token, (size_t)(dot1 - token));
	if (!header)
		goto done;
	const cJSON *alg = cJSON_GetObjectItemCaseSensitive(header, "alg");
	if (!cJSON_IsString(alg)) {
		st = TOKEN_MALFORMED;
		goto done;
	}
	if (strcmp(alg->valuestring, "HS256") != 0) {
		st = TOKEN_BAD_SIGNATURE;
		goto done;
	}
	char kid[TOKEN_KID_LEN] = "";
	if (secret && *secret)
		token_kid(secret, kid);
	const cJSON *hkid = cJSON_GetObjectItemCaseSensitive(header, "kid");
	if (hkid && (!cJSON_IsString(hkid) || strcmp(hkid->valuestring, kid) != 0)) {
		st = TOKEN_BAD_SIGNATURE; /* signed with another secret (or tampered): the MAC would say so too */
		goto done;
	}

	long sn = token_b64url_decode(dot2 + 1, len - signed_len - 1, sig, sizeof(sig));
	if (sn < 0) {
		st = TOKEN_MALFORMED;
		goto done;
	}
	if (!secret || !*secret || sn != TOKEN_MAC_LEN || !token_mac(secret, token, signed_len, mac) ||
	    CRYPTO_memcmp(mac, sig, TOKEN_MAC_LEN) != 0) {
		st = TOKEN_BAD_SIGNATURE;
		goto done;
	}

	/* From here on the payload is ours: a bad claim is a bug in the signer, still refused. */
	payload = token_decode_json(dot1 + 1, (size_t)(dot2 - dot1 - 1));
	if (!payload)
		goto done;
	token_claims_t c;
	memset(&c, 0, sizeof(c));
	const cJSON *role = cJSON_GetObjectItemCaseSensitive(payload, "role");
	if (!token_get_long(payload, "agent", 1, &c.agent) || !token_get_long(payload, "company", 1, &c.company) ||
	    !token_get_long(payload, "iat", 0, &c.iat) || !token_get_long(payload, "exp", 0, &c.exp) ||
	    !cJSON_IsString(role) || !token_role_valid(role->valuestring))
		goto done;
	strcpy(c.role, role->valuestring); /* fits: token_role_valid admits only two short names */
	memcpy(c.kid, kid, sizeof(c.kid));
	if (c.exp <= now) {
		st = TOKEN_EXPIRED;
		goto done;
	}
	if (out)
		*out = c;
	st = TOKEN_OK;
done:
	cJSON_Delete(header);
	cJSON_Delete(payload);
	return st;
}

void token_kid(const char *secret, char kid[TOKEN_KID_LEN])
{
	unsigned char digest[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)secret, strlen(secret), digest);
	snprintf(kid, TOKEN_KID_LEN, "%02x%02x%02x%02x", digest[0], digest[1], digest[2], digest[3]);
}

const char *token_status_text(token_status_t st)
{
	switch (st) {
	case TOKEN_OK:
		return "ok";
	case TOKEN_MALFORMED:
		return "malformed token";
	case TOKEN_BAD_SIGNATURE:
		return "bad token signature";
	case TOKEN_EXPIRED:
		return "token expired";
	}
	return "unknown token status";
}

long token_parse_ttl(const char *s)
{
	long total = 0;

	if (!s || !*s)
		return -1;
	while (*s) {
		if (*s < '0' || *s > '9')
			return -1;
		long n = 0;
		for (; *s >= '0' && *s <= '9'; s++) {
			if (n > (LONG_MAX - (*s - '0')) / 10)
				return -1;
			n = n * 10 + (*s - '0');
		}
		long mult;
		switch (*s) {
		case '\0':
			mult = 1;
			break;
		case 's':
			mult = 1;
			s++;
			break;
		case 'm':
			mult = 60;
			s++;
			break;
		case 'h':
			mult = 3600;
			s++;
			break;
		case 'd':
			mult = 86400;
			s++;
			break;
		default:
			return -1;
		}
		if (n > LONG_MAX / mult || total > LONG_MAX - n * mult)
			return -1;
		total += n * mult;
	}
	return total;
}

/* EVP_EncodeBlock speaks standard base64 with padding; JWT wants the URL alphabet, no '='.
 * out needs room for 4*ceil(n/3)+1 bytes; returns the encoded length (out not terminated). */
static size_t token_b64url_encode(const unsigned char *in, size_t n, char *out)
{
	int m = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	size_t len = m > 0 ? (size_t)m : 0;
	while (len > 0 && out[len - 1] == '=')
		len--;
	for (size_t i = 0; i < len; i++) {
		if (out[i] == '+')
			out[i] = '-';
		else if (out[i] == '/')
			out[i] = '_';
	}
	return len;
}

/* Strict base64url decoder: URL alphabet only, no padding, zero trailing bits, so each
 * value has exactly one encoding. Returns the decoded length or -1. */
static long token_b64url_decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
	unsigned acc = 0, bits = 0;
	size_t o = 0;

	if (n % 4 == 1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)in[i];
		unsigned v;
		if (ch >= 'A' && ch <= 'Z')
			v = ch - 'A';
		else if (ch >= 'a' && ch <= 'z')
			v = ch - 'a' + 26;
		else if (ch >= '0' && ch <= '9')
			v = ch - '0' + 52;
		else if (ch == '-')
			v = 62;
		else if (ch == '_')
			v = 63;
		else
			return -1;
		acc = (acc << 6) | v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= cap)
				return -1;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0)
		return -1;
	return (long)o;
}

static bool token_mac(const char *secret, const char *data, size_t n, unsigned char mac[TOKEN_MAC_LEN])
{
	unsigned int mlen = 0;
	size_t klen = strlen(secret);
	if (klen > INT_MAX)
		return false;
	return HMAC(EVP_sha256(), secret, (int)klen, (const unsigned char *)data, n, mac, &mlen) != NULL &&
	       mlen == TOKEN_MAC_LEN;
}

/* Decodes one base64url part and parses it as a JSON object; NULL otherwise. */
static cJSON *token_decode_json(const char *part, size_t n)
{
	unsigned char buf[TOKEN_MAX_LEN];
	long m = token_b64url_decode(part, n, buf, sizeof(buf));
	if (m <= 0)
		return NULL;
	cJSON *j = cJSON_ParseWithLength((const char *)buf, (size_t)m);
	if (j && !cJSON_IsObject(j)) {
		cJSON_Delete(j);
		return NULL;
	}
	return j;
}

/* Reads an integral number >= min; JSON numbers are doubles, so 1.5 or 1e300 are refused. */
static bool token_get_long(const cJSON *obj, const char *name, long min, long *out)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
	if (!cJSON_IsNumber(it))
		return false;
	double d = it->valuedouble;
	if (!(d >= (double)min && d <= (double)TOKEN_NUM_MAX) || (double)(long)d != d)
		return false;
	*out = (long)d;
	return true;
}

static bool token_role_valid(const char *role)
{
	return strcmp(role, "agent") == 0 || strcmp(role, "supervisor") == 0;
}
