/*
 * poll: frame batching and the response body of GET /poll (see poll.h).
 */
#include "poll.h"
#include "xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void poll_batch_add(poll_batch_t *b, const char *frame, size_t len)
{
	if (b->len + len + 2 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		while (cap < b->len + len + 2)
			cap *= 2;
		b->buf = xrealloc(b->buf, cap);
		b->cap = cap;
	}
	if (b->n++)
		b->buf[b->len++] = ',';
	memcpy(b->buf + b->len, frame, len);
	b->len += len;
	b->buf[b->len] = 0;
}

void poll_batch_free(poll_batch_t *b)
{
	free(b->buf);
	memset(b, 0, sizeof(*b));
}

char *poll_render(const poll_batch_t *b, const char *channel, long long epoch, int64_t seq, size_t *len)
{
	size_t cap = b->len + strlen(channel) + 128;
	char *out = xmalloc(cap);
	int n = snprintf(out, cap, "{\"channel\":\"%s\",\"epoch\":%lld,\"seq\":%lld,\"events\":[%s]}", channel, epoch,
			 (long long)seq, b->n ? b->buf : "");
	*len = n < 0 ? 0 : (size_t)n;
	return out;
}

bool poll_parse_ll(const char *s, long long min, long long max, long long *out)
{
	char *end;
	if (!s || !*s)
		return false;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}
