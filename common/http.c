/*
 * http: the HTTP/1.1 server (see http.h). Each connection struct embeds the one request it
 * parses or has pending, so requests cost no allocation; the head is copied into a reused
 * per-connection buffer and parsed in place, the body goes into another reused buffer.
 */
#include "http.h"
#include "json.h"

#include <sys/time.h>
#include "log.h"
#include "xalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define HTTP_MAX_HEADERS 100
#define HTTP_CHUNK_LINE_MAX 1024   /* chunk size line with extensions */
#define HTTP_TRAILER_MAX 8192      /* all trailer lines of a chunked body */
#define HTTP_READ_SLACK 65536      /* input kept beyond max_header_bytes before reading pauses */
#define HTTP_KEEP_BUF 65536        /* per-connection buffers larger than this are freed between requests */
#define HTTP_CLOSING_MS 10000      /* time to flush the last response of a closing connection */
#define HTTP_LINGER_MS 2000        /* time to wait for the client's FIN after ours */
#define HTTP_ACCEPT_RETRY_MS 200   /* listener pause after an accept error (EMFILE...) */
#define HTTP_OUTPUT_PAUSE (1 << 20) /* unsent response bytes above which pipelined requests wait */
/* status line, Content-Type, Content-Length, Connection, then the end of the head unless more follow */
#define HTTP_HEAD_FMT "HTTP/1.1 %d %s\r\n%s%s%s%sConnection: %s\r\n%s"

typedef enum {
	CS_IDLE,    /* between requests, nothing of the next one received */
	CS_HEAD,    /* part of a request head received */
	CS_BODY,    /* reading a Content-Length body */
	CS_CHUNKED, /* reading a chunked body */
	CS_PENDING, /* the handler has the request; waiting for http_respond */
	CS_CLOSING, /* last response queued; input discarded; closes once flushed */
	CS_LINGER,  /* our FIN sent; discarding input until the client's FIN so it gets no RST */
	CS_DEAD,    /* client gone while PENDING: socket closed, waiting for http_respond to free */
} conn_state_t;

typedef struct http_conn http_conn_t;

struct http_request {
	http_conn_t *conn;
	struct timeval started;  /* when the handler got it, for the observer */
	http_head_t head;
	http_header_t headers[HTTP_MAX_HEADERS];
	size_t body_len;
	bool keep_alive; /* the client allows the connection to stay open after this request */
	bool is_head;    /* HEAD: the response gets no body */
};

struct http_conn {
	http_server_t *srv;
	struct bufferevent *bev; /* NULL once the socket is closed or handed over */
	struct event *timer;     /* idle, request, closing or linger timeout depending on state */
	http_conn_t *prev, *next;
	conn_state_t state;
	bool counted;  /* counts in srv->nconns (503-rejected connections do not) */
	bool eof;      /* the client's FIN was seen */
	bool released; /* resources gone; the struct itself is freed when busy drops to 0 */
	int busy;      /* >0 while conn_process runs on the stack, so frees are deferred to it */
	size_t scan;   /* http_find_head_end position within the input */
	uint64_t body_remaining; /* Content-Length bytes still to read */
	size_t body_max;          /* the current request's body limit (limits.body_limit, else max_body_bytes) */
	http_chunked_t chunked;
	char *head_buf;
	size_t head_cap;
	char *body_buf;
	size_t body_cap;
	char *resp_hdrs; /* "Name: value\r\n"... added by http_response_add_header */
	size_t resp_len, resp_cap;
	char peer[INET6_ADDRSTRLEN + 8];
	struct http_request req;
};

struct http_server {
	struct event_base *base;
	struct evconnlistener *listener;
	struct event *accept_retry; /* re-enables the listener after an accept error */
	http_limits_t limits;
	struct timeval tv_request, tv_idle, tv_closing, tv_linger; /* libevent common timeouts: O(1) re-arming */
	http_handler_fn handler;
	void *arg;
	http_observer_fn observer; /* told of every response the handler gives */
	void *observer_arg;
	http_conn_t *conns; /* every connection, including DEAD ones holding a pending request */
	int nconns;
	int port;
	bool stopping;
};

static bool parse_listen_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *sslen);
static void server_set_timeouts(http_server_t *srv);
static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg);
static void accept_error_cb(struct evconnlistener *l, void *arg);
static void accept_retry_cb(evutil_socket_t fd, short what, void *arg);
static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);
static void conn_timer_cb(evutil_socket_t fd, short what, void *arg);
static void conn_process(http_conn_t *conn);
static bool conn_step(http_conn_t *conn);
static bool conn_begin(http_conn_t *conn);
static bool conn_head(http_conn_t *conn);
static bool conn_prepare_body(http_conn_t *conn);
static bool conn_body(http_conn_t *conn);
static bool conn_chunked(http_conn_t *conn);
static bool conn_dispatch(http_conn_t *conn);
static void conn_fail(http_conn_t *conn, int status, const char *message);
static void conn_fail_too_large(http_conn_t *conn);
static void conn_write_head(http_conn_t *conn, int status, const char *ctype, size_t len, bool with_len, bool keep);
static void conn_after_response(http_conn_t *conn, bool keep);
static bool response_keep_alive(http_conn_t *conn);
static bool response_has_body(const http_request_t *req, int status);
static void conn_closing(http_conn_t *conn);
static void conn_linger(http_conn_t *conn);
static void conn_dead(http_conn_t *conn);
static void conn_release(http_conn_t *conn);
static void conn_free_struct(http_conn_t *conn);
static void conn_arm(http_conn_t *conn, const struct timeval *tv, int ms);
static void conn_shrink(http_conn_t *conn);
static bool grow(char **buf, size_t *cap, size_t need);
static size_t json_error_body(char *out, size_t cap, const char *message);
static char *cut_line(char *p, char *end, char **line_end);
static bool is_tchar(unsigned char c);
static int hexval(unsigned char c);

/* ---------------------------------------------------------------- server */

