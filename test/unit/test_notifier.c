/*
 * test_notifier: the notifier's pure modules: presence (tabs, union over instances,
 * heartbeats, expiry), typing (start/refresh/stop, expiry, owner gone), guard (op rate
 * limit, per-token counts), hub (routing, idempotent subscribe, exact replay, reset when
 * history is short), wire (the atende.outbound formats) and poll (the long-poll body).
 */
#include "guard.h"
#include "hub.h"
#include "poll.h"
#include "presence.h"
#include "typing.h"
#include "upload.h"
#include "wire.h"
#include "unit.h"

#include <cJSON.h>
#include <stdlib.h>

/* Records union changes as "+A" / "-A" in order. */
typedef struct {
	char log[256];
} changes_t;

static void record_change(long company, long agent, bool online, void *arg)
{
	changes_t *c = arg;
	size_t n = strlen(c->log);
	snprintf(c->log + n, sizeof(c->log) - n, "%s%c%ld@%ld", n ? " " : "", online ? '+' : '-', agent, company);
}

/* ---------------------------------------------------------------- presence */

TEST(presence_counts_tabs)
{
	presence_t *p = presence_new();
	CHECK(presence_local_join(p, 1, 7) == 1); /* first tab: came online here */
	CHECK(presence_local_join(p, 1, 7) == 2);
	CHECK(presence_local_join(p, 2, 7) == 1); /* same id in another company is someone else */
	CHECK(presence_local_tabs(p, 1, 7) == 2);
	CHECK(presence_local_leave(p, 1, 7) == 1); /* one of two tabs closed: still here */
	CHECK(presence_local_leave(p, 1, 7) == 0); /* last tab: gone */
	CHECK(presence_local_leave(p, 1, 7) == -1);
	CHECK(presence_local_tabs(p, 1, 7) == 0);
	CHECK(presence_local_tabs(p, 2, 7) == 1);
	presence_free(p);
}

static int each_calls;
static long each_agents[8];
static int each_tabs[8], each_n;

static void record_each(long company, const long *agents, const int *tabs, int n, void *arg)
{
	(void)arg;
	CHECK(company == 3);
	each_calls++;
	each_n = n;
	for (int i = 0; i < n && i < 8; i++)
		each_agents[i] = agents[i], each_tabs[i] = tabs[i];
}

TEST(presence_local_each_lists_held_tabs)
{
	presence_t *p = presence_new();
	presence_local_join(p, 3, 9);
	presence_local_join(p, 3, 2);
	presence_local_join(p, 3, 2);
	presence_local_join(p, 4, 5);
	presence_local_leave(p, 4, 5);
	presence_report(p, 3, 11, "other", 1, 1000, NULL, NULL); /* not local: not in a heartbeat */
	presence_local_each(p, record_each, NULL);
	CHECK(each_calls == 1); /* company 4 holds nothing any more */
	CHECK(each_n == 2);
	CHECK(each_agents[0] == 2 && each_tabs[0] == 2);
	CHECK(each_agents[1] == 9 && each_tabs[1] == 1);
	presence_free(p);
}

TEST(presence_union_over_instances)
{
	presence_t *p = presence_new();
	changes_t ch = {""};
	long list[8];
	presence_report(p, 1, 5, "A", 1, 1000, record_change, &ch);
	presence_report(p, 1, 5, "B", 2, 1001, record_change, &ch); /* a second instance: no change */
	presence_report(p, 1, 3, "B", 1, 1002, record_change, &ch);
	CHECK_STR(ch.log, "+5@1 +3@1");
	CHECK(presence_online(p, 1, 5) && presence_online(p, 1, 3) && !presence_online(p, 2, 5));
	CHECK(presence_list(p, 1, list, 8) == 2 && list[0] == 3 && list[1] == 5);
	presence_report(p, 1, 5, "A", 0, 1003, record_change, &ch); /* A's tabs closed, B still holds some */
	CHECK_STR(ch.log, "+5@1 +3@1");
	CHECK(presence_online(p, 1, 5));
	presence_report(p, 1, 5, "B", 0, 1004, record_change, &ch);
	CHECK_STR(ch.log, "+5@1 +3@1 -5@1");
	CHECK(presence_list(p, 1, list, 8) == 1 && list[0] == 3);
	CHECK(presence_list(p, 1, NULL, 0) == 1);
	presence_report(p, 1, 5, "B", 0, 1005, record_change, &ch); /* offline twice: nothing */
	CHECK_STR(ch.log, "+5@1 +3@1 -5@1");
	presence_free(p);
}

