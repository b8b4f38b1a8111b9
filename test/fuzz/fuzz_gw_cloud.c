/*
 * fuzz_gw_cloud: the WhatsApp Cloud API webhook parser (gw_parse_cloud). The fuzzer cannot
 * forge HMACs, so most inputs are signed here with the channel's app secret, to get past
 * the signature into the body; the others carry a bad, malformed or missing signature. The
 * GET verification is fed the same bytes as its token and challenge.
 */
#include "fuzz.h"
#include "gw_check.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

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
	int mode = data[0] & 7;
	const char *body = (const char *)data + 1;
	size_t len = size - 1;
	char sig[7 + 64 + 1] = "sha256=";
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	HMAC(EVP_sha256(), "demo-app-secret", 15, (const unsigned char *)body, len, mac, &maclen);
	for (unsigned i = 0; i < maclen; i++)
		snprintf(sig + 7 + 2 * i, 3, "%02x", mac[i]);
	const char *signature = sig;
	if (mode == 5)
		sig[10] = sig[10] == '0' ? '1' : '0'; /* wrong */
	else if (mode == 6)
		signature = "sha256=zz";
	else if (mode == 7)
		signature = NULL;
	gw_result_t r;
	gw_parse_cloud(&C, signature, body, len, "2024-05-01T12:00:00.000Z", &r);
	gw_check(&C, &r);

	char *text = strndup(body, len < 200 ? len : 200);
	int st = gw_cloud_verify(&C, mode & 1 ? "subscribe" : text, mode & 2 ? "demo-verify-token" : text, text);
	if (!(st == 200 || st == 403 || st == 400))
		abort();
	free(text);
	return 0;
}
