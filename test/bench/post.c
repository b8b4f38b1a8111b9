/*
 * post: webhooks to the ingress for the open-loop run. Each customer k always writes to the same
 * instance, as on a real phone line, and message ids carry the run's prefix so the hints and events
 * of this run are told apart from any other's.
 */
#include "post.h"
#include "messy.h"

#include "dial.h"
#include "loop.h"
#include "proc.h"
#include "xalloc.h"

#include <cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>

#define POST_JID_BASE 5511900000000LL /* customer k is 5511900000000 + k */
#define POST_MAX_TEXTS 20000          /* corpus lines kept */
#define POST_REQUEST_TIMEOUT_S 30     /* an unanswered webhook counts as "timeout" after this */
#define POST_RECONNECT_MS 100
#define POST_FALLBACK_TEXT "Oi, minha internet caiu desde ontem e preciso trabalhar hoje"

/* One keep-alive connection to the ingress; at most one request in flight. */
typedef struct {
	struct bufferevent *bev; /* NULL while waiting to reconnect */
	bool connected;          /* TCP up: may carry a request */
	bool busy;               /* a request is in flight */
	bool idle_listed;        /* present in P.idle */
	bool close_after;        /* the response in progress said Connection: close */
	uint64_t msg;            /* index of the message in flight */
	int status;              /* of the response in progress */
	size_t head_len;         /* of the response in progress; 0 until its head is complete */
	size_t body_len;         /* its Content-Length */
} post_conn_t;

static struct {
	const cfg_t *cfg;
	const char *prefix;
	const post_callbacks_t *cb;
	struct sockaddr_storage sa;
	int salen;
	uint64_t rng;
	/* Channels and texts. texts[d] holds JSON string literals of domain d, texts[CFG_MAX_DOMAINS] all
	 * (with messy, the texts themselves: each is written anew at each send). */
	const cfg_channel_t **chans;
	int n_chans;
	char **texts[CFG_MAX_DOMAINS + 1];
	int n_texts[CFG_MAX_DOMAINS + 1];
	time_t wall_now;
	char date_time[32];
	post_conn_t *conns;
	int n_conns;
	post_conn_t **idle; /* stack of connected, not busy connections */
	int n_idle, n_up;
	bool started, stopped, messy;
	int customers; /* distinct customers (conversations) */
} P;

static void post_load_corpus(void);
static uint64_t post_rand(void);
static void post_connect(post_conn_t *h);
static void post_drop(post_conn_t *h);
static void post_answer(post_conn_t *h, int status);
static void post_idle(post_conn_t *h);
static void post_reconnect_cb(evutil_socket_t fd, short what, void *arg);
static void post_read_cb(struct bufferevent *bev, void *arg);
static void post_event_cb(struct bufferevent *bev, short what, void *arg);

bool post_init(const cfg_t *cfg, long company, const struct sockaddr_storage *sa, int salen, const char *prefix,
	       int connections, bool messy, int customers, const post_callbacks_t *cb, char *err, size_t errlen)
{
	memset(&P, 0, sizeof(P));
	P.messy = messy;
	P.customers = customers;
	P.cfg = cfg;
	P.prefix = prefix;
	P.cb = cb;
	P.sa = *sa;
	P.salen = salen;
	P.chans = xcalloc((size_t)cfg->n_channels + 1, sizeof(*P.chans));
	for (int i = 0; i < cfg->n_channels; i++) {
		const cfg_channel_t *c = &cfg->channels[i];
		/* Names and keys go into JSON and a header unescaped: skip any that would need escaping. */
		if (c->type == CHAN_EVOLUTION && c->company == company && c->name && c->key &&
		    !strpbrk(c->name, "\"\\\r\n") && !strpbrk(c->key, "\"\\\r\n") &&
		    strlen(c->name) + strlen(c->key) + (c->url ? strlen(c->url) : 0) < 1024)
			P.chans[P.n_chans++] = c;
	}
	if (P.n_chans == 0) {
		snprintf(err, errlen, "%s has no Evolution channel of company %ld to post to", cfg->path ? cfg->path : "the config",
			 company);
		return false;
	}
	post_load_corpus();
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	P.rng = ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 40) ^ 0x9E3779B97F4A7C15ULL;
	P.n_conns = connections;
	P.conns = xcalloc((size_t)connections, sizeof(*P.conns));
	P.idle = xcalloc((size_t)connections, sizeof(*P.idle));
	return true;
}

void post_connect_all(void)
{
	for (int i = 0; i < P.n_conns; i++)
		post_connect(&P.conns[i]);
}

void post_started(void)
{
	P.started = true;
}

