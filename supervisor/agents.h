/*
 * agents: `atende agent add|passwd|disable|list`, the accounts agents log in with (the
 * agents table, see schema/006_agents_day.sql). Passwords come from stdin (a terminal is
 * asked twice, without echo) and are stored as yescrypt hashes (common/passwd.h); no
 * password ever appears on a command line. Blocking: CLI verbs on a synchronous
 * PostgreSQL connection, usable with the system running.
 */
#ifndef ATENDE_AGENTS_H
#define ATENDE_AGENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config.h"

typedef enum { AGENTS_ADD, AGENTS_PASSWD, AGENTS_DISABLE, AGENTS_LIST } agents_cmd_t;

/* A parsed command line; strings point into argv. */
typedef struct {
	agents_cmd_t cmd;
	long company;        /* --company: add (required), list (filter; 0 = every company) */
	long agent;          /* --agent: add (required); passwd/disable: instead of --login */
	const char *login;   /* --login: add (required); passwd/disable: instead of --agent */
	const char *name;    /* --name: add (required) */
	const char *role;    /* --role: agent (default) | supervisor */
	char domains[128];   /* --domains as a PostgreSQL array literal, "{}" for every domain */
	int max_open;        /* --max-open: 1..10000, default 10 */
	bool json;           /* list --json */
} agents_opts_t;

/* Parses argv (argv[0] "agent", argv[1] the subcommand; -c FILE is skipped) into *o.
 * false with a one-line reason in err: unknown subcommand or option, a missing or
 * malformed value, an unknown domain (named), a login outside [A-Za-z0-9._@-]{1,64}. */
__attribute__((warn_unused_result)) bool agents_parse_args(int argc, char **argv, agents_opts_t *o, char *err,
							   size_t errlen);

/* Runs the command on cfg->postgres.conninfo, reading a password from in for add and
 * passwd. Prints the outcome on stdout and any failure as one line on stderr ("agent:
 * login ana is taken", "agent: the password is shorter than 8 characters"). Returns the
 * exit status: 0 on success (disabling a disabled agent included), 1 otherwise. */
int agents_run(const cfg_t *cfg, const agents_opts_t *o, FILE *in);

#endif
