/*
 * bot: bot mode (see bot.h). A message walks
 * decide (atende_bot_turn) -> [answer: AI or templates -> record (atende_bot_answered)
 * -> bot reply request on atende.outbound] | [hand-off: assignment events -> (after hours:
 * a reply saying when agents are back) -> coached for the agent] -> done,
 * every step re-runnable: the decision and the answer are recorded per message before
 * anything is published, and the reply request's id is the message's.
 */
#include "bot.h"
#include "coach.h"
#include "hours.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "rules.h"
#include "text.h"
#include "xalloc.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#define BOT_REPUBLISH_MS 1000
#define BOT_HISTORY_MAX 32

typedef struct bot_job bot_job_t;
typedef void (*bot_step_fn)(bot_job_t *j);
typedef void (*bot_result_fn)(bot_job_t *j, PGresult *res);

/* One customer message being handled. */
struct bot_job {
	bot_t *b;
	bot_job_t *prev, *next;   /* b->jobs */
	bot_job_t *dnext;         /* in the decision queue */
	bot_msg_t m;              /* own copies of the strings */
	double added_at;
	char request_id[160];     /* the bot reply's: "bot:<channel>:<provider_id>" */
	const char *reason;       /* what the text alone says: customer_asked | critical | NULL (static) */
	bool after_hours;
	char back[128];           /* when agents are back, after hours */
	/* after the decision */
	bool handoff;             /* handed off: coached for agent once everything is published */
	int64_t agent;
	char *answer;             /* the text to send */
	char source[16];          /* where it came from: ai | rules */
	evt_t *events;
	int n_events, unacked;
	bool pub_failed;
	/* plumbing */
	struct event *timer;
	bot_step_fn timer_fn, again;
	bot_result_fn on_result;
	int db_errors;
	int ext;                  /* database answers, AI answers and acknowledgements pending */
	bool orphan;              /* bot_free ran: free at ext 0, touch nothing else */
};

struct bot {
	struct event_base *base;
	db_t *db;
	const cfg_t *cfg;
	ai_t *ai;
	bot_callbacks_t cb;
	void *arg;
	bot_job_t *jobs;
	int n_jobs;
	/* decisions: one atende_bot_decide per loop turn, one in flight at a time (batches grow
	 * with the load, as the coach's admit and finish do) */
	bot_job_t *dq_head, *dq_tail;
	int dq_n;
	struct event *decide_ev;
	bool decide_armed, decide_in_flight;
	metrics_family_t *m_answers, *m_handoffs;
	metrics_series_t *m_seconds;
};

static void bj_decide(bot_job_t *j);
static void bot_decide_cb(evutil_socket_t fd, short what, void *arg);
static void bot_decided(PGresult *res, void *arg);
static void bj_decided(bot_job_t *j, PGresult *res);
static void bj_outcome(bot_job_t *j, cJSON *d);
static void bj_compute(bot_job_t *j, const cJSON *history);
static void bj_ai_done(const ai_result_t *res, void *arg);
static void bj_ai_handoff(bot_job_t *j);
static void bj_record_answer(bot_job_t *j);
static void bj_answer_recorded(bot_job_t *j, PGresult *res);
static void bj_send(bot_job_t *j);
static void bj_request_acked(void *ctx, bool ok);
static void bj_publish(bot_job_t *j);
static void bj_event_acked(void *ctx, bool ok);
static void bj_after_events(bot_job_t *j);
static void bj_finish(bot_job_t *j);
static void bj_to_coach(bot_job_t *j, int64_t agent);
static void bj_query(bot_job_t *j, const char *sql, int n, const char *const *params, bot_result_fn on, bot_step_fn again);
static void bj_db_cb(PGresult *res, void *arg);
static void bj_later(bot_job_t *j, bot_step_fn fn, long ms);
static void bj_timer_cb(evutil_socket_t fd, short what, void *arg);
static void bj_unlink(bot_job_t *j);
static void bj_free(bot_job_t *j);
static bool bot_ext_done(bot_job_t *j);
static int bot_distance(const char *a, size_t la, const char *b, size_t lb);
static double bot_now(void);

