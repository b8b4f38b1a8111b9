/*
 * post: the webhooks of the open-loop run. Evolution messages.upsert bodies (texts from the
 * labelled corpus, by the channel's domain, so the rules see the intents production sees) go to
 * the ingress over keep-alive HTTP/1.1 connections, at most one request in flight on each, so an
 * answer is always the answer to the message the connection carries. A dropped connection is
 * dialled again shortly, so a restarted ingress gets its load back.
 */
#ifndef ATENDE_BENCH_POST_H
#define ATENDE_BENCH_POST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include "config.h"

/* What the owner hears. */
typedef struct {
	/* message msg's outcome: an HTTP status, 0 for a broken connection, -1 for no answer in time */
	void (*answer)(uint64_t msg, int status);
	/* a connection came up; post_up() says how many are */
	void (*up)(void);
	/* a connection can take a message: the owner sends what is due */
	void (*idle)(void);
} post_callbacks_t;

/* Picks the Evolution channels of company (names and keys that need no JSON escaping), loads the
 * corpus, and allocates connections to the ingress at sa (cfg->ingress.listen); message ids will
 * be prefix + index, prefix read at each send (cfg, prefix and cb are kept, not copied); messy:
 * each text is sent as customers type it (messy.h). False with a reason when there is nothing to
 * post to; customers: how many distinct customers (conversations) send. */
bool post_init(const cfg_t *cfg, long company, const struct sockaddr_storage *sa, int salen, const char *prefix,
	       int connections, bool messy, int customers, const post_callbacks_t *cb, char *err,
	       size_t errlen) __attribute__((warn_unused_result));

/* Dials every connection. Before post_started, a connection that fails fails the run. */
void post_connect_all(void);

/* The run has started: from now on a connection that fails is dialled again. */
void post_started(void);

/* Sends message i on a free connection. False when every connection is busy or down. */
bool post_send(uint64_t i);

/* Connections up now. */
int post_up(void);

/* Closes every connection, for good, and frees what post_init loaded. */
void post_free(void);

#endif
