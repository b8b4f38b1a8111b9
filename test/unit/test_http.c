/*
 * test_http: the HTTP parser pieces (head end search, head parsing, chunked decoding, URL
 * decoding) driven directly, then a real server on 127.0.0.1 talked to with plain blocking
 * sockets from a thread while the main thread runs the event loop.
 */
#include "http.h"
#include "unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- pure parser tests */

static int parse(const char *text, http_head_t *h, http_header_t *hdrs, int max, char *buf, size_t cap)
{
	size_t len = strlen(text), scan = 0;
	snprintf(buf, cap, "%s", text);
	size_t end = http_find_head_end(buf, len, &scan);
	if (end == 0)
		return -1;
	return http_parse_request_head(buf, end, h, hdrs, max);
}

TEST(head_parse_basic)
{
	char buf[1024];
	http_head_t h;
	http_header_t hdrs[16];
	int rc = parse("POST /a/b?x=1&y=%20z HTTP/1.1\r\nHost: example\r\nX-Foo: \t bar baz \t\r\nEmpty:\r\n"
		       "Content-Length: 5\r\n\r\nhello",
		       &h, hdrs, 16, buf, sizeof(buf));
	CHECK(rc == 0);
	CHECK_STR(h.method, "POST");
	CHECK_STR(h.path, "/a/b");
	CHECK_STR(h.query, "x=1&y=%20z");
	CHECK(h.minor == 1);
	CHECK(h.nheaders == 4);
	CHECK_STR(hdrs[0].name, "Host");
	CHECK_STR(hdrs[0].value, "example");
	CHECK_STR(hdrs[1].value, "bar baz");
	CHECK_STR(hdrs[2].name, "Empty");
	CHECK_STR(hdrs[2].value, "");
	CHECK_STR(hdrs[3].value, "5");

	rc = parse("GET / HTTP/1.0\n\n", &h, hdrs, 16, buf, sizeof(buf));
	CHECK(rc == 0);
	CHECK(h.minor == 0);
	CHECK_STR(h.path, "/");
	CHECK_STR(h.query, "");
	CHECK(h.nheaders == 0);

	rc = parse("GET http://example.com/x?q HTTP/1.1\r\n\r\n", &h, hdrs, 16, buf, sizeof(buf));
	CHECK(rc == 0);
	CHECK_STR(h.path, "/x");
	CHECK_STR(h.query, "q");

	rc = parse("OPTIONS * HTTP/1.1\r\n\r\n", &h, hdrs, 16, buf, sizeof(buf));
	CHECK(rc == 0);
	CHECK_STR(h.path, "*");
}

TEST(head_end_trickle)
{
	const char *text = "GET /x HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\nNEXT";
	size_t full = strlen(text) - 4, scan = 0, end = 0, i;
	/* bytes arrive one at a time; the scan position must never go backwards by more than 2 */
	for (i = 1; i <= strlen(text) && end == 0; i++) {
		size_t before = scan;
		end = http_find_head_end(text, i, &scan);
		CHECK(scan + 2 >= before);
	}
	CHECK(end == full);
	CHECK(i - 1 == full);

	scan = 0;
	CHECK(http_find_head_end("GET / HTTP/1.1\nA: b\n\nrest", 25, &scan) == 21);
	scan = 0;
	CHECK(http_find_head_end("GET / HTTP/1.1\r\nA: b\r\n", 23, &scan) == 0);
	scan = 0;
	CHECK(http_find_head_end("GET / HTTP/1.1\r\nA: b\r\n\r", 24, &scan) == 0);
}

