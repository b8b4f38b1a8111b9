/*
 * rules: the built-in AI provider (ai.provider = "rules", the default). Classifies a
 * customer message by weighted Portuguese keywords, flags critical cases and writes a
 * coaching hint for the agent. No network, no state: the fallback when the LLM fails.
 */
#ifndef ATENDE_RULES_H
#define ATENDE_RULES_H

#include <stdbool.h>

typedef enum {
	INTENT_BILLING,
	INTENT_SALES,
	INTENT_OUTAGE,
	INTENT_COMPLAINT,
	INTENT_CANCEL,
	INTENT_OTHER,
} rules_intent_t;

#define RULES_HINT_MAX 512

typedef struct {
	rules_intent_t intent;
	bool critical;               /* urgency, fraud, legal threat, health */
	const char *critical_reason; /* "health" | "fraud" | "legal" | "urgency" | NULL (static strings) */
	char text[RULES_HINT_MAX];   /* coaching hint for the agent, pt-BR, 1-2 sentences, NUL-terminated */
} rules_result_t;

/* "billing", "sales", "outage", "complaint", "cancel", "other" (static; "other" for
 * out-of-range values). */
const char *rules_intent_name(rules_intent_t intent);

/* Parses an intent name as rules_intent_name writes it; returns false when unknown. */
bool rules_intent_parse(const char *name, rules_intent_t *out);

/* Classifies a customer message (raw UTF-8, may be NULL) received on domain
 * ("financeiro", "comercial", "suporte", "ouvidoria", "cancelamento"; NULL or unknown
 * means none) and writes the intent, the critical flag and a hint into *out.
 * The highest keyword score wins; the domain breaks ties and is the intent when no
 * keyword matches. Greetings and acknowledgements ("oi", "ok", "obrigado") and texts
 * with no letters or digits are INTENT_OTHER whatever the domain. When several critical
 * reasons match, the most serious is reported: health, fraud, legal, urgency.
 * Pure and deterministic; safe to call from any thread. */
void rules_classify(const char *text, const char *domain, rules_result_t *out);

/* What a voice note is coached as: RULES_VOICE_MARK alone (no transcript: the hint tells the
 * agent to listen to it), or followed by its transcript (classified like text, the hint
 * saying it came from a voice note). */
#define RULES_VOICE_MARK "[mensagem de voz]"

#endif