bot_t *bot_new(struct event_base *base, db_t *db, const cfg_t *cfg, ai_t *ai, const bot_callbacks_t *cb, void *arg)
{
	bot_t *b = xcalloc(1, sizeof(*b));
	b->base = base;
	b->db = db;
	b->cfg = cfg;
	b->ai = ai;
	b->cb = *cb;
	b->arg = arg;
	b->decide_ev = evtimer_new(base, bot_decide_cb, b);
	b->m_answers = metrics_family("atende_worker_bot_answers_total", METRICS_COUNTER,
				      "Bot answers sent to customers, by source (ai, rules, after_hours).", NULL, 0);
	b->m_handoffs = metrics_family("atende_worker_bot_handoffs_total", METRICS_COUNTER,
				       "Conversations the bot handed to agents, by reason (customer_asked, critical, "
				       "bot_cannot_help, max_turns).",
				       NULL, 0);
	b->m_seconds = metrics_series(metrics_family("atende_worker_bot_seconds", METRICS_HISTOGRAM,
						     "Customer message handed to the bot -> its answer request (or hand-off) "
						     "acknowledged by the broker.",
						     metrics_latency_buckets, metrics_latency_nbuckets),
				      "");
	return b;
}

bool bot_wants(const bot_t *b, long company, const char *domain)
{
	const cfg_company_t *co = cfg_company_find(b->cfg, company);
	int d = domain ? cfg_domain_index(domain) : -1;
	return co && d >= 0 && co->bot_domains[d];
}

void bot_add(bot_t *b, const bot_msg_t *m)
{
	bot_job_t *j = xcalloc(1, sizeof(*j));
	j->b = b;
	j->m = *m;
	j->m.conversation_key = xstrdup(m->conversation_key ? m->conversation_key : "");
	j->m.channel = xstrdup(m->channel ? m->channel : "");
	j->m.provider_id = xstrdup(m->provider_id ? m->provider_id : "");
	j->m.domain = xstrdup(m->domain ? m->domain : "");
	j->m.text = xstrdup(m->text ? m->text : "");
	j->added_at = bot_now();
	j->timer = evtimer_new(b->base, bj_timer_cb, j);
	j->next = b->jobs;
	if (b->jobs)
		b->jobs->prev = j;
	b->jobs = j;
	b->n_jobs++;
	if (strlen(j->m.channel) + strlen(j->m.provider_id) + 6 < 128)
		snprintf(j->request_id, sizeof(j->request_id), "bot:%s:%s", j->m.channel, j->m.provider_id);
	else /* outbound keeps request ids under 128 bytes: the stored message's id is as unique */
		snprintf(j->request_id, sizeof(j->request_id), "bot:m%lld", (long long)j->m.message_id);
	const cfg_t *cfg = b->cfg;
	if (bot_asks_for_person(j->m.text, cfg->bot.handoff_phrases))
		j->reason = "customer_asked";
	else if (coach_is_critical(j->m.text, cfg->coaching.critical_patterns))
		j->reason = "critical";
	const cfg_company_t *co = cfg_company_find(cfg, m->company);
	j->after_hours = co && !hours_open(&co->open_hours, co->timezone, time(NULL), j->back, sizeof(j->back));
	bj_later(j, bj_decide, 0); /* never a callback from inside bot_add */
}

int bot_pending(const bot_t *b)
{
	return b->n_jobs;
}

void bot_free(bot_t *b)
{
	if (!b)
		return;
	while (b->jobs) {
		bot_job_t *j = b->jobs;
		b->jobs = j->next;
		event_free(j->timer);
		j->timer = NULL;
		j->b = NULL;
		if (j->ext > 0)
			j->orphan = true;
		else
			bj_free(j);
	}
	event_free(b->decide_ev);
	free(b);
}

