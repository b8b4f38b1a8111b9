/*
 * survey: the score parser (see survey.h). The text is normalized first (common/text.c:
 * lowercase ASCII, accents folded, punctuation and emoji turned into spaces), then read
 * as words; anything but numbers and a short list of fillers means it is not a score.
 */
#include "survey.h"
#include "text.h"

#include <stdlib.h>
#include <string.h>

#define SURVEY_MAX_CHARS 80 /* longer messages say something else */
#define SURVEY_MAX_WORDS 8

static int survey_number(const char *w);
static bool survey_filler(const char *w);
static int survey_stars(const char *text);

bool survey_parse(const char *text, int *score)
{
	char norm[SURVEY_MAX_CHARS * 2 + 1];
	int nums[SURVEY_MAX_WORDS], n_nums = 0, n_words = 0;
	if (!text || strlen(text) > SURVEY_MAX_CHARS * 4)
		return false;
	int stars = survey_stars(text);
	if (stars > 0) {
		*score = stars;
		return true;
	}
	text_normalize(text, norm, sizeof(norm));
	if (strlen(norm) >= SURVEY_MAX_CHARS)
		return false;
	for (char *save = NULL, *w = strtok_r(norm, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
		if (++n_words > SURVEY_MAX_WORDS)
			return false;
		int v = survey_number(w);
		if (v >= 0) {
			if (n_nums == 2)
				return false;
			nums[n_nums++] = v;
		} else if (!survey_filler(w)) {
			return false;
		}
	}
	if (n_nums == 1) {
		*score = nums[0];
		return true;
	}
	/* "9 de 10", "4/5": the second number is the scale */
	if (n_nums == 2 && (nums[1] == 10 || nums[1] == 5) && nums[0] <= nums[1]) {
		*score = nums[0];
		return true;
	}
	return false;
}

/* 0..10 for a number word or digits, else -1. */
static int survey_number(const char *w)
{
	static const char *const words[] = {"zero", "um", "dois", "tres", "quatro", "cinco",
					    "seis", "sete", "oito", "nove", "dez"};
	if (w[0] >= '0' && w[0] <= '9') {
		if (strspn(w, "0123456789") != strlen(w) || strlen(w) > 2)
			return -1;
		int v = atoi(w);
		return v <= 10 ? v : -1;
	}
	for (int i = 0; i <= 10; i++)
		if (strcmp(w, words[i]) == 0)
			return i;
	if (strcmp(w, "uma") == 0)
		return 1;
	if (strcmp(w, "duas") == 0)
		return 2;
	return -1;
}

static bool survey_filler(const char *w)
{
	static const char *const fillers[] = {"nota", "de", "e", "eu", "dou", "daria", "minha", "a", "o", "acho",
					      "que", "pra", "para", "voces", "vcs", "vc", "sim", "ok", "obrigado",
					      "obrigada", "obg", "valeu", "estrelas", "estrela", "pontos", "nps", NULL};
	for (int i = 0; fillers[i]; i++)
		if (strcmp(w, fillers[i]) == 0)
			return true;
	return false;
}

/* The number of star emojis (U+2B50 ⭐, U+2605 ★, U+1F31F 🌟) when the text is only stars,
 * spaces and variation selectors, at most 5; else 0. */
static int survey_stars(const char *text)
{
	int n = 0;
	const unsigned char *p = (const unsigned char *)text;
	while (*p) {
		if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
			p++;
		} else if (p[0] == 0xE2 && p[1] == 0xAD && p[2] == 0x90) { /* U+2B50 */
			n++, p += 3;
		} else if (p[0] == 0xE2 && p[1] == 0x98 && p[2] == 0x85) { /* U+2605 */
			n++, p += 3;
		} else if (p[0] == 0xF0 && p[1] == 0x9F && p[2] == 0x8C && p[3] == 0x9F) { /* U+1F31F */
			n++, p += 4;
		} else if (p[0] == 0xEF && p[1] == 0xB8 && p[2] == 0x8F) { /* U+FE0F */
			p += 3;
		} else {
			return 0;
		}
	}
	return n <= 5 ? n : 0;
}
