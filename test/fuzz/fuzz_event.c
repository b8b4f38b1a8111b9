/*
 * fuzz_event: the atende.events parser (evt_parse) on any Kafka message. What it accepts is
 * written back (evt_write, evt_data_json: what a worker keeps and a notifier forwards), and
 * that text must parse again to the same type and route; a refused message says why.
 */
#include "event.h"
#include "fuzz.h"

#include <assert.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	evt_t e;
	char why[256];
	why[0] = 0;
	if (!evt_parse(&e, (const char *)data, size, why, sizeof(why))) {
		assert(why[0]);
		return 0;
	}
	assert(e.type_name && e.root);
	size_t len = 0;
	char *again = evt_write(&e, &len);
	assert(again && strlen(again) == len);
	evt_t e2;
	if (!evt_parse(&e2, again, len, why, sizeof(why))) {
		fprintf(stderr, "written back but refused (%s): %s\n", why, again);
		abort();
	}
	assert(e2.type == e.type && !strcmp(e2.type_name, e.type_name));
	assert(e2.route.company == e.route.company && e2.route.conversation == e.route.conversation &&
	       e2.route.agent == e.route.agent);
	char *d = evt_data_json(&e);
	assert(d);
	free(d);
	evt_free(&e2);
	free(again);
	evt_free(&e);
	return 0;
}
