/*
 * token: HS256 JSON Web Tokens that identify an agent to the notifier. The CLI signs
 * them (`atende token`), the WebSocket handshake verifies them; both share the secret
 * from the config. Pure functions over OpenSSL's HMAC, no state, no logging.
 */
#ifndef ATENDE_TOKEN_H
#define ATENDE_TOKEN_H

#include <stddef.h>

/* A key id: 8 hex digits of SHA-256(secret). Tokens name the secret that signed them, so two
 * secrets can be accepted together while one replaces the other. */
#define TOKEN_KID_LEN 9

/* What a token asserts. Ids are positive; times are Unix seconds. */
typedef struct {
	long agent;    /* agents.id of the bearer */
	long company;  /* company the agent works for; bounds every channel it may join */
	char role[16]; /* "agent" | "supervisor" */
	long iat;      /* issued at */
	long exp;      /* expires at: the token is refused when exp <= now */
	char kid[TOKEN_KID_LEN]; /* key id of the secret that verified it (token_verify fills it) */
} token_claims_t;

typedef enum {
	TOKEN_OK = 0,
	TOKEN_MALFORMED = -1,     /* not three base64url parts, bad JSON, missing or invalid claim */
	TOKEN_BAD_SIGNATURE = -2, /* wrong secret, tampered, or alg other than HS256 (e.g. "none") */
	TOKEN_EXPIRED = -3,       /* well signed but exp <= now */
} token_status_t;

/* Longest token token_verify accepts; anything longer is TOKEN_MALFORMED. */
#define TOKEN_MAX_LEN 4096

/* Signs claims with secret (non-empty) and returns a malloc'd compact JWT the caller
 * frees: header {"alg":"HS256","typ":"JWT","kid":K} (K = token_kid(secret)), payload
 * {"sub":"agent:A","agent":A,"company":C,"role":R,"iat":..,"exp":..}.
 * NULL when secret is empty, an id is not positive, an id or time is above 2^53 (token_verify
 * could not read it back), the role is not agent/supervisor, or memory runs out. */
char *token_sign(const char *secret, const token_claims_t *claims);

/* Verifies token against secret at time now. A header kid other than the secret's is
 * TOKEN_BAD_SIGNATURE at once (tokens without kid, from before key ids, are checked). The
 * signature is checked (in constant time) before any claim is trusted; then every claim
 * must be present and valid. Fills *out (may be NULL; its kid the secret's) only on TOKEN_OK. */
token_status_t token_verify(const char *secret, const char *token, long now, token_claims_t *out);

/* Writes secret's key id (TOKEN_KID_LEN bytes with the NUL) into kid. */
void token_kid(const char *secret, char kid[TOKEN_KID_LEN]);

/* A short English description of st, for logs and 401 bodies (static string). */
const char *token_status_text(token_status_t st);

/* Parses a lifetime: "3600" (seconds), "45s", "30m", "8h", "2d", or a sum such as "1h30m".
 * Returns seconds (0 is allowed: it makes an already expired token), -1 when s is
 * empty, has an unknown unit, stray characters, or overflows. */
long token_parse_ttl(const char *s);

#endif
