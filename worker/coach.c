/*
 * coach: the coaching stage (see coach.h). An analysis covers one or more messages of
 * one conversation and moves through: filters -> the cache in memory (a hit goes to finish)
 * -> admit (PostgreSQL: done already? cache hit? budget?) -> provider (AI, or rules) ->
 * finish (PostgreSQL: per-agent interval, one hint per message, cache, cost settlement) ->
 * publish. Admit and finish requests of one loop turn travel together in one query each.
 */
#include "coach.h"
#include "embed.h"
#include "json.h"
#include "log.h"
#include "rules.h"
#include "simcache.h"
#include "text.h"
#include "tick.h"
#include "xalloc.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define COACH_BUCKETS 65536
#define COACH_HISTORY_MAX 32
#define COACH_TYPING_SLOTS 65536
#define COACH_MAX_COMPANIES 1024
#define COACH_IDLE_FORGET_S 600.0
#define COACH_COMPLETION_TOKENS 300 /* upper bound the AI client asks for (max_tokens) */
#define COACH_EMB_REFRESH_S 10      /* other workers' AI hints reach this one's rings this late at most */
#define COACH_SIMC_REFRESH_S 1.0    /* while hits come, other workers' rows reach the copy this late */
#define COACH_SIMC_WAIT_S 0.1       /* a miss waits for a read this long at most, beyond the read's own time */
#define COACH_SIMC_MARGIN_S 1.0     /* a row's created_at is its transaction's start: reread this far back */
#define COACH_SIMC_BATCH 10000      /* rows per read */
#define COACH_STR(x) COACH_STR_(x)
#define COACH_STR_(x) #x
/* a read of the cache's rows created after $1, oldest first ("ASC") or newest first ("DESC") */
#define COACH_SIMC_READ(order)                                                                           \
	"SELECT company_id, domain, norm, hint_id, intent, critical, text, extract(epoch from created_at) " \
	"FROM hint_cache WHERE created_at > to_timestamp($1::float8) ORDER BY created_at " order             \
	" LIMIT " COACH_STR(COACH_SIMC_BATCH)

typedef struct coach_conv coach_conv_t;

/* One message inside the coach: its own copies of the strings. */
typedef struct {
	coach_msg_t m;
	double added_at;
} coach_item_t;

struct coach_conv {
	coach_conv_t *next;      /* hash chain */
	coach_t *coach;
	char *key;
	int64_t conversation_id; /* from its messages once stored; 0 until then */
	coach_item_t *pending;   /* waiting for the next analysis */
	int n_pending, cap_pending;
	bool busy;               /* an analysis of this conversation is under way */
	struct event *timer;     /* debounce, or the smart buffer's collection window */
	bool timer_armed;
	struct { bool agent; char *text; } history[COACH_HISTORY_MAX];
	int history_head, history_count;
	double last_used;
};

typedef struct coach_analysis coach_analysis_t;
struct coach_analysis {
	coach_analysis_t *next;  /* in one of the queues */
	coach_t *c;
	coach_conv_t *conv;      /* NULL for a filtered single message */
	coach_item_t *items;
	int n;
	bool critical;
	bool classified;         /* rules holds the rules' reading of the texts (one message: read once) */
	rules_result_t rules;
	char *norm;              /* the texts' cache key (rules_cache_key) */
	bool no_cache;           /* a cache hit was refused: admit again without the cache */
	double asked_at;         /* first looked up in the cache's copy (unix seconds); 0 = not yet */
	bool similar_searched;   /* a copy read since then has no similar text: PostgreSQL looks for the same */
	char *skip;              /* a filter's reason: record it, no hint */
	char *refuse;            /* a limit's reason found at admission: record it, no hint */
	int64_t reservation;     /* ai_pending row, -1 when none */
	/* the hint */
	char intent[16];
	bool hint_critical, from_cache, cache_it, routed;
	char *text, *model;
	char source[12], limited_by[16];
	int tokens_in, tokens_out, latency_ms;
	double cost_usd;
	int64_t hint_id;         /* reserved at admission for a streamed AI analysis; 0 = none */
	int partials;            /* partial hints published with that id */
	float *vec;              /* the texts' embedding (ai.embeddings_model), kept with an AI hint */
	int dim;
	double embed_cost_usd;   /* of that embedding, in the hint's cost */
};

typedef struct {
	coach_analysis_t *head, *tail;
	int n;
} coach_queue_t;

typedef struct {
	long id;
	bool enabled;
	int min_length, agent_interval_s; /* -1: the config's */
} coach_company_t;

struct coach {
	struct event_base *base;
	db_t *db;
	const cfg_t *cfg;
	ai_t *ai;
	coach_callbacks_t cb;
	void *arg;
	coach_conv_t *buckets[COACH_BUCKETS];
	int n_convs, pending;
	coach_queue_t admit_q, finish_q, ai_hi, ai_lo;
	struct event *admit_ev, *finish_ev;
	tick_t *sweep_tick, *companies_tick;
	bool admit_armed, finish_armed;
	bool admit_in_flight, finish_in_flight; /* one query of each kind at a time: batches grow with load */
	struct { int64_t conversation; int64_t agent; double until; } typing[COACH_TYPING_SLOTS];
	double typing_until_max; /* no agent types anywhere after this */
	coach_company_t companies[COACH_MAX_COMPANIES];
	int n_companies;
	/* the semantic cache (ai.embeddings_model): recent AI hints' vectors */
	embed_index_t *emb;      /* NULL while ai.embeddings_model is empty */
	char *emb_model;         /* the model emb's vectors come from */
	int64_t emb_last_id;     /* hint_embeddings rows up to this id are loaded */
	unsigned emb_gen, emb_query_gen; /* a load answered after the model changed is dropped */
	bool emb_loading, emb_primed;
	tick_t *emb_tick;        /* refresh: other workers' rows, and old rows deleted */
	/* the trigram cache in memory (cache.memory_entries): recent hint_cache rows */
	simcache_t *simc;        /* NULL when cache.memory_entries is 0 */
	double simc_since;       /* the next read takes rows created after this (unix seconds) */
	double simc_sent_at;     /* when the last read was sent */
	double simc_fresh_at;    /* when the last read applied was sent: every row committed before is here */
	bool simc_loading, simc_newest_first; /* the first read takes the newest rows */
	coach_queue_t simc_wait; /* misses waiting for a read sent after their lookup */
	struct event *simc_ev;   /* that read, when it is due later */
};

static coach_conv_t *coach_conv(coach_t *c, const char *key, bool create);
static void coach_copy_msg(coach_item_t *dst, const coach_msg_t *src);
static void coach_free_item(coach_item_t *it);
static void coach_conv_timer_cb(evutil_socket_t fd, short what, void *arg);
static void coach_arm(coach_conv_t *v, int ms);
static void coach_start(coach_conv_t *v);
static void coach_push(coach_queue_t *q, coach_analysis_t *a, bool front);
static coach_analysis_t *coach_pop(coach_queue_t *q);
static void coach_schedule(coach_t *c, bool finish);
static void coach_admit_cb(evutil_socket_t fd, short what, void *arg);
static void coach_admitted(PGresult *res, void *arg);
static void coach_finish_cb(evutil_socket_t fd, short what, void *arg);
static void coach_finished(PGresult *res, void *arg);
static void coach_rules_hint(coach_analysis_t *a, const char *limited_by);
static bool coach_route(coach_analysis_t *a);
static bool coach_cache_agrees(const coach_analysis_t *a, const char *intent, bool critical);
static bool coach_rules_agree(const rules_result_t *r, bool critical_read, const char *intent, bool critical);
static char *coach_cache_key(const char *text);
static void coach_shadow(coach_analysis_t *a, const char *kind);
static void coach_shadow_done(const ai_result_t *res, void *arg);
static bool coach_semantic(coach_analysis_t *a);
static void coach_embedded(const float *vec, int dim, int tokens, double cost, const char *error, void *arg);
static void coach_to_ai(coach_analysis_t *a);
static void coach_drop(coach_analysis_t *a);
static void coach_emb_setup(coach_t *c);
static void coach_emb_refresh_cb(evutil_socket_t fd, short what, void *arg);
static void coach_emb_loaded(PGresult *res, void *arg);
static void coach_emb_store(coach_t *c, cJSON *rows);
static bool coach_memory_lookup(coach_analysis_t *a);
static void coach_cache_take(coach_analysis_t *a, const char *intent, bool critical, const char *text);
static void coach_simc_refresh(coach_t *c, double min_interval);
static void coach_simc_due_cb(evutil_socket_t fd, short what, void *arg);
static void coach_simc_loaded(PGresult *res, void *arg);
static void coach_simc_apply(coach_t *c, PGresult *res);