TEST(presence_heartbeat_replaces_an_instance_state)
{
	presence_t *p = presence_new();
	changes_t ch = {""};
	presence_report(p, 1, 1, "A", 1, 1000, record_change, &ch);
	presence_report(p, 1, 2, "A", 1, 1000, record_change, &ch);
	presence_report(p, 1, 2, "B", 1, 1000, record_change, &ch);
	ch.log[0] = 0;
	/* A now holds agent 3 only: 1 goes offline, 2 stays (B), 3 comes online */
	long agents[] = {3};
	int tabs[] = {2};
	presence_snapshot(p, 1, "A", agents, tabs, 1, 2000, record_change, &ch);
	CHECK_STR(ch.log, "+3@1 -1@1");
	CHECK(!presence_online(p, 1, 1) && presence_online(p, 1, 2) && presence_online(p, 1, 3));
	ch.log[0] = 0;
	presence_snapshot(p, 1, "A", NULL, NULL, 0, 3000, record_change, &ch); /* empty: A holds nothing */
	CHECK_STR(ch.log, "-3@1");
	presence_free(p);
}

static char stale_log[256];

static void record_stale(long company, long agent, const char *instance, long long last_seen_ms, void *arg)
{
	(void)arg;
	size_t n = strlen(stale_log);
	snprintf(stale_log + n, sizeof(stale_log) - n, "%s%s:%ld@%ld:%lld", n ? " " : "", instance, agent, company, last_seen_ms);
}

TEST(presence_silent_instances_expire)
{
	presence_t *p = presence_new();
	changes_t ch = {""};
	presence_report(p, 1, 4, "dead", 1, 1000, record_change, &ch);
	presence_report(p, 1, 4, "self", 1, 1000, record_change, &ch);
	presence_report(p, 1, 6, "dead", 1, 1000, record_change, &ch);
	presence_report(p, 1, 8, "alive", 1, 1000, record_change, &ch);
	long agents[] = {8};
	int tabs[] = {1};
	presence_snapshot(p, 1, "alive", agents, tabs, 1, 25000, NULL, NULL); /* heartbeat */
	stale_log[0] = 0;
	presence_stale(p, "self", 20000, 30000, record_stale, NULL); /* nobody older than 30 s yet */
	CHECK_STR(stale_log, "");
	presence_stale(p, "self", 31001, 30000, record_stale, NULL);
	/* our own entries never go stale; alive's heartbeat is recent */
	CHECK(strstr(stale_log, "dead:4@1:1000") && strstr(stale_log, "dead:6@1:1000"));
	CHECK(!strstr(stale_log, "self") && !strstr(stale_log, "alive"));
	stale_log[0] = 0;
	presence_stale(p, "self", 40000, 30000, record_stale, NULL); /* reported once */
	CHECK_STR(stale_log, "");

	ch.log[0] = 0;
	presence_expire(p, 1, 4, "dead", 1000, record_change, &ch); /* 4 is still held by self */
	presence_expire(p, 1, 6, "dead", 1000, record_change, &ch);
	CHECK_STR(ch.log, "-6@1");
	CHECK(presence_online(p, 1, 4) && !presence_online(p, 1, 6));

	/* an expiry that raced a heartbeat of the instance (it is alive after all) is ignored */
	presence_report(p, 1, 9, "slow", 1, 1000, NULL, NULL);
	presence_report(p, 1, 9, "slow", 1, 5000, NULL, NULL);
	presence_expire(p, 1, 9, "slow", 1000, record_change, &ch);
	CHECK(presence_online(p, 1, 9));
	/* a refreshed entry can go stale again later */
	stale_log[0] = 0;
	presence_stale(p, "self", 36000, 30000, record_stale, NULL);
	CHECK(strstr(stale_log, "slow:9@1:5000") != NULL);
	presence_free(p);
}

TEST(presence_many_agents_stay_sorted)
{
	presence_t *p = presence_new();
	long list[1000];
	for (long a = 999; a >= 0; a -= 2)
		presence_report(p, 1, a, "A", 1, 1, NULL, NULL);
	for (long a = 0; a < 1000; a += 2)
		presence_report(p, 1, a, "B", 1, 1, NULL, NULL);
	CHECK(presence_list(p, 1, list, 1000) == 1000);
	bool sorted = true;
	for (int i = 0; i < 1000; i++)
		sorted &= list[i] == i;
	CHECK(sorted);
	for (long a = 0; a < 1000; a++)
		presence_report(p, 1, a, a % 2 ? "A" : "B", 0, 2, NULL, NULL);
	CHECK(presence_list(p, 1, list, 1000) == 0);
	presence_free(p);
}

