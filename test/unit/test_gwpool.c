/*
 * test_gwpool: the outbound path's choice among a channel's gateway instances on a fake
 * clock: smooth weighted round-robin, an instance's breaker opening and being re-admitted
 * by a health check or by its probe, unhealthy instances skipped, failover within one
 * request, and a reload keeping what is known of the instances it keeps.
 */
#include "gwpool.h"
#include "unit.h"

static cfg_instance_t insts[3] = {
	{.url = "http://gw-a:8080", .weight = 3},
	{.url = "http://gw-b:8080/", .weight = 1},
	{.url = "https://gw-c", .weight = 1},
};

static void mk(gwp_pool_t *p, int n)
{
	breaker_params_t bp;
	breaker_params_default(&bp); /* 60 s, 10 calls, 50 %, 30 s */
	gwp_init(p, &bp);
	gwp_sync(p, insts, n);
}

/* Picks n times (recording successes); counts per instance; returns the sequence in seq. */
static void pick_n(gwp_pool_t *p, int n, int64_t now, int *count, int *seq)
{
	for (int k = 0; k < n; k++) {
		bool probe;
		int i = gwp_pick(p, now, 0, &probe);
		if (seq)
			seq[k] = i;
		if (i >= 0) {
			count[i]++;
			gwp_record(p, i, now, BREAKER_OK, probe);
		}
	}
}

TEST(smooth_weighted_round_robin)
{
	gwp_pool_t p;
	mk(&p, 2);
	int count[GWP_MAX] = {0}, seq[8];
	pick_n(&p, 8, 1000, count, seq);
	/* nginx's smooth order for 3:1: a a b a, never b twice in a row nor a four times */
	int want[8] = {0, 0, 1, 0, 0, 0, 1, 0};
	for (int k = 0; k < 8; k++)
		CHECK(seq[k] == want[k]);
	CHECK(count[0] == 6 && count[1] == 2);
	CHECK_STR(p.inst[0].label, "gw-a:8080");
	gwp_free(&p);
	mk(&p, 3);
	CHECK_STR(p.inst[2].label, "gw-c:443");
	int c3[GWP_MAX] = {0};
	pick_n(&p, 500, 1000, c3, NULL);
	CHECK(c3[0] == 300 && c3[1] == 100 && c3[2] == 100);
	gwp_free(&p);
}

TEST(failing_instance_opens_and_a_health_check_readmits_it)
{
	gwp_pool_t p;
	mk(&p, 2);
	int64_t now = 1000000;
	/* b fails every call: after 10 calls in the window at >= 50 % errors its breaker opens */
	int b_calls = 0;
	for (int k = 0; k < 60 && breaker_state(&p.inst[1].breaker) == BREAKER_CLOSED; k++) {
		bool probe;
		int i = gwp_pick(&p, now, 0, &probe);
		gwp_record(&p, i, now, i == 1 ? BREAKER_FAIL : BREAKER_OK, probe);
		b_calls += i == 1;
		now += 100;
	}
	CHECK(breaker_state(&p.inst[1].breaker) == BREAKER_OPEN);
	CHECK(b_calls == 10);
	/* open: every call goes to a */
	int count[GWP_MAX] = {0};
	pick_n(&p, 20, now, count, NULL);
	CHECK(count[0] == 20 && count[1] == 0);
	/* a health check passes: half-open, and the next turn of b is its one probe */
	gwp_health(&p, 1, true);
	CHECK(breaker_state(&p.inst[1].breaker) == BREAKER_HALF_OPEN);
	bool probe = false;
	int i = -1;
	for (int k = 0; k < 4 && i != 1; k++) {
		i = gwp_pick(&p, now, 0, &probe);
		if (i == 0)
			gwp_record(&p, 0, now, BREAKER_OK, probe);
	}
	CHECK(i == 1 && probe);
	/* while the probe is out, b is not chosen again */
	int during[GWP_MAX] = {0};
	pick_n(&p, 8, now, during, NULL);
	CHECK(during[1] == 0);
	gwp_record(&p, 1, now, BREAKER_OK, true);
	CHECK(breaker_state(&p.inst[1].breaker) == BREAKER_CLOSED);
	int after[GWP_MAX] = {0};
	pick_n(&p, 40, now, after, NULL);
	CHECK(after[0] == 30 && after[1] == 10);
	gwp_free(&p);
}