/* A shadow check under way: what the cache or the rules said, to compare with the AI. */
typedef struct {
	coach_t *c;
	const char *kind; /* "cache" | "routed" (static) */
	char intent[16];
	bool critical;
} coach_shadow_t;
static void coach_pump_ai(coach_t *c);
static void coach_ai_partial(const char *text, const char *intent, void *arg);
static void coach_withdraw(coach_analysis_t *a);
static void coach_ai_done(const ai_result_t *res, void *arg);
static void coach_complete(coach_analysis_t *a);
static char *coach_join(const coach_analysis_t *a, const char *sep);
static bool coach_patterns_found(const char *text, const char *patterns);
static void coach_classify(const coach_analysis_t *a, rules_result_t *r);
static double coach_now(void);
static const coach_company_t *coach_company(const coach_t *c, long id);
static void coach_companies_cb(evutil_socket_t fd, short what, void *arg);
static void coach_companies_loaded(PGresult *res, void *arg);
static void coach_sweep_cb(evutil_socket_t fd, short what, void *arg);
static void coach_count(coach_t *c, const char *kind, const char *what);
static double coach_reserve_usd(const coach_t *c, const coach_analysis_t *a);
static const char *coach_filtered(const coach_t *c, const coach_msg_t *m);
static void coach_add_ids(cJSON *o, const coach_analysis_t *a);
static void coach_add_agent(const coach_t *c, cJSON *o, const coach_analysis_t *a);

coach_t *coach_new(struct event_base *base, db_t *db, const cfg_t *cfg, ai_t *ai, const coach_callbacks_t *cb,
		   void *arg)
{
	coach_t *c = xcalloc(1, sizeof(*c));
	c->base = base;
	c->db = db;
	c->cfg = cfg;
	c->ai = ai;
	c->cb = *cb;
	c->arg = arg;
	c->admit_ev = evtimer_new(base, coach_admit_cb, c);
	c->finish_ev = evtimer_new(base, coach_finish_cb, c);
	c->sweep_tick = tick_new(base, 30000, coach_sweep_cb, c);
	c->companies_tick = tick_new(base, 30000, coach_companies_cb, c);
	coach_companies_cb(-1, 0, c);
	c->emb_tick = tick_new(base, COACH_EMB_REFRESH_S * 1000, coach_emb_refresh_cb, c);
	coach_emb_setup(c);
	if (cfg->cache.memory_entries > 0) {
		c->simc = simcache_new(cfg->cache.memory_entries);
		c->simc_ev = evtimer_new(base, coach_simc_due_cb, c);
	}
	return c;
}

/* The filters' reason to record m without analysing it ("disabled", "short"), or NULL. */
static const char *coach_filtered(const coach_t *c, const coach_msg_t *m)
{
	const coach_company_t *co = coach_company(c, m->company);
	int min_len = co && co->min_length >= 0 ? co->min_length : c->cfg->coaching.min_message_length;
	if (!c->cfg->coaching.enabled || (co && !co->enabled))
		return "disabled";
	if (!m->text || !m->text[0] || text_utf8_length(m->text) < (size_t)min_len)
		return "short";
	return NULL;
}

void coach_add(coach_t *c, const coach_msg_t *m)
{
	const char *skip = coach_filtered(c, m);
	c->pending++;
	if (skip) {
		/* recorded, not analysed: one message, no conversation state */
		coach_analysis_t *a = xcalloc(1, sizeof(*a));
		a->c = c;
		a->items = xcalloc(1, sizeof(coach_item_t));
		coach_copy_msg(&a->items[0], m);
		a->n = 1;
		a->reservation = -1;
		a->skip = xstrdup(skip);
		coach_count(c, "skip", skip);
		coach_push(&c->finish_q, a, false);
		coach_schedule(c, true);
		return;
	}
	coach_conv_t *v = coach_conv(c, m->conversation_key, true);
	v->conversation_id = m->conversation_id;
	if (v->n_pending == v->cap_pending) {
		v->cap_pending = v->cap_pending ? v->cap_pending * 2 : 4;
		v->pending = xrealloc(v->pending, (size_t)v->cap_pending * sizeof(coach_item_t));
	}
	coach_copy_msg(&v->pending[v->n_pending++], m);
	v->last_used = coach_now();
	if (v->timer_armed)
		return;
	if (v->busy)
		coach_arm(v, c->cfg->buffer.max_wait_ms); /* smart buffer: collect while it is analysed */
	else
		coach_arm(v, c->cfg->coaching.delay_ms);  /* 0: this loop turn's messages of it together */
}

bool coach_inline(coach_t *c, const coach_msg_t *m, cJSON *ev)
{
	const coach_company_t *co = coach_company(c, m->company);
	const cfg_t *cfg = c->cfg;
	int interval = co && co->agent_interval_s >= 0 ? co->agent_interval_s : cfg->limits.agent_interval_s;
	if (cfg->coaching.delay_ms > 0 || interval > 0 || coach_filtered(c, m))
		return false;
	/* with the AI, only a hit in the cache's copy is known now; one the routing or a shadow
	 * check would take goes the analysis's way (coach_start) */
	if (c->ai && (!c->simc || !cfg->cache.enabled || cfg->route.confident || cfg->route.shadow_share > 0))
		return false;
	double now = coach_now();
	coach_conv_t *v = coach_conv(c, m->conversation_key, false);
	if (v && (v->busy || v->n_pending || v->timer_armed))
		return false; /* an analysis of it is under way or due: m joins the next one */
	if (now < c->typing_until_max) {
		/* someone types somewhere: only a conversation whose id is known can be checked */
		if (!v || !v->conversation_id)
			return false;
		int slot = (int)((uint64_t)v->conversation_id % COACH_TYPING_SLOTS);
		if (c->typing[slot].conversation == v->conversation_id && c->typing[slot].until > now)
			return false;
	}
	rules_result_t r;
	double t0 = coach_now();
	rules_classify(m->text, m->domain, &r);
	int latency_ms = (int)((coach_now() - t0) * 1000);
	bool critical = r.critical || coach_patterns_found(m->text, cfg->coaching.critical_patterns);
	if (c->ai) {
		/* coach_memory_lookup's hit for a one-message analysis, the rules agreeing */
		char *norm = coach_cache_key(m->text);
		simcache_hit_t hit;
		bool found = norm[0] && simcache_find(c->simc, m->company, m->domain, norm, cfg->cache.similarity_threshold,
						      t0 - cfg->cache.ttl_s, &hit);
		free(norm);
		if (!found || !coach_rules_agree(&r, critical, hit.intent, hit.critical))
			return false;
		cJSON *h = cJSON_AddObjectToObject(ev, "rules_hint");
		cJSON_AddStringToObject(h, "intent", hit.intent);
		cJSON_AddBoolToObject(h, "critical", critical);
		cJSON_AddStringToObject(h, "text", hit.text);
		cJSON_AddNumberToObject(h, "latency_ms", latency_ms);
		cJSON_AddStringToObject(h, "source", "cache");
		coach_simc_refresh(c, COACH_SIMC_REFRESH_S); /* other workers' new rows, now and then */
		return true;
	}
	cJSON *h = cJSON_AddObjectToObject(ev, "rules_hint");
	cJSON_AddStringToObject(h, "intent", rules_intent_name(r.intent));
	cJSON_AddBoolToObject(h, "critical", critical);
	cJSON_AddStringToObject(h, "text", r.text);
	cJSON_AddNumberToObject(h, "latency_ms", latency_ms);
	return true;
}

void coach_inline_done(coach_t *c, const coach_msg_t *m, const cJSON *hint, int64_t hint_id, const char *created_at,
		       double consumed_at, bool again)
{
	const char *pid = m->provider_id;
	void *token = m->token;
	bool cached = json_str(hint, "source") && strcmp(json_str(hint, "source"), "cache") == 0;
	coach_hint_t h = {.event = {.message_ids = &pid, .n_message_ids = 1, .hint_id = hint_id,
				    .conversation_id = m->conversation_id, .conversation_key = m->conversation_key,
				    .agent_id = m->agent_id, .company_id = m->company, .domain = m->domain,
				    .intent = json_str(hint, "intent"), .critical = json_true(hint, "critical"),
				    .text = json_str(hint, "text"), .source = cached ? "cache" : "rules",
				    .from_cache = cached, .created_at = created_at, .received_at = m->received_at},
			  .tokens = &token, .n_tokens = 1, .seconds = coach_now() - consumed_at};
	if (!again)
		coach_count(c, "source", cached ? "cache" : "rules");
	if (!again && cached) {
		coach_count(c, "cache", "hit");
		coach_count(c, "cache_memory", "hit");
	}
	c->cb.publish_hint(&h, c->arg);
	coach_history(c, m->conversation_key, false, m->text);
	coach_conv_t *v = coach_conv(c, m->conversation_key, false);
	if (v) {
		v->conversation_id = m->conversation_id;
		v->last_used = coach_now();
	}
	c->cb.message_done(token, c->arg);
}

void coach_history(coach_t *c, const char *conversation_key, bool from_agent, const char *text)
{
	int max = c->cfg->ai.history_messages < COACH_HISTORY_MAX ? c->cfg->ai.history_messages : COACH_HISTORY_MAX;
	if (max <= 0 || !text || !text[0])
		return;
	coach_conv_t *v = coach_conv(c, conversation_key, true);
	int slot = (v->history_head + v->history_count) % COACH_HISTORY_MAX;
	if (v->history_count == max) {
		slot = (v->history_head + max) % COACH_HISTORY_MAX; /* overwrite the oldest kept */
		free(v->history[v->history_head].text);
		v->history[v->history_head].text = NULL;
		v->history_head = (v->history_head + 1) % COACH_HISTORY_MAX;
		v->history_count--;
	}
	free(v->history[slot].text);
	v->history[slot].agent = from_agent;
	v->history[slot].text = xstrdup(text);
	v->history_count++;
	v->last_used = coach_now();
}

