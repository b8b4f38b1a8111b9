/*
 * topics: `atende topics`. Lists atende's topics through the Admin API (partitions,
 * offsets, the workers' committed offsets and lag) and, with --create, creates the
 * missing ones on a real broker (the supervisor runs that at start). Blocking: a CLI verb.
 */
#ifndef ATENDE_TOPICS_H
#define ATENDE_TOPICS_H

#include <stdbool.h>

#include "config.h"

/* Returns the exit status; json selects machine-readable output. */
int topics_run(const cfg_t *cfg, bool create, bool json);

#endif
