/*
 * upload: files agents send from the console (POST /v1/conversations/ID/media). The body is
 * the file; its type is decided from its bytes (an image: JPEG or PNG; a document: PDF or a
 * ZIP-based Office file), it is stored once in the media store and recorded in media_uploads
 * (schema/015_media_upload.sql). A reply op naming the answer's id sends it (notifier/ops.c,
 * worker/outbound.c).
 */
#ifndef ATENDE_UPLOAD_H
#define ATENDE_UPLOAD_H

#include "http.h"
#include "token.h"

#include <stdbool.h>
#include <stddef.h>

/* The body limit of a request (http_limits_t.body_limit): media.max_upload_bytes for
 * POST /v1/conversations/ID/media with a good token (nobody else makes the notifier hold
 * megabytes), the notifier's small default for everything else. */
size_t upload_body_limit(const http_request_t *req, void *arg);

/* POST /v1/conversations/ID/media, the bearer's claims checked: answers 201
 * {"media":{"id","kind","mime","size","name","width","height"}}; 404 for a conversation that
 * does not exist or is another company's (the same answer), 415 for bytes that are not a type atende sends, 422 for an
 * empty body or a bad name, 503 when the database or the store is not there. */
void upload_handle(http_request_t *req, const token_claims_t *claims, long long conv_id);

/* The kind ("image" or "document") a sniffed type is sent as; NULL: not one atende sends. */
const char *upload_kind(const char *mime);

/* The display name of an upload: the last path segment of the client's name (X-Filename,
 * percent-decoded, or ?name=), control characters refused; "" when none was given.
 * False when it has control characters or does not fit. */
bool upload_name(const char *given, char *out, size_t outlen) __attribute__((warn_unused_result));

#endif
