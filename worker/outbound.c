/*
 * outbound: replies, transfers, resolves and reopens from the consoles (see outbound.h).
 * Each request walks
 * claim -> [send to the gateway, retried] -> record -> publish -> mark published, every
 * step re-runnable: the claim row in outbound_requests decides who works on a request and
 * whether its reply may still go out, so a crash or a rebalance never sends one twice.
 */
#include "outbound.h"
#include "gwpool.h"
#include "hc.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "mstore.h"
#include "tick.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <fcntl.h>
#include <unistd.h>

#define OB_MAX_RESPONSE (256 * 1024)
#define OB_LEASE_MARGIN_MS 3000  /* on top of the longest a send can take (timeouts and backoffs) */
#define OB_WAIT_POLL_MS 1000     /* while another worker holds a request: look again this often */
#define OB_REPUBLISH_MS 1000     /* an event the broker did not take: publish it again after this */
#define OB_CLOUD_URL "https://graph.facebook.com"
#define OB_CLOUD_VERSION "v21.0"
#define OB_HEALTH_TICK_MS 1000   /* how often due health checks are looked for */
#define OB_HEALTH_MAX_RESPONSE (64 * 1024)
#define OB_BOT_NAME "Assistente virtual" /* a worker's own reply without a sender_name */

typedef enum { OB_REPLY, OB_TRANSFER, OB_RESOLVE, OB_REOPEN, OB_PENDING } ob_kind_t;
static const char *const ob_kind_names[] = {"reply", "transfer", "resolve", "reopen", "pending"};

typedef struct ob_req ob_req_t;
typedef struct ob_pool ob_pool_t;

/* A health check of one instance in flight. */
typedef struct {
	ob_pool_t *pool;
	int index;                  /* into pool->gw.inst, valid while gen is pool->gw.gen */
	unsigned gen;
	hc_call_t *call;
} ob_check_t;

/* The metrics of one instance (cached series, refreshed when the pool's list changes). */
typedef struct {
	metrics_series_t *calls[5]; /* by ob_outcomes */
	metrics_series_t *breaker, *healthy, *seconds;
} ob_inst_metrics_t;

/* The gateway instances of one channel, with what this process knows of their health. */
struct ob_pool {
	outbound_t *o;
	cfg_channel_type_t type;
	char *name;                 /* the channel's name */
	char channel[300];          /* "evolution:demo", for labels and logs */
	gwp_pool_t gw;
	ob_check_t checks[GWP_MAX];
	ob_inst_metrics_t m[GWP_MAX];
	unsigned m_gen;             /* gw.gen the cached series belong to */
};

static const char *const ob_outcomes[5] = {"2xx", "4xx", "5xx", "timeout", "conn"};
typedef void (*ob_step_fn)(ob_req_t *r);
typedef void (*ob_result_fn)(ob_req_t *r, PGresult *res);

/* One request being handled. */
struct ob_req {
	outbound_t *o;
	ob_req_t *prev, *next;      /* o->reqs */
	outbound_done_fn done;
	void *token;
	ob_kind_t kind;
	char request_id[128];
	char owner[160];            /* this handling's identity in outbound_requests.owner */
	unsigned long long seq;     /* arrival order in this process */
	bool queued;                /* behind an earlier request of the same conversation */
	long company;
	int64_t conversation, agent;
	char *request_json;         /* the consumed message, the claim's parameter */
	char *text;                 /* reply */
	char by[8];                 /* a worker's own reply: "bot" or "system" (role); "" for a console's */
	char *sender_name;          /* a worker's own reply: the name the customer sees (NULL: OB_BOT_NAME) */
	cJSON *client_id;           /* the console's op id, echoed in events */
	/* a file from the console (the request's "media": a media_uploads id), text its caption */
	int64_t upload_id;          /* 0: a text reply */
	char *up_kind, *up_mime, *up_name; /* from the claim; up_kind NULL until then */
	char up_sha[MSTORE_SHA_HEX];
	int64_t up_size;
	unsigned char *file;        /* its bytes, read from the store for the first send */
	size_t file_len;
	char *cloud_media_id;       /* Cloud API: the id its upload to the gateway answered (kept for retries) */
	bool uploading;             /* the call under way is that upload */
	/* the conversation, from the claim */
	char *channel, *customer, *domain, *agent_name;
	int64_t conv_agent;
	/* the gateway call */
	hc_call_t *call;
	int attempts;               /* gateway calls made */
	int rounds;                 /* sends tried by this handling (calls, or none when no instance was available) */
	ob_pool_t *pool;            /* the call's instance: pool->gw.inst[inst] while gen is pool->gw.gen */
	int inst;
	unsigned gen;
	bool probe;                 /* the call is its instance breaker's half-open probe */
	unsigned tried;             /* instances this request was sent to (a bit per index) */
	char error[320];
	/* recording: kept so a lost connection can re-run the query */
	char *rec_event, *rec_events, *rec_status;
	/* publishing */
	evt_t *events;              /* what to publish: the outcome's events */
	int n_events;
	bool *acked;
	int unacked;
	bool publishing, pub_failed;
	/* plumbing */
	struct event *timer;
	ob_step_fn timer_fn;
	ob_step_fn again;           /* re-runs the query in flight (connection lost, or refused) */
	ob_result_fn on_result;
	int db_errors;
	int ext;                    /* database answers and broker acknowledgements pending */
	bool orphan;                /* outbound_free ran: free at ext 0, touch nothing else */
};

/* One published event awaiting its acknowledgement. */
typedef struct {
	ob_req_t *r;
	int index;
} ob_pub_t;

struct outbound {
	struct event_base *base;
	db_t *db;
	const cfg_t *cfg;
	outbound_publish_fn publish;
	void *arg;
	hc_t *hc;
	mstore_t *store;            /* the files the console uploaded (NULL: media replies fail) */
	ob_req_t *reqs;
	int n_reqs;
	unsigned long long seq;
	char identity[96];          /* host:pid:start */
	metrics_family_t *m_requests, *m_calls;
	metrics_series_t *m_call_seconds;
	/* gateway instances */
	ob_pool_t **pools;
	int n_pools;
	breaker_params_t bp;
	tick_t *health_tick;
	metrics_family_t *m_inst_calls, *m_inst_breaker, *m_inst_healthy, *m_inst_seconds, *m_health;
};

static void ob_claim(ob_req_t *r);
static void ob_claimed(ob_req_t *r, PGresult *res);
static void ob_send(ob_req_t *r);
static void ob_answer(const hc_result_t *res, void *arg);
static void ob_record_sent(ob_req_t *r, const char *provider_id, const char *status);
static void ob_run_sent(ob_req_t *r);
static void ob_sent(ob_req_t *r, PGresult *res);
static void ob_fail(ob_req_t *r, const char *status, const char *why);
static void ob_run_fail(ob_req_t *r);
static void ob_failed(ob_req_t *r, PGresult *res);
static void ob_publish(ob_req_t *r);
static void ob_acked(void *ctx, bool ok);
static void ob_all_acked(ob_req_t *r);
static void ob_mark(ob_req_t *r);
static void ob_marked(ob_req_t *r, PGresult *res);
static void ob_complete(ob_req_t *r, bool ok, const char *why);
static void ob_malformed(ob_req_t *r);
static void ob_query(ob_req_t *r, const char *sql, int n, const char *const *params, ob_result_fn on, ob_step_fn again);
static void ob_db_cb(PGresult *res, void *arg);
static void ob_later(ob_req_t *r, ob_step_fn fn, long ms);
static void ob_timer_cb(evutil_socket_t fd, short what, void *arg);
static void ob_req_free(ob_req_t *r);
static void ob_set_events(ob_req_t *r, cJSON *events);
static char *ob_message_events(ob_req_t *r, const char *provider_id, const char *status, const char *at);
static void ob_count(outbound_t *o, const ob_req_t *r, const char *result);
static long ob_lease_ms(const outbound_t *o);
static char *ob_dup(const char *s);
static double ob_now(void);
static ob_pool_t *ob_pool_get(outbound_t *o, const cfg_channel_t *ch, const cfg_instance_t *in, int n);
static const cfg_instance_t *ob_instances(const cfg_channel_t *ch, int *n);
static void ob_inst_metrics(outbound_t *o, ob_pool_t *p);
static void ob_inst_gauges(ob_pool_t *p, int i);
static void ob_record_instance(ob_req_t *r, breaker_outcome_t outcome, const char *why);
static void ob_health_tick(evutil_socket_t fd, short what, void *arg);
static void ob_health_start(outbound_t *o, ob_pool_t *p, const cfg_channel_t *ch, int i, int64_t now);
static void ob_health_answer(const hc_result_t *res, void *arg);
static void ob_pool_cancel_checks(ob_pool_t *p);
static int64_t ob_now_ms(void);
static bool ob_read_upload(ob_req_t *r, char *err, size_t errlen);
static void ob_post(ob_req_t *r, const char *url, const char *auth, char *json);
static cJSON *ob_media_json(const ob_req_t *r);
static void ob_cloud_upload(ob_req_t *r, const char *base, size_t blen, const char *esc, const cfg_channel_t *ch);

