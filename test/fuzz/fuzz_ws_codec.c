/*
 * fuzz_ws_codec: the WebSocket codec's pure functions on any bytes: frame headers (a parsed
 * header must rebuild to the same length and fields), unmasking, strict UTF-8 (checked against
 * a reference decoder), the handshake key and upgrade checks, and the client's check of a
 * server's 101 response.
 */
#include "fuzz.h"
#include "ws.h"

#include <assert.h>

/* A plain reference UTF-8 validator (RFC 3629) to compare ws_utf8_valid with. */
static bool ref_utf8(const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint32_t c = s[i];
		int len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
		if (!len || i + (size_t)len > n)
			return false;
		if (len > 1)
			c &= 0x3F >> (len - 1);
		for (int k = 1; k < len; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
			c = (c << 6) | (s[i + k] & 0x3F);
		}
		if ((len == 2 && c < 0x80) || (len == 3 && c < 0x800) || (len == 4 && c < 0x10000) || c > 0x10FFFF ||
		    (c >= 0xD800 && c <= 0xDFFF))
			return false;
		i += (size_t)len;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ws_frame_header_t h;
	int r = ws_parse_header(data, size, &h);
	assert(r >= -1 && (size_t)(r > 0 ? r : 0) <= size && r <= 14);
	if (r > 0) {
		assert((size_t)r == h.header_len);
		uint8_t out[14];
		size_t n = ws_build_header(out, h.opcode, h.fin, h.payload_len, h.masked ? h.mask : NULL);
		ws_frame_header_t h2;
		assert(ws_parse_header(out, n, &h2) == (int)n);
		assert(h2.opcode == h.opcode && h2.fin == h.fin && h2.payload_len == h.payload_len && h2.masked == h.masked);
		size_t plen = size - (size_t)r < h.payload_len ? size - (size_t)r : (size_t)h.payload_len;
		uint8_t *p = malloc(plen + 1);
		memcpy(p, data + r, plen);
		if (h.masked) {
			/* masking twice, split at any offset, is the identity */
			size_t cut = plen / 2;
			ws_mask(p, cut, h.mask, 0);
			ws_mask(p + cut, plen - cut, h.mask, cut);
			ws_mask(p, plen, h.mask, 0);
			assert(memcmp(p, data + r, plen) == 0);
		}
		free(p);
	}
	assert(ws_utf8_valid(data, size) == ref_utf8(data, size));

	char *s = strndup((const char *)data, size);
	char accept[29];
	if (ws_accept_key(s, accept))
		assert(strlen(accept) == 28);
	char resp[256];
	const char *reason = NULL;
	if (!ws_handshake_response(s, s, s, size && data[0] & 1 ? "13" : s, resp, sizeof(resp), &reason))
		assert(reason);
	char key[25];
	ws_client_key(key);
	int c = ws_client_check_response((const char *)data, size, size > 1 && data[0] == 'H' ? key : "dGhlIHNhbXBsZSBub25jZQ==");
	assert(c >= -1 && c <= (int)size);
	free(s);
	return 0;
}
