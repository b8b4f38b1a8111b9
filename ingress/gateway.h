/*
 * gateway: turns a webhook body from Evolution API, WhatsApp Cloud API or atende's
 * neutral API into canonical events (one JSON document per message or status, with
 * stable field names) plus routing data. Pure: no I/O, so every rule is unit-tested.
 */
#ifndef ATENDE_GATEWAY_H
#define ATENDE_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* One canonical event ready to produce. */
typedef struct {
	char *value;            /* canonical JSON (malloc'd) */
	size_t value_len;
	char key[320];          /* Kafka key: the conversation ("evolution:demo:5511999990001") */
	char channel[160];      /* "evolution:demo" */
	char provider_id[256];  /* the gateway's message id */
	char dedup_key[600];    /* channel + type + id: what makes a redelivery a duplicate */
	char type[8];           /* "message" | "status" */
	long company;
	int domain;             /* index into cfg_domains */
} gw_event_t;

typedef struct {
	gw_event_t *events;
	int n, cap;
	bool ignored;           /* a well-formed event type atende does not use */
	int status;             /* 0 = ok, else the HTTP status to answer */
	char error[300];        /* names the problem when status != 0 */
} gw_result_t;

/* apikey_header may be NULL (then the envelope's "apikey" is used). received_at: ISO time. */
void gw_parse_evolution(const cfg_t *cfg, const char *apikey_header, const char *body, size_t len,
			const char *received_at, gw_result_t *out);

/* signature: the X-Hub-Signature-256 header ("sha256=<hex>"), may be NULL. */
void gw_parse_cloud(const cfg_t *cfg, const char *signature, const char *body, size_t len, const char *received_at,
		    gw_result_t *out);

/* authorization: the Authorization header ("Bearer <key>"), may be NULL. */
void gw_parse_api(const cfg_t *cfg, const char *authorization, const char *body, size_t len, const char *received_at,
		  gw_result_t *out);

/* Answers the Cloud API's GET verification: returns the status (200/403/400) and points
 * *challenge at the text to echo (inside query_challenge) on 200. */
int gw_cloud_verify(const cfg_t *cfg, const char *mode, const char *token, const char *query_challenge);

/* A gateway's delivery status as atende names it (sent | delivered | read | failed |
 * pending): Evolution SERVER_ACK, DELIVERY_ACK, READ, PLAYED, ERROR, PENDING in any case,
 * and the Cloud API's own names. NULL for a name it does not know. A static string. */
const char *gw_status_name(const char *raw);

void gw_result_free(gw_result_t *r);

/* Constant-time string equality (length leaks, content does not). */
bool gw_secure_equal(const char *a, const char *b);

#endif
