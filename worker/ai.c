/*
 * ai: the OpenAI-compatible client (see ai.h). The HTTP calls go through hc (libcurl multi
 * on the caller's event_base); the policy is here. Requests move queue -> in flight ->
 * (backoff -> queue)* -> done list; results are always delivered from a deferred event.
 */
#include "ai.h"
#include "embed.h"
#include "json.h"
#include "hc.h"
#include "log.h"
#include "metrics.h"
#include "mstore.h"
#include "text.h"
#include "xalloc.h"

#include <cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define AI_MAX_RESPONSE_BYTES (1024 * 1024) /* a completion bigger than this is garbage */
#define AI_MAX_PROMPT_BYTES (64 * 1024)
#define AI_COMPLETION_MAX_TOKENS 300        /* a hint is one or two sentences */
#define AI_NEW_MARKER "Mensagens novas do cliente:"
#define AI_VISION_MAX_TOKENS 200         /* an image's description: two or three sentences */
#define AI_VISION_PROMPT                                                                              \
	"Você ajuda atendentes de uma empresa de telecomunicações no Brasil. Um cliente enviou a "    \
	"imagem abaixo pelo WhatsApp. Descreva em português, em até três frases objetivas, o que ela " \
	"mostra e que importe ao atendimento (por exemplo: luzes de um roteador, uma mensagem de "      \
	"erro, valores e datas de uma fatura, um comprovante). Responda só com a descrição."

static const char ai_builtin_prompt[] =
	"Você orienta um atendente humano de uma central de atendimento de telecom no Brasil. "
	"Leia o histórico e as mensagens novas do cliente e responda SOMENTE com um objeto JSON "
	"{\"intent\": \"billing|sales|outage|complaint|cancel|other\", \"critical\": true|false, "
	"\"hint\": \"uma ou duas frases em português dizendo ao atendente o que fazer\"}.";

/* Bot mode (ai_request_t.bot): the model answers the customer itself. */
static const char ai_builtin_bot_prompt[] =
	"Você é o assistente virtual de uma operadora de telecom no Brasil e conversa com o cliente pelo WhatsApp. "
	"Responda em português, com no máximo três frases curtas e cordiais, só sobre o que o cliente perguntou, sem "
	"inventar valores, prazos ou protocolos. Quando não puder resolver (dados da conta, negociação, reclamação "
	"séria, pedido de cancelamento, algo fora do atendimento), não tente: peça a transferência. Responda SOMENTE "
	"com um objeto JSON {\"answer\": \"sua resposta ao cliente\", \"handoff\": false}, ou "
	"{\"answer\": \"\", \"handoff\": true} para transferir a um atendente humano.";

typedef enum { REQ_QUEUED, REQ_RUNNING, REQ_BACKOFF, REQ_DONE } ai_req_state_t;

typedef enum { FB_NONE, FB_BREAKER, FB_DEADLINE, FB_FAILED, FB_CANCELLED } ai_fallback_t;

/* One analysis from ai_request to its callback. */
typedef struct ai_req {
	ai_t *ai;
	struct ai_req *prev, *next;   /* in ai->all (every live request) */
	struct ai_req *lprev, *lnext; /* in the queue or the done list, by state */
	uint64_t seq;                 /* arrival order: the queue is kept sorted by it (FIFO fairness) */
	ai_req_state_t state;
	ai_done_fn done;
	void *arg;
	char *domain, *conversation;
	long company;
	char **texts;
	int n_texts;
	char *joined;                 /* texts joined by newlines: input of the fallback */
	bool critical;
	bool bot;                     /* bot mode: the bot prompt, an answer and a handoff flag */
	bool handoff;                 /* bot mode result: the model asked for a person */
	int tier;                     /* 0 small, 1 large */
	char *model;
	int64_t price_in, price_out;
	char *body;                   /* the JSON request body, built once */
	size_t body_len;
	int64_t t_start, deadline;    /* monotonic ms */
	int attempts, tokens_in, tokens_out;
	double cost;
	char error[128];              /* last call's error */
	bool probe;                   /* the call in flight is the breaker's half-open probe */
	hc_call_t *call;              /* the call in flight (REQ_RUNNING) */
	struct event *timer;          /* backoff delay */
	/* result */
	ai_fallback_t fallback;
	bool from_ai;
	rules_intent_t intent;
	bool res_critical;
	const char *critical_reason;
	char hint[AI_HINT_MAX];
	int latency_ms;
	/* a streamed analysis (ai.stream) */
	bool stream;                  /* asked with "stream": true */
	ai_partial_fn partial;        /* NULL: nobody wants the hint as it grows */
	ai_sse_t sse;                 /* the call's events so far */
	bool sse_on;                  /* the call answers text/event-stream (else plain JSON) */
	bool first_token;             /* the call's first content came (observed once per call) */
	int64_t call_t0;              /* monotonic ms the call started */
	int64_t partial_at;           /* monotonic ms of the last partial hint; 0 = none yet */
	size_t partial_sent;          /* bytes of the last partial hint of this call */
	/* a transcription (ai_transcribe) instead of an analysis */
	bool transcribe;
	char *content_type;           /* "Content-Type: multipart/form-data; boundary=…" */
	int duration_ms;
	char *transcript;             /* the answer's text (a transcription's, or an image's description) */
	bool vision;                  /* an image's description (ai_describe_image): chat, plain-text answer */
} ai_req_t;

/* An embeddings call (ai_embed). */
typedef struct ai_emb ai_emb_t;
struct ai_emb {
	ai_emb_t *prev, *next;  /* ai->embeds */
	ai_t *ai;
	hc_call_t *call;        /* NULL: refused before starting, delivered by the deferred event */
	struct event *ev;       /* delivers a refusal from the loop */
	ai_embed_fn done;
	void *arg;
};

struct ai {
	struct event_base *base;
	ai_config_t cfg;                /* strings below are owned copies */
	char *url;                      /* <base_url>/chat/completions */
	char *url_transcribe;           /* <base_url>/audio/transcriptions */
	char *url_embeddings;           /* <base_url>/embeddings */
	ai_emb_t *embeds;               /* embeddings calls not answered yet */
	char *auth;                     /* "Authorization: Bearer …" or NULL */
	char *prompts[CFG_MAX_DOMAINS]; /* per domain; NULL = use prompt_default */
	char *prompt_default;
	char *bot_prompts[CFG_MAX_DOMAINS]; /* bot-<domain>.txt; NULL = use bot_prompt_default */
	char *bot_prompt_default;       /* bot.txt, or the built-in one */
	hc_t *hc;                       /* NULL once ai_free has begun */
	struct event *pause_ev;         /* end of a 429 pause */
	struct event *deliver_ev;       /* delivers the done list */
	bool deliver_armed;
	ai_req_t *all;
	ai_req_t *q_head, *q_tail;      /* waiting to start, sorted by seq */
	ai_req_t *d_head, *d_tail;      /* finished, waiting for delivery */
	uint64_t next_seq;
	int64_t paused_until;           /* monotonic ms; no call starts before */
	breaker_t breaker;
	bool closing;
	ai_stats_t st;
	metrics_family_t *m_call_seconds; /* per model: the provider's speed, retries and failures included */
	metrics_family_t *m_first_token;  /* per model: a streamed call's start to its first content */
};

static cJSON *ai_answer_object(const char *body, size_t len, ai_parsed_t *out, char *err, size_t errlen);
static char *ai_answer_text(const char *body, size_t len, ai_parsed_t *out, char *err, size_t errlen);
static ai_req_t *ai_req_new(ai_t *ai, long company, const char *conversation, ai_done_fn done, void *arg);
static void ai_req_link(ai_t *ai, ai_req_t *r);
static int64_t ai_now_ms(void);
static char *ai_strdup(const char *s);
static bool ai_copy_config(ai_t *ai, const ai_config_t *cfg, char *err, size_t errlen);
static void ai_free_config_strings(ai_t *ai);
static char *ai_read_prompt(const char *dir, const char *name);
static char *ai_build_body(const char *model, const char *system, const char *user, bool stream, size_t *len);
static char *ai_build_body_parts(const char *model, const char *system, cJSON *content, int max_tokens, bool stream,
				 size_t *len);
static void ai_on_data(const char *data, size_t len, long status, const char *content_type, void *arg);
static cJSON *ai_content_object(const char *content, char *err, size_t errlen);
static bool ai_read_hint(cJSON *obj, ai_parsed_t *out, char *err, size_t errlen);
static bool ai_read_bot(cJSON *obj, ai_parsed_t *out, char *err, size_t errlen);
static void ai_queue_insert(ai_t *ai, ai_req_t *r);
static void ai_queue_remove(ai_t *ai, ai_req_t *r);
static void ai_enqueue(ai_t *ai, ai_req_t *r, int64_t now);
static void ai_pump(ai_t *ai);
static bool ai_start_call(ai_t *ai, ai_req_t *r, int64_t now);
static void ai_call_done(const hc_result_t *res, void *arg);
static void ai_pause(ai_t *ai, int64_t now, int64_t ms);
static void ai_finish_ai(ai_t *ai, ai_req_t *r, const ai_parsed_t *p);
static void ai_finish_fallback(ai_t *ai, ai_req_t *r, ai_fallback_t why, const char *reason);
static void ai_finish(ai_t *ai, ai_req_t *r);
static void ai_deliver_cb(evutil_socket_t fd, short what, void *arg);
static void ai_deliver_one(ai_t *ai, ai_req_t *r);
static void ai_req_free(ai_t *ai, ai_req_t *r);
static void ai_release_call(ai_t *ai, ai_req_t *r);
static void ai_record(ai_t *ai, ai_req_t *r, int64_t now, breaker_outcome_t o);
static void ai_backoff_cb(evutil_socket_t fd, short what, void *arg);
static void ai_pause_cb(evutil_socket_t fd, short what, void *arg);
static int ai_count_words(const char *s);
static void ai_copy_utf8(char *dst, size_t cap, const char *src);
static bool ai_intent_nearest(const char *s, rules_intent_t *out);
static void ai_cut_words(char *dst, size_t cap, const char *src);
static void ai_emb_end(ai_emb_t *e, const float *vec, int dim, int tokens, double cost, const char *error);
static void ai_emb_refuse(ai_emb_t *e);
static void ai_emb_call_done(const hc_result_t *res, void *arg);

