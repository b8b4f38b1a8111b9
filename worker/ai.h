/*
 * ai: asynchronous client of an OpenAI-compatible chat-completions endpoint, on libcurl
 * multi driven by the caller's libevent loop (no threads, hundreds of calls in flight).
 * It picks the model tier, builds the prompt from per-domain templates and the
 * conversation's history, retries with backoff, honours 429 Retry-After for the whole
 * provider, trips a circuit breaker, and falls back to the rules provider so every
 * request ends with a hint.
 */
#ifndef ATENDE_AI_H
#define ATENDE_AI_H

#include "breaker.h"
#include "config.h"
#include "rules.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AI_HINT_MAX 1024 /* bytes of a hint text, NUL included; longer AI hints are cut at a UTF-8 boundary */

/* What ai_parse_completion had to repair in a usable answer (bits of ai_parsed_t.repaired). */
enum {
	AI_REPAIRED_INTENT = 1,   /* intent missing or outside the six: the nearest one or "other" */
	AI_REPAIRED_CRITICAL = 2, /* critical missing or not a boolean: read as false (or "true"/1 as true) */
	AI_REPAIRED_HINT_CUT = 4, /* hint over AI_HINT_MAX - 1 bytes: cut at a word boundary */
	AI_REPAIRED_N = 3,
};

typedef struct ai ai_t;

/* Settings. Strings are copied by ai_new/ai_reconfigure; ai_config_from_cfg fills one
 * from the loaded config (borrowing its strings). */
typedef struct {
	const char *base_url;    /* POST <base_url>/chat/completions */
	const char *api_key;     /* Authorization: Bearer <api_key>; "" or NULL = no header */
	const char *model_small; /* ai.model: short, simple messages */
	const char *model_large; /* ai.model_large; "" or NULL = always model_small */
	int large_min_chars;     /* texts together of >= this many characters use model_large; 0 = off */
	int large_min_words;     /* ... or of >= this many words; 0 = off */
	bool large_when_critical;/* requests flagged critical use model_large */
	int timeout_ms;          /* per HTTP call (also cut to what is left of deadline_ms) */
	int max_retries;         /* calls after the first one, at most */
	int retry_base_ms;       /* delay before retry k is retry_base_ms << (k-1): 2, 4, 8 s */
	int deadline_ms;         /* budget of a whole request; past it the rules answer */
	int max_in_flight;       /* HTTP calls in flight at most; other requests wait FIFO */
	int history_max_tokens;  /* history sent is cut (oldest first) to this many bytes / 4 */
	int history_messages;    /* at most this many history entries are sent (newest kept); 0 = none */
	int64_t price_small_in, price_small_out; /* micro-USD per 1M tokens of model_small */
	int64_t price_large_in, price_large_out; /* micro-USD per 1M tokens of model_large */
	breaker_params_t breaker;/* used by ai_new only */
	const char *prompts_dir; /* <dir>/<domain>.txt and <dir>/default.txt; used by ai_new only */
	bool stream;             /* ai.stream: analyses ask for server-sent events (bot answers and
				  * transcriptions never do); the hint so far goes to ai_request_t.partial */
	const char *embeddings_model;      /* POST <base_url>/embeddings with this model (ai_embed); "" = none */
	int embeddings_timeout_ms;         /* per embeddings call */
	int64_t price_embeddings;          /* micro-USD per 1M tokens of embeddings_model */
	const char *transcription_model;   /* POST <base_url>/audio/transcriptions with this model */
	int64_t price_transcription_minute; /* micro-USD per minute of audio */
} ai_config_t;

/* Who wrote a history line. */
typedef enum { AI_ROLE_CUSTOMER = 0, AI_ROLE_AGENT = 1 } ai_role_t;

typedef struct {
	ai_role_t role;
	const char *text;
} ai_turn_t;

/* The hint of a streamed answer as the model writes it (ai_config_t.stream): text is the
 * "hint" string decoded so far (never cut inside a UTF-8 sequence or an escape), intent the
 * answer's "intent" once the model has written it whole (NULL before). arg is the request's.
 * Called from the loop while the call runs (not from inside ai_request), when the text has
 * grown and at least AI_PARTIAL_MIN_MS have passed since the last call for this request; a
 * retry starts the text over. It must not call ai_* functions. */
typedef void (*ai_partial_fn)(const char *text, const char *intent, void *arg);

#define AI_PARTIAL_MIN_MS 150 /* at most ~7 partial hints a second per analysis, whatever the model's speed */

