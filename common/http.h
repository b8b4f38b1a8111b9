/*
 * http: a small HTTP/1.1 server on libevent bufferevents (keep-alive, pipelining in order,
 * Content-Length and chunked bodies, 100-continue, deferred responses, upgrade hand-off).
 * It knows nothing of the programs using it: a handler gets each complete request and must
 * answer it exactly once with http_respond*, now or later from any loop callback.
 */
#ifndef ATENDE_HTTP_H
#define ATENDE_HTTP_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bufferevent;
struct evbuffer;

typedef struct http_server http_server_t;
typedef struct http_request http_request_t;

typedef struct {
	size_t max_header_bytes; /* request line + headers; over it: 431 */
	size_t max_body_bytes;   /* over it: 413, checked on Content-Length before reading and while reading chunked */
	int max_connections;     /* over it: accept then answer 503 and close */
	int request_timeout_ms;  /* a started request (head+body) must be complete within this, else 408 + close; <=0: none */
	int idle_timeout_ms;     /* keep-alive connection with no request in progress: closed silently after this; <=0: none */
	/* Optional: the body limit of one request, from its head (method, path, headers: an
	 * upload route with a good token takes more than the rest), before its body is read;
	 * NULL: max_body_bytes for all. Its answer replaces max_body_bytes for that request, and
	 * its 413 says the limit. */
	size_t (*body_limit)(const http_request_t *req, void *arg);
	void *body_limit_arg;
} http_limits_t;

typedef void (*http_handler_fn)(http_request_t *req, void *arg);

/* Fills l with the defaults used when http_server_new gets NULL limits
 * (8 KiB head, 1 MiB body, 10000 connections, 30 s request, 60 s idle). */
void http_limits_default(http_limits_t *l);

/* Binds listen_addr ("127.0.0.1:8080", "[::1]:8080", ":8080" = all IPv4 addresses; port 0 picks one)
 * and starts accepting on base. limits may be NULL (defaults); it is copied.
 * Returns NULL and fills err on failure (bad address, port in use). */
http_server_t *http_server_new(struct event_base *base, const char *listen_addr, const http_limits_t *limits,
			       http_handler_fn handler, void *arg, char *err, size_t errlen);

/* Replaces the limits (config reload); they apply from the next request on. */
void http_server_set_limits(http_server_t *srv, const http_limits_t *limits);

/* Called for every response given to a handled request (status, seconds since the
 * handler got it), e.g. to count requests by route and status. */
typedef void (*http_observer_fn)(const http_request_t *req, int status, double seconds, void *arg);
void http_server_set_observer(http_server_t *srv, http_observer_fn fn, void *arg);

/* Closes the listener. Connections with a request in progress or pending finish it and then close
 * (their responses say Connection: close); idle keep-alive connections are closed now. */
void http_server_stop_accepting(http_server_t *srv);

/* Open client connections (those being closed count until they are gone; 503-rejected ones do not). */
int http_server_connection_count(const http_server_t *srv);

/* The bound port (useful when the listen port was 0). */
int http_server_port(const http_server_t *srv);

/* Closes the listener and every connection. Pending requests are freed without calling
 * anything: after this no http_request_t of this server may be used. */
void http_server_free(http_server_t *srv);

/* Request accessors. The strings live as long as the request (until http_respond*). */
const char *http_request_method(const http_request_t *req);
const char *http_request_path(const http_request_t *req);  /* without the query string, not decoded */
const char *http_request_query(const http_request_t *req); /* raw query string after '?', "" if none */
/* Copies the first parameter called name, percent- and '+'-decoded, into buf.
 * False if absent, if it does not fit (with its NUL) or if it decodes to a NUL byte. */
bool http_request_query_param(const http_request_t *req, const char *name, char *buf, size_t buflen)
	__attribute__((warn_unused_result));
const char *http_request_header(const http_request_t *req, const char *name); /* case-insensitive; first one; NULL if absent */
const char *http_request_body(const http_request_t *req, size_t *len);       /* always NUL-terminated (body[len] == 0) */
const char *http_request_peer(const http_request_t *req);                    /* "127.0.0.1:5555", "[::1]:5555" */
int http_request_version_minor(const http_request_t *req);                   /* 0 for HTTP/1.0, 1 for HTTP/1.1 */
/* False once the client went away while the request was pending (the response will be dropped). */
bool http_request_connection_alive(const http_request_t *req);

