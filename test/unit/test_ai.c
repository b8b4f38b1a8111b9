/*
 * test_ai: the circuit breaker on a fake clock, the AI client's pure pieces (tier rule,
 * prompt content, completion parsing, cost), then the client itself against a fake
 * OpenAI server built on common/http in the same event_base: success, retries and
 * fallback, timeouts, 429 pausing the whole provider, the breaker, 600 calls in flight.
 */
#include "ai.h"
#include "breaker.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "rules.h"
#include "unit.h"

#include <cJSON.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ================================================================ breaker (fake clock) */

static breaker_t mk_breaker(void)
{
	breaker_params_t p;
	breaker_params_default(&p);
	breaker_t b;
	breaker_init(&b, &p);
	return b;
}

TEST(breaker_opens_at_half_errors_over_min_calls)
{
	breaker_t b = mk_breaker();
	int64_t t = 1000000;
	bool probe;
	CHECK(breaker_state(&b) == BREAKER_CLOSED);
	CHECK_STR(breaker_state_name(breaker_state(&b)), "closed");
	/* 9 failures: under min_calls, stays closed */
	for (int i = 0; i < 9; i++) {
		CHECK(breaker_allow(&b, t, &probe) && !probe);
		breaker_record(&b, t, BREAKER_FAIL, false);
		t += 100;
	}
	CHECK(breaker_state(&b) == BREAKER_CLOSED);
	CHECK(breaker_allow(&b, t, NULL));
	breaker_record(&b, t, BREAKER_FAIL, false);
	CHECK(breaker_state(&b) == BREAKER_OPEN);
	CHECK_STR(breaker_state_name(BREAKER_OPEN), "open");
	CHECK(b.opens == 1);
	CHECK(!breaker_allow(&b, t + 1, &probe) && !probe);
	CHECK(!breaker_allow(&b, t + 29999, NULL));

	/* exactly 50 %: 5 ok + 5 fail opens; 6 ok + 4 fail does not */
	breaker_t c = mk_breaker();
	for (int i = 0; i < 6; i++)
		breaker_record(&c, t, BREAKER_OK, false);
	for (int i = 0; i < 4; i++)
		breaker_record(&c, t, BREAKER_FAIL, false);
	CHECK(breaker_state(&c) == BREAKER_CLOSED);
	breaker_t d = mk_breaker();
	for (int i = 0; i < 5; i++)
		breaker_record(&d, t, BREAKER_OK, false);
	for (int i = 0; i < 4; i++)
		breaker_record(&d, t, BREAKER_FAIL, false);
	CHECK(breaker_state(&d) == BREAKER_CLOSED); /* 9 calls */
	breaker_record(&d, t, BREAKER_FAIL, false);
	CHECK(breaker_state(&d) == BREAKER_OPEN);

	/* neutral outcomes (429) do not count */
	breaker_t e = mk_breaker();
	for (int i = 0; i < 20; i++)
		breaker_record(&e, t, BREAKER_NEUTRAL, false);
	int calls, errors;
	breaker_window(&e, t, &calls, &errors);
	CHECK(calls == 0 && errors == 0);
	CHECK(breaker_state(&e) == BREAKER_CLOSED);
}

TEST(breaker_window_slides)
{
	breaker_t b = mk_breaker();
	int64_t t = 5000000;
	int calls, errors;
	for (int i = 0; i < 9; i++)
		breaker_record(&b, t, BREAKER_FAIL, false);
	breaker_window(&b, t, &calls, &errors);
	CHECK(calls == 9 && errors == 9);
	/* 61 s later those failures are forgotten: one more failure does not open */
	t += 61000;
	breaker_window(&b, t, &calls, &errors);
	CHECK(calls == 0);
	breaker_record(&b, t, BREAKER_FAIL, false);
	CHECK(breaker_state(&b) == BREAKER_CLOSED);
	/* failures spread over 50 s all count */
	for (int i = 0; i < 9; i++)
		breaker_record(&b, t + (i + 1) * 5000, BREAKER_FAIL, false);
	CHECK(breaker_state(&b) == BREAKER_OPEN);
}

TEST(breaker_half_open_probe)
{
	breaker_t b = mk_breaker();
	int64_t t = 0;
	bool probe;
	for (int i = 0; i < 10; i++)
		breaker_record(&b, t, BREAKER_FAIL, false);
	CHECK(breaker_state(&b) == BREAKER_OPEN);
	t += 30000;
	CHECK(breaker_allow(&b, t, &probe) && probe);
	CHECK(breaker_state(&b) == BREAKER_HALF_OPEN);
	CHECK_STR(breaker_state_name(BREAKER_HALF_OPEN), "half_open");
	CHECK(!breaker_allow(&b, t, &probe) && !probe); /* one probe at a time */
	/* a late result of an old call says nothing */
	breaker_record(&b, t, BREAKER_OK, false);
	CHECK(breaker_state(&b) == BREAKER_HALF_OPEN);
	/* probe fails: open again for another 30 s */
	breaker_record(&b, t + 10, BREAKER_FAIL, true);
	CHECK(breaker_state(&b) == BREAKER_OPEN);
	CHECK(b.opens == 2);
	CHECK(!breaker_allow(&b, t + 20000, NULL));
	t += 30010;
	/* neutral probe (429) frees the slot for another probe */
	CHECK(breaker_allow(&b, t, &probe) && probe);
	breaker_record(&b, t, BREAKER_NEUTRAL, true);
	CHECK(breaker_state(&b) == BREAKER_HALF_OPEN);
	CHECK(breaker_allow(&b, t, &probe) && probe);
	/* probe succeeds: closed with an empty window */
	breaker_record(&b, t, BREAKER_OK, true);
	CHECK(breaker_state(&b) == BREAKER_CLOSED);
	int calls, errors;
	breaker_window(&b, t, &calls, &errors);
	CHECK(calls == 0);
	CHECK(breaker_allow(&b, t, &probe) && !probe);
	/* late failures while open are ignored */
	for (int i = 0; i < 10; i++)
		breaker_record(&b, t, BREAKER_FAIL, false);
	CHECK(breaker_state(&b) == BREAKER_OPEN);
	breaker_record(&b, t, BREAKER_FAIL, false);
	breaker_window(&b, t, &calls, &errors);
	CHECK(calls == 0);
}

/* ================================================================ pure pieces */

static ai_config_t base_cfg(void)
{
	ai_config_t c = {0};
	c.base_url = "http://127.0.0.1:1/v1";
	c.api_key = "test-key";
	c.model_small = "m-small";
	c.model_large = "m-large";
	c.large_min_chars = 200;
	c.large_min_words = 30;
	c.large_when_critical = true;
	c.timeout_ms = 2000;
	c.max_retries = 3;
	c.retry_base_ms = 50;
	c.deadline_ms = 10000;
	c.max_in_flight = 1000;
	c.history_messages = 10;
	c.history_max_tokens = 1000;
	c.price_small_in = 150000;
	c.price_small_out = 600000;
	c.price_large_in = 2500000;
	c.price_large_out = 10000000;
	breaker_params_default(&c.breaker);
	c.prompts_dir = "deploy/prompts";
	return c;
}

TEST(tier_rule)
{
	ai_config_t c = base_cfg();
	const char *shortm[] = {"minha fatura veio errada"};
	CHECK(!ai_use_large(&c, shortm, 1, false));
	CHECK(ai_use_large(&c, shortm, 1, true));
	c.large_when_critical = false;
	CHECK(!ai_use_large(&c, shortm, 1, true));
	char longm[400];
	memset(longm, 'a', sizeof(longm) - 1);
	longm[sizeof(longm) - 1] = 0;
	const char *l[] = {longm};
	CHECK(ai_use_large(&c, l, 1, false));
	/* 200 characters, counted as characters not bytes: 150 "ã" (300 bytes) stay small */
	char acc[301];
	for (int i = 0; i < 150; i++)
		memcpy(acc + 2 * i, "\xc3\xa3", 2);
	acc[300] = 0;
	const char *a[] = {acc};
	CHECK(!ai_use_large(&c, a, 1, false));
	/* many words, spread over grouped messages */
	const char *words[] = {"um dois tres quatro cinco seis sete oito nove dez onze doze treze quatorze quinze",
			       "um dois tres quatro cinco seis sete oito nove dez onze doze treze quatorze quinze"};
	CHECK(ai_use_large(&c, words, 2, false));
	CHECK(!ai_use_large(&c, words, 1, false));
	c.large_min_words = 0;
	c.large_min_chars = 0;
	CHECK(!ai_use_large(&c, l, 1, false));
	c.large_min_chars = 200;
	c.model_large = "";
	CHECK(!ai_use_large(&c, l, 1, false)); /* no large model configured */
}

