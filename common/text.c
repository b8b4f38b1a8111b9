/*
 * text: normalization and trigram similarity (see text.h). Customers write the same
 * thing with and without accents, in capitals, with emoji and punctuation; folding all
 * of that to [a-z0-9 ] lets keyword rules and the cache compare what was meant.
 */
#include "text.h"
#include "xalloc.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Trigram sets of texts up to this many bytes live on the stack. */
#define TEXT_SMALL 1024

/* ASCII fold of U+00C0..U+00DF (and, +0x20, of U+00E0..U+00FF), indexed by the low five
 * bits of the UTF-8 continuation byte; '.' means "not a letter we fold" (×, ÷, Æ, Ð, Þ, ß). */
static const char text_fold_latin1[33] = "aaaaaa.ceeeeiiii.nooooo.ouuuuy..";

static size_t text_trigrams(const char *s, uint32_t *tri);
static size_t text_sort_unique(uint32_t *v, size_t n);
static int text_cmp_u32(const void *a, const void *b);

size_t text_normalize(const char *in, char *out, size_t cap)
{
	const unsigned char *p = (const unsigned char *)(in ? in : "");
	size_t o = 0;
	bool pending_space = false;

	if (cap == 0)
		return 0;
	while (*p) {
		char c = 0;
		unsigned char b = *p;
		if ((b >= 'a' && b <= 'z') || (b >= '0' && b <= '9')) {
			c = (char)b;
			p++;
		} else if (b >= 'A' && b <= 'Z') {
			c = (char)(b + 32);
			p++;
		} else if (b == 0xC3 && p[1] >= 0x80 && p[1] <= 0xBF) {
			unsigned char low = p[1] & 0x1F;
			c = text_fold_latin1[low];
			if (p[1] == 0xBF) /* ÿ; its capital Ÿ lives elsewhere, ß sits at the same index */
				c = 'y';
			if (c == '.')
				c = 0;
			p += 2;
		} else if ((b == 0xCC && p[1] >= 0x80 && p[1] <= 0xBF) || (b == 0xCD && p[1] >= 0x80 && p[1] <= 0xAF)) {
			/* Combining diacritics (U+0300..U+036F): phones that send decomposed text
			 * write "c" + U+0327 for "ç"; dropping the mark folds it like the composed form. */
			p += 2;
			continue;
		} else {
			p++;
		}
		if (!c) {
			pending_space = o > 0;
			continue;
		}
		size_t need = pending_space ? 2 : 1;
		if (o + need > cap - 1)
			break;
		if (pending_space)
			out[o++] = ' ';
		out[o++] = c;
		pending_space = false;
	}
	out[o] = '\0';
	return o;
}

size_t text_utf8_length(const char *s)
{
	size_t n = 0;
	if (!s)
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if ((*p & 0xC0) != 0x80)
			n++;
	return n;
}

double text_similarity(const char *a_norm, const char *b_norm)
{
	uint32_t small_a[2 * TEXT_SMALL + 2], small_b[2 * TEXT_SMALL + 2];
	uint32_t *ta = small_a, *tb = small_b;
	const char *a = a_norm ? a_norm : "", *b = b_norm ? b_norm : "";
	size_t la = strlen(a), lb = strlen(b);
	double sim = 0.0;

	/* A word of L bytes yields L+1 trigrams, so 2*len+2 bounds any text. */
	if (la > TEXT_SMALL && !(ta = xmalloc((2 * la + 2) * sizeof(*ta))))
		return 0.0;
	if (lb > TEXT_SMALL && !(tb = xmalloc((2 * lb + 2) * sizeof(*tb)))) {
		if (ta != small_a)
			free(ta);
		return 0.0;
	}
	size_t na = text_sort_unique(ta, text_trigrams(a, ta));
	size_t nb = text_sort_unique(tb, text_trigrams(b, tb));
	if (na == 0 && nb == 0) {
		sim = 1.0;
	} else if (na > 0 && nb > 0) {
		size_t i = 0, j = 0, common = 0;
		while (i < na && j < nb) {
			if (ta[i] == tb[j]) {
				common++;
				i++;
				j++;
			} else if (ta[i] < tb[j]) {
				i++;
			} else {
				j++;
			}
		}
		sim = 2.0 * (double)common / (double)(na + nb);
	}
	if (ta != small_a)
		free(ta);
	if (tb != small_b)
		free(tb);
	return sim;
}

/* Writes the trigrams of every word of s (words split on spaces and control bytes),
 * each word padded as "  word ", packed three bytes to a uint32. Returns the count. */
static size_t text_trigrams(const char *s, uint32_t *tri)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0;

	while (*p) {
		while (*p && *p <= ' ')
			p++;
		if (!*p)
			break;
		uint32_t w = ((uint32_t)' ' << 8) | ' '; /* the last two bytes seen, starting with the padding */
		for (; *p > ' '; p++) {
			w = ((w << 8) | *p) & 0xFFFFFF;
			tri[n++] = w;
		}
		tri[n++] = ((w << 8) | ' ') & 0xFFFFFF;
	}
	return n;
}

static size_t text_sort_unique(uint32_t *v, size_t n)
{
	size_t o = 0;
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), text_cmp_u32);
	for (size_t i = 1; i < n; i++)
		if (v[i] != v[o])
			v[++o] = v[i];
	return o + 1;
}

static int text_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* Length of the valid UTF-8 sequence starting at p (at most n bytes), 0 if invalid. */
static size_t text_utf8_seq(const unsigned char *p, size_t n)
{
	size_t len;
	uint32_t cp;
	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xE0) == 0xC0)
		len = 2, cp = p[0] & 0x1F;
	else if ((p[0] & 0xF0) == 0xE0)
		len = 3, cp = p[0] & 0x0F;
	else if ((p[0] & 0xF8) == 0xF0)
		len = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3F);
	}
	static const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
	if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

char *text_utf8_sanitize(const char *in, size_t len)
{
	char *out = xmalloc(len + 1);
	const unsigned char *p = (const unsigned char *)in;
	size_t i = 0;
	while (i < len) {
		size_t n = p[i] ? text_utf8_seq(p + i, len - i) : 0;
		if (n == 0) {
			out[i++] = '?';
			continue;
		}
		memcpy(out + i, p + i, n);
		i += n;
	}
	out[len] = 0;
	return out;
}
