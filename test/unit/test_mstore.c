/*
 * test_mstore: the media store (content addressing, one file for the same bytes, names only
 * from hashes), strict base64, the type decided from the bytes, what the bytes tell of their
 * size and length, and the notifier's Range parsing.
 */
#include "api.h"
#include "mstore.h"
#include "unit.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static unsigned char *fixture(const char *name, size_t *len)
{
	char path[256];
	snprintf(path, sizeof(path), "test/fixtures/media/%s", name);
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	unsigned char *buf = malloc(1 << 16);
	*len = fread(buf, 1, 1 << 16, f);
	fclose(f);
	return buf;
}

TEST(put_is_content_addressed_and_once)
{
	char root[] = "/tmp/atende-mstore-XXXXXX", err[256], sha[MSTORE_SHA_HEX], sha2[MSTORE_SHA_HEX];
	CHECK(mkdtemp(root) != NULL);
	mstore_t *s = mstore_new(root, err, sizeof(err));
	CHECK(s != NULL);
	CHECK(mstore_put(s, "abc", 3, sha, err, sizeof(err)));
	CHECK_STR(sha, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	CHECK(mstore_put(s, "abc", 3, sha2, err, sizeof(err)));
	CHECK_STR(sha, sha2);
	int64_t size = 0;
	int fd = mstore_open(s, sha, &size);
	CHECK(fd >= 0 && size == 3);
	close(fd);
	CHECK(mstore_open(s, "../../etc/passwd", &size) < 0);
	CHECK(mstore_open(s, "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", &size) < 0);
	CHECK(!mstore_sha_valid("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a"));
	CHECK(mstore_remove(s, sha) && mstore_open(s, sha, &size) < 0);
	mstore_free(s);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	CHECK(system(cmd) == 0);
}

TEST(base64_is_strict)
{
	size_t n = 0;
	unsigned char *b = mstore_b64_decode("aGVsbG8=", 8, &n);
	CHECK(b && n == 5 && memcmp(b, "hello", 5) == 0);
	free(b);
	b = mstore_b64_decode("aGVsbG8", 7, &n);
	CHECK(b && n == 5);
	free(b);
	CHECK(mstore_b64_decode("aGVs bG8=", 9, &n) == NULL);
	CHECK(mstore_b64_decode("a", 1, &n) == NULL);
	CHECK(mstore_b64_decode("!!!!", 4, &n) == NULL);
	char *e = mstore_b64_encode("hello", 5);
	CHECK_STR(e, "aGVsbG8=");
	free(e);
}

TEST(type_and_size_from_the_bytes)
{
	size_t len = 0;
	int w, h, d;
	unsigned char *png = fixture("image.png", &len);
	CHECK(png != NULL);
	CHECK_STR(mstore_sniff(png, len), "image/png");
	mstore_probe(png, len, "image/png", &w, &h, &d);
	CHECK(w == 8 && h == 6 && d == 0);
	free(png);
	unsigned char *ogg = fixture("voice.ogg", &len);
	CHECK(ogg != NULL);
	CHECK_STR(mstore_sniff(ogg, len), "audio/ogg");
	mstore_probe(ogg, len, "audio/ogg", &w, &h, &d);
	CHECK(d == 2000);
	free(ogg);
	unsigned char *pdf = fixture("doc.pdf", &len);
	CHECK_STR(mstore_sniff(pdf, len), "application/pdf");
	free(pdf);
	static const unsigned char jpeg[] = {0xff, 0xd8, 0xff, 0xe0, 0x00, 0x04, 0x00, 0x00, 0xff, 0xc0, 0x00, 0x11,
					     0x08, 0x01, 0xe0, 0x02, 0x80, 0x03, 0, 0, 0, 0, 0, 0, 0, 0};
	CHECK_STR(mstore_sniff(jpeg, sizeof(jpeg)), "image/jpeg");
	mstore_probe(jpeg, sizeof(jpeg), "image/jpeg", &w, &h, &d);
	CHECK(w == 640 && h == 480);
	CHECK_STR(mstore_sniff("<html><script>", 14), "application/octet-stream");
	CHECK_STR(mstore_sniff("", 0), "application/octet-stream");
	CHECK_STR(mstore_kind_of("audio/ogg"), "audio");
	CHECK_STR(mstore_kind_of("application/octet-stream"), "document");
}

TEST(range)
{
	long long a, b;
	CHECK(api_parse_range("bytes=0-99", 1000, &a, &b) == 1 && a == 0 && b == 99);
	CHECK(api_parse_range("bytes=900-", 1000, &a, &b) == 1 && a == 900 && b == 999);
	CHECK(api_parse_range("bytes=900-5000", 1000, &a, &b) == 1 && b == 999);
	CHECK(api_parse_range("bytes=-100", 1000, &a, &b) == 1 && a == 900 && b == 999);
	CHECK(api_parse_range("bytes=-5000", 1000, &a, &b) == 1 && a == 0);
	CHECK(api_parse_range("bytes=1000-", 1000, &a, &b) == 0);
	CHECK(api_parse_range("bytes=5-1", 1000, &a, &b) == -1);
	CHECK(api_parse_range("bytes=0-1,5-6", 1000, &a, &b) == -1);
	CHECK(api_parse_range("items=0-1", 1000, &a, &b) == -1);
	CHECK(api_parse_range("bytes=x-", 1000, &a, &b) == -1);
}

int main(void)
{
	RUN(put_is_content_addressed_and_once);
	RUN(base64_is_strict);
	RUN(type_and_size_from_the_bytes);
	RUN(range);
	return unit_done();
}
