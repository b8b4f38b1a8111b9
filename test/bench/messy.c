/*
 * messy: corpus texts as customers type them (see messy.h). Word by word: a word is a run of
 * bytes between spaces; its punctuation stays attached, so only its letters change.
 */
#include "messy.h"

#include <stdbool.h>
#include <string.h>

#define MESSY_WORD_MAX 64

typedef struct {
	uint64_t s;
	char *out;
	size_t len, cap;
} messy_t;

static uint64_t messy_rand(messy_t *m)
{
	m->s ^= m->s << 13;
	m->s ^= m->s >> 7;
	m->s ^= m->s << 17;
	return m->s;
}

/* True with probability pct / 100. */
static bool messy_chance(messy_t *m, unsigned pct)
{
	return messy_rand(m) % 100 < pct;
}

static const char *messy_pick(messy_t *m, const char *const *list, size_t n)
{
	return list[messy_rand(m) % n];
}

/* Appends s, JSON-escaped, if it fits whole (with room for the closing quote). */
static void messy_put(messy_t *m, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		char esc[8];
		size_t k = 0;
		if (ch == '"' || ch == '\\')
			esc[k++] = '\\', esc[k++] = (char)ch;
		else if (ch >= 0x20)
			esc[k++] = (char)ch;
		else
			esc[k++] = ' '; /* a control character: a space does as well here */
		if (m->len + k + 2 > m->cap)
			return;
		memcpy(m->out + m->len, esc, k);
		m->len += k;
	}
}

/* The ASCII letter of a two-byte Latin-1 letter (0xC3 xx), or 0 when it is not one. */
static char messy_unaccent(unsigned char second)
{
	static const char lower[] = "aaaaaaaceeeeiiiidnooooo/ouuuuyty"; /* 0xA0..0xBF */
	static const char upper[] = "AAAAAAACEEEEIIIIDNOOOOOxOUUUUYTs"; /* 0x80..0x9F */
	if (second >= 0xA0 && second <= 0xBF)
		return lower[second - 0xA0];
	if (second >= 0x80 && second <= 0x9F)
		return upper[second - 0x80];
	return 0;
}

/* One word, changed or not, into w (NUL-terminated); returns its length. */
static size_t messy_word(messy_t *m, const char *src, size_t n, bool unaccent, bool lower, char *w)
{
	static const struct { const char *word, *abbr; } abbrs[] = {
		{"voce", "vc"}, {"que", "q"}, {"porque", "pq"}, {"tambem", "tb"}, {"nao", "n"}, {"esta", "ta"},
		{"para", "pra"}, {"hoje", "hj"}, {"mensagem", "msg"}, {"obrigado", "obg"}, {"obrigada", "obg"},
		{"beleza", "blz"}, {"quando", "qdo"}, {"favor", "fvr"}, {"numero", "num"}, {"aqui", "aki"},
	};
	size_t k = 0;
	for (size_t i = 0; i < n && k < MESSY_WORD_MAX - 2; i++) {
		unsigned char ch = (unsigned char)src[i];
		char plain = ch == 0xC3 && i + 1 < n ? messy_unaccent((unsigned char)src[i + 1]) : 0;
		if (plain && unaccent) {
			w[k++] = plain;
			i++;
		} else {
			w[k++] = (char)ch;
		}
		if (lower && w[k - 1] >= 'A' && w[k - 1] <= 'Z')
			w[k - 1] = (char)(w[k - 1] - 'A' + 'a');
	}
	w[k] = '\0';
	size_t letters = strcspn(w, ",.!?;:");
	for (size_t a = 0; a < sizeof(abbrs) / sizeof(abbrs[0]); a++)
		if (letters == strlen(abbrs[a].word) && strncmp(w, abbrs[a].word, letters) == 0 && messy_chance(m, 60)) {
			size_t al = strlen(abbrs[a].abbr);
			memmove(w + al, w + letters, k - letters + 1);
			memcpy(w, abbrs[a].abbr, al);
			return al + (k - letters);
		}
	/* a typo in one word in eight, among plain ASCII letters: two swapped, one dropped or doubled */
	if (letters > 3 && messy_chance(m, 12)) {
		size_t at = 1 + messy_rand(m) % (letters - 2);
		if ((unsigned char)w[at] < 0x80 && (unsigned char)w[at + 1] < 0x80) {
			switch (messy_rand(m) % 3) {
			case 0: {
				char t = w[at];
				w[at] = w[at + 1];
				w[at + 1] = t;
				break;
			}
			case 1:
				memmove(w + at, w + at + 1, k - at);
				k--;
				break;
			default:
				if (k + 1 < MESSY_WORD_MAX) {
					memmove(w + at + 1, w + at, k - at + 1);
					k++;
				}
			}
		}
	}
	return k;
}

size_t messy_json(const char *clean, uint64_t seed, char *out, size_t cap)
{
	static const char *const greetings[] = {"oi", "ola", "oii", "bom dia", "boa tarde", "boa noite", "moça", "opa"};
	static const char *const fillers[] = {"!!", "???", "pfv", "urgente", "kkk", "ja faz 2 dias", "to esperando",
					      "obg", "ninguem responde", "de novo", "ainda", "agora"};
	static const char *const names[] = {"sou a ana", "aqui e o joao", "meu nome e carla", "sou o pedro",
					    "aqui e a bia"};
	messy_t m = {.s = seed | 1, .out = out, .cap = cap};
	if (cap < 3) {
		if (cap)
			out[0] = '\0';
		return 0;
	}
	out[m.len++] = '"';
	bool unaccent = messy_chance(&m, 70), lower = messy_chance(&m, 60), first = true;
	if (messy_chance(&m, 35)) {
		const char *g = messy_pick(&m, greetings, sizeof(greetings) / sizeof(greetings[0]));
		messy_put(&m, g, strlen(g));
		first = false;
	}
	for (const char *p = clean ? clean : ""; *p;) {
		size_t n = strcspn(p, " ");
		if (n) {
			char w[MESSY_WORD_MAX];
			size_t wl = messy_word(&m, p, n, unaccent, lower, w);
			if (!first)
				messy_put(&m, " ", 1);
			messy_put(&m, w, wl);
			first = false;
		}
		p += n;
		p += strspn(p, " ");
	}
	if (messy_chance(&m, 45)) {
		const char *f = messy_pick(&m, fillers, sizeof(fillers) / sizeof(fillers[0]));
		messy_put(&m, " ", 1);
		messy_put(&m, f, strlen(f));
	}
	if (messy_chance(&m, 30)) { /* an order or protocol number */
		char num[32];
		size_t nl = 0;
		for (unsigned d = 5 + (unsigned)(messy_rand(&m) % 4); d; d--)
			num[nl++] = (char)('0' + messy_rand(&m) % 10);
		messy_put(&m, " ", 1);
		messy_put(&m, num, nl);
	}
	if (messy_chance(&m, 15)) {
		const char *nm = messy_pick(&m, names, sizeof(names) / sizeof(names[0]));
		messy_put(&m, ", ", 2);
		messy_put(&m, nm, strlen(nm));
	}
	out[m.len++] = '"';
	out[m.len] = '\0';
	return m.len;
}