/* ------------------------------------------------------------------ public */

void ai_config_from_cfg(ai_config_t *out, const cfg_t *c)
{
	memset(out, 0, sizeof(*out));
	out->base_url = c->ai.base_url;
	out->api_key = c->ai.api_key;
	out->model_small = c->ai.model;
	out->model_large = c->ai.model_large;
	out->large_min_chars = c->ai.large_min_chars;
	out->large_min_words = c->ai.large_min_words;
	out->large_when_critical = c->ai.large_when_critical;
	out->timeout_ms = c->ai.timeout_ms;
	out->max_retries = c->ai.max_retries;
	out->retry_base_ms = c->ai.retry_base_ms;
	out->deadline_ms = c->ai.deadline_ms;
	out->max_in_flight = c->ai.max_in_flight;
	out->history_messages = c->ai.history_messages;
	out->history_max_tokens = c->ai.history_max_tokens;
	out->price_small_in = c->ai.price_small_in;
	out->price_small_out = c->ai.price_small_out;
	out->price_large_in = c->ai.price_large_in;
	out->price_large_out = c->ai.price_large_out;
	out->breaker.window_ms = (int64_t)c->ai.breaker_window_s * 1000;
	out->breaker.min_calls = c->ai.breaker_min_calls;
	out->breaker.error_pct = c->ai.breaker_error_pct;
	out->breaker.open_ms = (int64_t)c->ai.breaker_open_s * 1000;
	out->prompts_dir = c->ai.prompts_dir;
	out->stream = c->ai.stream;
	out->transcription_model = c->ai.transcription_model;
	out->price_transcription_minute = c->ai.price_transcription_minute;
	out->embeddings_model = c->emb.model;
	out->embeddings_timeout_ms = c->emb.timeout_ms;
	out->price_embeddings = c->emb.price;
}

ai_t *ai_new(struct event_base *base, const ai_config_t *cfg, char *err, size_t errlen)
{
	ai_t *ai = xcalloc(1, sizeof(*ai));
	ai->base = base;
	if (!ai_copy_config(ai, cfg, err, errlen)) {
		free(ai);
		return NULL;
	}
	breaker_init(&ai->breaker, &cfg->breaker);
	ai->m_call_seconds = metrics_family("atende_worker_ai_call_seconds", METRICS_HISTOGRAM,
					    "Duration of AI HTTP calls by model, whatever their outcome.",
					    metrics_latency_buckets, metrics_latency_nbuckets);
	ai->m_first_token = metrics_family("atende_worker_ai_first_token_seconds", METRICS_HISTOGRAM,
					   "Streamed AI calls (ai.stream): call start to the first content of the answer, by model.",
					   metrics_latency_buckets, metrics_latency_nbuckets);

	const char *dir = cfg->prompts_dir && *cfg->prompts_dir ? cfg->prompts_dir : "deploy/prompts";
	ai->prompt_default = ai_read_prompt(dir, "default");
	if (!ai->prompt_default) {
		log_warn("ai: no %s/default.txt, using the built-in prompt", dir);
		ai->prompt_default = ai_strdup(ai_builtin_prompt);
	}
	for (int d = 0; d < CFG_MAX_DOMAINS; d++)
		ai->prompts[d] = ai_read_prompt(dir, cfg_domains[d]);
	ai->bot_prompt_default = ai_read_prompt(dir, "bot");
	if (!ai->bot_prompt_default)
		ai->bot_prompt_default = ai_strdup(ai_builtin_bot_prompt);
	for (int d = 0; d < CFG_MAX_DOMAINS; d++) {
		char name[64];
		snprintf(name, sizeof(name), "bot-%s", cfg_domains[d]);
		ai->bot_prompts[d] = ai_read_prompt(dir, name);
	}

	char why[256];
	ai->hc = hc_new(base, "atende-worker", why, sizeof(why));
	ai->pause_ev = evtimer_new(base, ai_pause_cb, ai);
	ai->deliver_ev = event_new(base, -1, 0, ai_deliver_cb, ai);
	if (!ai->hc || !ai->pause_ev || !ai->deliver_ev) {
		snprintf(err, errlen, "ai: %s", ai->hc ? "cannot create events" : why);
		ai_free(ai);
		return NULL;
	}
	return ai;
}

bool ai_reconfigure(ai_t *ai, const ai_config_t *cfg, char *err, size_t errlen)
{
	ai_t scratch = {0};
	if (!ai_copy_config(&scratch, cfg, err, errlen))
		return false;
	breaker_params_t keep_breaker = ai->cfg.breaker;
	ai_free_config_strings(ai);
	ai->cfg = scratch.cfg;
	ai->cfg.breaker = keep_breaker;
	ai->url = scratch.url;
	ai->url_transcribe = scratch.url_transcribe;
	ai->url_embeddings = scratch.url_embeddings;
	ai->auth = scratch.auth;
	ai_pump(ai); /* a larger max_in_flight may start waiting requests */
	return true;
}

bool ai_request(ai_t *ai, const ai_request_t *req, ai_done_fn done, void *arg)
{
	if (ai->closing || !req || req->n_texts < 1 || !req->texts)
		return false;
	for (int i = 0; i < req->n_texts; i++)
		if (!req->texts[i])
			return false;
	ai_req_t *r = ai_req_new(ai, req->company, req->conversation, done, arg);
	r->critical = req->critical;
	r->bot = req->bot;
	r->stream = ai->cfg.stream && !req->bot;
	r->partial = req->bot ? NULL : req->partial;
	r->domain = req->domain ? ai_strdup(req->domain) : NULL;
	r->texts = xcalloc((size_t)req->n_texts, sizeof(char *));
	r->n_texts = req->n_texts;
	size_t total = 1;
	for (int i = 0; i < req->n_texts; i++) {
		if (r->texts)
			r->texts[i] = ai_strdup(req->texts[i]);
		total += strlen(req->texts[i]) + 1;
	}
	free(r->joined);
	r->joined = xmalloc(total);
	if (r->joined) {
		char *p = r->joined;
		for (int i = 0; i < req->n_texts; i++) {
			size_t n = strlen(req->texts[i]);
			if (i)
				*p++ = '\n';
			memcpy(p, req->texts[i], n);
			p += n;
		}
		*p = 0;
	}
	r->tier = ai_use_large(&ai->cfg, req->texts, req->n_texts, req->critical) ? 1 : 0;
	r->model = ai_strdup(r->tier ? ai->cfg.model_large : ai->cfg.model_small);
	r->price_in = r->tier ? ai->cfg.price_large_in : ai->cfg.price_small_in;
	r->price_out = r->tier ? ai->cfg.price_large_out : ai->cfg.price_small_out;
	char *user = ai_build_user_content(req->history, req->n_history, ai->cfg.history_messages,
					   ai->cfg.history_max_tokens, req->texts, req->n_texts);
	if (user && r->model)
		r->body = ai_build_body(r->model, req->bot ? ai_bot_prompt(ai, req->domain) : ai_prompt(ai, req->domain),
					user, r->stream, &r->body_len);
	free(user);
	bool complete = r->conversation && r->texts && r->joined && r->model && r->body;
	for (int i = 0; complete && i < r->n_texts; i++)
		complete = r->texts[i] != NULL;
	if (!complete) {
		r->state = REQ_DONE;
		ai_req_free(ai, r);
		return false;
	}
	ai_req_link(ai, r);
	ai_enqueue(ai, r, r->t_start);
	ai_pump(ai);
	return true;
}

