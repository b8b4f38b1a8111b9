/*
 * atende-notifier: reads all of atende.events (no consumer group: every instance sees
 * every event) and fans events out over WebSocket (and long-poll) to agent consoles, by
 * channel, with tenancy checks at subscribe time and exact resume from a bounded history.
 * Presence and typing are published to atende.events and read back, so every instance
 * agrees and they get seqs like any event; replies and transfers go to atende.outbound for
 * the workers (the notifier never writes to PostgreSQL). Also serves the console page.
 *
 * What it writes and reads on atende.events (presence, typing; every other type is read
 * and passed on) is common/event.h's; what it writes to atende.outbound, notifier/wire.h's.
 * A reply or transfer op is acked once the broker acknowledged the message; the worker sends
 * the reply and stores it as an agent message (a "message" event with from_me), or updates
 * the assignment and publishes an "assignment" event that reaches both agents.
 * HTTP: GET /ws?token=T (WebSocket), GET /poll?token=T&channel=CH[&since=S&epoch=E][&timeout=s]
 * (long-poll: the same frames, for networks that block WebSocket), POST /op?token=T (one op
 * as the body, for long-poll clients), GET / (console page), /healthz, /metrics.
 */
#include "config.h"
#include "event.h"
#include "guard.h"
#include "http.h"
#include "hub.h"
#include "json.h"
#include "kq.h"
#include "log.h"
#include "metrics.h"
#include "poll.h"
#include "presence.h"
#include "proc.h"
#include "token.h"
#include "typing.h"
#include "wire.h"
#include "ws.h"

#include <cJSON.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define NTF_CONV_SLOTS (1 << 18)
#define NTF_MAX_SUBSCRIPTIONS 64
#define NTF_TICK_MS 100           /* typing expiry resolution */
#define NTF_MAX_REPLY_CHARS 4096  /* WhatsApp's limit for a text message */
#define NTF_HARD_BUFFER_FACTOR 4  /* output over this many max_send_buffer: cut at once */

/* One console: a WebSocket, or a long-poll request waiting for events. */
typedef struct ntf_conn {
	struct ntf_conn *prev, *next; /* every open connection and waiting poll, for the drain */
	ws_conn_t *ws;                /* NULL for a long-poll, and once the socket is gone */
	token_claims_t claims;
	char token_key[64];           /* the token's signature: connections are counted per token */
	char *channels[NTF_MAX_SUBSCRIPTIONS];
	int32_t partitions[NTF_MAX_SUBSCRIPTIONS]; /* each channel's partition of atende.events */
	int n_channels;
	bool cut;                     /* being closed: deliver nothing more */
	bool gone;                    /* closed (ws) or answered (poll); freed when refs reaches 0 */
	int refs;                     /* 1 while open + 1 per outbound message awaiting its report */
	bool tab;                     /* counted as a presence tab */
	guard_bucket_t ops;           /* op rate limit */
	struct event *slow_timer;     /* armed when the output went over max_send_buffer */
	size_t slow_ref;              /* output to judge it against: the most queued in the first period, then
					 the backlog at the last judgement (a backlog below it is draining) */
	bool slow_again;              /* judged once already: slow_ref is fixed */
	/* long-poll, and POST /op */
	bool op_request;              /* a POST /op: answered by its op's ack or error */
	http_request_t *req;
	poll_batch_t batch;
	struct event *poll_timer;     /* the poll's timeout; activated early to answer events */
} ntf_conn_t;

/* An outbound message (reply, transfer) whose broker acknowledgement the op's ack waits for. */
typedef struct {
	ntf_conn_t *conn;
	char *id_json;
	const char *op;
	char request_id[96];
} ntf_pending_t;

typedef struct {
	const char *path, *type;
	char *body;
	size_t len;
} ntf_file_t;

/* The union changes one consumed presence message caused. */
typedef struct {
	long company;
	int n;
	long agent;
	bool online;
} ntf_changes_t;

typedef struct {
	cfg_t cfg;
	struct event_base *base;
	http_server_t *http;
	kq_t *consumer, *producer;
	hub_t *hub;
	presence_t *presence;
	typing_t *typing;
	guard_counts_t *per_token;
	char instance[PRESENCE_INSTANCE_MAX];
	char events_topic[160], outbound_topic[160];
	int partitions;
	int64_t *next_offset;         /* per partition: the offset the next event should have */
	struct { int64_t conversation; long company; } conv[NTF_CONV_SLOTS]; /* conversation -> company cache */
	ntf_file_t files[3];
	struct ntf_conn *conns;
	int n_ws, n_polls, n_http_ops;
	struct event *tick, *heartbeat;
	bool draining;
	uint64_t request_seq;
	uint64_t n_events, n_deliveries, n_slow_cuts, n_refused, n_limited, n_rate_limited, n_replies, n_transfers,
		n_typing, n_polls_answered, n_produce_errors, n_events_lost;
} ntf_t;

static ntf_t N;
static ws_shared_t *ntf_shared;
static uint64_t ntf_shared_gen;
static void ntf_send_ex(ntf_conn_t *c, const char *frame, size_t len, ws_shared_t *shared);

static void ntf_http(http_request_t *req, void *arg);
static void ntf_upgrade(http_request_t *req);
static void ntf_poll(http_request_t *req);
static void ntf_http_op(http_request_t *req);
static void ntf_http_op_answer(ntf_conn_t *c, const char *frame, size_t len);
static void ntf_dispatch(ntf_conn_t *c, const char *data, size_t len);
static bool ntf_authorize(http_request_t *req, token_claims_t *claims, char *token_key, size_t keylen);
static bool ntf_admit(http_request_t *req, const char *token_key);
static void ntf_on_ws_message(ws_conn_t *ws, const char *data, size_t len, void *arg);
static void ntf_on_ws_close(ws_conn_t *ws, int code, void *arg);
static void ntf_op_subscribe(ntf_conn_t *c, const cJSON *msg, const char *id_json);
static void ntf_op_unsubscribe(ntf_conn_t *c, const cJSON *msg, const char *id_json);
static void ntf_op_typing(ntf_conn_t *c, const cJSON *msg, const char *id_json);
static void ntf_op_reply(ntf_conn_t *c, const cJSON *msg, const char *id_json);
static void ntf_op_transfer(ntf_conn_t *c, const cJSON *msg, const char *id_json);
static bool ntf_op_conversation(ntf_conn_t *c, const cJSON *msg, const char *id_json, const char *op, int64_t *conv);
static void ntf_produce_outbound(ntf_conn_t *c, const char *id_json, const char *op, int64_t conv, char *json,
				 ntf_pending_t *p);
static void ntf_send(ntf_conn_t *c, const char *frame, size_t len);
static void ntf_send_error(ntf_conn_t *c, const char *id_json, const char *op, const char *error);
static void ntf_send_ack(ntf_conn_t *c, const char *id_json, const char *op, const char *extra_json);
static void ntf_deliver(void *conn, const char *frame, size_t len, void *arg);
static ntf_conn_t *ntf_conn_new(const token_claims_t *claims, const char *token_key);
static void ntf_conn_unref(ntf_conn_t *c);
static void ntf_conn_unlink(ntf_conn_t *c);
static void ntf_slow_cb(evutil_socket_t fd, short what, void *arg);
static void ntf_poll_answer_cb(evutil_socket_t fd, short what, void *arg);
static void ntf_poll_answer(ntf_conn_t *c);
static long ntf_channel_company(const token_claims_t *claims, const char *channel, char *why, size_t whylen);
static long ntf_conversation_company(int64_t conversation);
static void ntf_send_presence_list(ntf_conn_t *c, const char *channel, long company, int64_t seq);
static void ntf_on_event(rd_kafka_message_t *msg, void *arg);
static void ntf_check_continuity(int32_t partition, int64_t offset);
static void ntf_on_presence(rd_kafka_message_t *msg, const evt_presence_t *p);
static void ntf_presence_changed(long company, long agent, bool online, void *arg);
static void ntf_tab(ntf_conn_t *c, bool join);
static void ntf_typing_ended(int64_t conversation, long agent, long company, void *arg);
static void ntf_presence_stale(long company, long agent, const char *instance, long long last_seen_ms, void *arg);
static void ntf_heartbeat_company(long company, const long *agents, const int *tabs, int n, void *arg);
static bool ntf_produce_event(long company, const char *type, char *json);
static void ntf_on_delivery(void *opaque, rd_kafka_resp_err_t err, int32_t partition, int64_t offset, void *arg);
static bool ntf_assign_all(char *err, size_t errlen);
static void ntf_load_console(void);
static void ntf_tick_cb(evutil_socket_t fd, short what, void *arg);
static void ntf_heartbeat_cb(evutil_socket_t fd, short what, void *arg);
static void ntf_signal_cb(evutil_socket_t sig, short what, void *arg);
static void ntf_drain_cb(evutil_socket_t fd, short what, void *arg);
static void ntf_metrics(http_request_t *req);
static void ntf_metrics_refresh(void);
static long long ntf_now_ms(void);