outbound_t *outbound_new(struct event_base *base, db_t *db, const cfg_t *cfg, outbound_publish_fn publish, void *arg,
			 char *err, size_t errlen)
{
	char host[64] = "host";
	outbound_t *o = xcalloc(1, sizeof(*o));
	o->base = base;
	o->db = db;
	o->cfg = cfg;
	o->publish = publish;
	o->arg = arg;
	o->hc = hc_new(base, "atende-worker", err, errlen);
	if (!o->hc) {
		free(o);
		return NULL;
	}
	char root[4096], serr[256];
	o->store = mstore_new(cfg_media_root(cfg, root, sizeof(root)), serr, sizeof(serr));
	if (!o->store)
		log_error("outbound: %s: files from the console cannot be sent", serr);
	gethostname(host, sizeof(host) - 1);
	snprintf(o->identity, sizeof(o->identity), "%.40s:%d:%lld", host, (int)getpid(), (long long)(ob_now() * 1000));
	o->m_requests = metrics_family("atende_worker_outbound_total", METRICS_COUNTER,
				       "Console requests handled, by kind (reply, transfer, resolve, reopen, pending) and result "
				       "(sent, not_sent, failed, unknown, transferred, resolved, reopened, refused, "
				       "duplicate).",
				       NULL, 0);
	o->m_calls = metrics_family("atende_worker_outbound_calls_total", METRICS_COUNTER,
				    "Gateway calls for replies by outcome (2xx, 4xx, 5xx, timeout, conn).", NULL, 0);
	o->m_call_seconds = metrics_series(metrics_family("atende_worker_outbound_call_seconds", METRICS_HISTOGRAM,
							  "Duration of gateway calls for replies.", metrics_latency_buckets,
							  metrics_latency_nbuckets),
					   "");
	o->m_inst_calls = metrics_family("atende_worker_outbound_instance_calls_total", METRICS_COUNTER,
					 "Gateway calls for replies per channel and instance, by outcome (2xx, 4xx, 5xx, "
					 "timeout, conn).",
					 NULL, 0);
	o->m_inst_breaker = metrics_family("atende_worker_outbound_instance_breaker_state", METRICS_GAUGE,
					   "Circuit breaker of a gateway instance: 0 closed, 1 open, 2 half-open.", NULL, 0);
	o->m_inst_healthy = metrics_family("atende_worker_outbound_instance_healthy", METRICS_GAUGE,
					   "Last health check of a gateway instance: 1 healthy (or not checked), 0 not.",
					   NULL, 0);
	o->m_inst_seconds = metrics_family("atende_worker_outbound_instance_call_seconds", METRICS_HISTOGRAM,
					   "Duration of gateway calls for replies per channel and instance.",
					   metrics_latency_buckets, metrics_latency_nbuckets);
	o->m_health = metrics_family("atende_worker_outbound_health_checks_total", METRICS_COUNTER,
				     "Health checks of gateway instances by result (healthy, unhealthy).", NULL, 0);
	o->bp.window_ms = (int64_t)cfg->outbound.breaker_window_s * 1000;
	o->bp.min_calls = cfg->outbound.breaker_min_calls;
	o->bp.error_pct = cfg->outbound.breaker_error_pct;
	o->bp.open_ms = (int64_t)cfg->outbound.breaker_open_s * 1000;
	o->health_tick = tick_new(base, OB_HEALTH_TICK_MS, ob_health_tick, o);
	return o;
}

void outbound_handle(outbound_t *o, const cJSON *msg, outbound_done_fn done, void *token)
{
	ob_req_t *r = xcalloc(1, sizeof(*r));
	r->o = o;
	r->done = done;
	r->token = token;
	r->timer = evtimer_new(o->base, ob_timer_cb, r);
	r->next = o->reqs;
	if (o->reqs)
		o->reqs->prev = r;
	o->reqs = r;
	o->n_reqs++;
	r->seq = ++o->seq;
	snprintf(r->owner, sizeof(r->owner), "%s:%llu", o->identity, r->seq);

	const char *type = json_str(msg, "type"), *rid = json_str(msg, "request_id");
	const cJSON *to_agent = cJSON_GetObjectItem(msg, "to_agent"), *to_domain = cJSON_GetObjectItem(msg, "to_domain");
	const char *bad = NULL;
	double company = json_num(msg, "company_id", 0), conv = json_num(msg, "conversation_id", 0);
	int kind = -1;
	for (int k = 0; type && k < (int)(sizeof(ob_kind_names) / sizeof(ob_kind_names[0])); k++)
		if (strcmp(type, ob_kind_names[k]) == 0)
			kind = k;
	r->kind = kind < 0 ? OB_REPLY : (ob_kind_t)kind;
	/* role "bot" or "system": a reply the workers wrote themselves (worker/bot.c and the
	 * like), stored by that name. Consoles cannot send it: the notifier writes no role on a
	 * reply, and on a status change only the token's (agent or supervisor). */
	const char *role = json_str(msg, "role");
	bool own = role && (strcmp(role, "bot") == 0 || strcmp(role, "system") == 0);
	if (kind < 0)
		bad = "type is not reply, transfer, resolve, reopen or pending";
	else if (!rid || !*rid || strlen(rid) >= sizeof(r->request_id))
		bad = "missing request_id";
	else if (company < 1 || company != (double)(long)company)
		bad = "missing company_id";
	else if (conv < 1 || conv != (double)(int64_t)conv)
		bad = "missing conversation_id";
	else if (r->kind == OB_REPLY && !json_str(msg, "text"))
		bad = "missing text";
	else if (cJSON_GetObjectItem(msg, "media") && (r->kind != OB_REPLY || json_num(msg, "media", 0) < 1))
		bad = "media must be an upload id, on a reply";
	else if (own && r->kind != OB_REPLY)
		bad = "role bot or system is for replies only";
	else if (r->kind == OB_TRANSFER && !cJSON_IsNumber(to_agent) && !cJSON_IsString(to_domain))
		bad = "missing to_agent or to_domain";
	if (bad) {
		snprintf(r->error, sizeof(r->error), "outbound %s: %s", type ? type : "message", bad);
		ob_later(r, ob_malformed, 0); /* done is never called from inside outbound_handle */
		return;
	}
	snprintf(r->request_id, sizeof(r->request_id), "%s", rid);
	r->company = (long)company;
	r->conversation = (int64_t)conv;
	r->agent = (int64_t)json_num(msg, "agent_id", 0);
	r->text = ob_dup(json_str(msg, "text"));
	r->upload_id = (int64_t)json_num(msg, "media", 0);
	if (own) {
		snprintf(r->by, sizeof(r->by), "%s", role);
		r->sender_name = ob_dup(json_str(msg, "sender_name"));
		r->agent = 0; /* nobody's: by_agent null in its events */
	}
	const cJSON *cid = cJSON_GetObjectItem(msg, "client_id");
	r->client_id = cid ? cJSON_Duplicate(cid, true) : cJSON_CreateNull();
	r->request_json = cJSON_PrintUnformatted(msg);
	/* one request of a conversation at a time, in arrival order: replies reach the
	 * customer in the order they were written */
	for (ob_req_t *x = o->reqs; x; x = x->next)
		if (x != r && x->conversation == r->conversation)
			r->queued = true;
	if (!r->queued)
		ob_claim(r);
}