bool ai_transcribe(ai_t *ai, long company, const char *conversation, const void *bytes, size_t len, const char *mime,
		   int duration_ms, ai_done_fn done, void *arg)
{
	if (ai->closing || !bytes || len == 0)
		return false;
	ai_req_t *r = ai_req_new(ai, company, conversation, done, arg);
	ai_req_link(ai, r);
	char boundary[64];
	int salt = 0;
	do /* a boundary the audio does not hold */
		snprintf(boundary, sizeof(boundary), "atende-voice-note-%lld-%d", (long long)r->t_start, salt++);
	while (memmem(bytes, len, boundary, strlen(boundary)));
	r->transcribe = true;
	r->duration_ms = duration_ms;
	r->model = ai_strdup(ai->cfg.transcription_model);
	r->content_type = xmalloc(128);
	snprintf(r->content_type, 128, "Content-Type: multipart/form-data; boundary=%s", boundary);
	const char *ext = strstr(mime ? mime : "", "ogg") ? "ogg" : strstr(mime ? mime : "", "mpeg") ? "mp3"
			: strstr(mime ? mime : "", "mp4") ? "m4a" : strstr(mime ? mime : "", "wav") ? "wav" : "bin";
	char head[1024], tail[512];
	int hl = snprintf(head, sizeof(head),
			  "--%s\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n%s\r\n"
			  "--%s\r\nContent-Disposition: form-data; name=\"language\"\r\n\r\npt\r\n"
			  "--%s\r\nContent-Disposition: form-data; name=\"response_format\"\r\n\r\njson\r\n"
			  "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"voice.%s\"\r\n"
			  "Content-Type: %s\r\n\r\n",
			  boundary, r->model, boundary, boundary, boundary, ext, mime ? mime : "application/octet-stream");
	int tl = snprintf(tail, sizeof(tail), "\r\n--%s--\r\n", boundary);
	r->body_len = (size_t)hl + len + (size_t)tl;
	r->body = xmalloc(r->body_len);
	memcpy(r->body, head, (size_t)hl);
	memcpy(r->body + hl, bytes, len);
	memcpy(r->body + hl + len, tail, (size_t)tl);
	ai_enqueue(ai, r, r->t_start);
	ai_pump(ai);
	return true;
}

bool ai_describe_image(ai_t *ai, long company, const char *conversation, const void *bytes, size_t len,
		       const char *mime, const char *caption, ai_done_fn done, void *arg)
{
	if (ai->closing || !bytes || len == 0)
		return false;
	ai_req_t *r = ai_req_new(ai, company, conversation, done, arg);
	ai_req_link(ai, r);
	r->vision = true;
	r->tier = 0;
	r->model = ai_strdup(ai->cfg.model_small);
	r->price_in = ai->cfg.price_small_in;
	r->price_out = ai->cfg.price_small_out;
	char *b64 = mstore_b64_encode(bytes, len), *url = NULL, *text = NULL;
	if (asprintf(&url, "data:%s;base64,%s", mime ? mime : "image/jpeg", b64) < 0)
		url = NULL;
	free(b64);
	if (caption && *caption) {
		if (asprintf(&text, "Legenda do cliente: %s", caption) < 0)
			text = NULL;
	}
	cJSON *parts = cJSON_CreateArray();
	cJSON *tp = cJSON_CreateObject(), *ip = cJSON_CreateObject();
	cJSON_AddItemToArray(parts, tp);
	cJSON_AddItemToArray(parts, ip);
	cJSON_AddStringToObject(tp, "type", "text");
	cJSON_AddStringToObject(tp, "text", text ? text : "O cliente enviou esta imagem sem legenda.");
	cJSON_AddStringToObject(ip, "type", "image_url");
	cJSON_AddStringToObject(cJSON_AddObjectToObject(ip, "image_url"), "url", url ? url : "");
	r->body = ai_build_body_parts(r->model, AI_VISION_PROMPT, parts, AI_VISION_MAX_TOKENS, false, &r->body_len);
	free(url);
	free(text);
	ai_enqueue(ai, r, r->t_start);
	ai_pump(ai);
	return true;
}

/* A new request, not yet linked or counted (ai_req_link); its body is the caller's to build. */
static ai_req_t *ai_req_new(ai_t *ai, long company, const char *conversation, ai_done_fn done, void *arg)
{
	ai_req_t *r = xcalloc(1, sizeof(*r));
	int64_t now = ai_now_ms();
	r->ai = ai;
	r->done = done;
	r->arg = arg;
	r->seq = ai->next_seq++;
	r->t_start = now;
	r->deadline = now + ai->cfg.deadline_ms;
	r->company = company;
	r->conversation = ai_strdup(conversation ? conversation : "");
	r->joined = ai_strdup(""); /* a fallback's rules see no words (a media request's) */
	return r;
}

/* Links a complete request into ai->all and counts it (ai_req_free unlinks). */
static void ai_req_link(ai_t *ai, ai_req_t *r)
{
	r->next = ai->all;
	if (ai->all)
		ai->all->prev = r;
	ai->all = r;
	ai->st.requests++;
	ai->st.pending++;
}

bool ai_embed(ai_t *ai, const char *text, ai_embed_fn done, void *arg)
{
	if (ai->closing || !text || !text[0] || !ai->cfg.embeddings_model || !ai->cfg.embeddings_model[0])
		return false;
	ai_emb_t *e = xcalloc(1, sizeof(*e));
	e->ai = ai;
	e->done = done;
	e->arg = arg;
	e->next = ai->embeds;
	if (ai->embeds)
		ai->embeds->prev = e;
	ai->embeds = e;
	if (ai->paused_until > ai_now_ms()) { /* a 429 pause holds for the whole provider */
		ai_emb_refuse(e);
		return true;
	}
	cJSON *b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "model", ai->cfg.embeddings_model);
	cJSON_AddStringToObject(b, "input", text);
	char *body = cJSON_PrintUnformatted(b);
	cJSON_Delete(b);
	const char *headers[] = {"Content-Type: application/json", ai->auth};
	char err[256];
	e->call = hc_post(ai->hc, ai->url_embeddings, headers, ai->auth ? 2 : 1, body, strlen(body),
			  ai->cfg.embeddings_timeout_ms, AI_MAX_RESPONSE_BYTES, ai_emb_call_done, e, err, sizeof(err));
	free(body);
	if (!e->call) {
		log_debug("ai: embeddings call not started: %s", err);
		ai_emb_refuse(e);
		return true;
	}
	ai->st.embed_in_flight++;
	return true;
}

double ai_transcription_cost_usd(int duration_ms, int64_t price_minute)
{
	/* a started second is paid, as providers round */
	return (double)((duration_ms + 999) / 1000) / 60.0 * (double)price_minute / 1e6;
}

void ai_stats(const ai_t *ai, ai_stats_t *out)
{
	*out = ai->st;
	out->models[0] = ai->cfg.model_small;
	out->models[1] = ai->cfg.model_large;
	out->breaker = breaker_state(&ai->breaker);
	out->breaker_opens = ai->breaker.opens;
	int64_t left = ai->paused_until - ai_now_ms();
	out->paused_ms = left > 0 ? left : 0;
}

const char *ai_class_name(ai_class_t c)
{
	static const char *const names[AI_CLASS_N] = {"2xx", "429", "4xx", "5xx", "timeout", "garbage", "conn"};
	return c >= 0 && c < AI_CLASS_N ? names[c] : "unknown";
}

const char *ai_prompt(const ai_t *ai, const char *domain)
{
	int d = domain ? cfg_domain_index(domain) : -1;
	return d >= 0 && ai->prompts[d] ? ai->prompts[d] : ai->prompt_default;
}

const char *ai_bot_prompt(const ai_t *ai, const char *domain)
{
	int d = domain ? cfg_domain_index(domain) : -1;
	return d >= 0 && ai->bot_prompts[d] ? ai->bot_prompts[d] : ai->bot_prompt_default;
}

void ai_free(ai_t *ai)
{
	if (!ai)
		return;
	ai->closing = true;
	hc_free(ai->hc); /* drops every call without callbacks; the requests are cancelled below */
	ai->hc = NULL;
	while (ai->embeds)
		ai_emb_end(ai->embeds, NULL, 0, 0, 0, "cancelled");
	/* finished results first, as they are; then everything else is cancelled */
	while (ai->d_head) {
		ai_req_t *r = ai->d_head;
		ai->d_head = r->lnext;
		ai_deliver_one(ai, r);
	}
	ai->d_tail = NULL;
	while (ai->all) {
		ai_req_t *r = ai->all;
		if (r->state == REQ_QUEUED)
			ai_queue_remove(ai, r);
		ai_release_call(ai, r);
		r->fallback = FB_CANCELLED;
		r->latency_ms = (int)(ai_now_ms() - r->t_start);
		snprintf(r->error, sizeof(r->error), "cancelled");
		r->state = REQ_DONE;
		ai_deliver_one(ai, r);
	}
	if (ai->pause_ev)
		event_free(ai->pause_ev);
	if (ai->deliver_ev)
		event_free(ai->deliver_ev);
	for (int d = 0; d < CFG_MAX_DOMAINS; d++)
		free(ai->prompts[d]), free(ai->bot_prompts[d]);
	free(ai->prompt_default);
	free(ai->bot_prompt_default);
	ai_free_config_strings(ai);
	free(ai);
}

/* ------------------------------------------------------------------ pure pieces */

bool ai_use_large(const ai_config_t *cfg, const char *const *texts, int n_texts, bool critical)
{
	if (!cfg->model_large || !*cfg->model_large)
		return false;
	if (critical && cfg->large_when_critical)
		return true;
	size_t chars = 0;
	int words = 0;
	for (int i = 0; i < n_texts; i++) {
		chars += text_utf8_length(texts[i]);
		words += ai_count_words(texts[i]);
	}
	if (cfg->large_min_chars > 0 && chars >= (size_t)cfg->large_min_chars)
		return true;
	return cfg->large_min_words > 0 && words >= cfg->large_min_words;
}

/* A completion's usage (into out, zeroed first) and its choices[0].message.content
 * (malloc'd), or NULL with err. */
