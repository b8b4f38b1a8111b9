/*
 * stream: the notifier's side of atende.events (see stream.h).
 */
#include "stream.h"

#include "event.h"
#include "hub.h"
#include "log.h"
#include "notifier.h"
#include "presence.h"
#include "roster.h"
#include "typing.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STREAM_CONV_SLOTS (1 << 18)

/* The union changes one consumed presence message caused. */
typedef struct {
	long company;
	int n;
	long agent;
	bool online;
} stream_changes_t;

static int64_t *stream_next_offset;  /* per partition: the offset the next event should have */
static struct { int64_t conversation; long company; } stream_conv[STREAM_CONV_SLOTS]; /* conversation -> company */

static void stream_check_continuity(int32_t partition, int64_t offset);
static void stream_on_presence(rd_kafka_message_t *msg, const evt_presence_t *p);
static void stream_presence_changed(long company, long agent, bool online, void *arg);
static void stream_heartbeat_company(long company, const long *agents, const int *tabs, int n, void *arg);
static void stream_presence_stale(long company, long agent, const char *instance, long long last_seen_ms, void *arg);

/* Reads every partition of the events topic from (at most) history_events back, so
 * the resume history and presence are warm even right after a restart. Blocking: start-up only. */
bool stream_assign_all(char *err, size_t errlen)
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
	stream_next_offset = xcalloc((size_t)N.partitions, sizeof(*stream_next_offset));
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
		stream_next_offset[p] = start;
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

/* An event (common/event.h). Worker events go to company:C, agent:A and conversation:V;
 * typing to conversation:V; presence to presence:C when it changes the union. */
void stream_on_event(rd_kafka_message_t *msg, void *arg)
{
	evt_t ev;
	char why[160];
	(void)arg;
	stream_check_continuity(msg->partition, msg->offset);
	if (!evt_parse(&ev, msg->payload, msg->len, why, sizeof(why))) {
		log_warn("skipping malformed event at %s[%d]@%lld: %s", N.events_topic, (int)msg->partition,
			 (long long)msg->offset, why);
		rd_kafka_message_destroy(msg);
		return;
	}
	N.n_events++;
	if (ev.type == EVT_PRESENCE) {
		stream_on_presence(msg, &ev.presence);
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
		stream_conv[(uint64_t)id % STREAM_CONV_SLOTS].conversation = id;
		stream_conv[(uint64_t)id % STREAM_CONV_SLOTS].company = ev.route.company;
		/* a stop published by another instance (the console moved) ends the state we hold */
		if (typing && !ev.typing.start && ev.typing.instance && strcmp(ev.typing.instance, N.instance) != 0)
			typing_stop(N.typing, id, (long)ev.typing.agent_id);
	}
	char *data_json = evt_data_json(&ev);
	N.n_deliveries += hub_publish(N.hub, msg->partition, msg->offset, ev.type_name, channels, n, data_json, conn_deliver, NULL);
	free(data_json);
	evt_free(&ev);
	rd_kafka_message_destroy(msg);
}

/* Publishes json (taken) to the company's partition of atende.events; false if not queued. */
bool stream_publish(long company, const char *type, char *json)
{
	char key[24], err[256];
	if (!json)
		return false;
	snprintf(key, sizeof(key), "%ld", company);
	rd_kafka_headers_t *h = rd_kafka_headers_new(2);
	rd_kafka_header_add(h, "type", -1, type, -1);
	rd_kafka_header_add(h, "company", -1, key, -1);
	/* typing again on its own topic, where the workers read it without every other event */
	if (N.typing_partitions > 0 && strcmp(type, "typing") == 0 &&
	    !kq_produce_to(N.producer, N.typing_topic, (int32_t)(company % N.typing_partitions), key, strlen(key), json,
			   strlen(json), rd_kafka_headers_copy(h), NULL, err, sizeof(err))) {
		N.n_produce_errors++;
		log_error("typing event for company %ld not published to %s: %s", company, N.typing_topic, err);
	}
	bool ok = kq_produce_to(N.producer, N.events_topic, (int32_t)(company % N.partitions), key, strlen(key), json,
				strlen(json), h, NULL, err, sizeof(err));
	if (!ok) {
		N.n_produce_errors++;
		log_error("%s event for company %ld not published: %s", type, company, err);
	}
	free(json);
	return ok;
}

