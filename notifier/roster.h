/*
 * roster: the notifier's side of agent accounts and presence in PostgreSQL (schema/006).
 * Tokens are stateless, so who may no longer use one is kept here: a list of the disabled
 * accounts and of the last password change of each account, refreshed every
 * ROSTER_REFRESH_S; a refresh also closes the open WebSockets of an agent that became
 * disabled. Presence is written for assignment: an agent's first console here adds its
 * agent_presence row, its last one removes it, every heartbeat renews the rows of this
 * instance; an agent coming online, and every heartbeat as a safety net, hands out its
 * company's waiting conversations (atende_assign_waiting), each as an `assignment` event.
 * Every query runs on the API's connections (api_db_pick); without a database the last
 * known list stays in force and presence is written again at the next heartbeat.
 */
#ifndef ATENDE_ROSTER_H
#define ATENDE_ROSTER_H

#include "token.h"

#include <stdbool.h>
#include <stddef.h>

#define ROSTER_REFRESH_S 5

/* Starts the refresh timer (a first refresh at once). */
void roster_start(void);
void roster_stop(void);

/* Whether a verified token may still be used: false, with the reason in why, when its
 * agent's account is disabled or the token was issued before the account's last password
 * change (a new password ends the sessions before it). */
bool roster_token_ok(const token_claims_t *claims, char *why, size_t whylen);

/* An agent's first console on this instance opened (online) or its last one closed. */
void roster_presence(long company, long agent, bool online);

/* Renews this instance's presence rows (the agents it holds consoles of) and hands out the
 * queues of their companies. Called on the presence heartbeat. */
void roster_heartbeat(void);

#endif