void coach_typing(coach_t *c, int64_t conversation_id, int64_t agent_id, bool typing, double until_unix)
{
	int slot = (int)((uint64_t)conversation_id % COACH_TYPING_SLOTS);
	c->typing[slot].conversation = conversation_id;
	c->typing[slot].agent = agent_id;
	c->typing[slot].until = typing ? until_unix : 0;
	if (typing && until_unix > c->typing_until_max)
		c->typing_until_max = until_unix;
}

int coach_pending(const coach_t *c)
{
	return c->pending;
}

int coach_semantic_vectors(const coach_t *c)
{
	return c->emb ? embed_index_size(c->emb) : 0;
}

int coach_memory_entries(const coach_t *c)
{
	return simcache_size(c->simc);
}

int coach_conversations(const coach_t *c)
{
	return c->n_convs;
}

void coach_reconfigure(coach_t *c, const cfg_t *cfg)
{
	c->cfg = cfg;
	coach_companies_cb(-1, 0, c); /* a reload is also when operators expect overrides to apply */
	coach_emb_setup(c);
}

void coach_free(coach_t *c)
{
	if (!c)
		return;
	for (int b = 0; b < COACH_BUCKETS; b++)
		for (coach_conv_t *v = c->buckets[b], *n; v; v = n) {
			n = v->next;
			for (int i = 0; i < v->n_pending; i++)
				coach_free_item(&v->pending[i]);
			for (int i = 0; i < COACH_HISTORY_MAX; i++)
				free(v->history[i].text);
			event_free(v->timer);
			free(v->pending);
			free(v->key);
			free(v);
		}
	event_free(c->admit_ev);
	event_free(c->finish_ev);
	tick_free(c->sweep_tick);
	tick_free(c->companies_tick);
	tick_free(c->emb_tick);
	embed_index_free(c->emb);
	free(c->emb_model);
	simcache_free(c->simc);
	if (c->simc_ev)
		event_free(c->simc_ev);
	free(c);
}

bool coach_is_critical(const char *text, const char *patterns)
{
	rules_result_t r;
	rules_classify(text, NULL, &r);
	return r.critical || coach_patterns_found(text, patterns);
}

/* One of coaching.critical_patterns ("a|b|c", normalized like the text) is in text. */
static bool coach_patterns_found(const char *text, const char *patterns)
{
	char norm[4096], pat[1024];
	if (!patterns || !patterns[0])
		return false;
	text_normalize(text, norm, sizeof(norm));
	snprintf(pat, sizeof(pat), "%s", patterns);
	for (char *save, *p = strtok_r(pat, "|", &save); p; p = strtok_r(NULL, "|", &save)) {
		char np[256];
		text_normalize(p, np, sizeof(np));
		if (np[0] && strstr(norm, np))
			return true;
	}
	return false;
}

/* ---- conversations ---- */

static uint64_t coach_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static coach_conv_t *coach_conv(coach_t *c, const char *key, bool create)
{
	uint64_t b = coach_hash(key) % COACH_BUCKETS;
	for (coach_conv_t *v = c->buckets[b]; v; v = v->next)
		if (strcmp(v->key, key) == 0)
			return v;
	if (!create)
		return NULL;
	coach_conv_t *v = xcalloc(1, sizeof(*v));
	v->coach = c;
	v->key = xstrdup(key);
	v->timer = evtimer_new(c->base, coach_conv_timer_cb, v);
	v->next = c->buckets[b];
	c->buckets[b] = v;
	c->n_convs++;
	return v;
}

static void coach_arm(coach_conv_t *v, int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	v->timer_armed = true;
	evtimer_add(v->timer, &tv);
}

static void coach_conv_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	coach_conv_t *v = arg;
	(void)fd, (void)what;
	v->timer_armed = false;
	if (!v->busy && v->n_pending)
		coach_start(v);
	/* busy: the running analysis starts this one when it completes */
}

/* Forgets idle conversations (their history too) so memory follows the active ones. */
static void coach_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	coach_t *c = arg;
	double cutoff = coach_now() - COACH_IDLE_FORGET_S;
	(void)fd, (void)what;
	for (int b = 0; b < COACH_BUCKETS; b++)
		for (coach_conv_t **link = &c->buckets[b]; *link;) {
			coach_conv_t *v = *link;
			if (v->busy || v->n_pending || v->timer_armed || v->last_used > cutoff) {
				link = &v->next;
				continue;
			}
			*link = v->next;
			for (int i = 0; i < COACH_HISTORY_MAX; i++)
				free(v->history[i].text);
			event_free(v->timer);
			free(v->pending);
			free(v->key);
			free(v);
			c->n_convs--;
		}
}

static void coach_copy_msg(coach_item_t *dst, const coach_msg_t *src)
{
	dst->m = *src;
	dst->m.conversation_key = xstrdup(src->conversation_key ? src->conversation_key : "");
	dst->m.provider_id = xstrdup(src->provider_id ? src->provider_id : "");
	dst->m.domain = xstrdup(src->domain ? src->domain : "");
	dst->m.text = xstrdup(src->text ? src->text : "");
	dst->m.received_at = xstrdup(src->received_at ? src->received_at : "");
	dst->added_at = coach_now();
}

static void coach_free_item(coach_item_t *it)
{
	free((char *)it->m.conversation_key);
	free((char *)it->m.provider_id);
	free((char *)it->m.domain);
	free((char *)it->m.text);
	free((char *)it->m.received_at);
}

/* ---- analyses ---- */

/* Takes every pending message of the conversation into one analysis. */
static void coach_start(coach_conv_t *v)
{
	coach_t *c = v->coach;
	coach_analysis_t *a = xcalloc(1, sizeof(*a));
	a->c = c;
	a->conv = v;
	a->items = v->pending;
	a->n = v->n_pending;
	a->reservation = -1;
	v->pending = NULL;
	v->n_pending = v->cap_pending = 0;
	v->busy = true;
	if (a->n == 1) {
		/* the rules read the text once, with its domain (the critical flag does not depend
		 * on it), for the flag here and for the hint or the cache's check later */
		rules_classify(a->items[0].m.text, a->items[0].m.domain, &a->rules);
		a->classified = true;
		a->critical = a->rules.critical || coach_patterns_found(a->items[0].m.text, c->cfg->coaching.critical_patterns);
	} else {
		for (int i = 0; i < a->n; i++)
			a->critical |= coach_is_critical(a->items[i].m.text, c->cfg->coaching.critical_patterns);
	}
	char *joined = coach_join(a, " ");
	a->norm = coach_cache_key(joined);
	free(joined);

	/* the agent is already answering: a hint now would only interrupt */
	int64_t conv_id = a->items[a->n - 1].m.conversation_id, agent = a->items[a->n - 1].m.agent_id;
	int slot = (int)((uint64_t)conv_id % COACH_TYPING_SLOTS);
	if (agent && c->typing[slot].conversation == conv_id && c->typing[slot].agent == agent &&
	    c->typing[slot].until > coach_now()) {
		a->skip = xstrdup("agent_typing");
		coach_count(c, "skip", "agent_typing");
		coach_push(&c->finish_q, a, false);
		coach_schedule(c, true);
		return;
	}
	if (c->ai && c->cfg->route.confident && !a->critical && coach_route(a)) {
		coach_push(&c->finish_q, a, false);
		coach_schedule(c, true);
		return;
	}
	if (!c->ai) {
		coach_rules_hint(a, NULL);
		coach_push(&c->finish_q, a, false);
		coach_schedule(c, true);
		return;
	}
	if (coach_memory_lookup(a))
		return;
	coach_push(&c->admit_q, a, a->critical);
	coach_schedule(c, false);
}

static void coach_push(coach_queue_t *q, coach_analysis_t *a, bool front)
{
	a->next = NULL;
	if (front && q->head) {
		a->next = q->head;
		q->head = a;
	} else if (q->tail) {
		q->tail->next = a;
		q->tail = a;
	} else {
		q->head = q->tail = a;
	}
	if (!a->next)
		q->tail = a;
	q->n++;
}

static coach_analysis_t *coach_pop(coach_queue_t *q)
{
	coach_analysis_t *a = q->head;
	if (!a)
		return NULL;
	q->head = a->next;
	if (!q->head)
		q->tail = NULL;
	q->n--;
	a->next = NULL;
	return a;
}

/* Batches a queue's requests of this loop turn into one query, run right after it. */
static void coach_schedule(coach_t *c, bool finish)
{
	bool *armed = finish ? &c->finish_armed : &c->admit_armed;
	if (*armed)
		return;
	*armed = true;
	struct timeval zero = {0, 0};
	evtimer_add(finish ? c->finish_ev : c->admit_ev, &zero);
}