/* ---------------------------------------------------------------- typing */

static char ended[256];

static void record_end(int64_t conversation, long agent, long company, void *arg)
{
	size_t n = strlen(ended);
	snprintf(ended + n, sizeof(ended) - n, "%s%lld/%ld/%ld/%s", n ? " " : "", (long long)conversation, agent, company,
		 (const char *)arg);
}

TEST(typing_expires_without_a_stop)
{
	typing_t *t = typing_new();
	int owner1, owner2;
	CHECK(typing_start(t, 100, 1, 1, &owner1, 8000));
	CHECK(!typing_start(t, 100, 1, 1, &owner1, 9000)); /* a repeated start refreshes */
	CHECK(typing_start(t, 100, 2, 1, &owner2, 8500));
	CHECK(typing_start(t, 200, 1, 1, &owner1, 8200));
	CHECK(typing_count(t) == 3 && typing_next_expiry(t) == 8200);
	ended[0] = 0;
	CHECK(typing_expire(t, 7999, record_end, "expired") == 0);
	CHECK(typing_expire(t, 8600, record_end, "expired") == 2);
	CHECK_STR(ended, "200/1/1/expired 100/2/1/expired"); /* in expiry order */
	CHECK(typing_active(t, 100, 1) && typing_next_expiry(t) == 9000);
	CHECK(typing_stop(t, 100, 1));
	CHECK(!typing_stop(t, 100, 1));
	CHECK(typing_count(t) == 0 && typing_next_expiry(t) == -1);
	ended[0] = 0;
	CHECK(typing_expire(t, 100000, record_end, "expired") == 0);
	CHECK_STR(ended, "");
	typing_free(t);
}

TEST(typing_ends_with_its_connection)
{
	typing_t *t = typing_new();
	int a, b;
	typing_start(t, 1, 1, 1, &a, 10000);
	typing_start(t, 2, 1, 1, &a, 10000);
	typing_start(t, 3, 2, 1, &b, 10000);
	typing_start(t, 4, 1, 1, &a, 10000);
	ended[0] = 0;
	CHECK(typing_drop_owner(t, &a, record_end, "disconnected") == 3);
	CHECK(strstr(ended, "1/1/1/disconnected") && strstr(ended, "2/1/1/disconnected") && strstr(ended, "4/1/1/disconnected"));
	CHECK(typing_count(t) == 1 && typing_active(t, 3, 2));
	typing_free(t);
}

/* ---------------------------------------------------------------- guard */

TEST(guard_rate_limits_ops)
{
	guard_bucket_t b = {0};
	int ok = 0;
	for (int i = 0; i < 100; i++)
		ok += guard_take(&b, 10, 20, 1000); /* a burst in one instant */
	CHECK(ok == 20);
	CHECK(!guard_take(&b, 10, 20, 1050)); /* 0.5 token refilled */
	CHECK(guard_take(&b, 10, 20, 1100));  /* 100 ms at 10/s: one more */
	CHECK(!guard_take(&b, 10, 20, 1100));
	ok = 0;
	for (int i = 0; i < 100; i++)
		ok += guard_take(&b, 10, 20, 60000); /* a long pause refills only up to the burst */
	CHECK(ok == 20);
	CHECK(!guard_take(&b, 10, 20, 59000)); /* the clock going back refills nothing */
}

TEST(guard_counts_per_key)
{
	guard_counts_t *g = guard_counts_new();
	CHECK(guard_counts_add(g, "sigA", 1) == 1);
	CHECK(guard_counts_add(g, "sigA", 1) == 2);
	CHECK(guard_counts_add(g, "sigB", 1) == 1);
	CHECK(guard_counts_get(g, "sigA") == 2 && guard_counts_keys(g) == 2);
	CHECK(guard_counts_add(g, "sigA", -1) == 1);
	CHECK(guard_counts_add(g, "sigA", -1) == 0);
	CHECK(guard_counts_get(g, "sigA") == 0 && guard_counts_keys(g) == 1);
	CHECK(guard_counts_add(g, "never", -1) == 0 && guard_counts_keys(g) == 1);
	char key[32];
	for (int i = 0; i < 10000; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		guard_counts_add(g, key, 1);
	}
	CHECK(guard_counts_keys(g) == 10001 && guard_counts_get(g, "k9999") == 1);
	guard_counts_free(g);
}

