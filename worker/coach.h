/*
 * coach: the coaching stage of a worker, between "a customer message is stored" and
 * "its hint is stored and published". Per conversation it keeps the recent history (for
 * the AI prompt) and a smart buffer (messages arriving while the conversation is being
 * analysed are analysed together once). Filters, the shared limits (through PostgreSQL),
 * the similarity cache and the AI or rules provider are applied here; the PostgreSQL
 * work is batched: one admit and one finish round trip per loop turn, whatever the load.
 * A lone message the rules would hint at once, or the cache's copy in memory would, skips
 * both: its hint is made before it is stored and stored with it (coach_inline, schema/023, 026).
 */
#ifndef ATENDE_COACH_H
#define ATENDE_COACH_H

#include <cJSON.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "ai.h"
#include "config.h"
#include "db.h"
#include "event.h"
#include "rules.h"

typedef struct coach coach_t;

/* A stored customer message handed to the coach. Strings are copied. */
typedef struct {
	int64_t message_id;          /* messages.id */
	int64_t conversation_id;
	int64_t agent_id;            /* assigned agent, 0 when none */
	long company;
	const char *conversation_key;
	const char *provider_id;     /* the gateway's id, used in events */
	const char *domain;
	const char *text;
	const char *received_at;     /* ISO time the ingress accepted it */
	void *token;                 /* the caller's: handed back to message_done */
} coach_msg_t;

/* A hint stored and ready to publish; valid during the callback only. */
typedef struct {
	evt_hint_t event;                /* the hint event's payload */
	void *const *tokens;             /* the tokens of every message of the analysis: a caller
					  * may hold them until the hint event is acknowledged */
	int n_tokens;
	double seconds;                  /* first covered message consumed -> hint stored */
} coach_hint_t;

typedef struct {
	void (*publish_hint)(const coach_hint_t *hint, void *arg);
	/* ai.stream: an AI hint as the model writes it, or its withdrawal (hint->partial, see the
	 * hint event in common/event.h), to publish as is: nothing is stored or acknowledged.
	 * NULL: no partial hints. */
	void (*publish_partial)(const evt_hint_t *hint, void *arg);
	/* Every message given to coach_add comes back here exactly once, after its outcome
	 * (hint, skip, refusal) is stored: only then may its offset be committed. */
	void (*message_done)(void *token, void *arg);
	/* Outcome counters for metrics: kind is "source" (ai|rules|cache|fallback),
	 * "skip" (disabled|short|agent_typing), "refusal" (agent_interval|per_minute|
	 * cost_hour|cost_day|pending), "routed" (the intent of a hint routed to the rules:
	 * ai.route_confident) or "shadow" ("cache|routed:agree|disagree|failed", a shadow
	 * check's outcome: ai.shadow_share; kind "semantic" is an embeddings cache hit) or
	 * "semantic" (hit|miss|refused|failed: ai.embeddings_model lookups). */
	void (*count)(const char *kind, const char *what, void *arg);
} coach_callbacks_t;

/* ai NULL: the built-in rules provider (no budget, no cache). The coach borrows cfg (it
 * must outlive the coach; call coach_reconfigure after a reload). */
coach_t *coach_new(struct event_base *base, db_t *db, const cfg_t *cfg, ai_t *ai, const coach_callbacks_t *cb,
		   void *arg);

/* A stored customer message whose coaching is not decided yet. */
void coach_add(coach_t *c, const coach_msg_t *m);

/* For a customer message about to be stored (its ids may still be 0): when its hint is known
 * now (no debounce, no per-agent interval, coaching on and the message long enough, its
 * conversation idle here, no agent typing in it; with the rules provider the rules' hint, with
 * the AI a hit the rules agree with in the cache's copy in memory, unless routing or shadow
 * checks are on), adds that hint to ev as "rules_hint" ({intent, critical, text, latency_ms,
 * and "source": "cache" for a cache hit}) for atende_store to store with the message
 * (schema/023, 026) and returns true; else false and ev is untouched. The caller makes sure it
 * is its conversation's only customer message in the batch. */
bool coach_inline(coach_t *c, const coach_msg_t *m, cJSON *ev);

/* m was stored with coach_inline's hint (the "rules_hint" object) as hint_id at created_at
 * (as JSON writes a time): as a one-message analysis ends, publishes the hint (m->token its
 * one token, seconds since consumed_at), counts it, joins m to the history and hands m back
 * through message_done; a "source": "cache" hint is published and counted as the cache's.
 * again: m is a redelivery of such a message (its hint's intent, critical, text and source as
 * stored): the same, but the hint is not counted a second time. */
void coach_inline_done(coach_t *c, const coach_msg_t *m, const cJSON *hint, int64_t hint_id, const char *created_at,
		       double consumed_at, bool again);

/* A stored agent message (customer messages join the history once coached): feeds the
 * history window sent with the next analysis. */
void coach_history(coach_t *c, const char *conversation_key, bool from_agent, const char *text);

/* An agent's typing state in a conversation (from the consoles, through Kafka). */
void coach_typing(coach_t *c, int64_t conversation_id, int64_t agent_id, bool typing, double until_unix);

/* Messages handed in and not yet done. */
int coach_pending(const coach_t *c);

/* Vectors held for the semantic cache (ai.embeddings_model), all companies and domains. */
int coach_semantic_vectors(const coach_t *c);

/* Cached hints this worker holds in memory (cache.memory_entries), all rings together. */
int coach_memory_entries(const coach_t *c);

/* Conversations currently remembered. */
int coach_conversations(const coach_t *c);

void coach_reconfigure(coach_t *c, const cfg_t *cfg);
void coach_free(coach_t *c);

/* True when text matches a built-in critical pattern or one of patterns ("a|b|c",
 * matched on normalized text). Pure; exposed for tests. */
bool coach_is_critical(const char *text, const char *patterns);

/* The routing decision of ai.route_confident: classifies text (the analysis' messages
 * joined) on domain into *r and returns true when it is at most ai.route_max_chars
 * characters, not critical for the rules and at least ai.route_min_confidence sure (the
 * rules' hint is then used without an AI call). route.confident itself is not looked at.
 * Pure; exposed so test_rules measures the routed share and precision the defaults give. */
bool coach_route_decide(const cfg_t *cfg, const char *text, const char *domain, rules_result_t *r);

#endif
