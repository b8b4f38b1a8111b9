/* Unit tests of the worker's offset tracker (commit only up to the lowest unfinished message).
 * The notifier hub's tests are in test_notifier.c. */
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

int main(void)
{
	RUN(track_commits_lowest_unfinished);
	RUN(track_revoke_keeps_handles_valid);
	return unit_done();
}
