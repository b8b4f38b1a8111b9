/*
 * dial: WebSocket connections to the notifier for the bench, each with its own agent token. The
 * TCP socket gets TCP_NODELAY, since the bench measures latency, not throughput per packet.
 */
#include "dial.h"

#include "loop.h"
#include "token.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/util.h>

static struct {
	const cfg_t *cfg;
	long company;
	struct sockaddr_storage notifier_sa;
	int notifier_len;
} D;

static bool dial_request(struct bufferevent *bev, long agent, const char *role, char key[25]);

bool dial_addr(const char *listen, struct sockaddr_storage *ss, int *len)
{
	char buf[300];
	snprintf(buf, sizeof(buf), "%s%s", listen[0] == ':' ? "127.0.0.1" : "", listen);
	*len = (int)sizeof(*ss);
	memset(ss, 0, sizeof(*ss));
	return evutil_parse_sockaddr_port(buf, (struct sockaddr *)ss, len) == 0;
}

bool dial_init(const cfg_t *cfg, long company)
{
	D.cfg = cfg;
	D.company = company;
	return dial_addr(cfg->notifier.listen, &D.notifier_sa, &D.notifier_len);
}

const char *dial_ws(struct bufferevent **bev, bufferevent_data_cb rd, bufferevent_event_cb ev, void *arg)
{
	*bev = bufferevent_socket_new(loop_base(), -1, BEV_OPT_CLOSE_ON_FREE);
	if (!*bev)
		return strerror(errno);
	bufferevent_setcb(*bev, rd, NULL, ev, arg);
	bufferevent_enable(*bev, EV_READ | EV_WRITE);
	return bufferevent_socket_connect(*bev, (struct sockaddr *)&D.notifier_sa, D.notifier_len) < 0 ? strerror(errno)
													: NULL;
}

const char *dial_connected(struct bufferevent *bev, short what, long agent, const char *role, char key[25])
{
	if (!(what & BEV_EVENT_CONNECTED))
		return what & BEV_EVENT_EOF ? "connection closed during the handshake"
					    : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
	int one = 1;
	setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	dial_request(bev, agent, role, key);
	return NULL;
}

/* Writes the upgrade request, with a fresh token for agent (role, the company), and keeps its key
 * to check the answer. False (the run fails) when no token can be signed. */
static bool dial_request(struct bufferevent *bev, long agent, const char *role, char key[25])
{
	token_claims_t claims = {.agent = agent, .company = D.company, .iat = (long)time(NULL)};
	claims.exp = claims.iat + 86400;
	snprintf(claims.role, sizeof(claims.role), "%s", role);
	char *tok = token_sign(D.cfg->auth.token_secret, &claims);
	if (!tok) {
		loop_failf("cannot sign an agent token (is auth.token_secret empty?)");
		return false;
	}
	char path[TOKEN_MAX_LEN + 32], req[TOKEN_MAX_LEN + 1024];
	snprintf(path, sizeof(path), "/ws?token=%s", tok);
	free(tok);
	ws_client_key(key);
	int n = ws_client_request(req, sizeof(req), D.cfg->notifier.listen, path, key);
	if (n < 0) {
		loop_failf("WebSocket handshake request does not fit");
		return false;
	}
	bufferevent_write(bev, req, (size_t)n);
	return true;
}

int dial_upgrade(struct bufferevent *bev, const char *key, const ws_callbacks_t *cb, void *arg, ws_conn_t **ws,
		 char *why, size_t whylen)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len = evbuffer_get_length(in);
	const char *buf = (const char *)evbuffer_pullup(in, -1);
	int r = ws_client_check_response(buf, len, key);
	if (r == 0 && len < DIAL_HEAD_MAX)
		return 0;
	if (r <= 0) {
		const char *eol = memchr(buf, '\r', len);
		snprintf(why, whylen, "handshake refused: %.*s", (int)(eol ? eol - buf : (len < 80 ? (int)len : 80)), buf);
		return -1;
	}
	evbuffer_drain(in, (size_t)r);
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	ws_limits_t lim = {.max_message_bytes = 1 << 20, .max_send_buffer = 0, .ping_interval_ms = 0};
	*ws = ws_conn_new(bev, true, &lim, cb, arg);
	if (!*ws) {
		loop_failf("out of memory");
		return -1;
	}
	return 1;
}

void dial_subscribe(ws_conn_t *ws, const char *channel, bool resume, long long since, long long epoch)
{
	char frame[256];
	int n = resume ? snprintf(frame, sizeof(frame), "{\"op\":\"subscribe\",\"channel\":\"%s\",\"since\":%lld,\"epoch\":%lld}",
				  channel, since, epoch)
		       : snprintf(frame, sizeof(frame), "{\"op\":\"subscribe\",\"channel\":\"%s\"}", channel);
	if (!ws_conn_send_text(ws, frame, (size_t)n))
		ws_conn_close(ws, WS_CLOSE_INTERNAL, NULL);
}

long long dial_frame_ll(const char *data, size_t len, const char *key, long long def)
{
	char pat[32];
	int n = snprintf(pat, sizeof(pat), "\"%s\":", key);
	const char *p = memmem(data, len, pat, (size_t)n);
	return p ? strtoll(p + n, NULL, 10) : def;
}