typedef struct {
	coach_t *c;
	coach_analysis_t **list;
	int n;
	const char *what;
} coach_batch_t;

static cJSON *coach_batch_answer(coach_batch_t *b, PGresult *res);

/* Starts a batch of the queue's requests unless one of its kind is in flight (then the
 * queue keeps filling and goes when the answer comes): NULL when nothing is to be sent. */
static coach_batch_t *coach_batch_begin(coach_t *c, bool finish)
{
	coach_queue_t *q = finish ? &c->finish_q : &c->admit_q;
	bool *in_flight = finish ? &c->finish_in_flight : &c->admit_in_flight;
	*(finish ? &c->finish_armed : &c->admit_armed) = false;
	if (!q->n || *in_flight)
		return NULL;
	*in_flight = true;
	coach_batch_t *b = xcalloc(1, sizeof(*b));
	b->c = c;
	b->what = finish ? "finish" : "admit";
	b->list = xcalloc((size_t)q->n, sizeof(coach_analysis_t *));
	return b;
}

/* Sends the batch's requests (arr, taken) as the one parameter of sql; cb gets the answer. */
static void coach_batch_send(coach_batch_t *b, cJSON *arr, const char *sql, db_result_fn cb)
{
	char *json = cJSON_PrintUnformatted(arr);
	cJSON_Delete(arr);
	const char *params[1] = {json};
	if (!db_query(b->c->db, sql, 1, params, cb, b))
		cb(NULL, b);
	free(json);
}

static void coach_admit_cb(evutil_socket_t fd, short what, void *arg)
{
	coach_t *c = arg;
	(void)fd, (void)what;
	coach_batch_t *b = coach_batch_begin(c, false);
	if (!b)
		return;
	cJSON *arr = cJSON_CreateArray();
	const cfg_t *cfg = c->cfg;
	coach_analysis_t *a;
	while ((a = coach_pop(&c->admit_q))) {
		cJSON *o = cJSON_CreateObject();
		coach_add_ids(o, a);
		cJSON_AddNumberToObject(o, "company", (double)a->items[0].m.company);
		cJSON_AddStringToObject(o, "domain", a->items[0].m.domain);
		cJSON_AddStringToObject(o, "norm", a->norm);
		if (cfg->cache.enabled && a->norm[0] && !a->no_cache) {
			cJSON *cache = cJSON_AddObjectToObject(o, "cache");
			cJSON_AddNumberToObject(cache, "threshold", cfg->cache.similarity_threshold);
			cJSON_AddNumberToObject(cache, "ttl_s", cfg->cache.ttl_s);
			if (a->similar_searched) /* PostgreSQL looks for the same text only (schema/025) */
				cJSON_AddTrueToObject(cache, "similar_searched");
		} else {
			cJSON_AddNullToObject(o, "cache");
		}
		cJSON *lim = cJSON_AddObjectToObject(o, "limits");
		cJSON_AddNumberToObject(lim, "per_minute", cfg->limits.analyses_per_minute);
		cJSON_AddNumberToObject(lim, "cost_hour", cfg->limits.cost_per_hour_usd);
		cJSON_AddNumberToObject(lim, "cost_day", cfg->limits.cost_per_day_usd);
		cJSON_AddNumberToObject(lim, "pending", cfg->limits.pending_analyses);
		cJSON_AddNumberToObject(o, "reserve_usd", coach_reserve_usd(c, a));
		coach_add_agent(c, o, a);
		cJSON_AddNumberToObject(o, "deadline_s", cfg->ai.deadline_ms / 1000 + 30);
		cJSON_AddItemToArray(arr, o);
		b->list[b->n++] = a;
	}
	/* a streamed analysis needs its hint's id before the hint exists: the partial hints carry it */
	coach_batch_send(b, arr,
			 c->ai && cfg->ai.stream ? "SELECT atende_coach_admit_streamed($1::jsonb)"
						 : "SELECT atende_coach_admit($1::jsonb)",
			 coach_admitted);
}

/* An upper bound of the analysis's cost, reserved against the budget at admission: a
 * token is at least one byte, and the answer is capped at COACH_COMPLETION_TOKENS. */
static double coach_reserve_usd(const coach_t *c, const coach_analysis_t *a)
{
	const cfg_t *cfg = c->cfg;
	size_t bytes = strlen(ai_prompt(c->ai, a->items[0].m.domain)) + 512;
	for (int i = 0; i < a->n; i++)
		bytes += strlen(a->items[i].m.text) + 8;
	if (a->conv)
		for (int i = 0; i < a->conv->history_count; i++)
			bytes += strlen(a->conv->history[(a->conv->history_head + i) % COACH_HISTORY_MAX].text) + 16;
	double in = (double)(cfg->ai.price_small_in > cfg->ai.price_large_in ? cfg->ai.price_small_in : cfg->ai.price_large_in);
	double out = (double)(cfg->ai.price_small_out > cfg->ai.price_large_out ? cfg->ai.price_small_out : cfg->ai.price_large_out);
	/* prices are micro-USD per million tokens */
	return ((double)bytes * in + COACH_COMPLETION_TOKENS * out) / 1e12;
}

/* The messages' ids and their received_at: the pair finds a row in one partition. */
static void coach_add_ids(cJSON *o, const coach_analysis_t *a)
{
	cJSON *ids = cJSON_AddArrayToObject(o, "ids"), *rats = cJSON_AddArrayToObject(o, "received_at");
	for (int i = 0; i < a->n; i++) {
		cJSON_AddItemToArray(ids, cJSON_CreateNumber((double)a->items[i].m.message_id));
		cJSON_AddItemToArray(rats, cJSON_CreateString(a->items[i].m.received_at));
	}
}

/* The assigned agent and the interval that applies to it (company override or config). */
static void coach_add_agent(const coach_t *c, cJSON *o, const coach_analysis_t *a)
{
	const coach_msg_t *last = &a->items[a->n - 1].m;
	const coach_company_t *co = coach_company(c, last->company);
	if (last->agent_id)
		cJSON_AddNumberToObject(o, "agent", (double)last->agent_id);
	else
		cJSON_AddNullToObject(o, "agent");
	cJSON_AddNumberToObject(o, "agent_interval_s",
				co && co->agent_interval_s >= 0 ? co->agent_interval_s : c->cfg->limits.agent_interval_s);
}

/* The answer to a batched admit or finish query: the JSON array of per-analysis results,
 * or NULL when there is none (connection lost or an error). Then the batch's analyses go
 * back to their queue to be asked again, which both steps allow: admission is idempotent
 * for what is done (an extra reservation expires by itself), and finishing skips messages
 * that already have their outcome. */
static cJSON *coach_batch_answer(coach_batch_t *b, PGresult *res)
{
	coach_t *c = b->c;
	bool finish = strcmp(b->what, "finish") == 0;
	coach_queue_t *q = finish ? &c->finish_q : &c->admit_q;
	cJSON *out = NULL;
	*(finish ? &c->finish_in_flight : &c->admit_in_flight) = false;
	if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		out = cJSON_Parse(PQgetvalue(res, 0, 0));
	if (!out) {
		if (res)
			db_ok(res, finish ? "coach finish" : "coach admit");
		for (int i = 0; i < b->n; i++)
			coach_push(q, b->list[i], false);
		free(b->list);
		free(b);
	}
	if (q->n)
		coach_schedule(c, finish);
	return out;
}

static void coach_admitted(PGresult *res, void *arg)
{
	coach_batch_t *b = arg;
	coach_t *c = b->c;
	cJSON *out = coach_batch_answer(b, res);
	if (!out)
		return;
	for (int i = 0; i < b->n; i++) {
		coach_analysis_t *a = b->list[i];
		cJSON *r = cJSON_GetArrayItem(out, i);
		const char *decision = json_str(r, "decision");
		if (!decision || strcmp(decision, "done") == 0) {
			coach_complete(a); /* a redelivery of something already coached */
		} else if (strcmp(decision, "refused") == 0) {
			a->refuse = xstrdup(json_str(r, "reason") ? json_str(r, "reason") : "agent_interval");
			coach_push(&c->finish_q, a, false); /* recorded there; counted when finish confirms */
		} else if (strcmp(decision, "cache") == 0 &&
			   !coach_cache_agrees(a, json_str(cJSON_GetObjectItem(r, "hint"), "intent"),
					       json_true(cJSON_GetObjectItem(r, "hint"), "critical"))) {
			a->no_cache = true; /* a similar text that means something else: ask the AI */
			coach_count(c, "cache", "refused");
			coach_push(&c->admit_q, a, a->critical);
		} else if (strcmp(decision, "cache") == 0) {
			cJSON *h = cJSON_GetObjectItem(r, "hint");
			coach_cache_take(a, json_str(h, "intent"), json_true(h, "critical"), json_str(h, "text"));
		} else if (strcmp(decision, "limited") == 0) {
			const char *why = json_str(r, "reason");
			if (c->cfg->cache.enabled)
				coach_count(c, "cache", "miss");
			coach_count(c, "refusal", why ? why : "limit");
			coach_rules_hint(a, why ? why : "limit");
			coach_push(&c->finish_q, a, false);
		} else {
			if (c->cfg->cache.enabled)
				coach_count(c, "cache", "miss");
			a->reservation = (int64_t)json_num(r, "reservation", -1);
			a->hint_id = (int64_t)json_num(r, "hint_id", 0);
			if (!coach_semantic(a))
				coach_push(a->critical ? &c->ai_hi : &c->ai_lo, a, false);
		}
	}
	cJSON_Delete(out);
	free(b->list);
	free(b);
	coach_pump_ai(c);
	if (c->finish_q.n)
		coach_schedule(c, true);
	if (c->admit_q.n) /* refused cache hits, admitted again without the cache */
		coach_schedule(c, false);
}