TEST(user_content_history_bounds)
{
	ai_turn_t h[15];
	char texts[15][32];
	for (int i = 0; i < 15; i++) {
		snprintf(texts[i], sizeof(texts[i]), "turno-%02d", i);
		h[i].role = i % 2 ? AI_ROLE_AGENT : AI_ROLE_CUSTOMER;
		h[i].text = texts[i];
	}
	const char *news[] = {"primeira nova", "segunda nova"};
	char *u = ai_build_user_content(h, 15, 10, 1000, news, 2);
	CHECK(u != NULL);
	CHECK(strstr(u, "turno-04") == NULL);
	CHECK(strstr(u, "turno-05") != NULL);
	CHECK(strstr(u, "turno-14") != NULL);
	CHECK(strstr(u, "Cliente: turno-06") != NULL);
	CHECK(strstr(u, "Atendente: turno-07") != NULL);
	CHECK(strstr(u, "turno-05") < strstr(u, "turno-14")); /* oldest first */
	const char *m = strstr(u, "Mensagens novas do cliente:\n");
	CHECK(m != NULL && strstr(u, "turno-14") < m);
	CHECK(m && strcmp(m, "Mensagens novas do cliente:\nprimeira nova\nsegunda nova") == 0);
	free(u);
	/* token bound: each entry costs (8 + 12 + 3) / 4 = 5 tokens: 12 tokens keep 2 */
	u = ai_build_user_content(h, 15, 10, 12, news, 1);
	CHECK(strstr(u, "turno-12") == NULL && strstr(u, "turno-13") && strstr(u, "turno-14"));
	free(u);
	/* no history at all: no history header */
	u = ai_build_user_content(NULL, 0, 10, 1000, news, 1);
	CHECK(strncmp(u, "Mensagens novas do cliente:", 27) == 0);
	free(u);
	u = ai_build_user_content(h, 15, 0, 1000, news, 1);
	CHECK(strstr(u, "turno") == NULL);
	free(u);
}

TEST(parse_completion)
{
	ai_parsed_t p;
	char err[128];
	const char *ok = "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":"
			 "\"{\\\"intent\\\":\\\"billing\\\",\\\"critical\\\":true,\\\"hint\\\":\\\"Confirme a fatura.\\\"}\"}}],"
			 "\"usage\":{\"prompt_tokens\":120,\"completion_tokens\":30}}";
	CHECK(ai_parse_completion(ok, strlen(ok), &p, err, sizeof(err)));
	CHECK(p.intent == INTENT_BILLING && p.critical);
	CHECK_STR(p.hint, "Confirme a fatura.");
	CHECK(p.tokens_in == 120 && p.tokens_out == 30);

	const char *fenced = "{\"choices\":[{\"message\":{\"content\":\"```json\\n{\\\"intent\\\": \\\" Outage\\\", "
			     "\\\"critical\\\": false, \\\"hint\\\": \\\"Verifique a ONT.\\\"}\\n```\"}}]}";
	CHECK(ai_parse_completion(fenced, strlen(fenced), &p, err, sizeof(err)));
	CHECK(p.intent == INTENT_OUTAGE && !p.critical);
	CHECK_STR(p.hint, "Verifique a ONT.");
	CHECK(p.tokens_in == 0);

	const char *prose = "{\"choices\":[{\"message\":{\"content\":\"Claro! Segue: {\\\"intent\\\":\\\"cancel\\\","
			    "\\\"hint\\\":\\\"Pergunte o motivo.\\\"} Espero ter ajudado.\"}}]}";
	CHECK(ai_parse_completion(prose, strlen(prose), &p, err, sizeof(err)));
	CHECK(p.intent == INTENT_CANCEL && !p.critical);

	const char *bad[] = {
		"<html>502</html>",
		"{\"choices\":[]}",
		"{\"choices\":[{\"message\":{\"content\":\"nao sei\"}}],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}",
		"{\"choices\":[{\"message\":{\"content\":\"{\\\"intent\\\":\\\"sales\\\",\\\"hint\\\":\\\"  \\\"}\"}}]}",
		"{\"choices\":[{\"message\":{\"content\":\"{\\\"intent\\\":\\\"sales\\\",\\\"hint\\\":[\\\"x\\\"]}\"}}]}",
		"{\"choices\":[{\"message\":{\"content\":\"} {\"}}]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		CHECK(!ai_parse_completion(bad[i], strlen(bad[i]), &p, err, sizeof(err)));
		CHECK(err[0] != 0);
		if (i == 2)
			CHECK(p.tokens_in == 7 && p.tokens_out == 3); /* paid even when unusable */
	}
	/* a long hint is cut at a UTF-8 boundary */
	char big[4000];
	int n = snprintf(big, sizeof(big), "{\"choices\":[{\"message\":{\"content\":\"{\\\"intent\\\":\\\"other\\\",\\\"hint\\\":\\\"");
	for (int i = 0; i < 700; i++)
		n += snprintf(big + n, sizeof(big) - (size_t)n, "\xc3\xa9");
	snprintf(big + n, sizeof(big) - (size_t)n, "\\\"}\"}}]}");
	CHECK(ai_parse_completion(big, strlen(big), &p, err, sizeof(err)));
	CHECK(strlen(p.hint) < AI_HINT_MAX && strlen(p.hint) > AI_HINT_MAX - 8);
	CHECK(strcmp(p.hint + strlen(p.hint) - 3, "…") == 0);
	CHECK((strlen(p.hint) - 3) % 2 == 0); /* no "é" cut in two */
	CHECK(p.repaired & AI_REPAIRED_HINT_CUT);
}

/* A usable hint with odd other fields degrades instead of failing (issue 20). */
static bool parse_content(const char *content, ai_parsed_t *p)
{
	char body[4096], err[128];
	cJSON *root = cJSON_CreateObject();
	cJSON *choice = cJSON_CreateObject();
	cJSON *msg = cJSON_AddObjectToObject(choice, "message");
	cJSON_AddStringToObject(msg, "content", content);
	cJSON *choices = cJSON_AddArrayToObject(root, "choices");
	cJSON_AddItemToArray(choices, choice);
	char *txt = cJSON_PrintUnformatted(root);
	snprintf(body, sizeof(body), "%s", txt);
	free(txt);
	cJSON_Delete(root);
	return ai_parse_completion(body, strlen(body), p, err, sizeof(err));
}

TEST(parse_completion_degrades)
{
	ai_parsed_t p;
	CHECK(parse_content("{\"intent\":\"technical\",\"critical\":false,\"hint\":\"Peça o teste de velocidade.\"}", &p));
	CHECK(p.intent == INTENT_OTHER && !p.critical && p.repaired == AI_REPAIRED_INTENT);
	CHECK_STR(p.hint, "Peça o teste de velocidade.");
	CHECK(parse_content("{\"hint\":\"Cumprimente o cliente.\"}", &p));
	CHECK(p.intent == INTENT_OTHER && !p.critical);
	CHECK(p.repaired == (AI_REPAIRED_INTENT | AI_REPAIRED_CRITICAL));
	CHECK(parse_content("{\"intent\":\"Cancellation\",\"critical\":\"sim\",\"hint\":\"x\"}", &p));
	CHECK(p.intent == INTENT_CANCEL && p.critical);
	CHECK(p.repaired == (AI_REPAIRED_INTENT | AI_REPAIRED_CRITICAL));
	CHECK(parse_content("{\"intent\":\"billing_issue\",\"critical\":[1],\"hint\":\"x\"}", &p));
	CHECK(p.intent == INTENT_BILLING && !p.critical);
	CHECK(parse_content("{\"intent\":\"complaints\",\"critical\":1,\"hint\":\"x\"}", &p));
	CHECK(p.intent == INTENT_COMPLAINT && p.critical);
	CHECK(parse_content("{\"intent\":\"financeiro\",\"critical\":null,\"hint\":\"x\"}", &p));
	CHECK(p.intent == INTENT_BILLING && !p.critical);
	CHECK(parse_content("{\"intent\":\"OUTAGE\",\"critical\":true,\"hint\":\"x\"}", &p));
	CHECK(p.intent == INTENT_OUTAGE && p.critical && p.repaired == AI_REPAIRED_INTENT);
	CHECK(parse_content("{\"intent\":\"sales\",\"critical\":false,\"hint\":\"x\"}", &p));
	CHECK(p.repaired == 0);
	/* a long hint with spaces is cut at a word */
	char content[3000];
	int n = snprintf(content, sizeof(content), "{\"intent\":\"sales\",\"critical\":false,\"hint\":\"");
	for (int i = 0; i < 200; i++)
		n += snprintf(content + n, sizeof(content) - (size_t)n, "plano%d ", i);
	snprintf(content + n, sizeof(content) - (size_t)n, "\"}");
	CHECK(parse_content(content, &p));
	CHECK(p.repaired == AI_REPAIRED_HINT_CUT && strlen(p.hint) < AI_HINT_MAX);
	const char *end = p.hint + strlen(p.hint) - 3;
	CHECK(strcmp(end, "…") == 0 && end[-1] >= '0' && end[-1] <= '9'); /* a whole word before it */
	/* still unusable: no hint */
	CHECK(!parse_content("{\"intent\":\"sales\",\"critical\":false}", &p));
	CHECK(!parse_content("{\"intent\":\"sales\",\"hint\":\"\"}", &p));
}

