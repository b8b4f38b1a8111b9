/*
 * ws: RFC 6455 codec and connection layer (see ws.h). A connection parses whole frames out of
 * its bufferevent's input, reassembles fragmented text messages in one reused buffer and ends
 * by flushing its last frame, sending its FIN and waiting (bounded) for the peer's.
 */
#include "ws.h"
#include "http.h"
#include "log.h"
#include "xalloc.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WS_DEFAULT_MAX_MESSAGE (1024 * 1024)
#define WS_CLOSE_WAIT_MS 2000   /* bound on waiting for the peer's close frame and FIN */
#define WS_KEEP_MSG_BUF 16384   /* reassembly buffers larger than this are freed after each message */
#define WS_MAX_RESPONSE_HEAD 8192
#define WS_REFILL_BYTES 65536   /* shared frames are copied into the output while it holds less */
#define WS_DEFAULT_PEER_PINGS 10 /* per second; browsers never ping, libraries every few seconds */

typedef enum {
	WS_OPEN,       /* frames flow both ways */
	WS_CLOSE_SENT, /* we sent a close frame; still parsing, for the peer's close */
	WS_FLUSHING,   /* input ignored; our last frames are being written */
	WS_DRAINING,   /* our FIN sent; discarding input until the peer's FIN */
	WS_GONE,       /* on_close called or being called */
} ws_state_t;

struct ws_conn {
	struct bufferevent *bev; /* NULL once gone */
	bool is_client;
	ws_limits_t limits;
	ws_callbacks_t cb;
	void *arg;
	ws_state_t state;
	int close_code;        /* what on_close will report */
	char *msg;             /* text message being reassembled */
	size_t msg_len, msg_cap;
	bool in_message;       /* a fragmented message awaits continuation frames */
	struct event *ping_timer;
	bool rx_since_tick;    /* something arrived since the last ping tick */
	bool ping_outstanding; /* we pinged and nothing arrived since */
	double ping_tokens;    /* the peer's ping allowance (token bucket), refilled by time */
	int64_t ping_refill_ms; /* monotonic time of the last refill */
	uint8_t pong[125];     /* the newest ping's payload, answered once the output is written */
	size_t pong_len;
	bool pong_owed;
	struct event *close_timer;
	bool drain_wanted; /* output went above half of max_send_buffer: on_drain is owed */
	struct ws_shared **q; /* shared frames queued by reference, oldest at q_head */
	size_t q_head, q_len, q_cap, q_bytes;
	int busy;          /* >0 while ws_process is on the stack: the struct is freed by it */
	bool dead;         /* gone while busy */
};

static void ws_read_cb(struct bufferevent *bev, void *arg);
static void ws_write_cb(struct bufferevent *bev, void *arg);
static void ws_event_cb(struct bufferevent *bev, short what, void *arg);
static void ws_ping_cb(evutil_socket_t fd, short what, void *arg);
static void ws_close_timer_cb(evutil_socket_t fd, short what, void *arg);
static void ws_process(ws_conn_t *c);
static bool ws_frame(ws_conn_t *c, struct evbuffer *in);
static void ws_control(ws_conn_t *c, uint8_t opcode, uint8_t *payload, size_t len);
static void ws_send_frame(ws_conn_t *c, uint8_t opcode, const void *data, size_t len);
static void ws_answer_ping(ws_conn_t *c, const uint8_t *payload, size_t len);
static void ws_flush_pong(ws_conn_t *c);
static int64_t ws_now_ms(void);
static void ws_send_close(ws_conn_t *c, int code, const char *reason);
static void ws_fail(ws_conn_t *c, int code, const char *why);
static void ws_flush_then_close(ws_conn_t *c);
static void ws_after_flush(ws_conn_t *c);
static void ws_gone(ws_conn_t *c, int code);
static void ws_free(ws_conn_t *c);
static bool close_code_valid(int code);
static uint32_t ws_random32(void);

/* ---------------------------------------------------------------- codec */

