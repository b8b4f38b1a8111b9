/*
 * xalloc: allocators that abort on failure (see xalloc.h).
 */
#include "xalloc.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Written with write(2) and a fixed buffer: the logger itself may need memory. */
static void xalloc_oom(const char *what, size_t size)
{
	char line[128];
	int n = snprintf(line, sizeof(line), "level=fatal out of memory: %s of %zu bytes failed; aborting\n", what, size);
	if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* nothing left to tell anyone */
	}
	abort();
}

void *xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);
	if (!p)
		xalloc_oom("malloc", size);
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		xalloc_oom("calloc", n * size);
	return p;
}

void *xrealloc(void *ptr, size_t size)
{
	void *p = realloc(ptr, size ? size : 1);
	if (!p)
		xalloc_oom("realloc", size);
	return p;
}

char *xstrdup(const char *s)
{
	char *p = strdup(s);
	if (!p)
		xalloc_oom("strdup", strlen(s) + 1);
	return p;
}

char *xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);
	if (!p)
		xalloc_oom("strndup", n + 1);
	return p;
}

/* Before main, in every program and test that links this module (all of them do, since
 * they allocate through it): cJSON's trees get the same policy as our own memory. */
__attribute__((constructor)) static void xalloc_hook_cjson(void)
{
	cJSON_Hooks hooks = {.malloc_fn = xmalloc, .free_fn = free};
	cJSON_InitHooks(&hooks);
}