int outbound_pending(const outbound_t *o)
{
	return o->n_reqs;
}

void outbound_free(outbound_t *o)
{
	if (!o)
		return;
	hc_free(o->hc); /* no callbacks: the calls are simply dropped */
	mstore_free(o->store);
	tick_free(o->health_tick);
	for (int i = 0; i < o->n_pools; i++) {
		gwp_free(&o->pools[i]->gw);
		free(o->pools[i]->name);
		free(o->pools[i]);
	}
	free(o->pools);
	while (o->reqs) {
		ob_req_t *r = o->reqs;
		o->reqs = r->next;
		r->call = NULL;
		event_free(r->timer);
		r->timer = NULL;
		r->o = NULL;
		if (r->ext > 0)
			r->orphan = true; /* its database answer or acknowledgement frees it */
		else
			ob_req_free(r);
	}
	free(o);
}

/* ------------------------------------------------------------------ claim */

static void ob_claim(ob_req_t *r)
{
	char lease[24];
	/* a file to the Cloud API is two calls a round (its upload, then the message) */
	snprintf(lease, sizeof(lease), "%ld", ob_lease_ms(r->o) * (r->upload_id ? 2 : 1));
	const char *params[3] = {r->request_json, r->owner, lease};
	ob_query(r, "SELECT atende_outbound_claim($1::jsonb, $2, $3)", 3, params, ob_claimed, ob_claim);
}

static void ob_claimed(ob_req_t *r, PGresult *res)
{
	cJSON *c = PQntuples(res) == 1 ? cJSON_Parse(PQgetvalue(res, 0, 0)) : NULL;
	const char *status = json_str(c, "status");
	if (!c || !status) {
		cJSON_Delete(c);
		ob_complete(r, false, "atende_outbound_claim answered nothing usable");
		return;
	}
	if (!json_true(c, "claimed")) {
		if (json_true(c, "published")) {
			/* a redelivery of something finished: nothing to do */
			log_debug("outbound %s: already handled (%s)", r->request_id, status);
			ob_count(r->o, r, "duplicate");
			ob_complete(r, true, NULL);
		} else {
			/* another worker (or one that died) holds it until its lease ends */
			long wait = (long)json_num(c, "wait_ms", OB_WAIT_POLL_MS);
			log_debug("outbound %s: held by another worker for %ld ms more", r->request_id, wait);
			ob_later(r, ob_claim, wait < OB_WAIT_POLL_MS ? wait + 20 : OB_WAIT_POLL_MS);
		}
		cJSON_Delete(c);
		return;
	}
	if (strcmp(status, "sending") == 0) {
		const cJSON *conv = cJSON_GetObjectItem(c, "conversation");
		free(r->channel), free(r->customer), free(r->domain), free(r->agent_name);
		r->channel = ob_dup(json_str(conv, "channel"));
		r->customer = ob_dup(json_str(conv, "customer"));
		r->domain = ob_dup(json_str(conv, "domain"));
		r->agent_name = ob_dup(r->by[0] ? (r->sender_name ? r->sender_name : OB_BOT_NAME) : json_str(c, "agent_name"));
		r->conv_agent = (int64_t)json_num(conv, "agent_id", 0);
		r->attempts = (int)json_num(c, "attempts", 0);
		bool fresh = json_true(c, "fresh");
		const cJSON *up = cJSON_GetObjectItem(c, "upload");
		if (r->upload_id && up) {
			free(r->up_kind), free(r->up_mime), free(r->up_name);
			r->up_kind = ob_dup(json_str(up, "kind"));
			r->up_mime = ob_dup(json_str(up, "mime"));
			r->up_name = ob_dup(json_str(up, "name"));
			snprintf(r->up_sha, sizeof(r->up_sha), "%s", json_str(up, "sha256") ? json_str(up, "sha256") : "");
			r->up_size = (int64_t)json_num(up, "size", 0);
		}
		cJSON_Delete(c);
		if (!r->channel || !r->customer) {
			ob_complete(r, false, "atende_outbound_claim returned no conversation");
		} else if (fresh && r->upload_id && (!r->up_kind || !r->up_mime)) {
			char why[160];
			snprintf(why, sizeof(why), "upload %lld is not one of this conversation's (POST "
						   "/v1/conversations/%lld/media first)",
				 (long long)r->upload_id, (long long)r->conversation);
			ob_fail(r, "failed", why);
		} else if (fresh) {
			ob_send(r);
		} else {
			/* a worker claimed it and stopped before recording the gateway's answer: it may
			 * have gone out (the gateway's echo would then store it); sending again could
			 * make the customer read it twice */
			ob_fail(r, "unknown", "the worker sending it stopped before the gateway's answer was recorded; "
					      "it may or may not have been sent, and is not sent again");
		}
		return;
	}
	/* the outcome is known (now, or by an earlier handling): publish it */
	ob_set_events(r, cJSON_DetachItemFromObject(c, "events"));
	const char *err = json_str(c, "error");
	if (strcmp(status, "refused") == 0 && json_true(c, "fresh"))
		log_info("outbound %s: %s of agent %lld in conversation %lld refused: %s", r->request_id,
			 ob_kind_names[r->kind], (long long)r->agent, (long long)r->conversation,
			 err ? err : "?");
	ob_count(r->o, r, status);
	cJSON_Delete(c);
	ob_publish(r);
}

/* ------------------------------------------------------------------ the gateway */

/* Sends the reply to one instance of the conversation's channel (the next of the weighted
 * round-robin among the healthy ones, not one this request already tried when there is
 * another), as the channel's type wants it. */