/* ------------------------------------------------------------------ the decision */

/* Queues the job's decision for this loop turn's batch. */
static void bj_decide(bot_job_t *j)
{
	bot_t *b = j->b;
	j->dnext = NULL;
	if (b->dq_tail)
		b->dq_tail->dnext = j;
	else
		b->dq_head = j;
	b->dq_tail = j;
	b->dq_n++;
	if (!b->decide_armed && !b->decide_in_flight) {
		struct timeval zero = {0, 0};
		b->decide_armed = true;
		evtimer_add(b->decide_ev, &zero);
	}
}

typedef struct {
	bot_t *b;
	bot_job_t **jobs;
	int n;
} bot_batch_t;

static void bot_decide_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	bot_t *b = arg;
	b->decide_armed = false;
	if (b->decide_in_flight || !b->dq_n)
		return;
	const cfg_t *cfg = b->cfg;
	char num[24];
	int hist = cfg->ai.history_messages < BOT_HISTORY_MAX ? cfg->ai.history_messages : BOT_HISTORY_MAX;
	bot_batch_t *batch = xcalloc(1, sizeof(*batch));
	batch->b = b;
	batch->jobs = xcalloc((size_t)b->dq_n, sizeof(bot_job_t *));
	cJSON *arr = cJSON_CreateArray();
	for (bot_job_t *j = b->dq_head, *next; j; j = next) {
		next = j->dnext;
		cJSON *p = cJSON_CreateObject();
		snprintf(num, sizeof(num), "%lld", (long long)j->m.message_id);
		cJSON_AddRawToObject(p, "message_id", num);
		snprintf(num, sizeof(num), "%lld", (long long)j->m.conversation_id);
		cJSON_AddRawToObject(p, "conversation_id", num);
		snprintf(num, sizeof(num), "%ld", j->m.company);
		cJSON_AddRawToObject(p, "company", num);
		json_add_str_or_null(p, "reason", j->reason);
		cJSON_AddNumberToObject(p, "max_turns", cfg->bot.max_turns);
		cJSON_AddBoolToObject(p, "after_hours", j->after_hours);
		cJSON_AddStringToObject(p, "request_id", j->request_id);
		cJSON_AddNumberToObject(p, "history", hist);
		cJSON_AddItemToArray(arr, p);
		batch->jobs[batch->n++] = j;
		j->ext++;
	}
	b->dq_head = b->dq_tail = NULL;
	b->dq_n = 0;
	char *json = cJSON_PrintUnformatted(arr);
	cJSON_Delete(arr);
	const char *params[1] = {json};
	b->decide_in_flight = true;
	if (!db_query(b->db, "SELECT atende_bot_decide($1::jsonb)", 1, params, bot_decided, batch))
		bot_decided(NULL, batch); /* the connection's queue is full: asked again below */
	free(json);
}

/* The batch's decisions, in order; on a lost connection or an error every job is asked
 * again (deciding is idempotent: a recorded decision is answered as it was). */
