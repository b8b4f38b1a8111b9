/*
 * fuzz_ws_conn: the WebSocket connection layer (ws_conn_*) as a server, fed frames as a console
 * would over a real socket pair, in pieces (the first byte picks their size): reassembly,
 * control frames, ping answers and their rate limit, close handshake, limits. Messages are
 * echoed back, and one with "close" in it closes from our side. The client then half-closes;
 * the connection must end (on_close once) and everything be freed.
 */
#include "fuzz.h"
#include "ws.h"

#include <assert.h>
#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>

static struct event_base *base;
static int closes;

static void on_message(ws_conn_t *c, const char *data, size_t len, void *arg)
{
	(void)arg;
	assert(data[len] == 0 && ws_utf8_valid((const uint8_t *)data, len));
	if (memmem(data, len, "close", 5)) {
		ws_conn_close(c, WS_CLOSE_NORMAL, data);
		return;
	}
	if (memmem(data, len, "shared", 6)) {
		ws_shared_t *f = ws_shared_text(data, len);
		(void)!ws_conn_send_shared(c, f);
		ws_shared_release(f);
		return;
	}
	(void)!ws_conn_send_text(c, data, len);
	(void)ws_conn_pending_bytes(c);
}

static void on_close(ws_conn_t *c, int code, void *arg)
{
	(void)c;
	(void)arg;
	assert(code >= 1000 && code <= 4999);
	closes++;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	return 0;
}

static void drain(int fd)
{
	char buf[4096];
	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t step = (size_t)(data[0] & 0x3f) * 4 + 1;
	data++, size--;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		abort();
	evutil_make_socket_nonblocking(sv[0]);
	evutil_make_socket_nonblocking(sv[1]);
	struct bufferevent *bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	ws_limits_t lim = {.max_message_bytes = 1024, .max_send_buffer = 4096, .ping_interval_ms = 0,
			   .max_peer_pings_per_s = 3};
	ws_callbacks_t cb = {.on_message = on_message, .on_close = on_close};
	closes = 0;
	ws_conn_t *c = ws_conn_new(bev, false, &lim, &cb, NULL);
	assert(c);
	size_t off = 0;
	while (off < size) {
		size_t n = size - off < step ? size - off : step;
		ssize_t w = write(sv[1], data + off, n);
		if (w > 0)
			off += (size_t)w;
		else if (w < 0 && errno != EAGAIN && errno != EINTR)
			break;
		event_base_loop(base, EVLOOP_NONBLOCK);
		drain(sv[1]);
		if (closes)
			break;
	}
	shutdown(sv[1], SHUT_WR);
	while (!closes) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		drain(sv[1]);
		event_base_loop(base, EVLOOP_ONCE);
	}
	assert(closes == 1);
	close(sv[1]);
	return 0;
}