static void ob_send(ob_req_t *r)
{
	outbound_t *o = r->o;
	const cfg_t *cfg = o->cfg;
	char url[2048], auth[1200], name[256], esc[768], err[256];
	size_t plen = strcspn(r->channel, ":");
	snprintf(name, sizeof(name), "%s", r->channel[plen] ? r->channel + plen + 1 : "");
	cfg_channel_type_t type = strncmp(r->channel, "evolution", plen) == 0 && plen == 9 ? CHAN_EVOLUTION
				  : strncmp(r->channel, "cloud", plen) == 0 && plen == 5   ? CHAN_CLOUD
											   : CHAN_API;
	const cfg_channel_t *ch = cfg_channel_find(cfg, type, name);
	if (!ch) {
		snprintf(err, sizeof(err), "channel %s is not in the configuration", r->channel);
		ob_fail(r, "failed", err);
		return;
	}
	int n_inst = 0;
	const cfg_instance_t *insts = ob_instances(ch, &n_inst);
	if (type == CHAN_EVOLUTION && n_inst == 0) {
		snprintf(err, sizeof(err), "channel %s has no url to send replies to", r->channel);
		ob_fail(r, "failed", err);
		return;
	}
	if (type == CHAN_CLOUD && (!ch->access_token || !*ch->access_token)) {
		snprintf(err, sizeof(err), "channel %s has no access_token to send replies with", r->channel);
		ob_fail(r, "failed", err);
		return;
	}
	if (type == CHAN_API && n_inst == 0) {
		/* a neutral channel with nowhere to send to: stored, for its owner to fetch */
		char id[192];
		snprintf(id, sizeof(id), "atende-%s", r->request_id);
		ob_record_sent(r, id, "not_sent");
		return;
	}
	if (r->upload_id && !r->file && !ob_read_upload(r, err, sizeof(err))) {
		ob_fail(r, "failed", err);
		return;
	}
	ob_pool_t *pool = ob_pool_get(o, ch, insts, n_inst);
	r->rounds++;
	bool probe = false;
	int i = gwp_pick(&pool->gw, ob_now_ms(), r->tried, &probe);
	if (i < 0) {
		hc_result_t none = {.error = "no instance of the channel's gateway is available (every circuit breaker "
					     "is open)",
				    .body = ""};
		r->pool = NULL;
		ob_answer(&none, r);
		return;
	}
	ob_inst_gauges(pool, i); /* an open breaker may have half-opened */
	const gwp_inst_t *in = &pool->gw.inst[i];
	r->pool = pool;
	r->inst = i;
	r->gen = pool->gw.gen;
	r->probe = probe;
	r->tried |= 1u << i;
	const char *base = in->url;
	size_t blen = strlen(base);
	while (blen > 0 && base[blen - 1] == '/')
		blen--;
	if (type == CHAN_CLOUD && r->upload_id && !r->cloud_media_id) {
		hc_path_escape(ch->name, esc, sizeof(esc));
		ob_cloud_upload(r, base, blen, esc, ch);
		return;
	}
	cJSON *body = cJSON_CreateObject();
	if (type == CHAN_EVOLUTION && r->upload_id) {
		/* Evolution takes the file inline, base64 */
		const char *key = in->key ? in->key : ch->key;
		hc_path_escape(in->instance ? in->instance : ch->name, esc, sizeof(esc));
		snprintf(url, sizeof(url), "%.*s/message/sendMedia/%s", (int)blen, base, esc);
		snprintf(auth, sizeof(auth), "apikey: %s", key ? key : "");
		char *b64 = mstore_b64_encode(r->file, r->file_len);
		cJSON_AddStringToObject(body, "number", r->customer);
		cJSON_AddStringToObject(body, "mediatype", r->up_kind);
		cJSON_AddStringToObject(body, "mimetype", r->up_mime);
		cJSON_AddItemToObject(body, "media", cJSON_CreateStringReference(b64));
		json_add_str_or_null(body, "fileName", r->up_name);
		if (*r->text)
			cJSON_AddStringToObject(body, "caption", r->text);
		char *json = cJSON_PrintUnformatted(body);
		cJSON_Delete(body); /* before b64, which it only references */
		free(b64);
		ob_post(r, url, auth, json);
		return;
	} else if (type == CHAN_EVOLUTION) {
		const char *key = in->key ? in->key : ch->key;
		hc_path_escape(in->instance ? in->instance : ch->name, esc, sizeof(esc));
		snprintf(url, sizeof(url), "%.*s/message/sendText/%s", (int)blen, base, esc);
		snprintf(auth, sizeof(auth), "apikey: %s", key ? key : "");
		cJSON_AddStringToObject(body, "number", r->customer);
		cJSON_AddStringToObject(body, "text", r->text);
	} else if (type == CHAN_CLOUD) {
		hc_path_escape(ch->name, esc, sizeof(esc));
		snprintf(url, sizeof(url), "%.*s/" OB_CLOUD_VERSION "/%s/messages", (int)blen, base, esc);
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", ch->access_token);
		cJSON_AddStringToObject(body, "messaging_product", "whatsapp");
		cJSON_AddStringToObject(body, "recipient_type", "individual");
		cJSON_AddStringToObject(body, "to", r->customer);
		if (r->upload_id) {
			/* the file was uploaded to the gateway first (ob_cloud_upload): its id */
			cJSON_AddStringToObject(body, "type", r->up_kind);
			cJSON *m = cJSON_AddObjectToObject(body, r->up_kind);
			cJSON_AddStringToObject(m, "id", r->cloud_media_id);
			if (*r->text)
				cJSON_AddStringToObject(m, "caption", r->text);
			if (strcmp(r->up_kind, "document") == 0 && r->up_name)
				cJSON_AddStringToObject(m, "filename", r->up_name);
		} else {
			cJSON_AddStringToObject(body, "type", "text");
			cJSON *t = cJSON_AddObjectToObject(body, "text");
			cJSON_AddBoolToObject(t, "preview_url", false);
			cJSON_AddStringToObject(t, "body", r->text);
		}
	} else {
		char id[192];
		snprintf(id, sizeof(id), "atende-%s", r->request_id);
		snprintf(url, sizeof(url), "%.*s", (int)blen, base);
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", ch->key ? ch->key : "");
		cJSON_AddStringToObject(body, "id", id);
		cJSON_AddStringToObject(body, "customer", r->customer);
		cJSON_AddStringToObject(body, "text", r->text);
		json_add_str_or_null(body, "sender_name", r->agent_name);
		cJSON_AddNumberToObject(body, "conversation_id", (double)r->conversation);
		cJSON_AddNumberToObject(body, "agent_id", (double)r->agent);
		cJSON_AddStringToObject(body, "request_id", r->request_id);
		if (r->upload_id) {
			cJSON *m = ob_media_json(r);
			char *b64 = mstore_b64_encode(r->file, r->file_len);
			cJSON_AddStringToObject(m, "base64", b64);
			free(b64);
			cJSON_AddItemToObject(body, "media", m);
		}
	}
	char *json = cJSON_PrintUnformatted(body);
	cJSON_Delete(body);
	ob_post(r, url, auth, json);
}

/* POSTs json (taken) to url with the JSON content type and one auth header; the answer goes
 * to ob_answer. */
static void ob_post(ob_req_t *r, const char *url, const char *auth, char *json)
{
	char err[256];
	const char *headers[2] = {"Content-Type: application/json", auth};
	r->attempts++;
	r->call = hc_post(r->o->hc, url, headers, 2, json, strlen(json), r->o->cfg->outbound.timeout_ms,
			  OB_MAX_RESPONSE, ob_answer, r, err, sizeof(err));
	free(json);
	if (!r->call) {
		hc_result_t fake = {.error = err, .body = ""};
		log_warn("outbound %s: cannot start the call to %s: %s", r->request_id, url, err);
		ob_answer(&fake, r);
	}
}

/* Cloud API: the file goes up first (POST /<version>/<phone_number_id>/media, multipart, the
 * bearer token), and the message names the id it answers. A link instead would need a URL of
 * atende's that Meta can fetch without the agent's token: public and signed, which atende
 * does not have. The id is kept for the request's retries; an upload that went out twice
 * only leaves an unused file at Meta (deleted there after 30 days), never a second message. */
