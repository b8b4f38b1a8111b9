/*
 * xalloc: the project's one allocation-failure policy. Like Redis's zmalloc, running
 * out of memory is not handled at each call site: x* allocators log the size that could
 * not be had and abort, so a process either gets its memory or dies loudly (and the
 * supervisor restarts it) instead of limping on with a NULL it never checked. Everything
 * already acknowledged is safe in Kafka or PostgreSQL, so dying is the safe choice.
 * cJSON allocates through the same policy (set before main).
 */
#ifndef ATENDE_XALLOC_H
#define ATENDE_XALLOC_H

#include <stddef.h>

/* malloc, calloc, realloc, strdup and strndup that never return NULL (they abort).
 * A zero size still returns a unique pointer that free() accepts. */
void *xmalloc(size_t size) __attribute__((malloc, returns_nonnull));
void *xcalloc(size_t n, size_t size) __attribute__((malloc, returns_nonnull));
void *xrealloc(void *ptr, size_t size) __attribute__((returns_nonnull));
char *xstrdup(const char *s) __attribute__((malloc, returns_nonnull));
char *xstrndup(const char *s, size_t n) __attribute__((malloc, returns_nonnull));

#endif
