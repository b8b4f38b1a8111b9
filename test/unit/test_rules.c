/*
 * Unit tests of rules: the labelled corpus (test/fixtures/corpus.jsonl, run from the
 * project root) must be classified with >= 95% intent accuracy, 100% critical recall and
 * <= 2% critical false positives; plus hand-written cases the corpus does not cover.
 */
#include "../../worker/rules.h"
#include "unit.h"

#include <cJSON.h>
#include <stdlib.h>

#define CORPUS "test/fixtures/corpus.jsonl"

typedef struct {
	int rows, intent_rows, intent_ok, critical_rows, critical_hit, normal_rows, normal_flagged;
} corpus_stats_t;

/* Classifies every corpus row; with use_domain false the domain is withheld, to show
 * the keywords (not the queue) carry the decision. Returns false if the file is unreadable. */
static bool corpus_run(bool use_domain, corpus_stats_t *st, bool verbose)
{
	static const char *const real[] = {"billing", "sales", "outage", "complaint", "cancel"};
	char line[4096];
	FILE *f = fopen(CORPUS, "r");

	memset(st, 0, sizeof(*st));
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		cJSON *row = cJSON_Parse(line);
		const cJSON *domain = cJSON_GetObjectItemCaseSensitive(row, "domain");
		const cJSON *intent = cJSON_GetObjectItemCaseSensitive(row, "intent");
		const cJSON *text = cJSON_GetObjectItemCaseSensitive(row, "text");
		const cJSON *critical = cJSON_GetObjectItemCaseSensitive(row, "critical");
		if (!cJSON_IsString(domain) || !cJSON_IsString(intent) || !cJSON_IsString(text) || !cJSON_IsBool(critical)) {
			cJSON_Delete(row);
			continue;
		}
		rules_result_t r;
		rules_classify(text->valuestring, use_domain ? domain->valuestring : NULL, &r);
		st->rows++;
		for (size_t i = 0; i < sizeof(real) / sizeof(real[0]); i++) {
			if (strcmp(intent->valuestring, real[i]) == 0) {
				st->intent_rows++;
				if (strcmp(rules_intent_name(r.intent), real[i]) == 0)
					st->intent_ok++;
				else if (verbose)
					printf("  miss: %s -> %s: %s\n", real[i], rules_intent_name(r.intent), text->valuestring);
			}
		}
		if (cJSON_IsTrue(critical)) {
			st->critical_rows++;
			if (r.critical)
				st->critical_hit++;
			else if (verbose)
				printf("  critical missed: %s\n", text->valuestring);
		} else {
			st->normal_rows++;
			if (r.critical) {
				st->normal_flagged++;
				if (verbose)
					printf("  false critical (%s): %s\n", r.critical_reason, text->valuestring);
			}
		}
		/* Every hint must be usable text. */
		if (r.text[0] == '\0' || strchr(r.text, '{') || strchr(r.text, '['))
			printf("  bad hint for: %s\n", text->valuestring);
		cJSON_Delete(row);
	}
	fclose(f);
	return true;
}

TEST(corpus_accuracy)
{
	corpus_stats_t st;
	CHECK(corpus_run(true, &st, true));
	CHECK(st.rows == 2000);
	CHECK(st.intent_rows > 0 && st.critical_rows > 0 && st.normal_rows > 0);
	if (st.intent_rows == 0 || st.critical_rows == 0 || st.normal_rows == 0)
		return;
	double acc = 100.0 * st.intent_ok / st.intent_rows;
	double recall = 100.0 * st.critical_hit / st.critical_rows;
	double fpr = 100.0 * st.normal_flagged / st.normal_rows;
	printf("  corpus with domain: intent accuracy %.2f%% (%d/%d), critical recall %.2f%% (%d/%d), "
	       "critical false positives %.2f%% (%d/%d)\n",
	       acc, st.intent_ok, st.intent_rows, recall, st.critical_hit, st.critical_rows, fpr, st.normal_flagged,
	       st.normal_rows);
	CHECK(acc >= 95.0);
	CHECK(st.critical_hit == st.critical_rows);
	CHECK(fpr <= 2.0);
}

TEST(corpus_accuracy_without_domain)
{
	corpus_stats_t st;
	CHECK(corpus_run(false, &st, false));
	if (st.intent_rows == 0)
		return;
	double acc = 100.0 * st.intent_ok / st.intent_rows;
	printf("  corpus without domain: intent accuracy %.2f%% (%d/%d)\n", acc, st.intent_ok, st.intent_rows);
	CHECK(acc >= 90.0);
	CHECK(st.critical_hit == st.critical_rows);
}