bool ws_accept_key(const char *client_key, char out[29])
{
	if (!client_key || strnlen(client_key, 25) != 24 || client_key[22] != '=' || client_key[23] != '=')
		return false;
	for (int i = 0; i < 22; i++) {
		char ch = client_key[i];
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '+' ||
		      ch == '/'))
			return false;
	}
	unsigned char buf[24 + sizeof(WS_GUID)], digest[SHA_DIGEST_LENGTH];
	memcpy(buf, client_key, 24);
	memcpy(buf + 24, WS_GUID, sizeof(WS_GUID) - 1);
	SHA1(buf, 24 + sizeof(WS_GUID) - 1, digest);
	EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH); /* 28 characters + NUL */
	return true;
}

bool ws_utf8_valid(const uint8_t *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		/* chat text is mostly ASCII: skip it eight bytes at a time */
		if (i + 8 <= len) {
			uint64_t w;
			memcpy(&w, s + i, 8);
			if (!(w & 0x8080808080808080ULL)) {
				i += 8;
				continue;
			}
		}
		uint8_t b = s[i];
		if (b < 0x80) {
			i++;
			continue;
		}
		size_t n;
		uint32_t cp;
		if (b >= 0xC2 && b <= 0xDF) {
			n = 1;
			cp = b & 0x1F;
		} else if ((b & 0xF0) == 0xE0) {
			n = 2;
			cp = b & 0x0F;
		} else if (b >= 0xF0 && b <= 0xF4) {
			n = 3;
			cp = b & 0x07;
		} else {
			return false; /* continuation byte, C0/C1 (overlong) or F5+ (beyond U+10FFFF) */
		}
		if (n >= len - i)
			return false; /* truncated */
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
			return false;
		i += n + 1;
	}
	return true;
}

int ws_parse_header(const uint8_t *buf, size_t len, ws_frame_header_t *out)
{
	if (len < 2)
		return 0;
	uint8_t op = buf[0] & 0x0F, l7 = buf[1] & 0x7F;
	bool fin = (buf[0] & 0x80) != 0, masked = (buf[1] & 0x80) != 0;
	switch (op) {
	case WS_OP_CONT:
	case WS_OP_TEXT:
	case WS_OP_BINARY:
		break;
	case WS_OP_CLOSE:
	case WS_OP_PING:
	case WS_OP_PONG:
		if (!fin || l7 > 125)
			return -1;
		break;
	default:
		return -1;
	}
	size_t hl = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + (masked ? 4 : 0);
	if (len < hl)
		return 0;
	uint64_t pl = l7;
	if (l7 == 126) {
		pl = ((uint64_t)buf[2] << 8) | buf[3];
	} else if (l7 == 127) {
		pl = 0;
		for (int i = 0; i < 8; i++)
			pl = (pl << 8) | buf[2 + i];
		if (pl >> 63)
			return -1;
	}
	memset(out, 0, sizeof(*out));
	out->fin = fin;
	out->opcode = op;
	out->rsv = (buf[0] >> 4) & 7;
	out->masked = masked;
	out->payload_len = pl;
	out->header_len = hl;
	if (masked)
		memcpy(out->mask, buf + hl - 4, 4);
	return (int)hl;
}

void ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], size_t offset)
{
	uint8_t m[8];
	uint64_t m64;
	size_t i = 0;
	for (int k = 0; k < 8; k++)
		m[k] = mask[(offset + (size_t)k) & 3];
	memcpy(&m64, m, 8);
	for (; i + 8 <= len; i += 8) {
		uint64_t w;
		memcpy(&w, data + i, 8);
		w ^= m64;
		memcpy(data + i, &w, 8);
	}
	for (; i < len; i++)
		data[i] ^= m[i & 7];
}

