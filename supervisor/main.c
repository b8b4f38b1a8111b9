/*
 * atende: the supervisor and ops CLI. `atende run` supervises the whole system; the
 * other verbs are one-shot tools for operators (tokens, migrations, psql, config checks).
 */
#include "agents.h"
#include "broker.h"
#include "config.h"
#include "dlq.h"
#include "log.h"
#include "migrate.h"
#include "pgembed.h"
#include "proc.h"
#include "retention.h"
#include "status.h"
#include "sup.h"
#include "token.h"
#include "topics.h"
#include "xalloc.h"

#include <cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *usage;
	const char *help;
} main_verb_t;

static int main_run(int argc, char **argv);
static int main_token(int argc, char **argv);
static int main_migrate(int argc, char **argv);
static int main_psql(int argc, char **argv);
static int main_check_config(int argc, char **argv);
static int main_status(int argc, char **argv);
static int main_embedded_broker(int argc, char **argv);
static int main_topics(int argc, char **argv);
static int main_bench(int argc, char **argv);
static int main_dlq(int argc, char **argv);
static int main_retention(int argc, char **argv);
static int main_agent(int argc, char **argv);
static bool main_resolve(int argc, char **argv, cfg_t *cfg, bool kafka, bool admin);
static const char *main_opt(int argc, char **argv, const char *name);
static bool main_has(int argc, char **argv, const char *name);
static bool main_load(int argc, char **argv, cfg_t *cfg);

static const main_verb_t main_verbs[] = {
	{"run", main_run, "run -c FILE", "run the whole system in the foreground (logs on stderr)"},
	{"token", main_token, "token -c FILE --agent A --company C [--role agent|supervisor] [--ttl 8h]",
	 "print a signed agent token (last line)"},
	{"status", main_status, "status -c FILE [--json] [--interval SECONDS]",
	 "each process (up, restarts, rates over the interval), consumer lag, pending dead letters, limits used"},
	{"migrate", main_migrate, "migrate -c FILE [--wait SECONDS]", "apply schema migrations and seed companies/agents"},
	{"check-config", main_check_config, "check-config -c FILE | check-config --docs",
	 "validate a config file (every error as file:line: what), or print every key"},
	{"topics", main_topics, "topics -c FILE [--json] [--create]",
	 "list atende's topics (partitions, offsets, the workers' lag); --create makes missing ones"},
	{"dlq", main_dlq, "dlq list [--all] | dlq show ID | dlq replay ID|--all  -c FILE [--json]",
	 "dead letters: list the pending ones (--all: replayed too), show one, replay to the original topic"},
	{"retention", main_retention, "retention -c FILE [--json] [--dry-run]",
	 "create weekly partitions ahead; archive (csv.gz) and drop those older than retention.keep_days"},
	{"agent", main_agent,
	 "agent add -c FILE --company C --agent A --login L --name N [--role agent|supervisor] [--domains d1,d2]\n"
	 "                   [--max-open N]   (the password on stdin)\n"
	 "       atende agent passwd -c FILE --login L|--agent A   (the new password on stdin)\n"
	 "       atende agent disable -c FILE --login L|--agent A\n"
	 "       atende agent list -c FILE [--company C] [--json]",
	 "agent accounts for the console's login: add, change a password, disable, list (with presence and load)"},
	{"psql", main_psql, "psql -c FILE [-- psql args]", "open psql on the configured database (embedded or not)"},
	{"bench", main_bench,
	 "bench -c FILE [--rate N] [--seconds S] [--connections C] [--agents A] [--warmup S] [--drain S] [--company C]\n"
	 "                    [--messy] [--customers N] [--ids FILE] [--events FILE]\n"
	 "       atende bench -c FILE --idle N [--hold S]\n"
	 "       atende bench -c FILE --fanout S [--messages M] [--rate R]",
	 "open-loop load test of a running system; one JSON line of results on stdout"},
	{"embedded-broker", main_embedded_broker, NULL, NULL},
};
#define MAIN_N_VERBS (sizeof(main_verbs) / sizeof(main_verbs[0]))