static char *ai_answer_text(const char *body, size_t len, ai_parsed_t *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	cJSON *root = cJSON_ParseWithLength(body, len);
	if (!root) {
		snprintf(err, errlen, "response is not JSON");
		return NULL;
	}
	const cJSON *usage = cJSON_GetObjectItem(root, "usage");
	const cJSON *pt = cJSON_GetObjectItem(usage, "prompt_tokens");
	const cJSON *ct = cJSON_GetObjectItem(usage, "completion_tokens");
	if (cJSON_IsNumber(pt) && pt->valuedouble >= 0 && pt->valuedouble < 1e9)
		out->tokens_in = pt->valueint;
	if (cJSON_IsNumber(ct) && ct->valuedouble >= 0 && ct->valuedouble < 1e9)
		out->tokens_out = ct->valueint;
	const cJSON *choices = cJSON_GetObjectItem(root, "choices");
	const cJSON *content = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(choices, 0), "message"), "content");
	char *text = cJSON_IsString(content) ? xstrdup(content->valuestring) : NULL;
	if (!text)
		snprintf(err, errlen, "no choices[0].message.content");
	cJSON_Delete(root);
	return text;
}

/* What analyses and the bot ask for: the usage (into out) and the JSON object the model wrote
 * in choices[0].message.content. Returns that object (the caller deletes it), or NULL with why
 * in err. */
static cJSON *ai_answer_object(const char *body, size_t len, ai_parsed_t *out, char *err, size_t errlen)
{
	char *content = ai_answer_text(body, len, out, err, errlen);
	cJSON *obj = content ? ai_content_object(content, err, errlen) : NULL;
	free(content);
	return obj;
}

/* The JSON object the model wrote in content (it may sit inside ``` fences or prose: the
 * outermost braces are taken); NULL with why in err. */
static cJSON *ai_content_object(const char *content, char *err, size_t errlen)
{
	const char *open = strchr(content, '{'), *close = strrchr(content, '}');
	cJSON *obj = NULL;
	if (!open || !close || close < open || !(obj = cJSON_ParseWithLength(open, (size_t)(close - open + 1))) ||
	    !cJSON_IsObject(obj)) {
		snprintf(err, errlen, "content is not a JSON object");
		cJSON_Delete(obj);
		return NULL;
	}
	return obj;
}

bool ai_parse_completion(const char *body, size_t len, ai_parsed_t *out, char *err, size_t errlen)
{
	cJSON *obj = ai_answer_object(body, len, out, err, errlen);
	return obj && ai_read_hint(obj, out, err, errlen);
}

bool ai_parse_streamed(const ai_sse_t *s, bool bot, ai_parsed_t *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	out->tokens_in = s->tokens_in;
	out->tokens_out = s->tokens_out;
	cJSON *obj = ai_content_object(s->content ? s->content : "", err, errlen);
	if (obj && !s->done)
		log_debug("ai: a stream ended without [DONE], its content complete");
	return obj && (bot ? ai_read_bot(obj, out, err, errlen) : ai_read_hint(obj, out, err, errlen));
}

/* The coaching answer in obj (deleted here) into out; false (err) without a usable hint. */
static bool ai_read_hint(cJSON *obj, ai_parsed_t *out, char *err, size_t errlen)
{
	bool ok = false;
	/* the hint first: without one the answer is unusable whatever else it says */
	const cJSON *hint = cJSON_GetObjectItem(obj, "hint");
	const char *h = cJSON_IsString(hint) ? hint->valuestring : NULL;
	while (h && isspace((unsigned char)*h))
		h++;
	if (!h || !*h) {
		snprintf(err, errlen, "bad or missing hint");
		goto out;
	}
	if (strlen(h) >= sizeof(out->hint)) {
		ai_cut_words(out->hint, sizeof(out->hint), h);
		out->repaired |= AI_REPAIRED_HINT_CUT;
	} else {
		memcpy(out->hint, h, strlen(h) + 1);
	}
	size_t hl = strlen(out->hint);
	while (hl && isspace((unsigned char)out->hint[hl - 1]))
		out->hint[--hl] = 0;

	const cJSON *intent = cJSON_GetObjectItem(obj, "intent");
	if (!cJSON_IsString(intent) || !ai_intent_nearest(intent->valuestring, &out->intent)) {
		out->intent = INTENT_OTHER;
		out->repaired |= AI_REPAIRED_INTENT;
	} else {
		rules_intent_t exact;
		if (!rules_intent_parse(intent->valuestring, &exact) || exact != out->intent)
			out->repaired |= AI_REPAIRED_INTENT;
	}
	const cJSON *crit = cJSON_GetObjectItem(obj, "critical");
	if (cJSON_IsBool(crit)) {
		out->critical = cJSON_IsTrue(crit);
	} else {
		out->repaired |= AI_REPAIRED_CRITICAL;
		if (cJSON_IsString(crit))
			out->critical = strcasecmp(crit->valuestring, "true") == 0 ||
					strcasecmp(crit->valuestring, "sim") == 0 || strcasecmp(crit->valuestring, "yes") == 0;
		else if (cJSON_IsNumber(crit))
			out->critical = crit->valuedouble != 0;
	}
	ok = true;
out:
	cJSON_Delete(obj);
	return ok;
}

bool ai_parse_bot_answer(const char *body, size_t len, ai_parsed_t *out, char *err, size_t errlen)
{
	cJSON *obj = ai_answer_object(body, len, out, err, errlen);
	return obj && ai_read_bot(obj, out, err, errlen);
}

/* The bot's answer in obj (deleted here) into out. */
static bool ai_read_bot(cJSON *obj, ai_parsed_t *out, char *err, size_t errlen)
{
	bool ok = false;
	const cJSON *handoff = cJSON_GetObjectItem(obj, "handoff"), *answer = cJSON_GetObjectItem(obj, "answer");
	out->handoff = cJSON_IsTrue(handoff) || (cJSON_IsString(handoff) && strcasecmp(handoff->valuestring, "true") == 0);
	const char *a = cJSON_IsString(answer) ? answer->valuestring : NULL;
	while (a && isspace((unsigned char)*a))
		a++;
	if (!out->handoff && (!a || !*a)) {
		snprintf(err, errlen, "no answer and no handoff");
		goto out;
	}
	ai_copy_utf8(out->hint, sizeof(out->hint), a ? a : "");
	size_t hl = strlen(out->hint);
	while (hl && isspace((unsigned char)out->hint[hl - 1]))
		out->hint[--hl] = 0;
	out->intent = INTENT_OTHER;
	ok = true;
out:
	cJSON_Delete(obj);
	return ok;
}

char *ai_build_user_content(const ai_turn_t *history, int n_history, int max_messages, int max_tokens,
			    const char *const *texts, int n_texts)
{
	/* keep the newest history entries that fit both bounds */
	int first = n_history;
	long tokens = 0;
	while (history && first > 0 && n_history - first < max_messages) {
		const char *t = history[first - 1].text ? history[first - 1].text : "";
		long cost = (long)(strlen(t) + 12 + 3) / 4; /* + the "Atendente: " label */
		if (tokens + cost > max_tokens)
			break;
		tokens += cost;
		first--;
	}
	size_t cap = 128;
	for (int i = first; i < n_history; i++)
		cap += strlen(history[i].text ? history[i].text : "") + 16;
	for (int i = 0; i < n_texts; i++)
		cap += strlen(texts[i]) + 2;
	char *out = xmalloc(cap), *p = out;
	if (first < n_history) {
		p += sprintf(p, "Histórico recente da conversa (mais antigo primeiro):\n");
		for (int i = first; i < n_history; i++)
			p += sprintf(p, "%s: %s\n", history[i].role == AI_ROLE_AGENT ? "Atendente" : "Cliente",
				     history[i].text ? history[i].text : "");
		*p++ = '\n';
	}
	p += sprintf(p, "%s\n", AI_NEW_MARKER);
	for (int i = 0; i < n_texts; i++)
		p += sprintf(p, "%s%s", i ? "\n" : "", texts[i]);
	*p = 0;
	return out;
}

double ai_cost_usd(int tokens_in, int tokens_out, int64_t price_in, int64_t price_out)
{
	/* micro-USD per 1M tokens -> USD: / 1e6 (micro) / 1e6 (per million) */
	return ((double)tokens_in * (double)price_in + (double)tokens_out * (double)price_out) / 1e12;
}

/* ------------------------------------------------------------------ streamed answers */

void ai_sse_init(ai_sse_t *s)
{
	memset(s, 0, sizeof(*s));
}

void ai_sse_free(ai_sse_t *s)
{
	free(s->line);
	free(s->content);
	memset(s, 0, sizeof(*s));
}

static void ai_grow(char **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return;
	size_t c = *cap ? *cap : 256;
	while (c < need)
		c *= 2;
	*buf = xrealloc(*buf, c);
	*cap = c;
}

/* One whole line of the stream: "data: {json}" adds its delta and usage, "data: [DONE]"
 * ends it; comments (":"), "event:", "id:" and blank lines carry nothing for us. */
