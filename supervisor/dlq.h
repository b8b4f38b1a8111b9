/*
 * dlq: `atende dlq list|show|replay`. The dead letters are rows of the dlq table (the
 * workers write them, and the same message to the atende.dlq topic); replaying one
 * re-produces its payload with its key to the topic it came from (idempotent producer,
 * delivery awaited) and only then stamps replayed_at. Works with the system running:
 * the workers store a replayed message like any other, exactly once. Blocking: CLI verbs.
 */
#ifndef ATENDE_DLQ_H
#define ATENDE_DLQ_H

#include <stdbool.h>

#include "config.h"

/* Pending dead letters (replayed_at is null), or all of them; returns the exit status. */
int dlq_list(const cfg_t *cfg, bool all, bool json);

/* One dead letter, payload included; exit status 1 when there is no such id. */
int dlq_show(const cfg_t *cfg, long long id, bool json);

/* Replays one dead letter (id > 0, even one replayed before) or every pending one
 * (id == 0). cfg->kafka.brokers must be a reachable bootstrap. Returns 0 when every
 * replay was delivered and stamped. */
int dlq_replay(const cfg_t *cfg, long long id, bool json);

#endif