TEST(open_breaker_probes_after_its_pause)
{
	gwp_pool_t p;
	mk(&p, 2);
	int64_t now = 0;
	for (int k = 0; k < 10; k++) {
		bool probe;
		CHECK(breaker_allow(&p.inst[1].breaker, now, &probe));
		gwp_record(&p, 1, now, BREAKER_FAIL, probe);
	}
	CHECK(breaker_state(&p.inst[1].breaker) == BREAKER_OPEN);
	int count[GWP_MAX] = {0};
	pick_n(&p, 10, now + 29999, count, NULL);
	CHECK(count[1] == 0);
	int later[GWP_MAX] = {0};
	pick_n(&p, 10, now + 30000, later, NULL); /* the probe succeeds: closed again */
	CHECK(later[1] >= 2 && breaker_state(&p.inst[1].breaker) == BREAKER_CLOSED);
	gwp_free(&p);
}

TEST(unhealthy_skipped_failover_and_last_resort)
{
	gwp_pool_t p;
	mk(&p, 3);
	gwp_health(&p, 0, false);
	int count[GWP_MAX] = {0};
	pick_n(&p, 20, 0, count, NULL);
	CHECK(count[0] == 0 && count[1] == 10 && count[2] == 10);
	/* failover: a request that tried b goes to c, then (all healthy ones tried) to either */
	bool probe;
	int i = gwp_pick(&p, 0, 1u << 1, &probe);
	CHECK(i == 2);
	i = gwp_pick(&p, 0, (1u << 1) | (1u << 2), &probe);
	CHECK(i == 1 || i == 2);
	/* none healthy: the breakers still allow calls, so they are tried all the same */
	gwp_health(&p, 1, false);
	gwp_health(&p, 2, false);
	i = gwp_pick(&p, 0, 0, &probe);
	CHECK(i >= 0);
	i = gwp_pick(&p, 0, 1u << 0, &probe);
	CHECK(i == 1 || i == 2);
	/* every breaker open: nothing */
	for (int k = 0; k < 3; k++)
		for (int n = 0; n < 10; n++) {
			CHECK(breaker_allow(&p.inst[k].breaker, 0, &probe));
			gwp_record(&p, k, 0, BREAKER_FAIL, probe);
		}
	CHECK(gwp_pick(&p, 1000, 0, &probe) == -1);
	gwp_free(&p);
}

TEST(sync_keeps_state_of_kept_instances)
{
	gwp_pool_t p;
	mk(&p, 2);
	gwp_health(&p, 1, false);
	unsigned gen = p.gen;
	CHECK(gwp_matches(&p, insts, 2) && !gwp_matches(&p, insts, 3));
	cfg_instance_t next[2] = {{.url = "http://gw-b:8080/", .weight = 5}, {.url = "http://gw-d", .weight = 1}};
	CHECK(!gwp_matches(&p, next, 2));
	gwp_sync(&p, next, 2);
	CHECK(p.gen != gen && p.n == 2);
	CHECK(p.inst[0].weight == 5 && !p.inst[0].healthy); /* b kept what was known of it */
	CHECK(p.inst[1].healthy && p.inst[1].next_check_ms == 0);
	CHECK(gwp_find(&p, "http://gw-d", NULL) == 1 && gwp_find(&p, "http://gw-a:8080", NULL) == -1);
	CHECK(gwp_matches(&p, next, 2));
	gwp_free(&p);
}

int main(void)
{
	RUN(smooth_weighted_round_robin);
	RUN(failing_instance_opens_and_a_health_check_readmits_it);
	RUN(open_breaker_probes_after_its_pause);
	RUN(unhealthy_skipped_failover_and_last_resort);
	RUN(sync_keeps_state_of_kept_instances);
	return unit_done();
}