static void ob_cloud_upload(ob_req_t *r, const char *base, size_t blen, const char *esc, const cfg_channel_t *ch)
{
	char url[2048], auth[1200], ctype[160], boundary[64], err[256];
	int salt = 0;
	do /* a boundary the file does not hold */
		snprintf(boundary, sizeof(boundary), "atende-upload-%lld-%d", (long long)r->upload_id, salt++);
	while (memmem(r->file, r->file_len, boundary, strlen(boundary)));
	snprintf(url, sizeof(url), "%.*s/" OB_CLOUD_VERSION "/%s/media", (int)blen, base, esc);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", ch->access_token);
	snprintf(ctype, sizeof(ctype), "Content-Type: multipart/form-data; boundary=%s", boundary);
	char head[1024], tail[128], fname[256];
	size_t o = 0;
	for (const char *p = r->up_name ? r->up_name : "file"; *p && o + 1 < sizeof(fname); p++)
		fname[o++] = *p == '"' || *p == '\r' || *p == '\n' ? '_' : *p; /* inside a quoted header value */
	fname[o] = '\0';
	int hl = snprintf(head, sizeof(head),
			  "--%s\r\nContent-Disposition: form-data; name=\"messaging_product\"\r\n\r\nwhatsapp\r\n"
			  "--%s\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\n%s\r\n"
			  "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
			  "Content-Type: %s\r\n\r\n",
			  boundary, boundary, r->up_mime, boundary, fname, r->up_mime);
	int tl = snprintf(tail, sizeof(tail), "\r\n--%s--\r\n", boundary);
	size_t len = (size_t)hl + r->file_len + (size_t)tl;
	char *body = xmalloc(len);
	memcpy(body, head, (size_t)hl);
	memcpy(body + hl, r->file, r->file_len);
	memcpy(body + hl + r->file_len, tail, (size_t)tl);
	const char *headers[2] = {ctype, auth};
	r->uploading = true;
	r->attempts++;
	r->call = hc_post(r->o->hc, url, headers, 2, body, len, r->o->cfg->outbound.timeout_ms, OB_MAX_RESPONSE,
			  ob_answer, r, err, sizeof(err));
	free(body);
	if (!r->call) {
		hc_result_t fake = {.error = err, .body = ""};
		log_warn("outbound %s: cannot start the upload to %s: %s", r->request_id, url, err);
		ob_answer(&fake, r);
	}
}

/* Reads the upload's file from the store (once: retries reuse it). Blocking local I/O of at
 * most media.max_upload_bytes, as the stores' writes are. */
