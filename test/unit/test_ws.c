/*
 * test_ws: the WebSocket codec (accept key, frame headers, masking, UTF-8) and ws_conn over
 * socketpairs in one event_base: either two ws_conns talking, or one ws_conn and a raw socket
 * on which the test writes and reads frames by hand to exercise the protocol's corners.
 */
#include "http.h"
#include "ws.h"
#include "unit.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- codec */

TEST(accept_key)
{
	char out[29];
	/* RFC 6455 section 1.3: SHA-1 b3 7a 4f 2c ... c4 ea, base64 "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" */
	CHECK(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out));
	CHECK_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	CHECK(!ws_accept_key("dGhlIHNhbXBsZSBub25jZQ=", out));   /* 23 chars */
	CHECK(!ws_accept_key("dGhlIHNhbXBsZSBub25jZQ===", out)); /* 25 chars */
	CHECK(!ws_accept_key("dGhlIHNhbXBsZSBub25jZQAA", out));  /* 18 bytes, not 16 */
	CHECK(!ws_accept_key("dGhlIHNhbXBsZSBub25jZ!==", out));
	CHECK(!ws_accept_key("", out));
	CHECK(!ws_accept_key(NULL, out));

	char key[25], resp[256];
	const char *reason = NULL;
	ws_client_key(key);
	CHECK(strlen(key) == 24);
	CHECK(ws_accept_key(key, out));
	CHECK(ws_handshake_response("WebSocket", "keep-alive, Upgrade", key, "13", resp, sizeof(resp), &reason));
	CHECK(strncmp(resp, "HTTP/1.1 101 Switching Protocols\r\n", 34) == 0);
	CHECK(strstr(resp, out) != NULL);
	CHECK(ws_client_check_response(resp, strlen(resp), key) == (int)strlen(resp));
	CHECK(ws_client_check_response(resp, strlen(resp) - 1, key) == 0);
	char other[25];
	ws_client_key(other);
	CHECK(ws_client_check_response(resp, strlen(resp), other) == -1);
	CHECK(ws_client_check_response("HTTP/1.1 403 Forbidden\r\n\r\n", 26, key) == -1);

	CHECK(!ws_handshake_response(NULL, "Upgrade", key, "13", resp, sizeof(resp), &reason));
	CHECK(!ws_handshake_response("h2c", "Upgrade", key, "13", resp, sizeof(resp), &reason));
	CHECK(!ws_handshake_response("websocket", "keep-alive", key, "13", resp, sizeof(resp), &reason));
	CHECK(!ws_handshake_response("websocket", "Upgrade", key, "8", resp, sizeof(resp), &reason));
	CHECK(strstr(reason, "Version") != NULL);
	CHECK(!ws_handshake_response("websocket", "Upgrade", "short", "13", resp, sizeof(resp), &reason));
	CHECK(!ws_handshake_response("websocket", "Upgrade", key, "13", resp, 20, &reason));

	char req[512];
	int n = ws_client_request(req, sizeof(req), "localhost:8080", "/ws?token=abc", key);
	CHECK(n > 0 && (size_t)n == strlen(req));
	CHECK(strncmp(req, "GET /ws?token=abc HTTP/1.1\r\nHost: localhost:8080\r\n", 50) == 0);
	CHECK(strstr(req, "Sec-WebSocket-Version: 13\r\n\r\n") != NULL);
	CHECK(ws_client_request(req, 40, "localhost:8080", "/ws", key) == -1);
}

