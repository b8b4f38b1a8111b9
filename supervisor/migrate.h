/*
 * migrate: applies the numbered SQL files of schema/ in order, each once, recorded in
 * schema_migrations, under an advisory lock (several machines may start at once);
 * then seeds companies and agents from the configuration. Blocking: a CLI verb and a
 * start-up step the supervisor runs in a child process.
 */
#ifndef ATENDE_MIGRATE_H
#define ATENDE_MIGRATE_H

#include "config.h"

/* Returns 0 on success; prints the reason and returns 1 otherwise. wait_s: how long to
 * wait for the server to accept connections (it may still be starting). */
int migrate_run(const cfg_t *cfg, int wait_s);

#endif