TEST(head_parse_errors)
{
	char buf[2048];
	http_head_t h;
	http_header_t hdrs[4];
	CHECK(parse("GET / HTTP/2.0\r\n\r\n", &h, hdrs, 4, buf, sizeof(buf)) == 505);
	CHECK(parse("GET / HTTP/1.1 x\r\n\r\n", &h, hdrs, 4, buf, sizeof(buf)) == 400);
	CHECK(parse("GET  / HTTP/1.1\r\n\r\n", &h, hdrs, 4, buf, sizeof(buf)) == 400);
	CHECK(parse("GET / HTTX/1.1\r\n\r\n", &h, hdrs, 4, buf, sizeof(buf)) == 400);
	CHECK(parse("GET /\r\n\r\n", &h, hdrs, 4, buf, sizeof(buf)) == 400);
	CHECK(parse("G(T / HTTP/1.1\r\n\r\n", &h, hdrs, 4, buf, sizeof(buf)) == 400);
	CHECK(parse("GET x HTTP/1.1\r\n\r\n", &h, hdrs, 4, buf, sizeof(buf)) == 400);
	CHECK(parse("GET / HTTP/1.1\r\nBad Name: v\r\n\r\n", &h, hdrs, 4, buf, sizeof(buf)) == 400);
	CHECK(parse("GET / HTTP/1.1\r\nName : v\r\n\r\n", &h, hdrs, 4, buf, sizeof(buf)) == 400);
	CHECK(parse("GET / HTTP/1.1\r\nNoColon\r\n\r\n", &h, hdrs, 4, buf, sizeof(buf)) == 400);
	CHECK(parse("GET / HTTP/1.1\r\n: v\r\n\r\n", &h, hdrs, 4, buf, sizeof(buf)) == 400);
	CHECK(parse("GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", &h, hdrs, 4, buf, sizeof(buf)) == 400);
	CHECK(parse("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", &h, hdrs, 4, buf, sizeof(buf)) == 400);
	CHECK(parse("GET / HTTP/1.1\r\nA: b\x01\r\n\r\n", &h, hdrs, 4, buf, sizeof(buf)) == 400);
	CHECK(h.error != NULL);
	/* more headers than room: 431, the "header too large" of the parser */
	int rc = parse("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n", &h, hdrs, 4, buf, sizeof(buf));
	CHECK(rc == 431);
	CHECK_STR(h.error, "too many request headers");
}

static int chunked_all(const char *in, size_t len, size_t step, char *out, size_t cap, size_t *out_len,
		       size_t *consumed, const char **err)
{
	http_chunked_t d;
	http_chunked_init(&d);
	size_t pos = 0, o = 0;
	int rc = 0;
	while (pos < len) {
		size_t n = len - pos < step ? len - pos : step, used, got;
		rc = http_chunked_decode(&d, in + pos, n, &used, out + o, cap - o, &got);
		pos += used;
		o += got;
		if (rc != 0 || (used == 0 && got == 0))
			break;
	}
	*out_len = o;
	*consumed = pos;
	*err = d.error;
	return rc;
}

TEST(chunked_decoding)
{
	const char *in = "5\r\nhello\r\n6;name=value\r\n world\r\n000\r\nTrailer: x\r\nOther: y\r\n\r\nNEXT";
	size_t len = strlen(in), steps[] = {1, 2, 3, 7, 1000};
	for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
		char out[64];
		size_t out_len, consumed;
		const char *err;
		int rc = chunked_all(in, len, steps[s], out, sizeof(out), &out_len, &consumed, &err);
		CHECK(rc == 1);
		CHECK(out_len == 11 && memcmp(out, "hello world", 11) == 0);
		CHECK(consumed == len - 4);
	}

	/* bare LF line ends, hex with capitals, no trailers */
	char out[64];
	size_t out_len, consumed;
	const char *err;
	CHECK(chunked_all("A\nabcdefghij\n0\n\n", 17, 1000, out, sizeof(out), &out_len, &consumed, &err) == 1);
	CHECK(out_len == 10 && memcmp(out, "abcdefghij", 10) == 0);

	/* out full: the decoder stops without consuming payload it cannot store */
	http_chunked_t d;
	http_chunked_init(&d);
	size_t used, got;
	CHECK(http_chunked_decode(&d, "5\r\nhello\r\n0\r\n\r\n", 15, &used, out, 2, &got) == 0);
	CHECK(got == 2 && used == 5);
	CHECK(http_chunked_decode(&d, "5\r\nhello\r\n0\r\n\r\n" + used, 15 - used, &used, out, 64, &got) == 1);
	CHECK(got == 3 && memcmp(out, "llo", 3) == 0);

	/* incomplete input needs more */
	http_chunked_init(&d);
	CHECK(http_chunked_decode(&d, "5\r\nhel", 6, &used, out, 64, &got) == 0);
	CHECK(used == 6 && got == 3);
}

