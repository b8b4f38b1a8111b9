/*
 * rules: the built-in AI provider (ai.provider = "rules", the default). Classifies a
 * customer message by weighted Portuguese keywords, flags critical cases and writes a
 * coaching hint for the agent. No network, no state: the fallback when the LLM fails.
 */
#ifndef ATENDE_RULES_H
#define ATENDE_RULES_H

#include <stdbool.h>
#include <stddef.h>

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
	double confidence;           /* 0..1: how sure the intent is (see rules_classify) */
} rules_result_t;

/* "billing", "sales", "outage", "complaint", "cancel", "other" (static; "other" for
 * out-of-range values). */
const char *rules_intent_name(rules_intent_t intent);

/* Parses an intent name as rules_intent_name writes it; returns false when unknown. */
bool rules_intent_parse(const char *name, rules_intent_t *out);

/* Classifies a customer message (raw UTF-8, may be NULL) received on domain
 * ("financeiro", "comercial", "suporte", "ouvidoria", "cancelamento"; NULL or unknown
 * means none) and writes the intent, the critical flag and a hint into *out.
 * The text is read the way customers write on WhatsApp: slang and abbreviations
 * expanded ("vc", "net", "2a via", "to"), typos of the keywords corrected (one edit from
 * 6 letters on, two from 10; a verb's inflection on its stem: "canselá" is "cancela"), a
 * keyword late in a long message, right after a request verb or an ending verb opening
 * the message ("desliga a linha") weighs more, one the customer refuses or never did
 * ("não quero desconto", "não mudei de plano") nothing; "cancelar" after "se"/"senão"/"ou"
 * or followed by "se", said by the customer ("vou cancelar", "cancelo") or under a failure
 * ("se não resolverem"), is a threat that leaves the intent to the problem (the hint then
 * warns of it), as is a formal complaint after "se não" — not a question ("quanto pago se
 * cancelar?") nor the company's act ("se não cancelarem hoje"); a judgement ("ruim", "uma porcaria") is a fault right after a
 * service ("a internet") and a complaint right after the people who served ("o
 * atendimento"); one of those people as the subject of a past-tense verb ("o técnico
 * chegou…") is a complaint; a plan named right after "cancelar"/"tirar" is what ends, not
 * a sale, and a charge named there is a bill to fix; portability "pra vocês" is a sale.
 * The highest keyword score wins; the
 * domain breaks ties and is the intent when no keyword matches. confidence is 0.95 for
 * greetings and acknowledgements, (top - second) / top scaled down below a score of 5 and
 * by the share past one half of the content words no keyword read, for keyword
 * decisions, and 0.2 for a guess from the domain alone. Greetings and acknowledgements ("oi", "ok", "obrigado") and texts
 * with no letters or digits are INTENT_OTHER whatever the domain. When several critical
 * reasons match, the most serious is reported: health, fraud, legal, urgency.
 * Pure and deterministic; safe to call from any thread. */
void rules_classify(const char *text, const char *domain, rules_result_t *out);

/* Writes into out (cap bytes, NUL-terminated, truncated at a word) the key the similarity
 * cache compares: the text normalized and rewritten as rules_classify reads it (slang,
 * typos), with what does not change the request taken out — greetings and courtesies,
 * introductions with the name ("meu nome é Ana", "aqui é o João", "sou a", "me chamo")
 * — and what varies from
 * customer to customer made alike: every number (amounts, dates, protocols, speeds) is
 * "0" (runs of them one "0", "R$" dropped), month names are "mes". Returns the length.
 * Pure; "" for NULL or a text with nothing left. */
size_t rules_cache_key(const char *text, char *out, size_t cap);

/* What a voice note is coached as: RULES_VOICE_MARK alone (no transcript: the hint tells the
 * agent to listen to it), or followed by its transcript (classified like text, the hint
 * saying it came from a voice note). */
#define RULES_VOICE_MARK "[mensagem de voz]"

#endif
