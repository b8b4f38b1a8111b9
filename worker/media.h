/*
 * media: the worker's stage for media messages. Each gets one row in the media table
 * (created once per message, so a redelivery finds it) and its bytes once in the media
 * store: from the webhook when it carried them inline, else fetched from the gateway on the
 * loop (Evolution getBase64FromMediaMessage; Cloud API media id -> url -> bytes, with the
 * bearer token), with retries and a size limit per kind. The row ends stored, too_large or
 * failed (with the error); the caller hears once, with the bytes when they were just stored.
 */
#ifndef ATENDE_MEDIA_H
#define ATENDE_MEDIA_H

#include "config.h"
#include "db.h"

#include <cJSON.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct media media_t;

/* What became of one message's media; valid only during the callback. */
typedef struct {
	int64_t id;                 /* media.id; 0 when no row could be made (error says why) */
	int64_t message_id;         /* messages.id */
	const char *status;         /* stored | too_large | failed */
	const char *kind;           /* audio | image | video | document | sticker (the gateway's) */
	const char *mime, *name, *error; /* NULL when unknown / none */
	int64_t size;               /* -1 when unknown */
	int duration_ms;            /* 0 when unknown */
	bool fresh;                 /* decided now (false: a redelivery found it decided before) */
	const unsigned char *bytes; /* the file when it was stored now; NULL otherwise */
	size_t len;
} media_result_t;

typedef void (*media_done_fn)(const media_result_t *r, void *arg);

/* A stage on base, writing rows through db (not owned) and files under
 * data_dir/media.dir. cfg must outlive it (reloads change it in place). NULL + err on failure. */
media_t *media_new(struct event_base *base, db_t *db, const cfg_t *cfg, char *err, size_t errlen);

/* Handles the media of ev (a canonical inbound event whose message is stored, in
 * conversation). inline_b64 (may be NULL, taken) is the webhook's base64 already detached from
 * ev. cb is called exactly once, from the loop. ev must stay alive until then. */
void media_handle(media_t *m, const cJSON *ev, int64_t conversation, cJSON *inline_b64, media_done_fn cb, void *arg);

/* Media being handled (row, download or write under way). */
int media_pending(const media_t *m);

/* Cancels downloads (their messages stay uncommitted) and frees the stage. */
void media_free(media_t *m);

/* The size limit of a kind of media in cfg. */
int64_t media_limit(const cfg_t *cfg, const char *kind);

#endif