TEST(intent_names)
{
	rules_intent_t i;
	CHECK_STR(rules_intent_name(INTENT_BILLING), "billing");
	CHECK_STR(rules_intent_name(INTENT_SALES), "sales");
	CHECK_STR(rules_intent_name(INTENT_OUTAGE), "outage");
	CHECK_STR(rules_intent_name(INTENT_COMPLAINT), "complaint");
	CHECK_STR(rules_intent_name(INTENT_CANCEL), "cancel");
	CHECK_STR(rules_intent_name(INTENT_OTHER), "other");
	CHECK_STR(rules_intent_name((rules_intent_t)42), "other");
	CHECK(rules_intent_parse("complaint", &i) && i == INTENT_COMPLAINT);
	CHECK(!rules_intent_parse("critical", &i));
	CHECK(!rules_intent_parse(NULL, &i));
}

TEST(accents_and_case)
{
	rules_result_t a, b, c;
	rules_classify("Quero a SEGUNDA VIA do boleto", "suporte", &a);
	rules_classify("quero a segunda via do boleto", "suporte", &b);
	rules_classify("Cobrança indevida na minha FATURA", NULL, &c);
	CHECK(a.intent == INTENT_BILLING && b.intent == INTENT_BILLING);
	CHECK_STR(a.text, b.text);
	CHECK(c.intent == INTENT_BILLING);
	rules_classify("SEM INTERNET DESDE ONTEM", "financeiro", &a);
	CHECK(a.intent == INTENT_OUTAGE && !a.critical);
	rules_classify("reclamacao sem acento", NULL, &a);
	CHECK(a.intent == INTENT_COMPLAINT);
}

TEST(critical_cases)
{
	rules_result_t r;
	rules_classify("COBRANÇA NO CARTÃO: NÃO RECONHECIDO", "financeiro", &r);
	CHECK(r.critical);
	CHECK_STR(r.critical_reason, "fraud");
	CHECK(r.intent == INTENT_BILLING);

	rules_classify("Vou acionar o PROCON e meu advogado", "ouvidoria", &r);
	CHECK(r.critical);
	CHECK_STR(r.critical_reason, "legal");
	CHECK(r.intent == INTENT_COMPLAINT);

	rules_classify("minha mãe usa oxigênio e depende do aparelho, é urgente", "suporte", &r);
	CHECK(r.critical);
	CHECK_STR(r.critical_reason, "health"); /* the most serious reason wins */

	rules_classify("Internet caiu, URGENTE!!!", "suporte", &r);
	CHECK(r.critical && r.intent == INTENT_OUTAGE);
	CHECK_STR(r.critical_reason, "urgency");

	rules_classify("caiu um golpe no meu whatsapp com o nome de vocês", "suporte", &r);
	CHECK(r.critical);
	CHECK_STR(r.critical_reason, "fraud");

	/* Not critical: negated urgency, and a payment the company has not matched yet. */
	rules_classify("não é urgente, mas quero mudar de plano", "comercial", &r);
	CHECK(!r.critical && r.critical_reason == NULL && r.intent == INTENT_SALES);
	rules_classify("o pagamento de R$ 129,00 não foi reconhecido", "financeiro", &r);
	CHECK(!r.critical && r.intent == INTENT_BILLING);
	rules_classify("quero saber os planos de 300 mega", "comercial", &r);
	CHECK(!r.critical);
}

TEST(empty_and_short)
{
	rules_result_t r;
	rules_classify("", NULL, &r);
	CHECK(r.intent == INTENT_OTHER && !r.critical && r.text[0]);
	rules_classify("", "financeiro", &r);
	CHECK(r.intent == INTENT_OTHER);
	rules_classify(NULL, "suporte", &r);
	CHECK(r.intent == INTENT_OTHER);
	rules_classify("??", "suporte", &r);
	CHECK(r.intent == INTENT_OTHER);
	rules_classify("ok", "cancelamento", &r);
	CHECK(r.intent == INTENT_OTHER);
	rules_classify("Bom dia!", "comercial", &r);
	CHECK(r.intent == INTENT_OTHER);
	CHECK(strstr(r.text, "Cumprimente") != NULL);
	rules_classify("muito obrigado", "financeiro", &r);
	CHECK(r.intent == INTENT_OTHER);
	CHECK(strstr(r.text, "confirmou") != NULL);
}

TEST(domain_breaks_ties_and_defaults)
{
	rules_result_t r;
	/* "portabilidade" alone: porting in (sales) or out (cancel); the queue decides. */
	rules_classify("quero fazer a portabilidade do meu número", "comercial", &r);
	CHECK(r.intent == INTENT_SALES);
	rules_classify("quero fazer a portabilidade do meu número", "cancelamento", &r);
	CHECK(r.intent == INTENT_CANCEL);
	rules_classify("quero fazer a portabilidade do meu número", NULL, &r);
	CHECK(r.intent == INTENT_CANCEL);
	/* No keyword: the domain's intent. */
	rules_classify("preciso falar com alguém sobre meu endereço", "financeiro", &r);
	CHECK(r.intent == INTENT_BILLING);
	rules_classify("preciso falar com alguém sobre meu endereço", "suporte", &r);
	CHECK(r.intent == INTENT_OUTAGE);
	rules_classify("preciso falar com alguém sobre meu endereço", NULL, &r);
	CHECK(r.intent == INTENT_OTHER);
	rules_classify("preciso falar com alguém sobre meu endereço", "desconhecido", &r);
	CHECK(r.intent == INTENT_OTHER);
	/* A clear keyword beats the domain. */
	rules_classify("quero cancelar", "comercial", &r);
	CHECK(r.intent == INTENT_CANCEL);
}