size_t ws_build_header(uint8_t out[14], uint8_t opcode, bool fin, uint64_t payload_len, const uint8_t *mask_or_null)
{
	size_t n = 2;
	out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
	uint8_t mbit = mask_or_null ? 0x80 : 0;
	if (payload_len < 126) {
		out[1] = mbit | (uint8_t)payload_len;
	} else if (payload_len <= 0xFFFF) {
		out[1] = mbit | 126;
		out[2] = (uint8_t)(payload_len >> 8);
		out[3] = (uint8_t)payload_len;
		n = 4;
	} else {
		out[1] = mbit | 127;
		for (int i = 0; i < 8; i++)
			out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
		n = 10;
	}
	if (mask_or_null) {
		memcpy(out + n, mask_or_null, 4);
		n += 4;
	}
	return n;
}

/* ---------------------------------------------------------------- handshake */

bool ws_handshake_response(const char *upgrade, const char *connection, const char *key, const char *version,
			   char *out, size_t cap, const char **reason)
{
	char accept[29];
	if (!upgrade || !http_header_has_token(upgrade, strlen(upgrade), "websocket")) {
		*reason = "Upgrade header must be websocket";
		return false;
	}
	if (!connection || !http_header_has_token(connection, strlen(connection), "upgrade")) {
		*reason = "Connection header must include upgrade";
		return false;
	}
	if (!version || strcmp(version, "13") != 0) {
		*reason = "unsupported Sec-WebSocket-Version (want 13)";
		return false;
	}
	if (!ws_accept_key(key, accept)) {
		*reason = "invalid Sec-WebSocket-Key";
		return false;
	}
	int n = snprintf(out, cap,
			 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			 "Sec-WebSocket-Accept: %s\r\n\r\n",
			 accept);
	if (n < 0 || (size_t)n >= cap) {
		*reason = "handshake buffer too small";
		return false;
	}
	return true;
}

int ws_client_request(char *out, size_t cap, const char *host, const char *path_and_query, const char *key)
{
	int n = snprintf(out, cap,
			 "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
			 path_and_query, host, key);
	return n < 0 || (size_t)n >= cap ? -1 : n;
}

void ws_client_key(char out[25])
{
	unsigned char raw[16];
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		for (int i = 0; i < 16; i += 4) {
			uint32_t r = ws_random32();
			memcpy(raw + i, &r, 4);
		}
	EVP_EncodeBlock((unsigned char *)out, raw, sizeof(raw));
}

int ws_client_check_response(const char *buf, size_t len, const char *key)
{
	const char *end = memmem(buf, len, "\r\n\r\n", 4);
	if (!end)
		return len > WS_MAX_RESPONSE_HEAD ? -1 : 0;
	size_t head_len = (size_t)(end - buf) + 4;
	if (head_len < 12 || memcmp(buf, "HTTP/1.1 101", 12) != 0)
		return -1;
	char want[29];
	if (!ws_accept_key(key, want))
		return -1;
	bool accept_ok = false, upgrade_ok = false, connection_ok = false;
	const char *p = (const char *)memchr(buf, '\n', head_len) + 1;
	while (p < end) {
		const char *eol = memchr(p, '\r', (size_t)(end + 2 - p));
		const char *colon = memchr(p, ':', (size_t)(eol - p));
		if (colon) {
			size_t nl = (size_t)(colon - p);
			const char *v = colon + 1, *ve = eol;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			size_t vl = (size_t)(ve - v);
			if (nl == 20 && strncasecmp(p, "Sec-WebSocket-Accept", nl) == 0)
				accept_ok = vl == 28 && memcmp(v, want, 28) == 0;
			else if (nl == 7 && strncasecmp(p, "Upgrade", nl) == 0)
				upgrade_ok = http_header_has_token(v, vl, "websocket");
			else if (nl == 10 && strncasecmp(p, "Connection", nl) == 0)
				connection_ok = http_header_has_token(v, vl, "upgrade");
		}
		p = eol + 2;
	}
	return accept_ok && upgrade_ok && connection_ok ? (int)head_len : -1;
}

/* ---------------------------------------------------------------- connection */