/* Adds a response header (before http_respond). Name and value must not contain CR or LF;
 * Content-Length and Connection are the server's own and must not be added. */
void http_response_add_header(http_request_t *req, const char *name, const char *value);

/* Sends the response and releases the request. Must be called exactly once per request handed to
 * the handler, possibly later from another event callback (deferred). If the client disconnected
 * meanwhile it just frees. content_type may be NULL (no Content-Type header). For HEAD requests
 * and 1xx/204/304 statuses no body is sent. body is copied. */
void http_respond(http_request_t *req, int status, const char *content_type, const char *body, size_t len);
/* Answers with len bytes of the file fd from offset (sent by the kernel, not copied; fd is
 * taken and closed once sent, also when the answer cannot be sent). */
void http_respond_file(http_request_t *req, int status, const char *content_type, int fd, long long offset, size_t len);
void http_respond_json(http_request_t *req, int status, const char *json); /* application/json */
void http_respond_error(http_request_t *req, int status, const char *message); /* {"error":"<message JSON-escaped>"} */

/* For protocol upgrades (WebSocket): detaches and returns the connection's bufferevent (bytes
 * already read past the request stay in its input buffer; callbacks, timeouts and watermarks
 * cleared; it closes its socket when freed), and frees the request. The caller owns the
 * bufferevent. Returns NULL (and frees the request) if the client already went away. */
struct bufferevent *http_request_take_connection(http_request_t *req);

/* Reason phrase for a status code ("OK", "Not Found"...); "Unknown" for codes it does not know. */
const char *http_status_text(int status);

/* ---- Parser entry points, pure functions (used by the server, exposed for unit tests) ---- */

typedef struct {
	const char *name;
	const char *value;
} http_header_t;

/* A parsed request head; every pointer points into the buffer given to http_parse_request_head. */
typedef struct {
	const char *method;
	const char *path;  /* request target up to '?', or "*" */
	const char *query; /* after '?', "" if none */
	int minor;         /* HTTP/1.<minor> */
	http_header_t *headers; /* caller's array */
	int nheaders;
	const char *error; /* why parsing failed (static string) */
} http_head_t;

/* Finds the end of a request head (the byte after the blank line, CRLF or bare LF line ends) in
 * buf[0..len). Scanning resumes at *scan (start it at 0, keep it between calls while the same head
 * grows) so bytes trickling in are not rescanned. Returns the head length, or 0 if not complete. */
size_t http_find_head_end(const char *buf, size_t len, size_t *scan);

/* Parses a complete head (as delimited by http_find_head_end) in place: NULs are written into buf.
 * headers has room for max_headers entries. Returns 0 on success, else the HTTP status to answer
 * (400 malformed, 431 too many headers, 505 unsupported version) with out->error set. */
int http_parse_request_head(char *buf, size_t len, http_head_t *out, http_header_t *headers, int max_headers);

/* Incremental chunked-body decoder: feed it input as it arrives, in pieces of any size. */
typedef struct {
	int state;            /* internal */
	uint64_t remaining;   /* payload bytes left in the current chunk */
	size_t line_bytes;    /* bytes of the current size/trailer line, bounded */
	size_t trailer_bytes; /* bytes of trailers seen, bounded */
	int digits;           /* hex digits of the current chunk size */
	const char *error;    /* why decoding failed (static string) */
} http_chunked_t;

void http_chunked_init(http_chunked_t *d);

/* Decodes from in[0..len): payload bytes are written to out (at most out_cap, *out_len set),
 * *consumed tells how much input was used. Returns 1 when the last chunk and trailers are complete
 * (input after *consumed belongs to the next request), 0 when more input is needed or out is full
 * (*consumed < len only in that case), -1 on malformed input (d->error set). */
int http_chunked_decode(http_chunked_t *d, const char *in, size_t len, size_t *consumed, char *out, size_t out_cap,
			size_t *out_len);

/* Percent- and '+'-decodes src[0..len) into buf (NUL-terminated). False if it does not fit or
 * decodes to a NUL byte. Invalid %-escapes are kept literally. */
bool http_url_decode(const char *src, size_t len, char *buf, size_t buflen);

/* Whether a comma-separated header value holds token, case-insensitively: "keep-alive, Upgrade"
 * holds "upgrade". value is vlen bytes, not necessarily NUL-terminated, so a slice of a head being
 * parsed will do (the WebSocket handshake checks its Connection and Upgrade headers this way). */
bool http_header_has_token(const char *value, size_t vlen, const char *token);

#endif