static void main_usage(FILE *f)
{
	fprintf(f, "usage: atende VERB -c FILE [options]\n\nverbs:\n");
	for (size_t i = 0; i < MAIN_N_VERBS; i++)
		if (main_verbs[i].usage)
			fprintf(f, "  %-16s %s\n", main_verbs[i].name, main_verbs[i].help);
	fprintf(f, "\n`atende VERB --help` describes a verb. The config defaults to deploy/atende.conf.\n");
}

int main(int argc, char **argv)
{
	log_init("atende");
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		main_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (size_t i = 0; i < MAIN_N_VERBS; i++) {
		if (strcmp(argv[1], main_verbs[i].name) != 0)
			continue;
		if (main_has(argc, argv, "--help")) {
			printf("usage: atende %s\n%s\n", main_verbs[i].usage ? main_verbs[i].usage : main_verbs[i].name,
			       main_verbs[i].help ? main_verbs[i].help : "");
			return 0;
		}
		return main_verbs[i].fn(argc - 1, argv + 1);
	}
	fprintf(stderr, "atende: unknown verb \"%s\" (atende --help lists them)\n", argv[1]);
	return 2;
}

static const char *main_opt(int argc, char **argv, const char *name)
{
	for (int i = 1; i < argc - 1; i++) {
		if (strcmp(argv[i], "--") == 0)
			return NULL;
		if (strcmp(argv[i], name) == 0)
			return argv[i + 1];
	}
	return NULL;
}

static bool main_has(int argc, char **argv, const char *name)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return false;
		if (strcmp(argv[i], name) == 0)
			return true;
	}
	return false;
}

static bool main_load(int argc, char **argv, cfg_t *cfg)
{
	const char *path = main_opt(argc, argv, "-c");
	char err[8192];
	if (!path)
		path = "deploy/atende.conf";
	if (!cfg_load(path, cfg, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		cfg_free(cfg);
		return false;
	}
	proc_apply_env(cfg);
	proc_apply_log(cfg);
	return true;
}

static int main_run(int argc, char **argv)
{
	cfg_t *cfg = xcalloc(1, sizeof(*cfg));
	log_init("supervisor");
	if (!main_load(argc, argv, cfg))
		return 1;
	int rc = sup_run(cfg);
	cfg_free(cfg);
	free(cfg);
	return rc;
}

static int main_token(int argc, char **argv)
{
	cfg_t cfg;
	if (!main_load(argc, argv, &cfg))
		return 1;
	const char *agent = main_opt(argc, argv, "--agent"), *company = main_opt(argc, argv, "--company");
	const char *role = main_opt(argc, argv, "--role"), *ttl_s = main_opt(argc, argv, "--ttl");
	token_claims_t claims = {0};
	long ttl = token_parse_ttl(ttl_s ? ttl_s : cfg.auth.default_ttl);
	char *end;
	int rc = 1;
	if (!agent || !company) {
		fprintf(stderr, "token: --agent and --company are required\n");
	} else if ((claims.agent = strtol(agent, &end, 10)) <= 0 || *end) {
		fprintf(stderr, "token: --agent must be a positive integer\n");
	} else if ((claims.company = strtol(company, &end, 10)) <= 0 || *end) {
		fprintf(stderr, "token: --company must be a positive integer\n");
	} else if (role && strcmp(role, "agent") != 0 && strcmp(role, "supervisor") != 0) {
		fprintf(stderr, "token: --role must be agent or supervisor\n");
	} else if (ttl <= 0) {
		fprintf(stderr, "token: --ttl \"%s\" is not a duration like 8h, 30m, 3600\n", ttl_s);
	} else {
		snprintf(claims.role, sizeof(claims.role), "%s", role ? role : "agent");
		claims.iat = (long)time(NULL);
		claims.exp = claims.iat + ttl;
		char *tok = token_sign(cfg.auth.token_secret, &claims);
		if (tok) {
			printf("%s\n", tok);
			free(tok);
			rc = 0;
		} else {
			fprintf(stderr, "token: signing failed\n");
		}
	}
	cfg_free(&cfg);
	return rc;
}

static int main_migrate(int argc, char **argv)
{
	cfg_t cfg;
	char ci[1024];
	if (!main_load(argc, argv, &cfg))
		return 1;
	if (!cfg.postgres.conninfo[0] || cfg.postgres.admin_conninfo[0]) {
		free(cfg.postgres.conninfo);
		cfg.postgres.conninfo = xstrdup(cfg.postgres.admin_conninfo[0] ? cfg.postgres.admin_conninfo
									: pgembed_conninfo(&cfg, ci, sizeof(ci)));
	}
	const char *wait = main_opt(argc, argv, "--wait");
	int rc = migrate_run(&cfg, wait ? atoi(wait) : 5);
	cfg_free(&cfg);
	return rc;
}

static int main_psql(int argc, char **argv)
{
	cfg_t cfg;
	char ci[1024];
	if (!main_load(argc, argv, &cfg))
		return 1;
	const char *conninfo = cfg.postgres.conninfo[0] ? cfg.postgres.conninfo : pgembed_conninfo(&cfg, ci, sizeof(ci));
	char **args = xcalloc((size_t)argc + 3, sizeof(char *));
	int n = 0;
	args[n++] = "psql";
	args[n++] = (char *)conninfo;
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--") == 0) {
			for (i++; i < argc; i++)
				args[n++] = argv[i];
		}
	execvp("psql", args);
	fprintf(stderr, "psql: cannot run psql: %s (install the Debian package postgresql-client)\n", strerror(errno));
	return 1;
}

