/*
 * web: the notifier's HTTP side on notifier.listen: the WebSocket upgrade (GET /ws), the
 * long-poll for networks that block WebSocket (GET /poll) and its ops (POST /op), the console's
 * files (GET /), /healthz and /metrics, with the token, Origin and connection-limit checks they
 * share. The place for the notifier's other HTTP endpoints.
 */
#ifndef ATENDE_WEB_H
#define ATENDE_WEB_H

#include "conn.h"
#include "http.h"

/* The HTTP server's handler: routes one request. */
void web_handle(http_request_t *req, void *arg);

/* Reads the console's files from notifier.console_dir (start-up and SIGHUP). */
void web_load_console(void);

/* Answers a waiting long-poll with what it collected (the drain calls it too). */
void web_poll_answer(conn_t *c);

#endif
