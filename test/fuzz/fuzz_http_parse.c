/*
 * fuzz_http_parse: the HTTP parser's pure entry points as the server drives them: the head
 * found incrementally (bytes arriving in pieces) and parsed in place, its query decoded and
 * its header values searched for tokens, then the rest decoded as a chunked body in pieces.
 * The first byte picks the piece size, so every split point gets tried.
 */
#include "fuzz.h"
#include "http.h"

#include <assert.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t step = (data[0] & 0x1f) + 1;
	data++, size--;
	char *buf = malloc(size + 1);
	memcpy(buf, data, size);
	buf[size] = 0;

	size_t scan = 0, head = 0;
	for (size_t have = step < size ? step : size;; have = have + step < size ? have + step : size) {
		head = http_find_head_end(buf, have, &scan);
		assert(head <= have);
		if (head || have == size)
			break;
	}
	if (head) {
		http_header_t headers[16];
		http_head_t h = {0};
		int st = http_parse_request_head(buf, head, &h, headers, 16);
		if (st == 0) {
			assert(h.method && h.path && h.query && h.nheaders <= 16);
			char q[256];
			(void)!http_url_decode(h.query, strlen(h.query), q, sizeof(q));
			(void)!http_url_decode(h.path, strlen(h.path), q, 8);
			for (int i = 0; i < h.nheaders; i++)
				(void)http_header_has_token(h.headers[i].value, strlen(h.headers[i].value), "upgrade");
		} else {
			assert(st == 400 || st == 431 || st == 505);
			assert(h.error);
		}
	}

	/* the rest (or everything, when no head) as a chunked body, in pieces, into a small buffer */
	http_chunked_t d;
	http_chunked_init(&d);
	const char *in = (const char *)data + head;
	size_t left = size - head;
	char out[64];
	for (int guard = 0; left > 0 && guard < 100000; guard++) {
		size_t piece = left < step ? left : step, used = 0, got = 0;
		int r = http_chunked_decode(&d, in, piece, &used, out, sizeof(out), &got);
		assert(used <= piece && got <= sizeof(out));
		if (r != 0) {
			assert(r == 1 || (r == -1 && d.error));
			break;
		}
		if (used == 0 && got == 0)
			break; /* needs more than this piece: not an error */
		in += used, left -= used;
	}
	free(buf);
	return 0;
}