/* Counts a WebSocket as a presence tab of its agent; the first tab and the last one are
 * published, and the union (read back from the log) decides what consoles see. */
void stream_tab(conn_t *c, bool join)
{
	if (join == c->tab)
		return;
	c->tab = join;
	int tabs = join ? presence_local_join(N.presence, c->claims.company, c->claims.agent)
			: presence_local_leave(N.presence, c->claims.company, c->claims.agent);
	if ((join && tabs == 1) || (!join && tabs == 0)) {
		evt_presence_t p = {.kind = EVT_PRESENCE_REPORT, .company_id = c->claims.company, .agent_id = c->claims.agent,
				    .online = join, .instance = N.instance, .tabs = tabs, .at_ms = ntf_now_ms()};
		stream_publish(c->claims.company, "presence", evt_presence(&p, NULL));
		roster_presence(c->claims.company, c->claims.agent, join); /* for assignment */
	}
}

/* A typing state ended without a stop from its console: expired, or the console went away. */
void stream_typing_ended(int64_t conversation, long agent, long company, void *arg)
{
	evt_typing_t t = {.conversation_id = conversation, .agent_id = agent, .company_id = company,
			  .expires_ms = ntf_now_ms(), .instance = N.instance, .reason = arg};
	stream_publish(company, "typing", evt_typing(&t, NULL));
}

/* The company of a conversation the notifier has seen an event of, -1 if none. */
long stream_conversation_company(int64_t conversation)
{
	uint64_t slot = (uint64_t)conversation % STREAM_CONV_SLOTS;
	return stream_conv[slot].conversation == conversation && conversation > 0 ? stream_conv[slot].company : -1;
}

/* The whole online list of company as one presence event at seq (the subscribe's seq: what
 * follows it are the changes after this state). */
void stream_send_presence_list(conn_t *c, const char *channel, long company, int64_t seq)
{
	int n = presence_list(N.presence, company, NULL, 0);
	long *ids = xmalloc(((size_t)n + 1) * sizeof(long));
	n = presence_list(N.presence, company, ids, n);
	char *data = evt_presence_list_data(company, ids, n);
	size_t cap = strlen(data) + strlen(channel) + 128;
	char *frame = xmalloc(cap);
	size_t len = hub_frame(frame, cap, "presence", channel, seq, hub_epoch(N.hub), data);
	conn_send(c, frame, len);
	free(frame);
	free(data);
	free(ids);
}

/* Republishes this instance's presence and publishes the expiry of silent instances. */
void stream_heartbeat(void)
{
	presence_local_each(N.presence, stream_heartbeat_company, NULL);
	presence_stale(N.presence, N.instance, ntf_now_ms(), 3000LL * N.cfg.notifier.presence_heartbeat_s,
		       stream_presence_stale, NULL);
}

void stream_free(void)
{
	free(stream_next_offset);
	stream_next_offset = NULL;
}

/* Offsets of a partition are consecutive (no compaction, no transactions): a jump means the
 * broker dropped events before this notifier read them (the embedded broker keeps about 5 MiB
 * a partition; a real one, retention.ms). The history cannot cover them, so a resume from
 * before the jump gets a reset, and every console on that partition is told to reload now. */