/* Starts AI calls while the client has room, critical analyses first. */
static void coach_pump_ai(coach_t *c)
{
	ai_stats_t st;
	for (;;) {
		ai_stats(c->ai, &st);
		if (st.pending >= c->cfg->ai.max_in_flight)
			return;
		coach_analysis_t *a = coach_pop(&c->ai_hi);
		if (!a)
			a = coach_pop(&c->ai_lo);
		if (!a)
			return;
		const char **texts = xcalloc((size_t)a->n, sizeof(char *));
		for (int i = 0; i < a->n; i++)
			texts[i] = a->items[i].m.text;
		ai_turn_t hist[COACH_HISTORY_MAX];
		int nh = 0;
		if (a->conv)
			for (int i = 0; i < a->conv->history_count; i++) {
				int slot = (a->conv->history_head + i) % COACH_HISTORY_MAX;
				hist[nh].role = a->conv->history[slot].agent ? AI_ROLE_AGENT : AI_ROLE_CUSTOMER;
				hist[nh++].text = a->conv->history[slot].text;
			}
		ai_request_t req = {.domain = a->items[0].m.domain, .company = a->items[0].m.company,
				    .conversation = a->items[0].m.conversation_key, .texts = texts, .n_texts = a->n,
				    .history = hist, .n_history = nh, .critical = a->critical,
				    .partial = a->hint_id > 0 && c->cb.publish_partial ? coach_ai_partial : NULL};
		bool ok = ai_request(c->ai, &req, coach_ai_done, a);
		free(texts);
		if (!ok) {
			coach_rules_hint(a, NULL);
			snprintf(a->source, sizeof(a->source), "fallback");
			coach_push(&c->finish_q, a, false);
			coach_schedule(c, true);
		}
	}
}

static void coach_ai_done(const ai_result_t *res, void *arg)
{
	coach_analysis_t *a = arg;
	coach_t *c = a->c;
	if (!res->ok) { /* cancelled at shutdown: not done, so uncommitted, so redelivered */
		coach_drop(a);
		return;
	}
	snprintf(a->intent, sizeof(a->intent), "%s", rules_intent_name(res->intent));
	a->hint_critical = res->critical;
	a->text = xstrdup(res->hint);
	snprintf(a->source, sizeof(a->source), "%s", res->source);
	a->model = res->model ? xstrdup(res->model) : NULL;
	a->tokens_in = res->tokens_in;
	a->tokens_out = res->tokens_out;
	a->cost_usd = res->cost_usd + a->embed_cost_usd;
	a->latency_ms = res->latency_ms;
	a->cache_it = strcmp(res->source, "ai") == 0;
	coach_count(c, "source", res->source);
	coach_push(&c->finish_q, a, false);
	coach_schedule(c, true);
	coach_pump_ai(c);
}

/* The hint so far of a streamed analysis, as a partial hint event with its reserved id. */
static void coach_ai_partial(const char *text, const char *intent, void *arg)
{
	coach_analysis_t *a = arg;
	coach_t *c = a->c;
	const char *pids[256];
	int np = 0;
	for (int k = 0; k < a->n && np < 256; k++) {
		int seen = 0; /* a redelivered copy of a message already listed (see coach_finished) */
		while (seen < k && a->items[seen].m.message_id != a->items[k].m.message_id)
			seen++;
		if (seen == k)
			pids[np++] = a->items[k].m.provider_id;
	}
	const coach_msg_t *last = &a->items[a->n - 1].m;
	/* INTERFACE.md's fields of a hint, valid in a partial too (a client that does not know
	 * `partial` still reads an intent of the six and a time): the intent once the model has
	 * written it, "other" until then */
	char now[40];
	rules_intent_t known;
	json_iso_now(now, sizeof(now));
	if (!intent || !rules_intent_parse(intent, &known))
		intent = "other";
	evt_hint_t e = {.message_ids = pids, .n_message_ids = np, .hint_id = a->hint_id,
			.conversation_id = last->conversation_id, .conversation_key = last->conversation_key,
			.agent_id = last->agent_id, .company_id = last->company, .domain = last->domain,
			.intent = intent, .critical = a->critical, .text = text, .source = "ai", .created_at = now,
			.received_at = a->items[0].m.received_at, .partial = true, .withdrawn = text == NULL};
	if (!text)
		e.text = "";
	a->partials++;
	c->cb.publish_partial(&e, c->arg);
}

/* Partial hints went out for an analysis whose hint will not be stored: consoles drop them. */
static void coach_withdraw(coach_analysis_t *a)
{
	if (a->partials && a->hint_id > 0)
		coach_ai_partial(NULL, NULL, a);
}

static void coach_rules_hint(coach_analysis_t *a, const char *limited_by)
{
	rules_result_t r;
	struct timeval t0, t1;
	gettimeofday(&t0, NULL);
	coach_classify(a, &r);
	gettimeofday(&t1, NULL);
	snprintf(a->intent, sizeof(a->intent), "%s", rules_intent_name(r.intent));
	a->hint_critical = r.critical || a->critical;
	a->text = xstrdup(r.text);
	snprintf(a->source, sizeof(a->source), "rules");
	a->latency_ms = (int)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_usec - t0.tv_usec) / 1000);
	if (limited_by)
		snprintf(a->limited_by, sizeof(a->limited_by), "%s", limited_by);
	coach_count(a->c, "source", "rules");
}

/* A cache hit is only as good as the rules' reading of the new texts: the cached hint's
 * intent and critical flag must be the rules' (the critical patterns included). */
static bool coach_cache_agrees(const coach_analysis_t *a, const char *intent, bool critical)
{
	rules_result_t r;
	coach_classify(a, &r);
	return coach_rules_agree(&r, r.critical || a->critical, intent, critical);
}

/* The rules' reading r (critical_read: with the critical patterns) shares a cached hint's
 * intent and critical flag. */
static bool coach_rules_agree(const rules_result_t *r, bool critical_read, const char *intent, bool critical)
{
	return intent && strcmp(intent, rules_intent_name(r->intent)) == 0 && critical == critical_read;
}

/* The cache's key of a text (rules_cache_key), allocated. */
static char *coach_cache_key(const char *text)
{
	size_t cap = 2 * strlen(text) + 16; /* slang expands ("pfv" -> "por favor") */
	char *key = xmalloc(cap);
	rules_cache_key(text, key, cap);
	return key;
}

/* A cache hit the rules agree with (a cached hint of PostgreSQL's or of the memory's):
 * the analysis has its hint and goes to finish. */
static void coach_cache_take(coach_analysis_t *a, const char *intent, bool critical, const char *text)
{
	coach_t *c = a->c;
	snprintf(a->intent, sizeof(a->intent), "%s", intent ? intent : "other");
	a->hint_critical = critical || a->critical;
	a->text = xstrdup(text ? text : "");
	snprintf(a->source, sizeof(a->source), "cache");
	a->from_cache = true;
	coach_count(c, "source", "cache");
	coach_count(c, "cache", "hit");
	coach_shadow(a, "cache");
	coach_push(&c->finish_q, a, false);
}

/* cache.memory_entries: the texts are looked up in this worker's copy of the recent
 * hint_cache rows before PostgreSQL is asked. A hit the rules agree with skips admission and
 * goes to finish, which records it or the agent interval's refusal atomically (admission's own
 * checks only save AI calls, and a hit costs none). Anything else is decided against a copy
 * that holds every row committed before the lookup: the analysis waits for a read sent after
 * it (COACH_SIMC_WAIT_S apart at most), is looked up again, and if it still finds no hit,
 * PostgreSQL only looks for the same text (a row the ring has let go), not for a similar one
 * (milliseconds per lookup there, growing with the table). True: the analysis was taken (a
 * hit, or waiting); false: it goes on to admission. */
