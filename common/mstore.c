/*
 * mstore: content-addressed media files on a local folder, and the pure helpers that decide
 * what the bytes are (see mstore.h). Paths are built only from hex digests we computed.
 */
#include "mstore.h"
#include "xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct mstore {
	char *root; /* absolute or relative to the process's cwd; never from input */
};

static bool mstore_mkdirs(const char *path);
static void mstore_path(const mstore_t *s, const char *sha, char *buf, size_t len);
static bool mstore_write_all(int fd, const void *data, size_t len);
static uint32_t mstore_be32(const unsigned char *p);
static uint16_t mstore_be16(const unsigned char *p);
static bool mstore_has(const unsigned char *p, size_t len, size_t off, const char *magic, size_t mlen);

mstore_t *mstore_new(const char *root, char *err, size_t errlen)
{
	if (!root || !*root) {
		snprintf(err, errlen, "media store: empty root");
		return NULL;
	}
	if (!mstore_mkdirs(root)) {
		snprintf(err, errlen, "media store: cannot create %s: %s", root, strerror(errno));
		return NULL;
	}
	mstore_t *s = xcalloc(1, sizeof(*s));
	s->root = xstrdup(root);
	return s;
}

bool mstore_put(mstore_t *s, const void *data, size_t len, char sha[MSTORE_SHA_HEX], char *err, size_t errlen)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char path[4096], dir[4096], tmp[4200];
	struct stat st;
	if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
		snprintf(err, errlen, "sha256 failed");
		return false;
	}
	for (unsigned i = 0; i < 32; i++)
		snprintf(sha + 2 * i, 3, "%02x", md[i]);
	mstore_path(s, sha, path, sizeof(path));
	if (stat(path, &st) == 0 && (size_t)st.st_size == len) {
		/* the same bytes are already there: touched, so that retention's sweep (which spares
		 * files changed within a day) does not take them from the row about to name them */
		utimensat(AT_FDCWD, path, NULL, 0);
		return true;
	}
	snprintf(dir, sizeof(dir), "%s/%.2s", s->root, sha);
	if (!mstore_mkdirs(dir)) {
		snprintf(err, errlen, "mkdir %s: %s", dir, strerror(errno));
		return false;
	}
	static unsigned seq;
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d.%u", path, (int)getpid(), seq++);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (fd < 0) {
		snprintf(err, errlen, "open %s: %s", tmp, strerror(errno));
		return false;
	}
	bool ok = mstore_write_all(fd, data, len) && fsync(fd) == 0;
	int e = errno;
	if (close(fd) != 0 && ok)
		ok = false, e = errno;
	if (ok && rename(tmp, path) != 0)
		ok = false, e = errno;
	if (!ok) {
		snprintf(err, errlen, "write %s: %s", path, strerror(e));
		unlink(tmp);
	}
	return ok;
}

int mstore_open(const mstore_t *s, const char *sha, int64_t *size)
{
	char path[4096];
	struct stat st;
	if (!mstore_sha_valid(sha))
		return -1;
	mstore_path(s, sha, path, sizeof(path));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -1;
	}
	*size = (int64_t)st.st_size;
	return fd;
}

bool mstore_remove(const mstore_t *s, const char *sha)
{
	char path[4096];
	if (!mstore_sha_valid(sha))
		return false;
	mstore_path(s, sha, path, sizeof(path));
	return unlink(path) == 0 || errno == ENOENT;
}

void mstore_each(const mstore_t *s, void (*fn)(const char *sha, long long mtime, void *arg), void *arg)
{
	DIR *top = opendir(s->root);
	struct dirent *d, *f;
	if (!top)
		return;
	while ((d = readdir(top))) {
		char sub[4096];
		if (strlen(d->d_name) != 2 || !strchr("0123456789abcdef", d->d_name[0]) || !strchr("0123456789abcdef", d->d_name[1]))
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", s->root, d->d_name);
		DIR *in = opendir(sub);
		if (!in)
			continue;
		while ((f = readdir(in))) {
			char path[8192];
			struct stat st;
			if (!mstore_sha_valid(f->d_name))
				continue;
			snprintf(path, sizeof(path), "%s/%s", sub, f->d_name);
			if (stat(path, &st) == 0)
				fn(f->d_name, (long long)st.st_mtime, arg);
		}
		closedir(in);
	}
	closedir(top);
}

bool mstore_old(const mstore_t *s, const char *sha, long long before)
{
	char path[4096];
	struct stat st;
	if (!mstore_sha_valid(sha))
		return false;
	mstore_path(s, sha, path, sizeof(path));
	return stat(path, &st) == 0 && (long long)st.st_mtime < before;
}

void mstore_free(mstore_t *s)
{
	if (!s)
		return;
	free(s->root);
	free(s);
}

bool mstore_sha_valid(const char *s)
{
	if (!s)
		return false;
	for (int i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[64] == '\0';
}

unsigned char *mstore_b64_decode(const char *in, size_t len, size_t *outlen)
{
	static signed char map[256];
	static bool ready;
	if (!ready) {
		const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
		memset(map, -1, sizeof(map));
		for (int i = 0; i < 64; i++)
			map[(unsigned char)a[i]] = (signed char)i;
		ready = true;
	}
	while (len > 0 && in[len - 1] == '=' )
		len--;
	if (len % 4 == 1)
		return NULL;
	unsigned char *out = xmalloc(len / 4 * 3 + 3), *o = out;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < len; i++) {
		int v = map[(unsigned char)in[i]];
		if (v < 0) {
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			*o++ = (unsigned char)(acc >> bits);
		}
	}
	*outlen = (size_t)(o - out);
	return out;
}