ws_conn_t *ws_conn_new(struct bufferevent *bev, bool is_client, const ws_limits_t *limits, const ws_callbacks_t *cb,
		       void *arg)
{
	ws_conn_t *c = xcalloc(1, sizeof(*c));
	struct event_base *base = bufferevent_get_base(bev);
	if (c)
		c->close_timer = evtimer_new(base, ws_close_timer_cb, c);
	if (c && c->close_timer && limits && limits->ping_interval_ms > 0)
		c->ping_timer = event_new(base, -1, EV_PERSIST, ws_ping_cb, c);
	if (!c || !c->close_timer || (limits && limits->ping_interval_ms > 0 && !c->ping_timer)) {
		log_error("ws: out of memory creating a connection");
		if (c) {
			if (c->close_timer)
				event_free(c->close_timer);
			free(c);
		}
		bufferevent_free(bev);
		return NULL;
	}
	c->bev = bev;
	c->is_client = is_client;
	if (limits)
		c->limits = *limits;
	if (c->limits.max_message_bytes == 0)
		c->limits.max_message_bytes = WS_DEFAULT_MAX_MESSAGE;
	if (c->limits.max_peer_pings_per_s <= 0)
		c->limits.max_peer_pings_per_s = WS_DEFAULT_PEER_PINGS;
	c->ping_tokens = 2.0 * c->limits.max_peer_pings_per_s;
	c->ping_refill_ms = ws_now_ms();
	c->cb = *cb;
	c->arg = arg;
	c->state = WS_OPEN;

	bufferevent_setcb(bev, ws_read_cb, ws_write_cb, ws_event_cb, c);
	bufferevent_set_timeouts(bev, NULL, NULL);
	bufferevent_setwatermark(bev, EV_READ, 0, 0);
	/* the write callback then fires when output drops to half the limit: that is on_drain's moment */
	bufferevent_setwatermark(bev, EV_WRITE, c->limits.max_send_buffer / 2, 0);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	if (c->ping_timer) {
		struct timeval tv = {c->limits.ping_interval_ms / 1000, (c->limits.ping_interval_ms % 1000) * 1000};
		event_add(c->ping_timer, &tv);
	}
	/* frames that came with the handshake: handle them from the loop, once the caller has c */
	if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
		bufferevent_trigger(bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
	return c;
}

bool ws_conn_send_text(ws_conn_t *c, const char *data, size_t len)
{
	if (c->state != WS_OPEN)
		return false;
	size_t pending = evbuffer_get_length(bufferevent_get_output(c->bev));
	size_t max = c->limits.max_send_buffer;
	if (max && pending + len + 14 > max) {
		c->drain_wanted = true;
		return false;
	}
	ws_send_frame(c, WS_OP_TEXT, data, len);
	if (max && pending + len > max / 2)
		c->drain_wanted = true;
	return true;
}

struct ws_shared {
	int refs;
	size_t len;
	uint8_t bytes[];
};

ws_shared_t *ws_shared_text(const char *data, size_t len)
{
	ws_shared_t *f = xmalloc(sizeof(*f) + 14 + len);
	size_t hl = ws_build_header(f->bytes, WS_OP_TEXT, true, len, NULL);
	memcpy(f->bytes + hl, data, len);
	f->len = hl + len;
	f->refs = 1;
	return f;
}

void ws_shared_release(ws_shared_t *f)
{
	if (f && --f->refs == 0)
		free(f);
}

/* Copies queued shared frames into the output while it is short of WS_REFILL_BYTES (all when all). */
static void ws_refill(ws_conn_t *c, bool all)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	while (c->q_len && (all || evbuffer_get_length(out) < WS_REFILL_BYTES)) {
		ws_shared_t *f = c->q[c->q_head];
		evbuffer_add(out, f->bytes, f->len);
		c->q_bytes -= f->len;
		ws_shared_release(f);
		c->q_head = (c->q_head + 1) % c->q_cap;
		c->q_len--;
	}
}