static bool ob_read_upload(ob_req_t *r, char *err, size_t errlen)
{
	int64_t size = 0;
	int fd = r->o->store ? mstore_open(r->o->store, r->up_sha, &size) : -1;
	if (fd < 0) {
		snprintf(err, errlen, "the file of upload %lld is not in the media store", (long long)r->upload_id);
		return false;
	}
	r->file = xmalloc((size_t)size + 1);
	size_t got = 0;
	while (got < (size_t)size) {
		ssize_t n = read(fd, r->file + got, (size_t)size - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (got != (size_t)size) {
		free(r->file);
		r->file = NULL;
		snprintf(err, errlen, "the file of upload %lld could not be read from the media store", (long long)r->upload_id);
		return false;
	}
	r->file_len = got;
	return true;
}

/* The media member of the reply's message event (and of an api channel's request): what an
 * inbound media message's carries. id is the upload's until atende_outbound_sent sets the
 * stored message's media row's. */
static cJSON *ob_media_json(const ob_req_t *r)
{
	cJSON *m = cJSON_CreateObject();
	cJSON_AddNumberToObject(m, "id", (double)r->upload_id);
	cJSON_AddStringToObject(m, "kind", r->up_kind);
	cJSON_AddStringToObject(m, "mime", r->up_mime);
	cJSON_AddNumberToObject(m, "size", (double)r->up_size);
	json_add_str_or_null(m, "name", r->up_name);
	cJSON_AddStringToObject(m, "status", "stored");
	cJSON_AddNullToObject(m, "error");
	cJSON_AddNullToObject(m, "duration_ms");
	return m;
}

/* The gateway answered (or did not): record a success, retry what may succeed later,
 * give up on the rest. */
static void ob_answer(const hc_result_t *res, void *arg)
{
	ob_req_t *r = arg;
	outbound_t *o = r->o;
	const cfg_t *cfg = o->cfg;
	char why[300];
	bool called = r->call != NULL;
	r->call = NULL;
	int cls = res->status >= 200 && res->status < 300 ? 0
		  : res->status >= 500			   ? 2
		  : res->status > 0			   ? 1
		  : res->timed_out			   ? 3
							   : 4;
	if (called || r->pool) {
		char labels[48];
		metrics_observe(o->m_call_seconds, res->seconds);
		snprintf(labels, sizeof(labels), "status=\"%s\"", ob_outcomes[cls]);
		metrics_inc(o->m_calls, labels);
		if (r->pool && r->gen == r->pool->gw.gen) {
			ob_inst_metrics_t *m = &r->pool->m[r->inst];
			metrics_add(m->calls[cls], 1);
			metrics_observe(m->seconds, res->seconds);
		}
	}
	bool retryable = res->status == 0 || res->status >= 500 || res->status == 429 || res->status == 408;
	/* for the instance's health: a 4xx (the request's fault) says it answers; a 429 or
	 * 408 says nothing either way */
	if (r->pool)
		ob_record_instance(r, res->status == 429 || res->status == 408 ? BREAKER_NEUTRAL
				      : retryable			      ? BREAKER_FAIL
									      : BREAKER_OK,
				   res->status > 0 ? ob_outcomes[cls] : res->error);
	const char *where = r->pool && r->gen == r->pool->gw.gen ? r->pool->gw.inst[r->inst].label : "-";
	int inst = r->inst;
	r->pool = NULL;
	bool upload = r->uploading;
	r->uploading = false;
	if (upload && res->status >= 200 && res->status < 300) {
		cJSON *a = cJSON_ParseWithLength(res->body, res->len);
		const char *id = json_str(a, "id");
		if (id && *id) {
			/* the message itself next, as the same round, the same instance preferred */
			r->cloud_media_id = xstrdup(id);
			cJSON_Delete(a);
			log_debug("outbound %s: file uploaded to %s through %s (media id %s)", r->request_id, r->channel, where,
				  r->cloud_media_id);
			r->rounds--;
			r->tried &= ~(1u << inst);
			ob_send(r);
			return;
		}
		cJSON_Delete(a);
		ob_fail(r, "failed", "the gateway's media upload answered no id");
		return;
	}
	if (res->status >= 200 && res->status < 300) {
		cJSON *a = cJSON_ParseWithLength(res->body, res->len);
		const char *id = NULL;
		if (strncmp(r->channel, "evolution:", 10) == 0)
			id = json_str(cJSON_GetObjectItem(a, "key"), "id");
		else if (strncmp(r->channel, "cloud:", 6) == 0)
			id = json_str(cJSON_GetArrayItem(cJSON_GetObjectItem(a, "messages"), 0), "id");
		else
			id = json_str(a, "id");
		char gen[192];
		if (!id || !*id) {
			/* accepted: sending again could duplicate it, so it is recorded under our own id */
			snprintf(gen, sizeof(gen), "atende-%s", r->request_id);
			log_warn("outbound %s: the gateway of %s accepted the reply (HTTP %ld) without a message id; "
				 "stored as %s",
				 r->request_id, r->channel, res->status, gen);
			id = gen;
		}
		log_debug("outbound %s: sent to %s through %s in %.3f s (attempt %d), gateway id %s", r->request_id,
			  r->channel, where, res->seconds, r->attempts, id);
		ob_record_sent(r, id, "sent");
		cJSON_Delete(a);
		return;
	}
	if (res->status > 0)
		snprintf(why, sizeof(why), "the gateway%s answered HTTP %ld: %.200s", upload ? "'s media upload" : "",
			 res->status, res->body);
	else
		snprintf(why, sizeof(why), "the gateway did not answer: %s", res->error);
	for (char *p = why; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	if (retryable && r->rounds <= cfg->outbound.retries) {
		/* a timeout too: the gateway may have sent it, but giving up would lose a reply
		 * that most likely did not go out (README, "Gateway instances") */
		int shift = r->rounds - 1 < 16 ? r->rounds - 1 : 16;
		long delay = (long)cfg->outbound.retry_base_ms << shift;
		log_warn("outbound %s: attempt %d to %s (instance %s) failed (%s); retrying in %ld ms, on another "
			 "instance when there is one",
			 r->request_id, r->rounds, r->channel, where, why, delay);
		ob_later(r, ob_send, delay);
		return;
	}
	ob_fail(r, "failed", why);
}

/* ------------------------------------------------------------------ recording the outcome */

/* The reply's message event, as the one-element array kept in outbound_requests.events:
 * what an inbound message event carries, plus the outcome; db_id and agent_id are completed
 * by atende_outbound_sent. */
static char *ob_message_events(ob_req_t *r, const char *provider_id, const char *status, const char *at)
{
	char key[512];
	size_t len;
	snprintf(key, sizeof(key), "%s:%s", r->channel, r->customer);
	bool stored = provider_id != NULL;
	evt_route_t route = {.company = r->company, .conversation = r->conversation,
			     .agent = stored ? r->conv_agent : r->agent};
	cJSON *media = r->up_kind ? ob_media_json(r) : NULL;
	evt_message_t m = {.message_id = provider_id, .conversation_id = r->conversation, .conversation_key = key,
			   .company_id = r->company, .agent_id = r->conv_agent, .domain = r->domain,
			   .channel = r->channel, .customer = r->customer, .sender_name = r->agent_name,
			   .from_me = true, .kind = r->up_kind ? r->up_kind : "text", .text = r->text, .created_at = at,
			   .status = status, .media = media,
			   .error = stored ? NULL : r->error, .request_id = r->request_id, .client_id = r->client_id,
			   .by_agent = r->agent, .by = r->by[0] ? r->by : NULL, .attempts = r->attempts};
	char *ev = evt_message(&route, &m, &len), *events = xmalloc(len + 3);
	cJSON_Delete(media);
	snprintf(events, len + 3, "[%s]", ev);
	free(ev);
	return events;
}

/* Stores the reply as an agent message (the canonical event the ingress would have
 * built for it) and records the outcome, in one transaction. */
static void ob_record_sent(ob_req_t *r, const char *provider_id, const char *status)
{
	char now[40];
	json_iso_now(now, sizeof(now));
	cJSON *ev = cJSON_CreateObject();
	char key[512];
	snprintf(key, sizeof(key), "%s:%s", r->channel, r->customer);
	cJSON_AddNumberToObject(ev, "v", 1);
	cJSON_AddStringToObject(ev, "type", "message");
	cJSON_AddNumberToObject(ev, "company", (double)r->company);
	cJSON_AddStringToObject(ev, "channel", r->channel);
	json_add_str_or_null(ev, "domain", r->domain);
	cJSON_AddStringToObject(ev, "conversation", key);
	cJSON_AddStringToObject(ev, "customer", r->customer);
	cJSON_AddStringToObject(ev, "provider_id", provider_id);
	cJSON_AddBoolToObject(ev, "from_me", true);
	cJSON_AddStringToObject(ev, "kind", r->up_kind ? r->up_kind : "text");
	cJSON_AddStringToObject(ev, "text", r->text);
	json_add_str_or_null(ev, "sender_name", r->agent_name);
	cJSON_AddStringToObject(ev, "sent_at", now);
	cJSON_AddStringToObject(ev, "received_at", now);
	free(r->rec_event), free(r->rec_events), free(r->rec_status);
	r->rec_event = cJSON_PrintUnformatted(ev);
	r->rec_events = ob_message_events(r, provider_id, status, now);
	r->rec_status = ob_dup(status);
	cJSON_Delete(ev);
	ob_run_sent(r);
}

static void ob_run_sent(ob_req_t *r)
{
	char attempts[16];
	snprintf(attempts, sizeof(attempts), "%d", r->attempts);
	const char *params[5] = {r->request_id, r->rec_event, r->rec_events, r->rec_status, attempts};
	ob_query(r, "SELECT atende_outbound_sent($1, $2::jsonb, $3::jsonb, $4, $5)", 5, params, ob_sent, ob_run_sent);
}

static void ob_sent(ob_req_t *r, PGresult *res)
{
	cJSON *a = PQntuples(res) == 1 ? cJSON_Parse(PQgetvalue(res, 0, 0)) : NULL;
	cJSON *events = cJSON_DetachItemFromObject(a, "events");
	if (!cJSON_IsArray(events)) {
		cJSON_Delete(a);
		cJSON_Delete(events);
		ob_complete(r, false, "atende_outbound_sent answered nothing usable");
		return;
	}
	if (!json_true(a, "inserted"))
		log_debug("outbound %s: the reply was already stored (the gateway's echo came first)", r->request_id);
	ob_count(r->o, r, r->rec_status);
	cJSON_Delete(a);
	ob_set_events(r, events);
	ob_publish(r);
}

/* The reply did not go out (failed) or may not have (unknown): recorded, and the requester told. */
static void ob_fail(ob_req_t *r, const char *status, const char *why)
{
	char now[40];
	json_iso_now(now, sizeof(now));
	snprintf(r->error, sizeof(r->error), "%s", why);
	char who[40];
	if (r->by[0])
		snprintf(who, sizeof(who), "%s", r->by);
	else
		snprintf(who, sizeof(who), "agent %lld", (long long)r->agent);
	log_warn("outbound %s: reply of %s in conversation %lld %s (%d gateway call(s) here): %s", r->request_id, who,
		 (long long)r->conversation, status, r->attempts, why);
	free(r->rec_events), free(r->rec_status);
	r->rec_events = ob_message_events(r, NULL, status, now);
	r->rec_status = ob_dup(status);
	ob_set_events(r, cJSON_Parse(r->rec_events));
	ob_run_fail(r);
}

static void ob_run_fail(ob_req_t *r)
{
	char attempts[16];
	snprintf(attempts, sizeof(attempts), "%d", r->attempts);
	const char *params[5] = {r->request_id, r->rec_status, r->error, r->rec_events, attempts};
	/* only a request still being sent: anything else was decided by someone else meanwhile */
	ob_query(r,
		 "UPDATE outbound_requests SET status = $2, error = $3, events = $4::jsonb, attempts = $5, "
		 "updated_at = now() WHERE request_id = $1 AND status = 'sending'",
		 5, params, ob_failed, ob_run_fail);
}

static void ob_failed(ob_req_t *r, PGresult *res)
{
	if (strcmp(PQcmdTuples(res), "1") != 0) {
		ob_claim(r); /* see what happened instead, and go on from there */
		return;
	}
	ob_count(r->o, r, r->rec_status);
	ob_publish(r);
}

/* ------------------------------------------------------------------ publishing */

/* Publishes every event not yet acknowledged; the request is marked published when the
 * broker has them all. */
static void ob_publish(ob_req_t *r)
{
	if (!r->acked)
		r->acked = xcalloc((size_t)r->n_events + 1, sizeof(bool));
	r->publishing = true;
	r->pub_failed = false;
	for (int i = 0; i < r->n_events; i++) {
		if (r->acked[i])
			continue;
		ob_pub_t *p = xmalloc(sizeof(*p));
		p->r = r;
		p->index = i;
		r->unacked++;
		r->ext++;
		r->o->publish(&r->events[i], ob_acked, p, r->o->arg);
	}
	r->publishing = false;
	if (r->unacked == 0)
		ob_all_acked(r);
}

static void ob_acked(void *ctx, bool ok)
{
	ob_pub_t *p = ctx;
	ob_req_t *r = p->r;
	int i = p->index;
	free(p);
	r->ext--;
	if (r->orphan) {
		if (r->ext == 0)
			ob_req_free(r);
		return;
	}
	r->unacked--;
	if (ok)
		r->acked[i] = true;
	else
		r->pub_failed = true;
	if (r->unacked == 0 && !r->publishing)
		ob_all_acked(r);
}

static void ob_all_acked(ob_req_t *r)
{
	if (r->pub_failed) {
		log_warn("outbound %s: an event was not taken by the broker; publishing it again in %d ms", r->request_id,
			 OB_REPUBLISH_MS);
		ob_later(r, ob_publish, OB_REPUBLISH_MS);
		return;
	}
	ob_later(r, ob_mark, 0); /* out of the delivery report's call stack */
}

static void ob_mark(ob_req_t *r)
{
	const char *params[1] = {r->request_id};
	ob_query(r, "UPDATE outbound_requests SET published_at = now(), lease_until = now() WHERE request_id = $1", 1,
		 params, ob_marked, ob_mark);
}

static void ob_marked(ob_req_t *r, PGresult *res)
{
	(void)res;
	ob_complete(r, true, NULL);
}

/* ------------------------------------------------------------------ plumbing */

static void ob_malformed(ob_req_t *r)
{
	ob_complete(r, false, r->error); /* the caller logs it as it dead-letters it */
}

/* Finishes a request: unlinked, reported, freed. */
static void ob_complete(ob_req_t *r, bool ok, const char *why)
{
	outbound_t *o = r->o;
	if (r->prev)
		r->prev->next = r->next;
	else
		o->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	o->n_reqs--;
	if (r->call) {
		hc_cancel(o->hc, r->call);
		r->call = NULL;
		if (r->pool)
			ob_record_instance(r, BREAKER_NEUTRAL, "cancelled"); /* frees a probe */
	}
	ob_req_t *next = NULL;
	for (ob_req_t *x = o->reqs; x; x = x->next)
		if (x->queued && x->conversation == r->conversation && r->conversation && (!next || x->seq < next->seq))
			next = x;
	if (next) {
		next->queued = false;
		ob_later(next, ob_claim, 0);
	}
	char reason[400];
	snprintf(reason, sizeof(reason), "%s", why ? why : "");
	outbound_done_fn done = r->done;
	void *token = r->token;
	event_free(r->timer);
	r->timer = NULL;
	ob_req_free(r);
	done(token, ok, ok ? NULL : reason);
}

/* Queues a query whose answer goes to on; again re-runs it after a lost connection or a
 * refusal (every query here may run twice harmlessly). */
static void ob_query(ob_req_t *r, const char *sql, int n, const char *const *params, ob_result_fn on, ob_step_fn again)
{
	r->on_result = on;
	r->again = again;
	if (!db_query(r->o->db, sql, n, params, ob_db_cb, r)) {
		ob_later(r, again, 100); /* the connection's queue is full */
		return;
	}
	r->ext++;
}

static void ob_db_cb(PGresult *res, void *arg)
{
	ob_req_t *r = arg;
	r->ext--;
	if (r->orphan) {
		if (r->ext == 0)
			ob_req_free(r);
		return;
	}
	if (!res) {
		/* connection lost: the query may or may not have run; db holds the next one until it is back */
		ob_later(r, r->again, 0);
		return;
	}
	ExecStatusType st = PQresultStatus(res);
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		char why[400];
		const char *e = PQresultErrorMessage(res);
		snprintf(why, sizeof(why), "outbound %s: %.*s", r->request_id, (int)strcspn(e, "\n"), e);
		if (++r->db_errors >= r->o->cfg->workers.retries) {
			ob_complete(r, false, why); /* dead-lettered, and logged, by the caller */
			return;
		}
		log_warn("%s (attempt %d; retrying)", why, r->db_errors);
		ob_later(r, r->again, 100L << (r->db_errors < 10 ? r->db_errors : 10));
		return;
	}
	r->on_result(r, res);
}

static void ob_later(ob_req_t *r, ob_step_fn fn, long ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	r->timer_fn = fn;
	evtimer_add(r->timer, &tv);
}

static void ob_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	ob_req_t *r = arg;
	r->timer_fn(r);
}

static void ob_req_free(ob_req_t *r)
{
	if (r->timer)
		event_free(r->timer);
	free(r->request_json);
	free(r->text);
	free(r->sender_name);
	free(r->up_kind), free(r->up_mime), free(r->up_name), free(r->file), free(r->cloud_media_id);
	cJSON_Delete(r->client_id);
	free(r->channel), free(r->customer), free(r->domain), free(r->agent_name);
	free(r->rec_event), free(r->rec_events), free(r->rec_status);
	for (int i = 0; i < r->n_events; i++)
		evt_free(&r->events[i]);
	free(r->events);
	free(r->acked);
	free(r);
}

/* Takes events (an array, or anything else meaning none) as what to publish, none acknowledged
 * yet. An element that is not an event is never publishable: logged and left out. */
static void ob_set_events(ob_req_t *r, cJSON *events)
{
	char why[160];
	for (int i = 0; i < r->n_events; i++)
		evt_free(&r->events[i]);
	free(r->events);
	free(r->acked);
	r->acked = NULL;
	r->n_events = 0;
	int n = cJSON_IsArray(events) ? cJSON_GetArraySize(events) : 0;
	r->events = xcalloc((size_t)n + 1, sizeof(evt_t));
	for (int i = 0; i < n; i++) {
		if (evt_parse_tree(&r->events[r->n_events], cJSON_DetachItemFromArray(events, 0), why, sizeof(why)))
			r->n_events++;
		else
			log_warn("outbound %s: event %d left out: %s", r->request_id, i, why);
	}
	cJSON_Delete(events);
}

static void ob_count(outbound_t *o, const ob_req_t *r, const char *result)
{
	char labels[96];
	snprintf(labels, sizeof(labels), "kind=\"%s\",result=\"%s\"", ob_kind_names[r->kind], result);
	metrics_inc(o->m_requests, labels);
}

/* The longest one handling may hold a request: every attempt timing out, plus the
 * backoffs between them, plus a margin for the database. */
static long ob_lease_ms(const outbound_t *o)
{
	const cfg_t *c = o->cfg;
	long total = (long)c->outbound.timeout_ms * (c->outbound.retries + 1);
	for (int i = 0; i < c->outbound.retries; i++)
		total += (long)c->outbound.retry_base_ms << (i < 16 ? i : 16);
	return total + OB_LEASE_MARGIN_MS;
}

/* ------------------------------------------------------------------ gateway instances */

/* Where a channel's replies may go: its configured instances; a Cloud API channel without
 * any uses graph.facebook.com. *n is 0 when there is nowhere. */
static const cfg_instance_t *ob_instances(const cfg_channel_t *ch, int *n)
{
	static const cfg_instance_t cloud = {.url = OB_CLOUD_URL, .weight = 1};
	*n = ch->n_instances;
	if (ch->n_instances > 0)
		return ch->instances;
	if (ch->type == CHAN_CLOUD) {
		*n = 1;
		return &cloud;
	}
	return NULL;
}

/* The pool of a channel, created on first use and brought in line with the configuration
 * (a reload may have changed its instances: the ones kept keep their state). */
static ob_pool_t *ob_pool_get(outbound_t *o, const cfg_channel_t *ch, const cfg_instance_t *in, int n)
{
	ob_pool_t *p = NULL;
	for (int i = 0; i < o->n_pools && !p; i++)
		if (o->pools[i]->type == ch->type && strcmp(o->pools[i]->name, ch->name) == 0)
			p = o->pools[i];
	if (!p) {
		static const char *const prefix[] = {"evolution", "cloud", "api"};
		p = xcalloc(1, sizeof(*p));
		p->o = o;
		p->type = ch->type;
		p->name = xstrdup(ch->name);
		snprintf(p->channel, sizeof(p->channel), "%s:%.200s", prefix[ch->type], ch->name);
		gwp_init(&p->gw, &o->bp);
		o->pools = xrealloc(o->pools, sizeof(*o->pools) * (size_t)(o->n_pools + 1));
		o->pools[o->n_pools++] = p;
	}
	if (!gwp_matches(&p->gw, in, n)) {
		ob_pool_cancel_checks(p);
		gwp_sync(&p->gw, in, n);
		log_info("outbound: channel %s sends through %d gateway instance(s)", p->channel, p->gw.n);
	}
	if (p->m_gen != p->gw.gen) {
		p->m_gen = p->gw.gen;
		ob_inst_metrics(o, p);
	}
	return p;
}

/* Looks up the series of every instance of p, and sets their gauges. */
static void ob_inst_metrics(outbound_t *o, ob_pool_t *p)
{
	char labels[512];
	for (int i = 0; i < p->gw.n; i++) {
		ob_inst_metrics_t *m = &p->m[i];
		for (int k = 0; k < 5; k++) {
			snprintf(labels, sizeof(labels), "channel=\"%s\",instance=\"%s\",outcome=\"%s\"", p->channel,
				 p->gw.inst[i].label, ob_outcomes[k]);
			m->calls[k] = metrics_series(o->m_inst_calls, labels);
		}
		snprintf(labels, sizeof(labels), "channel=\"%s\",instance=\"%s\"", p->channel, p->gw.inst[i].label);
		m->breaker = metrics_series(o->m_inst_breaker, labels);
		m->healthy = metrics_series(o->m_inst_healthy, labels);
		m->seconds = metrics_series(o->m_inst_seconds, labels);
		ob_inst_gauges(p, i);
	}
}

static void ob_inst_gauges(ob_pool_t *p, int i)
{
	if (p->m_gen != p->gw.gen || !p->m[i].breaker)
		return;
	metrics_set(p->m[i].breaker, (double)breaker_state(&p->gw.inst[i].breaker));
	metrics_set(p->m[i].healthy, p->gw.inst[i].healthy ? 1 : 0);
}

/* Tells the instance's breaker how the request's call went; logs when it opens or closes. */
static void ob_record_instance(ob_req_t *r, breaker_outcome_t outcome, const char *why)
{
	ob_pool_t *p = r->pool;
	if (r->gen != p->gw.gen)
		return; /* the instances changed meanwhile: which one it was is gone */
	gwp_inst_t *in = &p->gw.inst[r->inst];
	breaker_state_t before = breaker_state(&in->breaker);
	gwp_record(&p->gw, r->inst, ob_now_ms(), outcome, r->probe);
	r->probe = false;
	breaker_state_t after = breaker_state(&in->breaker);
	if (after == BREAKER_OPEN && before != BREAKER_OPEN)
		log_warn("outbound: gateway instance %s of %s: circuit breaker open for %d s (last: %s); its share goes "
			 "to the other instances",
			 in->label, p->channel, (int)(p->gw.bp.open_ms / 1000), why);
	else if (after == BREAKER_CLOSED && before != BREAKER_CLOSED)
		log_info("outbound: gateway instance %s of %s: circuit breaker closed, it takes its share again", in->label,
			 p->channel);
	ob_inst_gauges(p, r->inst);
}

/* Every OB_HEALTH_TICK_MS: starts the health checks that are due, for every channel that
 * can send (Evolution with a url, Cloud API with an access token; api channels are not
 * checked: a GET of their url says nothing about whether it takes messages). */
static void ob_health_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	outbound_t *o = arg;
	const cfg_t *cfg = o->cfg;
	if (cfg->outbound.health_interval_s <= 0)
		return;
	int64_t now = ob_now_ms();
	for (int c = 0; c < cfg->n_channels; c++) {
		const cfg_channel_t *ch = &cfg->channels[c];
		int n = 0;
		const cfg_instance_t *in = ob_instances(ch, &n);
		if (n == 0 || ch->type == CHAN_API || (ch->type == CHAN_CLOUD && (!ch->access_token || !*ch->access_token)))
			continue;
		ob_pool_t *p = ob_pool_get(o, ch, in, n);
		for (int i = 0; i < p->gw.n; i++)
			if (!p->checks[i].call && now >= p->gw.inst[i].next_check_ms)
				ob_health_start(o, p, ch, i, now);
	}
}