TEST(cost)
{
	/* gpt-4o-mini prices: $0.15 / $0.60 per 1M tokens */
	double c = ai_cost_usd(1000000, 1000000, 150000, 600000);
	CHECK(c > 0.7499999 && c < 0.7500001);
	c = ai_cost_usd(100, 20, 150000, 600000);
	CHECK(c > 2.69e-5 && c < 2.71e-5);
	CHECK(ai_cost_usd(0, 0, 1, 1) == 0.0);
}

TEST(config_keys_and_prompts)
{
	cfg_t cfg;
	char err[2048];
	CHECK(cfg_load("deploy/atende.conf", &cfg, err, sizeof(err)));
	ai_config_t c;
	ai_config_from_cfg(&c, &cfg);
	CHECK_STR(c.model_small, "gpt-4o-mini");
	CHECK_STR(c.model_large, "gpt-4o");
	CHECK(c.max_retries == 3 && c.retry_base_ms == 2000);
	CHECK(c.max_in_flight == 1000 && c.history_messages == 10);
	CHECK(c.breaker.window_ms == 60000 && c.breaker.min_calls == 10 && c.breaker.error_pct == 50 &&
	      c.breaker.open_ms == 30000);
	CHECK(c.price_small_in == 150000 && c.price_large_out == 10000000);
	CHECK_STR(c.prompts_dir, "deploy/prompts");

	/* the shipped templates: one per domain, each asking for the JSON answer */
	struct event_base *base = event_base_new();
	c.base_url = "http://127.0.0.1:1/v1";
	ai_t *ai = ai_new(base, &c, err, sizeof(err));
	CHECK(ai != NULL);
	const char *upper[] = {"FINANCEIRO", "COMERCIAL", "SUPORTE", "OUVIDORIA", "CANCELAMENTO"};
	for (int d = 0; ai && d < CFG_MAX_DOMAINS; d++) {
		const char *p = ai_prompt(ai, cfg_domains[d]);
		CHECK(p != ai_prompt(ai, NULL));
		CHECK(strstr(p, upper[d]) != NULL);
		CHECK(strstr(p, "SOMENTE com um objeto JSON") != NULL);
		CHECK(strstr(p, "\"intent\"") && strstr(p, "\"critical\"") && strstr(p, "\"hint\""));
	}
	if (ai) {
		CHECK(strstr(ai_prompt(ai, "nenhum"), "SOMENTE com um objeto JSON") != NULL);
		CHECK(ai_prompt(ai, "nenhum") == ai_prompt(ai, NULL));
	}
	ai_free(ai);
	c.base_url = "";
	CHECK(ai_new(base, &c, err, sizeof(err)) == NULL);
	event_base_free(base);
	cfg_free(&cfg);
}

/* ================================================================ streamed answers (pure) */

/* Feeds text to a fresh parser in pieces of step bytes (every boundary is crossed). */
static void sse_feed_steps(ai_sse_t *s, const char *text, size_t step)
{
	size_t n = strlen(text);
	for (size_t i = 0; i < n; i += step)
		ai_sse_feed(s, text + i, n - i < step ? n - i : step);
}

TEST(sse_parser_chunk_boundaries)
{
	/* CRLF and LF lines, a comment, an event: line, a role-only delta, escapes and UTF-8 in the
	 * content, a finish chunk, the usage chunk with empty choices, [DONE] */
	static const char stream[] =
		": keep-alive\r\n\r\n"
		"event: message\n"
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n"
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"{\\\"intent\\\": \\\"billing\\\", \"}}]}\r\n\r\n"
		"data:{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\\\"hint\\\": \\\"Verifique a cobran\xc3\xa7\"}}]}\n\n"
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a \\\\\\\"extra\\\\\\\" \\u00e9 indevida.\\\"}\"}}]}\n\n"
		"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":321,\"completion_tokens\":45,\"total_tokens\":366}}\n\n"
		"data: [DONE]\n\n";
	static const char want[] = "{\"intent\": \"billing\", \"hint\": \"Verifique a cobran\xc3\xa7" "a \\\"extra\\\" \xc3\xa9 indevida.\"}";
	/* every piece size: 1 byte cuts every line, every UTF-8 sequence and every escape */
	size_t steps[] = {1, 2, 3, 7, 64, sizeof(stream)};
	for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		ai_sse_t s;
		ai_sse_init(&s);
		sse_feed_steps(&s, stream, steps[k]);
		CHECK_STR(s.content, want);
		CHECK(s.content_len == strlen(want));
		CHECK(s.usage && s.tokens_in == 321 && s.tokens_out == 45);
		CHECK(s.done && s.bad == 0);
		ai_parsed_t p;
		char err[96];
		CHECK(ai_parse_streamed(&s, false, &p, err, sizeof(err)));
		CHECK(p.intent == INTENT_BILLING && !p.critical && p.tokens_in == 321 && p.tokens_out == 45);
		CHECK_STR(p.hint, "Verifique a cobran\xc3\xa7" "a \"extra\" \xc3\xa9 indevida.");
		ai_sse_free(&s);
	}

	/* what a feed adds is reported; a line held back until its \n; a broken line is skipped */
	ai_sse_t s;
	ai_sse_init(&s);
	const char *head = "data: {\"choices\":[{\"delta\":{\"content\":\"abc", *tail = "\"}}]}\n";
	const char *more = "data: {not json\n\ndata: [DONE]\n";
	CHECK(ai_sse_feed(&s, head, strlen(head)) == 0);
	CHECK(s.content_len == 0);
	CHECK(ai_sse_feed(&s, tail, strlen(tail)) == 3);
	CHECK(ai_sse_feed(&s, more, strlen(more)) == 0);
	CHECK(s.bad == 1 && s.done && !s.usage);
	CHECK_STR(s.content, "abc");
	ai_parsed_t p;
	char err[96];
	CHECK(!ai_parse_streamed(&s, false, &p, err, sizeof(err))); /* "abc" is no JSON object */
	ai_sse_free(&s);

	/* a stream cut before the object closes: unusable (retried), its partial hint readable */
	ai_sse_init(&s);
	sse_feed_steps(&s, "data: {\"choices\":[{\"delta\":{\"content\":\"{\\\"hint\\\": \\\"Ofere\"}}]}\n", 5);
	CHECK(!ai_parse_streamed(&s, false, &p, err, sizeof(err)));
	char out[64];
	CHECK(ai_partial_string(s.content, s.content_len, "hint", out, sizeof(out), NULL));
	CHECK_STR(out, "Ofere");
	ai_sse_free(&s);

	/* bot mode reads the answer */
	ai_sse_init(&s);
	sse_feed_steps(&s, "data: {\"choices\":[{\"delta\":{\"content\":\"{\\\"answer\\\": \\\"Oi!\\\", \\\"handoff\\\": false}\"}}]}\n\n", 9);
	CHECK(ai_parse_streamed(&s, true, &p, err, sizeof(err)));
	CHECK_STR(p.hint, "Oi!");
	CHECK(!p.handoff);
	ai_sse_free(&s);
}