void http_limits_default(http_limits_t *l)
{
	l->max_header_bytes = 8192;
	l->max_body_bytes = 1024 * 1024;
	l->max_connections = 10000;
	l->request_timeout_ms = 30000;
	l->idle_timeout_ms = 60000;
	l->body_limit = NULL;
	l->body_limit_arg = NULL;
}

http_server_t *http_server_new(struct event_base *base, const char *listen_addr, const http_limits_t *limits,
			       http_handler_fn handler, void *arg, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	if (!parse_listen_addr(listen_addr, &ss, &sslen)) {
		snprintf(err, errlen, "invalid listen address \"%s\" (want host:port, [v6]:port or :port)", listen_addr);
		return NULL;
	}

	http_server_t *srv = xcalloc(1, sizeof(*srv));
	srv->base = base;
	srv->handler = handler;
	srv->arg = arg;
	if (limits)
		srv->limits = *limits;
	else
		http_limits_default(&srv->limits);
	server_set_timeouts(srv);

	srv->listener = evconnlistener_new_bind(base, accept_cb, srv,
						LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 1024,
						(struct sockaddr *)&ss, (int)sslen);
	if (!srv->listener) {
		snprintf(err, errlen, "listen on %s: %s", listen_addr, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		free(srv);
		return NULL;
	}
	evconnlistener_set_error_cb(srv->listener, accept_error_cb);
	srv->accept_retry = evtimer_new(base, accept_retry_cb, srv);

	struct sockaddr_storage bound;
	socklen_t blen = sizeof(bound);
	if (getsockname(evconnlistener_get_fd(srv->listener), (struct sockaddr *)&bound, &blen) == 0) {
		if (bound.ss_family == AF_INET)
			srv->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
		else if (bound.ss_family == AF_INET6)
			srv->port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
	}
	return srv;
}

void http_server_set_observer(http_server_t *srv, http_observer_fn fn, void *arg)
{
	srv->observer = fn;
	srv->observer_arg = arg;
}

/* Reports one response to the observer (also for clients that left meanwhile). */
static void http_observe(http_request_t *req, int status)
{
	http_server_t *srv = req->conn->srv;
	struct timeval now;
	if (!srv->observer)
		return;
	gettimeofday(&now, NULL);
	double secs = (double)(now.tv_sec - req->started.tv_sec) + (double)(now.tv_usec - req->started.tv_usec) / 1e6;
	srv->observer(req, status, secs, srv->observer_arg);
}

void http_server_set_limits(http_server_t *srv, const http_limits_t *limits)
{
	srv->limits = *limits;
	server_set_timeouts(srv);
}

void http_server_stop_accepting(http_server_t *srv)
{
	if (srv->listener) {
		evconnlistener_free(srv->listener);
		srv->listener = NULL;
	}
	if (srv->accept_retry)
		event_del(srv->accept_retry);
	srv->stopping = true;
	http_conn_t *next;
	for (http_conn_t *c = srv->conns; c; c = next) {
		next = c->next;
		if (c->state != CS_IDLE)
			continue; /* mid-request or pending: its response will say close */
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
			conn_closing(c); /* a response is still being written: let it finish */
		else
			conn_release(c);
	}
}

int http_server_connection_count(const http_server_t *srv)
{
	return srv->nconns;
}

int http_server_port(const http_server_t *srv)
{
	return srv->port;
}

void http_server_free(http_server_t *srv)
{
	if (!srv)
		return;
	if (srv->listener)
		evconnlistener_free(srv->listener);
	if (srv->accept_retry)
		event_free(srv->accept_retry);
	while (srv->conns)
		conn_release(srv->conns);
	free(srv);
}

/* ---------------------------------------------------------------- request accessors */

const char *http_request_method(const http_request_t *req)
{
	return req->head.method;
}

const char *http_request_path(const http_request_t *req)
{
	return req->head.path;
}

const char *http_request_query(const http_request_t *req)
{
	return req->head.query;
}

bool http_request_query_param(const http_request_t *req, const char *name, char *buf, size_t buflen)
{
	const char *q = req->head.query;
	char key[256];
	while (*q) {
		const char *amp = strchr(q, '&');
		if (!amp)
			amp = q + strlen(q);
		const char *eq = memchr(q, '=', (size_t)(amp - q));
		const char *kend = eq ? eq : amp;
		if (http_url_decode(q, (size_t)(kend - q), key, sizeof(key)) && strcmp(key, name) == 0) {
			if (!eq)
				return http_url_decode("", 0, buf, buflen);
			return http_url_decode(eq + 1, (size_t)(amp - eq - 1), buf, buflen);
		}
		q = *amp ? amp + 1 : amp;
	}
	return false;
}

const char *http_request_header(const http_request_t *req, const char *name)
{
	for (int i = 0; i < req->head.nheaders; i++)
		if (strcasecmp(req->head.headers[i].name, name) == 0)
			return req->head.headers[i].value;
	return NULL;
}

const char *http_request_body(const http_request_t *req, size_t *len)
{
	if (len)
		*len = req->body_len;
	return req->conn->body_buf ? req->conn->body_buf : "";
}

const char *http_request_peer(const http_request_t *req)
{
	return req->conn->peer;
}

int http_request_version_minor(const http_request_t *req)
{
	return req->head.minor;
}

bool http_request_connection_alive(const http_request_t *req)
{
	return req->conn->state == CS_PENDING && req->conn->bev != NULL;
}

/* ---------------------------------------------------------------- responses */

void http_response_add_header(http_request_t *req, const char *name, const char *value)
{
	http_conn_t *conn = req->conn;
	/* a CR or LF would let the value inject headers or a whole response */
	if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n")) {
		log_warn("http: dropped response header %s with CR/LF", name);
		return;
	}
	size_t nl = strlen(name), vl = strlen(value);
	if (!grow(&conn->resp_hdrs, &conn->resp_cap, conn->resp_len + nl + vl + 4))
		return;
	char *p = conn->resp_hdrs + conn->resp_len;
	memcpy(p, name, nl);
	p[nl] = ':';
	p[nl + 1] = ' ';
	memcpy(p + nl + 2, value, vl);
	p[nl + 2 + vl] = '\r';
	p[nl + 3 + vl] = '\n';
	conn->resp_len += nl + vl + 4;
}

