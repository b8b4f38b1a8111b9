/*
 * fuzz_gw_evolution: the Evolution API webhook parser (gw_parse_evolution) on any body, with
 * the right apikey header, a wrong one, or none (then the envelope's apikey decides).
 */
#include "fuzz.h"
#include "gw_check.h"

static cfg_t C;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	fuzz_load_config(&C);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	static const char *const keys[] = {"demo-evolution-key", NULL, "wrong", ""};
	const char *key = keys[data[0] & 3];
	gw_result_t r;
	gw_parse_evolution(&C, key, (const char *)data + 1, size - 1, "2024-05-01T12:00:00.000Z", &r);
	gw_check(&C, &r);
	return 0;
}