TEST(partial_hint_scanner)
{
	char out[64];
	bool whole;
	const char *full = "{\"intent\": \"cancel\", \"critical\": false, \"hint\" :\t\"Pergunte o motivo \\\"real\\\"\\n\\u00e9 j\xc3\xa1\"}";
	size_t n = strlen(full);
	/* every prefix: the text so far, never an escape or a UTF-8 sequence half written */
	size_t last = 0;
	for (size_t k = 0; k <= n; k++) {
		bool found = ai_partial_string(full, k, "hint", out, sizeof(out), &whole);
		const char *start = strstr(full, "\t\"") + 2;
		CHECK(found == (full + k >= start));
		if (!found)
			continue;
		size_t len = strlen(out);
		CHECK(len >= last); /* grows, never shrinks */
		last = len;
		CHECK(strncmp(out, "Pergunte o motivo \"real\"\n\xc3\xa9 j\xc3\xa1", len) == 0);
		/* it ends on a UTF-8 boundary */
		CHECK(len == 0 || ((unsigned char)out[len - 1] & 0xC0) != 0xC0);
		CHECK(whole == (k == n || k == n - 1));
	}
	CHECK_STR(out, "Pergunte o motivo \"real\"\n\xc3\xa9 j\xc3\xa1");
	/* cut inside the escapes: a lone backslash, \u with two hex digits, a UTF-8 lead byte */
	CHECK(ai_partial_string("{\"hint\": \"ab\\", 12, "hint", out, sizeof(out), &whole) && !whole);
	CHECK_STR(out, "ab");
	CHECK(ai_partial_string("{\"hint\": \"ab\\u00", 15, "hint", out, sizeof(out), NULL));
	CHECK_STR(out, "ab");
	CHECK(ai_partial_string("{\"hint\": \"ab\xc3", 12, "hint", out, sizeof(out), NULL));
	CHECK_STR(out, "ab");
	CHECK(ai_partial_string("{\"hint\": \"ab\xe2\x80", 13, "hint", out, sizeof(out), NULL));
	CHECK_STR(out, "ab");
	/* a surrogate pair: held until its second half, then one 4-byte sequence */
	CHECK(ai_partial_string("{\"hint\": \"ok \\ud83d\\ude0", 23, "hint", out, sizeof(out), NULL));
	CHECK_STR(out, "ok ");
	CHECK(ai_partial_string("{\"hint\": \"ok \\ud83d\\ude00\"", 26, "hint", out, sizeof(out), &whole) && whole);
	CHECK_STR(out, "ok \xf0\x9f\x98\x80");
	/* the name alone, a name inside another string, the member not started: not found */
	CHECK(!ai_partial_string("{\"hint", 6, "hint", out, sizeof(out), NULL));
	CHECK(!ai_partial_string("{\"hint\": ", 9, "hint", out, sizeof(out), NULL));
	CHECK(!ai_partial_string("{\"intent\": \"o \\\"hint\\\": \\\"x", 27, "hint", out, sizeof(out), NULL));
	CHECK(!ai_partial_string("{\"hints\": \"x\"", 13, "hint", out, sizeof(out), NULL));
	CHECK(ai_partial_string("{\"hint\": \"\"", 11, "hint", out, sizeof(out), &whole) && whole);
	CHECK_STR(out, "");
	/* intent read whole or not at all */
	CHECK(ai_partial_string("{\"intent\": \"bil", 15, "intent", out, sizeof(out), &whole) && !whole);
	CHECK(ai_partial_string("{\"intent\": \"billing\", \"cri", 26, "intent", out, sizeof(out), &whole) && whole);
	CHECK_STR(out, "billing");
	/* a small buffer: cut at a UTF-8 boundary */
	char tiny[5];
	CHECK(ai_partial_string("{\"hint\": \"ab\xc3\xa9\xc3\xa9\"}", 18, "hint", tiny, sizeof(tiny), &whole));
	CHECK_STR(tiny, "ab\xc3\xa9");
	CHECK(!whole);
}

/* ================================================================ the fake OpenAI server */

typedef enum { FK_OK, FK_429, FK_500, FK_GARBAGE, FK_HANG, FK_400, FK_SSE, FK_SSE_CUT } fmode_t;

#define FAKE_MAX_CALLS 2048

typedef struct fake_pending {
	struct fake_pending *prev, *next;
	struct fake *f;
	http_request_t *req;
	struct event *ev;
	int status;
	char *body;
} fake_pending_t;

typedef struct fake {
	struct event_base *base;
	http_server_t *srv;
	int port;
	fmode_t script[16]; /* modes of the first calls, then mode */
	int n_script;
	fmode_t mode;
	int latency_ms;
	int retry_after;
	const char *content;
	int prompt_tokens, completion_tokens;
	int calls;
	int64_t call_ms[FAKE_MAX_CALLS];
	char *models[FAKE_MAX_CALLS];
	char *users[FAKE_MAX_CALLS];
	char *systems[FAKE_MAX_CALLS];
	bool streamed[FAKE_MAX_CALLS]; /* the request asked for "stream": true with include_usage */
	char auth[128];
	int open_requests, max_open_requests;
	fake_pending_t *pending;
} fake_t;

static void fake_send(fake_pending_t *p);

static void fake_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	fake_send(arg);
}

static void fake_send(fake_pending_t *p)
{
	fake_t *f = p->f;
	if (p->status == 429) {
		char ra[16];
		snprintf(ra, sizeof(ra), "%d", f->retry_after);
		http_response_add_header(p->req, "Retry-After", ra);
	}
	http_respond(p->req, p->status, strncmp(p->body, "data:", 5) == 0 ? "text/event-stream" : "application/json",
		     p->body, strlen(p->body));
	f->open_requests--;
	if (p->prev)
		p->prev->next = p->next;
	else
		f->pending = p->next;
	if (p->next)
		p->next->prev = p->prev;
	if (p->ev)
		event_free(p->ev);
	free(p->body);
	free(p);
}

static char *fake_ok_body(fake_t *f, const char *model)
{
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "id", "chatcmpl-fake");
	cJSON_AddStringToObject(r, "object", "chat.completion");
	cJSON_AddStringToObject(r, "model", model);
	cJSON *ch = cJSON_AddArrayToObject(r, "choices");
	cJSON *c0 = cJSON_CreateObject();
	cJSON_AddItemToArray(ch, c0);
	cJSON_AddNumberToObject(c0, "index", 0);
	cJSON *m = cJSON_AddObjectToObject(c0, "message");
	cJSON_AddStringToObject(m, "role", "assistant");
	cJSON_AddStringToObject(m, "content", f->content);
	cJSON_AddStringToObject(c0, "finish_reason", "stop");
	cJSON *u = cJSON_AddObjectToObject(r, "usage");
	cJSON_AddNumberToObject(u, "prompt_tokens", f->prompt_tokens);
	cJSON_AddNumberToObject(u, "completion_tokens", f->completion_tokens);
	cJSON_AddNumberToObject(u, "total_tokens", f->prompt_tokens + f->completion_tokens);
	char *s = cJSON_PrintUnformatted(r);
	cJSON_Delete(r);
	return s;
}

/* f->content as an event stream in deltas of 7 bytes, then usage and [DONE]; cut: half of the
 * deltas and nothing else (the stream broken midway, though the HTTP answer completes). */
static char *fake_sse_body(fake_t *f, bool cut)
{
	size_t n = strlen(f->content), cap = 4096 + n * 16, o = 0;
	char *out = malloc(cap);
	for (size_t i = 0; i < n && (!cut || i < n / 2); i += 7) {
		char piece[8];
		snprintf(piece, sizeof(piece), "%.*s", (int)(n - i < 7 ? n - i : 7), f->content + i);
		cJSON *ev = cJSON_CreateObject(), *ch = cJSON_AddArrayToObject(ev, "choices"), *c0 = cJSON_CreateObject();
		cJSON_AddItemToArray(ch, c0);
		cJSON_AddStringToObject(cJSON_AddObjectToObject(c0, "delta"), "content", piece);
		char *js = cJSON_PrintUnformatted(ev);
		o += (size_t)snprintf(out + o, cap - o, "data: %s\n\n", js);
		free(js);
		cJSON_Delete(ev);
	}
	if (!cut)
		o += (size_t)snprintf(out + o, cap - o,
				      "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d}}\n\n"
				      "data: [DONE]\n\n",
				      f->prompt_tokens, f->completion_tokens);
	return out;
}

