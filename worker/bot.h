/*
 * bot: bot mode (INTERFACE.md "Bot mode"). For a company domain with the bot on
 * (companies.bot_domains), a stored customer message of a conversation in the bot's hands
 * (conversations.bot_active, schema/010_bot.sql) is answered by the bot instead of being
 * coached: the AI with the bot prompt and the conversation's recent history (worker/ai.c,
 * so the same limits, breaker and fallback), or templates from the rules when the provider
 * is "rules" or the AI fails. The answer goes out as a bot reply request on atende.outbound
 * (worker/outbound.h), whose request_id is derived from the message, so a redelivered
 * message never produces a second send. The bot hands the conversation to an agent
 * (`assignment` event with "reason") when the customer asks for a person
 * ("customer_asked"), the message is critical ("critical"), the AI says it cannot help
 * ("bot_cannot_help") or it has answered bot.max_turns times ("max_turns"); it then sends
 * nothing (or bot.handoff_message), and the message is coached for the new agent. Outside
 * the company's hours a hand-off queues the conversation for the morning and the bot says
 * when agents are back (bot.after_hours_message). Each decision is recorded per message
 * (bot_turns) before anything is published.
 */
#ifndef ATENDE_BOT_H
#define ATENDE_BOT_H

#include "ai.h"
#include "config.h"
#include "db.h"
#include "event.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct bot bot_t;

/* The broker acknowledged (ok) or gave up on (!ok) one thing published. */
typedef void (*bot_acked_fn)(void *ctx, bool ok);

typedef struct {
	/* Publishes an event (an assignment) to atende.events; event is borrowed; acked once. */
	void (*publish_event)(const evt_t *event, bot_acked_fn acked, void *ctx, void *arg);
	/* Produces a bot reply request (json, taken) to atende.outbound, keyed by the
	 * conversation like the consoles' requests; acked once. */
	void (*publish_request)(long company, int64_t conversation, char *json, bot_acked_fn acked, void *ctx,
				void *arg);
	/* The message is not the bot's (an agent has the conversation, or was just given it):
	 * coach it for agent (0: none yet). The token is the coach's from here on. */
	void (*coach)(void *token, int64_t agent, void *arg);
	/* The bot's part of the message is durable (decision recorded, everything acknowledged). */
	void (*done)(void *token, void *arg);
} bot_callbacks_t;

/* A stored customer message. Strings are copied. */
typedef struct {
	int64_t message_id, conversation_id;
	long company;
	const char *conversation_key, *channel, *provider_id, *domain, *text;
	void *token;
} bot_msg_t;

/* ai NULL: answers from the templates. cfg is read at each use (reloads apply). */
bot_t *bot_new(struct event_base *base, db_t *db, const cfg_t *cfg, ai_t *ai, const bot_callbacks_t *cb, void *arg);

/* True when the config has the bot on for this company's domain. */
bool bot_wants(const bot_t *b, long company, const char *domain);

/* Takes a stored customer message of a bot domain; exactly one of cb.coach or cb.done is
 * called for it later (never from inside this call). */
void bot_add(bot_t *b, const bot_msg_t *m);

/* Messages taken and not yet handed back. */
int bot_pending(const bot_t *b);

/* Abandons what is under way (no callbacks: those messages stay uncommitted) and frees. */
void bot_free(bot_t *b);

/* ---- pure pieces, for unit tests ---- */

/* True when the customer asks for a person: built-in Portuguese phrases ("atendente",
 * "falar com uma pessoa", "humano", ...; accents, case and small typos ignored) or one of
 * extra ("a|b|c", matched on normalized text). */
bool bot_asks_for_person(const char *text, const char *extra);

/* The rules provider's answer to a customer message (a template by intent), into out. */
void bot_rules_answer(const char *text, const char *domain, char *out, size_t len);

/* fmt with every "{back}" replaced by back, into out. */
void bot_expand(const char *fmt, const char *back, char *out, size_t len);

#endif