TEST(chunked_bad_sizes)
{
	const char *bad[] = {
		"zz\r\n",                      /* not hex */
		"\r\n",                        /* empty size */
		"-1\r\n",                      /* sign */
		"0x10\r\n",                    /* C prefix */
		"10000000000000000\r\n",       /* 17 significant digits */
		"5\rX",                        /* CR not followed by LF */
		"5\r\nhelloX\r\n",             /* data longer than its size */
		"3\r\nabc\r\r",                /* CR CR after data */
		"0\r\n\rX",                    /* bad end */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char out[64];
		size_t out_len, consumed;
		const char *err = NULL;
		int rc = chunked_all(bad[i], strlen(bad[i]), 1000, out, sizeof(out), &out_len, &consumed, &err);
		if (rc != -1)
			printf("  case %zu: rc %d\n", i, rc);
		CHECK(rc == -1);
		CHECK(err != NULL);
	}
	/* leading zeros do not count towards the size limit */
	char out[64];
	size_t out_len, consumed;
	const char *err;
	CHECK(chunked_all("00000000000000000001\r\nx\r\n0\r\n\r\n", 31, 1000, out, sizeof(out), &out_len, &consumed,
			  &err) == 1);
	CHECK(out_len == 1 && out[0] == 'x');
	/* an endless chunk extension is refused */
	char big[3000];
	memset(big, 'a', sizeof(big));
	memcpy(big, "5;", 2);
	CHECK(chunked_all(big, sizeof(big), 1000, out, sizeof(out), &out_len, &consumed, &err) == -1);
}

TEST(url_decoding)
{
	char buf[32];
	CHECK(http_url_decode("a%20b+c%2Bd", 11, buf, sizeof(buf)));
	CHECK_STR(buf, "a b c+d");
	CHECK(http_url_decode("J%C3%B3", 7, buf, sizeof(buf)));
	CHECK_STR(buf, "J\xc3\xb3");
	CHECK(http_url_decode("100%", 4, buf, sizeof(buf)));
	CHECK_STR(buf, "100%");
	CHECK(http_url_decode("%zz%4", 5, buf, sizeof(buf)));
	CHECK_STR(buf, "%zz%4");
	CHECK(http_url_decode("", 0, buf, sizeof(buf)));
	CHECK_STR(buf, "");
	CHECK(!http_url_decode("a%00b", 5, buf, sizeof(buf)));
	CHECK(!http_url_decode("abcdef", 6, buf, 6)); /* no room for the NUL */
	CHECK(http_url_decode("abcde", 5, buf, 6));
	CHECK(strcmp(http_status_text(404), "Not Found") == 0);
	CHECK(strcmp(http_status_text(799), "Unknown") == 0);
}

/* One token finder for the server's Connection header and the WebSocket handshake, which hands
 * it slices of a head that are not NUL-terminated. */
TEST(header_tokens)
{
	const char *v = "keep-alive, Upgrade";
	CHECK(http_header_has_token(v, strlen(v), "upgrade"));
	CHECK(http_header_has_token(v, strlen(v), "KEEP-ALIVE"));
	CHECK(!http_header_has_token(v, strlen(v), "close"));
	CHECK(!http_header_has_token(v, strlen(v), "upgr"));
	CHECK(http_header_has_token(" \tclose\t ", 8, "close"));
	CHECK(!http_header_has_token("websocketX", 10, "websocket"));
	CHECK(http_header_has_token("websocketX", 9, "websocket")); /* only the first vlen bytes count */
	CHECK(!http_header_has_token("Upgrade", 0, "upgrade"));
	CHECK(!http_header_has_token(",,", 2, "upgrade"));
}

