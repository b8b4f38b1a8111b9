/*
 * Unit tests of rules: the labelled corpus (test/fixtures/corpus.jsonl, run from the
 * project root) must be classified with >= 95% intent accuracy, 100% critical recall and
 * <= 2% critical false positives; the WhatsApp-style tuning sets (heldout, dev2) with >= 90%
 * intents and critical recall; plus hand-written cases the corpus does not cover.
 */
#include "../../worker/coach.h"
#include "../../worker/rules.h"
#include "text.h"
#include "unit.h"

#include <cJSON.h>
#include <stdlib.h>

#define CORPUS "test/fixtures/corpus.jsonl"
#define HELDOUT "test/fixtures/heldout/heldout.jsonl"
#define DEV "test/fixtures/heldout/dev.jsonl"
#define DEV2 "test/fixtures/heldout/dev2.jsonl"
#define FRESH "test/fixtures/heldout/fresh.jsonl"
#define FRESH2 "test/fixtures/heldout/fresh2.jsonl"
#define FRESH3 "test/fixtures/heldout/fresh3.jsonl"
#define PROBES "test/fixtures/heldout/probes.jsonl"

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

typedef struct {
	int rows, ok, per_rows[INTENT_OTHER + 1], per_ok[INTENT_OTHER + 1];
	int critical_rows, critical_hit, normal_rows, normal_flagged;
	int hinted, routed, routed_ok; /* with a configuration: what ai.route_confident would do */
} heldout_stats_t;

/* Classifies every row of a WhatsApp-style set (test/fixtures/heldout/README.md) without a
 * domain, as a message on a general number arrives. Misses are printed when verbose. With
 * cfg, also counts the rows long enough to be hinted and those routed to the rules
 * (coach_route_decide), each message analysed alone. */
static bool heldout_run(const char *path, heldout_stats_t *st, bool verbose, const cfg_t *cfg)
{
	char line[4096];
	FILE *f = fopen(path, "r");

	memset(st, 0, sizeof(*st));
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		cJSON *row = cJSON_Parse(line);
		const cJSON *intent = cJSON_GetObjectItemCaseSensitive(row, "intent");
		const cJSON *text = cJSON_GetObjectItemCaseSensitive(row, "text");
		const cJSON *critical = cJSON_GetObjectItemCaseSensitive(row, "critical");
		rules_intent_t want;
		if (!cJSON_IsString(intent) || !cJSON_IsString(text) || !cJSON_IsBool(critical) ||
		    !rules_intent_parse(intent->valuestring, &want)) {
			cJSON_Delete(row);
			continue;
		}
		rules_result_t r;
		if (cfg && text_utf8_length(text->valuestring) >= (size_t)cfg->coaching.min_message_length) {
			st->hinted++;
			if (coach_route_decide(cfg, text->valuestring, NULL, &r)) {
				st->routed++;
				st->routed_ok += r.intent == want;
			}
		}
		rules_classify(text->valuestring, NULL, &r);
		st->rows++;
		st->per_rows[want]++;
		if (r.intent == want) {
			st->ok++;
			st->per_ok[want]++;
		} else if (verbose) {
			printf("  miss: %s -> %s (%.2f): %s\n", intent->valuestring, rules_intent_name(r.intent),
			       r.confidence, text->valuestring);
		}
		if (cJSON_IsTrue(critical)) {
			st->critical_rows++;
			st->critical_hit += r.critical;
			if (!r.critical && verbose)
				printf("  critical missed: %s\n", text->valuestring);
		} else {
			st->normal_rows++;
			st->normal_flagged += r.critical;
			if (r.critical && verbose)
				printf("  false critical (%s): %s\n", r.critical_reason, text->valuestring);
		}
		cJSON_Delete(row);
	}
	fclose(f);
	return true;
}

/* One JSON line per set (make bench collects the "rules_heldout" one). */
static void heldout_print(const char *name, const heldout_stats_t *st)
{
	printf("{\"bench\": \"rules_%s\", \"messages\": %d, \"accuracy\": %.3f", name, st->rows,
	       st->rows ? (double)st->ok / st->rows : 0.0);
	for (int i = 0; i <= INTENT_OTHER; i++)
		printf(", \"%s\": [%d, %d, %.3f]", rules_intent_name((rules_intent_t)i), st->per_ok[i], st->per_rows[i],
		       st->per_rows[i] ? (double)st->per_ok[i] / st->per_rows[i] : 0.0);
	printf(", \"critical_recall\": [%d, %d], \"critical_false\": [%d, %d]}\n", st->critical_hit,
	       st->critical_rows, st->normal_flagged, st->normal_rows);
}