TEST(hints_are_concrete)
{
	rules_result_t r;
	rules_classify("o pagamento de R$ 129,00 não foi reconhecido", "financeiro", &r);
	CHECK(strstr(r.text, "R$ 129,00") != NULL);
	printf("  %s\n", r.text);

	rules_classify("meu protocolo 2024-88123 continua sem resposta", "ouvidoria", &r);
	CHECK(strstr(r.text, "2024-88123") != NULL);
	printf("  %s\n", r.text);

	rules_classify("vocês atendem no bairro Boa Viagem?", "comercial", &r);
	CHECK(strstr(r.text, "Boa Viagem") != NULL);
	printf("  %s\n", r.text);

	rules_classify("preciso da segunda via do boleto de março", "financeiro", &r);
	CHECK(strstr(r.text, "março") != NULL);

	rules_classify("internet muito lenta hoje, não passa de 300 mega", "suporte", &r);
	CHECK(r.intent == INTENT_OUTAGE && strstr(r.text, "300 mega") != NULL);
	printf("  %s\n", r.text);

	rules_classify("estou sem internet há 10 dias e trabalho em casa, é urgente", "suporte", &r);
	CHECK(r.critical && strstr(r.text, "há 10 dias") != NULL);
	printf("  %s\n", r.text);

	rules_classify("o roteador está piscando luz vermelha", "suporte", &r);
	CHECK(strstr(r.text, "luz continuar vermelha") != NULL);

	/* Missing details leave no trace of the template. */
	rules_classify("minha fatura veio com valor errado", "financeiro", &r);
	CHECK(!strchr(r.text, '{') && !strchr(r.text, '[') && !strstr(r.text, "R$"));
}

TEST(hints_vary)
{
	static const char *const texts[] = {
		"quero parcelar a fatura atrasada",      "quanto custa o plano família?",
		"a conexão cai toda hora",               "o técnico não apareceu na visita marcada",
		"tem multa se eu cancelar agora?",        "acho que clonaram meu cartão",
		"vou entrar na justiça contra vocês",     "meu pai depende do aparelho ligado na internet",
	};
	rules_result_t r[sizeof(texts) / sizeof(texts[0])];
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		rules_classify(texts[i], NULL, &r[i]);
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(r[i].text, r[j].text) != 0);
	}
}

TEST(deterministic_and_long_input)
{
	rules_result_t a, b;
	rules_classify("minha internet caiu desde ontem", "suporte", &a);
	rules_classify("minha internet caiu desde ontem", "suporte", &b);
	CHECK(memcmp(&a, &b, sizeof(a)) == 0);

	size_t n = 10000;
	char *big = malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		big[i] = "sem internet "[i % 13];
	big[n] = '\0';
	rules_classify(big, NULL, &a);
	CHECK(a.intent == INTENT_OUTAGE);
	CHECK(strlen(a.text) < sizeof(a.text));
	memset(big, 0xC3, n); /* invalid UTF-8 throughout */
	rules_classify(big, "suporte", &a);
	CHECK(a.intent == INTENT_OTHER);
	free(big);
}

/* A voice note: alone, the hint says to listen; with its transcript, classified like text and
 * the hint says it came from a voice note. */
TEST(voice_notes)
{
	rules_result_t r;
	rules_classify(RULES_VOICE_MARK, "suporte", &r);
	CHECK(strstr(r.text, "ouça o áudio") != NULL);
	CHECK(r.intent == INTENT_OTHER && !r.critical);
	rules_classify(RULES_VOICE_MARK " quero cancelar o contrato", "suporte", &r);
	CHECK(r.intent == INTENT_CANCEL);
	CHECK(strncmp(r.text, "(Mensagem de voz, transcrita) ", 30) == 0);
}

int main(void)
{
	RUN(corpus_accuracy);
	RUN(corpus_accuracy_without_domain);
	RUN(intent_names);
	RUN(accents_and_case);
	RUN(critical_cases);
	RUN(empty_and_short);
	RUN(domain_breaks_ties_and_defaults);
	RUN(hints_are_concrete);
	RUN(hints_vary);
	RUN(deterministic_and_long_input);
	RUN(voice_notes);
	return unit_done();
}
