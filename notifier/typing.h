/*
 * typing: the typing states this notifier instance accepted from its consoles, each with an
 * expiry, as pure state (the caller's clock, no I/O). The instance that accepted a "start"
 * publishes the "stop" when typing_ttl_s passes without one, or when the console that
 * started it goes away, so nobody's colleagues see "typing..." forever.
 */
#ifndef ATENDE_TYPING_H
#define ATENDE_TYPING_H

#include <stdbool.h>
#include <stdint.h>

typedef struct typing typing_t;

typing_t *typing_new(void);
void typing_free(typing_t *t);

/* Starts or refreshes agent typing in conversation (of company) until expires_ms, held by
 * owner (the connection). Returns true when it was not active before. */
bool typing_start(typing_t *t, int64_t conversation, long agent, long company, void *owner, long long expires_ms);

/* Ends it. Returns false when it was not active. */
bool typing_stop(typing_t *t, int64_t conversation, long agent);

bool typing_active(const typing_t *t, int64_t conversation, long agent);

/* What an ended state reports, so the caller can publish its stop. */
typedef void (*typing_end_fn)(int64_t conversation, long agent, long company, void *arg);

/* Removes every state expired at now_ms (expires_ms <= now_ms), calling fn for each in
 * expiry order. Returns how many. */
int typing_expire(typing_t *t, long long now_ms, typing_end_fn fn, void *arg);

/* Removes every state held by owner (its connection closed), calling fn for each. */
int typing_drop_owner(typing_t *t, const void *owner, typing_end_fn fn, void *arg);

int typing_count(const typing_t *t);

/* Earliest expiry among active states, -1 when none. */
long long typing_next_expiry(const typing_t *t);

#endif