int main(int argc, char **argv)
{
	char err[512], host[32] = "host";
	proc_load_config(argc, argv, "notifier", &N.cfg);
	signal(SIGPIPE, SIG_IGN);
	N.base = event_base_new();
	N.hub = hub_new((size_t)N.cfg.notifier.history_events, proc_epoch());
	N.presence = presence_new();
	N.typing = typing_new();
	N.per_token = guard_counts_new();
	gethostname(host, sizeof(host) - 1);
	snprintf(N.instance, sizeof(N.instance), "%.31s:%d:%llx", host, (int)getpid(), ntf_now_ms());
	cfg_topic(&N.cfg, "events", N.events_topic, sizeof(N.events_topic));
	cfg_topic(&N.cfg, "outbound", N.outbound_topic, sizeof(N.outbound_topic));
	ntf_load_console();

	kq_opts_t ko = {.brokers = N.cfg.kafka.brokers, .client_id = "atende-notifier", .on_message = ntf_on_event,
			.fetch_wait_max_ms = N.cfg.kafka.fetch_wait_max_ms};
	N.consumer = kq_consumer_new(N.base, &ko, err, sizeof(err));
	if (!N.consumer || !ntf_assign_all(err, sizeof(err))) {
		log_error("kafka: %s", err);
		return 1;
	}
	kq_opts_t po = {.brokers = N.cfg.kafka.brokers, .client_id = "atende-notifier", .linger_ms = 1,
			.on_delivery = ntf_on_delivery};
	N.producer = kq_producer_new(N.base, &po, err, sizeof(err));
	if (!N.producer) {
		log_error("kafka producer: %s", err);
		return 1;
	}
	kq_known_topics(N.producer, (const char *const[]){N.events_topic, N.outbound_topic}, 2);
	http_limits_t lim;
	http_limits_default(&lim);
	lim.max_connections = N.cfg.notifier.max_connections;
	proc_fd_limit(N.cfg.notifier.max_connections, "notifier.max_connections");
	lim.max_body_bytes = 65536;
	lim.request_timeout_ms = 10000;
	lim.idle_timeout_ms = (N.cfg.notifier.poll_timeout_s + 30) * 1000; /* a long-poll client comes back */
	char mpath[1200];
	metrics_export_start(N.base, proc_metrics_path(&N.cfg, "notifier", 0, mpath, sizeof(mpath)), 1000,
			     ntf_metrics_refresh);
	N.http = http_server_new(N.base, N.cfg.notifier.listen, &lim, ntf_http, NULL, err, sizeof(err));
	if (!N.http) {
		log_error("notifier.listen %s: %s", N.cfg.notifier.listen, err);
		return 1;
	}
	int sigs[] = {SIGTERM, SIGINT, SIGHUP};
	for (int i = 0; i < 3; i++)
		event_add(evsignal_new(N.base, sigs[i], ntf_signal_cb, NULL), NULL);
	N.tick = event_new(N.base, -1, EV_PERSIST, ntf_tick_cb, NULL);
	struct timeval tick = {0, NTF_TICK_MS * 1000};
	event_add(N.tick, &tick);
	N.heartbeat = event_new(N.base, -1, EV_PERSIST, ntf_heartbeat_cb, NULL);
	struct timeval hb = {N.cfg.notifier.presence_heartbeat_s, 0};
	event_add(N.heartbeat, &hb);
	log_info("listening on %s (WebSocket /ws, long-poll /poll, console /), reading %s (%d partitions), epoch %lld, "
		 "instance %s",
		 N.cfg.notifier.listen, N.events_topic, N.partitions, hub_epoch(N.hub), N.instance);

	event_base_dispatch(N.base);

	http_server_free(N.http);
	kq_free(N.producer, 2000); /* the last offline/stop messages reach the other instances */
	kq_free(N.consumer, 0);
	event_free(N.tick);
	event_free(N.heartbeat);
	hub_free(N.hub);
	free(N.next_offset);
	presence_free(N.presence);
	typing_free(N.typing);
	guard_counts_free(N.per_token);
	log_info("stopped: %llu events, %llu deliveries", (unsigned long long)N.n_events,
		 (unsigned long long)N.n_deliveries);
	return 0;
}

/* Reads every partition of the events topic from (at most) history_events back, so
 * the resume history and presence are warm even right after a restart. Blocking: start-up only. */
static bool ntf_assign_all(char *err, size_t errlen)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_t *rk = kq_handle(N.consumer);
	rd_kafka_topic_t *t = rd_kafka_topic_new(rk, N.events_topic, NULL);
	rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
	for (int attempt = 0; attempt < 60; attempt++) {
		e = rd_kafka_metadata(rk, 0, t, &md, 2000);
		if (!e && md->topic_cnt == 1 && md->topics[0].partition_cnt > 0 && !md->topics[0].err)
			break;
		if (!e)
			rd_kafka_metadata_destroy(md), md = NULL;
		usleep(250 * 1000); /* start-up: the broker may still be coming up */
	}
	rd_kafka_topic_destroy(t);
	if (!md) {
		snprintf(err, errlen, "no metadata for %s: %s", N.events_topic, rd_kafka_err2str(e));
		return false;
	}
	N.partitions = md->topics[0].partition_cnt;
	rd_kafka_metadata_destroy(md);
	N.next_offset = calloc((size_t)N.partitions, sizeof(*N.next_offset));
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(N.partitions);
	for (int p = 0; p < N.partitions; p++) {
		int64_t lo = 0, hi = 0;
		e = rd_kafka_query_watermark_offsets(rk, N.events_topic, p, &lo, &hi, 5000);
		if (e) {
			snprintf(err, errlen, "watermarks of %s[%d]: %s", N.events_topic, p, rd_kafka_err2str(e));
			rd_kafka_topic_partition_list_destroy(l);
			return false;
		}
		int64_t start = hi - N.cfg.notifier.history_events > lo ? hi - N.cfg.notifier.history_events : lo;
		hub_set_start(N.hub, p, start);
		N.next_offset[p] = start;
		rd_kafka_topic_partition_list_add(l, N.events_topic, p)->offset = start;
	}
	e = rd_kafka_assign(rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (e) {
		snprintf(err, errlen, "assign: %s", rd_kafka_err2str(e));
		return false;
	}
	return true;
}

/* ---------------------------------------------------------------- events in */

/* An event (common/event.h). Worker events go to company:C, agent:A and conversation:V;
 * typing to conversation:V; presence to presence:C when it changes the union. */
