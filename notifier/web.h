/*
 * web: the notifier's HTTP side on notifier.listen: the WebSocket upgrade (GET /ws), the
 * long-poll for networks that block WebSocket (GET /poll) and its ops (POST /op), the console's
 * files (GET /), /healthz and /metrics, with the token, Origin and connection-limit checks they
 * share; /v1/ paths go to the conversation API (api.h) once the token is verified.
 */
#ifndef ATENDE_WEB_H
#define ATENDE_WEB_H

#include "conn.h"
#include "http.h"
#include "token.h"

#include <stdbool.h>
#include <stddef.h>

/* The HTTP server's handler: routes one request. */
void web_handle(http_request_t *req, void *arg);

/* The bearer's token, from `Authorization: Bearer T` or ?token=T, verified as the WebSocket
 * handshake verifies it (401), and the Origin allow-list (403). Answers the request and returns
 * false when refused; fills claims and token_key (the token's signature) otherwise. */
bool web_authorize(http_request_t *req, token_claims_t *claims, char *token_key, size_t keylen)
	__attribute__((warn_unused_result));

/* The token part of web_authorize, answering nothing: true and claims, token_key filled when
 * the request's token is good; false and why (for a 401) otherwise. */
bool web_token_check(const http_request_t *req, token_claims_t *claims, char *token_key, size_t keylen, char *why,
		     size_t whylen) __attribute__((warn_unused_result));

/* Close code of a console whose token is no longer good (expired, its secret rotated out,
 * the agent disabled or its password changed): the console page logs in again on it. */
#define WEB_CLOSE_RELOGIN 4001

/* True while claims may stay connected at now: not expired, signed with a secret the
 * config still accepts, agent neither disabled nor re-passworded since; why says what
 * otherwise. */
bool web_token_current(const token_claims_t *claims, long now, char *why, size_t whylen);

/* Closes (WEB_CLOSE_RELOGIN) every WebSocket whose token is no longer current: after a
 * reload (a rotated secret) and a roster refresh (disabled agents, new passwords). */
void web_sweep_tokens(void);

/* Reads the console's files from notifier.console_dir (start-up and SIGHUP). */
void web_load_console(void);

/* Answers a waiting long-poll with what it collected (the drain calls it too). */
void web_poll_answer(conn_t *c);

#endif