TEST(frame_headers)
{
	ws_frame_header_t h;
	const uint8_t h7[] = {0x81, 0x05};
	CHECK(ws_parse_header(h7, 1, &h) == 0);
	CHECK(ws_parse_header(h7, 2, &h) == 2);
	CHECK(h.fin && h.opcode == WS_OP_TEXT && !h.masked && h.payload_len == 5 && h.header_len == 2 && h.rsv == 0);

	const uint8_t h16[] = {0x02, 0xFE, 0x01, 0x00, 1, 2, 3, 4};
	CHECK(ws_parse_header(h16, 3, &h) == 0);
	CHECK(ws_parse_header(h16, 7, &h) == 0);
	CHECK(ws_parse_header(h16, 8, &h) == 8);
	CHECK(!h.fin && h.opcode == WS_OP_BINARY && h.masked && h.payload_len == 256);
	CHECK(h.mask[0] == 1 && h.mask[3] == 4);

	const uint8_t h64[] = {0x80, 0x7F, 0, 0, 0, 1, 0, 0, 0, 5};
	CHECK(ws_parse_header(h64, 9, &h) == 0);
	CHECK(ws_parse_header(h64, 10, &h) == 10);
	CHECK(h.fin && h.opcode == WS_OP_CONT && h.payload_len == 0x100000005ULL);

	const uint8_t msb[] = {0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 1};
	CHECK(ws_parse_header(msb, 10, &h) == -1);
	const uint8_t ping_big[] = {0x89, 0x7E, 0x00, 0x80};
	CHECK(ws_parse_header(ping_big, 4, &h) == -1);
	const uint8_t ping_frag[] = {0x09, 0x00};
	CHECK(ws_parse_header(ping_frag, 2, &h) == -1);
	const uint8_t bad_op[] = {0x83, 0x00};
	CHECK(ws_parse_header(bad_op, 2, &h) == -1);
	const uint8_t rsv[] = {0xC1, 0x00};
	CHECK(ws_parse_header(rsv, 2, &h) == 2 && h.rsv == 4);

	/* build -> parse round trips at each length encoding */
	uint64_t lens[] = {0, 125, 126, 65535, 65536, 1ULL << 40};
	uint8_t mask[4] = {0xde, 0xad, 0xbe, 0xef};
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		uint8_t out[14];
		size_t n = ws_build_header(out, WS_OP_TEXT, true, lens[i], i % 2 ? mask : NULL);
		size_t want = (lens[i] < 126 ? 2 : lens[i] <= 65535 ? 4 : 10) + (i % 2 ? 4 : 0);
		CHECK(n == want);
		CHECK(ws_parse_header(out, n, &h) == (int)n);
		CHECK(h.payload_len == lens[i] && h.masked == (i % 2 == 1) && h.opcode == WS_OP_TEXT && h.fin);
		if (i % 2)
			CHECK(memcmp(h.mask, mask, 4) == 0);
	}
}

TEST(masking)
{
	uint8_t data[100], orig[100], mask[4] = {0x12, 0x34, 0x56, 0x78};
	for (int i = 0; i < 100; i++)
		orig[i] = data[i] = (uint8_t)(i * 7);
	ws_mask(data, sizeof(data), mask, 0);
	for (int i = 0; i < 100; i++)
		CHECK(data[i] == (orig[i] ^ mask[i % 4]));
	ws_mask(data, sizeof(data), mask, 0);
	CHECK(memcmp(data, orig, sizeof(data)) == 0);
	/* masking in pieces with offsets equals masking at once */
	ws_mask(data, 13, mask, 0);
	ws_mask(data + 13, 50, mask, 13);
	ws_mask(data + 63, 37, mask, 63);
	for (int i = 0; i < 100; i++)
		CHECK(data[i] == (orig[i] ^ mask[i % 4]));
	/* the RFC's example: "Hello" masked with 37 fa 21 3d */
	uint8_t hello[] = "Hello", m2[4] = {0x37, 0xfa, 0x21, 0x3d}, want[] = {0x7f, 0x9f, 0x4d, 0x51, 0x58};
	ws_mask(hello, 5, m2, 0);
	CHECK(memcmp(hello, want, 5) == 0);
}

TEST(utf8)
{
#define V(s) ws_utf8_valid((const uint8_t *)(s), sizeof(s) - 1)
	CHECK(V(""));
	CHECK(V("plain ascii, long enough for the 8-byte path"));
	CHECK(V("Jo\xc3\xa3o \xe2\x82\xac \xf0\x9f\x98\x80"));      /* ã € 😀 */
	CHECK(V("\xed\x9f\xbf"));                                  /* U+D7FF */
	CHECK(V("\xee\x80\x80"));                                  /* U+E000 */
	CHECK(V("\xf4\x8f\xbf\xbf"));                              /* U+10FFFF */
	CHECK(V("\xc2\x80"));                                      /* U+0080 */
	CHECK(!V("\xc0\xaf"));                                     /* overlong '/' */
	CHECK(!V("\xc1\xbf"));                                     /* overlong */
	CHECK(!V("\xe0\x80\xaf"));                                 /* overlong 3-byte */
	CHECK(!V("\xe0\x9f\xbf"));                                 /* overlong U+07FF */
	CHECK(!V("\xf0\x80\x80\xaf"));                             /* overlong 4-byte */
	CHECK(!V("\xf0\x8f\xbf\xbf"));                             /* overlong U+FFFF */
	CHECK(!V("\xed\xa0\x80"));                                 /* U+D800 surrogate */
	CHECK(!V("\xed\xbf\xbf"));                                 /* U+DFFF surrogate */
	CHECK(!V("\xf4\x90\x80\x80"));                             /* U+110000 */
	CHECK(!V("\xf5\x80\x80\x80"));                             /* F5 lead */
	CHECK(!V("\xff"));
	CHECK(!V("\x80"));                                         /* lone continuation */
	CHECK(!V("abc\xe2\x82"));                                  /* truncated at the end */
	CHECK(!V("abcdefgh\xf0\x9f\x98"));                         /* truncated after the fast path */
	CHECK(!V("\xe2\x28\xa1"));                                 /* bad continuation */
	CHECK(!V("valid prefix ok \xc3"));
#undef V
}

