/*
 * breaker: a circuit breaker for one upstream (the AI provider; each gateway instance of
 * the outbound path, worker/gwpool.h). Pure and clock-free:
 * every call takes the current time in milliseconds, so tests drive it with a fake
 * clock. Closed -> open when the recent error ratio is too high; open -> half-open
 * after a pause; half-open lets exactly one probe call through, whose result decides.
 */
#ifndef ATENDE_BREAKER_H
#define ATENDE_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

#define BREAKER_BUCKETS 60 /* the window is kept as this many equal time slices */

typedef enum {
	BREAKER_CLOSED = 0,    /* calls flow; outcomes are counted */
	BREAKER_OPEN = 1,      /* calls refused until open_ms has passed */
	BREAKER_HALF_OPEN = 2, /* one probe call allowed; its outcome closes or re-opens */
} breaker_state_t;

typedef enum {
	BREAKER_OK = 0,      /* the call succeeded */
	BREAKER_FAIL = 1,    /* the call failed (5xx, timeout, garbage, connection error) */
	BREAKER_NEUTRAL = 2, /* says nothing about health (429, cancelled): not counted; releases a probe */
} breaker_outcome_t;

typedef struct {
	int64_t window_ms; /* outcomes older than this are forgotten (60000) */
	int min_calls;     /* never opens on fewer calls than this in the window (10) */
	int error_pct;     /* opens when errors * 100 >= error_pct * calls (50) */
	int64_t open_ms;   /* how long it stays open before half-opening (30000) */
} breaker_params_t;

/* Plain struct so it can be embedded; initialise with breaker_init, no free needed. */
typedef struct {
	breaker_params_t p;    /* copied at init */
	breaker_state_t state; /* current state; open -> half-open happens in breaker_allow */
	int64_t bucket_ms;     /* width of one slice: window_ms / BREAKER_BUCKETS, at least 1 */
	struct {
		int64_t start;     /* start time of the slice this entry holds (ms) */
		int calls, errors; /* outcomes recorded in that slice */
	} b[BREAKER_BUCKETS];  /* ring indexed by (now / bucket_ms) % BREAKER_BUCKETS */
	int64_t opened_at;     /* when it last opened (ms) */
	bool probe_out;        /* half-open: the probe call is in flight */
	uint64_t opens;        /* times it opened since init (metrics) */
} breaker_t;

/* Fills p with the defaults: 60 s window, 10 calls, 50 %, 30 s open. */
void breaker_params_default(breaker_params_t *p);

/* Initialises b closed with an empty window. Out-of-range parameters are clamped
 * (window_ms >= 1, min_calls >= 1, error_pct 1..100, open_ms >= 0). */
void breaker_init(breaker_t *b, const breaker_params_t *p);

/* May a call start now? Closed: yes. Open: no, unless open_ms has passed, in which case
 * it half-opens and this call is the probe. Half-open: yes only when no probe is out.
 * *probe (may be NULL) is set to true when the allowed call is the probe: pass that
 * flag back to breaker_record with its outcome. */
bool breaker_allow(breaker_t *b, int64_t now_ms, bool *probe) __attribute__((warn_unused_result));

/* Records the outcome of a call that breaker_allow let through. Closed: counted in the
 * window, and the breaker opens when calls >= min_calls and the error ratio reaches
 * error_pct. Half-open: only the probe's outcome counts (OK closes with an empty window,
 * FAIL re-opens for another open_ms, NEUTRAL lets a new probe go); late outcomes of calls
 * started before it opened are ignored while open or half-open. */
void breaker_record(breaker_t *b, int64_t now_ms, breaker_outcome_t outcome, bool probe);

/* Ends an open breaker's pause early (something else, a health check, says the upstream is
 * back): it half-opens, so the next breaker_allow is the probe. No effect unless open. */
void breaker_half_open(breaker_t *b);

/* Current state (an open breaker whose pause is over still says open until the next
 * breaker_allow half-opens it). */
breaker_state_t breaker_state(const breaker_t *b);

/* "closed", "open", "half_open" (static strings, for metrics and logs). */
const char *breaker_state_name(breaker_state_t s);

/* Calls and errors counted in the window ending at now_ms. */
void breaker_window(const breaker_t *b, int64_t now_ms, int *calls, int *errors);

#endif