static size_t ai_sse_line(ai_sse_t *s, const char *line, size_t n)
{
	if (n < 5 || memcmp(line, "data:", 5) != 0)
		return 0;
	line += 5, n -= 5;
	if (n && *line == ' ')
		line++, n--;
	if (n == 6 && memcmp(line, "[DONE]", 6) == 0) {
		s->done = true;
		return 0;
	}
	cJSON *o = cJSON_ParseWithLength(line, n);
	if (!o) {
		s->bad++;
		return 0;
	}
	size_t added = 0;
	const cJSON *usage = cJSON_GetObjectItem(o, "usage");
	const cJSON *pt = cJSON_GetObjectItem(usage, "prompt_tokens"), *ct = cJSON_GetObjectItem(usage, "completion_tokens");
	if (cJSON_IsNumber(pt) && pt->valuedouble >= 0 && pt->valuedouble < 1e9)
		s->tokens_in = pt->valueint, s->usage = true;
	if (cJSON_IsNumber(ct) && ct->valuedouble >= 0 && ct->valuedouble < 1e9)
		s->tokens_out = ct->valueint, s->usage = true;
	const cJSON *delta = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0), "delta");
	const cJSON *content = cJSON_GetObjectItem(delta, "content");
	if (cJSON_IsString(content) && content->valuestring[0]) {
		added = strlen(content->valuestring);
		ai_grow(&s->content, &s->content_cap, s->content_len + added + 1);
		memcpy(s->content + s->content_len, content->valuestring, added + 1);
		s->content_len += added;
	}
	cJSON_Delete(o);
	return added;
}

size_t ai_sse_feed(ai_sse_t *s, const char *data, size_t len)
{
	size_t added = 0;
	while (len) {
		const char *nl = memchr(data, '\n', len);
		size_t take = nl ? (size_t)(nl - data) : len;
		ai_grow(&s->line, &s->line_cap, s->line_len + take + 1);
		memcpy(s->line + s->line_len, data, take);
		s->line_len += take;
		data += take, len -= take;
		if (!nl)
			break;
		data++, len--; /* the \n */
		size_t n = s->line_len;
		if (n && s->line[n - 1] == '\r')
			n--;
		added += ai_sse_line(s, s->line, n);
		s->line_len = 0;
	}
	return added;
}