void http_respond(http_request_t *req, int status, const char *content_type, const char *body, size_t len)
{
	http_conn_t *conn = req->conn;
	http_observe(req, status);
	if (conn->state == CS_DEAD) {
		conn_release(conn);
		return;
	}
	if (conn->state != CS_PENDING) {
		log_error("http: response %d for a request that is not pending (state %d)", status, conn->state);
		return;
	}
	bool keep = response_keep_alive(conn);
	bool has_body = response_has_body(req, status);
	conn_write_head(conn, status, content_type, len, status >= 200 && status != 204 && status != 304, keep);
	if (has_body && len > 0)
		evbuffer_add(bufferevent_get_output(conn->bev), body, len);
	conn_after_response(conn, keep);
}

void http_respond_file(http_request_t *req, int status, const char *content_type, int fd, long long offset, size_t len)
{
	http_conn_t *conn = req->conn;
	http_observe(req, status);
	if (conn->state == CS_DEAD) {
		close(fd);
		conn_release(conn);
		return;
	}
	if (conn->state != CS_PENDING) {
		close(fd);
		log_error("http: response %d for a request that is not pending (state %d)", status, conn->state);
		return;
	}
	bool keep = response_keep_alive(conn);
	bool has_body = response_has_body(req, status);
	conn_write_head(conn, status, content_type, len, true, keep);
	if (has_body && len > 0) {
		if (evbuffer_add_file(bufferevent_get_output(conn->bev), fd, (ev_off_t)offset, (ev_off_t)len) != 0)
			close(fd);
	} else {
		close(fd);
	}
	conn_after_response(conn, keep);
}

void http_respond_json(http_request_t *req, int status, const char *json)
{
	http_respond(req, status, "application/json", json, strlen(json));
}

void http_respond_error(http_request_t *req, int status, const char *message)
{
	char small[512];
	size_t cap = 16 + 6 * strlen(message); /* worst case: every byte becomes \u00XX */
	char *buf = cap <= sizeof(small) ? small : xmalloc(cap);
	if (!buf) {
		http_respond_json(req, status, "{\"error\":\"out of memory\"}");
		return;
	}
	size_t n = json_error_body(buf, cap, message);
	http_respond(req, status, "application/json", buf, n);
	if (buf != small)
		free(buf);
}

struct bufferevent *http_request_take_connection(http_request_t *req)
{
	http_conn_t *conn = req->conn;
	if (conn->state != CS_PENDING || !conn->bev) {
		conn_release(conn);
		return NULL;
	}
	struct bufferevent *bev = conn->bev;
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	bufferevent_set_timeouts(bev, NULL, NULL);
	bufferevent_setwatermark(bev, EV_READ | EV_WRITE, 0, 0);
	conn->bev = NULL;
	conn_release(conn);
	return bev;
}

const char *http_status_text(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Payload Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 422: return "Unprocessable Entity";
	case 426: return "Upgrade Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

/* ---------------------------------------------------------------- pure parsers */

size_t http_find_head_end(const char *buf, size_t len, size_t *scan)
{
	size_t i = *scan;
	while (i < len) {
		const char *nl = memchr(buf + i, '\n', len - i);
		if (!nl)
			break;
		size_t p = (size_t)(nl - buf);
		/* the line after this LF is empty: "\n\n" or "\n\r\n"; undecidable bytes are rescanned next time */
		if (p + 1 >= len) {
			*scan = p;
			return 0;
		}
		if (buf[p + 1] == '\n')
			return p + 2;
		if (buf[p + 1] == '\r') {
			if (p + 2 >= len) {
				*scan = p;
				return 0;
			}
			if (buf[p + 2] == '\n')
				return p + 3;
		}
		i = p + 1;
	}
	*scan = len;
	return 0;
}

int http_parse_request_head(char *buf, size_t len, http_head_t *out, http_header_t *headers, int max_headers)
{
	char *end = buf + len, *le, *p = buf;
	memset(out, 0, sizeof(*out));
	out->headers = headers;
	out->query = "";

	char *next = cut_line(p, end, &le);
	if (!next) {
		out->error = "incomplete request head";
		return 400;
	}
	/* method SP request-target SP HTTP/1.x, each part checked so nothing odd reaches handlers */
	char *m = p;
	while (p < le && is_tchar((unsigned char)*p))
		p++;
	if (p == m || p == le || *p != ' ') {
		out->error = "malformed request line";
		return 400;
	}
	*p++ = 0;
	char *target = p;
	while (p < le && (unsigned char)*p > 0x20 && *p != 0x7f)
		p++;
	if (p == target || p == le || *p != ' ') {
		out->error = "malformed request line";
		return 400;
	}
	*p++ = 0;
	char *version = p;
	if (le - version != 8 || strncmp(version, "HTTP/", 5) != 0 || version[5] < '0' || version[5] > '9' ||
	    version[6] != '.' || version[7] < '0' || version[7] > '9') {
		out->error = "malformed HTTP version";
		return 400;
	}
	if (version[5] != '1') {
		out->error = "HTTP version not supported";
		return 505;
	}
	out->minor = version[7] - '0';
	out->method = m;

	/* absolute-form (proxies' style) is reduced to its path */
	if (strncasecmp(target, "http://", 7) == 0 || strncasecmp(target, "https://", 8) == 0) {
		char *slash = strchr(strstr(target, "//") + 2, '/');
		target = slash ? slash : "/";
	}
	if (target[0] != '/' && strcmp(target, "*") != 0) {
		out->error = "malformed request target";
		return 400;
	}
	char *q = strchr(target, '?');
	if (q) {
		*q = 0;
		out->query = q + 1;
	}
	out->path = target;

	for (p = next; p < end; p = next) {
		next = cut_line(p, end, &le);
		if (!next) {
			out->error = "incomplete request head";
			return 400;
		}
		if (le == p)
			return 0; /* the blank line */
		if (*p == ' ' || *p == '\t') {
			out->error = "obsolete header line folding";
			return 400;
		}
		char *name = p;
		while (p < le && is_tchar((unsigned char)*p))
			p++;
		if (p == name || p == le || *p != ':') {
			out->error = "malformed header line";
			return 400;
		}
		*p++ = 0;
		while (p < le && (*p == ' ' || *p == '\t'))
			p++;
		char *value = p, *vend = le;
		while (vend > value && (vend[-1] == ' ' || vend[-1] == '\t'))
			vend--;
		for (char *c = value; c < vend; c++) {
			unsigned char ch = (unsigned char)*c;
			if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
				out->error = "invalid character in header value";
				return 400;
			}
		}
		*vend = 0;
		if (out->nheaders >= max_headers) {
			out->error = "too many request headers";
			return 431;
		}
		headers[out->nheaders].name = name;
		headers[out->nheaders].value = value;
		out->nheaders++;
	}
	out->error = "incomplete request head";
	return 400;
}

