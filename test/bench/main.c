/*
 * atende-bench: the load generator behind `atende bench`, which execs it with its own arguments.
 * A program of its own so the supervisor carries none of it: it only talks to a running system
 * over its public ports and reads /proc, as any outside client would. One run per invocation:
 * open-loop webhooks (load), --fanout (load with fanout's counters) or --idle (idle).
 */
#include "config.h"
#include "idle.h"
#include "load.h"
#include "log.h"
#include "opts.h"
#include "proc.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static const char *main_config_path(int argc, char **argv);

int main(int argc, char **argv)
{
	opts_t opts;
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
	if (!opts_parse(argc, argv, &opts, err, sizeof(err))) {
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
	/* A socket the system closes must not kill the run: it is counted where it is written. */
	signal(SIGPIPE, SIG_IGN);
	/* Room for every socket asked for: above the hard limit when allowed (root). */
	long want = opts_fds_wanted(&opts), fd_limit = proc_raise_nofile(want);
	if (fd_limit >= 0 && fd_limit < want)
		fprintf(stderr, "bench: open files are limited to %ld (RLIMIT_NOFILE hard limit): the %ld sockets asked for "
				"cannot all be opened; raise it (ulimit -Hn, as root)\n",
			fd_limit, want - OPTS_SPARE_FDS);
	int rc = opts.idle ? idle_run(&cfg, &opts, fd_limit) : load_run(&cfg, &opts);
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