static void ws_queue_free(ws_conn_t *c)
{
	while (c->q_len) {
		ws_shared_release(c->q[c->q_head]);
		c->q_head = (c->q_head + 1) % c->q_cap;
		c->q_len--;
	}
	free(c->q);
	c->q = NULL;
	c->q_cap = c->q_bytes = 0;
}

bool ws_conn_send_shared(ws_conn_t *c, ws_shared_t *f)
{
	if (c->state != WS_OPEN || c->is_client || !f)
		return false;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t pending = evbuffer_get_length(out) + c->q_bytes, max = c->limits.max_send_buffer;
	if (max && pending + f->len > max) {
		c->drain_wanted = true;
		return false;
	}
	if (c->q_len == 0 && evbuffer_get_length(out) < WS_REFILL_BYTES) {
		evbuffer_add(out, f->bytes, f->len);
	} else {
		if (c->q_len == c->q_cap) {
			size_t cap = c->q_cap ? c->q_cap * 2 : 64;
			ws_shared_t **q = xmalloc(cap * sizeof(*q));
			for (size_t i = 0; i < c->q_len; i++)
				q[i] = c->q[(c->q_head + i) % c->q_cap];
			free(c->q);
			c->q = q;
			c->q_head = 0;
			c->q_cap = cap;
		}
		c->q[(c->q_head + c->q_len) % c->q_cap] = f;
		c->q_len++;
		c->q_bytes += f->len;
		f->refs++;
	}
	if (max && pending + f->len > max / 2)
		c->drain_wanted = true;
	return true;
}

void ws_conn_close(ws_conn_t *c, int code, const char *reason)
{
	if (c->state != WS_OPEN)
		return;
	ws_send_close(c, code, reason);
	c->close_code = code ? code : WS_CLOSE_NO_STATUS;
	c->state = WS_CLOSE_SENT;
	if (c->ping_timer)
		event_del(c->ping_timer);
	struct timeval tv = {WS_CLOSE_WAIT_MS / 1000, (WS_CLOSE_WAIT_MS % 1000) * 1000};
	event_add(c->close_timer, &tv);
}

size_t ws_conn_pending_bytes(const ws_conn_t *c)
{
	if (!c->bev)
		return 0;
	return evbuffer_get_length(bufferevent_get_output(c->bev)) + c->q_bytes + (c->pong_owed ? 2 + c->pong_len : 0);
}

void ws_conn_set_arg(ws_conn_t *c, void *arg)
{
	c->arg = arg;
}

/* ---------------------------------------------------------------- connection internals */

static void ws_read_cb(struct bufferevent *bev, void *arg)
{
	ws_conn_t *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	c->rx_since_tick = true;
	if (c->state == WS_OPEN || c->state == WS_CLOSE_SENT)
		ws_process(c);
	else
		evbuffer_drain(in, evbuffer_get_length(in));
}

static void ws_write_cb(struct bufferevent *bev, void *arg)
{
	ws_conn_t *c = arg;
	if (c->pong_owed && c->state == WS_OPEN)
		ws_flush_pong(c);
	if (c->q_len)
		ws_refill(c, false);
	size_t pending = evbuffer_get_length(bufferevent_get_output(bev)) + c->q_bytes;
	if (c->state == WS_FLUSHING) {
		if (pending == 0)
			ws_after_flush(c);
		return;
	}
	if (c->state == WS_OPEN && c->drain_wanted && pending <= c->limits.max_send_buffer / 2) {
		c->drain_wanted = false;
		if (c->cb.on_drain)
			c->cb.on_drain(c, c->arg);
	}
}

static void ws_event_cb(struct bufferevent *bev, short what, void *arg)
{
	ws_conn_t *c = arg;
	(void)bev;
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if (c->state == WS_OPEN || c->state == WS_CLOSE_SENT)
		ws_gone(c, WS_CLOSE_ABNORMAL);
	else
		ws_gone(c, c->close_code);
}