enum {
	CH_SIZE_START, /* first hex digit of a chunk size */
	CH_SIZE,       /* more hex digits */
	CH_EXT,        /* chunk extension, ignored */
	CH_SIZE_LF,    /* CR seen after the size line */
	CH_DATA,       /* chunk payload */
	CH_DATA_CR,    /* CRLF after the payload */
	CH_DATA_LF,
	CH_TRAILER_START, /* start of a trailer line or of the final blank line */
	CH_TRAILER,       /* inside a trailer line, ignored */
	CH_END_LF,        /* CR of the final blank line seen */
	CH_DONE,
};

void http_chunked_init(http_chunked_t *d)
{
	memset(d, 0, sizeof(*d));
	d->state = CH_SIZE_START;
}

int http_chunked_decode(http_chunked_t *d, const char *in, size_t len, size_t *consumed, char *out, size_t out_cap,
			size_t *out_len)
{
	size_t i = 0, o = 0;
	int rc = 0;
	while (i < len && rc == 0) {
		unsigned char c = (unsigned char)in[i];
		int v;
		switch (d->state) {
		case CH_SIZE_START:
		case CH_SIZE:
			if ((v = hexval(c)) >= 0) {
				if (d->remaining || v) /* leading zeros do not count */
					d->digits++;
				if (d->digits > 15) {
					d->error = "chunk size too large";
					rc = -1;
					break;
				}
				d->remaining = d->remaining * 16 + (uint64_t)v;
				d->state = CH_SIZE;
				i++;
				break;
			}
			if (d->state == CH_SIZE_START) {
				d->error = "invalid chunk size";
				rc = -1;
				break;
			}
			i++;
			if (c == ';' || c == ' ' || c == '\t') {
				d->state = CH_EXT;
				d->line_bytes = 0;
			} else if (c == '\r') {
				d->state = CH_SIZE_LF;
			} else if (c == '\n') {
				d->state = d->remaining ? CH_DATA : CH_TRAILER_START;
			} else {
				d->error = "invalid chunk size";
				rc = -1;
			}
			break;
		case CH_EXT:
			i++;
			if (c == '\n') {
				d->state = d->remaining ? CH_DATA : CH_TRAILER_START;
			} else if (c == '\r') {
				d->state = CH_SIZE_LF;
			} else if ((c < 0x20 && c != '\t') || c == 0x7f || ++d->line_bytes > HTTP_CHUNK_LINE_MAX) {
				d->error = "malformed chunk extension";
				rc = -1;
			}
			break;
		case CH_SIZE_LF:
			if (c != '\n') {
				d->error = "malformed chunk size line";
				rc = -1;
				break;
			}
			i++;
			d->state = d->remaining ? CH_DATA : CH_TRAILER_START;
			break;
		case CH_DATA: {
			size_t n = len - i;
			if (n > d->remaining)
				n = (size_t)d->remaining;
			if (n > out_cap - o)
				n = out_cap - o;
			if (n == 0)
				goto out; /* out is full: the caller makes room or gives up */
			memcpy(out + o, in + i, n);
			i += n;
			o += n;
			d->remaining -= n;
			if (d->remaining == 0) {
				d->state = CH_DATA_CR;
				d->digits = 0;
			}
			break;
		}
		case CH_DATA_CR:
		case CH_DATA_LF:
			if (c == '\n') {
				d->state = CH_SIZE_START;
			} else if (c == '\r' && d->state == CH_DATA_CR) {
				d->state = CH_DATA_LF;
			} else {
				d->error = "missing CRLF after chunk data";
				rc = -1;
				break;
			}
			i++;
			break;
		case CH_TRAILER_START:
			if (c == '\n') {
				i++;
				d->state = CH_DONE;
				rc = 1;
			} else if (c == '\r') {
				i++;
				d->state = CH_END_LF;
			} else {
				d->state = CH_TRAILER;
			}
			break;
		case CH_TRAILER:
			i++;
			if (++d->trailer_bytes > HTTP_TRAILER_MAX) {
				d->error = "chunked trailers too large";
				rc = -1;
			} else if (c == '\n') {
				d->state = CH_TRAILER_START;
			}
			break;
		case CH_END_LF:
			if (c != '\n') {
				d->error = "malformed end of chunked body";
				rc = -1;
				break;
			}
			i++;
			d->state = CH_DONE;
			rc = 1;
			break;
		case CH_DONE:
			rc = 1;
			break;
		}
	}
	if (rc == 0 && d->state == CH_DONE)
		rc = 1;
out:
	*consumed = i;
	*out_len = o;
	return rc;
}

