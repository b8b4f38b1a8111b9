/*
 * ops: what consoles ask, one JSON op per WebSocket frame or per POST /op: subscribe and
 * unsubscribe (with tenancy and exact resume), typing (to atende.events), reply and transfer
 * (to atende.outbound, acked once the broker has them). Every op gets an ack or an error frame,
 * and an agent's ops are rate limited, over all its connections and transports together.
 */
#ifndef ATENDE_OPS_H
#define ATENDE_OPS_H

#include "conn.h"
#include "token.h"

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

/* One op from c (data: the frame or body as received). */
void ops_dispatch(conn_t *c, const char *data, size_t len);

/* The company a channel belongs to, when claims may subscribe to it; -1 with why otherwise.
 * Tenancy: nobody sees another company's anything. */
long ops_channel_company(const token_claims_t *claims, const char *channel, char *why, size_t whylen);

/* The producer's delivery report for every message the notifier produces: a failure is logged
 * and counted; a reply or transfer is acked (or refused) now. */
void ops_on_delivery(void *opaque, rd_kafka_resp_err_t err, int32_t partition, int64_t offset, void *arg);

#endif