/* Writes code point cp as UTF-8 at out + *o when it fits in cap - 1; false when it does not. */
static bool ai_put_utf8(char *out, size_t cap, size_t *o, unsigned long cp)
{
	char b[4];
	size_t n;
	if (cp < 0x80)
		b[0] = (char)cp, n = 1;
	else if (cp < 0x800)
		b[0] = (char)(0xC0 | cp >> 6), b[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
	else if (cp < 0x10000)
		b[0] = (char)(0xE0 | cp >> 12), b[1] = (char)(0x80 | ((cp >> 6) & 0x3F)), b[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
	else
		b[0] = (char)(0xF0 | cp >> 18), b[1] = (char)(0x80 | ((cp >> 12) & 0x3F)),
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), b[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
	if (*o + n >= cap)
		return false;
	memcpy(out + *o, b, n);
	*o += n;
	return true;
}

/* The value of 4 hex digits at p (-1 when they are not). */
static long ai_hex4(const char *p)
{
	long v = 0;
	for (int i = 0; i < 4; i++) {
		int c = (unsigned char)p[i];
		int d = isdigit(c) ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

bool ai_partial_string(const char *json, size_t len, const char *field, char *out, size_t cap, bool *complete)
{
	size_t fl = strlen(field), i = 0, o = 0;
	const char *end = json + len, *p = NULL;
	if (complete)
		*complete = false;
	if (cap)
		out[0] = 0;
	/* the member's name: "field" not escaped (not inside another string), then : and " */
	for (const char *q = json; !p && q + fl + 2 <= end; q++) {
		q = memchr(q, '"', (size_t)(end - q));
		if (!q || q + fl + 2 > end)
			break;
		if (q[fl + 1] != '"' || memcmp(q + 1, field, fl) != 0 || (q > json && q[-1] == '\\'))
			continue;
		const char *v = q + fl + 2;
		while (v < end && isspace((unsigned char)*v))
			v++;
		if (v >= end || *v != ':')
			continue;
		v++;
		while (v < end && isspace((unsigned char)*v))
			v++;
		if (v < end && *v == '"')
			p = v + 1;
	}
	if (!p || !cap)
		return p != NULL;
	for (i = 0; p + i < end;) {
		unsigned char c = (unsigned char)p[i];
		if (c == '"') {
			if (complete)
				*complete = true;
			break;
		}
		if (c != '\\') {
			if (o + 1 >= cap)
				break;
			out[o++] = (char)c;
			i++;
			continue;
		}
		if (p + i + 1 >= end)
			break; /* a backslash cut off */
		char e = p[i + 1];
		unsigned long cp;
		size_t used = 2;
		switch (e) {
		case 'n': cp = '\n'; break;
		case 't': cp = '\t'; break;
		case 'r': cp = '\r'; break;
		case 'b': cp = '\b'; break;
		case 'f': cp = '\f'; break;
		case 'u': {
			if (p + i + 6 > end)
				goto cut;
			long u = ai_hex4(p + i + 2);
			if (u < 0)
				goto cut;
			cp = (unsigned long)u;
			used = 6;
			if (u >= 0xD800 && u <= 0xDBFF) { /* a surrogate pair: its second half must come */
				if (p + i + 12 > end)
					goto cut;
				long lo = p[i + 6] == '\\' && p[i + 7] == 'u' ? ai_hex4(p + i + 8) : -1;
				if (lo < 0xDC00 || lo > 0xDFFF)
					cp = 0xFFFD;
				else
					cp = 0x10000 + (((unsigned long)u - 0xD800) << 10) + ((unsigned long)lo - 0xDC00), used = 12;
			}
			break;
		}
		default: cp = (unsigned char)e; break; /* \" \\ \/ and anything else as itself */
		}
		if (!ai_put_utf8(out, cap, &o, cp))
			break;
		i += used;
	}
cut:
	/* a UTF-8 sequence cut off at the end (by the stream or by cap) is left out */
	{
		size_t k = o, back = 0;
		while (k > 0 && back < 4 && ((unsigned char)out[k - 1] & 0xC0) == 0x80)
			k--, back++;
		if (k > 0) {
			unsigned char lead = (unsigned char)out[k - 1];
			size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
			if (need > 1 && back + 1 < need)
				o = k - 1;
		}
	}
	out[o] = 0;
	return true;
}

/* ------------------------------------------------------------------ queue and calls */

/* Appends new requests, and puts retries back in arrival order, so no request overtakes an
 * older one that is waiting. A request that cannot start before its deadline falls back now. */
static void ai_enqueue(ai_t *ai, ai_req_t *r, int64_t now)
{
	if (ai->paused_until > now && ai->paused_until >= r->deadline) {
		ai_finish_fallback(ai, r, FB_DEADLINE, "paused by 429 past the deadline");
		return;
	}
	r->state = REQ_QUEUED;
	ai_queue_insert(ai, r);
}

static void ai_queue_insert(ai_t *ai, ai_req_t *r)
{
	ai_req_t *at = ai->q_tail;
	while (at && at->seq > r->seq)
		at = at->lprev;
	/* insert after at (or at the head when at is NULL) */
	r->lprev = at;
	r->lnext = at ? at->lnext : ai->q_head;
	if (r->lnext)
		r->lnext->lprev = r;
	else
		ai->q_tail = r;
	if (at)
		at->lnext = r;
	else
		ai->q_head = r;
	ai->st.queued++;
}

static void ai_queue_remove(ai_t *ai, ai_req_t *r)
{
	if (r->lprev)
		r->lprev->lnext = r->lnext;
	else
		ai->q_head = r->lnext;
	if (r->lnext)
		r->lnext->lprev = r->lprev;
	else
		ai->q_tail = r->lprev;
	r->lprev = r->lnext = NULL;
	ai->st.queued--;
}

/* Starts waiting requests while there is room, the provider is not paused and the breaker
 * lets calls through; refused or expired ones fall back. */
static void ai_pump(ai_t *ai)
{
	if (ai->closing)
		return;
	int64_t now = ai_now_ms();
	while (ai->q_head && ai->st.in_flight < ai->cfg.max_in_flight) {
		if (now < ai->paused_until) {
			struct timeval tv = {(ai->paused_until - now) / 1000, ((ai->paused_until - now) % 1000) * 1000};
			evtimer_add(ai->pause_ev, &tv);
			return;
		}
		ai_req_t *r = ai->q_head;
		ai_queue_remove(ai, r);
		if (now >= r->deadline) {
			ai_finish_fallback(ai, r, FB_DEADLINE, "deadline");
			continue;
		}
		breaker_state_t before = breaker_state(&ai->breaker);
		if (!breaker_allow(&ai->breaker, now, &r->probe)) {
			ai_finish_fallback(ai, r, FB_BREAKER, "breaker open");
			continue;
		}
		if (before != breaker_state(&ai->breaker))
			log_info("ai: circuit breaker half-open, probing %s", ai->url);
		if (!ai_start_call(ai, r, now)) {
			breaker_record(&ai->breaker, now, BREAKER_NEUTRAL, r->probe);
			r->probe = false;
			ai_finish_fallback(ai, r, FB_FAILED, "cannot start the call");
		}
	}
}

static bool ai_start_call(ai_t *ai, ai_req_t *r, int64_t now)
{
	int64_t left = r->deadline - now;
	long timeout = ai->cfg.timeout_ms < left ? ai->cfg.timeout_ms : (long)left;
	const char *headers[] = {r->transcribe ? r->content_type : "Content-Type: application/json", ai->auth};
	char err[256];
	r->call = hc_post(ai->hc, r->transcribe ? ai->url_transcribe : ai->url, headers, ai->auth ? 2 : 1, r->body,
			  r->body_len, timeout, AI_MAX_RESPONSE_BYTES, ai_call_done, r, err, sizeof(err));
	if (!r->call) {
		log_debug("ai: call for company %ld conversation %s not started: %s", r->company, r->conversation, err);
		return false;
	}
	r->state = REQ_RUNNING;
	r->call_t0 = now;
	ai_sse_free(&r->sse);
	ai_sse_init(&r->sse);
	r->sse_on = r->first_token = false;
	r->partial_sent = 0;
	if (r->stream)
		hc_on_data(r->call, ai_on_data, r);
	if (r->attempts++ > 0)
		ai->st.retries++;
	if (++ai->st.in_flight > ai->st.max_in_flight_seen)
		ai->st.max_in_flight_seen = ai->st.in_flight;
	return true;
}

/* A piece of a streamed call's answer (hc_on_data): gathers the content, observes the first
 * token and hands the hint so far to the request's partial callback, at most every
 * AI_PARTIAL_MIN_MS. Plain JSON (a server that ignores "stream") is left to ai_call_done. */
static void ai_on_data(const char *data, size_t len, long status, const char *content_type, void *arg)
{
	ai_req_t *r = arg;
	ai_t *ai = r->ai;
	if (status < 200 || status >= 300 || strncasecmp(content_type, "text/event-stream", 17) != 0)
		return;
	r->sse_on = true;
	if (!ai_sse_feed(&r->sse, data, len))
		return;
	int64_t now = ai_now_ms();
	if (!r->first_token) {
		char labels[160];
		r->first_token = true;
		snprintf(labels, sizeof(labels), "model=\"%s\"", r->model);
		metrics_observe(metrics_series(ai->m_first_token, labels), (double)(now - r->call_t0) / 1000.0);
	}
	if (!r->partial || (r->partial_at && now - r->partial_at < AI_PARTIAL_MIN_MS))
		return;
	char hint[AI_HINT_MAX], intent[32];
	bool intent_whole = false;
	if (!ai_partial_string(r->sse.content, r->sse.content_len, "hint", hint, sizeof(hint), NULL) ||
	    strlen(hint) <= r->partial_sent)
		return;
	rules_intent_t in = INTENT_OTHER;
	bool have_intent = ai_partial_string(r->sse.content, r->sse.content_len, "intent", intent, sizeof(intent),
					     &intent_whole) && intent_whole;
	if (have_intent && !ai_intent_nearest(intent, &in))
		in = INTENT_OTHER; /* as the final answer will read it */
	r->partial_sent = strlen(hint);
	r->partial_at = now;
	r->partial(hint, have_intent ? rules_intent_name(in) : NULL, r->arg);
}

/* One HTTP call ended (hc callback): classify it, tell the breaker, then finish, retry or
 * wait. An answer over AI_MAX_RESPONSE_BYTES is classified by its status line. */
static void ai_call_done(const hc_result_t *res, void *arg)
{
	ai_req_t *r = arg;
	ai_t *ai = r->ai;
	long status = res->too_big ? res->status_line : res->status;
	long retry_after = res->retry_after_s;
	r->call = NULL; /* hc is done with it */
	ai_release_call(ai, r);
	r->state = REQ_DONE; /* until decided below */
	int64_t now = ai_now_ms();

	ai_class_t cls;
	ai_parsed_t parsed;
	char why[96] = "";
	if (status == 0) {
		cls = res->timed_out ? AI_CLASS_TIMEOUT : AI_CLASS_CONN;
		snprintf(r->error, sizeof(r->error), "%s", res->error[0] ? res->error : "no answer");
	} else if (status >= 200 && status < 300 && r->transcribe) {
		cJSON *a = res->too_big ? NULL : cJSON_ParseWithLength(res->body, res->len);
		const char *text = json_str(a, "text");
		if (text) {
			double c = ai_transcription_cost_usd(r->duration_ms, ai->cfg.price_transcription_minute);
			free(r->transcript);
			r->transcript = ai_strdup(text);
			r->cost += c;
			ai->st.cost_usd += c;
		}
		cJSON_Delete(a);
		cls = text ? AI_CLASS_2XX : AI_CLASS_GARBAGE;
		memset(&parsed, 0, sizeof(parsed));
		if (!text)
			snprintf(r->error, sizeof(r->error), "garbage: no text in the transcription's answer");
	} else if (status >= 200 && status < 300 && r->vision) {
		char *text = res->too_big ? NULL : ai_answer_text(res->body, res->len, &parsed, why, sizeof(why));
		char *t = text;
		while (t && isspace((unsigned char)*t))
			t++;
		if (!res->too_big) {
			double c = ai_cost_usd(parsed.tokens_in, parsed.tokens_out, r->price_in, r->price_out);
			r->tokens_in += parsed.tokens_in;
			r->tokens_out += parsed.tokens_out;
			r->cost += c;
			ai->st.tokens_in += (uint64_t)parsed.tokens_in;
			ai->st.tokens_out += (uint64_t)parsed.tokens_out;
			ai->st.cost_usd += c;
		}
		cls = t && *t ? AI_CLASS_2XX : AI_CLASS_GARBAGE;
		if (cls == AI_CLASS_2XX) {
			free(r->transcript);
			r->transcript = xstrdup(t);
		} else {
			snprintf(r->error, sizeof(r->error), "garbage: %s", text ? "an empty description" : why);
		}
		free(text);
		memset(&parsed, 0, sizeof(parsed));
	} else if (status >= 200 && status < 300) {
		/* a server may ignore "stream": true and answer one JSON completion: read as such */
		bool ok = !res->too_big &&
			  (r->sse_on ? ai_parse_streamed(&r->sse, r->bot, &parsed, why, sizeof(why))
			   : r->bot  ? ai_parse_bot_answer(res->body, res->len, &parsed, why, sizeof(why))
				     : ai_parse_completion(res->body, res->len, &parsed, why, sizeof(why)));
		if (res->too_big)
			snprintf(why, sizeof(why), "response over %d bytes", AI_MAX_RESPONSE_BYTES);
		else {
			r->tokens_in += parsed.tokens_in;
			r->tokens_out += parsed.tokens_out;
			double c = ai_cost_usd(parsed.tokens_in, parsed.tokens_out, r->price_in, r->price_out);
			r->cost += c;
			ai->st.tokens_in += (uint64_t)parsed.tokens_in;
			ai->st.tokens_out += (uint64_t)parsed.tokens_out;
			ai->st.cost_usd += c;
		}
		cls = ok ? AI_CLASS_2XX : AI_CLASS_GARBAGE;
		if (!ok)
			snprintf(r->error, sizeof(r->error), "garbage: %s", why);
		for (int k = 0; ok && k < AI_REPAIRED_N; k++)
			if (parsed.repaired & (1u << k))
				ai->st.repaired[k]++;
		if (ok && parsed.repaired)
			log_debug("ai: answer for company %ld conversation %s repaired (%s%s%s)", r->company,
				  r->conversation, parsed.repaired & AI_REPAIRED_INTENT ? "intent " : "",
				  parsed.repaired & AI_REPAIRED_CRITICAL ? "critical " : "",
				  parsed.repaired & AI_REPAIRED_HINT_CUT ? "hint cut" : "");
	} else {
		cls = status == 429 ? AI_CLASS_429 : status >= 500 ? AI_CLASS_5XX : AI_CLASS_4XX;
		snprintf(r->error, sizeof(r->error), "http %ld", status);
	}
	ai->st.calls[r->tier][cls]++;
	char labels[160];
	snprintf(labels, sizeof(labels), "model=\"%s\"", r->model);
	metrics_observe(metrics_series(ai->m_call_seconds, labels), res->seconds);
	ai_record(ai, r, now, cls == AI_CLASS_2XX ? BREAKER_OK : cls == AI_CLASS_429 ? BREAKER_NEUTRAL : BREAKER_FAIL);
	log_debug("ai: call %d for company %ld conversation %s to %s: %s", r->attempts, r->company, r->conversation,
		  r->model, cls == AI_CLASS_2XX ? "ok" : r->error);

	if (cls == AI_CLASS_2XX) {
		ai_finish_ai(ai, r, &parsed);
	} else if (cls == AI_CLASS_4XX) {
		ai_finish_fallback(ai, r, FB_FAILED, NULL);
	} else if (r->attempts > ai->cfg.max_retries) {
		if (cls == AI_CLASS_429)
			ai_pause(ai, now, retry_after > 0 ? (int64_t)retry_after * 1000 : ai->cfg.retry_base_ms);
		ai_finish_fallback(ai, r, FB_FAILED, NULL);
	} else if (cls == AI_CLASS_429) {
		ai_pause(ai, now, retry_after > 0 ? (int64_t)retry_after * 1000 : ai->cfg.retry_base_ms);
		ai_enqueue(ai, r, now);
	} else {
		int shift = r->attempts - 1 < 20 ? r->attempts - 1 : 20;
		int64_t delay = (int64_t)ai->cfg.retry_base_ms << shift;
		if (breaker_state(&ai->breaker) == BREAKER_OPEN) {
			ai_finish_fallback(ai, r, FB_BREAKER, "breaker open");
		} else if (now + delay >= r->deadline) {
			ai_finish_fallback(ai, r, FB_DEADLINE, "no time left to retry");
		} else {
			struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
			if (!r->timer)
				r->timer = evtimer_new(ai->base, ai_backoff_cb, r);
			if (!r->timer || evtimer_add(r->timer, &tv) != 0) {
				ai_finish_fallback(ai, r, FB_FAILED, NULL);
			} else {
				r->state = REQ_BACKOFF;
				ai->st.queued++;
			}
		}
	}
	ai_pump(ai);
}

/* Tells the breaker, logging when it opens or closes. */
static void ai_record(ai_t *ai, ai_req_t *r, int64_t now, breaker_outcome_t o)
{
	breaker_state_t before = breaker_state(&ai->breaker);
	breaker_record(&ai->breaker, now, o, r->probe);
	r->probe = false;
	breaker_state_t after = breaker_state(&ai->breaker);
	if (after == before)
		return;
	if (after == BREAKER_OPEN)
		log_warn("ai: circuit breaker open for %lld ms (last error: %s): hints come from the rules",
			 (long long)ai->breaker.p.open_ms, r->error);
	else if (after == BREAKER_CLOSED)
		log_info("ai: circuit breaker closed, %s answers again", ai->url);
}

/* No call starts before now + ms (the whole provider); queued requests that cannot wait
 * that long fall back now. */
static void ai_pause(ai_t *ai, int64_t now, int64_t ms)
{
	ai->st.pauses_429++;
	int64_t until = now + ms;
	if (until <= ai->paused_until)
		return;
	if (ai->paused_until <= now)
		log_warn("ai: 429 from %s: no call for %lld ms", ai->url, (long long)ms);
	ai->paused_until = until;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(ai->pause_ev, &tv);
	for (ai_req_t *r = ai->q_head, *next; r; r = next) {
		next = r->lnext;
		if (r->deadline <= until) {
			ai_queue_remove(ai, r);
			ai_finish_fallback(ai, r, FB_DEADLINE, "paused by 429 past the deadline");
		}
	}
}

static void ai_finish_ai(ai_t *ai, ai_req_t *r, const ai_parsed_t *p)
{
	r->from_ai = true;
	r->intent = p->intent;
	r->res_critical = p->critical || r->critical;
	r->critical_reason = NULL;
	r->handoff = p->handoff;
	memcpy(r->hint, p->hint, sizeof(r->hint));
	r->error[0] = 0; /* earlier failed attempts are visible in attempts */
	ai->st.answered_ai++;
	ai_finish(ai, r);
}

static void ai_finish_fallback(ai_t *ai, ai_req_t *r, ai_fallback_t why, const char *reason)
{
	rules_result_t rr;
	rules_classify(r->joined, r->domain, &rr);
	r->from_ai = false;
	r->fallback = why;
	r->intent = rr.intent;
	r->res_critical = rr.critical || r->critical;
	r->critical_reason = rr.critical_reason;
	ai_copy_utf8(r->hint, sizeof(r->hint), rr.text);
	if (reason) {
		char last[sizeof(r->error)];
		memcpy(last, r->error, sizeof(last));
		if (last[0])
			snprintf(r->error, sizeof(r->error), "%.60s; %s", last, reason);
		else
			snprintf(r->error, sizeof(r->error), "%s", reason);
	}
	ai->st.fallbacks++;
	if (why == FB_BREAKER)
		ai->st.fallback_breaker++;
	else if (why == FB_DEADLINE)
		ai->st.fallback_deadline++;
	else
		ai->st.fallback_failed++;
	log_debug("ai: fallback hint for company %ld conversation %s: %s", r->company, r->conversation, r->error);
	ai_finish(ai, r);
}

/* Moves a finished request to the done list; the deferred event hands it over. */
static void ai_finish(ai_t *ai, ai_req_t *r)
{
	r->state = REQ_DONE;
	r->latency_ms = (int)(ai_now_ms() - r->t_start);
	r->lnext = NULL;
	r->lprev = ai->d_tail;
	if (ai->d_tail)
		ai->d_tail->lnext = r;
	else
		ai->d_head = r;
	ai->d_tail = r;
	if (!ai->deliver_armed && !ai->closing) {
		ai->deliver_armed = true;
		event_active(ai->deliver_ev, EV_TIMEOUT, 0);
	}
}

static void ai_deliver_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	ai_t *ai = arg;
	ai_req_t *list = ai->d_head;
	ai->d_head = ai->d_tail = NULL;
	ai->deliver_armed = false; /* callbacks may finish more: they go to a fresh list and event */
	while (list) {
		ai_req_t *r = list;
		list = r->lnext;
		ai_deliver_one(ai, r);
	}
}

static void ai_deliver_one(ai_t *ai, ai_req_t *r)
{
	ai_result_t res = {0};
	bool cancelled = r->fallback == FB_CANCELLED;
	res.ok = !cancelled;
	res.intent = cancelled ? INTENT_OTHER : r->intent;
	res.critical = !cancelled && r->res_critical;
	res.critical_reason = cancelled ? NULL : r->critical_reason;
	res.hint = cancelled ? "" : r->hint;
	res.source = cancelled ? NULL : r->from_ai ? "ai" : "fallback";
	res.handoff = !cancelled && r->from_ai && r->handoff;
	res.model = r->attempts ? r->model : NULL;
	res.tokens_in = r->tokens_in;
	res.tokens_out = r->tokens_out;
	res.cost_usd = r->cost;
	res.latency_ms = r->latency_ms;
	res.attempts = r->attempts;
	res.error = r->error;
	res.texts = (const char *const *)r->texts;
	res.n_texts = r->n_texts;
	res.transcript = cancelled || !r->from_ai ? NULL : r->transcript;
	ai->st.pending--;
	if (r->done)
		r->done(&res, r->arg);
	ai_req_free(ai, r);
}

/* Unlinks from ai->all and frees (the request must be in no queue and have no call). */
static void ai_req_free(ai_t *ai, ai_req_t *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else if (ai->all == r)
		ai->all = r->next;
	if (r->next)
		r->next->prev = r->prev;
	if (r->timer)
		event_free(r->timer);
	for (int i = 0; r->texts && i < r->n_texts; i++)
		free(r->texts[i]);
	free(r->texts);
	free(r->joined);
	free(r->domain);
	free(r->conversation);
	free(r->model);
	free(r->body);
	free(r->content_type);
	free(r->transcript);
	ai_sse_free(&r->sse);
	free(r);
}

/* Drops the request's HTTP call (if any: hc has already dropped it when it called back or
 * was freed) and its backoff wait. */
static void ai_release_call(ai_t *ai, ai_req_t *r)
{
	if (r->state == REQ_RUNNING) {
		if (ai->hc && r->call)
			hc_cancel(ai->hc, r->call);
		r->call = NULL;
		ai->st.in_flight--;
	}
	if (r->state == REQ_BACKOFF) {
		evtimer_del(r->timer);
		ai->st.queued--;
	}
}

static void ai_backoff_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	ai_req_t *r = arg;
	ai_t *ai = r->ai;
	ai->st.queued--;
	r->state = REQ_DONE;
	ai_enqueue(ai, r, ai_now_ms());
	ai_pump(ai);
}

static void ai_pause_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	ai_pump(arg);
}

/* ------------------------------------------------------------------ helpers */

/* Delivers an embeddings call's outcome once and forgets it. */
static void ai_emb_end(ai_emb_t *e, const float *vec, int dim, int tokens, double cost, const char *error)
{
	ai_t *ai = e->ai;
	if (e->prev)
		e->prev->next = e->next;
	else
		ai->embeds = e->next;
	if (e->next)
		e->next->prev = e->prev;
	if (e->call)
		ai->st.embed_in_flight--;
	if (e->ev)
		event_free(e->ev);
	e->done(vec, dim, tokens, cost, error, e->arg);
	free(e);
}

static void ai_emb_refused_cb(evutil_socket_t fd, short what, void *arg)
{
	ai_emb_t *e = arg;
	(void)fd, (void)what;
	ai_emb_end(e, NULL, 0, 0, 0, e->ai->paused_until > ai_now_ms() ? "paused" : "not started");
}

/* A call that did not start is answered from the loop all the same, as ai_embed promises. */
static void ai_emb_refuse(ai_emb_t *e)
{
	e->ev = evtimer_new(e->ai->base, ai_emb_refused_cb, e);
	struct timeval zero = {0, 0};
	evtimer_add(e->ev, &zero);
}

static void ai_emb_call_done(const hc_result_t *res, void *arg)
{
	ai_emb_t *e = arg;
	ai_t *ai = e->ai;
	long status = res->too_big ? res->status_line : res->status;
	char error[160] = "";
	float *vec = NULL;
	int dim = 0, tokens = 0;
	double cost = 0;
	ai_class_t cls;
	if (status == 0) {
		cls = res->timed_out ? AI_CLASS_TIMEOUT : AI_CLASS_CONN;
		snprintf(error, sizeof(error), "%s", res->timed_out ? "timeout" : res->error[0] ? res->error : "no answer");
	} else if (status >= 200 && status < 300) {
		char why[96];
		if (!res->too_big && embed_parse_response(res->body, res->len, &vec, &dim, &tokens, why, sizeof(why))) {
			cls = AI_CLASS_2XX;
			cost = ai_cost_usd(tokens, 0, ai->cfg.price_embeddings, 0);
			ai->st.embed_tokens += (uint64_t)tokens;
			ai->st.embed_cost_usd += cost;
		} else {
			cls = AI_CLASS_GARBAGE;
			snprintf(error, sizeof(error), "garbage: %s", res->too_big ? "answer too big" : why);
		}
	} else {
		cls = status == 429 ? AI_CLASS_429 : status >= 500 ? AI_CLASS_5XX : AI_CLASS_4XX;
		snprintf(error, sizeof(error), "http %ld", status);
	}
	ai->st.embed_calls[cls]++;
	e->call = NULL;
	ai->st.embed_in_flight--;
	ai_emb_end(e, vec, dim, tokens, cost, vec ? NULL : error);
	free(vec);
}

static int64_t ai_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *ai_strdup(const char *s)
{
	return xstrdup(s ? s : "");
}

/* Copies cfg into ai->cfg with owned strings and builds the URL and auth header. */
static bool ai_copy_config(ai_t *ai, const ai_config_t *cfg, char *err, size_t errlen)
{
	if (!cfg->base_url || !*cfg->base_url || !cfg->model_small || !*cfg->model_small) {
		snprintf(err, errlen, "ai: base_url and model must be set");
		return false;
	}
	ai->cfg = *cfg;
	ai->cfg.base_url = ai_strdup(cfg->base_url);
	ai->cfg.api_key = ai_strdup(cfg->api_key);
	ai->cfg.model_small = ai_strdup(cfg->model_small);
	ai->cfg.model_large = ai_strdup(cfg->model_large);
	ai->cfg.prompts_dir = ai_strdup(cfg->prompts_dir);
	ai->cfg.transcription_model = ai_strdup(cfg->transcription_model ? cfg->transcription_model : "whisper-1");
	ai->cfg.embeddings_model = ai_strdup(cfg->embeddings_model);
	if (ai->cfg.embeddings_timeout_ms < 1)
		ai->cfg.embeddings_timeout_ms = 2000;
	if (ai->cfg.max_in_flight < 1)
		ai->cfg.max_in_flight = 1;
	if (ai->cfg.max_retries < 0)
		ai->cfg.max_retries = 0;
	if (ai->cfg.retry_base_ms < 1)
		ai->cfg.retry_base_ms = 1;
	if (ai->cfg.timeout_ms < 1)
		ai->cfg.timeout_ms = 1;
	if (ai->cfg.deadline_ms < 1)
		ai->cfg.deadline_ms = 1;
	size_t n = strlen(cfg->base_url);
	while (n && cfg->base_url[n - 1] == '/')
		n--;
	ai->url = xmalloc(n + sizeof("/chat/completions"));
	if (ai->url)
		sprintf(ai->url, "%.*s/chat/completions", (int)n, cfg->base_url);
	ai->url_transcribe = xmalloc(n + sizeof("/audio/transcriptions"));
	sprintf(ai->url_transcribe, "%.*s/audio/transcriptions", (int)n, cfg->base_url);
	ai->url_embeddings = xmalloc(n + sizeof("/embeddings"));
	sprintf(ai->url_embeddings, "%.*s/embeddings", (int)n, cfg->base_url);
	if (cfg->api_key && *cfg->api_key) {
		ai->auth = xmalloc(strlen(cfg->api_key) + sizeof("Authorization: Bearer "));
		if (ai->auth)
			sprintf(ai->auth, "Authorization: Bearer %s", cfg->api_key);
	}
	if (!ai->url || !ai->cfg.base_url || !ai->cfg.api_key || !ai->cfg.model_small || !ai->cfg.model_large ||
	    !ai->cfg.prompts_dir || (cfg->api_key && *cfg->api_key && !ai->auth)) {
		ai_free_config_strings(ai);
		snprintf(err, errlen, "ai: out of memory");
		return false;
	}
	return true;
}

static void ai_free_config_strings(ai_t *ai)
{
	free((char *)ai->cfg.base_url);
	free((char *)ai->cfg.api_key);
	free((char *)ai->cfg.model_small);
	free((char *)ai->cfg.model_large);
	free((char *)ai->cfg.prompts_dir);
	free((char *)ai->cfg.transcription_model);
	ai->cfg.transcription_model = NULL;
	free((char *)ai->cfg.embeddings_model);
	ai->cfg.embeddings_model = NULL;
	free(ai->url_embeddings);
	ai->url_embeddings = NULL;
	free(ai->url_transcribe);
	ai->url_transcribe = NULL;
	free(ai->url);
	free(ai->auth);
	ai->cfg.base_url = ai->cfg.api_key = ai->cfg.model_small = ai->cfg.model_large = ai->cfg.prompts_dir = NULL;
	ai->url = ai->auth = NULL;
}

/* Reads <dir>/<name>.txt (start-up only: blocking file I/O); NULL when absent or empty. */
static char *ai_read_prompt(const char *dir, const char *name)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s.txt", dir, name);
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *buf = xmalloc(AI_MAX_PROMPT_BYTES + 1);
	size_t n = buf ? fread(buf, 1, AI_MAX_PROMPT_BYTES, f) : 0;
	fclose(f);
	if (!buf)
		return NULL;
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		n--;
	buf[n] = 0;
	if (!n) {
		free(buf);
		return NULL;
	}
	return buf;
}