bool http_url_decode(const char *src, size_t len, char *buf, size_t buflen)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];
		if (c == '+') {
			c = ' ';
		} else if (c == '%' && i + 2 < len && hexval((unsigned char)src[i + 1]) >= 0 &&
			   hexval((unsigned char)src[i + 2]) >= 0) {
			c = (unsigned char)(hexval((unsigned char)src[i + 1]) * 16 + hexval((unsigned char)src[i + 2]));
			i += 2;
		}
		if (c == 0 || o + 1 >= buflen)
			return false;
		buf[o++] = (char)c;
	}
	if (buflen == 0)
		return false;
	buf[o] = 0;
	return true;
}

bool http_header_has_token(const char *value, size_t vlen, const char *token)
{
	size_t tl = strlen(token);
	const char *p = value, *end = value + vlen;
	while (p < end) {
		while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
			p++;
		const char *s = p;
		while (p < end && *p != ',')
			p++;
		const char *e = p;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if ((size_t)(e - s) == tl && strncasecmp(s, token, tl) == 0)
			return true;
	}
	return false;
}

/* ---------------------------------------------------------------- connections */

/* "host:port", "[v6]:port", ":port" or "*:port" (every IPv4 address). Port 0 is allowed (any free
 * port), which libevent's evutil_parse_sockaddr_port refuses. Names go through getaddrinfo. */
static bool parse_listen_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *sslen)
{
	char host[256];
	const char *colon;
	if (addr[0] == '[') {
		const char *rb = strchr(addr, ']');
		if (!rb || rb[1] != ':' || (size_t)(rb - addr - 1) >= sizeof(host))
			return false;
		memcpy(host, addr + 1, (size_t)(rb - addr - 1));
		host[rb - addr - 1] = 0;
		colon = rb + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon || (size_t)(colon - addr) >= sizeof(host))
			return false;
		memcpy(host, addr, (size_t)(colon - addr));
		host[colon - addr] = 0;
		if (!host[0] || strcmp(host, "*") == 0)
			strcpy(host, "0.0.0.0");
	}
	const char *port = colon + 1;
	if (!*port || strlen(port) > 5 || strspn(port, "0123456789") != strlen(port) || atoi(port) > 65535)
		return false;
	struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM}, *res;
	if (getaddrinfo(host, port, &hints, &res) != 0)
		return false;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sslen = res->ai_addrlen;
	freeaddrinfo(res);
	return true;
}

static void server_set_timeouts(http_server_t *srv)
{
	struct {
		struct timeval *dst;
		int ms;
	} t[] = {
		{&srv->tv_request, srv->limits.request_timeout_ms},
		{&srv->tv_idle, srv->limits.idle_timeout_ms},
		{&srv->tv_closing, HTTP_CLOSING_MS},
		{&srv->tv_linger, HTTP_LINGER_MS},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct timeval tv = {t[i].ms / 1000, (t[i].ms % 1000) * 1000};
		/* common timeouts turn thousands of same-length timers into a queue instead of a heap;
		 * libevent allows 256 per base, after which the plain timeval still works */
		const struct timeval *common = t[i].ms > 0 ? event_base_init_common_timeout(srv->base, &tv) : NULL;
		*t[i].dst = common ? *common : tv;
	}
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	http_server_t *srv = arg;
	(void)l;
	(void)salen;
	int one = 1;
	/* responses are written whole; Nagle would only delay the last segment of each */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	http_conn_t *conn = xcalloc(1, sizeof(*conn));
	struct bufferevent *bev = conn ? bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE) : NULL;
	struct event *timer = bev ? evtimer_new(srv->base, conn_timer_cb, conn) : NULL;
	if (!timer) {
		log_error("http: out of memory accepting a connection");
		if (bev)
			bufferevent_free(bev);
		else
			evutil_closesocket(fd);
		free(conn);
		return;
	}
	conn->srv = srv;
	conn->bev = bev;
	conn->timer = timer;
	conn->req.conn = conn;
	conn->state = CS_IDLE;
	char host[INET6_ADDRSTRLEN] = "?";
	if (sa->sa_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)sa;
		evutil_inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(conn->peer, sizeof(conn->peer), "%s:%d", host, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
		evutil_inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(conn->peer, sizeof(conn->peer), "[%s]:%d", host, ntohs(in6->sin6_port));
	} else {
		snprintf(conn->peer, sizeof(conn->peer), "unix");
	}
	conn->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = conn;
	srv->conns = conn;

	bufferevent_setcb(bev, conn_read_cb, conn_write_cb, conn_event_cb, conn);
	/* bounds what a client can pile up (pipelining behind a pending request) before reading pauses */
	bufferevent_setwatermark(bev, EV_READ, 0, srv->limits.max_header_bytes + HTTP_READ_SLACK);
	bufferevent_enable(bev, EV_READ | EV_WRITE);

	if (srv->limits.max_connections > 0 && srv->nconns >= srv->limits.max_connections) {
		log_debug("http: %s rejected, %d connections open", conn->peer, srv->nconns);
		conn_fail(conn, 503, "too many connections");
		return;
	}
	conn->counted = true;
	srv->nconns++;
	conn_arm(conn, &srv->tv_idle, srv->limits.idle_timeout_ms);
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
	http_server_t *srv = arg;
	int e = EVUTIL_SOCKET_ERROR();
	log_warn("http: accept on port %d: %s; pausing accepts", srv->port, evutil_socket_error_to_string(e));
	/* the listener is level-triggered: without a pause an EMFILE would spin the loop */
	evconnlistener_disable(l);
	struct timeval tv = {0, HTTP_ACCEPT_RETRY_MS * 1000};
	event_add(srv->accept_retry, &tv);
}