/* ---------------------------------------------------------------- connections */

typedef struct {
	char msgs[8][256];
	int nmsgs;
	int closed; /* on_close calls */
	int code;
	int drains;
	ws_conn_t *conn;
} peer_t;

static void on_message(ws_conn_t *c, const char *data, size_t len, void *arg)
{
	peer_t *p = arg;
	(void)c;
	CHECK(data[len] == 0);
	if (p->nmsgs < 8)
		snprintf(p->msgs[p->nmsgs++], sizeof(p->msgs[0]), "%.*s", (int)len, data);
}

static void on_close(ws_conn_t *c, int code, void *arg)
{
	peer_t *p = arg;
	CHECK(c == p->conn);
	p->closed++;
	p->code = code;
	p->conn = NULL;
}

static void on_drain(ws_conn_t *c, void *arg)
{
	peer_t *p = arg;
	(void)c;
	p->drains++;
}

static const ws_callbacks_t cbs = {on_message, on_close, on_drain};

static long now_ms(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* Runs the loop until *count reaches want or timeout_ms passes (the whole time if count is NULL). */
static void run_until(struct event_base *base, const int *count, int want, int timeout_ms)
{
	long end = now_ms() + timeout_ms;
	while ((!count || *count < want) && now_ms() < end) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
}

static void pair(int fds[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0)
		abort();
	evutil_make_socket_nonblocking(fds[0]);
	evutil_make_socket_nonblocking(fds[1]);
}

static ws_conn_t *conn_on(struct event_base *base, int fd, bool client, const ws_limits_t *l, peer_t *p)
{
	struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	p->conn = ws_conn_new(bev, client, l, &cbs, p);
	return p->conn;
}

/* A raw end that writes client (masked) or server frames and reads whatever comes back. */
typedef struct {
	int fd;
	bool client;
	uint8_t buf[65536];
	size_t len;
	bool eof;
} raw_t;

static void raw_frame(raw_t *r, uint8_t opcode, bool fin, const void *data, size_t len)
{
	uint8_t frame[2048], mask[4] = {0xa1, 0xb2, 0xc3, 0xd4};
	size_t hl = ws_build_header(frame, opcode, fin, len, r->client ? mask : NULL);
	memcpy(frame + hl, data, len);
	if (r->client)
		ws_mask(frame + hl, len, mask, 0);
	CHECK(write(r->fd, frame, hl + len) == (ssize_t)(hl + len));
}

static void raw_pump(raw_t *r)
{
	for (;;) {
		ssize_t n = read(r->fd, r->buf + r->len, sizeof(r->buf) - r->len);
		if (n > 0)
			r->len += (size_t)n;
		else {
			if (n == 0)
				r->eof = true;
			return;
		}
	}
}

/* Takes the next complete frame off the raw buffer (payload unmasked into out). */
static bool raw_next(raw_t *r, ws_frame_header_t *h, uint8_t *out, size_t cap)
{
	raw_pump(r);
	int hl = ws_parse_header(r->buf, r->len, h);
	if (hl <= 0 || r->len < (size_t)hl + h->payload_len || h->payload_len > cap)
		return false;
	memcpy(out, r->buf + hl, (size_t)h->payload_len);
	if (h->masked)
		ws_mask(out, (size_t)h->payload_len, h->mask, 0);
	size_t total = (size_t)hl + (size_t)h->payload_len;
	memmove(r->buf, r->buf + total, r->len - total);
	r->len -= total;
	return true;
}

/* Runs the loop until the raw end has a frame, or 5 s pass (only a failure waits that long;
 * a loaded machine may need more than a moment). */
static bool raw_wait(struct event_base *base, raw_t *r, ws_frame_header_t *h, uint8_t *out, size_t cap)
{
	long end = now_ms() + 5000;
	while (now_ms() < end) {
		if (raw_next(r, h, out, cap))
			return true;
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	return false;
}

/* Runs the loop until the raw end reads EOF (its buffered frames are dropped) or 2 s pass. */
static void raw_wait_eof(struct event_base *base, raw_t *r)
{
	long end = now_ms() + 2000;
	while (!r->eof && now_ms() < end) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		r->len = 0;
		raw_pump(r);
		usleep(1000);
	}
}

static int close_code_of(const uint8_t *p, uint64_t len)
{
	return len >= 2 ? (p[0] << 8) | p[1] : 1005;
}

TEST(conn_pair_and_close_handshake)
{
	struct event_base *base = event_base_new();
	int fds[2];
	pair(fds);
	peer_t srv = {0}, cli = {0};
	ws_limits_t l = {.max_message_bytes = 1 << 20, .max_send_buffer = 1 << 20, .ping_interval_ms = 0};
	CHECK(conn_on(base, fds[0], false, &l, &srv) != NULL);
	CHECK(conn_on(base, fds[1], true, &l, &cli) != NULL);

	CHECK(ws_conn_send_text(cli.conn, "hello", 5));
	CHECK(ws_conn_send_text(cli.conn, "", 0));
	run_until(base, &srv.nmsgs, 2, 2000);
	CHECK(srv.nmsgs == 2);
	CHECK_STR(srv.msgs[0], "hello");
	CHECK_STR(srv.msgs[1], "");

	/* a large message crosses many socket reads */
	size_t big = 200000;
	char *text = malloc(big);
	memset(text, 'x', big);
	CHECK(ws_conn_send_text(srv.conn, text, big));
	CHECK(ws_conn_pending_bytes(srv.conn) == big + 10);
	CHECK(ws_conn_send_text(srv.conn, "after", 5));
	run_until(base, &cli.nmsgs, 2, 3000);
	CHECK(cli.nmsgs == 2);
	CHECK(strncmp(cli.msgs[0], "xxxx", 4) == 0);
	CHECK_STR(cli.msgs[1], "after");
	free(text);

	ws_conn_close(cli.conn, 1000, "bye");
	CHECK(!ws_conn_send_text(cli.conn, "late", 4));
	run_until(base, &srv.closed, 1, 2000);
	run_until(base, &cli.closed, 1, 2000);
	CHECK(srv.closed == 1 && srv.code == 1000);
	CHECK(cli.closed == 1 && cli.code == 1000);
	event_base_free(base);
}

TEST(conn_fragments_ping_pong)
{
	struct event_base *base = event_base_new();
	int fds[2];
	pair(fds);
	peer_t srv = {0};
	raw_t *raw = calloc(1, sizeof(*raw));
	raw->fd = fds[1];
	raw->client = true;
	ws_limits_t l = {.max_message_bytes = 1024};
	conn_on(base, fds[0], false, &l, &srv);

	/* a message in three fragments with a ping in the middle */
	raw_frame(raw, WS_OP_TEXT, false, "Hel", 3);
	raw_frame(raw, WS_OP_PING, true, "p1", 2);
	raw_frame(raw, WS_OP_CONT, false, "lo ", 3);
	raw_frame(raw, WS_OP_PONG, true, "unsolicited", 11);
	raw_frame(raw, WS_OP_CONT, true, "w\xc3\xb6rld", 6);
	ws_frame_header_t h;
	uint8_t pl[256];
	CHECK(raw_wait(base, raw, &h, pl, sizeof(pl)));
	CHECK(h.opcode == WS_OP_PONG && !h.masked && h.payload_len == 2 && memcmp(pl, "p1", 2) == 0);
	run_until(base, &srv.nmsgs, 1, 1000);
	CHECK(srv.nmsgs == 1);
	CHECK_STR(srv.msgs[0], "Hello w\xc3\xb6rld");

	/* server to client frames are unmasked text */
	CHECK(ws_conn_send_text(srv.conn, "hi", 2));
	CHECK(raw_wait(base, raw, &h, pl, sizeof(pl)));
	CHECK(h.opcode == WS_OP_TEXT && h.fin && !h.masked && h.payload_len == 2 && memcmp(pl, "hi", 2) == 0);

	/* the peer closes: echo its code, then the server ends the TCP connection */
	raw_frame(raw, WS_OP_CLOSE, true, "\x03\xe8" "done", 6);
	CHECK(raw_wait(base, raw, &h, pl, sizeof(pl)));
	CHECK(h.opcode == WS_OP_CLOSE && close_code_of(pl, h.payload_len) == 1000);
	raw_wait_eof(base, raw);
	CHECK(raw->eof);
	close(raw->fd);
	run_until(base, &srv.closed, 1, 2000);
	CHECK(srv.closed == 1 && srv.code == 1000);
	free(raw);
	event_base_free(base);
}

/* Sends frames from a raw client and expects the server to fail with want_code. */
static void expect_failure(void (*send)(raw_t *r), const ws_limits_t *l, int want_code)
{
	struct event_base *base = event_base_new();
	int fds[2];
	pair(fds);
	peer_t srv = {0};
	raw_t *raw = calloc(1, sizeof(*raw));
	raw->fd = fds[1];
	raw->client = true;
	conn_on(base, fds[0], false, l, &srv);
	send(raw);
	ws_frame_header_t h;
	uint8_t pl[256];
	bool got = raw_wait(base, raw, &h, pl, sizeof(pl));
	CHECK(got);
	if (got) {
		CHECK(h.opcode == WS_OP_CLOSE);
		int code = close_code_of(pl, h.payload_len);
		if (code != want_code)
			printf("  got close %d, want %d\n", code, want_code);
		CHECK(code == want_code);
	}
	/* the server sent its FIN after the close frame; once we close too it reports the code */
	raw_wait_eof(base, raw);
	CHECK(raw->eof);
	close(raw->fd);
	run_until(base, &srv.closed, 1, 2500);
	CHECK(srv.closed == 1 && srv.code == want_code);
	CHECK(srv.nmsgs == 0);
	free(raw);
	event_base_free(base);
}

static void send_bad_utf8(raw_t *r)
{
	raw_frame(r, WS_OP_TEXT, true, "ok \xc0\xaf", 5);
}
static void send_bad_utf8_fragmented(raw_t *r)
{
	raw_frame(r, WS_OP_TEXT, false, "\xed", 1);
	raw_frame(r, WS_OP_CONT, true, "\xa0\x80", 2); /* a surrogate split across frames */
}
static void send_too_big(raw_t *r)
{
	raw_frame(r, WS_OP_TEXT, true, "0123456789abcdefghij", 20);
}
static void send_too_big_fragmented(raw_t *r)
{
	raw_frame(r, WS_OP_TEXT, false, "0123456789", 10);
	raw_frame(r, WS_OP_CONT, true, "0123456789", 10);
}
static void send_unmasked(raw_t *r)
{
	r->client = false;
	raw_frame(r, WS_OP_TEXT, true, "x", 1);
}
static void send_rsv(raw_t *r)
{
	uint8_t f[] = {0xC1, 0x81, 0, 0, 0, 0, 'x'};
	CHECK(write(r->fd, f, sizeof(f)) == (ssize_t)sizeof(f));
}
static void send_bad_opcode(raw_t *r)
{
	uint8_t f[] = {0x83, 0x80, 0, 0, 0, 0};
	CHECK(write(r->fd, f, sizeof(f)) == (ssize_t)sizeof(f));
}
static void send_binary(raw_t *r)
{
	raw_frame(r, WS_OP_BINARY, true, "\x01\x02", 2);
}
static void send_stray_continuation(raw_t *r)
{
	raw_frame(r, WS_OP_CONT, true, "x", 1);
}
static void send_text_inside_fragmented(raw_t *r)
{
	raw_frame(r, WS_OP_TEXT, false, "a", 1);
	raw_frame(r, WS_OP_TEXT, true, "b", 1);
}
static void send_bad_close_code(raw_t *r)
{
	raw_frame(r, WS_OP_CLOSE, true, "\x03\xed", 2); /* 1005 must not be sent */
}

TEST(conn_failures)
{
	ws_limits_t l = {.max_message_bytes = 16};
	expect_failure(send_bad_utf8, &l, 1007);
	expect_failure(send_bad_utf8_fragmented, &l, 1007);
	expect_failure(send_too_big, &l, 1009);
	expect_failure(send_too_big_fragmented, &l, 1009);
	expect_failure(send_unmasked, &l, 1002);
	expect_failure(send_rsv, &l, 1002);
	expect_failure(send_bad_opcode, &l, 1002);
	expect_failure(send_binary, &l, 1003);
	expect_failure(send_stray_continuation, &l, 1002);
	expect_failure(send_text_inside_fragmented, &l, 1002);
	expect_failure(send_bad_close_code, &l, 1002);
}

TEST(conn_pair_failure_codes)
{
	/* both ends are ws_conns: the client sends bad UTF-8 (bypassing its own API), both report 1007 */
	struct event_base *base = event_base_new();
	int fds[2];
	pair(fds);
	peer_t srv = {0}, cli = {0};
	ws_limits_t l = {.max_message_bytes = 64};
	conn_on(base, fds[0], false, &l, &srv);
	conn_on(base, fds[1], true, &l, &cli);
	CHECK(ws_conn_send_text(cli.conn, "\xff", 1));
	run_until(base, &srv.closed, 1, 2500);
	run_until(base, &cli.closed, 1, 2500);
	CHECK(srv.closed == 1 && srv.code == 1007);
	CHECK(cli.closed == 1 && cli.code == 1007);

	/* too big for the server's limit */
	pair(fds);
	memset(&srv, 0, sizeof(srv));
	memset(&cli, 0, sizeof(cli));
	conn_on(base, fds[0], false, &l, &srv);
	ws_limits_t big = {.max_message_bytes = 1 << 20};
	conn_on(base, fds[1], true, &big, &cli);
	char text[100];
	memset(text, 'a', sizeof(text));
	CHECK(ws_conn_send_text(cli.conn, text, sizeof(text)));
	run_until(base, &srv.closed, 1, 2500);
	run_until(base, &cli.closed, 1, 2500);
	CHECK(srv.code == 1009 && cli.code == 1009);
	event_base_free(base);
}

TEST(conn_ping_keepalive_and_drop)
{
	struct event_base *base = event_base_new();
	int fds[2];
	pair(fds);
	peer_t srv = {0}, cli = {0};
	ws_limits_t l = {.ping_interval_ms = 50};
	/* two live ends ping each other and stay up */
	conn_on(base, fds[0], false, &l, &srv);
	conn_on(base, fds[1], true, &l, &cli);
	run_until(base, NULL, 0, 400);
	CHECK(srv.closed == 0 && cli.closed == 0);
	ws_conn_close(srv.conn, 1001, "going away");
	run_until(base, &cli.closed, 1, 2000);
	run_until(base, &srv.closed, 1, 2000);
	CHECK(cli.code == 1001 && srv.code == 1001);

	/* a client whose server never answers: pinged, then dropped with 1006 */
	pair(fds);
	memset(&cli, 0, sizeof(cli));
	raw_t *raw = calloc(1, sizeof(*raw));
	raw->fd = fds[0];
	conn_on(base, fds[1], true, &l, &cli);
	ws_frame_header_t h;
	uint8_t pl[256];
	CHECK(raw_wait(base, raw, &h, pl, sizeof(pl)));
	CHECK(h.opcode == WS_OP_PING && h.masked);
	long t0 = now_ms();
	run_until(base, &cli.closed, 1, 2000);
	CHECK(cli.closed == 1 && cli.code == 1006);
	CHECK(now_ms() - t0 < 1500); /* one more interval after the ping, with room for a loaded machine */
	close(raw->fd);
	free(raw);
	event_base_free(base);
}

TEST(conn_send_buffer_and_drain)
{
	struct event_base *base = event_base_new();
	int fds[2];
	pair(fds);
	peer_t srv = {0}, cli = {0};
	ws_limits_t l = {.max_send_buffer = 1000};
	conn_on(base, fds[0], false, &l, &srv);
	conn_on(base, fds[1], true, &l, &cli);
	char text[600];
	memset(text, 'z', sizeof(text));
	CHECK(ws_conn_send_text(srv.conn, text, sizeof(text)));
	CHECK(!ws_conn_send_text(srv.conn, text, sizeof(text))); /* would exceed 1000 pending */
	run_until(base, &srv.drains, 1, 1000);
	CHECK(srv.drains == 1);
	CHECK(ws_conn_pending_bytes(srv.conn) <= 500);
	CHECK(ws_conn_send_text(srv.conn, text, sizeof(text)));
	run_until(base, &cli.nmsgs, 2, 2000);
	CHECK(cli.nmsgs == 2);
	ws_conn_close(srv.conn, 1000, NULL);
	run_until(base, &cli.closed, 1, 2000);
	run_until(base, &srv.closed, 1, 2000);
	event_base_free(base);
}

/* Runs the loop until the connection's pending bytes equal want or 1 s passes. */
static void run_until_pending(struct event_base *base, ws_conn_t *c, size_t want)
{
	long end = now_ms() + 1000;
	while (ws_conn_pending_bytes(c) != want && now_ms() < end) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
}

TEST(conn_ping_flood)
{
	struct event_base *base = event_base_new();
	int fds[2];
	pair(fds);
	peer_t srv = {0};
	raw_t *raw = calloc(1, sizeof(*raw));
	raw->fd = fds[1];
	raw->client = true;
	ws_limits_t l = {.max_peer_pings_per_s = 5}; /* a burst of 10 */
	conn_on(base, fds[0], false, &l, &srv);
	ws_frame_header_t h;
	static uint8_t pl[32768];

	/* nothing waiting: answered at once */
	raw_frame(raw, WS_OP_PING, true, "p1", 2);
	CHECK(raw_wait(base, raw, &h, pl, sizeof(pl)));
	CHECK(h.opcode == WS_OP_PONG && h.payload_len == 2 && memcmp(pl, "p1", 2) == 0);

	/* a peer that does not read: its pongs count in the pending bytes and only the newest is owed */
	static char text[30000];
	memset(text, 't', sizeof(text));
	for (int i = 0; i < 40; i++)
		CHECK(ws_conn_send_text(srv.conn, text, sizeof(text)));
	run_until(base, NULL, 0, 50);
	size_t before = ws_conn_pending_bytes(srv.conn);
	CHECK(before > 0);
	char ping[3] = "p2";
	for (char d = '2'; d <= '9'; d++) {
		ping[1] = d;
		raw_frame(raw, WS_OP_PING, true, ping, 2);
	}
	run_until_pending(base, srv.conn, before + 4);
	CHECK(ws_conn_pending_bytes(srv.conn) == before + 4); /* one 2-byte pong with its 2-byte header */

	/* reading, the peer gets the data, then the pong of its latest ping only */
	int texts = 0, pongs = 0;
	while (raw_wait(base, raw, &h, pl, sizeof(pl))) {
		if (h.opcode == WS_OP_TEXT) {
			texts++;
			continue;
		}
		CHECK(h.opcode == WS_OP_PONG && h.payload_len == 2 && memcmp(pl, "p9", 2) == 0);
		pongs++;
		break;
	}
	CHECK(texts == 40 && pongs == 1);
	raw_frame(raw, WS_OP_PING, true, "pA", 2); /* the 10th ping: the burst's last */
	CHECK(raw_wait(base, raw, &h, pl, sizeof(pl)));
	CHECK(h.opcode == WS_OP_PONG && h.payload_len == 2 && memcmp(pl, "pA", 2) == 0);

	/* beyond the rate: failed with 1008 and a reason that says why */
	for (int i = 0; i < 5; i++)
		raw_frame(raw, WS_OP_PING, true, "pB", 2);
	bool closed = false;
	while (!closed && raw_wait(base, raw, &h, pl, sizeof(pl))) {
		if (h.opcode != WS_OP_CLOSE)
			continue;
		closed = true;
		CHECK(close_code_of(pl, h.payload_len) == 1008);
		CHECK(h.payload_len == 2 + strlen("ping rate exceeded") && memcmp(pl + 2, "ping rate exceeded", 18) == 0);
	}
	CHECK(closed);
	close(raw->fd);
	run_until(base, &srv.closed, 1, 2000);
	CHECK(srv.closed == 1 && srv.code == 1008);
	free(raw);
	event_base_free(base);
}

static void noop_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	(void)arg; /* leaves the bytes in the input, as the HTTP server does after an upgrade request */
}