/* Evolution: GET {url}/instance/connectionState/{instance} (apikey), healthy when 200 and
 * instance.state is "open". Cloud API: GET {url}/{version}/{phone_number_id} (bearer),
 * healthy when 200. */
static void ob_health_start(outbound_t *o, ob_pool_t *p, const cfg_channel_t *ch, int i, int64_t now)
{
	const cfg_t *cfg = o->cfg;
	gwp_inst_t *in = &p->gw.inst[i];
	char url[2048], auth[1200], esc[768], err[256];
	const char *headers[1] = {auth};
	size_t blen = strlen(in->url);
	while (blen > 0 && in->url[blen - 1] == '/')
		blen--;
	if (ch->type == CHAN_EVOLUTION) {
		const char *key = in->key ? in->key : ch->key;
		hc_path_escape(in->instance ? in->instance : ch->name, esc, sizeof(esc));
		snprintf(url, sizeof(url), "%.*s/instance/connectionState/%s", (int)blen, in->url, esc);
		snprintf(auth, sizeof(auth), "apikey: %s", key ? key : "");
	} else {
		hc_path_escape(ch->name, esc, sizeof(esc));
		snprintf(url, sizeof(url), "%.*s/" OB_CLOUD_VERSION "/%s", (int)blen, in->url, esc);
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", ch->access_token);
	}
	in->next_check_ms = now + (int64_t)cfg->outbound.health_interval_s * 1000;
	ob_check_t *k = &p->checks[i];
	k->pool = p;
	k->index = i;
	k->gen = p->gw.gen;
	k->call = hc_get(o->hc, url, headers, 1, cfg->outbound.health_timeout_ms, OB_HEALTH_MAX_RESPONSE,
			 ob_health_answer, k, err, sizeof(err));
	if (!k->call)
		log_warn("outbound: health check of %s (%s) cannot start: %s", in->label, p->channel, err);
}