static void fake_handler(http_request_t *req, void *arg)
{
	fake_t *f = arg;
	if (strcmp(http_request_method(req), "POST") != 0 || strcmp(http_request_path(req), "/v1/chat/completions") != 0) {
		http_respond_error(req, 404, "not found");
		return;
	}
	size_t len;
	const char *body = http_request_body(req, &len);
	cJSON *j = cJSON_ParseWithLength(body, len);
	const cJSON *model = cJSON_GetObjectItem(j, "model");
	const cJSON *msgs = cJSON_GetObjectItem(j, "messages");
	const cJSON *sys = cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 0), "content");
	const cJSON *usr = cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 1), "content");
	int i = f->calls++;
	fmode_t mode = i < f->n_script ? f->script[i] : f->mode;
	if (i < FAKE_MAX_CALLS) {
		f->call_ms[i] = now_ms();
		f->models[i] = strdup(cJSON_IsString(model) ? model->valuestring : "?");
		f->users[i] = strdup(cJSON_IsString(usr) ? usr->valuestring : "?");
		f->systems[i] = strdup(cJSON_IsString(sys) ? sys->valuestring : "?");
		f->streamed[i] = cJSON_IsTrue(cJSON_GetObjectItem(j, "stream")) &&
				 cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "stream_options"), "include_usage"));
	}
	const char *auth = http_request_header(req, "Authorization");
	snprintf(f->auth, sizeof(f->auth), "%s", auth ? auth : "");
	fake_pending_t *p = calloc(1, sizeof(*p));
	p->f = f;
	p->req = req;
	switch (mode) {
	case FK_OK:
		p->status = 200;
		p->body = fake_ok_body(f, cJSON_IsString(model) ? model->valuestring : "?");
		break;
	case FK_429:
		p->status = 429;
		p->body = strdup("{\"error\":{\"message\":\"Rate limit reached\",\"type\":\"requests\"}}");
		break;
	case FK_500:
		p->status = 500;
		p->body = strdup("{\"error\":{\"message\":\"internal\"}}");
		break;
	case FK_400:
		p->status = 400;
		p->body = strdup("{\"error\":{\"message\":\"model not found\"}}");
		break;
	case FK_GARBAGE:
		p->status = 200;
		p->body = strdup("<html><body>upstream exploded</body></html>");
		break;
	case FK_HANG:
		p->status = 0;
		break;
	case FK_SSE:
	case FK_SSE_CUT:
		p->status = 200;
		p->body = fake_sse_body(f, mode == FK_SSE_CUT);
		break;
	}
	cJSON_Delete(j);
	p->next = f->pending;
	if (f->pending)
		f->pending->prev = p;
	f->pending = p;
	if (++f->open_requests > f->max_open_requests)
		f->max_open_requests = f->open_requests;
	if (mode == FK_HANG)
		return; /* never answered; freed with the server */
	if (f->latency_ms <= 0) {
		fake_send(p);
		return;
	}
	p->ev = evtimer_new(f->base, fake_timer_cb, p);
	struct timeval tv = {f->latency_ms / 1000, (f->latency_ms % 1000) * 1000};
	evtimer_add(p->ev, &tv);
}

static fake_t *fake_new(struct event_base *base)
{
	fake_t *f = calloc(1, sizeof(*f));
	char err[256];
	http_limits_t lim;
	http_limits_default(&lim);
	f->base = base;
	f->srv = http_server_new(base, "127.0.0.1:0", &lim, fake_handler, f, err, sizeof(err));
	if (!f->srv) {
		printf("  fake server: %s\n", err);
		free(f);
		return NULL;
	}
	f->port = http_server_port(f->srv);
	f->mode = FK_OK;
	f->content = "{\"intent\":\"billing\",\"critical\":true,\"hint\":\"Confirme o valor da fatura e abra a contestação.\"}";
	f->prompt_tokens = 100;
	f->completion_tokens = 20;
	f->retry_after = 1;
	return f;
}

/* Forgets the recorded calls (their strings freed) so a test can script the next ones. */
static void fake_forget_calls(fake_t *f)
{
	for (int i = 0; i < f->calls && i < FAKE_MAX_CALLS; i++)
		free(f->models[i]), free(f->users[i]), free(f->systems[i]);
	f->calls = 0;
}

static void fake_free(fake_t *f)
{
	if (!f)
		return;
	while (f->pending) {
		fake_pending_t *p = f->pending;
		f->pending = p->next;
		if (p->ev)
			event_free(p->ev);
		free(p->body);
		free(p);
	}
	http_server_free(f->srv);
	fake_forget_calls(f);
	free(f);
}

/* ================================================================ client harness */

typedef struct {
	bool called, ok;
	char source[16], model[32], error[128], hint[AI_HINT_MAX];
	rules_intent_t intent;
	bool critical;
	int tokens_in, tokens_out, latency_ms, attempts, n_texts;
	double cost;
	int64_t at;
} got_t;

typedef struct {
	struct event_base *base;
	int expected, got;
	got_t r[1024];
} col_t;

typedef struct {
	col_t *col;
	int i;
} slot_t;

static slot_t slots[1024];

static void on_done(const ai_result_t *res, void *arg)
{
	slot_t *s = arg;
	got_t *g = &s->col->r[s->i];
	g->called = true;
	g->ok = res->ok;
	snprintf(g->source, sizeof(g->source), "%s", res->source ? res->source : "(null)");
	snprintf(g->model, sizeof(g->model), "%s", res->model ? res->model : "(null)");
	snprintf(g->error, sizeof(g->error), "%s", res->error ? res->error : "(null)");
	snprintf(g->hint, sizeof(g->hint), "%s", res->hint ? res->hint : "(null)");
	g->intent = res->intent;
	g->critical = res->critical;
	g->tokens_in = res->tokens_in;
	g->tokens_out = res->tokens_out;
	g->latency_ms = res->latency_ms;
	g->attempts = res->attempts;
	g->cost = res->cost_usd;
	g->n_texts = res->n_texts;
	g->at = now_ms();
	if (++s->col->got >= s->col->expected)
		event_base_loopbreak(s->col->base);
}

static void break_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	event_base_loopbreak(arg);
}

/* Runs the loop until every expected result came or ms passed; true when all came. */
static bool run_until_done(struct event_base *base, col_t *col, int ms)
{
	if (col->got >= col->expected)
		return true;
	struct event *t = evtimer_new(base, break_cb, base);
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(t, &tv);
	event_base_dispatch(base);
	event_free(t);
	if (col->got < col->expected)
		printf("  only %d of %d results after %d ms\n", col->got, col->expected, ms);
	return col->got >= col->expected;
}

/* Runs the loop for ms whatever happens. */
static void run_for(struct event_base *base, int ms)
{
	struct event *t = evtimer_new(base, break_cb, base);
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(t, &tv);
	event_base_dispatch(base);
	event_free(t);
}

static bool send_one(ai_t *ai, col_t *col, int i, const char *domain, const char *text, bool critical)
{
	const char *texts[] = {text};
	ai_request_t req = {.domain = domain, .company = 1, .conversation = "conv-1", .texts = texts, .n_texts = 1,
			    .critical = critical};
	slots[i].col = col;
	slots[i].i = i;
	col->expected++;
	return ai_request(ai, &req, on_done, &slots[i]);
}

typedef struct {
	struct event_base *base;
	fake_t *fake;
	ai_t *ai;
	col_t *col;
	char url[64];
} env_t;

static bool env_open(env_t *e, ai_config_t *c)
{
	memset(e, 0, sizeof(*e));
	e->base = event_base_new();
	e->fake = fake_new(e->base);
	e->col = calloc(1, sizeof(col_t));
	e->col->base = e->base;
	if (!e->fake)
		return false;
	snprintf(e->url, sizeof(e->url), "http://127.0.0.1:%d/v1", e->fake->port);
	c->base_url = e->url;
	char err[256];
	e->ai = ai_new(e->base, c, err, sizeof(err));
	if (!e->ai)
		printf("  ai_new: %s\n", err);
	return e->ai != NULL;
}

static void env_close(env_t *e)
{
	ai_free(e->ai);
	fake_free(e->fake);
	free(e->col);
	event_base_free(e->base);
}

/* ================================================================ client tests */

static char prompts_dir[64];