static void ntf_on_event(rd_kafka_message_t *msg, void *arg)
{
	evt_t ev;
	char why[160];
	(void)arg;
	ntf_check_continuity(msg->partition, msg->offset);
	if (!evt_parse(&ev, msg->payload, msg->len, why, sizeof(why))) {
		log_warn("skipping malformed event at %s[%d]@%lld: %s", N.events_topic, (int)msg->partition,
			 (long long)msg->offset, why);
		rd_kafka_message_destroy(msg);
		return;
	}
	N.n_events++;
	if (ev.type == EVT_PRESENCE) {
		ntf_on_presence(msg, &ev.presence);
		evt_free(&ev);
		rd_kafka_message_destroy(msg);
		return;
	}
	bool typing = ev.type == EVT_TYPING;
	char ch[3][64];
	const char *channels[3];
	int n = 0;
	if (!typing)
		snprintf(ch[n], sizeof(ch[n]), "company:%ld", ev.route.company), channels[n] = ch[n], n++;
	if (!typing && ev.route.agent)
		snprintf(ch[n], sizeof(ch[n]), "agent:%lld", (long long)ev.route.agent), channels[n] = ch[n], n++;
	if (ev.route.conversation) {
		int64_t id = ev.route.conversation;
		snprintf(ch[n], sizeof(ch[n]), "conversation:%lld", (long long)id), channels[n] = ch[n], n++;
		N.conv[(uint64_t)id % NTF_CONV_SLOTS].conversation = id;
		N.conv[(uint64_t)id % NTF_CONV_SLOTS].company = ev.route.company;
		/* a stop published by another instance (the console moved) ends the state we hold */
		if (typing && !ev.typing.start && ev.typing.instance && strcmp(ev.typing.instance, N.instance) != 0)
			typing_stop(N.typing, id, (long)ev.typing.agent_id);
	}
	char *data_json = evt_data_json(&ev);
	N.n_deliveries += hub_publish(N.hub, msg->partition, msg->offset, ev.type_name, channels, n, data_json, ntf_deliver, NULL);
	free(data_json);
	evt_free(&ev);
	rd_kafka_message_destroy(msg);
}

/* Offsets of a partition are consecutive (no compaction, no transactions): a jump means the
 * broker dropped events before this notifier read them (the embedded broker keeps about 5 MiB
 * a partition; a real one, retention.ms). The history cannot cover them, so a resume from
 * before the jump gets a reset, and every console on that partition is told to reload now. */
static void ntf_check_continuity(int32_t partition, int64_t offset)
{
	if (partition < 0 || partition >= N.partitions)
		return;
	int64_t expected = N.next_offset[partition];
	N.next_offset[partition] = offset + 1;
	if (offset <= expected)
		return;
	N.n_events_lost += (uint64_t)(offset - expected);
	log_warn("%s[%d]: events %lld..%lld were gone before this notifier read them; telling the consoles of that "
		 "partition to reload", N.events_topic, (int)partition, (long long)expected, (long long)offset - 1);
	hub_set_start(N.hub, partition, offset);
	char frame[512], *data = evt_reset_data("events were lost before delivery: reload");
	ntf_conn_t *next;
	for (ntf_conn_t *c = N.conns; c; c = next) {
		next = c->next; /* a send may cut and unlink c */
		for (int i = 0; i < c->n_channels; i++)
			if (c->partitions[i] == partition) {
				size_t n = hub_frame(frame, sizeof(frame), "reset", c->channels[i], offset - 1, hub_epoch(N.hub), data);
				ntf_send(c, frame, n);
			}
	}
	free(data);
}

/* Applies one presence message to the union; what changed goes to presence:C with the
 * message's offset as seq, so every instance numbers it alike. */
static void ntf_on_presence(rd_kafka_message_t *msg, const evt_presence_t *p)
{
	long company = p->company_id;
	rd_kafka_timestamp_type_t tstype;
	long long ts = rd_kafka_message_timestamp(msg, &tstype);
	if (ts <= 0)
		ts = ntf_now_ms();
	ntf_changes_t ch = {.company = company};
	if (p->kind == EVT_PRESENCE_REPORT)
		presence_report(N.presence, company, p->agent_id, p->instance, p->tabs, ts, ntf_presence_changed, &ch);
	else if (p->kind == EVT_PRESENCE_HEARTBEAT)
		presence_snapshot(N.presence, company, p->instance, p->agents, p->agent_tabs, p->n_agents, ts,
				  ntf_presence_changed, &ch);
	else
		presence_expire(N.presence, company, p->agent_id, p->instance, p->last_seen_ms, ntf_presence_changed, &ch);
	if (ch.n == 0)
		return;
	char channel[64], *out;
	snprintf(channel, sizeof(channel), "presence:%ld", company);
	if (ch.n == 1) {
		out = evt_presence_change_data(company, ch.agent, ch.online);
	} else {
		int n = presence_list(N.presence, company, NULL, 0);
		long *ids = malloc(((size_t)n + 1) * sizeof(long));
		n = presence_list(N.presence, company, ids, n);
		out = evt_presence_list_data(company, ids, n);
		free(ids);
	}
	const char *channels[1] = {channel};
	N.n_deliveries += hub_publish(N.hub, msg->partition, msg->offset, "presence", channels, 1, out, ntf_deliver, NULL);
	free(out);
}

static void ntf_presence_changed(long company, long agent, bool online, void *arg)
{
	ntf_changes_t *ch = arg;
	(void)company;
	ch->n++;
	ch->agent = agent;
	ch->online = online;
}

static void ntf_deliver(void *conn, const char *frame, size_t len, void *arg)
{
	ntf_conn_t *c = conn;
	(void)arg;
	if (c->ws && !c->cut && !c->gone) {
		uint64_t gen = hub_frame_gen(N.hub);
		if (!ntf_shared || ntf_shared_gen != gen) {
			ws_shared_release(ntf_shared);
			ntf_shared = ws_shared_text(frame, len);
			ntf_shared_gen = gen;
		}
		ntf_send_ex(c, frame, len, ntf_shared);
		return;
	}
	ntf_send(conn, frame, len);
}

/* Sends a frame (or adds it to a waiting long-poll's answer). A client whose output stays over
 * max_send_buffer for slow_consumer_ms, or reaches NTF_HARD_BUFFER_FACTOR times it, is closed
 * with 1008: it cannot make the notifier buffer without bound or slow anyone else. */
static void ntf_send(ntf_conn_t *c, const char *frame, size_t len)
{
	ntf_send_ex(c, frame, len, NULL);
}

static void ntf_send_ex(ntf_conn_t *c, const char *frame, size_t len, ws_shared_t *shared)
{
	if (c->cut || c->gone)
		return;
	if (!c->ws && c->op_request) {
		ntf_http_op_answer(c, frame, len);
		return;
	}
	if (!c->ws) {
		poll_batch_add(&c->batch, frame, len);
		event_active(c->poll_timer, EV_TIMEOUT, 1); /* answer once this loop turn's events are in */
		return;
	}
	size_t soft = (size_t)N.cfg.notifier.max_send_buffer, pending = ws_conn_pending_bytes(c->ws);
	if (pending > soft * NTF_HARD_BUFFER_FACTOR ||
	    !(shared ? ws_conn_send_shared(c->ws, shared) : ws_conn_send_text(c->ws, frame, len))) {
		c->cut = true;
		N.n_slow_cuts++;
		log_warn("agent %ld (company %ld): slow consumer (%zu bytes queued): closing", c->claims.agent,
			 c->claims.company, pending);
		ws_conn_close(c->ws, WS_CLOSE_POLICY, "slow consumer");
		return;
	}
	if (pending + len > soft) {
		if (!evtimer_pending(c->slow_timer, NULL)) {
			struct timeval tv = {N.cfg.notifier.slow_consumer_ms / 1000, (N.cfg.notifier.slow_consumer_ms % 1000) * 1000};
			evtimer_add(c->slow_timer, &tv);
			c->slow_ref = 0;
			c->slow_again = false;
		}
		if (!c->slow_again && pending + len > c->slow_ref)
			c->slow_ref = pending + len;
	}
}

/* slow_consumer_ms after the output went over max_send_buffer: still over, and no smaller than the
 * most it held meanwhile (later: than at the last judgement), means slow. A client whose backlog
 * shrinks is reading, only behind a burst, or behind this process, busy fanning a batch out to
 * everyone: it is judged again a period later. */
static void ntf_slow_cb(evutil_socket_t fd, short what, void *arg)
{
	ntf_conn_t *c = arg;
	(void)fd, (void)what;
	if (c->cut || c->gone || !c->ws)
		return;
	size_t pending = ws_conn_pending_bytes(c->ws);
	if (pending <= (size_t)N.cfg.notifier.max_send_buffer)
		return;
	if (pending < c->slow_ref) {
		struct timeval tv = {N.cfg.notifier.slow_consumer_ms / 1000, (N.cfg.notifier.slow_consumer_ms % 1000) * 1000};
		c->slow_ref = pending;
		c->slow_again = true;
		evtimer_add(c->slow_timer, &tv);
		return;
	}
	c->cut = true;
	N.n_slow_cuts++;
	log_warn("agent %ld (company %ld): slow consumer (%zu bytes queued for %d ms): closing", c->claims.agent,
		 c->claims.company, pending, N.cfg.notifier.slow_consumer_ms);
	ws_conn_close(c->ws, WS_CLOSE_POLICY, "slow consumer");
}