/* ---------------------------------------------------------------- socket-level test */

typedef struct {
	http_request_t *req;
	struct event *ev;
} deferred_t;

static struct event_base *g_base;
static http_server_t *g_srv;
static atomic_int g_client_done;
static atomic_int g_gone_checked; /* 1: respond happened; value of connection_alive in g_gone_alive */
static atomic_int g_gone_alive;
static atomic_int g_port;

static void deferred_cb(evutil_socket_t fd, short what, void *arg)
{
	deferred_t *d = arg;
	(void)fd;
	(void)what;
	if (strcmp(http_request_path(d->req), "/gone") == 0) {
		atomic_store(&g_gone_alive, http_request_connection_alive(d->req));
		atomic_store(&g_gone_checked, 1);
	}
	http_response_add_header(d->req, "X-Deferred", "yes");
	http_respond(d->req, 200, "text/plain", "deferred", 8);
	event_free(d->ev);
	free(d);
}

static void handler(http_request_t *req, void *arg)
{
	(void)arg;
	const char *path = http_request_path(req);
	if (strcmp(path, "/echo") == 0) {
		size_t blen;
		const char *body = http_request_body(req, &blen);
		char out[4096];
		const char *x = http_request_header(req, "x-test");
		int n = snprintf(out, sizeof(out), "%s %s %s %s %zu %s", http_request_method(req), path,
				 http_request_query(req), x ? x : "-", blen, body);
		http_respond(req, 200, "text/plain", out, (size_t)n);
	} else if (strcmp(path, "/q") == 0) {
		char v[64];
		if (http_request_query_param(req, "name", v, sizeof(v)))
			http_respond(req, 200, "text/plain", v, strlen(v));
		else
			http_respond_error(req, 404, "no \"name\"");
	} else if (strcmp(path, "/defer") == 0 || strcmp(path, "/gone") == 0) {
		deferred_t *d = calloc(1, sizeof(*d));
		d->req = req;
		d->ev = evtimer_new(g_base, deferred_cb, d);
		struct timeval tv = {0, strcmp(path, "/gone") == 0 ? 300000 : 50000};
		evtimer_add(d->ev, &tv);
	} else if (strcmp(path, "/peer") == 0) {
		const char *p = http_request_peer(req);
		http_respond(req, 200, NULL, p, strlen(p));
	} else {
		http_respond_error(req, 404, "not found");
	}
}

typedef struct {
	int fd;
	char buf[65536];
	size_t len;
} cli_t;

typedef struct {
	int status;
	char head[4096];
	char body[8192];
	size_t body_len;
} resp_t;

static bool cli_connect(cli_t *c)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atomic_load(&g_port))};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->len = 0;
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	struct timeval tv = {3, 0};
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
}

static void cli_send(cli_t *c, const char *s)
{
	size_t len = strlen(s), off = 0;
	while (off < len) {
		ssize_t n = send(c->fd, s + off, len - off, MSG_NOSIGNAL);
		if (n <= 0)
			return;
		off += (size_t)n;
	}
}

static bool cli_fill(cli_t *c)
{
	if (c->len >= sizeof(c->buf))
		return false;
	ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
	if (n <= 0)
		return false;
	c->len += (size_t)n;
	return true;
}