TEST(guard_counts_share_a_bucket_per_key)
{
	guard_counts_t *g = guard_counts_new();
	int ok = 0;
	/* two connections of one key take turns: together they get one burst */
	for (int i = 0; i < 50; i++) {
		ok += guard_counts_take(g, "1:4", 10, 20, 1000);
		ok += guard_counts_take(g, "1:4", 10, 20, 1000);
	}
	CHECK(ok == 20);
	CHECK(guard_counts_take(g, "1:5", 10, 20, 1000)); /* another key has its own */
	CHECK(guard_counts_keys(g) == 2);
	/* a bucket still refilling is kept (forgetting it would hand out a fresh burst) */
	CHECK(guard_counts_evict_idle(g, 10, 20, 2000) == 1 && guard_counts_keys(g) == 1);
	CHECK(!guard_counts_take(g, "1:4", 10, 20, 1050));
	/* a full bucket is idle: forgotten, unless the key also counts connections */
	CHECK(guard_counts_add(g, "1:4", 1) == 1);
	CHECK(guard_counts_evict_idle(g, 10, 20, 60000) == 0 && guard_counts_keys(g) == 1);
	CHECK(guard_counts_add(g, "1:4", -1) == 0 && guard_counts_keys(g) == 1); /* its bucket is not full yet */
	CHECK(guard_counts_evict_idle(g, 10, 20, 60000) == 1 && guard_counts_keys(g) == 0);
	CHECK(guard_counts_take(g, "1:4", 10, 20, 60000)); /* back as a fresh, full bucket */
	guard_counts_free(g);
}

/* ---------------------------------------------------------------- hub */

typedef struct {
	char frames[16][512];
	int n;
} sink_t;

static void sink(void *conn, const char *frame, size_t len, void *arg)
{
	sink_t *s = conn;
	(void)arg;
	if (s->n < 16)
		snprintf(s->frames[s->n++], sizeof(s->frames[0]), "%.*s", (int)len, frame);
}

TEST(hub_routes_and_replays_exactly)
{
	hub_t *h = hub_new(4, 77);
	sink_t live = {0}, other = {0}, back = {0};
	const char *c1[] = {"company:1", "conversation:5"}, *c2[] = {"company:2"}, *typing[] = {"conversation:5"};
	hub_set_start(h, 1, 10);
	hub_subscribe(h, "company:1", &live);
	hub_subscribe(h, "company:2", &other);
	CHECK(hub_publish(h, 1, 10, "message", c1, 2, "{\"n\":1}", sink, NULL) == 1);
	CHECK(hub_publish(h, 2, 3, "message", c2, 1, "{\"n\":2}", sink, NULL) == 1);
	CHECK(hub_publish(h, 1, 12, "typing", typing, 1, "{\"n\":3}", sink, NULL) == 0);
	CHECK(hub_publish(h, 1, 13, "hint", c1, 2, "{\"n\":4}", sink, NULL) == 1);
	CHECK(live.n == 2 && other.n == 1);
	CHECK_STR(live.frames[0], "{\"type\":\"message\",\"channel\":\"company:1\",\"seq\":10,\"epoch\":77,\"data\":{\"n\":1}}");
	CHECK(strstr(other.frames[0], "\"seq\":3") != NULL); /* company 2 never sees company 1 */
	CHECK(hub_last_seq(h, 1) == 13 && hub_last_seq(h, 2) == 3 && hub_last_seq(h, 3) == -1);

	/* a console that saw seq 10 comes back: exactly 12 and 13 of its channel, in order */
	CHECK(hub_replay(h, "conversation:5", 1, 10, &back, sink, NULL));
	CHECK(back.n == 2 && strstr(back.frames[0], "\"seq\":12,") && strstr(back.frames[1], "\"seq\":13,"));
	back.n = 0;
	CHECK(hub_replay(h, "conversation:5", 1, 13, &back, sink, NULL) && back.n == 0);
	/* the ring holds 4 events: a fifth evicts seq 10, and a resume from 9 can no longer be exact */
	CHECK(hub_replay(h, "company:1", 1, 9, &back, sink, NULL));
	back.n = 0;
	hub_publish(h, 1, 20, "message", c1, 2, "{\"n\":5}", sink, NULL);
	CHECK(!hub_replay(h, "company:1", 1, 9, &back, sink, NULL) && back.n == 0);
	CHECK(hub_replay(h, "company:1", 1, 10, &back, sink, NULL) && back.n == 2);
	hub_unsubscribe(h, "company:1", &live);
	CHECK(hub_subscriber_count(h, "company:1") == 0);
	hub_free(h);
}

