/*
 * dial: the bench's way into the notifier as a console would come: TCP to notifier.listen, the
 * WebSocket upgrade with a freshly signed agent token, then a subscribe op. The open-loop agents
 * and the notifier runs' subscribers both go through it, so they meet the notifier the same way.
 */
#ifndef ATENDE_BENCH_DIAL_H
#define ATENDE_BENCH_DIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>

#include "config.h"
#include "ws.h"

#define DIAL_HEAD_MAX 16384 /* the longest HTTP answer head the bench waits for */

/* "127.0.0.1:8080", "[::1]:8080" or ":8080" (all addresses, so loopback is dialled) into *ss.
 * False when listen is not an address. */
bool dial_addr(const char *listen, struct sockaddr_storage *ss, int *len) __attribute__((warn_unused_result));

/* Where the notifier is (cfg->notifier.listen) and whose tokens to sign (cfg->auth.token_secret,
 * company); cfg is kept, not copied. False when notifier.listen cannot be parsed. */
bool dial_init(const cfg_t *cfg, long company) __attribute__((warn_unused_result));

/* Starts a TCP connection to the notifier into *bev, for a WebSocket handshake (callbacks rd and
 * ev with arg). NULL when under way; else why not (*bev may be set: the failure path frees it). */
const char *dial_ws(struct bufferevent **bev, bufferevent_data_cb rd, bufferevent_event_cb ev, void *arg);

/* A dialled socket's event: once connected, sends the upgrade request of agent (role), keeping
 * its key to check the answer, and returns NULL; otherwise returns why the connection failed.
 * A token that cannot be signed fails the run (loop_failf). */
const char *dial_connected(struct bufferevent *bev, short what, long agent, const char *role, char key[25]);

/* Reads the notifier's answer to a handshake sent with key: 1 when bev is now the WebSocket *ws
 * (bev handed over to it, callbacks cb with arg), 0 when more of the answer is needed, -1 when it
 * was refused (why says how; empty when the run failed instead). */
int dial_upgrade(struct bufferevent *bev, const char *key, const ws_callbacks_t *cb, void *arg, ws_conn_t **ws,
		 char *why, size_t whylen);

/* Sends the subscribe op for channel; with resume, asks for exactly the events after since in
 * epoch (the notifier's resume from its history). A frame that cannot be queued closes ws. */
void dial_subscribe(ws_conn_t *ws, const char *channel, bool resume, long long since, long long epoch);

/* The number after "key": in a JSON frame, or def; a plain search, cheap enough for every frame. */
long long dial_frame_ll(const char *data, size_t len, const char *key, long long def);

#endif