static int main_check_config(int argc, char **argv)
{
	if (main_has(argc, argv, "--docs")) {
		cfg_print_docs();
		return 0;
	}
	const char *path = main_opt(argc, argv, "-c");
	cfg_t cfg;
	char err[16384];
	if (!path)
		path = "deploy/atende.conf";
	if (!cfg_load(path, &cfg, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		cfg_free(&cfg);
		return 1;
	}
	printf("%s: ok (%d channels, %d companies)\n", path, cfg.n_channels, cfg.n_companies);
	cfg_free(&cfg);
	return 0;
}

/* Asks the running supervisor (metrics.listen) and PostgreSQL; see supervisor/status.h. */
static int main_status(int argc, char **argv)
{
	cfg_t cfg;
	if (!main_load(argc, argv, &cfg))
		return 1;
	const char *interval = main_opt(argc, argv, "--interval");
	double s = interval ? atof(interval) : 1.0;
	int rc = status_run(&cfg, main_has(argc, argv, "--json"), s > 0 && s <= 60 ? s : 1.0);
	cfg_free(&cfg);
	return rc;
}

static int main_embedded_broker(int argc, char **argv)
{
	cfg_t cfg;
	log_init("broker");
	if (!main_load(argc, argv, &cfg))
		return 1;
	const char *fd = getenv("ATENDE_READY_FD");
	int rc = broker_main(&cfg, fd ? atoi(fd) : STDOUT_FILENO);
	cfg_free(&cfg);
	return rc;
}

/* Load generator against an already running system: bin/atende-bench (test/bench/), beside this
 * executable, run with the verb's arguments; exec keeps the pid, so its own CPU is reported as
 * before. Returns only when it cannot be run. */
static int main_bench(int argc, char **argv)
{
	char exe[PATH_MAX];
	(void)argc;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - sizeof("atende-bench"));
	char *slash = n > 0 ? memrchr(exe, '/', (size_t)n) : NULL;
	if (!slash) {
		fprintf(stderr, "bench: cannot find my own executable\n");
		return 1;
	}
	strcpy(slash + 1, "atende-bench");
	argv[0] = exe;
	execv(exe, argv);
	fprintf(stderr, "bench: cannot run %s: %s\n", exe, strerror(errno));
	return 1;
}