static void ws_ping_cb(evutil_socket_t fd, short what, void *arg)
{
	ws_conn_t *c = arg;
	(void)fd;
	(void)what;
	if (c->state != WS_OPEN)
		return;
	if (c->rx_since_tick) {
		c->rx_since_tick = false;
		c->ping_outstanding = false;
		return;
	}
	if (c->ping_outstanding) {
		/* a dead peer would not answer a close frame either: just drop */
		ws_gone(c, WS_CLOSE_ABNORMAL);
		return;
	}
	ws_send_frame(c, WS_OP_PING, NULL, 0);
	c->ping_outstanding = true;
}

static void ws_close_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	ws_conn_t *c = arg;
	(void)fd;
	(void)what;
	ws_gone(c, c->close_code);
}

static void ws_process(ws_conn_t *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	c->busy++;
	while ((c->state == WS_OPEN || c->state == WS_CLOSE_SENT) && ws_frame(c, in))
		;
	if (--c->busy == 0 && c->dead)
		ws_free(c);
}

/* Handles one frame if it is complete in the input. True if one was consumed. */
static bool ws_frame(ws_conn_t *c, struct evbuffer *in)
{
	uint8_t hb[14];
	ws_frame_header_t h;
	ev_ssize_t n = evbuffer_copyout(in, hb, sizeof(hb));
	int r = ws_parse_header(hb, n > 0 ? (size_t)n : 0, &h);
	if (r == 0)
		return false;
	if (r < 0) {
		ws_fail(c, WS_CLOSE_PROTOCOL, "malformed frame header");
		return false;
	}
	if (h.rsv) {
		ws_fail(c, WS_CLOSE_PROTOCOL, "reserved bits set");
		return false;
	}
	if (h.masked == c->is_client) {
		ws_fail(c, WS_CLOSE_PROTOCOL, c->is_client ? "masked frame from server" : "unmasked frame from client");
		return false;
	}
	bool control = (h.opcode & 0x8) != 0;
	if (!control) {
		if (h.opcode == WS_OP_BINARY) {
			ws_fail(c, WS_CLOSE_UNSUPPORTED, "binary messages are not supported");
			return false;
		}
		if ((h.opcode == WS_OP_TEXT) == c->in_message) {
			ws_fail(c, WS_CLOSE_PROTOCOL, c->in_message ? "new message inside a fragmented one"
								     : "continuation without a message");
			return false;
		}
		if (h.payload_len > c->limits.max_message_bytes - c->msg_len) {
			ws_fail(c, WS_CLOSE_TOO_BIG, "message too big");
			return false;
		}
	}
	if (evbuffer_get_length(in) < h.header_len + h.payload_len)
		return false;
	evbuffer_drain(in, h.header_len);
	size_t len = (size_t)h.payload_len;

	if (control) {
		uint8_t payload[126];
		evbuffer_remove(in, payload, len);
		if (h.masked)
			ws_mask(payload, len, h.mask, 0);
		ws_control(c, h.opcode, payload, len);
		return true;
	}

	if (c->msg_len + len + 1 > c->msg_cap) {
		size_t cap = c->msg_cap ? c->msg_cap : 256;
		while (cap < c->msg_len + len + 1)
			cap *= 2;
		char *p = xrealloc(c->msg, cap);
		c->msg = p;
		c->msg_cap = cap;
	}
	evbuffer_remove(in, c->msg + c->msg_len, len);
	if (h.masked)
		ws_mask((uint8_t *)c->msg + c->msg_len, len, h.mask, 0);
	c->msg_len += len;
	c->in_message = !h.fin;
	if (!h.fin)
		return true;

	c->msg[c->msg_len] = 0;
	if (!ws_utf8_valid((const uint8_t *)c->msg, c->msg_len)) {
		ws_fail(c, WS_CLOSE_BAD_DATA, "invalid UTF-8 in text message");
		return false;
	}
	size_t mlen = c->msg_len;
	c->msg_len = 0;
	/* after our close frame, data frames are read only to reach the peer's close */
	if (c->state == WS_OPEN && c->cb.on_message)
		c->cb.on_message(c, c->msg, mlen, c->arg);
	if (c->msg_cap > WS_KEEP_MSG_BUF && !c->dead) {
		free(c->msg);
		c->msg = NULL;
		c->msg_cap = 0;
	}
	return true;
}

