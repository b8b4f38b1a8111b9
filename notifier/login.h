/*
 * login: POST /v1/login {"login":L,"password":P} answers {"token","agent","company","role"}:
 * the same token `atende token` mints, for an account made with `atende agent add`. The
 * password is checked against the agents table's yescrypt hash (common/passwd) on one helper
 * thread: a check costs ~85 ms of CPU, which on the loop would stall every console of this
 * notifier. One thread, a bounded queue: logins are rare (a shift starting), and a flood of
 * them then waits its turn (503 past the queue) instead of taking the machine's cores.
 * Failures are counted per login and per client address; a failure's 401 is held back
 * LOGIN_FAIL_DELAY_MS and past LOGIN_MAX_FAILURES within LOGIN_WINDOW_S the answer is 429
 * with Retry-After, so guessing is slow whichever it varies.
 */
#ifndef ATENDE_LOGIN_H
#define ATENDE_LOGIN_H

#include "http.h"

#define LOGIN_MAX_FAILURES 5    /* per login, and per client address, within the window */
#define LOGIN_WINDOW_S 300
#define LOGIN_FAIL_DELAY_MS 1000
#define LOGIN_QUEUE_MAX 64      /* logins waiting for the hashing thread; past it: 503 */

/* Starts the hashing thread and its wake-up pipe on N.base. False when it cannot. */
bool login_start(void);

/* Answers every login still waiting (503) and joins the thread. Before http_server_free. */
void login_stop(void);

/* Handles POST /v1/login (answered now or later): 400 when the body is not JSON with string
 * login and password, 405 for another method, 401 for a wrong login or password (the same
 * answer for both, after the same work), 403 for a disabled account, 429 after repeated
 * failures, 503 while the database is unreachable. */
void login_handle(http_request_t *req);

/* Copies the login counters into the metrics registry. */
void login_metrics_refresh(void);

#endif