/* ---------------------------------------------------------------- HTTP */

static void ntf_http(http_request_t *req, void *arg)
{
	(void)arg;
	const char *path = http_request_path(req);
	if (strcmp(path, "/ws") == 0) {
		ntf_upgrade(req);
		return;
	}
	if (strcmp(path, "/poll") == 0) {
		ntf_poll(req);
		return;
	}
	if (strcmp(path, "/op") == 0) {
		ntf_http_op(req);
		return;
	}
	if (strcmp(path, "/healthz") == 0) {
		bool up = kq_brokers_up(N.consumer) && !kq_fatal(N.producer) && !N.draining;
		http_respond_json(req, up ? 200 : 503, up ? "{\"ok\":true}" : "{\"ok\":false,\"error\":\"broker unreachable\"}");
		return;
	}
	if (strcmp(path, "/metrics") == 0) {
		ntf_metrics(req);
		return;
	}
	if (strcmp(path, "/") == 0)
		path = "/index.html";
	for (int i = 0; i < 3; i++)
		if (N.files[i].body && strcmp(path + 1, N.files[i].path) == 0) {
			http_response_add_header(req, "Cache-Control", "no-cache");
			http_response_add_header(req, "X-Content-Type-Options", "nosniff");
			http_response_add_header(req, "Content-Security-Policy",
						 "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:");
			http_respond(req, 200, N.files[i].type, N.files[i].body, N.files[i].len);
			return;
		}
	http_respond_error(req, 404, "no such path");
}

/* Token (401) and Origin (403) checks shared by /ws and /poll. Answers the request when false. */
static bool ntf_authorize(http_request_t *req, token_claims_t *claims, char *token_key, size_t keylen)
{
	char token[TOKEN_MAX_LEN];
	if (!http_request_query_param(req, "token", token, sizeof(token))) {
		N.n_refused++;
		http_respond_error(req, 401, "missing token (?token=...)");
		return false;
	}
	token_status_t st = token_verify(N.cfg.auth.token_secret, token, (long)time(NULL), claims);
	if (st != TOKEN_OK) {
		char msg[128];
		N.n_refused++;
		snprintf(msg, sizeof(msg), "token refused: %s", token_status_text(st));
		http_respond_error(req, 401, msg);
		return false;
	}
	const char *sig = strrchr(token, '.');
	snprintf(token_key, keylen, "%.63s", sig ? sig + 1 : token); /* HS256: 43 characters */
	const char *origin = http_request_header(req, "Origin");
	if (origin && N.cfg.notifier.allowed_origins[0]) {
		bool ok = false;
		char list[1024];
		snprintf(list, sizeof(list), "%s", N.cfg.notifier.allowed_origins);
		for (char *save, *o = strtok_r(list, " ,", &save); o; o = strtok_r(NULL, " ,", &save))
			ok |= strcmp(o, origin) == 0;
		if (!ok) {
			N.n_refused++;
			http_respond_error(req, 403, "Origin not allowed");
			return false;
		}
	}
	return true;
}

/* Connection limits, global (503) and per token (429). Answers the request when false. */
static bool ntf_admit(http_request_t *req, const char *token_key)
{
	if (N.draining) {
		http_respond_error(req, 503, "shutting down");
		return false;
	}
	if (N.n_ws + N.n_polls + N.n_http_ops >= N.cfg.notifier.max_connections) {
		N.n_limited++;
		http_response_add_header(req, "Retry-After", "5");
		http_respond_error(req, 503, "too many connections");
		return false;
	}
	if (guard_counts_get(N.per_token, token_key) >= N.cfg.notifier.max_connections_per_token) {
		char msg[96];
		N.n_limited++;
		snprintf(msg, sizeof(msg), "too many connections for this token (at most %d)",
			 N.cfg.notifier.max_connections_per_token);
		http_response_add_header(req, "Retry-After", "5");
		http_respond_error(req, 429, msg);
		return false;
	}
	return true;
}

static ntf_conn_t *ntf_conn_new(const token_claims_t *claims, const char *token_key)
{
	ntf_conn_t *c = calloc(1, sizeof(*c));
	c->claims = *claims;
	snprintf(c->token_key, sizeof(c->token_key), "%s", token_key);
	c->refs = 1;
	c->next = N.conns;
	if (N.conns)
		N.conns->prev = c;
	N.conns = c;
	guard_counts_add(N.per_token, c->token_key, 1);
	return c;
}