static void accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	http_server_t *srv = arg;
	(void)fd;
	(void)what;
	if (srv->listener)
		evconnlistener_enable(srv->listener);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	http_conn_t *conn = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	switch (conn->state) {
	case CS_CLOSING:
	case CS_LINGER:
		evbuffer_drain(in, evbuffer_get_length(in));
		break;
	case CS_PENDING:
		break; /* pipelined bytes wait for the response; the read watermark bounds them */
	default:
		conn_process(conn);
		break;
	}
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	http_conn_t *conn = arg;
	if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return;
	if (conn->state == CS_CLOSING)
		conn_linger(conn);
	else if (conn->state == CS_IDLE && evbuffer_get_length(bufferevent_get_input(bev)) > 0)
		conn_process(conn); /* requests held back by HTTP_OUTPUT_PAUSE */
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	http_conn_t *conn = arg;
	(void)bev;
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if (conn->state == CS_PENDING) {
		conn_dead(conn);
	} else if (conn->state == CS_CLOSING && !(what & BEV_EVENT_ERROR)) {
		/* a half-closed client may still read the response being flushed */
		conn->eof = true;
		bufferevent_disable(conn->bev, EV_READ);
	} else {
		conn_release(conn);
	}
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	http_conn_t *conn = arg;
	(void)fd;
	(void)what;
	switch (conn->state) {
	case CS_HEAD:
	case CS_BODY:
	case CS_CHUNKED:
		log_debug("http: %s request timeout", conn->peer);
		conn_fail(conn, 408, "request timeout");
		break;
	case CS_IDLE:
		/* a response may still be on its way to a slow reader: give it the closing delay */
		if (evbuffer_get_length(bufferevent_get_output(conn->bev)) > 0)
			conn_closing(conn);
		else
			conn_release(conn);
		break;
	case CS_CLOSING:
	case CS_LINGER:
		conn_release(conn);
		break;
	default:
		break;
	}
}

/* Parses and dispatches as many buffered requests as possible, in order. Runs the loop itself
 * instead of recursing when handlers respond synchronously, so long pipelines use no stack. */
static void conn_process(http_conn_t *conn)
{
	conn->busy++;
	while (!conn->released && conn_step(conn))
		;
	if (--conn->busy == 0 && conn->released)
		conn_free_struct(conn);
}

static bool conn_step(http_conn_t *conn)
{
	switch (conn->state) {
	case CS_IDLE:
		return conn_begin(conn);
	case CS_HEAD:
		return conn_head(conn);
	case CS_BODY:
		return conn_body(conn);
	case CS_CHUNKED:
		return conn_chunked(conn);
	default:
		return false;
	}
}

static bool conn_begin(http_conn_t *conn)
{
	http_server_t *srv = conn->srv;
	struct evbuffer *in = bufferevent_get_input(conn->bev);
	/* a client pipelining requests without reading the answers must not grow our output forever;
	 * the write callback resumes once it is flushed, the idle timer bounds the wait */
	if (evbuffer_get_length(bufferevent_get_output(conn->bev)) > HTTP_OUTPUT_PAUSE) {
		conn_arm(conn, &srv->tv_idle, srv->limits.idle_timeout_ms);
		return false;
	}
	/* stray CRLFs between requests (after a body) are allowed and skipped */
	for (;;) {
		char c;
		if (evbuffer_copyout(in, &c, 1) != 1) {
			conn_arm(conn, &srv->tv_idle, srv->limits.idle_timeout_ms);
			return false;
		}
		if (c != '\r' && c != '\n')
			break;
		evbuffer_drain(in, 1);
	}
	http_request_t *req = &conn->req;
	memset(&req->head, 0, sizeof(req->head));
	req->body_len = 0;
	conn->resp_len = 0;
	conn->scan = 0;
	conn->state = CS_HEAD;
	conn_arm(conn, &srv->tv_request, srv->limits.request_timeout_ms);
	return true;
}

