/*
 * hc: libcurl multi on a libevent loop (see hc.h). curl says which sockets to watch and
 * when to wake it; finished transfers are collected first and called back afterwards, so
 * a callback may start or cancel calls freely.
 */
#include "hc.h"
#include "xalloc.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

struct hc_call {
	hc_t *hc;
	hc_call_t *prev, *next;   /* hc->calls */
	hc_call_t *done_next;     /* finished, waiting for its callback */
	CURL *easy;
	struct curl_slist *headers;
	char *body;
	char *resp;
	size_t resp_len, resp_cap, max_response;
	bool overflow;
	long retry_after;         /* seconds; -1 when the answer has no Retry-After */
	bool finished;            /* curl is done with it; the callback is pending */
	bool cancelled;
	CURLcode rc;
	double started;
	hc_done_fn cb;
	void *arg;
	hc_data_fn on_data;       /* hc_on_data: pieces of the body as they come */
	void *data_arg;
};

/* A socket curl asked us to watch. */
typedef struct hc_sock {
	struct hc_sock *prev, *next;
	curl_socket_t fd;
	struct event *ev;
} hc_sock_t;

struct hc {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;      /* curl's own timeouts */
	hc_call_t *calls;
	hc_sock_t *socks;
	char *user_agent;
	int in_flight;
};

static int hc_sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp);
static int hc_timer_cb(CURLM *m, long timeout_ms, void *userp);
static void hc_event_cb(evutil_socket_t fd, short what, void *arg);
static void hc_timeout_cb(evutil_socket_t fd, short what, void *arg);
static void hc_check(hc_t *hc);
static void hc_detach(hc_t *hc, hc_call_t *c);
static void hc_call_free(hc_call_t *c);
static size_t hc_write_cb(char *ptr, size_t size, size_t nmemb, void *userdata);
static size_t hc_header_cb(char *ptr, size_t size, size_t nitems, void *userdata);
static long hc_parse_retry_after(const char *v, size_t n);
static double hc_now(void);
static hc_call_t *hc_start(hc_t *hc, const char *url, const char *const *headers, int n, const char *body, size_t len,
			   long timeout_ms, size_t max_response, hc_done_fn cb, void *arg, char *err, size_t errlen);

hc_t *hc_new(struct event_base *base, const char *user_agent, char *err, size_t errlen)
{
	static bool curl_ready;
	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			snprintf(err, errlen, "curl_global_init failed");
			return NULL;
		}
		curl_ready = true;
	}
	hc_t *hc = xcalloc(1, sizeof(*hc));
	hc->base = base;
	hc->multi = curl_multi_init();
	hc->timer = evtimer_new(base, hc_timeout_cb, hc);
	hc->user_agent = xstrdup(user_agent ? user_agent : "atende");
	if (!hc->multi || !hc->timer) {
		snprintf(err, errlen, "cannot create the curl multi handle or its timer");
		hc_free(hc);
		return NULL;
	}
	curl_multi_setopt(hc->multi, CURLMOPT_SOCKETFUNCTION, hc_sock_cb);
	curl_multi_setopt(hc->multi, CURLMOPT_SOCKETDATA, hc);
	curl_multi_setopt(hc->multi, CURLMOPT_TIMERFUNCTION, hc_timer_cb);
	curl_multi_setopt(hc->multi, CURLMOPT_TIMERDATA, hc);
	return hc;
}

hc_call_t *hc_post(hc_t *hc, const char *url, const char *const *headers, int n, const char *body, size_t len,
		   long timeout_ms, size_t max_response, hc_done_fn cb, void *arg, char *err, size_t errlen)
{
	return hc_start(hc, url, headers, n, body ? body : "", len, timeout_ms, max_response, cb, arg, err, errlen);
}

hc_call_t *hc_get(hc_t *hc, const char *url, const char *const *headers, int n, long timeout_ms, size_t max_response,
		  hc_done_fn cb, void *arg, char *err, size_t errlen)
{
	return hc_start(hc, url, headers, n, NULL, 0, timeout_ms, max_response, cb, arg, err, errlen);
}