/* One analysis. Everything is copied by ai_request: the caller may free it on return. */
typedef struct {
	const char *domain;            /* "suporte"...: selects the prompt; NULL or unknown = default.txt */
	long company;                  /* for logs */
	const char *conversation;      /* conversation key, for logs (may be NULL) */
	const char *const *texts;      /* the customer messages to analyse together, oldest first */
	int n_texts;                   /* >= 1 */
	const ai_turn_t *history;      /* recent conversation before them, oldest first (may be NULL) */
	int n_history;
	bool critical;                 /* the caller's critical-pattern flag: may pick the large model; ORed into the result */
	bool bot;                      /* bot mode (worker/bot.c): the bot prompt (<prompts_dir>/bot-<domain>.txt,
					* bot.txt, or a built-in one) and an answer to the customer, parsed by
					* ai_parse_bot_answer; the result's hint is that answer */
	ai_partial_fn partial;         /* NULL: no partial hints; bot requests have none */
} ai_request_t;

/* Outcome class of one HTTP call, for metrics. */
typedef enum {
	AI_CLASS_2XX = 0,  /* a usable answer */
	AI_CLASS_429,      /* rate limited (pauses the provider) */
	AI_CLASS_4XX,      /* other client errors (bad key, bad model): not retried */
	AI_CLASS_5XX,
	AI_CLASS_TIMEOUT,  /* no answer within the per-call timeout */
	AI_CLASS_GARBAGE,  /* 2xx whose content is not the JSON object asked for */
	AI_CLASS_CONN,     /* could not connect, reset, other transport errors */
	AI_CLASS_N
} ai_class_t;

/* What the done callback gets; valid only during the callback (copy what you keep). */
typedef struct {
	bool ok;                    /* true: a hint is here (from the AI or the rules); false only when cancelled by ai_free */
	rules_intent_t intent;      /* rules_intent_name() gives billing|sales|outage|complaint|cancel|other */
	bool critical;              /* the answer's flag ORed with the request's */
	const char *critical_reason;/* fallback only: the rules' reason ("health"...); NULL otherwise */
	const char *hint;           /* pt-BR coaching text, never NULL when ok */
	const char *source;         /* "ai" | "fallback"; NULL when !ok */
	bool handoff;               /* bot mode, source "ai": the model asked for a person (hint then may be "") */
	const char *model;          /* model the calls went to, even if the hint fell back; NULL when no call was made */
	int tokens_in, tokens_out;  /* summed over every call of this request (failed ones spent tokens too) */
	double cost_usd;            /* from those tokens and the price table */
	int latency_ms;             /* ai_request -> callback */
	int attempts;               /* HTTP calls made (0 when the breaker or a pause refused at once) */
	const char *error;          /* "" when the hint came from the AI; else why not, e.g. "http 500", "timeout; breaker open" */
	const char *const *texts;   /* the request's texts, as copied (n_texts of them) */
	int n_texts;
	const char *transcript;     /* ai_transcribe: the words, ai_describe_image: the description
				       (source "ai"); NULL when there are none
				       (source "fallback", error says why; hint is then meaningless) */
} ai_result_t;

typedef void (*ai_done_fn)(const ai_result_t *res, void *arg);

/* Counters for metrics (ai_stats). Calls are per tier: [0] model_small, [1] model_large
 * (counts stay with the tier when a reload renames its model). */
typedef struct {
	const char *models[2];      /* current tier model names, owned by ai (valid until ai_reconfigure/ai_free) */
	int in_flight;              /* HTTP calls now */
	int max_in_flight_seen;     /* highest in_flight since ai_new */
	int queued;                 /* requests waiting for a slot, a 429 pause or a retry delay */
	int pending;                /* requests not yet answered (queued + in flight + backing off) */
	uint64_t requests;          /* ai_request calls accepted */
	uint64_t answered_ai;       /* results with source "ai" */
	uint64_t fallbacks;         /* results with source "fallback" */
	uint64_t fallback_breaker;  /* ... of which the breaker refused a call */
	uint64_t fallback_deadline; /* ... of which time ran out (deadline, long 429 pause) */
	uint64_t fallback_failed;   /* ... of which the last retry failed or the error was not retryable */
	uint64_t retries;           /* calls that were retries */
	uint64_t pauses_429;        /* 429 answers that paused the provider */
	uint64_t calls[2][AI_CLASS_N];
	uint64_t tokens_in, tokens_out;
	double cost_usd;            /* total spent */
	breaker_state_t breaker;
	uint64_t breaker_opens;
	int64_t paused_ms;          /* > 0: no call starts for this long (429) */
	uint64_t repaired[AI_REPAIRED_N]; /* usable answers repaired: [0] intent, [1] critical, [2] hint cut */
	uint64_t embed_calls[AI_CLASS_N]; /* ai_embed calls by outcome (2xx, 4xx, 5xx, timeout, garbage, conn) */
	uint64_t embed_tokens;      /* their usage */
	double embed_cost_usd;      /* their cost (not in cost_usd, which is the chat calls') */
	int embed_in_flight;
} ai_stats_t;