TEST(ai_success_parses_and_prices)
{
	ai_config_t c = base_cfg();
	c.prompts_dir = prompts_dir;
	env_t e;
	CHECK(env_open(&e, &c));
	if (!e.ai)
		{ env_close(&e); return; }
	ai_turn_t hist[12];
	char ht[12][32];
	for (int i = 0; i < 12; i++) {
		snprintf(ht[i], sizeof(ht[i]), "historico-%02d", i);
		hist[i] = (ai_turn_t){i % 2 ? AI_ROLE_AGENT : AI_ROLE_CUSTOMER, ht[i]};
	}
	const char *texts[] = {"a fatura veio com valor dobrado", "e ja paguei mes passado"};
	ai_request_t req = {.domain = "suporte", .company = 7, .conversation = "c-9", .texts = texts, .n_texts = 2,
			    .history = hist, .n_history = 12};
	slots[0] = (slot_t){e.col, 0};
	e.col->expected = 1;
	CHECK(ai_request(e.ai, &req, on_done, &slots[0]));
	CHECK(e.col->got == 0); /* never from inside ai_request */
	CHECK(run_until_done(e.base, e.col, 5000));
	got_t *g = &e.col->r[0];
	CHECK(g->ok);
	CHECK_STR(g->source, "ai");
	CHECK_STR(g->model, "m-small");
	CHECK(g->intent == INTENT_BILLING && g->critical);
	CHECK_STR(g->hint, "Confirme o valor da fatura e abra a contestação.");
	CHECK(g->tokens_in == 100 && g->tokens_out == 20);
	CHECK(g->cost > 2.69e-5 && g->cost < 2.71e-5); /* 100 x $0.15/1M + 20 x $0.60/1M */
	CHECK(g->attempts == 1);
	CHECK_STR(g->error, "");
	CHECK(g->n_texts == 2);
	CHECK(e.fake->calls == 1);
	CHECK_STR(e.fake->auth, "Bearer test-key");
	CHECK_STR(e.fake->systems[0], "PROMPT SUPORTE");
	CHECK(strstr(e.fake->users[0], "historico-01") == NULL); /* only the last 10 */
	CHECK(strstr(e.fake->users[0], "historico-02") != NULL);
	CHECK(strstr(e.fake->users[0], "Mensagens novas do cliente:\na fatura veio com valor dobrado\ne ja paguei") != NULL);

	/* tiers: long -> large (priced as large); critical -> large; other domain -> default prompt */
	char longm[300];
	memset(longm, 'x', sizeof(longm) - 1);
	longm[sizeof(longm) - 1] = 0;
	CHECK(send_one(e.ai, e.col, 1, "comercial", longm, false));
	CHECK(run_until_done(e.base, e.col, 5000));
	CHECK_STR(e.col->r[1].model, "m-large");
	CHECK(e.col->r[1].cost > 4.49e-4 && e.col->r[1].cost < 4.51e-4); /* 100 x 2.5 + 20 x 10, per 1M */
	CHECK(e.fake->calls == 2 && strcmp(e.fake->models[1], "m-large") == 0);
	CHECK_STR(e.fake->systems[1], "PROMPT DEFAULT");
	CHECK(send_one(e.ai, e.col, 2, "financeiro", "socorro urgente", true));
	CHECK(run_until_done(e.base, e.col, 5000));
	CHECK_STR(e.col->r[2].model, "m-large");
	CHECK(e.fake->calls == 3 && strcmp(e.fake->models[2], "m-large") == 0);
	CHECK(send_one(e.ai, e.col, 3, NULL, "oi tudo bem", false));
	CHECK(run_until_done(e.base, e.col, 5000));
	CHECK_STR(e.col->r[3].model, "m-small");

	ai_stats_t st;
	ai_stats(e.ai, &st);
	CHECK(st.requests == 4 && st.answered_ai == 4 && st.fallbacks == 0);
	CHECK(st.calls[0][AI_CLASS_2XX] == 2 && st.calls[1][AI_CLASS_2XX] == 2);
	CHECK(st.tokens_in == 400 && st.tokens_out == 80);
	CHECK(st.cost_usd > 2 * 2.69e-5 + 2 * 4.49e-4 && st.cost_usd < 2 * 2.71e-5 + 2 * 4.51e-4);
	CHECK(st.in_flight == 0 && st.pending == 0 && st.queued == 0);
	CHECK(st.breaker == BREAKER_CLOSED);
	CHECK_STR(st.models[0], "m-small");
	CHECK_STR(st.models[1], "m-large");
	CHECK_STR(ai_class_name(AI_CLASS_GARBAGE), "garbage");

	/* reconfigure: a new small model for what starts next */
	c.model_small = "m-small-2";
	char err[128];
	CHECK(ai_reconfigure(e.ai, &c, err, sizeof(err)));
	CHECK(send_one(e.ai, e.col, 4, "suporte", "oi de novo", false));
	CHECK(run_until_done(e.base, e.col, 5000));
	CHECK_STR(e.col->r[4].model, "m-small-2");
	c.model_small = "";
	CHECK(!ai_reconfigure(e.ai, &c, err, sizeof(err)));
	env_close(&e);
}

TEST(ai_retries_with_backoff_then_fallback)
{
	ai_config_t c = base_cfg();
	env_t e;
	CHECK(env_open(&e, &c));
	if (!e.ai)
		{ env_close(&e); return; }
	e.fake->mode = FK_500;
	const char *text = "minha internet caiu e nao volta";
	int64_t t0 = now_ms();
	CHECK(send_one(e.ai, e.col, 0, "suporte", text, false));
	CHECK(run_until_done(e.base, e.col, 5000));
	got_t *g = &e.col->r[0];
	rules_result_t rr;
	rules_classify(text, "suporte", &rr);
	CHECK(g->ok);
	CHECK_STR(g->source, "fallback");
	CHECK_STR(g->model, "m-small");
	CHECK(g->intent == rr.intent);
	CHECK_STR(g->hint, rr.text);
	CHECK(g->attempts == 4);
	CHECK(strstr(g->error, "http 500") != NULL);
	CHECK(e.fake->calls == 4);
	/* delays 50, 100, 200 ms between the calls */
	CHECK(e.fake->call_ms[1] - e.fake->call_ms[0] >= 45);
	CHECK(e.fake->call_ms[2] - e.fake->call_ms[1] >= 95);
	CHECK(e.fake->call_ms[3] - e.fake->call_ms[2] >= 195);
	CHECK(g->at - t0 >= 340 && g->latency_ms >= 340);
	ai_stats_t st;
	ai_stats(e.ai, &st);
	CHECK(st.retries == 3 && st.fallbacks == 1 && st.fallback_failed == 1);
	CHECK(st.calls[0][AI_CLASS_5XX] == 4);

	/* 500 then garbage then ok: the AI answer wins after two retries */
	e.fake->n_script = 0;
	fake_forget_calls(e.fake);
	e.fake->script[0] = FK_500;
	e.fake->script[1] = FK_GARBAGE;
	e.fake->script[2] = FK_OK;
	e.fake->n_script = 3;
	e.fake->mode = FK_500;
	CHECK(send_one(e.ai, e.col, 1, "suporte", text, false));
	CHECK(run_until_done(e.base, e.col, 5000));
	CHECK_STR(e.col->r[1].source, "ai");
	CHECK(e.col->r[1].attempts == 3);
	CHECK_STR(e.col->r[1].error, "");
	ai_stats(e.ai, &st);
	CHECK(st.calls[0][AI_CLASS_GARBAGE] == 1 && st.calls[0][AI_CLASS_2XX] == 1);

	/* a 400 is not retried */
	e.fake->mode = FK_400;
	e.fake->n_script = 0;
	CHECK(send_one(e.ai, e.col, 2, "suporte", text, false));
	CHECK(run_until_done(e.base, e.col, 5000));
	CHECK_STR(e.col->r[2].source, "fallback");
	CHECK(e.col->r[2].attempts == 1);
	CHECK(strstr(e.col->r[2].error, "http 400") != NULL);
	env_close(&e);
}

