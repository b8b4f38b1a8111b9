/*
 * passwd: yescrypt hashing and verification over libxcrypt (see passwd.h). crypt_r's
 * work area is about 32 KiB, so it lives on the heap; the salt comes from
 * crypt_gensalt_rn, which reads the kernel's randomness itself when given no bytes.
 */
#include "passwd.h"
#include "xalloc.h"

#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PASSWD_PREFIX "$y$"

static bool passwd_equal(const char *a, const char *b);

bool passwd_acceptable(const char *password, char *err, size_t errlen)
{
	size_t bytes = strlen(password), chars = 0;
	for (const unsigned char *p = (const unsigned char *)password; *p; p++) {
		if (*p == '\n' || *p == '\r') {
			snprintf(err, errlen, "the password contains a line break");
			return false;
		}
		if ((*p & 0xC0) != 0x80) /* count code points, not UTF-8 continuation bytes */
			chars++;
	}
	if (chars < PASSWD_MIN_CHARS) {
		snprintf(err, errlen, "the password is shorter than %d characters", PASSWD_MIN_CHARS);
		return false;
	}
	if (bytes > PASSWD_MAX_BYTES) {
		snprintf(err, errlen, "the password is longer than %d bytes", PASSWD_MAX_BYTES);
		return false;
	}
	return true;
}

bool passwd_hash(const char *password, char *out, size_t outlen, char *err, size_t errlen)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	/* count 0: libxcrypt's default yescrypt cost, the one Debian's shadow uses */
	if (!crypt_gensalt_rn(PASSWD_PREFIX, 0, NULL, 0, salt, (int)sizeof(salt))) {
		snprintf(err, errlen, "cannot make a salt: %s", strerror(errno));
		return false;
	}
	struct crypt_data *cd = xcalloc(1, sizeof(*cd));
	const char *h = crypt_r(password, salt, cd);
	bool ok = h && passwd_well_formed(h) && strlen(h) < outlen;
	if (ok)
		memcpy(out, h, strlen(h) + 1);
	else
		snprintf(err, errlen, "yescrypt failed: %s", h ? "unexpected output" : strerror(errno));
	explicit_bzero(cd, sizeof(*cd)); /* it held the password */
	free(cd);
	return ok;
}

bool passwd_verify(const char *password, const char *hash)
{
	if (!password || !hash || !passwd_well_formed(hash))
		return false;
	struct crypt_data *cd = xcalloc(1, sizeof(*cd));
	const char *h = crypt_r(password, hash, cd);
	/* on failure crypt_r returns NULL or a "*0"/"*1" token, which never equals a hash */
	bool ok = h && passwd_equal(h, hash);
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok;
}

bool passwd_well_formed(const char *hash)
{
	static const char alphabet[] = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz$";
	size_t n = hash ? strlen(hash) : 0;
	if (n < sizeof(PASSWD_PREFIX) + 40 || n >= PASSWD_HASH_MAX || strncmp(hash, PASSWD_PREFIX, 3) != 0)
		return false;
	int dollars = 0;
	for (size_t i = 0; i < n; i++) {
		if (!strchr(alphabet, hash[i]))
			return false;
		dollars += hash[i] == '$';
	}
	return dollars == 4 && hash[n - 1] != '$'; /* $y$params$salt$hash */
}

/* Constant-time for equal lengths (the length of a hash tells nothing secret). */
static bool passwd_equal(const char *a, const char *b)
{
	size_t n = strlen(a);
	if (n != strlen(b))
		return false;
	volatile unsigned char diff = 0;
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(a[i] ^ b[i]);
	return diff == 0;
}
