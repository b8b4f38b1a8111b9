/*
 * hc: a small non-blocking HTTP client. libcurl multi runs inside the caller's libevent
 * loop ("socket action" style); each call is one request with its own timeout and its
 * answer comes back through a callback from the loop. No retries here: when and how to
 * retry is the caller's policy (it knows what is safe to repeat).
 */
#ifndef ATENDE_HC_H
#define ATENDE_HC_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct hc hc_t;
typedef struct hc_call hc_call_t;

/* The outcome of one call; valid only during the callback. */
typedef struct {
	long status;        /* HTTP status; 0 when no complete answer came (see error) */
	bool timed_out;     /* the timeout ran out first */
	const char *error;  /* "" when an answer came; otherwise what went wrong */
	const char *body;   /* the answer's body, NUL-terminated ("" when none) */
	size_t len;
	double seconds;     /* how long the call took */
	long retry_after_s; /* the answer's Retry-After in seconds (delta-seconds, or an HTTP date
			       counted from now, 0 when past); -1 when absent */
	bool too_big;       /* the answer ran over max_response (error says so; status stays 0) */
	long status_line;   /* the status code that came even when the call then failed (too_big,
			       timeout, reset); 0 when none did */
} hc_result_t;

typedef void (*hc_done_fn)(const hc_result_t *res, void *arg);

/* A client on base. user_agent is copied. NULL + err on failure. */
hc_t *hc_new(struct event_base *base, const char *user_agent, char *err, size_t errlen);

/* Starts a POST of body (copied) to url with headers ("Name: value" strings, copied; n
 * of them). The answer is read up to max_response bytes (0 = 1 MiB; more fails the call). cb is
 * called exactly once, always from the loop (never from inside hc_post), unless the call
 * is cancelled. Returns NULL and fills err when the call cannot start (cb is not called). */
hc_call_t *hc_post(hc_t *hc, const char *url, const char *const *headers, int n, const char *body, size_t len,
		   long timeout_ms, size_t max_response, hc_done_fn cb, void *arg, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Starts a GET of url, otherwise as hc_post. */
hc_call_t *hc_get(hc_t *hc, const char *url, const char *const *headers, int n, long timeout_ms, size_t max_response,
		  hc_done_fn cb, void *arg, char *err, size_t errlen) __attribute__((warn_unused_result));

/* A piece of a call's answer body as it arrives: status and content_type ("" when absent)
 * are the answer's so far. */
typedef void (*hc_data_fn)(const char *data, size_t len, long status, const char *content_type, void *arg);

/* Makes call hand every piece of its answer's body to fn as it arrives (a streamed answer:
 * server-sent events), besides collecting it for the done callback as usual. fn runs inside
 * curl's handling of the socket, on the loop: it must not start, cancel or free calls. */
void hc_on_data(hc_call_t *call, hc_data_fn fn, void *arg);

/* Abandons a call that has not called back yet: its callback will not be called. */
void hc_cancel(hc_t *hc, hc_call_t *call);

/* Calls started and not finished. */
int hc_in_flight(const hc_t *hc);

/* Percent-encodes s for one path segment of a URL (everything but RFC 3986's unreserved
 * characters) into out (len bytes, NUL-terminated; stops before an escape that would not fit). */
void hc_path_escape(const char *s, char *out, size_t len);

/* Cancels every call (no callbacks) and frees the client. */
void hc_free(hc_t *hc);

#endif