static void ntf_upgrade(http_request_t *req)
{
	char response[512], token_key[64];
	const char *reason = NULL;
	token_claims_t claims;
	if (!ntf_authorize(req, &claims, token_key, sizeof(token_key)))
		return;
	if (!ws_handshake_response(http_request_header(req, "Upgrade"), http_request_header(req, "Connection"),
				   http_request_header(req, "Sec-WebSocket-Key"), http_request_header(req, "Sec-WebSocket-Version"),
				   response, sizeof(response), &reason)) {
		const char *v = http_request_header(req, "Sec-WebSocket-Version");
		if (v && strcmp(v, "13") != 0) {
			http_response_add_header(req, "Sec-WebSocket-Version", "13");
			http_respond_error(req, 426, reason);
		} else {
			http_respond_error(req, 400, reason ? reason : "not a WebSocket upgrade");
		}
		return;
	}
	if (!ntf_admit(req, token_key))
		return;
	struct bufferevent *bev = http_request_take_connection(req);
	if (!bev)
		return;
	if (N.cfg.notifier.socket_send_buffer > 0) {
		int sz = N.cfg.notifier.socket_send_buffer;
		setsockopt(bufferevent_getfd(bev), SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	}
	bufferevent_write(bev, response, strlen(response));
	ntf_conn_t *c = ntf_conn_new(&claims, token_key);
	/* the notifier bounds the output itself (ntf_send): the codec's limit stays off */
	ws_limits_t wl = {.max_message_bytes = 65536, .ping_interval_ms = N.cfg.notifier.ping_interval_s * 1000};
	ws_callbacks_t cb = {.on_message = ntf_on_ws_message, .on_close = ntf_on_ws_close};
	c->slow_timer = evtimer_new(N.base, ntf_slow_cb, c);
	c->ws = ws_conn_new(bev, false, &wl, &cb, c);
	if (!c->ws) {
		c->gone = true;
		ntf_conn_unlink(c);
		ntf_conn_unref(c);
		return;
	}
	N.n_ws++;
	ntf_tab(c, true);
	log_debug("agent %ld (company %ld, %s) connected", claims.agent, claims.company, claims.role);
}

static void ntf_on_ws_close(ws_conn_t *ws, int code, void *arg)
{
	ntf_conn_t *c = arg;
	(void)ws;
	log_debug("agent %ld disconnected (%d)", c->claims.agent, code);
	c->ws = NULL;
	c->gone = true;
	N.n_ws--;
	typing_drop_owner(N.typing, c, ntf_typing_ended, "disconnected");
	ntf_tab(c, false);
	ntf_conn_unlink(c);
	ntf_conn_unref(c);
}

/* Takes c out of the hub and the connection list (it stays allocated while refs remain). */
static void ntf_conn_unlink(ntf_conn_t *c)
{
	for (int i = 0; i < c->n_channels; i++) {
		hub_unsubscribe(N.hub, c->channels[i], c);
		free(c->channels[i]);
	}
	c->n_channels = 0;
	if (c->prev)
		c->prev->next = c->next;
	else if (N.conns == c)
		N.conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	guard_counts_add(N.per_token, c->token_key, -1);
}

static void ntf_conn_unref(ntf_conn_t *c)
{
	if (--c->refs > 0)
		return;
	if (c->slow_timer)
		event_free(c->slow_timer);
	if (c->poll_timer)
		event_free(c->poll_timer);
	poll_batch_free(&c->batch);
	free(c);
}

/* Counts a WebSocket as a presence tab of its agent; the first tab and the last one are
 * published, and the union (read back from the log) decides what consoles see. */
static void ntf_tab(ntf_conn_t *c, bool join)
{
	if (join == c->tab)
		return;
	c->tab = join;
	int tabs = join ? presence_local_join(N.presence, c->claims.company, c->claims.agent)
			: presence_local_leave(N.presence, c->claims.company, c->claims.agent);
	if ((join && tabs == 1) || (!join && tabs == 0)) {
		evt_presence_t p = {.kind = EVT_PRESENCE_REPORT, .company_id = c->claims.company, .agent_id = c->claims.agent,
				    .online = join, .instance = N.instance, .tabs = tabs, .at_ms = ntf_now_ms()};
		ntf_produce_event(c->claims.company, "presence", evt_presence(&p, NULL));
	}
}

/* ---------------------------------------------------------------- long-poll */

/* GET /poll?token=T&channel=CH[&since=S[&epoch=E]][&timeout=s]: the events of CH after S, as
 * soon as there is one (or an empty list after the timeout), with the seq to pass next.
 * Without since: no events (the presence list for presence:C), just the seq to start from. */
static void ntf_poll(http_request_t *req)
{
	char token_key[64], channel[96], why[160], buf[32];
	token_claims_t claims;
	long long since = -2, epoch = -1, timeout = N.cfg.notifier.poll_timeout_s;
	if (strcmp(http_request_method(req), "GET") != 0) {
		http_respond_error(req, 405, "use GET");
		return;
	}
	if (!ntf_authorize(req, &claims, token_key, sizeof(token_key)))
		return;
	if (!http_request_query_param(req, "channel", channel, sizeof(channel))) {
		http_respond_error(req, 400, "missing channel (agent:A, conversation:ID, company:C or presence:C)");
		return;
	}
	long company = ntf_channel_company(&claims, channel, why, sizeof(why));
	if (company < 0) {
		http_respond_error(req, 403, why);
		return;
	}
	if ((http_request_query_param(req, "since", buf, sizeof(buf)) && !poll_parse_ll(buf, -1, INT64_MAX, &since)) ||
	    (http_request_query_param(req, "epoch", buf, sizeof(buf)) && !poll_parse_ll(buf, 0, INT64_MAX, &epoch)) ||
	    (http_request_query_param(req, "timeout", buf, sizeof(buf)) &&
	     !poll_parse_ll(buf, 0, N.cfg.notifier.poll_timeout_s, &timeout))) {
		http_respond_error(req, 400, "since, epoch and timeout must be integers (timeout at most poll_timeout_s)");
		return;
	}
	if (!ntf_admit(req, token_key))
		return;
	ntf_conn_t *c = ntf_conn_new(&claims, token_key);
	c->req = req;
	c->poll_timer = evtimer_new(N.base, ntf_poll_answer_cb, c);
	c->partitions[0] = (int32_t)(company % N.partitions);
	c->channels[c->n_channels++] = strdup(channel);
	N.n_polls++;
	int64_t last = hub_last_seq(N.hub, c->partitions[0]);
	const char *reset = NULL;
	if (since == -2) {
		if (strncmp(channel, "presence:", 9) == 0)
			ntf_send_presence_list(c, channel, company, last);
		ntf_poll_answer(c);
		return;
	}
	if (epoch >= 0 && epoch != hub_epoch(N.hub))
		reset = "epoch changed: the event stream was reset";
	else if (!hub_replay(N.hub, channel, c->partitions[0], since, c, ntf_deliver, NULL))
		reset = "history no longer covers the requested seq";
	if (reset) {
		char frame[512], *data = evt_reset_data(reset);
		size_t n = hub_frame(frame, sizeof(frame), "reset", channel, last, hub_epoch(N.hub), data);
		poll_batch_add(&c->batch, frame, n);
		free(data);
	}
	if (c->batch.n || timeout == 0) {
		ntf_poll_answer(c);
		return;
	}
	hub_subscribe(N.hub, channel, c);
	struct timeval tv = {(time_t)timeout, 0};
	evtimer_add(c->poll_timer, &tv);
}

static void ntf_poll_answer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	ntf_poll_answer(arg);
}

/* Answers a long-poll with what it collected; seq is the partition's last seq, so nothing of
 * its channel up to there is left out and nothing is given twice. */
static void ntf_poll_answer(ntf_conn_t *c)
{
	size_t len;
	if (c->gone)
		return;
	evtimer_del(c->poll_timer);
	char *body = poll_render(&c->batch, c->channels[0], hub_epoch(N.hub), hub_last_seq(N.hub, c->partitions[0]), &len);
	http_response_add_header(c->req, "Cache-Control", "no-store");
	http_respond(c->req, 200, "application/json", body, len);
	free(body);
	c->req = NULL;
	c->gone = true;
	N.n_polls--;
	N.n_polls_answered++;
	ntf_conn_unlink(c);
	ntf_conn_unref(c);
}

/* ---------------------------------------------------------------- ops */

/* POST /op?token=T with one op as the body ({"op":"reply"|"transfer"|"typing",...}): the
 * long-poll clients' way to act. Answered with the op's ack (200) or error (400) frame, a
 * reply or transfer once the broker acknowledged it, like over WebSocket. */
static void ntf_http_op(http_request_t *req)
{
	char token_key[64];
	token_claims_t claims;
	size_t len;
	if (strcmp(http_request_method(req), "POST") != 0) {
		http_respond_error(req, 405, "use POST");
		return;
	}
	if (!ntf_authorize(req, &claims, token_key, sizeof(token_key)) || !ntf_admit(req, token_key))
		return;
	const char *body = http_request_body(req, &len);
	ntf_conn_t *c = ntf_conn_new(&claims, token_key);
	c->req = req;
	c->op_request = true;
	c->refs++; /* it may be answered (and released) while the op still runs */
	N.n_http_ops++;
	ntf_dispatch(c, body, len);
	ntf_conn_unref(c);
}

static void ntf_http_op_answer(ntf_conn_t *c, const char *frame, size_t len)
{
	bool error = len > 15 && strncmp(frame, "{\"type\":\"error\"", 15) == 0;
	http_response_add_header(c->req, "Cache-Control", "no-store");
	http_respond(c->req, error ? 400 : 200, "application/json", frame, len);
	c->req = NULL;
	c->gone = true;
	N.n_http_ops--;
	ntf_conn_unlink(c);
	ntf_conn_unref(c);
}

static void ntf_on_ws_message(ws_conn_t *ws, const char *data, size_t len, void *arg)
{
	(void)ws;
	ntf_dispatch(arg, data, len);
}

/* One op from a console; every op gets an ack or an error frame. */
static void ntf_dispatch(ntf_conn_t *c, const char *data, size_t len)
{
	cJSON *msg = cJSON_ParseWithLength(data, len);
	const cJSON *op = cJSON_GetObjectItem(msg, "op");
	char *id_json = NULL;
	if (cJSON_GetObjectItem(msg, "id"))
		id_json = cJSON_PrintUnformatted(cJSON_GetObjectItem(msg, "id"));
	if (!guard_take(&c->ops, N.cfg.notifier.ops_per_second, 2.0 * N.cfg.notifier.ops_per_second, ntf_now_ms())) {
		char why[96];
		N.n_rate_limited++;
		snprintf(why, sizeof(why), "rate limit: at most %d ops per second", N.cfg.notifier.ops_per_second);
		ntf_send_error(c, id_json, cJSON_IsString(op) ? op->valuestring : NULL, why);
	} else if (!msg || !cJSON_IsObject(msg)) {
		ntf_send_error(c, NULL, NULL, "frame is not a JSON object");
	} else if (!cJSON_IsString(op)) {
		ntf_send_error(c, id_json, NULL, "missing field: op");
	} else if (c->op_request && (strcmp(op->valuestring, "subscribe") == 0 || strcmp(op->valuestring, "unsubscribe") == 0)) {
		ntf_send_error(c, id_json, op->valuestring, "over HTTP, read channels with GET /poll");
	} else if (strcmp(op->valuestring, "subscribe") == 0) {
		ntf_op_subscribe(c, msg, id_json);
	} else if (strcmp(op->valuestring, "unsubscribe") == 0) {
		ntf_op_unsubscribe(c, msg, id_json);
	} else if (strcmp(op->valuestring, "typing") == 0) {
		ntf_op_typing(c, msg, id_json);
	} else if (strcmp(op->valuestring, "reply") == 0) {
		ntf_op_reply(c, msg, id_json);
	} else if (strcmp(op->valuestring, "transfer") == 0) {
		ntf_op_transfer(c, msg, id_json);
	} else {
		ntf_send_error(c, id_json, op->valuestring, "unknown op (subscribe, unsubscribe, typing, reply, transfer)");
	}
	free(id_json);
	cJSON_Delete(msg);
}

