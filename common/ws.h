/*
 * ws: RFC 6455 WebSocket. Pure codec functions (handshake keys, frame headers, masking, UTF-8
 * checks) plus a connection layer over a libevent bufferevent that reassembles text messages,
 * answers pings, keeps peers alive with pings and runs the close handshake, as server or client.
 */
#ifndef ATENDE_WS_H
#define ATENDE_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bufferevent;

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum {
	WS_OP_CONT = 0x0,
	WS_OP_TEXT = 0x1,
	WS_OP_BINARY = 0x2,
	WS_OP_CLOSE = 0x8,
	WS_OP_PING = 0x9,
	WS_OP_PONG = 0xA,
};

enum {
	WS_CLOSE_NORMAL = 1000,
	WS_CLOSE_GOING_AWAY = 1001,
	WS_CLOSE_PROTOCOL = 1002,
	WS_CLOSE_UNSUPPORTED = 1003,
	WS_CLOSE_NO_STATUS = 1005, /* reported when the peer's close frame had no code; never sent */
	WS_CLOSE_ABNORMAL = 1006,  /* reported when the connection dropped without a close frame; never sent */
	WS_CLOSE_BAD_DATA = 1007,
	WS_CLOSE_POLICY = 1008,
	WS_CLOSE_TOO_BIG = 1009,
	WS_CLOSE_INTERNAL = 1011,
};

/* Sec-WebSocket-Accept for a client's Sec-WebSocket-Key: base64(SHA1(key + GUID)), NUL-terminated.
 * False if key is not 24 base64 characters encoding 16 bytes. */
bool ws_accept_key(const char *client_key, char out[29]) __attribute__((warn_unused_result));

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF, no truncated sequence. */
bool ws_utf8_valid(const uint8_t *s, size_t len);

typedef struct {
	bool fin;
	uint8_t opcode;
	bool masked;
	uint8_t mask[4];
	uint64_t payload_len;
	size_t header_len;
	uint8_t rsv; /* RSV1..3 as bits 2..0; nonzero is a protocol error without extensions */
} ws_frame_header_t;

/* Returns the header length (>0) when a full header is in buf, 0 when more bytes are needed, -1 when
 * malformed: unknown opcode, 64-bit length with the MSB set, control frame over 125 bytes or fragmented.
 * RSV bits are reported in out->rsv, not judged. */
int ws_parse_header(const uint8_t *buf, size_t len, ws_frame_header_t *out);

/* XORs data in place with the masking key; offset is data's position within the payload. */
void ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], size_t offset);

/* Writes a frame header (2..14 bytes) into out and returns its length; mask_or_null sets the mask key. */
size_t ws_build_header(uint8_t out[14], uint8_t opcode, bool fin, uint64_t payload_len, const uint8_t *mask_or_null);

typedef struct ws_conn ws_conn_t;

typedef struct {
	size_t max_message_bytes; /* reassembled message limit -> close 1009; 0 = 1 MiB */
	size_t max_send_buffer;   /* pending output limit: ws_conn_send_text returns false over it; 0 = none */
	int ping_interval_ms;     /* 0 = no pings; else ping after this long without receiving anything, and
				     drop (on_close 1006, no close frame) if still nothing after another interval */
	int max_peer_pings_per_s; /* pings the peer may send per second, with a burst of twice that; one more
				     fails the connection with 1008 "ping rate exceeded"; 0 = 10 */
} ws_limits_t;

typedef struct {
	/* A complete text message, UTF-8 validated and NUL-terminated (data[len] == 0), valid during the call.
	 * A binary message closes the connection with 1003. */
	void (*on_message)(ws_conn_t *c, const char *data, size_t len, void *arg);
	/* Called once when the connection is gone; c is freed right after it returns. code: the peer's close
	 * code (1005 if its close frame had none), the code we sent when we closed or failed, 1006 if dropped. */
	void (*on_close)(ws_conn_t *c, int code, void *arg);
	/* Optional: the output buffer fell below half of max_send_buffer after having been above it. */
	void (*on_drain)(ws_conn_t *c, void *arg);
} ws_callbacks_t;

/* Takes ownership of bev (already past the handshake; bytes already in its input are frames).
 * is_client: outgoing frames masked, incoming must be unmasked; server: incoming must be masked
 * (else close 1002). limits and cb are copied. Returns NULL (bev freed) on allocation failure. */
ws_conn_t *ws_conn_new(struct bufferevent *bev, bool is_client, const ws_limits_t *limits, const ws_callbacks_t *cb,
		       void *arg);

/* Queues one text message (a single frame). False when the connection is closing or the pending output
 * would exceed max_send_buffer (the message is not queued; on_drain tells when to retry). data need not
 * be validated here: it is the caller's UTF-8. */
bool ws_conn_send_text(ws_conn_t *c, const char *data, size_t len) __attribute__((warn_unused_result));

/* A server text frame built once and queued to many connections by reference: fan-out
 * to N consoles costs one copy of the frame, not N. Reference counted. */
typedef struct ws_shared ws_shared_t;
/* A frame of data (copied), holding one reference owned by the caller. */
ws_shared_t *ws_shared_text(const char *data, size_t len);
/* Drops one reference; the frame is freed with its last one. */
void ws_shared_release(ws_shared_t *f);
/* Like ws_conn_send_text for a server connection, queueing f by reference (the connection
 * takes its own reference and copies bytes into the socket buffer only as it drains). */
bool ws_conn_send_shared(ws_conn_t *c, ws_shared_t *f) __attribute__((warn_unused_result));

/* Sends a close frame (code 0: none; reason may be NULL, cut to 123 bytes), waits up to ~2 s for the
 * peer's close, then frees the connection (on_close called, asynchronously). No-op once closing. */
void ws_conn_close(ws_conn_t *c, int code, const char *reason);

/* Bytes queued for output and not yet written to the socket, the owed pong included (a pong waits
 * while older output is unsent, and only the newest ping's is kept: pongs never pile up). */
size_t ws_conn_pending_bytes(const ws_conn_t *c);

void ws_conn_set_arg(ws_conn_t *c, void *arg);

/* Server handshake helper: validates the upgrade request's header values (any may be NULL) and writes
 * the full "HTTP/1.1 101 Switching Protocols" response into out. Returns false with *reason set when it
 * is not a valid upgrade (Upgrade lacks "websocket", Connection lacks "upgrade", bad Sec-WebSocket-Key,
 * Sec-WebSocket-Version not 13: answer 426 with "Sec-WebSocket-Version: 13") or out is too small. */
bool ws_handshake_response(const char *upgrade, const char *connection, const char *key, const char *version,
			   char *out, size_t cap, const char **reason) __attribute__((warn_unused_result));

/* Client handshake request text. Returns its length, or -1 if it does not fit in cap. */
int ws_client_request(char *out, size_t cap, const char *host, const char *path_and_query, const char *key);

/* A fresh random Sec-WebSocket-Key (24 characters + NUL). */
void ws_client_key(char out[25]);

/* Checks the server's handshake response at the start of buf[0..len) for the key that was sent.
 * Returns the response head's length (frames may follow it) when it is a valid 101 with the right
 * Sec-WebSocket-Accept, 0 when the head is not complete yet, -1 when it is refused or invalid. */
int ws_client_check_response(const char *buf, size_t len, const char *key);

#endif
