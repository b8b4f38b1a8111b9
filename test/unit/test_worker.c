/* Unit tests of the offset tracker (commit only up to the lowest unfinished message)
 * and of the notifier hub (routing, history, exact resume). */
#include "hub.h"
#include "track.h"
#include "unit.h"

#include <stdlib.h>

static int64_t last_next;
static int commits;

static void on_commit(const char *topic, int32_t partition, int64_t next, void *arg)
{
	(void)topic, (void)partition, (void)arg;
	last_next = next;
	commits++;
}

TEST(track_commits_lowest_unfinished)
{
	track_t *t = track_new();
	track_item_t *a = track_add(t, "in", 0, 10), *b = track_add(t, "in", 0, 11), *c = track_add(t, "in", 0, 12);
	track_done(t, b);
	commits = 0;
	track_commits(t, on_commit, NULL);
	CHECK(commits == 0); /* 10 unfinished: nothing committable */
	track_done(t, a);
	track_commits(t, on_commit, NULL);
	CHECK(commits == 1 && last_next == 12);
	track_commits(t, on_commit, NULL);
	CHECK(commits == 1); /* unchanged: not reported twice */
	CHECK(track_in_flight(t) == 1);
	track_done(t, c);
	track_commits(t, on_commit, NULL);
	CHECK(last_next == 13 && track_in_flight(t) == 0);
	track_free(t);
}

TEST(track_revoke_keeps_handles_valid)
{
	track_t *t = track_new();
	track_item_t *a = track_add(t, "in", 0, 1), *b = track_add(t, "in", 0, 2);
	track_done(t, b);
	track_revoke(t, "in", 0);
	commits = 0;
	track_commits(t, on_commit, NULL);
	CHECK(commits == 0);
	track_done(t, a); /* orphan: freed, commits nothing */
	track_commits(t, on_commit, NULL);
	CHECK(commits == 0 && track_in_flight(t) == 0);
	track_item_t *c = track_add(t, "in", 0, 7); /* reassigned later */
	track_done(t, c);
	track_commits(t, on_commit, NULL);
	CHECK(commits == 1 && last_next == 8);
	track_free(t);
}

typedef struct {
	char frames[64][512];
	int n;
} sink_t;

static void sink(void *conn, const char *frame, size_t len, void *arg)
{
	sink_t *s = conn;
	(void)arg;
	if (s->n < 64)
		snprintf(s->frames[s->n++], 512, "%.*s", (int)len, frame);
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

int main(void)
{
	RUN(track_commits_lowest_unfinished);
	RUN(track_revoke_keeps_handles_valid);
	RUN(hub_routes_by_channel);
	RUN(hub_replays_exactly_the_missed_events);
	return unit_done();
}
