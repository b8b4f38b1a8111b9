/* Unit tests of the survey answer parser (worker/survey.c): what reads as a score, and what
 * is a message like any other (it reopens the conversation). */
#include "survey.h"
#include "unit.h"

static int score_of(const char *text)
{
	int s = -99;
	return survey_parse(text, &s) ? s : -1;
}

TEST(digits_and_fillers)
{
	CHECK(score_of("9") == 9);
	CHECK(score_of("10!") == 10);
	CHECK(score_of("0") == 0);
	CHECK(score_of("nota 9") == 9);
	CHECK(score_of("Nota: 8.") == 8);
	CHECK(score_of("  eu dou 7 ") == 7);
	CHECK(score_of("acho que 6") == 6);
	CHECK(score_of("9 de 10") == 9);
	CHECK(score_of("4/5") == 4);
	CHECK(score_of("10/10 obrigado") == 10);
}

TEST(words)
{
	CHECK(score_of("dez") == 10);
	CHECK(score_of("Três") == 3);
	CHECK(score_of("nota zero") == 0);
	CHECK(score_of("uma") == 1);
	CHECK(score_of("NOVE!!!") == 9);
}

TEST(stars)
{
	CHECK(score_of("⭐⭐⭐⭐") == 4);
	CHECK(score_of("⭐️⭐️⭐️") == 3); /* with variation selectors */
	CHECK(score_of("★★★★★") == 5);
	CHECK(score_of("⭐⭐⭐⭐⭐⭐") == -1); /* no scale has six */
}

TEST(not_scores)
{
	CHECK(score_of(NULL) == -1);
	CHECK(score_of("") == -1);
	CHECK(score_of("obrigado") == -1);
	CHECK(score_of("11") == -1);
	CHECK(score_of("100") == -1);
	CHECK(score_of("minha internet caiu de novo") == -1);
	CHECK(score_of("tenho 2 problemas") == -1);
	CHECK(score_of("3 ou 4") == -1);
	CHECK(score_of("7 8") == -1);
	CHECK(score_of("9 de 10 mas a internet caiu de novo hoje") == -1);
	CHECK(score_of("meu protocolo é 12345") == -1);
	CHECK(score_of("⭐ ok") == -1);
}

int main(void)
{
	RUN(digits_and_fillers);
	RUN(words);
	RUN(stars);
	RUN(not_scores);
	return unit_done();
}