static void bot_decided(PGresult *res, void *arg)
{
	bot_batch_t *batch = arg;
	bot_t *b = NULL;
	bool ok = res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
	cJSON *out = ok ? cJSON_Parse(PQgetvalue(res, 0, 0)) : NULL;
	const char *e = res && !ok ? PQresultErrorMessage(res) : NULL;
	if (e && *e)
		log_warn("bot: a batch of %d decisions failed: %.*s", batch->n, (int)strcspn(e, "\n"), e);
	for (int i = 0; i < batch->n; i++) {
		bot_job_t *j = batch->jobs[i];
		if (!bot_ext_done(j))
			continue;
		b = j->b;
		b->decide_in_flight = false;
		cJSON *d = cJSON_GetArrayItem(out, i);
		if (json_str(d, "decision")) {
			bj_outcome(j, d);
		} else if (!res) {
			bj_later(j, bj_decide, 100);
		} else if (++j->db_errors >= b->cfg->workers.retries) {
			log_error("bot: message %s of conversation %lld: no decision after %d attempts; coached instead",
				  j->m.provider_id, (long long)j->m.conversation_id, j->db_errors);
			bj_to_coach(j, 0);
		} else {
			bj_later(j, bj_decide, 100L << (j->db_errors < 10 ? j->db_errors : 10));
		}
	}
	cJSON_Delete(out);
	free(batch->jobs);
	free(batch);
	if (b && b->dq_n && !b->decide_armed) {
		struct timeval zero = {0, 0};
		b->decide_armed = true;
		evtimer_add(b->decide_ev, &zero);
	}
}

static void bj_decided(bot_job_t *j, PGresult *res)
{
	cJSON *d = PQntuples(res) == 1 ? cJSON_Parse(PQgetvalue(res, 0, 0)) : NULL;
	if (!json_str(d, "decision")) {
		cJSON_Delete(d);
		log_error("bot: message %s of conversation %lld: atende_bot_turn answered nothing usable; coached instead",
			  j->m.provider_id, (long long)j->m.conversation_id);
		bj_to_coach(j, 0);
		return;
	}
	bj_outcome(j, d);
	cJSON_Delete(d);
}

/* What atende_bot_turn or atende_bot_handoff decided (d is not kept). */
static void bj_outcome(bot_job_t *j, cJSON *d)
{
	const char *decision = json_str(d, "decision");
	bool again = json_true(d, "again");
	if (strcmp(decision, "agent") == 0) {
		bj_to_coach(j, (int64_t)json_num(d, "agent_id", 0));
	} else if (strcmp(decision, "handoff") == 0) {
		const char *reason = json_str(d, "reason");
		cJSON *events = cJSON_DetachItemFromObject(d, "events");
		const cJSON *data = cJSON_GetObjectItem(cJSON_GetArrayItem(events, 0), "data");
		j->handoff = true;
		j->agent = (int64_t)json_num(d, "agent_id", 0);
		j->after_hours = json_true(data, "after_hours"); /* as decided, not as the clock says now */
		if (!again) {
			char labels[64];
			snprintf(labels, sizeof(labels), "reason=\"%s\"", reason ? reason : "?");
			metrics_inc(j->b->m_handoffs, labels);
			log_info("bot: conversation %lld handed off (%s)%s to agent %lld", (long long)j->m.conversation_id,
				 reason ? reason : "?", j->after_hours ? " after hours, queued" : "", (long long)j->agent);
		}
		int n = cJSON_GetArraySize(events);
		j->events = xcalloc((size_t)n + 1, sizeof(evt_t));
		char why[160];
		for (int i = 0; i < n; i++) {
			if (evt_parse_tree(&j->events[j->n_events], cJSON_DetachItemFromArray(events, 0), why, sizeof(why)))
				j->n_events++;
			else
				log_warn("bot: conversation %lld: hand-off event left out: %s", (long long)j->m.conversation_id,
					 why);
		}
		cJSON_Delete(events);
		bj_publish(j);
	} else if (json_str(d, "answer")) {
		j->answer = xstrdup(json_str(d, "answer")); /* decided and written before: the same text again */
		bj_send(j);
	} else {
		bj_compute(j, cJSON_GetObjectItem(d, "history"));
	}
}

/* ------------------------------------------------------------------ the answer */