static bool coach_memory_lookup(coach_analysis_t *a)
{
	coach_t *c = a->c;
	const cfg_t *cfg = c->cfg;
	const coach_msg_t *m = &a->items[0].m;
	if (!c->simc || !cfg->cache.enabled || !a->norm[0] || a->no_cache)
		return false;
	double now = coach_now();
	if (!a->asked_at)
		a->asked_at = now;
	simcache_hit_t hit;
	bool found = simcache_find(c->simc, m->company, m->domain, a->norm, cfg->cache.similarity_threshold,
				   now - cfg->cache.ttl_s, &hit);
	if (found && coach_cache_agrees(a, hit.intent, hit.critical)) {
		coach_count(c, "cache_memory", "hit");
		coach_cache_take(a, hit.intent, hit.critical, hit.text);
		coach_schedule(c, true);
		coach_simc_refresh(c, COACH_SIMC_REFRESH_S); /* other workers' new rows, now and then */
		return true;
	}
	if (c->simc_fresh_at < a->asked_at) {
		coach_push(&c->simc_wait, a, false);
		coach_simc_refresh(c, COACH_SIMC_WAIT_S);
		return true;
	}
	/* refused: PostgreSQL's same-text row may be one the ring let go; it decides */
	coach_count(c, "cache_memory", found ? "refused" : "miss");
	a->similar_searched = true;
	return false;
}

/* Reads the hint_cache rows created since the last read, at most once per min_interval
 * (later from a timer when the waiting need it) and only while lookups come: an idle worker
 * asks nothing. The first read (and one after a pause longer than cache.ttl_s) takes the
 * newest rows of the last cache.ttl_s: the rings keep the newest, older rows are
 * PostgreSQL's alone. */
static void coach_simc_refresh(coach_t *c, double min_interval)
{
	if (c->simc_loading) /* its answer looks the waiting up again and asks again if needed */
		return;
	double now = coach_now(), due = c->simc_sent_at + min_interval;
	if (now < due) {
		if (c->simc_wait.n && !evtimer_pending(c->simc_ev, NULL)) {
			double wait = due - now;
			struct timeval tv = {(time_t)wait, (suseconds_t)((wait - (double)(time_t)wait) * 1e6)};
			evtimer_add(c->simc_ev, &tv);
		}
		return;
	}
	double oldest = now - c->cfg->cache.ttl_s;
	c->simc_newest_first = c->simc_since <= oldest;
	char since_s[32];
	snprintf(since_s, sizeof(since_s), "%.6f", c->simc_newest_first ? oldest : c->simc_since);
	const char *params[1] = {since_s};
	c->simc_loading = db_query(c->db, c->simc_newest_first ? COACH_SIMC_READ("DESC") : COACH_SIMC_READ("ASC"), 1,
				   params, coach_simc_loaded, c);
	if (c->simc_loading)
		c->simc_sent_at = now;
	else /* the database queue is full: the waiting ones go to PostgreSQL as they are */
		coach_simc_loaded(NULL, c);
}

static void coach_simc_due_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	coach_simc_refresh(arg, COACH_SIMC_WAIT_S);
}

/* A read's rows into the copy; then the waiting analyses are looked up again (or, when the
 * read failed, go to PostgreSQL's whole lookup). */
static void coach_simc_loaded(PGresult *res, void *arg)
{
	coach_t *c = arg;
	bool read = res && db_ok(res, "hint cache read");
	c->simc_loading = false;
	if (read)
		coach_simc_apply(c, res);
	coach_queue_t waiting = c->simc_wait;
	memset(&c->simc_wait, 0, sizeof(c->simc_wait));
	coach_analysis_t *a;
	bool admit = false;
	while ((a = coach_pop(&waiting)))
		if (!read || !coach_memory_lookup(a)) {
			coach_push(&c->admit_q, a, a->critical);
			admit = true;
		}
	if (admit)
		coach_schedule(c, false);
}

static void coach_simc_apply(coach_t *c, PGresult *res)
{
	int n = PQntuples(res);
	double newest = 0;
	if (n < COACH_SIMC_BATCH || c->simc_newest_first) /* else the rest comes with the next read */
		c->simc_fresh_at = c->simc_sent_at;
	for (int k = 0; k < n; k++) { /* oldest first: a ring keeps the last ones put */
		int i = c->simc_newest_first ? n - 1 - k : k;
		newest = atof(PQgetvalue(res, i, 7));
		simcache_put(c->simc, atol(PQgetvalue(res, i, 0)), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
			     atoll(PQgetvalue(res, i, 3)), PQgetvalue(res, i, 4), PQgetvalue(res, i, 5)[0] == 't',
			     PQgetvalue(res, i, 6), newest);
	}
	/* a full batch of the oldest rows goes on from its last one (its transaction's other rows
	 * share its time); otherwise the next refresh rereads the margin, where a row of a
	 * transaction that began earlier may have landed since */
	if (n == COACH_SIMC_BATCH && !c->simc_newest_first)
		c->simc_since = newest - 1e-6;
	else if (n > 0 && newest - COACH_SIMC_MARGIN_S > c->simc_since)
		c->simc_since = newest - COACH_SIMC_MARGIN_S;
	else if (n == 0 && c->simc_newest_first) /* nothing cached yet: from now on */
		c->simc_since = coach_now() - COACH_SIMC_MARGIN_S;
}

/* The rules' reading of the analysis's texts joined by newlines, with its domain. */
static void coach_classify(const coach_analysis_t *a, rules_result_t *r)
{
	if (a->classified) {
		*r = a->rules;
		return;
	}
	char *joined = coach_join(a, "\n");
	rules_classify(joined, a->items[0].m.domain, r);
	free(joined);
}

bool coach_route_decide(const cfg_t *cfg, const char *text, const char *domain, rules_result_t *r)
{
	memset(r, 0, sizeof(*r));
	if (!text || text_utf8_length(text) > (size_t)cfg->route.max_chars)
		return false;
	rules_classify(text, domain, r);
	return !r->critical && r->confidence >= cfg->route.min_confidence;
}

/* ai.route_confident: an analysis short enough (ai.route_max_chars characters together)
 * that the rules classify, not critical, with at least ai.route_min_confidence gets the
 * rules' hint now (source "rules", routed), with no admission, cache or AI call; the agent
 * interval still applies when it is stored. False: the analysis goes on to the AI. */
static bool coach_route(coach_analysis_t *a)
{
	const cfg_t *cfg = a->c->cfg;
	rules_result_t r;
	char *joined = coach_join(a, "\n");
	struct timeval t0, t1;
	gettimeofday(&t0, NULL);
	bool route = coach_route_decide(cfg, joined, a->items[0].m.domain, &r);
	gettimeofday(&t1, NULL);
	free(joined);
	if (!route)
		return false;
	snprintf(a->intent, sizeof(a->intent), "%s", rules_intent_name(r.intent));
	a->hint_critical = false;
	a->text = xstrdup(r.text);
	snprintf(a->source, sizeof(a->source), "rules");
	a->routed = true;
	a->latency_ms = (int)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_usec - t0.tv_usec) / 1000);
	coach_count(a->c, "source", "rules");
	coach_count(a->c, "routed", rules_intent_name(r.intent));
	coach_shadow(a, "routed");
	return true;
}

/* ai.shadow_share: this share of cache and routed hints (chosen by message id, so the same
 * on every worker and redelivery) is also analysed by the AI in the background, the new
 * texts alone; the answer is only compared (same intent and critical flag) and counted.
 * Not while a cost cap is set: these calls pass no admission, so they could exceed it. */
static void coach_shadow(coach_analysis_t *a, const char *kind)
{
	coach_t *c = a->c;
	const cfg_t *cfg = c->cfg;
	if (!c->ai || cfg->route.shadow_share <= 0 || cfg->limits.cost_per_hour_usd > 0 || cfg->limits.cost_per_day_usd > 0)
		return;
	uint64_t h = (uint64_t)a->items[a->n - 1].m.message_id * 0x9E3779B97F4A7C15ull;
	if ((double)(h >> 11) / 9007199254740992.0 >= cfg->route.shadow_share)
		return;
	const char **texts = xcalloc((size_t)a->n, sizeof(char *));
	for (int i = 0; i < a->n; i++)
		texts[i] = a->items[i].m.text;
	coach_shadow_t *s = xcalloc(1, sizeof(*s));
	s->c = c;
	s->kind = kind;
	snprintf(s->intent, sizeof(s->intent), "%s", a->intent);
	s->critical = a->hint_critical;
	ai_request_t req = {.domain = a->items[0].m.domain, .company = a->items[0].m.company,
			    .conversation = a->items[0].m.conversation_key, .texts = texts, .n_texts = a->n};
	if (!ai_request(c->ai, &req, coach_shadow_done, s))
		free(s);
	free(texts);
}

static void coach_shadow_done(const ai_result_t *res, void *arg)
{
	coach_shadow_t *s = arg;
	char what[32];
	if (res->ok) { /* not ok: cancelled at shutdown, s->c may be gone */
		const char *result = strcmp(res->source, "ai") != 0 ? "failed"
				     : strcmp(rules_intent_name(res->intent), s->intent) == 0 && res->critical == s->critical
					 ? "agree"
					 : "disagree";
		snprintf(what, sizeof(what), "%s:%s", s->kind, result);
		coach_count(s->c, "shadow", what);
	}
	free(s);
}

/* ai.embeddings_model: after a trigram miss, the texts' embedding is looked up among the
 * company and domain's recent AI hints (worker/embed.h). The nearest one at or above
 * ai.embeddings_threshold, younger than cache.ttl_s, whose intent and critical flag the
 * rules confirm is reused as a cache hit (and may be shadow-checked as "semantic"); one the
 * rules contradict is refused. Any other outcome, a failed embedding included, goes on to
 * the AI as before. True: the embedding was asked and coach_embedded decides. */
