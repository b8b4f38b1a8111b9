/*
 * sup: `atende run`. Starts the embedded PostgreSQL and broker when none are configured,
 * applies migrations, then forks and execs one ingress, workers.count workers and one
 * notifier; restarts crashed children with exponential backoff; drains in order on
 * SIGTERM/SIGINT (a second signal escalates); reloads on SIGHUP.
 */
#ifndef ATENDE_SUP_H
#define ATENDE_SUP_H

#include "config.h"

/* Runs until shutdown. cfg is owned by sup from here on. Returns the exit status. */
int sup_run(cfg_t *cfg);

#endif