/* A measured set's floor: intent accuracy >= 90%, critical recall >= 90%, <= 3% false flags. */
static void heldout_check(const char *name, const char *path, const char *verbose_env)
{
	heldout_stats_t st;
	CHECK(heldout_run(path, &st, getenv(verbose_env) != NULL, NULL));
	CHECK(st.rows >= 300);
	if (st.rows == 0 || st.normal_rows == 0)
		return;
	heldout_print(name, &st);
	CHECK(100.0 * st.ok / st.rows >= 90.0);
	CHECK(st.critical_rows > 0 && 100.0 * st.critical_hit / st.critical_rows >= 90.0);
	CHECK(100.0 * st.normal_flagged / st.normal_rows <= 3.0);
}

/* Tuning happens on the dev, held-out, dev2 and (since 2026-12-05) fresh and fresh2 sets
 * (misses listed with RULES_VERBOSE=1, RULES_VERBOSE_HELDOUT=1, RULES_VERBOSE_DEV2=1,
 * RULES_VERBOSE_FRESH=1 and RULES_VERBOSE_FRESH2=1); the large ones are held to the floor. */
TEST(heldout_accuracy)
{
	heldout_stats_t dev;
	CHECK(heldout_run(DEV, &dev, getenv("RULES_VERBOSE") != NULL, NULL));
	heldout_print("dev", &dev);
	heldout_check("heldout", HELDOUT, "RULES_VERBOSE_HELDOUT");
	heldout_check("dev2", DEV2, "RULES_VERBOSE_DEV2");
	heldout_check("fresh", FRESH, "RULES_VERBOSE_FRESH");
	/* the short probes and vocabulary audits (no critical rows): intents only */
	heldout_stats_t probes;
	CHECK(heldout_run(PROBES, &probes, getenv("RULES_VERBOSE_PROBES") != NULL, NULL));
	heldout_print("probes", &probes);
	CHECK(probes.rows >= 300 && 100.0 * probes.ok / probes.rows >= 90.0);
	heldout_check("fresh2", FRESH2, "RULES_VERBOSE_FRESH2");
	/* fresh3 is only measured: a floor would invite tuning towards it (its misses are not
	 * listed either) */
	heldout_stats_t fresh3;
	CHECK(heldout_run(FRESH3, &fresh3, false, NULL));
	CHECK(fresh3.rows >= 400);
	heldout_print("fresh3", &fresh3);
}

static void routing_print(const char *name, const heldout_stats_t *st, int messages)
{
	printf("{\"bench\": \"routing_%s\", \"messages\": %d, \"hinted\": %d, \"routed\": %d, "
	       "\"routed_right\": %d, \"routed_wrong_share\": %.3f, \"ai_calls_per_1000\": %.0f}\n",
	       name, messages, st->hinted, st->routed, st->routed_ok,
	       st->routed ? 1.0 - (double)st->routed_ok / st->routed : 0.0,
	       messages ? 1000.0 * (st->hinted - st->routed) / messages : 0.0);
}

/* The seed's routing defaults (deploy/atende.conf, ai.route_min_confidence and
 * ai.route_max_chars) are chosen on the five tuning sets: on each, at most 2% of the routed
 * hints may be on the wrong intent (the AI calls per 1,000 printed assume every message not
 * routed reaches the AI, no cache). */
TEST(routing_defaults)
{
	cfg_t cfg;
	char err[256];
	heldout_stats_t dev, held, dev2, fresh, fresh2, fresh3;
	CHECK(cfg_load("deploy/atende.conf", &cfg, err, sizeof(err)));
	CHECK(heldout_run(DEV, &dev, false, &cfg));
	CHECK(heldout_run(HELDOUT, &held, false, &cfg));
	CHECK(heldout_run(DEV2, &dev2, false, &cfg));
	CHECK(heldout_run(FRESH, &fresh, false, &cfg));
	heldout_stats_t both = {.hinted = dev.hinted + held.hinted, .routed = dev.routed + held.routed,
				.routed_ok = dev.routed_ok + held.routed_ok};
	routing_print("dev_heldout", &both, dev.rows + held.rows);
	routing_print("dev2", &dev2, dev2.rows);
	routing_print("fresh", &fresh, fresh.rows);
	CHECK(heldout_run(FRESH2, &fresh2, false, &cfg));
	routing_print("fresh2", &fresh2, fresh2.rows);
	CHECK(both.routed > both.hinted / 2);
	CHECK(100.0 * (both.routed - both.routed_ok) <= 2.0 * both.routed);
	CHECK(100.0 * (dev2.routed - dev2.routed_ok) <= 2.0 * dev2.routed);
	CHECK(100.0 * (fresh.routed - fresh.routed_ok) <= 2.0 * fresh.routed);
	CHECK(100.0 * (fresh2.routed - fresh2.routed_ok) <= 2.0 * fresh2.routed);
	/* issue 20's budget: at most 300 AI calls per 1,000 messages of the newest tuning set */
	CHECK(1000.0 * (fresh2.hinted - fresh2.routed) <= 300.0 * fresh2.rows);
	CHECK(heldout_run(FRESH3, &fresh3, false, &cfg)); /* printed only, as above */
	routing_print("fresh3", &fresh3, fresh3.rows);
	cfg_free(&cfg);
}