static bool coach_semantic(coach_analysis_t *a)
{
	coach_t *c = a->c;
	if (!c->emb || !c->cfg->cache.enabled || !a->norm[0])
		return false;
	return ai_embed(c->ai, a->norm, coach_embedded, a);
}

static void coach_embedded(const float *vec, int dim, int tokens, double cost, const char *error, void *arg)
{
	coach_analysis_t *a = arg;
	coach_t *c = a->c;
	(void)tokens;
	if (!vec && error && strcmp(error, "cancelled") == 0) {
		coach_drop(a); /* shutdown */
		return;
	}
	a->embed_cost_usd = cost;
	if (!vec || !c->emb) {
		if (!vec) {
			log_debug("coach: no embedding (%s): semantic lookup skipped", error ? error : "?");
			coach_count(c, "semantic", "failed");
		}
		coach_to_ai(a);
		return;
	}
	a->vec = xmalloc((size_t)dim * sizeof(float));
	memcpy(a->vec, vec, (size_t)dim * sizeof(float));
	a->dim = dim;
	if (!embed_normalize(a->vec, dim)) {
		free(a->vec);
		a->vec = NULL;
		coach_count(c, "semantic", "failed");
		coach_to_ai(a);
		return;
	}
	double sim;
	const embed_entry_t *e = embed_index_nearest(c->emb, a->items[0].m.company, a->items[0].m.domain, a->vec, dim,
						     c->cfg->emb.threshold, coach_now() - c->cfg->cache.ttl_s, &sim);
	if (!e) {
		coach_count(c, "semantic", "miss");
		coach_to_ai(a);
		return;
	}
	if (!coach_cache_agrees(a, e->intent, e->critical)) {
		log_debug("coach: semantic neighbour of hint %lld (%.3f, %s) refused: the rules read otherwise",
			  (long long)e->hint_id, sim, e->intent);
		coach_count(c, "semantic", "refused");
		coach_to_ai(a);
		return;
	}
	snprintf(a->intent, sizeof(a->intent), "%s", e->intent);
	a->hint_critical = e->critical || a->critical;
	a->text = xstrdup(e->text);
	snprintf(a->source, sizeof(a->source), "cache");
	a->from_cache = true;
	a->cost_usd = a->embed_cost_usd;
	free(a->vec); /* only AI hints are remembered */
	a->vec = NULL;
	coach_count(c, "source", "cache");
	coach_count(c, "semantic", "hit");
	coach_shadow(a, "semantic");
	coach_push(&c->finish_q, a, false);
	coach_schedule(c, true);
}

static void coach_to_ai(coach_analysis_t *a)
{
	coach_push(a->critical ? &a->c->ai_hi : &a->c->ai_lo, a, false);
	coach_pump_ai(a->c);
}

/* An analysis cancelled at shutdown: not done, so uncommitted, so redelivered. */
static void coach_drop(coach_analysis_t *a)
{
	coach_t *c = a->c;
	coach_withdraw(a); /* the redelivery gets another hint id */
	for (int i = 0; i < a->n; i++)
		coach_free_item(&a->items[i]);
	c->pending -= a->n;
	if (a->conv)
		a->conv->busy = false;
	free(a->items);
	free(a->norm);
	free(a->vec);
	free(a);
}

/* Follows the config: an index for ai.embeddings_model (a new one, loaded from
 * hint_embeddings, when the model changes), none when it is empty or the cache is off. */
static void coach_emb_setup(coach_t *c)
{
	const char *model = c->ai && c->cfg->cache.enabled && c->cfg->emb.model ? c->cfg->emb.model : "";
	if (c->emb && model[0] && strcmp(c->emb_model, model) == 0)
		return;
	embed_index_free(c->emb);
	free(c->emb_model);
	c->emb = NULL;
	c->emb_model = NULL;
	c->emb_last_id = 0;
	c->emb_primed = false;
	c->emb_gen++;
	if (!model[0])
		return;
	c->emb = embed_index_new(c->cfg->emb.ring);
	c->emb_model = xstrdup(model);
	coach_emb_refresh_cb(-1, 0, c);
}

static void coach_emb_done(PGresult *res, void *arg)
{
	(void)arg;
	db_ok(res, "hint embeddings");
}

/* Loads the newest rows of the model (at most a ring per company and domain) not loaded
 * yet, the other workers' only once the first load is done, and deletes expired rows. */
static void coach_emb_refresh_cb(evutil_socket_t fd, short what, void *arg)
{
	coach_t *c = arg;
	(void)fd, (void)what;
	if (!c->emb || c->emb_loading)
		return;
	char last[24], pid[16], ttl[16], ring[16];
	snprintf(last, sizeof(last), "%lld", (long long)c->emb_last_id);
	snprintf(pid, sizeof(pid), "%d", c->emb_primed ? (int)getpid() : -1); /* after the first load, what this worker stored is held already */
	snprintf(ttl, sizeof(ttl), "%d", c->cfg->cache.ttl_s);
	snprintf(ring, sizeof(ring), "%d", c->cfg->emb.ring);
	const char *params[] = {c->emb_model, last, pid, ttl, ring};
	c->emb_query_gen = c->emb_gen;
	c->emb_loading = db_query(
		c->db,
		"SELECT id, hint_id, company_id, domain, intent, critical, text, vec::text, extract(epoch from created_at) "
		"FROM (SELECT e.*, row_number() OVER (PARTITION BY company_id, domain ORDER BY id DESC) AS rn "
		"FROM hint_embeddings e WHERE model = $1 AND id > $2::bigint AND worker <> $3::int "
		"AND created_at > now() - make_interval(secs => $4::int)) x WHERE rn <= $5::int ORDER BY id",
		5, params, coach_emb_loaded, c);
	if (!db_query(c->db, "DELETE FROM hint_embeddings WHERE created_at < now() - make_interval(secs => $1::int)", 1,
		      (const char *[]){ttl}, coach_emb_done, NULL))
		log_warn("coach: database queue full; hint embeddings not refreshed");
}

static void coach_emb_loaded(PGresult *res, void *arg)
{
	coach_t *c = arg;
	c->emb_loading = false;
	if (!db_ok(res, "hint embeddings") || !c->emb || c->emb_query_gen != c->emb_gen)
		return;
	int n = PQntuples(res);
	for (int i = 0; i < n; i++) {
		float *v;
		int dim = embed_pg_parse(PQgetvalue(res, i, 7), &v);
		if (dim > 0)
			embed_index_add(c->emb, atol(PQgetvalue(res, i, 2)), PQgetvalue(res, i, 3), v, dim,
					atoll(PQgetvalue(res, i, 1)), PQgetvalue(res, i, 4), PQgetvalue(res, i, 5)[0] == 't',
					PQgetvalue(res, i, 6), atof(PQgetvalue(res, i, 8)));
		free(v);
		int64_t id = atoll(PQgetvalue(res, i, 0));
		if (id > c->emb_last_id)
			c->emb_last_id = id;
	}
	if (n && !c->emb_primed)
		log_info("coach: %d hint embeddings loaded (%d kept)", n, embed_index_size(c->emb));
	c->emb_primed = true;
}

/* Stores the vectors of AI hints just stored (rows built by coach_finished). */
static void coach_emb_store(coach_t *c, cJSON *rows)
{
	char *json = cJSON_PrintUnformatted(rows), pid[16];
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	const char *params[] = {json, c->emb_model, pid};
	if (!db_query(c->db,
		      "INSERT INTO hint_embeddings (hint_id, company_id, domain, intent, critical, text, model, worker, vec) "
		      "SELECT (e->>'hint_id')::bigint, (e->>'company')::bigint, e->>'domain', e->>'intent', "
		      "(e->>'critical')::boolean, e->>'text', $2, $3::int, (e->>'vec')::real[] "
		      "FROM jsonb_array_elements($1::jsonb) e",
		      3, params, coach_emb_done, NULL))
		log_warn("coach: database queue full; %d hint embeddings not stored", cJSON_GetArraySize(rows));
	free(json);
}

