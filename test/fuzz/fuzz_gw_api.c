/*
 * fuzz_gw_api: the neutral API parser behind POST /v1/messages (gw_parse_api) on any body,
 * with the right bearer key, a wrong one, a malformed Authorization header or none.
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
	static const char *const auths[] = {"Bearer demo-api-key", NULL, "Bearer ", "demo-api-key"};
	gw_result_t r;
	gw_parse_api(&C, auths[data[0] & 3], (const char *)data + 1, size - 1, "2024-05-01T12:00:00.000Z", &r);
	gw_check(&C, &r);
	return 0;
}