/* Which company a channel belongs to, if claims may subscribe to it; -1 with a reason
 * otherwise. Tenancy: nobody sees another company's anything. */
static long ntf_channel_company(const token_claims_t *claims, const char *channel, char *why, size_t whylen)
{
	char *end;
	const char *colon = strchr(channel, ':');
	long id = colon ? strtol(colon + 1, &end, 10) : 0;
	if (!colon || id <= 0 || *end || strlen(channel) > 64) {
		snprintf(why, whylen, "bad channel \"%.64s\" (agent:A, conversation:ID, company:C or presence:C)", channel);
		return -1;
	}
	size_t plen = (size_t)(colon - channel);
	if ((plen == 7 && strncmp(channel, "company", 7) == 0) || (plen == 8 && strncmp(channel, "presence", 8) == 0)) {
		if (id != claims->company) {
			snprintf(why, whylen, "channel %s belongs to another company", channel);
			return -1;
		}
		return id;
	}
	if (plen == 5 && strncmp(channel, "agent", 5) == 0) {
		if (id == claims->agent)
			return claims->company;
		const cfg_company_t *co = cfg_company_find(&N.cfg, claims->company);
		if (strcmp(claims->role, "supervisor") == 0 && co && id >= co->agent_first && id <= co->agent_last)
			return claims->company;
		snprintf(why, whylen, "%s", strcmp(claims->role, "supervisor") == 0 ? "agent is not in your company"
									 : "agents may subscribe only to their own agent channel");
		return -1;
	}
	if (plen == 12 && strncmp(channel, "conversation", 12) == 0) {
		if (ntf_conversation_company(id) == claims->company)
			return claims->company;
		snprintf(why, whylen, "conversation %ld is not known in your company", id);
		return -1;
	}
	snprintf(why, whylen, "unknown channel type in \"%s\"", channel);
	return -1;
}

/* The company of a conversation the notifier has seen an event of, -1 if none. */
static long ntf_conversation_company(int64_t conversation)
{
	uint64_t slot = (uint64_t)conversation % NTF_CONV_SLOTS;
	return N.conv[slot].conversation == conversation && conversation > 0 ? N.conv[slot].company : -1;
}

static void ntf_op_subscribe(ntf_conn_t *c, const cJSON *msg, const char *id_json)
{
	const cJSON *ch = cJSON_GetObjectItem(msg, "channel");
	const cJSON *since = cJSON_GetObjectItem(msg, "since"), *epoch = cJSON_GetObjectItem(msg, "epoch");
	char why[160], frame[512];
	if (!cJSON_IsString(ch)) {
		ntf_send_error(c, id_json, "subscribe", "missing field: channel");
		return;
	}
	long company = ntf_channel_company(&c->claims, ch->valuestring, why, sizeof(why));
	if (company < 0) {
		ntf_send_error(c, id_json, "subscribe", why);
		return;
	}
	int32_t partition = (int32_t)(company % N.partitions);
	bool already = false;
	for (int i = 0; i < c->n_channels; i++)
		already |= strcmp(c->channels[i], ch->valuestring) == 0;
	if (!already) {
		if (c->n_channels == NTF_MAX_SUBSCRIPTIONS) {
			ntf_send_error(c, id_json, "subscribe", "too many subscriptions on one connection");
			return;
		}
		c->partitions[c->n_channels] = partition;
		c->channels[c->n_channels++] = strdup(ch->valuestring);
		hub_subscribe(N.hub, ch->valuestring, c);
	}
	int64_t last = hub_last_seq(N.hub, partition);
	snprintf(frame, sizeof(frame), "{\"type\":\"ack\",\"op\":\"subscribe\",\"id\":%s,\"channel\":\"%s\",\"seq\":%lld,\"epoch\":%lld}",
		 id_json ? id_json : "null", ch->valuestring, (long long)last, hub_epoch(N.hub));
	ntf_send(c, frame, strlen(frame));
	if (cJSON_IsNumber(since)) {
		const char *reason = NULL;
		if (cJSON_IsNumber(epoch) && (long long)epoch->valuedouble != hub_epoch(N.hub))
			reason = "epoch changed: the event stream was reset";
		else if (!hub_replay(N.hub, ch->valuestring, partition, (int64_t)since->valuedouble, c, ntf_deliver, NULL))
			reason = "history no longer covers the requested seq";
		if (reason) {
			char *data = evt_reset_data(reason);
			size_t n = hub_frame(frame, sizeof(frame), "reset", ch->valuestring, last, hub_epoch(N.hub), data);
			ntf_send(c, frame, n);
			free(data);
		}
	}
	if (strncmp(ch->valuestring, "presence:", 9) == 0)
		ntf_send_presence_list(c, ch->valuestring, company, last);
}

/* The whole online list of company as one presence event at seq (the subscribe's seq: what
 * follows it are the changes after this state). */
static void ntf_send_presence_list(ntf_conn_t *c, const char *channel, long company, int64_t seq)
{
	int n = presence_list(N.presence, company, NULL, 0);
	long *ids = malloc(((size_t)n + 1) * sizeof(long));
	n = presence_list(N.presence, company, ids, n);
	char *data = evt_presence_list_data(company, ids, n);
	size_t cap = strlen(data) + strlen(channel) + 128;
	char *frame = malloc(cap);
	size_t len = hub_frame(frame, cap, "presence", channel, seq, hub_epoch(N.hub), data);
	ntf_send(c, frame, len);
	free(frame);
	free(data);
	free(ids);
}

static void ntf_op_unsubscribe(ntf_conn_t *c, const cJSON *msg, const char *id_json)
{
	const cJSON *ch = cJSON_GetObjectItem(msg, "channel");
	char frame[256];
	if (!cJSON_IsString(ch)) {
		ntf_send_error(c, id_json, "unsubscribe", "missing field: channel");
		return;
	}
	for (int i = 0; i < c->n_channels; i++)
		if (strcmp(c->channels[i], ch->valuestring) == 0) {
			hub_unsubscribe(N.hub, c->channels[i], c);
			free(c->channels[i]);
			c->channels[i] = c->channels[--c->n_channels];
			c->partitions[i] = c->partitions[c->n_channels];
			break;
		}
	snprintf(frame, sizeof(frame), "{\"type\":\"ack\",\"op\":\"unsubscribe\",\"id\":%s,\"channel\":\"%.100s\"}",
		 id_json ? id_json : "null", ch->valuestring);
	ntf_send(c, frame, strlen(frame));
}

/* The op's conversation, which must be one of the token's company (learned from events). */
static bool ntf_op_conversation(ntf_conn_t *c, const cJSON *msg, const char *id_json, const char *op, int64_t *conv)
{
	const cJSON *v = cJSON_GetObjectItem(msg, "conversation");
	char why[128];
	if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble != (double)(int64_t)v->valuedouble) {
		ntf_send_error(c, id_json, op, "missing field: conversation (a conversation id)");
		return false;
	}
	*conv = (int64_t)v->valuedouble;
	if (ntf_conversation_company(*conv) != c->claims.company) {
		snprintf(why, sizeof(why), "conversation %lld is not known in your company", (long long)*conv);
		ntf_send_error(c, id_json, op, why);
		return false;
	}
	return true;
}

/* {"op":"typing","conversation":V,"state":"start"|"stop"}: published to atende.events, where
 * consoles (conversation:V) and workers (coaching) read it. A start lasts typing_ttl_s unless
 * repeated; this instance publishes the stop if none comes. */