TEST(hub_routes_by_channel)
{
	hub_t *h = hub_new(100, 42);
	sink_t a = {0}, b = {0};
	hub_subscribe(h, "company:1", &a);
	hub_subscribe(h, "agent:3", &b);
	hub_subscribe(h, "agent:3", &b); /* idempotent */
	const char *chs[] = {"company:1", "agent:3"};
	CHECK(hub_publish(h, 1, 5, "hint", chs, 2, "{\"x\":1}", sink, NULL) == 2);
	CHECK(a.n == 1 && b.n == 1);
	CHECK_STR(a.frames[0], "{\"type\":\"hint\",\"channel\":\"company:1\",\"seq\":5,\"epoch\":42,\"data\":{\"x\":1}}");
	CHECK(strstr(b.frames[0], "\"channel\":\"agent:3\"") != NULL);
	const char *other[] = {"company:2"};
	hub_publish(h, 2, 6, "message", other, 1, "{}", sink, NULL);
	CHECK(a.n == 1 && b.n == 1);
	hub_unsubscribe(h, "company:1", &a);
	hub_publish(h, 1, 7, "hint", chs, 1, "{}", sink, NULL);
	CHECK(a.n == 1);
	hub_free(h);
}

TEST(hub_replays_exactly_the_missed_events)
{
	hub_t *h = hub_new(5, 1);
	sink_t s = {0};
	const char *c1[] = {"company:1"}, *c2[] = {"company:1", "agent:2"};
	hub_set_start(h, 0, 100);
	hub_publish(h, 0, 100, "message", c1, 1, "{\"i\":0}", sink, NULL);
	hub_publish(h, 0, 101, "message", c2, 2, "{\"i\":1}", sink, NULL);
	hub_publish(h, 0, 103, "hint", c2, 2, "{\"i\":2}", sink, NULL);
	CHECK(hub_replay(h, "company:1", 0, 100, &s, sink, NULL));
	CHECK(s.n == 2 && strstr(s.frames[0], "\"seq\":101") && strstr(s.frames[1], "\"seq\":103"));
	s.n = 0;
	CHECK(hub_replay(h, "agent:2", 0, 99, &s, sink, NULL));
	CHECK(s.n == 2);
	s.n = 0;
	CHECK(!hub_replay(h, "company:1", 0, 50, &s, sink, NULL)); /* before the history */
	CHECK(s.n == 0);
	for (int i = 0; i < 5; i++)
		hub_publish(h, 0, 200 + i, "message", c1, 1, "{}", sink, NULL);
	CHECK(!hub_replay(h, "company:1", 0, 101, &s, sink, NULL)); /* 103 was evicted: cannot cover */
	CHECK(s.n == 0);
	CHECK(hub_replay(h, "company:1", 0, 103, &s, sink, NULL) && s.n == 5); /* everything after 103 is held */
	CHECK(hub_last_seq(h, 0) == 204);
	hub_free(h);
}

/* ---------------------------------------------------------------- wire */

TEST(upload_names_and_kinds)
{
	char n[32];
	CHECK(upload_name(NULL, n, sizeof(n)) && strcmp(n, "") == 0);
	CHECK(upload_name("fatura%20mar%C3%A7o.pdf", n, sizeof(n)));
	CHECK_STR(n, "fatura março.pdf");
	CHECK(upload_name("..%2F..%2Fetc%2Fpasswd", n, sizeof(n)));
	CHECK_STR(n, "passwd"); /* only ever a display name, and never a path */
	CHECK(upload_name("C:\\Users\\ana\\foto.png", n, sizeof(n)));
	CHECK_STR(n, "foto.png");
	CHECK(!upload_name("a%0Ab", n, sizeof(n)));
	CHECK(!upload_name("a name far longer than thirty-two bytes.pdf", n, sizeof(n)));
	CHECK_STR(upload_kind("image/png"), "image");
	CHECK_STR(upload_kind("image/jpeg"), "image");
	CHECK_STR(upload_kind("application/pdf"), "document");
	CHECK_STR(upload_kind("application/zip"), "document");
	CHECK(!upload_kind("image/gif") && !upload_kind("application/octet-stream") && !upload_kind("audio/ogg"));
}