TEST(ai_garbage_and_timeout_fall_back)
{
	ai_config_t c = base_cfg();
	c.max_retries = 1;
	c.timeout_ms = 150;
	env_t e;
	CHECK(env_open(&e, &c));
	if (!e.ai)
		{ env_close(&e); return; }
	e.fake->mode = FK_GARBAGE;
	CHECK(send_one(e.ai, e.col, 0, "financeiro", "quero a segunda via do boleto", false));
	CHECK(run_until_done(e.base, e.col, 5000));
	CHECK_STR(e.col->r[0].source, "fallback");
	CHECK(e.col->r[0].attempts == 2);
	CHECK(strstr(e.col->r[0].error, "garbage") != NULL);

	e.fake->mode = FK_HANG;
	int64_t t0 = now_ms();
	CHECK(send_one(e.ai, e.col, 1, "suporte", "sem sinal desde ontem", false));
	CHECK(run_until_done(e.base, e.col, 5000));
	got_t *g = &e.col->r[1];
	CHECK_STR(g->source, "fallback");
	CHECK(g->ok);
	CHECK(g->attempts == 2);
	CHECK(strstr(g->error, "timeout") != NULL);
	CHECK(g->at - t0 >= 150 + 50 + 150 - 10);
	CHECK(g->at - t0 < 2000);
	ai_stats_t st;
	ai_stats(e.ai, &st);
	CHECK(st.calls[0][AI_CLASS_GARBAGE] == 2 && st.calls[0][AI_CLASS_TIMEOUT] == 2);
	CHECK(st.in_flight == 0);
	env_close(&e);
}

