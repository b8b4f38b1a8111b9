/*
 * floor_sink: the least an HTTP server on libevent can do per webhook, for test/bench_floor.py
 * (issue 19's "why it cannot go further on this machine"). It accepts on 127.0.0.1:PORT, reads
 * each keep-alive connection's requests (head up to the blank line, then Content-Length bytes)
 * and answers each with a fixed 200 and a JSON body the size of the ingress's, nothing else: no
 * parsing of headers beyond Content-Length, no JSON, no Kafka, no logging. Its CPU per request
 * is the floor under the ingress's: the same loop library, the same read, write and epoll calls.
 * Runs until SIGTERM or SIGINT.
 */
#include <event2/event.h>
#include <event2/listener.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define SINK_BUF 65536

/* the ingress's answer to one new message */
static const char sink_answer[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 29\r\n\r\n"
				  "{\"accepted\":1,\"duplicates\":0}";

typedef struct {
	struct event *ev;
	char buf[SINK_BUF];
	size_t len;
} sink_conn_t;

static void sink_close(sink_conn_t *c)
{
	close(event_get_fd(c->ev));
	event_free(c->ev);
	free(c);
}

/* Length of the complete request at the front of buf, 0 while incomplete, -1 if unusable. */
static long sink_request_len(const char *buf, size_t len)
{
	const char *end = memmem(buf, len, "\r\n\r\n", 4);
	if (!end)
		return len >= SINK_BUF ? -1 : 0;
	size_t head = (size_t)(end - buf) + 4;
	long body = 0;
	for (const char *p = buf; p && p < end; p = memchr(p, '\n', (size_t)(end - p))) {
		p += *p == '\n';
		if (strncasecmp(p, "Content-Length:", 15) == 0)
			body = strtol(p + 15, NULL, 10);
	}
	if (body < 0 || head + (size_t)body > SINK_BUF)
		return -1;
	return head + (size_t)body <= len ? (long)(head + (size_t)body) : 0;
}

static void sink_read_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	sink_conn_t *c = arg;
	ssize_t n = read(fd, c->buf + c->len, SINK_BUF - c->len);
	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		sink_close(c);
		return;
	}
	c->len += (size_t)n;
	/* answer every complete request of this read in one write, as a pipelining server would */
	char out[16 * sizeof(sink_answer)];
	size_t out_len = 0;
	long r;
	while ((r = sink_request_len(c->buf, c->len)) > 0) {
		if (out_len + sizeof(sink_answer) - 1 > sizeof(out)) {
			if (write(fd, out, out_len) != (ssize_t)out_len) {
				sink_close(c);
				return;
			}
			out_len = 0;
		}
		memcpy(out + out_len, sink_answer, sizeof(sink_answer) - 1);
		out_len += sizeof(sink_answer) - 1;
		memmove(c->buf, c->buf + r, c->len - (size_t)r);
		c->len -= (size_t)r;
	}
	if (r < 0 || (out_len && write(fd, out, out_len) != (ssize_t)out_len))
		sink_close(c);
}

static void sink_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	(void)l, (void)sa, (void)salen;
	struct event_base *base = arg;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	sink_conn_t *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->ev = event_new(base, fd, EV_READ | EV_PERSIST, sink_read_cb, c);
	event_add(c->ev, NULL);
}

static void sink_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig, (void)what;
	event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
	if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
		fprintf(stderr, "usage: floor_sink PORT\n");
		return 2;
	}
	struct event_base *base = event_base_new();
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct evconnlistener *l =
		evconnlistener_new_bind(base, sink_accept_cb, base, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 128,
					(struct sockaddr *)&sin, sizeof(sin));
	if (!l) {
		fprintf(stderr, "floor_sink: cannot listen on 127.0.0.1:%s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	struct event *term = evsignal_new(base, SIGTERM, sink_signal_cb, base);
	struct event *intr = evsignal_new(base, SIGINT, sink_signal_cb, base);
	event_add(term, NULL);
	event_add(intr, NULL);
	printf("listening\n");
	fflush(stdout);
	event_base_dispatch(base);
	event_free(term);
	event_free(intr);
	evconnlistener_free(l);
	event_base_free(base);
	return 0;
}