static void coach_finish_cb(evutil_socket_t fd, short what, void *arg)
{
	coach_t *c = arg;
	(void)fd, (void)what;
	coach_batch_t *b = coach_batch_begin(c, true);
	if (!b)
		return;
	cJSON *arr = cJSON_CreateArray();
	coach_analysis_t *a;
	while ((a = coach_pop(&c->finish_q))) {
		const coach_msg_t *last = &a->items[a->n - 1].m;
		cJSON *o = cJSON_CreateObject();
		cJSON *pids = cJSON_AddArrayToObject(o, "provider_ids");
		coach_add_ids(o, a);
		for (int i = 0; i < a->n; i++)
			cJSON_AddItemToArray(pids, cJSON_CreateString(a->items[i].m.provider_id));
		cJSON_AddNumberToObject(o, "conversation_id", (double)last->conversation_id);
		cJSON_AddNumberToObject(o, "company", (double)last->company);
		cJSON_AddStringToObject(o, "domain", last->domain);
		coach_add_agent(c, o, a);
		cJSON_AddStringToObject(o, "norm", a->norm ? a->norm : "");
		cJSON_AddBoolToObject(o, "cache_it", a->cache_it && c->cfg->cache.enabled);
		if (a->hint_id > 0) /* the id its partial hints carried */
			cJSON_AddNumberToObject(o, "hint_id", (double)a->hint_id);
		if (a->reservation >= 0)
			cJSON_AddNumberToObject(o, "reservation", (double)a->reservation);
		else
			cJSON_AddNullToObject(o, "reservation");
		json_add_str_or_null(o, "skip", a->skip);
		json_add_str_or_null(o, "refuse", a->refuse);
		if (!a->skip && !a->refuse) {
			cJSON *h = cJSON_AddObjectToObject(o, "hint");
			cJSON_AddStringToObject(h, "intent", a->intent);
			cJSON_AddBoolToObject(h, "critical", a->hint_critical);
			cJSON_AddStringToObject(h, "text", a->text ? a->text : "");
			cJSON_AddStringToObject(h, "source", a->source);
			cJSON_AddBoolToObject(h, "routed", a->routed);
			json_add_str_or_null(h, "model", a->model);
			cJSON_AddNumberToObject(h, "tokens_in", a->tokens_in);
			cJSON_AddNumberToObject(h, "tokens_out", a->tokens_out);
			cJSON_AddNumberToObject(h, "cost_usd", a->cost_usd);
			cJSON_AddNumberToObject(h, "latency_ms", a->latency_ms);
			json_add_str_or_null(h, "limited_by", a->limited_by[0] ? a->limited_by : NULL);
		} else {
			cJSON_AddNullToObject(o, "hint");
		}
		cJSON_AddItemToArray(arr, o);
		b->list[b->n++] = a;
	}
	coach_batch_send(b, arr, "SELECT atende_coach_finish($1::jsonb)", coach_finished);
}

static void coach_finished(PGresult *res, void *arg)
{
	coach_batch_t *b = arg;
	coach_t *c = b->c;
	cJSON *out = coach_batch_answer(b, res);
	if (!out)
		return;
	cJSON *emb_rows = cJSON_CreateArray(); /* AI hints with a vector, for hint_embeddings */
	for (int i = 0; i < b->n; i++) {
		coach_analysis_t *a = b->list[i];
		cJSON *r = cJSON_GetArrayItem(out, i);
		const char *decision = json_str(r, "decision");
		if (decision && strcmp(decision, "hinted") == 0 && a->vec && c->emb && strcmp(a->source, "ai") == 0) {
			const coach_msg_t *m = &a->items[a->n - 1].m;
			int64_t hid = (int64_t)json_num(r, "hint_id", 0);
			embed_index_add(c->emb, m->company, m->domain, a->vec, a->dim, hid, a->intent, a->hint_critical,
					a->text, coach_now());
			cJSON *e = cJSON_CreateObject();
			cJSON_AddNumberToObject(e, "hint_id", (double)hid);
			cJSON_AddNumberToObject(e, "company", (double)m->company);
			cJSON_AddStringToObject(e, "domain", m->domain);
			cJSON_AddStringToObject(e, "intent", a->intent);
			cJSON_AddBoolToObject(e, "critical", a->hint_critical);
			cJSON_AddStringToObject(e, "text", a->text ? a->text : "");
			char *vec = embed_pg_array(a->vec, a->dim);
			cJSON_AddStringToObject(e, "vec", vec);
			free(vec);
			cJSON_AddItemToArray(emb_rows, e);
		}
		if (decision && strcmp(decision, "hinted") == 0 && a->cache_it && c->simc && c->cfg->cache.enabled) {
			const coach_msg_t *m = &a->items[a->n - 1].m; /* finish cached it under these */
			simcache_put(c->simc, m->company, m->domain, a->norm, (int64_t)json_num(r, "hint_id", 0),
				     a->intent, a->hint_critical, a->text, coach_now());
		}
		if (decision && strcmp(decision, "hinted") == 0) {
			cJSON *covered = cJSON_GetObjectItem(r, "covered"), *id;
			const char *pids[256];
			void *tokens[256];
			int np = 0, nt = 0;
			for (int k = 0; k < a->n && nt < 256; k++)
				tokens[nt++] = a->items[k].m.token;
			/* one entry per covered message: a message redelivered while its first copy
			 * waited is in the analysis twice (both tokens released above), but it is one
			 * message of the hint (a chaos run's console saw 2,744 ids twice) */
			cJSON_ArrayForEach(id, covered)
			{
				for (int k = 0; k < a->n && np < 256; k++)
					if (a->items[k].m.message_id == (int64_t)id->valuedouble) {
						pids[np++] = a->items[k].m.provider_id;
						break;
					}
			}
			const coach_msg_t *last = &a->items[a->n - 1].m;
			coach_hint_t h = {.event = {.message_ids = pids, .n_message_ids = np,
						    .hint_id = (int64_t)json_num(r, "hint_id", 0),
						    .conversation_id = last->conversation_id,
						    .conversation_key = last->conversation_key, .agent_id = last->agent_id,
						    .company_id = last->company, .domain = last->domain, .intent = a->intent,
						    .critical = a->hint_critical, .text = a->text, .source = a->source,
						    .from_cache = a->from_cache, .routed = a->routed, .model = a->model,
						    .created_at = json_str(r, "created_at"),
						    .received_at = a->items[0].m.received_at},
					  .tokens = tokens, .n_tokens = nt, .seconds = coach_now() - a->items[0].added_at};
			c->cb.publish_hint(&h, c->arg);
		} else {
			if (decision && strcmp(decision, "refused") == 0)
				coach_count(c, "refusal", json_str(r, "reason") ? json_str(r, "reason") : "agent_interval");
			coach_withdraw(a);
		}
		coach_complete(a);
	}
	if (cJSON_GetArraySize(emb_rows))
		coach_emb_store(c, emb_rows);
	cJSON_Delete(emb_rows);
	cJSON_Delete(out);
	free(b->list);
	free(b);
}

/* The analysis is over: hand its messages back, and start the conversation's next one
 * if messages are waiting and the smart buffer's window has passed. */
static void coach_complete(coach_analysis_t *a)
{
	coach_t *c = a->c;
	coach_conv_t *v = a->conv;
	for (int i = 0; i < a->n; i++) {
		/* analysed messages join the history that the next analysis sends */
		coach_history(c, a->items[i].m.conversation_key, false, a->items[i].m.text);
		c->cb.message_done(a->items[i].m.token, c->arg);
		coach_free_item(&a->items[i]);
		c->pending--;
	}
	if (v) {
		v->busy = false;
		v->last_used = coach_now();
		if (v->n_pending && !v->timer_armed)
			coach_start(v);
	}
	free(a->items);
	free(a->norm);
	free(a->skip);
	free(a->refuse);
	free(a->text);
	free(a->model);
	free(a->vec);
	free(a);
}

static char *coach_join(const coach_analysis_t *a, const char *sep)
{
	size_t len = 1;
	for (int i = 0; i < a->n; i++)
		len += strlen(a->items[i].m.text) + strlen(sep);
	char *s = xmalloc(len), *p = s;
	*p = 0;
	for (int i = 0; i < a->n; i++)
		p += sprintf(p, "%s%s", i ? sep : "", a->items[i].m.text);
	return s;
}

static void coach_count(coach_t *c, const char *kind, const char *what)
{
	if (c->cb.count)
		c->cb.count(kind, what, c->arg);
}

/* ---- per-company overrides, refreshed from PostgreSQL ---- */

static const coach_company_t *coach_company(const coach_t *c, long id)
{
	for (int i = 0; i < c->n_companies; i++)
		if (c->companies[i].id == id)
			return &c->companies[i];
	return NULL;
}

static void coach_companies_cb(evutil_socket_t fd, short what, void *arg)
{
	coach_t *c = arg;
	(void)fd, (void)what;
	if (!db_query(c->db,
		      "SELECT id, coaching_enabled, coalesce(min_message_length, -1), coalesce(agent_interval_s, -1) "
		      "FROM companies ORDER BY id LIMIT 1024",
		      0, NULL, coach_companies_loaded, c))
		log_warn("coach: database queue full; company settings not refreshed");
}

static void coach_companies_loaded(PGresult *res, void *arg)
{
	coach_t *c = arg;
	if (!db_ok(res, "company settings"))
		return;
	int n = PQntuples(res);
	for (int i = 0; i < n && i < COACH_MAX_COMPANIES; i++) {
		c->companies[i].id = atol(PQgetvalue(res, i, 0));
		c->companies[i].enabled = PQgetvalue(res, i, 1)[0] == 't';
		c->companies[i].min_length = atoi(PQgetvalue(res, i, 2));
		c->companies[i].agent_interval_s = atoi(PQgetvalue(res, i, 3));
	}
	c->n_companies = n < COACH_MAX_COMPANIES ? n : COACH_MAX_COMPANIES;
}

static double coach_now(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}
