/*
 * fuzz_http_server: the HTTP server's connection state machine fed as a client would: each
 * input is written over a real loopback connection in pieces (the first byte picks their size),
 * then the client half-closes and reads until the server closes. The handler answers at once,
 * later from the loop (deferred), hands the connection over (upgrade) or reads everything a
 * request offers, chosen by the path; small limits make 413/431 reachable. At the end of each
 * input every connection and every deferred request must be gone.
 */
#include "fuzz.h"
#include "http.h"

#include <assert.h>
#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

static struct event_base *base;
static http_server_t *srv;
static int deferred; /* requests handed to the loop, not answered yet */
static bool client_eof;
static struct event *client_ev; /* the client's socket, read and discarded */

static void answer_later(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	http_request_t *req = arg;
	(void)http_request_connection_alive(req);
	http_respond_json(req, 202, "{\"later\":true}");
	deferred--;
}

static void free_taken(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	bufferevent_free(arg);
	deferred--;
}

static void handler(http_request_t *req, void *arg)
{
	(void)arg;
	const char *path = http_request_path(req);
	size_t len = 0;
	const char *body = http_request_body(req, &len);
	assert(body[len] == 0);
	char v[64];
	(void)!http_request_query_param(req, "since", v, sizeof(v));
	(void)http_request_header(req, "content-type");
	(void)http_request_method(req);
	(void)http_request_peer(req);
	(void)http_request_version_minor(req);
	if (strstr(path, "defer")) {
		deferred++;
		event_base_once(base, -1, EV_TIMEOUT, answer_later, req, &(struct timeval){0, 0});
	} else if (strstr(path, "upgrade")) {
		/* as the notifier does: the taken connection lives on (here until the next loop turn) */
		struct bufferevent *bev = http_request_take_connection(req);
		if (bev) {
			deferred++;
			event_base_once(base, -1, EV_TIMEOUT, free_taken, bev, &(struct timeval){0, 0});
		}
	} else if (strstr(path, "error")) {
		http_respond_error(req, 422, body);
	} else {
		http_response_add_header(req, "X-Fuzz", "1");
		http_respond(req, 200, "text/plain", body, len);
	}
}

static void hung(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	fprintf(stderr, "fuzz_http_server: not done 5 s after the client's FIN: client_eof %d, deferred %d, connections %d\n",
		client_eof, deferred, http_server_connection_count(srv));
	abort();
}

static void client_read(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	(void)arg;
	char buf[4096];
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0)
			continue;
		if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			client_eof = true;
			event_del(client_ev); /* a closed socket stays readable: the loop would never be idle */
		}
		break;
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	http_limits_t l;
	http_limits_default(&l);
	l.max_header_bytes = 2048;
	l.max_body_bytes = 4096;
	l.max_connections = 4;
	char err[256];
	srv = http_server_new(base, "127.0.0.1:0", &l, handler, NULL, err, sizeof(err));
	if (!srv) {
		fprintf(stderr, "fuzz_http_server: %s\n", err);
		abort();
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t step = (size_t)(data[0] & 0x3f) * 16 + 1;
	data++, size--;

	/* each input from another loopback source address: the server closes first, so each
	 * connection leaves a TIME_WAIT on its side for a minute, and ~1,000 inputs a second from
	 * one address used up its ephemeral ports within 30 s (connect failed: EADDRNOTAVAIL).
	 * A failed connect is tried again from the next address: CI's fuzz smoke saw one fail
	 * once in 24,000 inputs on a loaded machine (libFuzzer's own signals can interrupt it) */
	static uint32_t inputs;
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)http_server_port(srv)),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = -1;
	for (int attempt = 0; fd < 0; attempt++) {
		struct sockaddr_in src = {.sin_family = AF_INET,
					  .sin_addr.s_addr = htonl(0x7f000000u | (2 + inputs++ % 0xfff0u))};
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd >= 0 && bind(fd, (struct sockaddr *)&src, sizeof(src)) == 0 &&
		    connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0)
			break;
		int e = errno;
		if (fd >= 0)
			close(fd);
		fd = -1;
		if (attempt == 9) {
			fprintf(stderr, "fuzz_http_server: the harness's connection to the server failed 10 times: %s\n",
				strerror(e));
			abort();
		}
		event_base_loop(base, EVLOOP_NONBLOCK); /* whatever the server has to finish, first */
	}
	/* no TIME_WAIT left behind: millions of inputs would use up the ephemeral ports */
	struct linger lg = {1, 0};
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	evutil_make_socket_nonblocking(fd);
	client_eof = false;
	client_ev = event_new(base, fd, EV_READ | EV_PERSIST, client_read, NULL);
	event_add(client_ev, NULL);

	size_t off = 0;
	while (off < size && !client_eof) {
		size_t n = size - off < step ? size - off : step;
		ssize_t w = send(fd, data + off, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w > 0)
			off += (size_t)w;
		else if (w < 0 && errno != EAGAIN && errno != EINTR)
			break; /* the server closed on us (an error answer): that's fine */
		event_base_loop(base, EVLOOP_NONBLOCK);
		event_base_loop(base, EVLOOP_NONBLOCK);
	}
	shutdown(fd, SHUT_WR);
	struct event *watchdog = evtimer_new(base, hung, NULL);
	struct timeval five = {5, 0};
	evtimer_add(watchdog, &five);
	while (!client_eof || deferred > 0 || http_server_connection_count(srv) > 0)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(watchdog);
	event_free(client_ev);
	close(fd);
	return 0;
}