static void ws_control(ws_conn_t *c, uint8_t opcode, uint8_t *payload, size_t len)
{
	if (opcode == WS_OP_PING) {
		if (c->state == WS_OPEN)
			ws_answer_ping(c, payload, len);
		return;
	}
	if (opcode == WS_OP_PONG)
		return; /* reading it already counted as activity */

	/* close */
	int code = WS_CLOSE_NO_STATUS;
	if (len == 1) {
		ws_fail(c, WS_CLOSE_PROTOCOL, "close frame with a 1-byte payload");
		return;
	}
	if (len >= 2) {
		code = (payload[0] << 8) | payload[1];
		if (!close_code_valid(code)) {
			ws_fail(c, WS_CLOSE_PROTOCOL, "invalid close code");
			return;
		}
		if (!ws_utf8_valid(payload + 2, len - 2)) {
			ws_fail(c, WS_CLOSE_BAD_DATA, "invalid UTF-8 in close reason");
			return;
		}
	}
	if (c->state == WS_OPEN) {
		/* echo the peer's code, as the RFC asks */
		ws_send_close(c, code == WS_CLOSE_NO_STATUS ? 0 : code, NULL);
		c->close_code = code;
	}
	ws_flush_then_close(c);
}

/* A peer that pings and never reads must not grow our memory: beyond the rate the connection fails
 * (1008, not a silent drop: a legitimate peer never pings this often, and a closed connection with a
 * reason shows a buggy client its fault, where unanswered pings would keep it flooding unseen). Within
 * it, the pong is written at once only when nothing is waiting to be written; else it is owed, and a
 * newer ping replaces the owed one (RFC 6455 5.5.3: answering the most recent ping is enough). */
static void ws_answer_ping(ws_conn_t *c, const uint8_t *payload, size_t len)
{
	int64_t now = ws_now_ms();
	double rate = c->limits.max_peer_pings_per_s, burst = 2.0 * rate;
	c->ping_tokens += (double)(now - c->ping_refill_ms) * rate / 1000.0;
	if (c->ping_tokens > burst)
		c->ping_tokens = burst;
	c->ping_refill_ms = now;
	if (c->ping_tokens < 1.0) {
		ws_fail(c, WS_CLOSE_POLICY, "ping rate exceeded");
		return;
	}
	c->ping_tokens -= 1.0;
	memcpy(c->pong, payload, len);
	c->pong_len = len;
	c->pong_owed = true;
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		ws_flush_pong(c);
}

/* Writes the owed pong; called when the output has drained (to the write low-watermark). */
static void ws_flush_pong(ws_conn_t *c)
{
	c->pong_owed = false;
	ws_send_frame(c, WS_OP_PONG, c->pong, c->pong_len);
}

static int64_t ws_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void ws_send_frame(ws_conn_t *c, uint8_t opcode, const void *data, size_t len)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	uint8_t hdr[14], mask[4];
	if (c->is_client) {
		uint32_t r = ws_random32();
		memcpy(mask, &r, 4);
	}
	size_t hl = ws_build_header(hdr, opcode, true, len, c->is_client ? mask : NULL);
	/* one contiguous reservation: header and payload are copied once and masked in place */
	struct evbuffer_iovec v;
	if (evbuffer_reserve_space(out, (ev_ssize_t)(hl + len), &v, 1) != 1) {
		log_error("ws: out of memory queueing a %zu-byte frame", len);
		return;
	}
	uint8_t *p = v.iov_base;
	memcpy(p, hdr, hl);
	if (len)
		memcpy(p + hl, data, len);
	if (c->is_client)
		ws_mask(p + hl, len, mask, 0);
	v.iov_len = hl + len;
	evbuffer_commit_space(out, &v, 1);
}