static void bj_compute(bot_job_t *j, const cJSON *history)
{
	bot_t *b = j->b;
	if (b->ai) {
		ai_turn_t hist[BOT_HISTORY_MAX];
		int nh = 0;
		const cJSON *h;
		cJSON_ArrayForEach(h, history)
		{
			if (nh == BOT_HISTORY_MAX || !json_str(h, "text"))
				continue;
			hist[nh].role = json_true(h, "from_me") ? AI_ROLE_AGENT : AI_ROLE_CUSTOMER;
			hist[nh++].text = json_str(h, "text");
		}
		const char *texts[1] = {j->m.text};
		ai_request_t req = {.domain = j->m.domain, .company = j->m.company, .conversation = j->m.conversation_key,
				    .texts = texts, .n_texts = 1, .history = hist, .n_history = nh, .bot = true};
		if (ai_request(b->ai, &req, bj_ai_done, j)) {
			j->ext++;
			return;
		}
	}
	char text[RULES_HINT_MAX];
	bot_rules_answer(j->m.text, j->m.domain, text, sizeof(text));
	j->answer = xstrdup(text);
	snprintf(j->source, sizeof(j->source), "rules");
	metrics_inc(b->m_answers, "source=\"rules\"");
	bj_record_answer(j);
}

static void bj_ai_done(const ai_result_t *res, void *arg)
{
	bot_job_t *j = arg;
	if (!bot_ext_done(j))
		return;
	if (!res->ok) {
		/* cancelled at shutdown: not done, so uncommitted, so redelivered */
		bj_unlink(j);
		bj_free(j);
		return;
	}
	if (strcmp(res->source, "ai") == 0 && res->handoff) {
		bj_ai_handoff(j);
		return;
	}
	char text[RULES_HINT_MAX];
	const char *source = "ai";
	if (strcmp(res->source, "ai") != 0) {
		/* the AI failed (breaker, deadline, errors): the templates answer */
		bot_rules_answer(j->m.text, j->m.domain, text, sizeof(text));
		source = "rules";
		log_debug("bot: conversation %lld answered by the rules: %s", (long long)j->m.conversation_id, res->error);
	} else {
		snprintf(text, sizeof(text), "%s", res->hint);
	}
	char labels[48];
	snprintf(labels, sizeof(labels), "source=\"%s\"", source);
	metrics_inc(j->b->m_answers, labels);
	j->answer = xstrdup(text);
	snprintf(j->source, sizeof(j->source), "%s", source);
	bj_record_answer(j);
}

static void bj_ai_handoff(bot_job_t *j)
{
	char mid[24], conv[24];
	snprintf(mid, sizeof(mid), "%lld", (long long)j->m.message_id);
	snprintf(conv, sizeof(conv), "%lld", (long long)j->m.conversation_id);
	const char *params[4] = {mid, conv, "bot_cannot_help", j->after_hours ? "true" : "false"};
	bj_query(j, "SELECT atende_bot_handoff($1, $2, $3, $4)", 4, params, bj_decided, bj_ai_handoff);
}

static void bj_record_answer(bot_job_t *j)
{
	char mid[24];
	snprintf(mid, sizeof(mid), "%lld", (long long)j->m.message_id);
	const char *params[3] = {mid, j->answer, j->source};
	bj_query(j, "SELECT atende_bot_answered($1, $2, $3)", 3, params, bj_answer_recorded, bj_record_answer);
}

static void bj_answer_recorded(bot_job_t *j, PGresult *res)
{
	if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) && strcmp(PQgetvalue(res, 0, 0), j->answer) != 0) {
		free(j->answer); /* an earlier handling wrote its own: that one is the answer */
		j->answer = xstrdup(PQgetvalue(res, 0, 0));
	}
	bj_send(j);
}

