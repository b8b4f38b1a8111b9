/*
 * gw_check: what every webhook parser's result must satisfy whatever the body: an error
 * has a status and a message, an accepted body's events are valid JSON documents routed to
 * a configured channel (the worker parses them; invalid JSON would end in the DLQ).
 */
#ifndef ATENDE_GW_CHECK_H
#define ATENDE_GW_CHECK_H

#include "gateway.h"

#include <assert.h>
#include <cJSON.h>

static inline void gw_check(const cfg_t *cfg, gw_result_t *r)
{
	if (r->status) {
		assert(r->status >= 400 && r->status < 600);
		assert(r->error[0]);
		assert(memchr(r->error, 0, sizeof(r->error)));
	}
	for (int i = 0; i < r->n && r->status == 0; i++) {
		gw_event_t *e = &r->events[i];
		assert(e->value && strlen(e->value) == e->value_len);
		cJSON *j = cJSON_ParseWithLength(e->value, e->value_len);
		assert(j && "gateway produced invalid JSON");
		cJSON_Delete(j);
		assert(!strcmp(e->type, "message") || !strcmp(e->type, "status"));
		assert(e->domain >= 0 && e->domain < CFG_MAX_DOMAINS);
		assert(cfg_company_find(cfg, e->company));
	}
	gw_result_free(r);
}

#endif
