/*
 * messy: a clean corpus text written the way customers type it, for `atende bench --messy`: the
 * accents dropped, the usual abbreviations ("vc", "q", "pq", "n", "pra", "hj", "pfv"), a typo or
 * two, a greeting before, filler, a number or a name after. The shared corpus is clean and
 * repeats 54 texts; with this almost every message is a text of its own, as in production,
 * which is what the similarity cache and the rules meet there.
 */
#ifndef ATENDE_BENCH_MESSY_H
#define ATENDE_BENCH_MESSY_H

#include <stddef.h>
#include <stdint.h>

/* Writes a messy version of clean (UTF-8) into out (at most cap - 1 bytes and a NUL) as a JSON
 * string literal, quotes included; the same seed gives the same text. Returns its length. */
size_t messy_json(const char *clean, uint64_t seed, char *out, size_t cap);

#endif