/* The structural cues, on phrasings of no set: what follows a verb that ends something, the
 * people who served as the subject of a past-tense verb, a condition after "cancelar" or
 * before a formal complaint, the direction of a portability, refusals, orders, typos of
 * inflections, and a confidence that falls with what the keywords did not read. */
TEST(structural_cues)
{
	static const struct {
		const char *text;
		rules_intent_t want;
	} cases[] = {
		{"tira o pacote de filmes pfv", INTENT_CANCEL},
		{"quero cancelar o plano de tv e ficar so com a internet", INTENT_CANCEL},
		{"da pra tirar a taxa de religacao?", INTENT_BILLING},
		{"o vendedor prometeu desconto e nao apareceu na fatura", INTENT_COMPLAINT},
		{"o rapaz da loja me tratou super mal", INTENT_COMPLAINT},
		{"o tecnico trocou o roteador e continua sem internet", INTENT_OUTAGE},
		{"a moca resolveu rapidinho, obrigado", INTENT_OTHER},
		{"vou cancelar se nao voltar hoje, sem internet desde ontem", INTENT_OUTAGE},
		{"quero portar meu numero da claro pra voces", INTENT_SALES},
		{"quero levar meu numero pra tim", INTENT_CANCEL},
		{"nao vou renovar o contrato, me fala como encerra", INTENT_CANCEL},
		{"tem alguma oferta pra renovar meu contrato?", INTENT_SALES},
		/* what the customer refuses or never did is not asked for; a question about
		 * cancelling, or the company as the one who cancels, is no threat; an order opens
		 * with its verb; a judgement of oneself is no complaint */
		{"nao quero upgrade nenhum, so me explica essa cobranca", INTENT_BILLING},
		{"nao queremos cancelar, so trocar a titularidade pro meu nome", INTENT_OTHER},
		{"se eu cancelar agora tem multa?", INTENT_CANCEL},
		{"ja pedi o cancelamento, pode ver se ja esta cancelado?", INTENT_CANCEL},
		{"se nao cancelarem hoje vou no procon", INTENT_CANCEL},
		{"cancelaram a instalacao de novo sem me avisar", INTENT_COMPLAINT},
		{"desativa essa linha extra que eu nao uso", INTENT_CANCEL},
		{"queria canselá o pacote de canais", INTENT_CANCEL},
		{"sou pessima com tecnologia, como troco a senha do app?", INTENT_OTHER},
	};
	rules_result_t r;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rules_classify(cases[i].text, NULL, &r);
		if (r.intent != cases[i].want)
			printf("  %s -> %s\n", cases[i].text, rules_intent_name(r.intent));
		CHECK(r.intent == cases[i].want);
	}
	/* the same keyword is less sure when most of the message is words the table does not know */
	rules_result_t known;
	rules_classify("quero cancelar o plano", NULL, &known);
	rules_classify("quero cancelar o plano da jardinagem mensal do sitio em atibaia", NULL, &r);
	CHECK(known.intent == INTENT_CANCEL && r.intent == INTENT_CANCEL && r.confidence < known.confidence);
	/* a formal complaint under a condition is a threat: the fault is the subject */
	rules_classify("se nao me ligarem hoje vou abrir reclamacao, to sem sinal faz 3 dias", NULL, &r);
	CHECK(r.intent == INTENT_OUTAGE);
}