static bool conn_head(http_conn_t *conn)
{
	http_server_t *srv = conn->srv;
	struct evbuffer *in = bufferevent_get_input(conn->bev);
	size_t len = evbuffer_get_length(in), max = srv->limits.max_header_bytes;
	/* a terminator may straddle the limit: look a little past it, then judge the length */
	size_t want = len < max + 4 ? len : max + 4;
	const char *data = (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
	if (!data)
		return false;
	size_t end = http_find_head_end(data, want, &conn->scan);
	if (end == 0 || end > max) {
		if (len > max || end > max)
			conn_fail(conn, 431, "request head too large");
		return false;
	}
	if (!grow(&conn->head_buf, &conn->head_cap, end + 1)) {
		conn_fail(conn, 500, "out of memory");
		return false;
	}
	memcpy(conn->head_buf, data, end);
	conn->head_buf[end] = 0;
	evbuffer_drain(in, end);
	http_request_t *req = &conn->req;
	int rc = http_parse_request_head(conn->head_buf, end, &req->head, req->headers, HTTP_MAX_HEADERS);
	if (rc) {
		log_debug("http: %s: %s", conn->peer, req->head.error);
		conn_fail(conn, rc, req->head.error);
		return false;
	}
	return conn_prepare_body(conn);
}

/* Decides keep-alive and the body framing from the parsed head, and answers 100-continue. */
static bool conn_prepare_body(http_conn_t *conn)
{
	http_server_t *srv = conn->srv;
	http_request_t *req = &conn->req;
	const char *te = NULL, *cl = NULL;
	int nte = 0;
	for (int i = 0; i < req->head.nheaders; i++) {
		const http_header_t *h = &req->head.headers[i];
		if (strcasecmp(h->name, "Transfer-Encoding") == 0) {
			te = h->value;
			nte++;
		} else if (strcasecmp(h->name, "Content-Length") == 0) {
			/* repeated lengths must agree, or the body's end is ambiguous */
			if (cl && strcmp(cl, h->value) != 0) {
				conn_fail(conn, 400, "conflicting Content-Length headers");
				return false;
			}
			cl = h->value;
		}
	}
	const char *connection = http_request_header(req, "Connection");
	size_t clen = connection ? strlen(connection) : 0;
	req->keep_alive = req->head.minor >= 1 ? !(connection && http_header_has_token(connection, clen, "close"))
					       : (connection && http_header_has_token(connection, clen, "keep-alive"));
	req->is_head = strcmp(req->head.method, "HEAD") == 0;

	uint64_t length = 0;
	bool chunked = false;
	conn->body_max = srv->limits.body_limit ? srv->limits.body_limit(req, srv->limits.body_limit_arg)
						: srv->limits.max_body_bytes;
	if (te) {
		if (cl) {
			/* both framings at once is how requests get smuggled past proxies */
			conn_fail(conn, 400, "both Content-Length and Transfer-Encoding");
			return false;
		}
		if (nte > 1 || strcasecmp(te, "chunked") != 0) {
			conn_fail(conn, 501, "unsupported Transfer-Encoding");
			return false;
		}
		chunked = true;
	} else if (cl) {
		const char *p = cl;
		if (!*p) {
			conn_fail(conn, 400, "invalid Content-Length");
			return false;
		}
		for (; *p; p++) {
			if (*p < '0' || *p > '9' || length > (UINT64_MAX - 9) / 10) {
				conn_fail(conn, 400, "invalid Content-Length");
				return false;
			}
			length = length * 10 + (uint64_t)(*p - '0');
		}
		if (length > conn->body_max) {
			conn_fail_too_large(conn);
			return false;
		}
	}

	struct evbuffer *in = bufferevent_get_input(conn->bev);
	const char *expect = http_request_header(req, "Expect");
	if (expect && (chunked || length > 0)) {
		if (strcasecmp(expect, "100-continue") != 0) {
			conn_fail(conn, 417, "unsupported Expect");
			return false;
		}
		/* curl waits 1 s for this before sending a body; skip it if the body is already here */
		size_t have = evbuffer_get_length(in);
		if (req->head.minor >= 1 && (chunked ? have == 0 : have < length))
			evbuffer_add(bufferevent_get_output(conn->bev), "HTTP/1.1 100 Continue\r\n\r\n", 25);
	}

	req->body_len = 0;
	if (chunked) {
		http_chunked_init(&conn->chunked);
		conn->state = CS_CHUNKED;
		return true;
	}
	if (length > 0) {
		if (!grow(&conn->body_buf, &conn->body_cap, (size_t)length + 1)) {
			conn_fail(conn, 500, "out of memory");
			return false;
		}
		conn->body_remaining = length;
		conn->state = CS_BODY;
		return true;
	}
	return conn_dispatch(conn);
}

static bool conn_body(http_conn_t *conn)
{
	struct evbuffer *in = bufferevent_get_input(conn->bev);
	http_request_t *req = &conn->req;
	size_t n = evbuffer_get_length(in);
	if (n > conn->body_remaining)
		n = (size_t)conn->body_remaining;
	if (n > 0) {
		evbuffer_remove(in, conn->body_buf + req->body_len, n);
		req->body_len += n;
		conn->body_remaining -= n;
	}
	if (conn->body_remaining > 0)
		return false;
	return conn_dispatch(conn);
}

static bool conn_chunked(http_conn_t *conn)
{
	struct evbuffer *in = bufferevent_get_input(conn->bev);
	http_request_t *req = &conn->req;
	size_t max = conn->body_max;
	for (;;) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
			return false;
		/* decoded bytes never outnumber input bytes; one byte past the limit is enough to refuse */
		size_t room = max + 1 - req->body_len;
		if (room > v.iov_len)
			room = v.iov_len;
		if (!grow(&conn->body_buf, &conn->body_cap, req->body_len + room + 1)) {
			conn_fail(conn, 500, "out of memory");
			return false;
		}
		size_t used, got;
		int rc = http_chunked_decode(&conn->chunked, v.iov_base, v.iov_len, &used, conn->body_buf + req->body_len,
					     room, &got);
		evbuffer_drain(in, used);
		req->body_len += got;
		if (req->body_len > max) {
			conn_fail_too_large(conn);
			return false;
		}
		if (rc < 0) {
			log_debug("http: %s: %s", conn->peer, conn->chunked.error);
			conn_fail(conn, 400, conn->chunked.error);
			return false;
		}
		if (rc == 1)
			return conn_dispatch(conn);
		if (used == 0)
			return false;
	}
}

/* Hands the complete request to the handler. True if the handler already answered, so the
 * caller can go on with the next pipelined request. */
static bool conn_dispatch(http_conn_t *conn)
{
	http_request_t *req = &conn->req;
	if (conn->body_buf)
		conn->body_buf[req->body_len] = 0;
	conn->state = CS_PENDING;
	event_del(conn->timer); /* the handler may take as long as it needs */
	gettimeofday(&req->started, NULL);
	conn->srv->handler(req, conn->srv->arg);
	return !conn->released && conn->state != CS_PENDING;
}

/* Answers a request the server refuses itself; the stream may be out of sync, so it closes. */
static void conn_fail(http_conn_t *conn, int status, const char *message)
{
	char body[256];
	size_t n = json_error_body(body, sizeof(body), message);
	conn_write_head(conn, status, "application/json", n, true, false);
	evbuffer_add(bufferevent_get_output(conn->bev), body, n);
	conn->resp_len = 0;
	conn_closing(conn);
}

/* 413: the generic message under the server-wide limit, the limit itself under a route's own
 * (an upload's caller wants to know how big a file may be). */
static void conn_fail_too_large(http_conn_t *conn)
{
	char msg[96];
	if (!conn->srv->limits.body_limit) {
		conn_fail(conn, 413, "request body too large");
		return;
	}
	snprintf(msg, sizeof(msg), "request body too large (at most %zu bytes)", conn->body_max);
	conn_fail(conn, 413, msg);
}