/* Fills out from the loaded config (ai.* keys; strings borrowed from c). */
void ai_config_from_cfg(ai_config_t *out, const cfg_t *c);

/* Creates a client on base: copies cfg, reads the prompt templates once (a missing
 * <domain>.txt uses default.txt; a missing default.txt a built-in prompt, with a warning).
 * Returns NULL with err filled when base_url or model_small is empty or libcurl fails. */
ai_t *ai_new(struct event_base *base, const ai_config_t *cfg, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Applies a reloaded config to requests started from now on (URL, key, models, tier rule,
 * timeouts, retries, deadline, in-flight cap, history bounds, prices). Prompts and breaker
 * parameters keep their start-up values. False (nothing changed, err filled) when base_url
 * or model_small is empty. */
bool ai_reconfigure(ai_t *ai, const ai_config_t *cfg, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Queues an analysis; never blocks. done(res, arg) is called exactly once, later, from the
 * event loop (never from inside ai_request), with ok=true and a hint: from the AI, or from
 * rules_classify on the texts joined by newlines with source "fallback" when the breaker
 * is open, the last retry failed, a 4xx other than 429 came back, or the deadline (or a
 * 429 pause longer than what is left of it) ran out. done may call ai_request, not ai_free.
 * Returns false (done never called) when req has no texts or ai_free has begun. */
bool ai_request(ai_t *ai, const ai_request_t *req, ai_done_fn done, void *arg) __attribute__((warn_unused_result));

/* Queues the transcription of a voice note (len bytes of type mime, copied; duration_ms
 * prices it) through <base_url>/audio/transcriptions (multipart: file, model
 * transcription_model, language pt), with the same queue, in-flight cap, retries, 429
 * pauses, deadline and breaker as analyses. done as for ai_request, with transcript set
 * when it worked. False (done never called) when len is 0 or ai_free has begun. */
bool ai_transcribe(ai_t *ai, long company, const char *conversation, const void *bytes, size_t len, const char *mime,
		   int duration_ms, ai_done_fn done, void *arg) __attribute__((warn_unused_result));

/* Queues the description of an image (len bytes of type mime, copied) through chat
 * completions on model_small: a user message whose content holds a text part (the caption,
 * if any) and an image_url part with the file as a data URL, answered in plain text. Same
 * queue, cap, retries, pauses, deadline and breaker as analyses; done as for ai_request, with
 * transcript set to the description when it worked (priced by its usage). False (done never
 * called) when len is 0 or ai_free has begun. */
bool ai_describe_image(ai_t *ai, long company, const char *conversation, const void *bytes, size_t len,
		       const char *mime, const char *caption, ai_done_fn done, void *arg) __attribute__((warn_unused_result));

/* What ai_embed gives back, from the loop: vec (dim floats, valid only during the call) or
 * NULL when the call failed or was refused (error says why: "http 500", "timeout", "paused",
 * "cancelled" from ai_free — then it must not call ai_* on this ai). tokens and cost_usd are
 * the call's usage and price (0 on failure). */
typedef void (*ai_embed_fn)(const float *vec, int dim, int tokens, double cost_usd, const char *error, void *arg);

/* Embeds text through <base_url>/embeddings ({"model": embeddings_model, "input": text}):
 * one call of embeddings_timeout_ms, no retry, outside the analyses' queue, in-flight cap
 * and breaker (a failed embedding costs only a skipped semantic lookup), not started while
 * a 429 pause holds. done is called exactly once, from the loop, never from inside ai_embed.
 * False (done never called) when no embeddings_model is set, text is empty or ai_free has
 * begun. */
bool ai_embed(ai_t *ai, const char *text, ai_embed_fn done, void *arg) __attribute__((warn_unused_result));

/* The cost in USD of transcribing duration_ms of audio at price micro-USD per minute. */
double ai_transcription_cost_usd(int duration_ms, int64_t price_minute);

/* Snapshot of the counters. */
void ai_stats(const ai_t *ai, ai_stats_t *out);

/* "2xx" "429" "4xx" "5xx" "timeout" "garbage" "conn" (static). */
const char *ai_class_name(ai_class_t c);

/* The system prompt used for a domain (NULL or unknown: the default one). Owned by ai. */
const char *ai_prompt(const ai_t *ai, const char *domain);
/* The same for bot mode. */
const char *ai_bot_prompt(const ai_t *ai, const char *domain);

/* Cancels everything and frees: in-flight calls are aborted, and the done callback of every
 * unanswered request is called once, here, with ok=false, source NULL and error
 * "cancelled" (so callers can release their arg); it must not call ai_* on this ai.
 * ai may be NULL. */
void ai_free(ai_t *ai);

/* ---- Pure pieces, exposed for unit tests ---- */

/* True when the tier rule sends these texts to model_large (and one is configured). */
bool ai_use_large(const ai_config_t *cfg, const char *const *texts, int n_texts, bool critical);

/* A parsed completion. */
typedef struct {
	rules_intent_t intent;
	bool critical;
	char hint[AI_HINT_MAX];
	bool handoff;              /* bot mode */
	int tokens_in, tokens_out; /* usage; 0 when absent */
	unsigned repaired;         /* AI_REPAIRED_* bits; 0 for a clean answer */
} ai_parsed_t;

/* Parses a chat-completions response body: choices[0].message.content must hold a JSON
 * object with a non-empty string "hint", possibly inside ``` fences or surrounded by
 * prose. Anything else degrades instead of failing: an "intent" outside the six becomes
 * the one it obviously names (any case, a plural or suffix such as "cancellation" or
 * "billing_issue", or the queue names "financeiro", "comercial", "suporte", "ouvidoria",
 * "cancelamento") or else "other"; a missing or non-boolean "critical" is false (true for
 * "true"/"sim"/"yes" or a non-zero number); a hint over the limit is cut. Each repair sets
 * a bit of out->repaired. usage.prompt_tokens and completion_tokens are read even when
 * the content is unusable (they were paid for). Returns false with err filled only when
 * there is no usable hint (not JSON, no object, no hint): the one case worth a retry. */
bool ai_parse_completion(const char *body, size_t len, ai_parsed_t *out, char *err, size_t errlen);

/* Bot mode: choices[0].message.content must hold {"answer": string, "handoff": bool}
 * (fences or prose around it allowed); the answer goes to hint. An object with handoff
 * true needs no answer; otherwise the answer must not be blank. Usage read as above. */
bool ai_parse_bot_answer(const char *body, size_t len, ai_parsed_t *out, char *err, size_t errlen);

/* A streamed chat completion (ai_config_t.stream) being read: server-sent events fed in
 * pieces of any size (a piece may end inside a line, a UTF-8 sequence or an escape).
 * content gathers choices[0].delta.content; the usage chunk (stream_options.include_usage)
 * gives the tokens. */
typedef struct {
	char *line;                /* the line being received (up to its \n) */
	size_t line_len, line_cap;
	char *content;             /* NUL-terminated */
	size_t content_len, content_cap;
	int tokens_in, tokens_out; /* from the usage chunk; 0 until it comes */
	bool usage;                /* a usage chunk came */
	bool done;                 /* "data: [DONE]" came */
	int bad;                   /* data lines that were not JSON (skipped) */
} ai_sse_t;

void ai_sse_init(ai_sse_t *s);
/* Feeds len bytes of the event stream; returns how many bytes of content they added. */
size_t ai_sse_feed(ai_sse_t *s, const char *data, size_t len);
void ai_sse_free(ai_sse_t *s);

/* The answer of a finished stream, as ai_parse_completion (bot: ai_parse_bot_answer) reads
 * a whole completion: the JSON object in the gathered content, the tokens of its usage. */
bool ai_parse_streamed(const ai_sse_t *s, bool bot, ai_parsed_t *out, char *err, size_t errlen);

/* In json, len bytes of a JSON object the model is still writing, finds the member
 * "field": "..." and decodes its string so far into out (cap bytes, NUL-terminated, cut at a
 * UTF-8 boundary when full): escapes are decoded, an escape or a UTF-8 sequence cut off at
 * the end is left out. *complete (may be NULL) tells whether the closing quote came. False
 * when the member's string has not started. */
bool ai_partial_string(const char *json, size_t len, const char *field, char *out, size_t cap, bool *complete);

/* Writes the user message sent to the model: the history (cut to max_messages entries and
 * max_tokens approximate tokens, newest kept) then, after the line "Mensagens novas do
 * cliente:", the texts. Returns a malloc'd string (NULL on allocation failure). */
char *ai_build_user_content(const ai_turn_t *history, int n_history, int max_messages, int max_tokens,
			    const char *const *texts, int n_texts);

/* Cost in USD of a call given per-1M-token prices in micro-USD. */
double ai_cost_usd(int tokens_in, int tokens_out, int64_t price_in, int64_t price_out);

#endif