static void stream_check_continuity(int32_t partition, int64_t offset)
{
	if (partition < 0 || partition >= N.partitions)
		return;
	int64_t expected = stream_next_offset[partition];
	stream_next_offset[partition] = offset + 1;
	if (offset <= expected)
		return;
	N.n_events_lost += (uint64_t)(offset - expected);
	log_warn("%s[%d]: events %lld..%lld were gone before this notifier read them; telling the consoles of that "
		 "partition to reload", N.events_topic, (int)partition, (long long)expected, (long long)offset - 1);
	hub_set_start(N.hub, partition, offset);
	char frame[512], *data = evt_reset_data("events were lost before delivery: reload");
	conn_t *next;
	for (conn_t *c = N.conns; c; c = next) {
		next = c->next; /* a send may cut and unlink c */
		for (int i = 0; i < c->n_channels; i++)
			if (c->partitions[i] == partition) {
				size_t n = hub_frame(frame, sizeof(frame), "reset", c->channels[i], offset - 1, hub_epoch(N.hub), data);
				conn_send(c, frame, n);
			}
	}
	free(data);
}

/* Applies one presence message to the union; what changed goes to presence:C with the
 * message's offset as seq, so every instance numbers it alike. */
static void stream_on_presence(rd_kafka_message_t *msg, const evt_presence_t *p)
{
	long company = p->company_id;
	rd_kafka_timestamp_type_t tstype;
	long long ts = rd_kafka_message_timestamp(msg, &tstype);
	if (ts <= 0)
		ts = ntf_now_ms();
	stream_changes_t ch = {.company = company};
	if (p->kind == EVT_PRESENCE_REPORT)
		presence_report(N.presence, company, p->agent_id, p->instance, p->tabs, ts, stream_presence_changed, &ch);
	else if (p->kind == EVT_PRESENCE_HEARTBEAT)
		presence_snapshot(N.presence, company, p->instance, p->agents, p->agent_tabs, p->n_agents, ts,
				  stream_presence_changed, &ch);
	else
		presence_expire(N.presence, company, p->agent_id, p->instance, p->last_seen_ms, stream_presence_changed, &ch);
	if (ch.n == 0)
		return;
	char channel[64], *out;
	snprintf(channel, sizeof(channel), "presence:%ld", company);
	if (ch.n == 1) {
		out = evt_presence_change_data(company, ch.agent, ch.online);
	} else {
		int n = presence_list(N.presence, company, NULL, 0);
		long *ids = xmalloc(((size_t)n + 1) * sizeof(long));
		n = presence_list(N.presence, company, ids, n);
		out = evt_presence_list_data(company, ids, n);
		free(ids);
	}
	const char *channels[1] = {channel};
	N.n_deliveries += hub_publish(N.hub, msg->partition, msg->offset, "presence", channels, 1, out, conn_deliver, NULL);
	free(out);
}

static void stream_presence_changed(long company, long agent, bool online, void *arg)
{
	stream_changes_t *ch = arg;
	(void)company;
	ch->n++;
	ch->agent = agent;
	ch->online = online;
}

static void stream_heartbeat_company(long company, const long *agents, const int *tabs, int n, void *arg)
{
	(void)arg;
	evt_presence_t p = {.kind = EVT_PRESENCE_HEARTBEAT, .company_id = company, .instance = N.instance,
			    .agents = agents, .agent_tabs = tabs, .n_agents = n, .at_ms = ntf_now_ms()};
	stream_publish(company, "presence", evt_presence(&p, NULL));
}

static void stream_presence_stale(long company, long agent, const char *instance, long long last_seen_ms, void *arg)
{
	(void)arg;
	log_info("presence: instance %s silent since %lld ms ago: agent %ld of company %ld expires", instance,
		 ntf_now_ms() - last_seen_ms, agent, company);
	evt_presence_t p = {.kind = EVT_PRESENCE_EXPIRY, .company_id = company, .agent_id = agent, .instance = instance,
			    .last_seen_ms = last_seen_ms, .by = N.instance, .at_ms = ntf_now_ms()};
	stream_publish(company, "presence", evt_presence(&p, NULL));
}