static void ntf_op_typing(ntf_conn_t *c, const cJSON *msg, const char *id_json)
{
	const cJSON *state = cJSON_GetObjectItem(msg, "state");
	int64_t conv;
	if (!ntf_op_conversation(c, msg, id_json, "typing", &conv))
		return;
	bool start = cJSON_IsString(state) && strcmp(state->valuestring, "start") == 0;
	if (!start && !(cJSON_IsString(state) && strcmp(state->valuestring, "stop") == 0)) {
		ntf_send_error(c, id_json, "typing", "state must be \"start\" or \"stop\"");
		return;
	}
	long long now = ntf_now_ms(), expires = start ? now + N.cfg.notifier.typing_ttl_s * 1000LL : now;
	if (start) /* a POST /op has no connection whose end would stop it: only the expiry does */
		typing_start(N.typing, conv, c->claims.agent, c->claims.company, c->op_request ? NULL : c, expires);
	else
		typing_stop(N.typing, conv, c->claims.agent);
	N.n_typing++;
	evt_typing_t t = {.conversation_id = conv, .agent_id = c->claims.agent, .company_id = c->claims.company,
			  .start = start, .expires_ms = expires, .instance = N.instance};
	if (!ntf_produce_event(c->claims.company, "typing", evt_typing(&t, NULL))) {
		ntf_send_error(c, id_json, "typing", "could not publish (broker unavailable)");
		return;
	}
	char at[32], extra[64];
	snprintf(extra, sizeof(extra), ",\"expires_at\":\"%s\"", json_iso_ms(expires, at));
	ntf_send_ack(c, id_json, "typing", extra);
}

/* A typing state ended without a stop from its console: expired, or the console went away. */
static void ntf_typing_ended(int64_t conversation, long agent, long company, void *arg)
{
	evt_typing_t t = {.conversation_id = conversation, .agent_id = agent, .company_id = company,
			  .expires_ms = ntf_now_ms(), .instance = N.instance, .reason = arg};
	ntf_produce_event(company, "typing", evt_typing(&t, NULL));
}

/* Queues an outbound message whose op is acked (or refused) on the broker's report. */
static void ntf_produce_outbound(ntf_conn_t *c, const char *id_json, const char *op, int64_t conv, char *json,
				 ntf_pending_t *p)
{
	char key[24], company[24], err[256];
	snprintf(key, sizeof(key), "%lld", (long long)conv);
	snprintf(company, sizeof(company), "%ld", c->claims.company);
	rd_kafka_headers_t *h = rd_kafka_headers_new(2);
	rd_kafka_header_add(h, "type", -1, op, -1);
	rd_kafka_header_add(h, "company", -1, company, -1);
	p->conn = c;
	p->id_json = id_json ? strdup(id_json) : NULL;
	p->op = op;
	if (!kq_produce(N.producer, N.outbound_topic, key, strlen(key), json, strlen(json), h, p, err, sizeof(err))) {
		N.n_produce_errors++;
		log_error("%s of agent %ld for conversation %lld not queued: %s", op, c->claims.agent, (long long)conv, err);
		ntf_send_error(c, id_json, op, "could not queue the message (broker unavailable)");
		free(p->id_json);
		free(p);
	} else {
		c->refs++;
	}
	free(json);
}

/* {"op":"reply","conversation":V,"text":T}: to atende.outbound for a worker to send and store. */
static void ntf_op_reply(ntf_conn_t *c, const cJSON *msg, const char *id_json)
{
	const cJSON *text = cJSON_GetObjectItem(msg, "text");
	int64_t conv;
	if (!ntf_op_conversation(c, msg, id_json, "reply", &conv))
		return;
	if (!cJSON_IsString(text) || strspn(text->valuestring, " \t\r\n") == strlen(text->valuestring)) {
		ntf_send_error(c, id_json, "reply", "missing field: text (not blank)");
		return;
	}
	size_t chars = 0;
	for (const unsigned char *s = (const unsigned char *)text->valuestring; *s; s++)
		chars += (*s & 0xC0) != 0x80;
	if (chars > NTF_MAX_REPLY_CHARS) {
		ntf_send_error(c, id_json, "reply", "text is longer than 4096 characters");
		return;
	}
	ntf_pending_t *p = calloc(1, sizeof(*p));
	snprintf(p->request_id, sizeof(p->request_id), "%s-%llu", N.instance, (unsigned long long)++N.request_seq);
	N.n_replies++;
	ntf_produce_outbound(c, id_json, "reply", conv,
			     wire_reply(c->claims.company, conv, c->claims.agent, text->valuestring, id_json, p->request_id,
					ntf_now_ms()),
			     p);
}

/* {"op":"transfer","conversation":V,"to_agent":A} or {...,"to_domain":D}: to atende.outbound. */
static void ntf_op_transfer(ntf_conn_t *c, const cJSON *msg, const char *id_json)
{
	const cJSON *to_agent = cJSON_GetObjectItem(msg, "to_agent"), *to_domain = cJSON_GetObjectItem(msg, "to_domain");
	int64_t conv;
	char why[160];
	if (!ntf_op_conversation(c, msg, id_json, "transfer", &conv))
		return;
	if ((to_agent != NULL) == (to_domain != NULL)) {
		ntf_send_error(c, id_json, "transfer", "give exactly one of to_agent or to_domain");
		return;
	}
	long agent = 0;
	if (to_agent) {
		if (!cJSON_IsNumber(to_agent) || to_agent->valuedouble < 1 || to_agent->valuedouble != (double)(long)to_agent->valuedouble) {
			ntf_send_error(c, id_json, "transfer", "to_agent must be an agent id");
			return;
		}
		agent = (long)to_agent->valuedouble;
		const cfg_company_t *co = cfg_company_find(&N.cfg, c->claims.company);
		if (co && (agent < co->agent_first || agent > co->agent_last)) {
			snprintf(why, sizeof(why), "agent %ld is not in your company", agent);
			ntf_send_error(c, id_json, "transfer", why);
			return;
		}
	} else if (!cJSON_IsString(to_domain) || cfg_domain_index(to_domain->valuestring) < 0) {
		ntf_send_error(c, id_json, "transfer",
			       "to_domain must be one of financeiro, comercial, suporte, ouvidoria, cancelamento");
		return;
	}
	ntf_pending_t *p = calloc(1, sizeof(*p));
	snprintf(p->request_id, sizeof(p->request_id), "%s-%llu", N.instance, (unsigned long long)++N.request_seq);
	N.n_transfers++;
	ntf_produce_outbound(c, id_json, "transfer", conv,
			     wire_transfer(c->claims.company, conv, c->claims.agent, agent,
					   to_domain ? to_domain->valuestring : NULL, id_json, p->request_id, ntf_now_ms()),
			     p);
}

static void ntf_send_ack(ntf_conn_t *c, const char *id_json, const char *op, const char *extra_json)
{
	char frame[512];
	int n = snprintf(frame, sizeof(frame), "{\"type\":\"ack\",\"op\":\"%s\",\"id\":%s%s}", op, id_json ? id_json : "null",
			 extra_json ? extra_json : "");
	if (n > 0 && (size_t)n < sizeof(frame))
		ntf_send(c, frame, (size_t)n);
}

static void ntf_send_error(ntf_conn_t *c, const char *id_json, const char *op, const char *error)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "error");
	if (id_json)
		cJSON_AddRawToObject(o, "id", id_json);
	if (op)
		cJSON_AddStringToObject(o, "op", op);
	cJSON_AddStringToObject(o, "error", error);
	char *s = cJSON_PrintUnformatted(o);
	ntf_send(c, s, strlen(s));
	free(s);
	cJSON_Delete(o);
}

/* ---------------------------------------------------------------- Kafka out */

