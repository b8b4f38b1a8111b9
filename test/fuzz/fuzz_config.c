/*
 * fuzz_config: the config loader (cfg_load, libconfig underneath plus our table, lists and
 * validation) on any file. A refused file must say why as "file:line: what"; a loaded one must
 * have every pool and domain resolved, be freed cleanly, and survive a reload into it.
 */
#include "fuzz.h"

#include <assert.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *path = fuzz_write_tmp(data, size);
	if (!path)
		return 0;
	cfg_t c;
	char err[4096];
	err[0] = 0;
	if (cfg_load(path, &c, err, sizeof(err))) {
		assert(c.n_pools > 0);
		for (int d = 0; d < CFG_MAX_DOMAINS; d++)
			assert(cfg_pool_of_domain(&c, d));
		char buf[256];
		(void)cfg_topic(&c, "events", buf, sizeof(buf));
		(void)cfg_data_path(&c, "var/run", buf, sizeof(buf));
		cfg_t scratch;
		char err2[4096];
		if (cfg_load(path, &scratch, err2, sizeof(err2))) {
			cfg_apply_reload(&c, &scratch);
			cfg_free(&scratch);
		}
		cfg_free(&c);
	} else {
		assert(err[0] && "refused without a reason");
		assert(strchr(err, ':')); /* file:line: what (an @include names its own file) */
		cfg_free(&c);
	}
	unlink(path);
	return 0;
}