/* A POST of body, or a GET when body is NULL. */
static hc_call_t *hc_start(hc_t *hc, const char *url, const char *const *headers, int n, const char *body, size_t len,
			   long timeout_ms, size_t max_response, hc_done_fn cb, void *arg, char *err, size_t errlen)
{
	hc_call_t *c = xcalloc(1, sizeof(*c));
	c->hc = hc;
	c->cb = cb;
	c->arg = arg;
	c->max_response = max_response ? max_response : 1 << 20;
	c->retry_after = -1;
	c->body = xmalloc(len + 1);
	c->easy = curl_easy_init();
	struct curl_slist *h = curl_slist_append(NULL, "Expect:"); /* no 100-continue round trip */
	for (int i = 0; h && i < n; i++) {
		struct curl_slist *more = curl_slist_append(h, headers[i]);
		if (!more)
			curl_slist_free_all(h);
		h = more;
	}
	c->headers = h;
	if (!c->body || !c->easy || !c->headers) {
		snprintf(err, errlen, "out of memory");
		hc_call_free(c);
		return NULL;
	}
	if (len)
		memcpy(c->body, body, len);
	c->body[len] = 0;
	CURL *e = c->easy;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
	if (body) {
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	}
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, hc_write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, hc_header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(e, CURLOPT_PRIVATE, c);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	/* Debian's libcurl resolves names on a short-lived thread: keep answers long */
	curl_easy_setopt(e, CURLOPT_DNS_CACHE_TIMEOUT, 600L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, hc->user_agent);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	if (curl_multi_add_handle(hc->multi, e) != CURLM_OK) {
		snprintf(err, errlen, "curl refused the transfer");
		hc_call_free(c);
		return NULL;
	}
	c->started = hc_now();
	c->next = hc->calls;
	if (hc->calls)
		hc->calls->prev = c;
	hc->calls = c;
	hc->in_flight++;
	return c;
}

void hc_cancel(hc_t *hc, hc_call_t *c)
{
	if (!c || c->cancelled)
		return;
	c->cancelled = true;
	if (c->finished)
		return; /* hc_check holds it and frees it without calling back */
	hc_detach(hc, c);
	hc_call_free(c);
}

void hc_on_data(hc_call_t *call, hc_data_fn fn, void *arg)
{
	call->on_data = fn;
	call->data_arg = arg;
}

int hc_in_flight(const hc_t *hc)
{
	return hc->in_flight;
}

void hc_free(hc_t *hc)
{
	if (!hc)
		return;
	while (hc->calls)
		hc_cancel(hc, hc->calls);
	if (hc->multi)
		curl_multi_cleanup(hc->multi);
	while (hc->socks) {
		hc_sock_t *s = hc->socks;
		hc->socks = s->next;
		event_free(s->ev);
		free(s);
	}
	if (hc->timer)
		event_free(hc->timer);
	free(hc->user_agent);
	free(hc);
}

/* Takes a call out of hc->calls and out of curl (it is no longer in flight). */
static void hc_detach(hc_t *hc, hc_call_t *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		hc->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	hc->in_flight--;
	curl_multi_remove_handle(hc->multi, c->easy);
}

static void hc_call_free(hc_call_t *c)
{
	if (c->easy)
		curl_easy_cleanup(c->easy);
	curl_slist_free_all(c->headers);
	free(c->body);
	free(c->resp);
	free(c);
}

/* Collects every finished transfer, then calls each back (a callback may start or cancel calls). */
static void hc_check(hc_t *hc)
{
	CURLMsg *msg;
	int left;
	hc_call_t *done = NULL, **tail = &done;
	while ((msg = curl_multi_info_read(hc->multi, &left))) {
		hc_call_t *c = NULL;
		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
		if (!c || c->finished)
			continue;
		c->rc = msg->data.result;
		c->finished = true;
		*tail = c;
		tail = &c->done_next;
	}
	for (hc_call_t *c = done; c; c = c->done_next)
		hc_detach(hc, c);
	while (done) {
		hc_call_t *c = done;
		done = c->done_next;
		if (!c->cancelled) {
			char error[CURL_ERROR_SIZE + 64] = "";
			hc_result_t r = {.body = c->resp ? c->resp : "",
					 .len = c->resp_len,
					 .seconds = hc_now() - c->started,
					 .retry_after_s = c->retry_after,
					 .too_big = c->overflow};
			curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &r.status_line);
			if (c->overflow) {
				snprintf(error, sizeof(error), "answer over %zu bytes", c->max_response);
			} else if (c->rc != CURLE_OK) {
				r.timed_out = c->rc == CURLE_OPERATION_TIMEDOUT;
				snprintf(error, sizeof(error), "%s", r.timed_out ? "timeout" : curl_easy_strerror(c->rc));
			} else {
				r.status = r.status_line;
			}
			r.error = error;
			c->cb(&r, c->arg);
		}
		hc_call_free(c);
	}
}

