/*
 * Unit tests of text: accent folding and separators in normalization, truncation at
 * the buffer's capacity, code point counting, and the trigram similarity's bounds.
 */
#include "text.h"
#include "unit.h"

#include <stdlib.h>

static const char *norm(const char *in)
{
	static char buf[512];
	text_normalize(in, buf, sizeof(buf));
	return buf;
}

TEST(normalize_accents_and_case)
{
	CHECK_STR(norm("Cobrança indevida"), "cobranca indevida");
	CHECK_STR(norm("NÃO RECONHECIDO"), "nao reconhecido");
	CHECK_STR(norm("àáâãä ÀÁÂÃÄ"), "aaaaa aaaaa");
	CHECK_STR(norm("éèêë ÉÈÊË íìîï ÍÌÎÏ"), "eeee eeee iiii iiii");
	CHECK_STR(norm("óòôõö ÓÒÔÕÖ úùûü ÚÙÛÜ"), "ooooo ooooo uuuu uuuu");
	CHECK_STR(norm("ç Ç ñ Ñ ý ÿ"), "c c n n y y");
	CHECK_STR(norm("Técnico não apareceu"), "tecnico nao apareceu");
	CHECK_STR(norm("EMERGÊNCIA"), "emergencia");
	/* decomposed form: c + U+0327 (combining cedilla), a + U+0303 (combining tilde) */
	CHECK_STR(norm("cobranc\xcc\xa7" "a na\xcc\x83o"), "cobranca nao");
}

TEST(normalize_separators)
{
	CHECK_STR(norm("  o pagamento de R$ 129,00 não foi reconhecido!!  "),
		  "o pagamento de r 129 00 nao foi reconhecido");
	CHECK_STR(norm("??"), "");
	CHECK_STR(norm(""), "");
	CHECK_STR(norm(NULL), "");
	CHECK_STR(norm("oi 😀😀 tudo bem?"), "oi tudo bem");
	CHECK_STR(norm("a\t\n\r-b__c...d"), "a b c d");
	CHECK_STR(norm("× ÷ ß"), "");
	CHECK_STR(norm("\xc3"), "");          /* truncated UTF-8 */
	CHECK_STR(norm("a\xc3" "b"), "a b");  /* lone lead byte */
	CHECK_STR(norm("nº 123"), "n 123");
}

TEST(normalize_capacity)
{
	char out[8];
	CHECK(text_normalize("abcdefghij", out, sizeof(out)) == 7);
	CHECK_STR(out, "abcdefg");
	/* A separator that would be the last byte is dropped, never left trailing. */
	CHECK(text_normalize("abcdef ghij", out, sizeof(out)) == 6);
	CHECK_STR(out, "abcdef");
	CHECK(text_normalize("abc", out, 1) == 0);
	CHECK_STR(out, "");
	out[0] = 'x';
	CHECK(text_normalize("abc", out, 0) == 0);
	CHECK(out[0] == 'x');
	CHECK(text_normalize("Ação", out, sizeof(out)) == 4);
	CHECK_STR(out, "acao");
}

TEST(utf8_length)
{
	CHECK(text_utf8_length("") == 0);
	CHECK(text_utf8_length(NULL) == 0);
	CHECK(text_utf8_length("ok") == 2);
	CHECK(text_utf8_length("não") == 3);
	CHECK(text_utf8_length("ação") == 4);
	CHECK(text_utf8_length("😀") == 1);
	CHECK(text_utf8_length("oi 😀") == 4);
}

TEST(similarity)
{
	CHECK(text_similarity("minha internet caiu", "minha internet caiu") == 1.0);
	CHECK(text_similarity("", "") == 1.0);
	CHECK(text_similarity("abc", "") == 0.0);
	CHECK(text_similarity(NULL, "abc") == 0.0);
	CHECK(text_similarity("abc", "xyz") == 0.0);
	/* Word order does not matter; trigram sets are equal. */
	CHECK(text_similarity("internet caiu", "caiu internet") == 1.0);

	double near = text_similarity("minha internet caiu desde ontem", "minha internet caiu desde cedo");
	double far = text_similarity("minha internet caiu desde ontem", "quero a segunda via do boleto");
	CHECK(near > 0.7 && near < 1.0);
	CHECK(far < 0.2);
	CHECK(near > far);
	/* Symmetric and deterministic. */
	CHECK(text_similarity("fatura atrasada", "parcelar fatura") ==
	      text_similarity("parcelar fatura", "fatura atrasada"));
	/* "ab" -> {"  a"," ab","ab "}, "ac" -> {"  a"," ac","ac "}: 2*1/6 */
	double s = text_similarity("ab", "ac");
	CHECK(s > 0.333 && s < 0.334);
	printf("  near=%.3f far=%.3f\n", near, far);
}

TEST(similarity_long_texts)
{
	size_t n = 5000;
	char *a = malloc(n + 1), *b = malloc(n + 1);
	for (size_t i = 0; i < n; i++) {
		a[i] = (i % 7 == 6) ? ' ' : (char)('a' + i % 26);
		b[i] = a[i];
	}
	a[n] = b[n] = '\0';
	CHECK(text_similarity(a, b) == 1.0);
	b[10] = 'z';
	double s = text_similarity(a, b);
	CHECK(s > 0.9 && s < 1.0);
	free(a);
	free(b);
}

int main(void)
{
	RUN(normalize_accents_and_case);
	RUN(normalize_separators);
	RUN(normalize_capacity);
	RUN(utf8_length);
	RUN(similarity);
	RUN(similarity_long_texts);
	return unit_done();
}