/* Publishes json (taken) to the company's partition of atende.events; false if not queued. */
static bool ntf_produce_event(long company, const char *type, char *json)
{
	char key[24], err[256];
	if (!json)
		return false;
	snprintf(key, sizeof(key), "%ld", company);
	rd_kafka_headers_t *h = rd_kafka_headers_new(2);
	rd_kafka_header_add(h, "type", -1, type, -1);
	rd_kafka_header_add(h, "company", -1, key, -1);
	bool ok = kq_produce_to(N.producer, N.events_topic, (int32_t)(company % N.partitions), key, strlen(key), json,
				strlen(json), h, NULL, err, sizeof(err));
	if (!ok) {
		N.n_produce_errors++;
		log_error("%s event for company %ld not published: %s", type, company, err);
	}
	free(json);
	return ok;
}

static void ntf_on_delivery(void *opaque, rd_kafka_resp_err_t err, int32_t partition, int64_t offset, void *arg)
{
	ntf_pending_t *p = opaque;
	(void)partition, (void)offset, (void)arg;
	if (err) {
		N.n_produce_errors++;
		log_error("%s not delivered: %s", p ? p->op : "presence/typing event", rd_kafka_err2str(err));
	}
	if (!p)
		return;
	if (!p->conn->gone) {
		if (err) {
			ntf_send_error(p->conn, p->id_json, p->op, "not delivered (broker unavailable); try again");
		} else {
			char extra[160];
			snprintf(extra, sizeof(extra), ",\"request_id\":\"%s\"", p->request_id);
			ntf_send_ack(p->conn, p->id_json, p->op, extra);
		}
	}
	ntf_conn_unref(p->conn);
	free(p->id_json);
	free(p);
}

/* ---------------------------------------------------------------- timers */

static void ntf_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	typing_expire(N.typing, ntf_now_ms(), ntf_typing_ended, "expired");
}

/* Republishes this instance's presence and publishes the expiry of silent instances. */
static void ntf_heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	presence_local_each(N.presence, ntf_heartbeat_company, NULL);
	presence_stale(N.presence, N.instance, ntf_now_ms(), 3000LL * N.cfg.notifier.presence_heartbeat_s,
		       ntf_presence_stale, NULL);
}

static void ntf_heartbeat_company(long company, const long *agents, const int *tabs, int n, void *arg)
{
	(void)arg;
	evt_presence_t p = {.kind = EVT_PRESENCE_HEARTBEAT, .company_id = company, .instance = N.instance,
			    .agents = agents, .agent_tabs = tabs, .n_agents = n, .at_ms = ntf_now_ms()};
	ntf_produce_event(company, "presence", evt_presence(&p, NULL));
}

static void ntf_presence_stale(long company, long agent, const char *instance, long long last_seen_ms, void *arg)
{
	(void)arg;
	log_info("presence: instance %s silent since %lld ms ago: agent %ld of company %ld expires", instance,
		 ntf_now_ms() - last_seen_ms, agent, company);
	evt_presence_t p = {.kind = EVT_PRESENCE_EXPIRY, .company_id = company, .agent_id = agent, .instance = instance,
			    .last_seen_ms = last_seen_ms, .by = N.instance, .at_ms = ntf_now_ms()};
	ntf_produce_event(company, "presence", evt_presence(&p, NULL));
}

static long long ntf_now_ms(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* ---------------------------------------------------------------- console, signals, metrics */

/* Console files are small: read once at start (and on SIGHUP), served from memory. */
static void ntf_load_console(void)
{
	static const char *const names[3][2] = {{"index.html", "text/html; charset=utf-8"},
						{"app.js", "application/javascript; charset=utf-8"},
						{"style.css", "text/css; charset=utf-8"}};
	char dir[1024], path[1200];
	proc_find_path(N.cfg.notifier.console_dir, dir, sizeof(dir));
	for (int i = 0; i < 3; i++) {
		ntf_file_t *f = &N.files[i];
		free(f->body);
		f->body = NULL;
		f->path = names[i][0];
		f->type = names[i][1];
		snprintf(path, sizeof(path), "%s/%s", dir, f->path);
		FILE *fp = fopen(path, "rb");
		if (!fp) {
			log_warn("console file %s missing", path);
			continue;
		}
		fseek(fp, 0, SEEK_END);
		long n = ftell(fp);
		fseek(fp, 0, SEEK_SET);
		f->body = malloc((size_t)n + 1);
		f->len = fread(f->body, 1, (size_t)n, fp);
		fclose(fp);
	}
}

static void ntf_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what, (void)arg;
	if (sig == SIGHUP) {
		if (!proc_reload_config(&N.cfg))
			return;
		ntf_load_console();
		proc_fd_limit(N.cfg.notifier.max_connections, "notifier.max_connections");
		log_info("reload: applied");
		return;
	}
	if (N.draining) {
		event_base_loopbreak(N.base);
		return;
	}
	/* answer the long-polls, close every console with 1001 (going away): they come back to
	 * another instance or later; their offline and typing stops are published on the way */
	N.draining = true;
	http_server_stop_accepting(N.http);
	log_info("draining: closing %d connections and %d long-polls (%d ops in flight)", N.n_ws, N.n_polls, N.n_http_ops);
	for (ntf_conn_t *c = N.conns, *next; c; c = next) {
		next = c->next;
		if (c->op_request) {
			continue; /* answered when the broker acknowledges its op */
		} else if (!c->ws) {
			ntf_poll_answer(c);
		} else if (!c->cut) {
			c->cut = true;
			ws_conn_close(c->ws, WS_CLOSE_GOING_AWAY, "server shutting down");
		}
	}
	struct event *t = event_new(N.base, -1, EV_PERSIST, ntf_drain_cb, NULL);
	struct timeval tv = {0, 20 * 1000};
	event_add(t, &tv);
}

static void ntf_drain_cb(evutil_socket_t fd, short what, void *arg)
{
	static int ticks;
	(void)fd, (void)what, (void)arg;
	if (N.n_ws + N.n_polls + N.n_http_ops == 0 || ++ticks > 150)
		event_base_loopbreak(N.base);
}

/* The counters are kept as plain fields on the hot paths and copied into the registry
 * when it is rendered or exported (every second, for the supervisor's merged /metrics). */
static void ntf_metrics_refresh(void)
{
	static const struct { const char *name, *help; bool counter; } defs[] = {
		{"atende_notifier_connections", "Open WebSocket connections.", false},
		{"atende_notifier_polls_waiting", "Long-poll requests waiting for events.", false},
		{"atende_notifier_typing_active", "Typing states this instance is timing.", false},
		{"atende_notifier_events_total", "Events read from atende.events.", true},
		{"atende_notifier_deliveries_total", "Frames delivered to subscribers.", true},
		{"atende_notifier_slow_consumer_cuts_total", "Consoles closed with 1008 for reading too slowly.", true},
		{"atende_notifier_handshakes_refused_total", "WebSocket handshakes refused (token, Origin, version).", true},
		{"atende_notifier_connections_limited_total", "Connections refused by the global or per-token limit.", true},
		{"atende_notifier_ops_rate_limited_total", "Console ops refused by the per-connection rate limit.", true},
		{"atende_notifier_replies_total", "Replies sent to atende.outbound.", true},
		{"atende_notifier_transfers_total", "Transfers sent to atende.outbound.", true},
		{"atende_notifier_typing_ops_total", "Typing ops accepted.", true},
		{"atende_notifier_polls_answered_total", "Long-poll requests answered.", true},
		{"atende_notifier_produce_errors_total", "Messages the notifier could not produce.", true},
		{"atende_notifier_events_lost_total", "Events the broker dropped before this notifier read them (consoles told to reset).", true},
	};
	const double values[] = {N.n_ws, N.n_polls, typing_count(N.typing), (double)N.n_events, (double)N.n_deliveries,
				 (double)N.n_slow_cuts, (double)N.n_refused, (double)N.n_limited, (double)N.n_rate_limited,
				 (double)N.n_replies, (double)N.n_transfers, (double)N.n_typing, (double)N.n_polls_answered,
				 (double)N.n_produce_errors, (double)N.n_events_lost};
	for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++)
		metrics_set(metrics_series(metrics_family(defs[i].name, defs[i].counter ? METRICS_COUNTER : METRICS_GAUGE,
							  defs[i].help, NULL, 0), ""), values[i]);
}

static void ntf_metrics(http_request_t *req)
{
	size_t len;
	ntf_metrics_refresh();
	char *text = metrics_render(&len);
	http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
	free(text);
}