/* Publishes the bot reply request for j->answer; the outbound path sends it once. */
static void bj_send(bot_job_t *j)
{
	const cfg_t *cfg = j->b->cfg;
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "type", "reply");
	cJSON_AddStringToObject(r, "role", "bot");
	cJSON_AddStringToObject(r, "request_id", j->request_id);
	cJSON_AddNumberToObject(r, "company_id", (double)j->m.company);
	cJSON_AddNumberToObject(r, "conversation_id", (double)j->m.conversation_id);
	cJSON_AddNumberToObject(r, "agent_id", 0);
	cJSON_AddStringToObject(r, "text", j->answer);
	cJSON_AddStringToObject(r, "sender_name", cfg->bot.name);
	cJSON_AddNullToObject(r, "client_id");
	cJSON_AddStringToObject(r, "in_reply_to", j->m.provider_id);
	char *json = cJSON_PrintUnformatted(r);
	cJSON_Delete(r);
	j->ext++;
	j->b->cb.publish_request(j->m.company, j->m.conversation_id, json, bj_request_acked, j, j->b->arg);
}

static void bj_request_acked(void *ctx, bool ok)
{
	bot_job_t *j = ctx;
	if (!bot_ext_done(j))
		return;
	if (!ok) {
		log_warn("bot: the reply request %s was not taken by the broker; publishing it again in %d ms",
			 j->request_id, BOT_REPUBLISH_MS);
		bj_later(j, bj_send, BOT_REPUBLISH_MS);
		return;
	}
	bj_later(j, bj_finish, 0); /* out of the delivery report's call stack */
}

/* ------------------------------------------------------------------ the hand-off */

static void bj_publish(bot_job_t *j)
{
	j->pub_failed = false;
	j->unacked = j->n_events;
	j->ext += j->n_events;
	for (int i = 0; i < j->n_events; i++)
		j->b->cb.publish_event(&j->events[i], bj_event_acked, j, j->b->arg);
	if (j->n_events == 0)
		bj_later(j, bj_after_events, 0);
}

static void bj_event_acked(void *ctx, bool ok)
{
	bot_job_t *j = ctx;
	if (!bot_ext_done(j))
		return;
	if (!ok)
		j->pub_failed = true;
	if (--j->unacked > 0)
		return;
	if (j->pub_failed) {
		log_warn("bot: a hand-off event of conversation %lld was not taken by the broker; publishing again in %d ms",
			 (long long)j->m.conversation_id, BOT_REPUBLISH_MS);
		bj_later(j, bj_publish, BOT_REPUBLISH_MS);
		return;
	}
	bj_later(j, bj_after_events, 0);
}

/* The hand-off is published: tell the customer when agents are back (after hours) or what
 * bot.handoff_message says, then the message is the agent's to be coached. */
static void bj_after_events(bot_job_t *j)
{
	const cfg_t *cfg = j->b->cfg;
	char text[1024];
	if (j->after_hours) {
		if (!j->back[0]) {
			const cfg_company_t *co = cfg_company_find(cfg, j->m.company);
			if (co)
				hours_open(&co->open_hours, co->timezone, time(NULL), j->back, sizeof(j->back));
		}
		bot_expand(cfg->bot.after_hours_message, j->back[0] ? j->back : "em breve", text, sizeof(text));
		metrics_inc(j->b->m_answers, "source=\"after_hours\"");
	} else if (cfg->bot.handoff_message[0]) {
		snprintf(text, sizeof(text), "%s", cfg->bot.handoff_message);
	} else {
		bj_finish(j);
		return;
	}
	free(j->answer);
	j->answer = xstrdup(text);
	bj_send(j); /* then bj_finish */
}

static void bj_finish(bot_job_t *j)
{
	metrics_observe(j->b->m_seconds, bot_now() - j->added_at);
	if (j->handoff) {
		bj_to_coach(j, j->agent);
		return;
	}
	bot_t *b = j->b;
	void *token = j->m.token;
	bj_unlink(j);
	bj_free(j);
	b->cb.done(token, b->arg);
}

static void bj_to_coach(bot_job_t *j, int64_t agent)
{
	bot_t *b = j->b;
	void *token = j->m.token;
	bj_unlink(j);
	bj_free(j);
	b->cb.coach(token, agent, b->arg);
}

/* ------------------------------------------------------------------ plumbing */