/* curl says which socket to watch for what (or to stop watching it). */
static int hc_sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	(void)e;
	hc_t *hc = userp;
	hc_sock_t *sk = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (sk) {
			if (sk->prev)
				sk->prev->next = sk->next;
			else
				hc->socks = sk->next;
			if (sk->next)
				sk->next->prev = sk->prev;
			event_free(sk->ev);
			free(sk);
			curl_multi_assign(hc->multi, s, NULL);
		}
		return 0;
	}
	short kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
	if (!sk) {
		sk = xcalloc(1, sizeof(*sk));
		sk->fd = s;
		sk->ev = event_new(hc->base, s, kind, hc_event_cb, hc);
		if (!sk->ev) {
			free(sk);
			return -1;
		}
		sk->next = hc->socks;
		if (hc->socks)
			hc->socks->prev = sk;
		hc->socks = sk;
		curl_multi_assign(hc->multi, s, sk);
	} else {
		event_del(sk->ev);
		event_assign(sk->ev, hc->base, s, kind, hc_event_cb, hc);
	}
	event_add(sk->ev, NULL);
	return 0;
}

/* curl wants to be woken after timeout_ms (-1: never). Never call curl from here. */
static int hc_timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	(void)m;
	hc_t *hc = userp;
	if (timeout_ms < 0) {
		evtimer_del(hc->timer);
		return 0;
	}
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	evtimer_add(hc->timer, &tv);
	return 0;
}

static void hc_event_cb(evutil_socket_t fd, short what, void *arg)
{
	hc_t *hc = arg;
	int running, action = ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
	curl_multi_socket_action(hc->multi, fd, action, &running);
	hc_check(hc);
}

static void hc_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	hc_t *hc = arg;
	int running;
	curl_multi_socket_action(hc->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	hc_check(hc);
}

static size_t hc_write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	hc_call_t *c = userdata;
	size_t n = size * nmemb;
	if (c->resp_len + n + 1 > c->max_response) {
		c->overflow = true;
		return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
	}
	if (c->resp_len + n + 1 > c->resp_cap) {
		size_t cap = c->resp_cap ? c->resp_cap : 1024;
		while (cap < c->resp_len + n + 1)
			cap *= 2;
		c->resp = xrealloc(c->resp, cap);
		c->resp_cap = cap;
	}
	memcpy(c->resp + c->resp_len, ptr, n);
	c->resp_len += n;
	c->resp[c->resp_len] = 0;
	if (c->on_data && !c->cancelled) {
		long status = 0;
		char *ctype = NULL;
		curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_getinfo(c->easy, CURLINFO_CONTENT_TYPE, &ctype);
		c->on_data(ptr, n, status, ctype ? ctype : "", c->data_arg);
	}
	return n;
}

/* Each header line of the answer; a status line starts a new answer (1xx), so it resets. */
static size_t hc_header_cb(char *ptr, size_t size, size_t nitems, void *userdata)
{
	hc_call_t *c = userdata;
	size_t n = size * nitems;
	static const char name[] = "Retry-After:";
	if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0)
		c->retry_after = -1;
	else if (n >= sizeof(name) - 1 && strncasecmp(ptr, name, sizeof(name) - 1) == 0)
		c->retry_after = hc_parse_retry_after(ptr + sizeof(name) - 1, n - (sizeof(name) - 1));
	return n;
}

/* Retry-After = delay-seconds / HTTP-date (RFC 9110 10.2.3); -1 when neither. */
static long hc_parse_retry_after(const char *v, size_t n)
{
	char buf[64];
	while (n && (*v == ' ' || *v == '\t'))
		v++, n--;
	while (n && isspace((unsigned char)v[n - 1]))
		n--;
	if (!n || n >= sizeof(buf))
		return -1;
	memcpy(buf, v, n);
	buf[n] = 0;
	if (isdigit((unsigned char)buf[0])) {
		long s = 0;
		for (size_t i = 0; i < n; i++) {
			if (!isdigit((unsigned char)buf[i]))
				return -1;
			if (s < 100000000) /* stops growing past ~3 years: no overflow */
				s = s * 10 + (buf[i] - '0');
		}
		return s;
	}
	time_t at = curl_getdate(buf, NULL);
	if (at == -1)
		return -1;
	time_t now = time(NULL);
	return at > now ? (long)(at - now) : 0;
}

static double hc_now(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

void hc_path_escape(const char *s, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p && o + 4 < len; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("-._~", *p)) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = 0;
}
