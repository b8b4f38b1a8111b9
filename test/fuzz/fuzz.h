/*
 * fuzz: what the libFuzzer targets in test/fuzz/ share: a quiet log, a config with one
 * channel of each kind (the webhook parsers need channels to route to), and a helper that
 * splits an input into pieces so parsers fed incrementally see every cut.
 */
#ifndef ATENDE_FUZZ_H
#define ATENDE_FUZZ_H

#include "config.h"
#include "log.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The config of the gateway and ops targets: channels of every type, two companies. */
#define FUZZ_CONFIG                                                                                  \
	"auth: { token_secret = \"fuzz-token-secret-0123456789\"; };\n"                                  \
	"companies = ( { id = 1; name = \"One\"; agents = [1, 5]; },\n"                                  \
	"              { id = 2; name = \"Two\"; agents = [6, 9]; } );\n"                                \
	"channels = (\n"                                                                                 \
	"  { type = \"evolution\"; instance = \"demo\"; key = \"demo-evolution-key\"; company = 1;\n"    \
	"    domain = \"suporte\"; url = \"http://127.0.0.1:8090\"; },\n"                                \
	"  { type = \"cloud\"; phone_number_id = \"106540352242922\"; app_secret = \"demo-app-secret\";\n" \
	"    verify_token = \"demo-verify-token\"; access_token = \"\"; company = 1; domain = \"suporte\"; },\n" \
	"  { type = \"api\"; name = \"site\"; key = \"demo-api-key\"; company = 2; domain = \"comercial\"; }\n" \
	");\n"

/* Writes text to a fresh temporary file; returns its path (static buffer) or NULL. */
static inline const char *fuzz_write_tmp(const void *text, size_t len)
{
	static char path[64];
	snprintf(path, sizeof(path), "/tmp/atende-fuzz-XXXXXX");
	int fd = mkstemp(path);
	if (fd < 0)
		return NULL;
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(fd, (const char *)text + off, len - off);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(fd);
	return off == len ? path : NULL;
}

/* Loads FUZZ_CONFIG into c, or aborts: a target without its config would fuzz nothing. */
static inline void fuzz_load_config(cfg_t *c)
{
	char err[2048];
	const char *path = fuzz_write_tmp(FUZZ_CONFIG, strlen(FUZZ_CONFIG));
	if (!path || !cfg_load(path, c, err, sizeof(err))) {
		fprintf(stderr, "fuzz: the built-in config does not load:\n%s\n", path ? err : "no temp file");
		abort();
	}
	unlink(path);
}

/* Quiet: errors only (input that is refused is logged at warn or below). */
static inline void fuzz_quiet(void)
{
	log_init("fuzz");
	log_set_level(LOG_LVL_ERROR);
}

#endif