static void ob_health_answer(const hc_result_t *res, void *arg)
{
	ob_check_t *k = arg;
	ob_pool_t *p = k->pool;
	k->call = NULL;
	if (k->gen != p->gw.gen)
		return;
	gwp_inst_t *in = &p->gw.inst[k->index];
	bool ok = res->status == 200;
	char why[200] = "";
	if (ok && p->type == CHAN_EVOLUTION) {
		cJSON *a = cJSON_ParseWithLength(res->body, res->len);
		const char *state = json_str(cJSON_GetObjectItem(a, "instance"), "state");
		ok = state && strcmp(state, "open") == 0;
		if (!ok)
			snprintf(why, sizeof(why), "connection state %.60s", state ? state : "missing");
		cJSON_Delete(a);
	} else if (!ok) {
		if (res->status > 0)
			snprintf(why, sizeof(why), "HTTP %ld", res->status);
		else
			snprintf(why, sizeof(why), "%.150s", res->error);
	}
	bool was = in->healthy;
	breaker_state_t before = breaker_state(&in->breaker);
	gwp_health(&p->gw, k->index, ok);
	char labels[512];
	snprintf(labels, sizeof(labels), "channel=\"%s\",instance=\"%s\",result=\"%s\"", p->channel, in->label,
		 ok ? "healthy" : "unhealthy");
	metrics_inc(p->o->m_health, labels);
	if (was && !ok)
		log_warn("outbound: gateway instance %s of %s failed its health check (%s): skipped until one passes",
			 in->label, p->channel, why);
	else if (!was && ok)
		log_info("outbound: gateway instance %s of %s passed its health check: back in the rotation", in->label,
			 p->channel);
	if (ok && before == BREAKER_OPEN)
		log_info("outbound: gateway instance %s of %s passed its health check with its breaker open: the next "
			 "send there is the probe",
			 in->label, p->channel);
	ob_inst_gauges(p, k->index);
}

/* Cancels the pool's health checks in flight (its instance list is about to change). */
static void ob_pool_cancel_checks(ob_pool_t *p)
{
	for (int i = 0; i < GWP_MAX; i++)
		if (p->checks[i].call) {
			hc_cancel(p->o->hc, p->checks[i].call);
			p->checks[i].call = NULL;
			if (i < p->gw.n)
				p->gw.inst[i].next_check_ms = 0; /* checked again at once if it stays */
		}
}

static int64_t ob_now_ms(void)
{
	return (int64_t)(ob_now() * 1000);
}

static char *ob_dup(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static double ob_now(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}