bool post_send(uint64_t i)
{
	if (P.n_idle == 0)
		return false;
	post_conn_t *h = P.idle[--P.n_idle];
	h->idle_listed = false;
	time_t wall = time(NULL);
	if (wall != P.wall_now) {
		struct tm tm;
		P.wall_now = wall;
		gmtime_r(&wall, &tm);
		strftime(P.date_time, sizeof(P.date_time), "%Y-%m-%dT%H:%M:%S.000Z", &tm);
	}
	char body[4096], head[2048];
	uint64_t r = post_rand();
	unsigned k = (unsigned)(r % (uint64_t)P.customers);
	const cfg_channel_t *ch = P.chans[k % (unsigned)P.n_chans];
	int pool = ch->domain >= 0 && ch->domain < CFG_MAX_DOMAINS && P.n_texts[ch->domain] ? ch->domain : CFG_MAX_DOMAINS;
	const char *text = P.texts[pool][(r >> 24) % (uint64_t)P.n_texts[pool]];
	char messy[1100];
	if (P.messy) {
		messy_json(text, post_rand(), messy, sizeof(messy));
		text = messy;
	}
	int blen = snprintf(body, sizeof(body),
			    "{\"event\":\"messages.upsert\",\"instance\":\"%s\",\"data\":{\"key\":{\"remoteJid\":\"%lld@s.whatsapp.net\","
			    "\"fromMe\":false,\"id\":\"%s%llu\"},\"pushName\":\"Cliente %u\",\"status\":\"DELIVERY_ACK\","
			    "\"message\":{\"conversation\":%s},\"messageType\":\"conversation\",\"messageTimestamp\":%lld,"
			    "\"source\":\"android\"},\"destination\":\"http://%s/webhooks/evolution\",\"date_time\":\"%s\","
			    "\"sender\":\"5511988887777@s.whatsapp.net\",\"server_url\":\"%s\",\"apikey\":\"%s\"}",
			    ch->name, POST_JID_BASE + (long long)k, P.prefix, (unsigned long long)i, k, text,
			    (long long)P.wall_now, P.cfg->ingress.listen, P.date_time,
			    ch->url && !strpbrk(ch->url, "\"\\") ? ch->url : "", ch->key);
	int hlen = snprintf(head, sizeof(head),
			    "POST /webhooks/evolution HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
			    "apikey: %s\r\nContent-Length: %d\r\n\r\n",
			    P.cfg->ingress.listen, ch->key, blen);
	struct evbuffer *out = bufferevent_get_output(h->bev);
	evbuffer_add(out, head, (size_t)hlen);
	evbuffer_add(out, body, (size_t)blen);
	h->busy = true;
	h->msg = i;
	h->head_len = 0;
	return true;
}

int post_up(void)
{
	return P.n_up;
}

void post_free(void)
{
	P.stopped = true;
	for (int i = 0; P.conns && i < P.n_conns; i++)
		if (P.conns[i].bev)
			bufferevent_free(P.conns[i].bev);
	for (int i = 0; i < P.n_texts[CFG_MAX_DOMAINS]; i++)
		free(P.texts[CFG_MAX_DOMAINS][i]);
	for (int d = 0; d <= CFG_MAX_DOMAINS; d++)
		free(P.texts[d]);
	free(P.chans);
	free(P.conns);
	free(P.idle);
	P.conns = NULL;
	P.idle = NULL;
	P.chans = NULL;
	memset(P.texts, 0, sizeof(P.texts));
	memset(P.n_texts, 0, sizeof(P.n_texts));
}

/* Loads test/fixtures/corpus.jsonl texts as ready-to-paste JSON string literals, by domain. A fixed
 * text if it is missing. */
static void post_load_corpus(void)
{
	char path[1024], *line = NULL;
	size_t cap = 0;
	int n = 0;
	FILE *f = fopen(proc_find_path("test/fixtures/corpus.jsonl", path, sizeof(path)), "r");
	for (int d = 0; d <= CFG_MAX_DOMAINS; d++)
		P.texts[d] = xcalloc(POST_MAX_TEXTS, sizeof(char *));
	while (f && n < POST_MAX_TEXTS && getline(&line, &cap, f) > 0) {
		cJSON *o = cJSON_Parse(line);
		const cJSON *t = cJSON_GetObjectItem(o, "text"), *d = cJSON_GetObjectItem(o, "domain");
		char *lit = !cJSON_IsString(t) || !t->valuestring[0] ? NULL
			    : P.messy			     ? xstrdup(t->valuestring)
							     : cJSON_PrintUnformatted(t);
		if (lit && strlen(lit) < 1024) {
			int dom = cJSON_IsString(d) ? cfg_domain_index(d->valuestring) : -1;
			P.texts[CFG_MAX_DOMAINS][P.n_texts[CFG_MAX_DOMAINS]++] = lit;
			if (dom >= 0)
				P.texts[dom][P.n_texts[dom]++] = lit;
			n++;
		} else {
			free(lit);
		}
		cJSON_Delete(o);
	}
	free(line);
	if (f)
		fclose(f);
	if (n == 0) {
		fprintf(stderr, "bench: no corpus at %s, every message says the same thing\n", path);
		P.texts[CFG_MAX_DOMAINS][P.n_texts[CFG_MAX_DOMAINS]++] = xstrdup(P.messy ? POST_FALLBACK_TEXT : "\"" POST_FALLBACK_TEXT "\"");
	}
}