static char *ai_build_body(const char *model, const char *system, const char *user, bool stream, size_t *len)
{
	return ai_build_body_parts(model, system, cJSON_CreateString(user), AI_COMPLETION_MAX_TOKENS, stream, len);
}

/* A chat completion's body: the system prompt, then one user message whose content is
 * content (a string, or an array of parts; taken); streamed with its usage when stream. */
static char *ai_build_body_parts(const char *model, const char *system, cJSON *content, int max_tokens, bool stream,
				 size_t *len)
{
	cJSON *root = cJSON_CreateObject();
	if (!root || !content) {
		cJSON_Delete(root);
		cJSON_Delete(content);
		return NULL;
	}
	cJSON_AddStringToObject(root, "model", model);
	cJSON *msgs = cJSON_AddArrayToObject(root, "messages");
	cJSON *sys = cJSON_CreateObject(), *usr = cJSON_CreateObject();
	cJSON_AddItemToArray(msgs, sys);
	cJSON_AddItemToArray(msgs, usr);
	cJSON_AddStringToObject(sys, "role", "system");
	cJSON_AddStringToObject(sys, "content", system);
	cJSON_AddStringToObject(usr, "role", "user");
	cJSON_AddItemToObject(usr, "content", content);
	cJSON_AddNumberToObject(root, "temperature", 0.2);
	cJSON_AddNumberToObject(root, "max_tokens", max_tokens);
	if (stream) {
		cJSON_AddBoolToObject(root, "stream", true);
		cJSON_AddBoolToObject(cJSON_AddObjectToObject(root, "stream_options"), "include_usage", true);
	}
	char *s = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (s)
		*len = strlen(s);
	return s;
}