static void conn_write_head(http_conn_t *conn, int status, const char *ctype, size_t len, bool with_len, bool keep)
{
	struct evbuffer *out = bufferevent_get_output(conn->bev);
	char buf[512], lenstr[32] = "";
	if (with_len)
		snprintf(lenstr, sizeof(lenstr), "Content-Length: %zu\r\n", len);
	const char *t = http_status_text(status), *conn_v = keep ? "keep-alive" : "close";
	const char *ct1 = ctype ? "Content-Type: " : "", *ct2 = ctype ? ctype : "", *ct3 = ctype ? "\r\n" : "";
	const char *tail = conn->resp_len ? "" : "\r\n";
	int n = snprintf(buf, sizeof(buf), HTTP_HEAD_FMT, status, t, ct1, ct2, ct3, lenstr, conn_v, tail);
	if (n > 0 && (size_t)n < sizeof(buf))
		evbuffer_add(out, buf, (size_t)n);
	else
		evbuffer_add_printf(out, HTTP_HEAD_FMT, status, t, ct1, ct2, ct3, lenstr, conn_v, tail);
	if (conn->resp_len) {
		evbuffer_add(out, conn->resp_hdrs, conn->resp_len);
		evbuffer_add(out, "\r\n", 2);
	}
}

static bool response_keep_alive(http_conn_t *conn)
{
	return conn->req.keep_alive && !conn->srv->stopping;
}

static bool response_has_body(const http_request_t *req, int status)
{
	return !req->is_head && status >= 200 && status != 204 && status != 304;
}

static void conn_after_response(http_conn_t *conn, bool keep)
{
	conn_shrink(conn);
	if (!keep) {
		conn_closing(conn);
		return;
	}
	conn->state = CS_IDLE;
	/* inside the handler, conn_process's loop goes on by itself */
	if (conn->busy == 0)
		conn_process(conn);
}

static void conn_closing(http_conn_t *conn)
{
	conn->state = CS_CLOSING;
	conn_arm(conn, &conn->srv->tv_closing, HTTP_CLOSING_MS);
	struct evbuffer *in = bufferevent_get_input(conn->bev);
	evbuffer_drain(in, evbuffer_get_length(in));
	if (evbuffer_get_length(bufferevent_get_output(conn->bev)) == 0)
		conn_linger(conn);
}

/* Closing with unread input makes the kernel send a RST, which can destroy the response before
 * the client reads it; so send our FIN first and read until theirs (bounded). */
static void conn_linger(http_conn_t *conn)
{
	evutil_socket_t fd = bufferevent_getfd(conn->bev);
	if (conn->eof || fd < 0) {
		conn_release(conn);
		return;
	}
	shutdown(fd, SHUT_WR);
	conn->state = CS_LINGER;
	bufferevent_enable(conn->bev, EV_READ);
	conn_arm(conn, &conn->srv->tv_linger, HTTP_LINGER_MS);
}

static void conn_dead(http_conn_t *conn)
{
	event_del(conn->timer);
	bufferevent_free(conn->bev);
	conn->bev = NULL;
	conn->state = CS_DEAD;
	if (conn->counted) {
		conn->counted = false;
		conn->srv->nconns--;
	}
}

/* Closes and unlinks now; the struct itself waits for conn_process if it is on the stack. */
static void conn_release(http_conn_t *conn)
{
	if (conn->released)
		return;
	conn->released = true;
	if (conn->timer) {
		event_free(conn->timer);
		conn->timer = NULL;
	}
	if (conn->bev) {
		bufferevent_free(conn->bev);
		conn->bev = NULL;
	}
	http_server_t *srv = conn->srv;
	if (conn->counted)
		srv->nconns--;
	if (conn->prev)
		conn->prev->next = conn->next;
	else
		srv->conns = conn->next;
	if (conn->next)
		conn->next->prev = conn->prev;
	if (conn->busy == 0)
		conn_free_struct(conn);
}

static void conn_free_struct(http_conn_t *conn)
{
	free(conn->head_buf);
	free(conn->body_buf);
	free(conn->resp_hdrs);
	free(conn);
}

static void conn_arm(http_conn_t *conn, const struct timeval *tv, int ms)
{
	if (ms > 0)
		event_add(conn->timer, tv);
	else
		event_del(conn->timer);
}

/* Gives back memory a big request needed, so idle keep-alive connections stay small. */
static void conn_shrink(http_conn_t *conn)
{
	if (conn->body_cap > HTTP_KEEP_BUF) {
		free(conn->body_buf);
		conn->body_buf = NULL;
		conn->body_cap = 0;
	}
	if (conn->head_cap > HTTP_KEEP_BUF) {
		free(conn->head_buf);
		conn->head_buf = NULL;
		conn->head_cap = 0;
	}
	if (conn->resp_cap > HTTP_KEEP_BUF) {
		free(conn->resp_hdrs);
		conn->resp_hdrs = NULL;
		conn->resp_cap = 0;
	}
	conn->resp_len = 0;
}

/* ---------------------------------------------------------------- small helpers */

static bool grow(char **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return true;
	size_t n = *cap ? *cap : 256;
	while (n < need)
		n *= 2;
	*buf = xrealloc(*buf, n);
	*cap = n;
	return true;
}

/* {"error":"<message>"} with JSON escaping; cap must allow 16 + 6*strlen(message) to fit all. */
static size_t json_error_body(char *out, size_t cap, const char *message)
{
	memcpy(out, "{\"error\":\"", 10);
	size_t o = 10 + json_escape(out + 10, cap - 12, message);
	memcpy(out + o, "\"}", 3);
	return o + 2;
}

/* Cuts the line starting at p (ending at the next LF before end) and NUL-terminates it in place.
 * Returns the start of the next line, or NULL if there is no LF. *line_end gets the NUL position. */
static char *cut_line(char *p, char *end, char **line_end)
{
	char *nl = memchr(p, '\n', (size_t)(end - p));
	if (!nl)
		return NULL;
	char *le = nl;
	if (le > p && le[-1] == '\r')
		le--;
	*le = 0;
	*line_end = le;
	return nl + 1;
}

static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}
