/*
 * gwpool: the gateway instances of one channel, as the outbound path chooses among them.
 * Smooth weighted round-robin (nginx's) over the instances that are healthy and whose
 * circuit breaker lets a call through; one breaker and one health verdict per instance.
 * Pure and clock-free like breaker.h: the caller passes the time and does the I/O.
 */
#ifndef ATENDE_GWPOOL_H
#define ATENDE_GWPOOL_H

#include "breaker.h"
#include "config.h"

#include <stdbool.h>
#include <stdint.h>

#define GWP_MAX CFG_MAX_INSTANCES

/* One instance and what is known of its health. */
typedef struct {
	char *url;              /* base URL (owned copy of the config's) */
	char *instance, *key;   /* evolution overrides, owned copies; NULL = the channel's */
	char label[80];         /* host:port for metrics and logs ("#n" appended when two share it) */
	int weight;             /* 1..100 */
	int current;            /* smooth round-robin's running weight */
	bool healthy;           /* the last health check's verdict; true until a check says otherwise */
	breaker_t breaker;      /* its own circuit breaker */
	int64_t next_check_ms;  /* when its next health check is due (the caller's clock) */
} gwp_inst_t;

/* A channel's instances; embed it, gwp_init it, gwp_free it. */
typedef struct {
	gwp_inst_t inst[GWP_MAX];
	int n;
	unsigned gen;           /* bumped by every gwp_sync that changed the list (indexes moved) */
	breaker_params_t bp;    /* every instance's breaker parameters */
} gwp_pool_t;

/* An empty pool whose instances' breakers will use bp (copied). */
void gwp_init(gwp_pool_t *p, const breaker_params_t *bp);

/* Frees the instances' strings (the pool itself is the caller's). */
void gwp_free(gwp_pool_t *p);

/* Whether the pool holds exactly these instances (url, instance name, key, weight), in order. */
bool gwp_matches(const gwp_pool_t *p, const cfg_instance_t *in, int n);

/* Makes the pool hold these instances (at most GWP_MAX are taken). An instance already
 * held (same url and instance name) keeps its breaker, health and next check; new ones
 * start closed, healthy, due for a check at once. Bumps gen. */
void gwp_sync(gwp_pool_t *p, const cfg_instance_t *in, int n);

/* The instance for the next call, or -1 when no breaker lets one through. Among the
 * instances whose breaker allows a call, smooth weighted round-robin picks from the first
 * non-empty tier of: healthy and not in exclude (a bit per index: those this request
 * already tried), healthy, not in exclude, any. *probe says whether the call is its
 * breaker's half-open probe: pass it back to gwp_record. */
int gwp_pick(gwp_pool_t *p, int64_t now_ms, unsigned exclude, bool *probe) __attribute__((warn_unused_result));

/* Records the outcome of a call gwp_pick allowed to instance i (see breaker_record). */
void gwp_record(gwp_pool_t *p, int i, int64_t now_ms, breaker_outcome_t outcome, bool probe);

/* Records a health check's verdict of instance i. A passing check of an instance whose
 * breaker is open half-opens it: the next call there is the probe. */
void gwp_health(gwp_pool_t *p, int i, bool healthy);

/* Index of the instance with this url and instance name (NULL = the channel's), or -1. */
int gwp_find(const gwp_pool_t *p, const char *url, const char *instance);

#endif
