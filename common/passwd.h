/*
 * passwd: slow salted password hashes for agent accounts, with libxcrypt's yescrypt
 * ("$y$", the hash Debian itself uses for /etc/shadow). libcrypt1 is on every Debian
 * system already, so accounts add no runtime dependency. Pure functions, no logging:
 * errors go to the caller's buffer. Hashing takes tens of milliseconds of CPU on
 * purpose; an event loop should not call it inline.
 */
#ifndef ATENDE_PASSWD_H
#define ATENDE_PASSWD_H

#include <stdbool.h>
#include <stddef.h>

/* Room for any hash passwd_hash writes (yescrypt's are about 73 characters). */
#define PASSWD_HASH_MAX 256
/* Accepted password lengths, in characters (UTF-8 code points) and bytes. */
#define PASSWD_MIN_CHARS 8
#define PASSWD_MAX_BYTES 1024

/* Checks a new password against the policy: at least PASSWD_MIN_CHARS characters, at most
 * PASSWD_MAX_BYTES bytes, no NUL or line breaks. false with the reason in err. */
__attribute__((warn_unused_result)) bool passwd_acceptable(const char *password, char *err, size_t errlen);

/* Hashes password with a fresh random salt (yescrypt, libxcrypt's default cost) into
 * out (outlen >= PASSWD_HASH_MAX). Two calls never give the same hash. false with the
 * reason in err when libxcrypt refuses (no randomness, out of memory). */
__attribute__((warn_unused_result)) bool passwd_hash(const char *password, char *out, size_t outlen, char *err,
						     size_t errlen);

/* True when password matches hash, a well-formed yescrypt hash made by passwd_hash. The
 * recomputed hash is compared in constant time. False for a wrong password and for any
 * malformed, truncated or non-yescrypt hash (so a "*" or "!" placeholder never matches). */
bool passwd_verify(const char *password, const char *hash);

/* True when hash looks like a yescrypt hash ("$y$" prefix, crypt(3) alphabet). */
bool passwd_well_formed(const char *hash);

#endif