static void ws_send_close(ws_conn_t *c, int code, const char *reason)
{
	ws_refill(c, true); /* the close frame goes after every data frame queued */
	c->pong_owed = false; /* a closing connection answers no more pings */
	uint8_t payload[125];
	size_t n = 0;
	if (code) {
		payload[0] = (uint8_t)(code >> 8);
		payload[1] = (uint8_t)code;
		n = 2;
		if (reason) {
			size_t rl = strlen(reason);
			if (rl > 123) {
				rl = 123;
				while (rl > 0 && ((uint8_t)reason[rl] & 0xC0) == 0x80)
					rl--; /* do not cut a UTF-8 sequence */
			}
			memcpy(payload + 2, reason, rl);
			n += rl;
		}
	}
	ws_send_frame(c, WS_OP_CLOSE, payload, n);
}

/* Fails the connection (RFC 6455 7.1.7): tell the peer why, then close without waiting for its answer. */
static void ws_fail(ws_conn_t *c, int code, const char *why)
{
	log_debug("ws: closing with %d: %s", code, why);
	if (c->state == WS_OPEN)
		ws_send_close(c, code, why);
	c->close_code = code;
	ws_flush_then_close(c);
}

static void ws_flush_then_close(ws_conn_t *c)
{
	c->state = WS_FLUSHING;
	if (c->ping_timer)
		event_del(c->ping_timer);
	if (!evtimer_pending(c->close_timer, NULL)) {
		struct timeval tv = {WS_CLOSE_WAIT_MS / 1000, (WS_CLOSE_WAIT_MS % 1000) * 1000};
		event_add(c->close_timer, &tv);
	}
	struct evbuffer *in = bufferevent_get_input(c->bev);
	evbuffer_drain(in, evbuffer_get_length(in));
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		ws_after_flush(c);
}

/* Our last frame is out: send FIN and wait for the peer's, so our close frame is not lost to a RST.
 * Without a socket (bufferevent pairs) finish from the loop, keeping on_close asynchronous. */
static void ws_after_flush(ws_conn_t *c)
{
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	c->state = WS_DRAINING;
	if (fd >= 0 && shutdown(fd, SHUT_WR) == 0)
		return;
	event_active(c->close_timer, EV_TIMEOUT, 1);
}

static void ws_gone(ws_conn_t *c, int code)
{
	if (c->state == WS_GONE)
		return;
	c->state = WS_GONE;
	event_del(c->close_timer);
	if (c->ping_timer)
		event_del(c->ping_timer);
	bufferevent_free(c->bev);
	c->bev = NULL;
	if (c->cb.on_close)
		c->cb.on_close(c, code, c->arg);
	if (c->busy)
		c->dead = true;
	else
		ws_free(c);
}

static void ws_free(ws_conn_t *c)
{
	ws_queue_free(c);
	event_free(c->close_timer);
	if (c->ping_timer)
		event_free(c->ping_timer);
	free(c->msg);
	free(c);
}

static bool close_code_valid(int code)
{
	if (code >= 3000 && code <= 4999)
		return true;
	switch (code) {
	case 1000: case 1001: case 1002: case 1003:
	case 1007: case 1008: case 1009: case 1010: case 1011: case 1012: case 1013: case 1014:
		return true;
	default:
		return false;
	}
}

/* Masking keys only need to be unpredictable to scripts in a browser, not cryptographic here;
 * xorshift seeded once from the system keeps the load generator cheap. */
static uint32_t ws_random32(void)
{
	static uint64_t s;
	if (s == 0) {
		if (RAND_bytes((unsigned char *)&s, sizeof(s)) != 1 || s == 0)
			s = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ULL;
	}
	s ^= s << 13;
	s ^= s >> 7;
	s ^= s << 17;
	return (uint32_t)(s >> 32);
}