static uint64_t post_rand(void)
{
	P.rng ^= P.rng << 13;
	P.rng ^= P.rng >> 7;
	P.rng ^= P.rng << 17;
	return P.rng;
}

static void post_connect(post_conn_t *h)
{
	struct timeval tv = {POST_REQUEST_TIMEOUT_S, 0};
	h->bev = bufferevent_socket_new(loop_base(), -1, BEV_OPT_CLOSE_ON_FREE);
	if (!h->bev) {
		loop_failf("cannot create a socket: %s", strerror(errno));
		return;
	}
	bufferevent_setcb(h->bev, post_read_cb, NULL, post_event_cb, h);
	bufferevent_set_timeouts(h->bev, &tv, NULL);
	bufferevent_enable(h->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(h->bev, (struct sockaddr *)&P.sa, P.salen) < 0) {
		bufferevent_free(h->bev);
		h->bev = NULL;
		if (!P.started)
			loop_failf("cannot connect to the ingress at %s: %s", P.cfg->ingress.listen, strerror(errno));
		else
			event_base_once(loop_base(), -1, EV_TIMEOUT, post_reconnect_cb, h,
					&(struct timeval){0, POST_RECONNECT_MS * 1000});
	}
}

/* Closes a connection (failing its request, if any) and, while the run goes on, dials again
 * shortly. */
static void post_drop(post_conn_t *h)
{
	if (h->busy)
		post_answer(h, 0);
	if (h->idle_listed) {
		for (int k = 0; k < P.n_idle; k++)
			if (P.idle[k] == h) {
				P.idle[k] = P.idle[--P.n_idle];
				break;
			}
		h->idle_listed = false;
	}
	if (h->connected)
		P.n_up--;
	h->connected = false;
	bufferevent_free(h->bev);
	h->bev = NULL;
	if (P.started && !P.stopped)
		event_base_once(loop_base(), -1, EV_TIMEOUT, post_reconnect_cb, h,
				&(struct timeval){0, POST_RECONNECT_MS * 1000});
}

/* The request in flight on h is over: the connection is free again before the owner hears. */
static void post_answer(post_conn_t *h, int status)
{
	h->busy = false;
	P.cb->answer(h->msg, status);
}

static void post_reconnect_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	post_conn_t *h = arg;
	if (!P.stopped && !h->bev)
		post_connect(h);
}

/* Makes h available for the next due message. */
static void post_idle(post_conn_t *h)
{
	if (!h->idle_listed) {
		P.idle[P.n_idle++] = h;
		h->idle_listed = true;
	}
	P.cb->idle();
}

static void post_read_cb(struct bufferevent *bev, void *arg)
{
	post_conn_t *h = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len = evbuffer_get_length(in);
	if (!h->busy) { /* nothing asked: not ours to interpret */
		evbuffer_drain(in, len);
		return;
	}
	if (!h->head_len) {
		struct evbuffer_ptr p = evbuffer_search(in, "\r\n\r\n", 4, NULL);
		char head[DIAL_HEAD_MAX];
		if (p.pos < 0) {
			if (len > DIAL_HEAD_MAX)
				post_drop(h);
			return;
		}
		size_t hl = (size_t)p.pos + 4, n = hl < sizeof(head) - 1 ? hl : sizeof(head) - 1;
		evbuffer_copyout(in, head, n);
		head[n] = 0;
		h->status = strncmp(head, "HTTP/1.", 7) == 0 ? atoi(head + 9) : 0;
		h->body_len = 0;
		h->close_after = strncmp(head, "HTTP/1.0", 8) == 0;
		for (char *l = strstr(head, "\r\n"); l && l[2]; l = strstr(l + 2, "\r\n")) {
			const char *v = l + 2;
			if (strncasecmp(v, "Content-Length:", 15) == 0)
				h->body_len = strtoul(v + 15, NULL, 10);
			else if (strncasecmp(v, "Connection:", 11) == 0)
				h->close_after = strncasecmp(v + 11 + strspn(v + 11, " \t"), "close", 5) == 0;
		}
		if (h->status <= 0) { /* not HTTP: the connection is unusable */
			post_drop(h);
			return;
		}
		h->head_len = hl;
	}
	if (len < h->head_len + h->body_len)
		return;
	evbuffer_drain(in, h->head_len + h->body_len);
	h->head_len = 0;
	post_answer(h, h->status);
	if (h->close_after)
		post_drop(h);
	else
		post_idle(h);
}

static void post_event_cb(struct bufferevent *bev, short what, void *arg)
{
	post_conn_t *h = arg;
	if (what & BEV_EVENT_CONNECTED) {
		int one = 1;
		setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		h->connected = true;
		P.n_up++;
		post_idle(h);
		P.cb->up();
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (!h->busy) { /* an idle keep-alive connection, nothing is late */
			bufferevent_enable(bev, EV_READ);
			return;
		}
		post_answer(h, -1);
		post_drop(h); /* a late answer would be taken for the next request's */
		return;
	}
	if (!P.started) {
		loop_failf("cannot connect to the ingress at %s: %s", P.cfg->ingress.listen,
			   evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		return;
	}
	post_drop(h);
}