TEST(whatsapp_writing)
{
	rules_result_t r;
	/* slang, abbreviations, no accents */
	rules_classify("to sem net desde ontem", NULL, &r);
	CHECK(r.intent == INTENT_OUTAGE);
	rules_classify("me manda a 2a via pfv", NULL, &r);
	CHECK(r.intent == INTENT_BILLING);
	CHECK(strstr(r.text, "segunda via") != NULL);
	rules_classify("ta osso, a net nao funciona", NULL, &r);
	CHECK(r.intent == INTENT_OUTAGE);
	/* typos: one edit on longer words, emphasis squeezed */
	rules_classify("canselar o plano", NULL, &r);
	CHECK(r.intent == INTENT_CANCEL);
	rules_classify("a intenet esta lentaa", NULL, &r);
	CHECK(r.intent == INTENT_OUTAGE);
	rules_classify("oii", NULL, &r);
	CHECK(r.intent == INTENT_OTHER && r.confidence > 0.9);
	/* a short word is not "corrected" into a keyword: "muita" is not "multa" */
	rules_classify("muita gente aqui", NULL, &r);
	CHECK(r.intent == INTENT_OTHER);
	/* the request at the end outweighs the story at the start */
	rules_classify("oi boa tarde, a internet ta ruim ha meses, ja chamei tecnico 4 vezes. cansei, quero cancelar",
		       NULL, &r);
	CHECK(r.intent == INTENT_CANCEL);
	/* a cancel threat is about the problem; a request is a cancel */
	rules_classify("se nao voltar minha net hoje vou cancelar", NULL, &r);
	CHECK(r.intent == INTENT_OUTAGE);
	CHECK(strstr(r.text, "ameaça cancelar") != NULL);
	rules_classify("quero cancelar minha internet", NULL, &r);
	CHECK(r.intent == INTENT_CANCEL);
	CHECK(strstr(r.text, "ameaça") == NULL);
	/* confidence: high for a clear request, low for a guess */
	rules_classify("quero cancelar minha internet", NULL, &r);
	CHECK(r.confidence >= 0.7);
	rules_classify("preciso falar com alguém sobre meu endereço", "financeiro", &r);
	CHECK(r.confidence < 0.5);
	rules_classify("a fatura veio errada e a internet caiu", NULL, &r);
	CHECK(r.confidence < 0.7);
	/* a judgement is a fault after a service, a complaint after the people who served */
	rules_classify("a internet ta uma porcaria", NULL, &r);
	CHECK(r.intent == INTENT_OUTAGE);
	rules_classify("o atendimento de vcs e uma porcaria", NULL, &r);
	CHECK(r.intent == INTENT_COMPLAINT);
	rules_classify("a internet ta lenta desde ontem a noite, quero cancelar", NULL, &r);
	CHECK(r.intent == INTENT_CANCEL); /* "lenta" is a fault once, not a judgement on top */
	/* an inflection is not a typo: "funcionar" stays and "parou de funcionar" matches */
	rules_classify("o decodificador parou de funcionar", NULL, &r);
	CHECK(r.intent == INTENT_OUTAGE);
	/* a cancellation told as the story of a bill is not a request */
	rules_classify("a fatura veio com um servico que eu cancelei faz 3 meses", NULL, &r);
	CHECK(r.intent == INTENT_BILLING);
}

TEST(cache_key)
{
	char a[512], b[512];
	rules_cache_key("Bom dia! Meu nome é Carla, a fatura de março veio R$ 189,90 e meu plano é de 99", a, sizeof(a));
	rules_cache_key("oi, meu nome e Pedro. a fatura de abril veio r$212 e meu plano e de 120 reais", b, sizeof(b));
	printf("  %s\n  %s\n", a, b);
	CHECK(strstr(a, "carla") == NULL && strstr(b, "pedro") == NULL);
	CHECK(strstr(a, "189") == NULL && strstr(a, "marco") == NULL && strstr(a, "bom") == NULL);
	CHECK_STR(a, "a fatura de mes veio 0 meu plano de 0");
	CHECK(strncmp(a, b, strlen(a)) == 0); /* b adds "reais" */
	rules_cache_key("protocolo 2024-88123, vc pode ver?", a, sizeof(a));
	CHECK_STR(a, "protocolo 0 voce pode ver");
	rules_cache_key("Oi, boa tarde!", a, sizeof(a));
	CHECK_STR(a, "");
	rules_cache_key(NULL, a, sizeof(a));
	CHECK_STR(a, "");
	/* a small buffer cuts at a word */
	rules_cache_key("quero cancelar minha internet hoje", a, 16);
	CHECK_STR(a, "quero cancelar");
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
	RUN(heldout_accuracy);
	RUN(routing_defaults);
	RUN(structural_cues);
	RUN(whatsapp_writing);
	RUN(cache_key);
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
