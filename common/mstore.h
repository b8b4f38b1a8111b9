/*
 * mstore: where media files live. Content-addressed: a file is named by the SHA-256 of its
 * bytes (<root>/<first two hex>/<64 hex>), so the same bytes are stored once whoever sends
 * them, and no name from input ever reaches the filesystem. The local folder is the only
 * backend today; the interface (put by bytes, read by hash, remove by hash) is what an
 * S3-compatible store would implement. Also the pure helpers media needs: strict base64,
 * the type decided from the bytes (magic numbers), and what the bytes say of their size.
 */
#ifndef ATENDE_MSTORE_H
#define ATENDE_MSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MSTORE_SHA_HEX 65 /* 64 hex digits and the NUL */

typedef struct mstore mstore_t;

/* A store rooted at root (created, with its parents, mode 0750). NULL + err on failure. */
mstore_t *mstore_new(const char *root, char *err, size_t errlen);

/* Stores len bytes; sha receives their SHA-256 in hex. Already there: nothing written (same
 * bytes, same name). Written to a temporary file, fsynced and renamed, so a reader never sees
 * half a file. Blocking local I/O: callers keep files small (media.max_*_bytes). */
bool mstore_put(mstore_t *s, const void *data, size_t len, char sha[MSTORE_SHA_HEX], char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The file of sha opened read-only (O_CLOEXEC), its size in *size; -1 when sha is not 64
 * lowercase hex digits or no such file. The caller closes it. */
int mstore_open(const mstore_t *s, const char *sha, int64_t *size);

/* Removes the file of sha; true when it is gone (also when it was not there). */
bool mstore_remove(const mstore_t *s, const char *sha);

/* Calls fn for each stored file (its hash and modification time). For sweeps; blocking. */
void mstore_each(const mstore_t *s, void (*fn)(const char *sha, long long mtime, void *arg), void *arg);

/* True when the file of sha exists and was last written (or put again) before the Unix time
 * before. */
bool mstore_old(const mstore_t *s, const char *sha, long long before);

void mstore_free(mstore_t *s);

/* True when s is 64 lowercase hex digits. */
bool mstore_sha_valid(const char *s);

/* Strict base64 (standard alphabet, '=' padding optional; no other characters). Returns the
 * decoded bytes (malloc'd, *outlen set) or NULL when the text is not base64. */
unsigned char *mstore_b64_decode(const char *in, size_t len, size_t *outlen);

/* Base64 of len bytes (malloc'd, NUL-terminated). */
char *mstore_b64_encode(const void *data, size_t len);

/* The MIME type the bytes are, by their magic numbers (the gateway's word is not trusted):
 * audio/ogg, audio/mpeg, audio/mp4, audio/wav, audio/amr, image/jpeg, image/png, image/gif,
 * image/webp, video/mp4, video/webm, application/pdf, application/zip; unknown bytes are
 * application/octet-stream (stored and served as a document). Static string. */
const char *mstore_sniff(const void *data, size_t len);

/* What the bytes tell of themselves: width/height of PNG, JPEG, GIF and WebP images, the
 * duration of an Ogg (Opus or Vorbis) stream in ms. Unknown: 0. */
void mstore_probe(const void *data, size_t len, const char *mime, int *width, int *height, int *duration_ms);

/* The kind a stored type is shown as: "audio", "image", "video" or "document". */
const char *mstore_kind_of(const char *mime);

#endif