TEST(ai_connection_refused_falls_back)
{
	/* a port nobody listens on: transport errors are retried, then the rules answer */
	struct event_base *base = event_base_new();
	fake_t *f = fake_new(base);
	char url[64], err[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1", f ? f->port : 1);
	fake_free(f); /* frees the port */
	ai_config_t c = base_cfg();
	c.base_url = url;
	c.max_retries = 1;
	ai_t *ai = ai_new(base, &c, err, sizeof(err));
	CHECK(ai != NULL);
	col_t *col = calloc(1, sizeof(*col));
	col->base = base;
	if (ai) {
		CHECK(send_one(ai, col, 0, "ouvidoria", "vou no procon amanha", false));
		CHECK(run_until_done(base, col, 5000));
		CHECK_STR(col->r[0].source, "fallback");
		CHECK(col->r[0].attempts == 2);
		ai_stats_t st;
		ai_stats(ai, &st);
		CHECK(st.calls[0][AI_CLASS_CONN] == 2);
	}
	ai_free(ai);
	free(col);
	event_base_free(base);
}

TEST(ai_429_pauses_the_whole_provider)
{
	ai_config_t c = base_cfg();
	env_t e;
	CHECK(env_open(&e, &c));
	if (!e.ai)
		{ env_close(&e); return; }
	e.fake->script[0] = FK_429;
	e.fake->n_script = 1;
	e.fake->retry_after = 1;
	int64_t t0 = now_ms();
	CHECK(send_one(e.ai, e.col, 0, "suporte", "pedido A", false));
	run_for(e.base, 150);
	CHECK(e.fake->calls == 1);
	ai_stats_t st;
	ai_stats(e.ai, &st);
	CHECK(st.paused_ms > 700);
	CHECK(st.pauses_429 == 1);
	CHECK(send_one(e.ai, e.col, 1, "suporte", "pedido B", false));
	run_for(e.base, 300);
	CHECK(e.fake->calls == 1); /* B waits too: nobody calls during the pause */
	ai_stats(e.ai, &st);
	CHECK(st.queued == 2 && st.in_flight == 0);
	CHECK(run_until_done(e.base, e.col, 5000));
	CHECK(e.fake->calls == 3);
	CHECK(e.fake->call_ms[1] - t0 >= 950 && e.fake->call_ms[2] - t0 >= 950);
	/* FIFO: A (older) goes before B */
	CHECK(e.fake->calls >= 3 && strstr(e.fake->users[1], "pedido A") && strstr(e.fake->users[2], "pedido B"));
	CHECK_STR(e.col->r[0].source, "ai");
	CHECK(e.col->r[0].attempts == 2);
	CHECK_STR(e.col->r[1].source, "ai");
	CHECK(e.col->r[1].attempts == 1);
	ai_stats(e.ai, &st);
	CHECK(st.calls[0][AI_CLASS_429] == 1 && st.calls[0][AI_CLASS_2XX] == 2);
	CHECK(st.breaker == BREAKER_CLOSED);
	env_close(&e);

	/* a Retry-After longer than the remaining budget: fallback at once */
	c = base_cfg();
	c.deadline_ms = 1500;
	CHECK(env_open(&e, &c));
	if (!e.ai)
		{ env_close(&e); return; }
	e.fake->mode = FK_429;
	e.fake->retry_after = 3;
	t0 = now_ms();
	CHECK(send_one(e.ai, e.col, 0, "cancelamento", "quero cancelar meu plano", false));
	CHECK(run_until_done(e.base, e.col, 5000));
	CHECK_STR(e.col->r[0].source, "fallback");
	CHECK(e.col->r[0].intent == INTENT_CANCEL);
	CHECK(strstr(e.col->r[0].error, "429") != NULL);
	CHECK(e.col->r[0].at - t0 < 500);
	/* and a new request during the pause falls back without a call */
	CHECK(send_one(e.ai, e.col, 1, "cancelamento", "quero cancelar", false));
	CHECK(run_until_done(e.base, e.col, 5000));
	CHECK_STR(e.col->r[1].source, "fallback");
	CHECK(e.col->r[1].attempts == 0);
	CHECK(e.fake->calls == 1);
	ai_stats(e.ai, &st);
	CHECK(st.fallback_deadline == 2);
	env_close(&e);
}

TEST(ai_breaker_opens_and_recovers)
{
	ai_config_t c = base_cfg();
	c.max_retries = 0;
	c.breaker.open_ms = 300;
	env_t e;
	CHECK(env_open(&e, &c));
	if (!e.ai)
		{ env_close(&e); return; }
	e.fake->mode = FK_500;
	for (int i = 0; i < 10; i++)
		CHECK(send_one(e.ai, e.col, i, "suporte", "internet lenta demais", false));
	CHECK(run_until_done(e.base, e.col, 5000));
	CHECK(e.fake->calls == 10);
	ai_stats_t st;
	ai_stats(e.ai, &st);
	CHECK(st.breaker == BREAKER_OPEN && st.breaker_opens == 1);
	/* open: later requests fall back immediately, without a call */
	for (int i = 10; i < 15; i++)
		CHECK(send_one(e.ai, e.col, i, "suporte", "internet lenta demais", false));
	CHECK(run_until_done(e.base, e.col, 5000));
	for (int i = 10; i < 15; i++) {
		CHECK_STR(e.col->r[i].source, "fallback");
		CHECK(e.col->r[i].attempts == 0);
		CHECK_STR(e.col->r[i].model, "(null)");
		CHECK(strstr(e.col->r[i].error, "breaker open") != NULL);
		CHECK(e.col->r[i].latency_ms < 100);
	}
	CHECK(e.fake->calls == 10);
	ai_stats(e.ai, &st);
	CHECK(st.fallback_breaker == 5);
	/* after open_ms one probe goes through; the others still fall back */
	e.fake->mode = FK_OK;
	e.fake->latency_ms = 20;
	run_for(e.base, 350);
	for (int i = 15; i < 18; i++)
		CHECK(send_one(e.ai, e.col, i, "suporte", "internet lenta demais", false));
	ai_stats(e.ai, &st);
	CHECK(st.breaker == BREAKER_HALF_OPEN);
	CHECK(run_until_done(e.base, e.col, 5000));
	CHECK_STR(e.col->r[15].source, "ai");
	CHECK_STR(e.col->r[16].source, "fallback");
	CHECK_STR(e.col->r[17].source, "fallback");
	CHECK(e.fake->calls == 11);
	ai_stats(e.ai, &st);
	CHECK(st.breaker == BREAKER_CLOSED);
	CHECK(send_one(e.ai, e.col, 18, "suporte", "internet lenta demais", false));
	CHECK(run_until_done(e.base, e.col, 5000));
	CHECK_STR(e.col->r[18].source, "ai");
	CHECK(e.fake->calls == 12);
	env_close(&e);
}

TEST(ai_600_calls_in_flight)
{
	ai_config_t c = base_cfg();
	env_t e;
	CHECK(env_open(&e, &c));
	if (!e.ai)
		{ env_close(&e); return; }
	e.fake->latency_ms = 300;
	int n = 600;
	int64_t t0 = now_ms();
	for (int i = 0; i < n; i++)
		CHECK(send_one(e.ai, e.col, i, "suporte", "minha fatura veio errada", false));
	CHECK(run_until_done(e.base, e.col, 15000));
	int64_t elapsed = now_ms() - t0;
	int ai_ok = 0;
	for (int i = 0; i < n; i++)
		ai_ok += strcmp(e.col->r[i].source, "ai") == 0;
	CHECK(ai_ok == n);
	ai_stats_t st;
	ai_stats(e.ai, &st);
	printf("  %d calls of 300 ms in %lld ms; max in flight %d (server saw %d at once)\n", n, (long long)elapsed,
	       st.max_in_flight_seen, e.fake->max_open_requests);
	CHECK(st.max_in_flight_seen >= 500);
	CHECK(e.fake->max_open_requests >= 500);
	CHECK(elapsed < 10000); /* sequential would be 180 s */
	CHECK(st.in_flight == 0 && st.pending == 0);
	env_close(&e);
}

TEST(ai_max_in_flight_queues_fifo)
{
	ai_config_t c = base_cfg();
	c.max_in_flight = 2;
	env_t e;
	CHECK(env_open(&e, &c));
	if (!e.ai)
		{ env_close(&e); return; }
	e.fake->latency_ms = 30;
	char texts[8][32];
	for (int i = 0; i < 8; i++) {
		snprintf(texts[i], sizeof(texts[i]), "mensagem numero %d", i);
		CHECK(send_one(e.ai, e.col, i, "suporte", texts[i], false));
	}
	ai_stats_t st;
	ai_stats(e.ai, &st);
	CHECK(st.in_flight == 2 && st.queued == 6 && st.pending == 8);
	CHECK(run_until_done(e.base, e.col, 5000));
	ai_stats(e.ai, &st);
	CHECK(st.max_in_flight_seen == 2);
	CHECK(e.fake->max_open_requests == 2);
	for (int i = 0; i < 8 && i < e.fake->calls; i++)
		CHECK(strstr(e.fake->users[i], texts[i]) != NULL);
	env_close(&e);
}

TEST(ai_free_cancels_pending)
{
	ai_config_t c = base_cfg();
	c.max_in_flight = 2;
	env_t e;
	CHECK(env_open(&e, &c));
	if (!e.ai)
		{ env_close(&e); return; }
	e.fake->mode = FK_HANG;
	for (int i = 0; i < 3; i++)
		CHECK(send_one(e.ai, e.col, i, "suporte", "sem internet", false));
	run_for(e.base, 100);
	CHECK(e.col->got == 0);
	ai_free(e.ai);
	e.ai = NULL;
	CHECK(e.col->got == 3);
	for (int i = 0; i < 3; i++) {
		CHECK(e.col->r[i].called && !e.col->r[i].ok);
		CHECK_STR(e.col->r[i].error, "cancelled");
		CHECK_STR(e.col->r[i].source, "(null)");
	}
	env_close(&e);
}

/* ai.stream: the request asks for a stream with usage; an event-stream answer gives the
 * hint (partial callback included), the usage chunk prices it; a stream that stops midway
 * is retried; a server answering plain JSON is read as before. */
static int partials_seen;
static char partial_last[AI_HINT_MAX], partial_intent[32];

static void on_partial(const char *text, const char *intent, void *arg)
{
	(void)arg;
	partials_seen++;
	snprintf(partial_last, sizeof(partial_last), "%s", text);
	snprintf(partial_intent, sizeof(partial_intent), "%s", intent ? intent : "(null)");
}

TEST(ai_stream_reads_events_usage_and_plain_answers)
{
	ai_config_t c = base_cfg();
	c.stream = true;
	env_t e;
	CHECK(env_open(&e, &c));
	if (!e.ai)
		{ env_close(&e); return; }
	e.fake->mode = FK_SSE;
	e.fake->content = "{\"intent\":\"technical\",\"critical\":false,\"hint\":\"Verifique o sinal na regi\xc3\xa3o.\"}";
	const char *texts[] = {"sem internet"};
	ai_request_t req = {.domain = "suporte", .company = 1, .conversation = "c", .texts = texts, .n_texts = 1,
			    .partial = on_partial};
	slots[0] = (slot_t){e.col, 0};
	e.col->expected = 1;
	partials_seen = 0;
	CHECK(ai_request(e.ai, &req, on_done, &slots[0]));
	CHECK(run_until_done(e.base, e.col, 5000));
	got_t *g = &e.col->r[0];
	CHECK_STR(g->source, "ai");
	CHECK(g->intent == INTENT_OTHER);
	CHECK_STR(g->hint, "Verifique o sinal na regi\xc3\xa3o.");
	CHECK(g->tokens_in == 100 && g->tokens_out == 20 && g->attempts == 1);
	CHECK(g->cost > 2.69e-5 && g->cost < 2.71e-5);
	CHECK(e.fake->streamed[0]);
	CHECK(partials_seen >= 1); /* the whole answer came in one read: one partial at least */
	CHECK(strncmp(partial_last, "Verifique", 9) == 0);
	CHECK_STR(partial_intent, "other"); /* as the final answer reads "technical" */

	/* cut midway: retried, then answered */
	e.fake->n_script = 1;
	e.fake->script[0] = FK_SSE_CUT;
	fake_forget_calls(e.fake);
	CHECK(send_one(e.ai, e.col, 1, "suporte", "sem internet", false));
	CHECK(run_until_done(e.base, e.col, 5000));
	CHECK_STR(e.col->r[1].source, "ai");
	CHECK(e.col->r[1].attempts == 2);
	CHECK_STR(e.col->r[1].hint, "Verifique o sinal na regi\xc3\xa3o.");

	/* a server that ignores "stream": one JSON completion, read as such */
	e.fake->mode = FK_OK;
	e.fake->n_script = 0;
	CHECK(send_one(e.ai, e.col, 2, "suporte", "sem internet", false));
	CHECK(run_until_done(e.base, e.col, 5000));
	CHECK_STR(e.col->r[2].source, "ai");
	CHECK(e.col->r[2].tokens_in == 100 && e.col->r[2].attempts == 1);

	/* bot requests are never streamed */
	ai_request_t bot = {.domain = "suporte", .company = 1, .conversation = "c", .texts = texts, .n_texts = 1, .bot = true};
	e.fake->content = "{\"answer\":\"Oi\",\"handoff\":false}";
	slots[3] = (slot_t){e.col, 3};
	e.col->expected++;
	int before = e.fake->calls;
	CHECK(ai_request(e.ai, &bot, on_done, &slots[3]));
	CHECK(run_until_done(e.base, e.col, 5000));
	CHECK(e.fake->calls == before + 1 && !e.fake->streamed[before]);
	CHECK_STR(e.col->r[3].hint, "Oi");
	env_close(&e);
}

/* ================================================================ main */

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

int main(void)
{
	log_init("test_ai");
	log_set_level(LOG_LVL_ERROR);
	snprintf(prompts_dir, sizeof(prompts_dir), "/tmp/test_ai_prompts.XXXXXX");
	if (!mkdtemp(prompts_dir)) {
		perror("mkdtemp");
		return 1;
	}
	write_file(prompts_dir, "default.txt", "PROMPT DEFAULT\n");
	write_file(prompts_dir, "suporte.txt", "PROMPT SUPORTE\n");

	RUN(breaker_opens_at_half_errors_over_min_calls);
	RUN(breaker_window_slides);
	RUN(breaker_half_open_probe);
	RUN(tier_rule);
	RUN(user_content_history_bounds);
	RUN(parse_completion);
	RUN(parse_completion_degrades);
	RUN(cost);
	RUN(sse_parser_chunk_boundaries);
	RUN(partial_hint_scanner);
	RUN(config_keys_and_prompts);
	RUN(ai_success_parses_and_prices);
	RUN(ai_retries_with_backoff_then_fallback);
	RUN(ai_garbage_and_timeout_fall_back);
	RUN(ai_connection_refused_falls_back);
	RUN(ai_429_pauses_the_whole_provider);
	RUN(ai_breaker_opens_and_recovers);
	RUN(ai_600_calls_in_flight);
	RUN(ai_max_in_flight_queues_fifo);
	RUN(ai_free_cancels_pending);
	RUN(ai_stream_reads_events_usage_and_plain_answers);

	char path[128];
	snprintf(path, sizeof(path), "%s/default.txt", prompts_dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/suporte.txt", prompts_dir);
	unlink(path);
	rmdir(prompts_dir);
	return unit_done();
}