TEST(conn_bytes_before_new)
{
	/* frames read together with the HTTP upgrade request sit in the bufferevent's input */
	struct event_base *base = event_base_new();
	int fds[2];
	pair(fds);
	peer_t srv = {0};
	struct bufferevent *bev = bufferevent_socket_new(base, fds[0], BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(bev, noop_read, NULL, NULL, NULL);
	bufferevent_enable(bev, EV_READ);
	raw_t *raw = calloc(1, sizeof(*raw));
	raw->fd = fds[1];
	raw->client = true;
	raw_frame(raw, WS_OP_TEXT, true, "early", 5);
	long end = now_ms() + 1000;
	while (evbuffer_get_length(bufferevent_get_input(bev)) == 0 && now_ms() < end) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	CHECK(evbuffer_get_length(bufferevent_get_input(bev)) > 0);
	srv.conn = ws_conn_new(bev, false, NULL, &cbs, &srv);
	CHECK(srv.nmsgs == 0); /* not delivered before the caller has the pointer */
	run_until(base, &srv.nmsgs, 1, 1000);
	CHECK(srv.nmsgs == 1);
	CHECK_STR(srv.msgs[0], "early");
	close(fds[1]);
	run_until(base, &srv.closed, 1, 1000);
	CHECK(srv.closed == 1 && srv.code == 1006);
	free(raw);
	event_base_free(base);
}

/* The notifier's path: GET /ws on the HTTP server, 101 written on the taken-over bufferevent,
 * then a server ws_conn that echoes; the client's first frame arrives with its request. */
static void echo_message(ws_conn_t *c, const char *data, size_t len, void *arg)
{
	on_message(c, data, len, arg);
	CHECK(ws_conn_send_text(c, data, len));
}

static const ws_callbacks_t echo_cbs = {echo_message, on_close, NULL};
static peer_t upgraded;

static void upgrade_handler(http_request_t *req, void *arg)
{
	char resp[256];
	const char *reason = NULL;
	(void)arg;
	if (!ws_handshake_response(http_request_header(req, "Upgrade"), http_request_header(req, "Connection"),
				   http_request_header(req, "Sec-WebSocket-Key"),
				   http_request_header(req, "Sec-WebSocket-Version"), resp, sizeof(resp), &reason)) {
		http_respond_error(req, 400, reason);
		return;
	}
	struct bufferevent *bev = http_request_take_connection(req);
	CHECK(bev != NULL);
	bufferevent_write(bev, resp, strlen(resp));
	upgraded.conn = ws_conn_new(bev, false, NULL, &echo_cbs, &upgraded);
}

TEST(upgrade_via_http)
{
	struct event_base *base = event_base_new();
	char err[256], key[25], req[512];
	memset(&upgraded, 0, sizeof(upgraded));
	http_server_t *srv = http_server_new(base, "127.0.0.1:0", NULL, upgrade_handler, NULL, err, sizeof(err));
	CHECK(srv != NULL);
	if (!srv)
		return;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)http_server_port(srv))};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	raw_t *raw = calloc(1, sizeof(*raw));
	raw->client = true;
	raw->fd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(connect(raw->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	evutil_make_socket_nonblocking(raw->fd);
	ws_client_key(key);
	int n = ws_client_request(req, sizeof(req), "127.0.0.1", "/ws", key);
	CHECK(write(raw->fd, req, (size_t)n) == n);
	raw_frame(raw, WS_OP_TEXT, true, "first", 5);

	long end = now_ms() + 2000;
	int head = 0;
	while (head == 0 && now_ms() < end) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		raw_pump(raw);
		head = ws_client_check_response((const char *)raw->buf, raw->len, key);
		usleep(1000);
	}
	CHECK(head > 0);
	if (head > 0) {
		memmove(raw->buf, raw->buf + head, raw->len - (size_t)head);
		raw->len -= (size_t)head;
	}
	CHECK(http_server_connection_count(srv) == 0); /* the socket is the ws_conn's now */
	ws_frame_header_t h;
	uint8_t pl[64];
	CHECK(raw_wait(base, raw, &h, pl, sizeof(pl)));
	CHECK(h.opcode == WS_OP_TEXT && h.payload_len == 5 && memcmp(pl, "first", 5) == 0);
	CHECK(upgraded.nmsgs == 1);

	close(raw->fd);
	run_until(base, &upgraded.closed, 1, 1000);
	CHECK(upgraded.closed == 1 && upgraded.code == 1006);
	free(raw);
	http_server_free(srv);
	event_base_free(base);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	RUN(accept_key);
	RUN(frame_headers);
	RUN(masking);
	RUN(utf8);
	RUN(conn_pair_and_close_handshake);
	RUN(conn_fragments_ping_pong);
	RUN(conn_failures);
	RUN(conn_pair_failure_codes);
	RUN(conn_ping_keepalive_and_drop);
	RUN(conn_send_buffer_and_drain);
	RUN(conn_ping_flood);
	RUN(conn_bytes_before_new);
	RUN(upgrade_via_http);
	return unit_done();
}