static int main_topics(int argc, char **argv)
{
	cfg_t cfg;
	char bootstrap[64];
	if (!main_load(argc, argv, &cfg))
		return 1;
	if (!cfg.kafka.brokers[0]) {
		/* the embedded broker answers on its fixed loopback port */
		snprintf(bootstrap, sizeof(bootstrap), "127.0.0.1:%d", cfg.kafka.embedded_port);
		free(cfg.kafka.brokers);
		cfg.kafka.brokers = xstrdup(bootstrap);
	}
	int rc = topics_run(&cfg, main_has(argc, argv, "--create"), main_has(argc, argv, "--json"));
	cfg_free(&cfg);
	return rc;
}

/* Points cfg at the embedded PostgreSQL (and broker, when kafka) when none is configured,
 * as the supervisor's children see them; admin: the direct connection when one is set
 * (retention needs a session, which PgBouncer in transaction mode does not keep). */
static bool main_resolve(int argc, char **argv, cfg_t *cfg, bool kafka, bool admin)
{
	char ci[1024], bootstrap[64];
	if (!main_load(argc, argv, cfg))
		return false;
	if (!cfg->postgres.conninfo[0] || (admin && cfg->postgres.admin_conninfo[0])) {
		free(cfg->postgres.conninfo);
		cfg->postgres.conninfo = xstrdup(admin && cfg->postgres.admin_conninfo[0] ? cfg->postgres.admin_conninfo
											 : pgembed_conninfo(cfg, ci, sizeof(ci)));
	}
	if (kafka && !cfg->kafka.brokers[0]) {
		snprintf(bootstrap, sizeof(bootstrap), "127.0.0.1:%d", cfg->kafka.embedded_port);
		free(cfg->kafka.brokers);
		cfg->kafka.brokers = xstrdup(bootstrap);
	}
	return true;
}

static int main_dlq(int argc, char **argv)
{
	const char *pos[2] = {NULL, NULL};
	int npos = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0)
			i++;
		else if (argv[i][0] != '-' && npos < 2)
			pos[npos++] = argv[i];
	}
	bool json = main_has(argc, argv, "--json"), all = main_has(argc, argv, "--all");
	long long id = pos[1] ? strtoll(pos[1], NULL, 10) : 0;
	const char *sub = pos[0] ? pos[0] : "";
	bool list = strcmp(sub, "list") == 0, show = strcmp(sub, "show") == 0, replay = strcmp(sub, "replay") == 0;
	if (!list && !show && !replay) {
		fprintf(stderr, "dlq: expected list, show ID or replay ID|--all (atende dlq --help)\n");
		return 2;
	}
	if ((show || (replay && !all)) && id <= 0) {
		fprintf(stderr, "dlq: %s needs a dead letter id%s\n", sub, replay ? " (or --all)" : "");
		return 2;
	}
	cfg_t cfg;
	if (!main_resolve(argc, argv, &cfg, replay, false))
		return 1;
	int rc = list ? dlq_list(&cfg, all, json) : show ? dlq_show(&cfg, id, json) : dlq_replay(&cfg, all ? 0 : id, json);
	cfg_free(&cfg);
	return rc;
}

/* --log (used by the supervisor's schedule): report as log lines, not a table. */
static int main_retention(int argc, char **argv)
{
	cfg_t cfg;
	retention_opts_t opts = {.dry_run = main_has(argc, argv, "--dry-run"), .json = main_has(argc, argv, "--json"),
				 .log = main_has(argc, argv, "--log")};
	if (opts.log)
		log_init("retention");
	if (!main_resolve(argc, argv, &cfg, false, true))
		return 1;
	int rc = retention_run(&cfg, &opts);
	cfg_free(&cfg);
	return rc;
}

/* Argument errors exit 2 before the config is read, like dlq's. */
static int main_agent(int argc, char **argv)
{
	agents_opts_t opts;
	char err[256];
	if (!agents_parse_args(argc, argv, &opts, err, sizeof(err))) {
		fprintf(stderr, "agent: %s\n", err);
		return 2;
	}
	cfg_t cfg;
	if (!main_resolve(argc, argv, &cfg, false, false))
		return 1;
	int rc = agents_run(&cfg, &opts, stdin);
	cfg_free(&cfg);
	return rc;
}