TEST(wire_outbound_formats)
{
	char *m = wire_reply(1, 555, 7, "Olá, \"já\" resolvo", 0, "\"c-1\"", "i1-1", 1714564800000LL);
	cJSON *r = cJSON_Parse(m);
	CHECK(!cJSON_GetObjectItem(r, "media"));
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(r, "type")), "reply");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(r, "text")), "Olá, \"já\" resolvo");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(r, "client_id")), "c-1");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(r, "request_id")), "i1-1");
	CHECK(cJSON_GetObjectItem(r, "conversation_id")->valuedouble == 555 && cJSON_GetObjectItem(r, "agent_id")->valueint == 7);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(r, "requested_at")), "2024-05-01T12:00:00.000Z");
	cJSON_Delete(r), free(m);
	m = wire_reply(1, 555, 7, "", 4242, NULL, "i1-1b", 0);
	r = cJSON_Parse(m);
	CHECK(cJSON_GetObjectItem(r, "media")->valuedouble == 4242);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(r, "text")), "");
	cJSON_Delete(r), free(m);
	m = wire_transfer(1, 555, 7, 0, "financeiro", NULL, "i1-2", 0);
	r = cJSON_Parse(m);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(r, "to_domain")), "financeiro");
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(r, "client_id")) && !cJSON_GetObjectItem(r, "to_agent"));
	cJSON_Delete(r), free(m);
	m = wire_transfer(1, 555, 7, 3, NULL, "9", "i1-3", 0);
	r = cJSON_Parse(m);
	CHECK(cJSON_GetObjectItem(r, "to_agent")->valueint == 3 && cJSON_GetObjectItem(r, "client_id")->valueint == 9);
	cJSON_Delete(r), free(m);
}

/* ---------------------------------------------------------------- poll */

TEST(poll_body_carries_frames_and_next_seq)
{
	poll_batch_t b = {0};
	size_t len;
	char *body = poll_render(&b, "company:1", 5, 41, &len);
	CHECK_STR(body, "{\"channel\":\"company:1\",\"epoch\":5,\"seq\":41,\"events\":[]}");
	CHECK(len == strlen(body));
	free(body);
	poll_batch_add(&b, "{\"seq\":40}", 10);
	poll_batch_add(&b, "{\"seq\":41}", 10);
	body = poll_render(&b, "company:1", 5, 41, &len);
	cJSON *r = cJSON_Parse(body);
	CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(r, "events")) == 2);
	CHECK(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "events"), 1)->child->valueint == 41);
	cJSON_Delete(r), free(body);
	for (int i = 0; i < 1000; i++)
		poll_batch_add(&b, "{\"seq\":1}", 9);
	CHECK(b.n == 1002);
	poll_batch_free(&b);
	long long v;
	CHECK(poll_parse_ll("42", 0, 100, &v) && v == 42);
	CHECK(poll_parse_ll("-1", -1, 100, &v) && v == -1);
	CHECK(!poll_parse_ll("101", 0, 100, &v) && !poll_parse_ll("", 0, 1, &v) && !poll_parse_ll("4x", 0, 9, &v));
	CHECK(!poll_parse_ll(NULL, 0, 1, &v) && !poll_parse_ll("99999999999999999999", 0, 9, &v));
}

int main(void)
{
	RUN(presence_counts_tabs);
	RUN(presence_local_each_lists_held_tabs);
	RUN(presence_union_over_instances);
	RUN(presence_heartbeat_replaces_an_instance_state);
	RUN(presence_silent_instances_expire);
	RUN(presence_many_agents_stay_sorted);
	RUN(typing_expires_without_a_stop);
	RUN(typing_ends_with_its_connection);
	RUN(guard_rate_limits_ops);
	RUN(guard_counts_per_key);
	RUN(guard_counts_share_a_bucket_per_key);
	RUN(hub_routes_and_replays_exactly);
	RUN(upload_names_and_kinds);
	RUN(wire_outbound_formats);
	RUN(hub_routes_by_channel);
	RUN(hub_replays_exactly_the_missed_events);
	RUN(poll_body_carries_frames_and_next_seq);
	return unit_done();
}