static int ai_count_words(const char *s)
{
	int n = 0;
	bool in = false;
	for (; s && *s; s++) {
		bool space = isspace((unsigned char)*s);
		if (!space && !in)
			n++;
		in = !space;
	}
	return n;
}

/* The intent an AI's intent name obviously means: one of the six in any case and
 * spacing, one of them followed by a suffix ("cancellation", "billing_issue",
 * "complaints"), or a queue name. False when it is none of these ("technical"). */
static bool ai_intent_nearest(const char *s, rules_intent_t *out)
{
	static const struct {
		const char *name;
		rules_intent_t intent;
	} queues[] = {
		{"financeiro", INTENT_BILLING}, {"comercial", INTENT_SALES},   {"suporte", INTENT_OUTAGE},
		{"ouvidoria", INTENT_COMPLAINT}, {"cancelamento", INTENT_CANCEL},
	};
	char name[32];
	size_t n = 0;

	while (isspace((unsigned char)*s))
		s++;
	while (*s && !isspace((unsigned char)*s) && n + 1 < sizeof(name))
		name[n++] = (char)tolower((unsigned char)*s++);
	name[n] = 0;
	if (rules_intent_parse(name, out))
		return true;
	for (size_t i = 0; i < sizeof(queues) / sizeof(queues[0]); i++) {
		if (strcmp(name, queues[i].name) == 0) {
			*out = queues[i].intent;
			return true;
		}
	}
	for (int i = 0; i < INTENT_OTHER; i++) {
		const char *six = rules_intent_name((rules_intent_t)i);
		if (strncmp(name, six, strlen(six)) == 0) {
			*out = (rules_intent_t)i;
			return true;
		}
	}
	return false;
}

/* Copies src, longer than cap - 1 bytes, cut at the last space that leaves at least half
 * of it (else at a UTF-8 boundary) and ended with "…". */
static void ai_cut_words(char *dst, size_t cap, const char *src)
{
	static const char ellipsis[] = "…";
	size_t room = cap - sizeof(ellipsis); /* bytes of text before the ellipsis and its NUL */
	size_t n = room;
	while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
		n--;
	size_t sp = n;
	while (sp > room / 2 && src[sp] != ' ')
		sp--;
	if (sp > room / 2)
		n = sp;
	while (n > 0 && (src[n - 1] == ' ' || src[n - 1] == ',' || src[n - 1] == ';'))
		n--;
	memcpy(dst, src, n);
	memcpy(dst + n, ellipsis, sizeof(ellipsis));
}

/* Copies at most cap-1 bytes of src, never cutting a UTF-8 sequence in two. */
static void ai_copy_utf8(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);
	if (n >= cap) {
		n = cap - 1;
		while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
			n--;
	}
	memcpy(dst, src, n);
	dst[n] = 0;
}
