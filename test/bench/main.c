/*
 * atende-bench: the load generator behind `atende bench`, which execs it with its own arguments.
 * A program of its own so the supervisor carries none of it: it only talks to a running system
 * over its public ports and reads /proc, as any outside client would.
 */
#include "bench.h"
#include "config.h"
#include "log.h"
#include "proc.h"

#include <stdio.h>
#include <string.h>

static const char *main_config_path(int argc, char **argv);

int main(int argc, char **argv)
{
	bench_opts_t opts;
	cfg_t cfg;
	char err[8192];
	log_init("bench");
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			/* the options are documented once, by the verb that runs this */
			printf("usage: atende-bench -c FILE [options]: the load generator of `atende bench`; "
			       "see atende bench --help\n");
			return 0;
		}
	if (!bench_parse_args(argc, argv, &opts, err, sizeof(err))) {
		fprintf(stderr, "bench: %s\n", err);
		return 2;
	}
	if (!cfg_load(main_config_path(argc, argv), &cfg, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		cfg_free(&cfg);
		return 1;
	}
	proc_apply_env(&cfg);
	proc_apply_log(&cfg);
	int rc = bench_run(&cfg, &opts);
	cfg_free(&cfg);
	return rc;
}

/* -c FILE, as every atende verb takes it; deploy/atende.conf when absent. */
static const char *main_config_path(int argc, char **argv)
{
	for (int i = 1; i < argc - 1; i++)
		if (strcmp(argv[i], "-c") == 0)
			return argv[i + 1];
	return "deploy/atende.conf";
}