/* Reads one response (head, then Content-Length bytes unless no_body). */
static bool cli_response(cli_t *c, resp_t *r, bool no_body)
{
	char *end;
	memset(r, 0, sizeof(*r));
	while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
		if (!cli_fill(c))
			return false;
	size_t hl = (size_t)(end - c->buf) + 4;
	if (hl >= sizeof(r->head))
		return false;
	memcpy(r->head, c->buf, hl);
	r->status = atoi(r->head + 9);
	const char *cl = strcasestr(r->head, "\r\nContent-Length:");
	size_t blen = cl && !no_body ? (size_t)atol(cl + 17) : 0;
	while (c->len < hl + blen)
		if (!cli_fill(c))
			return false;
	if (blen >= sizeof(r->body))
		return false;
	memcpy(r->body, c->buf + hl, blen);
	r->body_len = blen;
	memmove(c->buf, c->buf + hl + blen, c->len - hl - blen);
	c->len -= hl + blen;
	return true;
}

static bool cli_eof(cli_t *c)
{
	char b;
	return c->len == 0 && recv(c->fd, &b, 1, 0) == 0;
}

static bool has_header(const resp_t *r, const char *line)
{
	return strcasestr(r->head, line) != NULL;
}

static void *client_main(void *arg)
{
	(void)arg;
	cli_t *c = calloc(1, sizeof(*c));
	resp_t r;

	/* two pipelined requests in one write: answered in order on the same connection */
	CHECK(cli_connect(c));
	cli_send(c, "GET /echo?a=1 HTTP/1.1\r\nHost: x\r\nX-Test: one\r\n\r\n"
		    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
	CHECK(cli_response(c, &r, false));
	CHECK(r.status == 200);
	CHECK(has_header(&r, "\r\nConnection: keep-alive\r\n"));
	CHECK(has_header(&r, "\r\nContent-Type: text/plain\r\n"));
	CHECK_STR(r.body, "GET /echo a=1 one 0 ");
	CHECK(cli_response(c, &r, false));
	CHECK(r.status == 200);
	CHECK_STR(r.body, "POST /echo  - 3 abc");

	/* query parameter decoding */
	cli_send(c, "GET /q?x=1&name=J%C3%B3+da+Silva&z HTTP/1.1\r\nHost: x\r\n\r\n");
	CHECK(cli_response(c, &r, false));
	CHECK_STR(r.body, "J\xc3\xb3 da Silva");
	cli_send(c, "GET /q?names=1 HTTP/1.1\r\nHost: x\r\n\r\n");
	CHECK(cli_response(c, &r, false));
	CHECK(r.status == 404);
	CHECK_STR(r.body, "{\"error\":\"no \\\"name\\\"\"}");

	/* a deferred response, answered from a timer */
	cli_send(c, "GET /defer HTTP/1.1\r\nHost: x\r\n\r\n");
	CHECK(cli_response(c, &r, false));
	CHECK(r.status == 200);
	CHECK(has_header(&r, "\r\nX-Deferred: yes\r\n"));
	CHECK_STR(r.body, "deferred");

	/* 100-continue, then a chunked body */
	cli_send(c, "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n");
	CHECK(cli_response(c, &r, true));
	CHECK(r.status == 100);
	CHECK_STR(r.head, "HTTP/1.1 100 Continue\r\n\r\n");
	cli_send(c, "4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n");
	CHECK(cli_response(c, &r, false));
	CHECK_STR(r.body, "POST /echo  - 9 Wikipedia");

	/* HEAD: Content-Length of the would-be body, no body; the next response must follow directly */
	cli_send(c, "HEAD /echo HTTP/1.1\r\nHost: x\r\n\r\nGET /peer HTTP/1.1\r\nHost: x\r\n\r\n");
	CHECK(cli_response(c, &r, true));
	CHECK(r.status == 200);
	CHECK(has_header(&r, "\r\nContent-Length: 16\r\n"));
	CHECK(cli_response(c, &r, false));
	CHECK(strncmp(r.body, "127.0.0.1:", 10) == 0);

	/* over max_body_bytes: 413 with a JSON body, then the server closes */
	char big[2100];
	memset(big, 'b', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	cli_send(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2099\r\n\r\n");
	cli_send(c, big);
	CHECK(cli_response(c, &r, false));
	CHECK(r.status == 413);
	CHECK(has_header(&r, "\r\nConnection: close\r\n"));
	CHECK(has_header(&r, "\r\nContent-Type: application/json\r\n"));
	CHECK_STR(r.body, "{\"error\":\"request body too large\"}");
	CHECK(cli_eof(c));
	close(c->fd);

	/* chunked over the limit: 413 while reading */
	CHECK(cli_connect(c));
	cli_send(c, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n834\r\n");
	cli_send(c, big);
	CHECK(cli_response(c, &r, false));
	CHECK(r.status == 413);
	close(c->fd);

	/* head over max_header_bytes: 431 */
	CHECK(cli_connect(c));
	cli_send(c, "GET / HTTP/1.1\r\nX-Big: ");
	cli_send(c, big);
	cli_send(c, "\r\n\r\n");
	CHECK(cli_response(c, &r, false));
	CHECK(r.status == 431);
	CHECK_STR(r.body, "{\"error\":\"request head too large\"}");
	close(c->fd);

	/* malformed request line: 400 JSON and close */
	CHECK(cli_connect(c));
	cli_send(c, "\r\nGARBAGE\r\n\r\n");
	CHECK(cli_response(c, &r, false));
	CHECK(r.status == 400);
	CHECK_STR(r.body, "{\"error\":\"malformed request line\"}");
	CHECK(cli_eof(c));
	close(c->fd);

	/* unsupported transfer coding: 501; HTTP/2 on this port: 505 */
	CHECK(cli_connect(c));
	cli_send(c, "POST /echo HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n");
	CHECK(cli_response(c, &r, false));
	CHECK(r.status == 501);
	close(c->fd);
	CHECK(cli_connect(c));
	cli_send(c, "GET / HTTP/3.0\r\n\r\n");
	CHECK(cli_response(c, &r, false));
	CHECK(r.status == 505);
	close(c->fd);

	/* HTTP/1.0 closes unless keep-alive asked; Connection: close is honoured */
	CHECK(cli_connect(c));
	cli_send(c, "GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
	CHECK(cli_response(c, &r, false));
	CHECK(has_header(&r, "\r\nConnection: keep-alive\r\n"));
	cli_send(c, "GET /echo HTTP/1.0\r\n\r\n");
	CHECK(cli_response(c, &r, false));
	CHECK(has_header(&r, "\r\nConnection: close\r\n"));
	CHECK(cli_eof(c));
	close(c->fd);
	CHECK(cli_connect(c));
	cli_send(c, "GET /echo HTTP/1.1\r\nConnection: close\r\n\r\n");
	CHECK(cli_response(c, &r, false));
	CHECK(has_header(&r, "\r\nConnection: close\r\n"));
	CHECK(cli_eof(c));
	close(c->fd);

	/* a slow client: request not complete within request_timeout_ms -> 408 */
	CHECK(cli_connect(c));
	cli_send(c, "GET /echo HTTP/1.1\r\nHost: x\r\n");
	CHECK(cli_response(c, &r, false));
	CHECK(r.status == 408);
	CHECK(cli_eof(c));
	close(c->fd);

	/* a client that goes away while its request is pending */
	CHECK(cli_connect(c));
	cli_send(c, "GET /gone HTTP/1.1\r\nHost: x\r\n\r\n");
	usleep(100000);
	close(c->fd);

	/* an idle keep-alive connection is closed silently */
	CHECK(cli_connect(c));
	cli_send(c, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
	CHECK(cli_response(c, &r, false));
	struct timeval t0, t1;
	gettimeofday(&t0, NULL);
	CHECK(cli_eof(c));
	gettimeofday(&t1, NULL);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_usec - t0.tv_usec) / 1000;
	CHECK(ms >= 500 && ms < 10000); /* closed by the 1 s idle timer, not at once; a loaded machine fires it late */
	close(c->fd);

	free(c);
	for (int i = 0; i < 300 && !atomic_load(&g_gone_checked); i++)
		usleep(10000); /* the /gone timer answers 300 ms after the request */
	atomic_store(&g_client_done, 1);
	return NULL;
}

/* Over max_connections: accepted, answered 503, closed. */
static void *client_limit_main(void *arg)
{
	(void)arg;
	cli_t *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	resp_t r;
	CHECK(cli_connect(a));
	cli_send(a, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
	CHECK(cli_response(a, &r, false));
	CHECK(r.status == 200);
	CHECK(cli_connect(b));
	CHECK(cli_response(b, &r, false));
	CHECK(r.status == 503);
	CHECK_STR(r.body, "{\"error\":\"too many connections\"}");
	CHECK(cli_eof(b));
	close(b->fd);
	close(a->fd);
	free(a);
	free(b);
	atomic_store(&g_client_done, 1);
	return NULL;
}

static void check_done_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (atomic_load(&g_client_done))
		event_base_loopbreak(g_base);
}

static void run_with_client(const http_limits_t *limits, void *(*client)(void *))
{
	char err[256];
	g_base = event_base_new();
	g_srv = http_server_new(g_base, "127.0.0.1:0", limits, handler, NULL, err, sizeof(err));
	CHECK(g_srv != NULL);
	if (!g_srv) {
		printf("  %s\n", err);
		return;
	}
	CHECK(http_server_port(g_srv) > 0);
	atomic_store(&g_port, http_server_port(g_srv));
	atomic_store(&g_client_done, 0);

	/* the same port again must fail with a message */
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", http_server_port(g_srv));
	http_server_t *dup = http_server_new(g_base, addr, limits, handler, NULL, err, sizeof(err));
	CHECK(dup == NULL);
	CHECK(strstr(err, "listen on") != NULL);

	struct event *tick = event_new(g_base, -1, EV_PERSIST, check_done_cb, NULL);
	struct timeval tv = {0, 20000};
	event_add(tick, &tv);
	pthread_t th;
	pthread_create(&th, NULL, client, NULL);
	event_base_dispatch(g_base);
	pthread_join(th, NULL);

	/* every client socket is closed: the server must let go of them all (lingering ones too) */
	for (int i = 0; i < 300 && http_server_connection_count(g_srv) > 0; i++) {
		event_base_loop(g_base, EVLOOP_NONBLOCK);
		usleep(10000);
	}
	CHECK(http_server_connection_count(g_srv) == 0);

	http_server_stop_accepting(g_srv);
	cli_t c;
	CHECK(!cli_connect(&c));
	close(c.fd);

	event_free(tick);
	http_server_free(g_srv);
	event_base_free(g_base);
}

TEST(server_sockets)
{
	http_limits_t l = {
		.max_header_bytes = 1024,
		.max_body_bytes = 1000,
		.max_connections = 100,
		.request_timeout_ms = 500,
		.idle_timeout_ms = 1000,
	};
	atomic_store(&g_gone_checked, 0);
	run_with_client(&l, client_main);
	CHECK(atomic_load(&g_gone_checked) == 1);
	CHECK(atomic_load(&g_gone_alive) == 0);
}

TEST(server_connection_limit)
{
	http_limits_t l = {
		.max_header_bytes = 1024,
		.max_body_bytes = 1000,
		.max_connections = 1,
		.request_timeout_ms = 2000,
		.idle_timeout_ms = 5000,
	};
	run_with_client(&l, client_limit_main);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	RUN(head_parse_basic);
	RUN(head_end_trickle);
	RUN(head_parse_errors);
	RUN(chunked_decoding);
	RUN(chunked_bad_sizes);
	RUN(url_decoding);
	RUN(header_tokens);
	RUN(server_sockets);
	RUN(server_connection_limit);
	return unit_done();
}