/* One pending external answer came back: false when the job was orphaned (then freed at 0). */
static bool bot_ext_done(bot_job_t *j)
{
	j->ext--;
	if (j->orphan) {
		if (j->ext == 0)
			bj_free(j);
		return false;
	}
	return true;
}

static void bj_query(bot_job_t *j, const char *sql, int n, const char *const *params, bot_result_fn on, bot_step_fn again)
{
	j->on_result = on;
	j->again = again;
	if (!db_query(j->b->db, sql, n, params, bj_db_cb, j)) {
		bj_later(j, again, 100); /* the connection's queue is full */
		return;
	}
	j->ext++;
}

static void bj_db_cb(PGresult *res, void *arg)
{
	bot_job_t *j = arg;
	if (!bot_ext_done(j))
		return;
	if (!res) {
		bj_later(j, j->again, 0); /* connection lost: every step may run again */
		return;
	}
	ExecStatusType st = PQresultStatus(res);
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		const char *e = PQresultErrorMessage(res);
		if (++j->db_errors >= j->b->cfg->workers.retries) {
			log_error("bot: message %s of conversation %lld: %.*s; coached instead", j->m.provider_id,
				  (long long)j->m.conversation_id, (int)strcspn(e, "\n"), e);
			bj_to_coach(j, j->agent);
			return;
		}
		log_warn("bot: message %s: %.*s (attempt %d; retrying)", j->m.provider_id, (int)strcspn(e, "\n"), e,
			 j->db_errors);
		bj_later(j, j->again, 100L << (j->db_errors < 10 ? j->db_errors : 10));
		return;
	}
	j->on_result(j, res);
}

static void bj_later(bot_job_t *j, bot_step_fn fn, long ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	j->timer_fn = fn;
	evtimer_add(j->timer, &tv);
}

static void bj_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	bot_job_t *j = arg;
	j->timer_fn(j);
}

static void bj_unlink(bot_job_t *j)
{
	bot_t *b = j->b;
	if (j->prev)
		j->prev->next = j->next;
	else
		b->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	b->n_jobs--;
}

static void bj_free(bot_job_t *j)
{
	if (j->timer)
		event_free(j->timer);
	free((char *)j->m.conversation_key);
	free((char *)j->m.channel);
	free((char *)j->m.provider_id);
	free((char *)j->m.domain);
	free((char *)j->m.text);
	free(j->answer);
	for (int i = 0; i < j->n_events; i++)
		evt_free(&j->events[i]);
	free(j->events);
	free(j);
}

