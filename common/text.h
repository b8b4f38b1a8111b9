/*
 * text: Portuguese text normalization and similarity for customer messages. The rules
 * provider matches keywords on normalized text; the hint cache compares normalized
 * texts by trigram similarity. Pure functions, no state, no allocation on short texts.
 */
#ifndef ATENDE_TEXT_H
#define ATENDE_TEXT_H

#include <stddef.h>

/* Normalizes UTF-8 text for matching: lowercases ASCII, folds the Latin-1 letters of
 * Portuguese (and their capitals) to ASCII (á à â ã ä -> a, ç -> c, é è ê ë -> e,
 * í ì î ï -> i, ñ -> n, ó ò ô õ ö -> o, ú ù û ü -> u, ý ÿ -> y), turns every other run of
 * non-alphanumeric bytes (punctuation, emoji, invalid UTF-8) into one space and trims.
 * The output is plain ASCII [a-z0-9 ]. Writes at most cap-1 bytes plus a NUL (nothing
 * when cap is 0); returns the length written. in may be NULL (empty). */
size_t text_normalize(const char *in, char *out, size_t cap);

/* Number of Unicode code points in a UTF-8 string (bytes that do not start a code point
 * are not counted), for min_message_length checks. NULL counts 0. */
size_t text_utf8_length(const char *s);

/* Similarity in [0,1] of two normalized texts: Dice coefficient 2|A∩B|/(|A|+|B|) over the
 * sets of character trigrams of their words, each word padded as "  word " so short words
 * and word starts weigh in. 1.0 for equal texts (two empty texts included), 0.0 when
 * only one is empty. Deterministic; allocates only for texts over 1 KiB (returns 0.0 if
 * that allocation fails). */
double text_similarity(const char *a_norm, const char *b_norm);

/* A malloc'd NUL-terminated copy of len bytes in which NULs and bytes that are not part of
 * valid UTF-8 sequences are replaced by '?', so the result is storable as text anywhere. */
char *text_utf8_sanitize(const char *in, size_t len);

#endif
