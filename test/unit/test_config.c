/* Unit tests of the config table: defaults, validation with file:line, and that the
 * sample config documents every key of the table. Run from the project root. */
#include "config.h"
#include "unit.h"

#include <libconfig.h>
#include <stdlib.h>
#include <unistd.h>

static const char *write_tmp(const char *text)
{
	static char path[64];
	snprintf(path, sizeof(path), "/tmp/atende-cfg-%d.conf", (int)getpid());
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

TEST(sample_config_loads)
{
	cfg_t c;
	char err[4096];
	bool ok = cfg_load("deploy/atende.conf", &c, err, sizeof(err));
	CHECK(ok);
	if (!ok)
		printf("%s\n", err);
	CHECK_STR(c.ingress.listen, "127.0.0.1:8080");
	CHECK(c.n_channels == 3);
	const cfg_channel_t *ch = cfg_channel_find(&c, CHAN_EVOLUTION, "demo");
	CHECK(ch && ch->company == 1 && ch->domain == cfg_domain_index("suporte"));
	CHECK(cfg_channel_find(&c, CHAN_CLOUD, "106540352242922") != NULL);
	cfg_free(&c);
	CHECK(cfg_load("deploy/bench.conf", &c, err, sizeof(err)));
	CHECK(c.n_channels == 5 && c.companies[0].agent_last == 100);
	cfg_free(&c);
}

/* Every key of the table is written out in the sample config (PgBouncer's optscan idea). */
TEST(sample_config_documents_every_key)
{
	config_t lc;
	config_init(&lc);
	CHECK(config_read_file(&lc, "deploy/atende.conf") == CONFIG_TRUE);
	for (size_t i = 0; i < cfg_n_keys; i++)
		if (!config_lookup(&lc, cfg_keys[i].name)) {
			printf("  deploy/atende.conf lacks %s\n", cfg_keys[i].name);
			CHECK(!"key missing from deploy/atende.conf");
		}
	config_destroy(&lc);
}

TEST(defaults_apply_to_an_empty_file)
{
	cfg_t c;
	char err[4096];
	CHECK(cfg_load(write_tmp("auth: { token_secret = \"0123456789abcdef\"; };\n"), &c, err, sizeof(err)));
	CHECK(c.workers.count == 2);
	CHECK(c.coaching.min_message_length == 10);
	CHECK_STR(c.ai.provider, "rules");
	CHECK_STR(c.kafka.brokers, "");
	cfg_free(&c);
}

TEST(errors_name_file_and_line)
{
	cfg_t c;
	char err[4096], want[256];
	const char *path = write_tmp("auth: { token_secret = \"0123456789abcdef\"; };\n"
				     "workers: {\n  count = \"two\";\n};\n"
				     "ingress: { ack_timeout_ms = 5; };\n"
				     "bogus = 1;\n"
				     "channels = ( { type = \"evolution\"; instance = \"x\"; key = \"k\"; company = 9; domain = \"nope\"; } );\n");
	CHECK(!cfg_load(path, &c, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s:3: workers.count: expected an integer", path);
	CHECK(strstr(err, want) != NULL);
	snprintf(want, sizeof(want), "%s:5: ingress.ack_timeout_ms: 5 is out of range", path);
	CHECK(strstr(err, want) != NULL);
	snprintf(want, sizeof(want), "%s:6: unknown key \"bogus\"", path);
	CHECK(strstr(err, want) != NULL);
	CHECK(strstr(err, "unknown domain \"nope\"") != NULL);
	CHECK(strstr(err, "company 9 is not in companies") != NULL);
	cfg_free(&c);
	CHECK(!cfg_load(write_tmp("workers: { count = 2 \n"), &c, err, sizeof(err)));
	CHECK(strstr(err, ":2: ") != NULL || strstr(err, ":1: ") != NULL);
	cfg_free(&c);
	unlink(path);
}

TEST(reload_swaps_only_reloadable_keys)
{
	cfg_t a, b;
	char err[4096];
	CHECK(cfg_load("deploy/atende.conf", &a, err, sizeof(err)));
	CHECK(cfg_load(write_tmp("auth: { token_secret = \"0123456789abcdefXX\"; };\n"
				 "workers: { count = 7; batch_size = 9; };\n"
				 "companies = ( { id = 1; agents = [1, 2]; } );\n"),
		       &b, err, sizeof(err)));
	cfg_apply_reload(&a, &b);
	CHECK(a.workers.count == 2);     /* not reloadable */
	CHECK(a.workers.batch_size == 9); /* reloadable */
	CHECK(a.n_channels == 0 && a.n_companies == 1);
	CHECK_STR(a.auth.token_secret, "0123456789abcdefXX");
	cfg_free(&a);
	cfg_free(&b);
}

TEST(pools_cover_every_domain_once)
{
	cfg_t c;
	char err[4096];
	CHECK(cfg_load("deploy/atende.conf", &c, err, sizeof(err)));
	CHECK(c.n_pools == 1 && strcmp(c.pools[0].name, "main") == 0 && c.pools[0].count == c.workers.count);
	char group[128];
	CHECK_STR(cfg_pool_group(&c, &c.pools[0], group, sizeof(group)), "atende-workers");
	cfg_free(&c);
	CHECK(cfg_load(write_tmp("auth: { token_secret = \"0123456789abcdef\"; };\n"
				 "pools = ( { name = \"vip\"; domains = [\"ouvidoria\", \"cancelamento\"]; count = 1; priority = 5; },\n"
				 "          { name = \"rest\"; domains = [\"financeiro\", \"comercial\", \"suporte\"]; count = 2; } );\n"),
		       &c, err, sizeof(err)));
	CHECK(c.n_pools == 2 && c.pools[0].priority == 5 && c.pools[1].count == 2);
	CHECK(cfg_pool_of_domain(&c, cfg_domain_index("cancelamento")) == &c.pools[0]);
	CHECK_STR(cfg_pool_group(&c, &c.pools[1], group, sizeof(group)), "atende-workers-rest");
	cfg_free(&c);
	CHECK(!cfg_load(write_tmp("auth: { token_secret = \"0123456789abcdef\"; };\n"
				  "pools = ( { name = \"a\"; domains = [\"suporte\", \"suporte\"]; count = 1; },\n"
				  "          { name = \"b\"; domains = [\"nope\"]; count = 0; } );\n"),
			&c, err, sizeof(err)));
	CHECK(strstr(err, "domain suporte is in two pools") != NULL);
	CHECK(strstr(err, "unknown domain \"nope\"") != NULL);
	CHECK(strstr(err, "count 0 is out of range") != NULL);
	CHECK(strstr(err, "domain financeiro is in no pool") != NULL);
	cfg_free(&c);
}

/* A channel's gateway instances: the list form, the single url as one of weight 1, and
 * every mistake named with its line. */
TEST(channel_instances)
{
	cfg_t c;
	char err[4096];
	const char *good = "auth: { token_secret = \"0123456789abcdef\"; };\n"
			   "companies = ( { id = 1; agents = [1, 5]; } );\n"
			   "channels = (\n"
			   "  { type = \"evolution\"; instance = \"demo\"; key = \"k1\"; company = 1; domain = \"suporte\";\n"
			   "    instances = ( { url = \"http://a:8080\"; weight = 3; },\n"
			   "                  { url = \"http://b:8080\"; instance = \"demo-b\"; key = \"kb\"; } ); },\n"
			   "  { type = \"api\"; name = \"site\"; key = \"k2\"; company = 1; domain = \"comercial\"; url = \"http://c/in\"; },\n"
			   "  { type = \"api\"; name = \"bare\"; key = \"k3\"; company = 1; domain = \"comercial\"; }\n"
			   ");\n";
	bool ok = cfg_load(write_tmp(good), &c, err, sizeof(err));
	CHECK(ok);
	if (!ok)
		printf("%s\n", err);
	const cfg_channel_t *ch = cfg_channel_find(&c, CHAN_EVOLUTION, "demo");
	CHECK(ch && ch->n_instances == 2);
	if (ch && ch->n_instances == 2) {
		CHECK_STR(ch->instances[0].url, "http://a:8080");
		CHECK(ch->instances[0].weight == 3 && !ch->instances[0].instance && !ch->instances[0].key);
		CHECK(ch->instances[1].weight == 1 && ch->instances[1].line == 6);
		CHECK_STR(ch->instances[1].instance, "demo-b");
		CHECK_STR(ch->instances[1].key, "kb");
	}
	/* webhooks from the second server carry its own instance name and key */
	const cfg_channel_t *alias = cfg_channel_find(&c, CHAN_EVOLUTION, "demo-b");
	CHECK(alias && alias == ch);
	if (alias) {
		CHECK_STR(cfg_channel_key(alias, "demo-b"), "kb");
		CHECK_STR(cfg_channel_key(alias, "demo"), "k1");
	}
	CHECK(cfg_channel_find(&c, CHAN_API, "demo-b") == NULL);
	ch = cfg_channel_find(&c, CHAN_API, "site");
	CHECK(ch && ch->n_instances == 1 && ch->instances[0].weight == 1);
	ch = cfg_channel_find(&c, CHAN_API, "bare");
	CHECK(ch && ch->n_instances == 0);
	cfg_free(&c);

	const char *bad = "auth: { token_secret = \"0123456789abcdef\"; };\n"
			  "companies = ( { id = 1; agents = [1, 5]; } );\n"
			  "channels = (\n"
			  "  { type = \"evolution\"; instance = \"demo\"; key = \"k1\"; company = 1; domain = \"suporte\";\n"
			  "    instances = ( { url = \"http://a\"; weight = 0; },\n"
			  "                  { weight = 2; },\n"
			  "                  { url = \"ftp://x\"; },\n"
			  "                  { url = \"http://a\"; weight = 101; color = 1; } ); },\n"
			  "  { type = \"api\"; name = \"site\"; key = \"k2\"; company = 1; domain = \"comercial\"; url = \"http://c\";\n"
			  "    instances = ( { url = \"http://d\"; } ); },\n"
			  "  { type = \"api\"; name = \"two\"; key = \"k3\"; company = 1; domain = \"comercial\";\n"
			  "    instances = ( { url = \"http://d\"; instance = \"x\"; } ); },\n"
			  "  { type = \"api\"; name = \"many\"; key = \"k4\"; company = 1; domain = \"comercial\";\n"
			  "    instances = ( {url=\"http://1\";},{url=\"http://2\";},{url=\"http://3\";},{url=\"http://4\";},\n"
			  "      {url=\"http://5\";},{url=\"http://6\";},{url=\"http://7\";},{url=\"http://8\";},{url=\"http://9\";},\n"
			  "      {url=\"http://10\";},{url=\"http://11\";},{url=\"http://12\";},{url=\"http://13\";},{url=\"http://14\";},\n"
			  "      {url=\"http://15\";},{url=\"http://16\";},{url=\"http://17\";} ); },\n"
			  "  { type = \"api\"; name = \"none\"; key = \"k5\"; company = 1; domain = \"comercial\"; instances = (); },\n"
			  "  { type = \"evolution\"; instance = \"e2\"; key = \"k6\"; company = 1; domain = \"suporte\";\n"
			  "    instances = ( { url = \"http://e\"; instance = \"demo\"; } ); }\n"
			  ");\n";
	CHECK(!cfg_load(write_tmp(bad), &c, err, sizeof(err)));
	const char *want[] = {":5: channels: instances: weight 0 is out of range 1..100",
			      ":6: missing \"url\"",
			      ":7: channels: instances: url \"ftp://x\" is not http:// or https://",
			      ":8: channels: instances: weight 101 is out of range 1..100",
			      ":8: channels: instances: unknown key \"color\"",
			      ":8: channels: instances: \"http://a\" is listed twice",
			      ":10: channels: \"url\" and \"instances\" both given",
			      ":12: channels: instances: \"instance\" is only for evolution channels",
			      ":14: channels: 17 instances, at most 16",
			      ":18: channels: \"instances\" must be a non-empty list",
			      ":20: channels: instances: instance \"demo\" is already another channel's"};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		if (!strstr(err, want[i]))
			printf("  missing \"%s\" in:\n%s\n", want[i], err);
		CHECK(strstr(err, want[i]) != NULL);
	}
	cfg_free(&c);
}

/* The lifecycle timers must come in order, and the survey kind be one that exists. */
TEST(lifecycle_checks)
{
	cfg_t c;
	char err[4096], want[256];
	const char *path = write_tmp("auth: { token_secret = \"0123456789abcdef\"; };\n"
				     "lifecycle: {\n  followup1_after_s = 600;\n  followup2_after_s = 300;\n"
				     "  auto_resolve_after_s = 200;\n  survey = \"stars\";\n};\n");
	CHECK(!cfg_load(path, &c, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s:4: lifecycle.followup2_after_s: 300 must be after followup1_after_s (600)", path);
	CHECK(strstr(err, want) != NULL);
	snprintf(want, sizeof(want), "%s:5: lifecycle.auto_resolve_after_s: 200 must be after the follow-ups", path);
	CHECK(strstr(err, want) != NULL);
	snprintf(want, sizeof(want), "%s:6: lifecycle.survey: \"stars\" is not nps, csat or off", path);
	CHECK(strstr(err, want) != NULL);
	cfg_free(&c);
	/* 0 turns a job off: the others need no order with it */
	CHECK(cfg_load(write_tmp("auth: { token_secret = \"0123456789abcdef\"; };\n"
				 "lifecycle: { followup1_after_s = 0; followup2_after_s = 0; auto_resolve_after_s = 60; };\n"),
		       &c, err, sizeof(err)));
	CHECK(c.lifecycle.auto_resolve_after_s == 60 && c.lifecycle.tick_ms == 1000);
	CHECK_STR(c.lifecycle.survey, "nps");
	cfg_free(&c);
}

int main(void)
{
	RUN(sample_config_loads);
	RUN(sample_config_documents_every_key);
	RUN(lifecycle_checks);
	RUN(defaults_apply_to_an_empty_file);
	RUN(errors_name_file_and_line);
	RUN(reload_swaps_only_reloadable_keys);
	RUN(pools_cover_every_domain_once);
	RUN(channel_instances);
	return unit_done();
}