static double bot_now(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* ------------------------------------------------------------------ pure pieces */

/* Words that ask for a person, with the typos they survive (edit distance). */
static const struct {
	const char *word;
	int max_distance;
} bot_person_words[] = {
	{"atendente", 1}, {"atendentes", 1}, {"humano", 1}, {"humana", 1}, {"gerente", 1},
};

/* Phrases (normalized, matched as substrings between word boundaries). */
static const char *const bot_person_phrases[] = {
	"falar com uma pessoa", "falar com pessoa", "falar com alguem", "pessoa de verdade", "pessoa real",
	"ser humano", "atendimento humano", "falar com um atendente", "falar com atendente", "me transfere",
	"me transfira", "quero uma pessoa",
};

bool bot_asks_for_person(const char *text, const char *extra)
{
	char norm[4096], padded[4100];
	text_normalize(text, norm, sizeof(norm));
	snprintf(padded, sizeof(padded), " %s ", norm);
	for (size_t i = 0; i < sizeof(bot_person_phrases) / sizeof(bot_person_phrases[0]); i++) {
		char p[96];
		snprintf(p, sizeof(p), " %s ", bot_person_phrases[i]);
		if (strstr(padded, p))
			return true;
	}
	for (const char *w = norm; *w;) {
		size_t n = strcspn(w, " ");
		for (size_t k = 0; k < sizeof(bot_person_words) / sizeof(bot_person_words[0]); k++) {
			const char *pw = bot_person_words[k].word;
			size_t pl = strlen(pw);
			/* short words only exactly: "humano" must not match "humor" */
			int maxd = n >= 6 ? bot_person_words[k].max_distance : 0;
			if ((n > pl ? n - pl : pl - n) <= (size_t)maxd && bot_distance(w, n, pw, pl) <= maxd)
				return true;
		}
		w += n;
		while (*w == ' ')
			w++;
	}
	if (extra && *extra) {
		char pat[1024];
		snprintf(pat, sizeof(pat), "%s", extra);
		for (char *save, *p = strtok_r(pat, "|", &save); p; p = strtok_r(NULL, "|", &save)) {
			char np[256], q[260];
			text_normalize(p, np, sizeof(np));
			snprintf(q, sizeof(q), " %s ", np);
			if (np[0] && strstr(padded, q))
				return true;
		}
	}
	return false;
}

void bot_rules_answer(const char *text, const char *domain, char *out, size_t len)
{
	rules_result_t r;
	rules_classify(text, domain, &r);
	const char *a;
	switch (r.intent) {
	case INTENT_BILLING:
		a = "Posso ajudar com a sua fatura! A segunda via e o código Pix ficam no app e no site, em \"Minhas "
		    "faturas\". Se algum valor parecer errado, me diga o mês e o valor que eu verifico.";
		break;
	case INTENT_SALES:
		a = "Que bom que você quer conhecer nossos planos! Me diga o seu CEP e como usa a internet em casa que "
		    "eu indico a melhor opção.";
		break;
	case INTENT_OUTAGE:
		a = "Sinto muito pelo problema na conexão. Desligue o roteador da tomada por 30 segundos e ligue de "
		    "novo; se continuar, me diga se alguma luz do aparelho está vermelha.";
		break;
	case INTENT_COMPLAINT:
		a = "Sinto muito pela sua experiência. Me conte o que aconteceu e, se tiver, o número do protocolo "
		    "anterior, que eu cuido disso.";
		break;
	case INTENT_CANCEL:
		a = "Entendi que você está pensando em cancelar. Pode me contar o motivo? Se preferir, é só escrever "
		    "\"atendente\" que eu te passo para uma pessoa.";
		break;
	default:
		a = "Olá! Sou o assistente virtual. Como posso ajudar? Se preferir falar com uma pessoa, é só escrever "
		    "\"atendente\".";
		break;
	}
	snprintf(out, len, "%s", a);
}

void bot_expand(const char *fmt, const char *back, char *out, size_t len)
{
	size_t o = 0;
	if (!len)
		return;
	for (const char *p = fmt ? fmt : ""; *p && o + 1 < len;) {
		if (strncmp(p, "{back}", 6) == 0) {
			int n = snprintf(out + o, len - o, "%s", back ? back : "");
			o = n > 0 && o + (size_t)n < len ? o + (size_t)n : len - 1;
			p += 6;
		} else {
			out[o++] = *p++;
		}
	}
	out[o] = 0;
}

/* Levenshtein distance of two short words (the longer one cut at 32 bytes). */
static int bot_distance(const char *a, size_t la, const char *b, size_t lb)
{
	int row[33];
	if (la > 32)
		la = 32;
	if (lb > 32)
		lb = 32;
	for (size_t k = 0; k <= lb; k++)
		row[k] = (int)k;
	for (size_t i = 1; i <= la; i++) {
		int prev = row[0];
		row[0] = (int)i;
		for (size_t k = 1; k <= lb; k++) {
			int cur = row[k];
			int best = prev + (a[i - 1] != b[k - 1]);
			if (row[k] + 1 < best)
				best = row[k] + 1;
			if (row[k - 1] + 1 < best)
				best = row[k - 1] + 1;
			row[k] = best;
			prev = cur;
		}
	}
	return row[lb];
}