char *mstore_b64_encode(const void *data, size_t len)
{
	char *out = xmalloc(4 * ((len + 2) / 3) + 1);
	int n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	out[n < 0 ? 0 : n] = '\0';
	return out;
}

const char *mstore_sniff(const void *data, size_t len)
{
	const unsigned char *p = data;
	if (mstore_has(p, len, 0, "OggS", 4))
		return "audio/ogg";
	if (mstore_has(p, len, 0, "\x89PNG\r\n\x1a\n", 8))
		return "image/png";
	if (mstore_has(p, len, 0, "\xff\xd8\xff", 3))
		return "image/jpeg";
	if (mstore_has(p, len, 0, "GIF87a", 6) || mstore_has(p, len, 0, "GIF89a", 6))
		return "image/gif";
	if (mstore_has(p, len, 0, "RIFF", 4) && mstore_has(p, len, 8, "WEBP", 4))
		return "image/webp";
	if (mstore_has(p, len, 0, "RIFF", 4) && mstore_has(p, len, 8, "WAVE", 4))
		return "audio/wav";
	if (mstore_has(p, len, 0, "%PDF-", 5))
		return "application/pdf";
	if (mstore_has(p, len, 0, "#!AMR", 5))
		return "audio/amr";
	if (mstore_has(p, len, 0, "ID3", 3) || (len >= 2 && p[0] == 0xff && (p[1] & 0xe0) == 0xe0))
		return "audio/mpeg";
	if (mstore_has(p, len, 4, "ftyp", 4))
		return mstore_has(p, len, 8, "M4A ", 4) ? "audio/mp4" : "video/mp4";
	if (mstore_has(p, len, 0, "\x1a\x45\xdf\xa3", 4))
		return "video/webm";
	if (mstore_has(p, len, 0, "PK\x03\x04", 4))
		return "application/zip";
	return "application/octet-stream";
}

void mstore_probe(const void *data, size_t len, const char *mime, int *width, int *height, int *duration_ms)
{
	const unsigned char *p = data;
	*width = *height = *duration_ms = 0;
	if (strcmp(mime, "image/png") == 0 && len >= 24 && mstore_has(p, len, 12, "IHDR", 4)) {
		*width = (int)mstore_be32(p + 16), *height = (int)mstore_be32(p + 20);
	} else if (strcmp(mime, "image/gif") == 0 && len >= 10) {
		*width = p[6] | p[7] << 8, *height = p[8] | p[9] << 8;
	} else if (strcmp(mime, "image/webp") == 0 && len >= 30 && mstore_has(p, len, 12, "VP8X", 4)) {
		*width = 1 + (p[24] | p[25] << 8 | p[26] << 16), *height = 1 + (p[27] | p[28] << 8 | p[29] << 16);
	} else if (strcmp(mime, "image/jpeg") == 0) {
		/* walk the segments to the first start-of-frame */
		size_t i = 2;
		while (i + 9 < len && p[i] == 0xff) {
			unsigned char m = p[i + 1];
			size_t seg = mstore_be16(p + i + 2);
			if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) {
				*height = mstore_be16(p + i + 5), *width = mstore_be16(p + i + 7);
				break;
			}
			i += 2 + seg;
		}
	} else if (strcmp(mime, "audio/ogg") == 0 && len >= 27) {
		/* the last page's granule position over the rate: Opus counts at 48 kHz whatever
		 * the input rate (less its pre-skip), Vorbis at its own rate */
		long rate = 0, preskip = 0;
		if (len >= 28 + 19 && mstore_has(p, len, 28, "OpusHead", 8)) {
			rate = 48000;
			preskip = p[28 + 10] | p[28 + 11] << 8;
		} else if (len >= 28 + 16 && mstore_has(p, len, 29, "vorbis", 6)) {
			rate = (long)(p[28 + 12] | p[28 + 13] << 8 | p[28 + 14] << 16 | (uint32_t)p[28 + 15] << 24);
		}
		for (size_t i = len - 27 + 1; rate > 0 && i-- > 0;) {
			if (p[i] == 'O' && mstore_has(p, len, i, "OggS", 4)) {
				int64_t g = 0;
				for (int b = 7; b >= 0; b--)
					g = g << 8 | p[i + 6 + b];
				if (g > preskip)
					*duration_ms = (int)((g - preskip) * 1000 / rate);
				break;
			}
		}
	}
	if (*width < 0 || *width > 1000000 || *height < 0 || *height > 1000000)
		*width = *height = 0;
}

const char *mstore_kind_of(const char *mime)
{
	if (strncmp(mime, "audio/", 6) == 0)
		return "audio";
	if (strncmp(mime, "image/", 6) == 0)
		return "image";
	if (strncmp(mime, "video/", 6) == 0)
		return "video";
	return "document";
}

static bool mstore_mkdirs(const char *path)
{
	char buf[4096];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *q = buf + 1; *q; q++)
		if (*q == '/') {
			*q = '\0';
			if (mkdir(buf, 0750) != 0 && errno != EEXIST)
				return false;
			*q = '/';
		}
	return mkdir(buf, 0750) == 0 || errno == EEXIST;
}

static void mstore_path(const mstore_t *s, const char *sha, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%.2s/%s", s->root, sha, sha);
}

static bool mstore_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n, len -= (size_t)n;
	}
	return true;
}

static uint32_t mstore_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint16_t mstore_be16(const unsigned char *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static bool mstore_has(const unsigned char *p, size_t len, size_t off, const char *magic, size_t mlen)
{
	return len >= off + mlen && memcmp(p + off, magic, mlen) == 0;
}
