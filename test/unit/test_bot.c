/*
 * Bot mode's pure pieces: who asks for a person, the templates, business hours, the bot
 * answer's parser, and the config's bot keys with their errors.
 */
#include "ai.h"
#include "bot.h"
#include "config.h"
#include "hours.h"
#include "unit.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

TEST(asking_for_a_person)
{
	const char *yes[] = {"quero falar com um atendente", "Quero falar com um ATENDENTE!", "qro falar c atendete",
			     "me passa pra um atendende por favor", "falar com uma pessoa", "é um robô? quero um humano",
			     "Falar com alguém de verdade", "quero falar com o gerente"};
	const char *no[] = {"qual o horário de atendimento?", "minha internet caiu", "o valor da fatura veio errado",
			    "que humor hein", "estou sendo atendido?", "minha operadora cobrou duas vezes"};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (!bot_asks_for_person(yes[i], NULL)) {
			printf("  not seen as asking for a person: %s\n", yes[i]);
			CHECK(!"asks for a person");
		}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (bot_asks_for_person(no[i], NULL)) {
			printf("  seen as asking for a person: %s\n", no[i]);
			CHECK(!"does not ask for a person");
		}
	CHECK(bot_asks_for_person("chama o supervisor", "supervisor|responsavel"));
	CHECK(!bot_asks_for_person("chama o supervisor", ""));
}

TEST(templates_and_expansion)
{
	char out[512];
	bot_rules_answer("como pego a segunda via do boleto?", "financeiro", out, sizeof(out));
	CHECK(strncmp(out, "Posso ajudar com a sua fatura!", 30) == 0);
	bot_rules_answer("oi", "suporte", out, sizeof(out));
	CHECK(strstr(out, "assistente virtual") != NULL);
	bot_expand("voltam {back}. Até {back}!", "amanhã às 08:00", out, sizeof(out));
	CHECK_STR(out, "voltam amanhã às 08:00. Até amanhã às 08:00!");
	bot_expand("{back}{back}", "0123456789", out, 12);
	CHECK_STR(out, "01234567890");
}

TEST(business_hours)
{
	hours_t h;
	char why[256], back[128];
	CHECK(hours_parse("mon-fri 08:00-18:00, sat 09:00-13:00", &h, why, sizeof(why)) && h.n == 2);
	/* 2026-12-04 is a Friday; 12:00 UTC is 09:00 in São Paulo (UTC-3) */
	time_t fri_noon_utc = 1796385600;
	CHECK(hours_open(&h, "America/Sao_Paulo", fri_noon_utc, back, sizeof(back)));
	/* 22:00 UTC = 19:00 there: closed, back tomorrow (Saturday) at 09:00 */
	CHECK(!hours_open(&h, "America/Sao_Paulo", fri_noon_utc + 10 * 3600, back, sizeof(back)));
	CHECK_STR(back, "amanhã (sábado) às 09:00");
	/* Saturday 14:00 there: back on Monday */
	CHECK(!hours_open(&h, "America/Sao_Paulo", fri_noon_utc + 29 * 3600, back, sizeof(back)));
	CHECK_STR(back, "segunda-feira às 08:00");
	/* 06:00 there on Friday: back today */
	CHECK(!hours_open(&h, "America/Sao_Paulo", fri_noon_utc - 3 * 3600, back, sizeof(back)));
	CHECK_STR(back, "hoje às 08:00");
	CHECK(hours_parse("seg+qua 10:00-12:00, sab-dom 00:00-24:00", &h, why, sizeof(why)) && h.n == 2);
	CHECK(h.spans[0].days == ((1u << 1) | (1u << 3)) && h.spans[1].days == ((1u << 6) | 1u));
	CHECK(hours_parse("", &h, why, sizeof(why)) && h.n == 0 && hours_open(&h, NULL, 0, back, sizeof(back)));
	CHECK(!hours_parse("weekdays 08:00-18:00", &h, why, sizeof(why)) && strstr(why, "unknown day"));
	CHECK(!hours_parse("mon-fri 18:00-08:00", &h, why, sizeof(why)) && strstr(why, "close after it opens"));
	CHECK(!hours_parse("mon-fri 8h-18h", &h, why, sizeof(why)) && strstr(why, "HH:MM"));
	CHECK(hours_tz_valid("America/Sao_Paulo") && hours_tz_valid("") && !hours_tz_valid("Mars/Olympus") &&
	      !hours_tz_valid("../etc/passwd"));
}

static const char *completion(char *buf, size_t len, const char *content)
{
	snprintf(buf, len,
		 "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"%s\"}}],"
		 "\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":9}}",
		 content);
	return buf;
}

TEST(bot_answer_parser)
{
	char body[1024], err[128];
	ai_parsed_t p;
	completion(body, sizeof(body), "{\\\"answer\\\": \\\"Reinicie o roteador.\\\", \\\"handoff\\\": false}");
	CHECK(ai_parse_bot_answer(body, strlen(body), &p, err, sizeof(err)));
	CHECK_STR(p.hint, "Reinicie o roteador.");
	CHECK(!p.handoff && p.tokens_in == 40 && p.tokens_out == 9);
	completion(body, sizeof(body), "```json\\n{\\\"answer\\\": \\\"\\\", \\\"handoff\\\": true}\\n```");
	CHECK(ai_parse_bot_answer(body, strlen(body), &p, err, sizeof(err)) && p.handoff && !p.hint[0]);
	completion(body, sizeof(body), "{\\\"answer\\\": \\\"  \\\", \\\"handoff\\\": false}");
	CHECK(!ai_parse_bot_answer(body, strlen(body), &p, err, sizeof(err)));
	completion(body, sizeof(body), "Claro! Posso ajudar.");
	CHECK(!ai_parse_bot_answer(body, strlen(body), &p, err, sizeof(err)));
}

static const char *write_tmp(const char *text)
{
	static char path[64];
	snprintf(path, sizeof(path), "/tmp/atende-bot-%d.conf", (int)getpid());
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

TEST(config_bot_keys)
{
	cfg_t c;
	char err[4096], want[256];
	const char *path = write_tmp("auth: { token_secret = \"0123456789abcdef\"; };\n"
				     "bot: { max_turns = 5; name = \"Ana\"; };\n"
				     "companies = ( { id = 1; agents = [1, 2]; bot_domains = [\"suporte\", \"ouvidoria\"];\n"
				     "  hours = \"mon-fri 08:00-18:00\"; timezone = \"America/Sao_Paulo\"; },\n"
				     "  { id = 2; agents = [3, 4]; } );\n");
	CHECK(cfg_load(path, &c, err, sizeof(err)));
	CHECK(c.bot.max_turns == 5);
	CHECK_STR(c.bot.name, "Ana");
	CHECK(c.companies[0].bot_domains[cfg_domain_index("suporte")] && c.companies[0].bot_domains[cfg_domain_index("ouvidoria")]);
	CHECK(!c.companies[0].bot_domains[cfg_domain_index("financeiro")] && c.companies[0].open_hours.n == 1);
	CHECK(!c.companies[1].bot_domains[cfg_domain_index("suporte")] && c.companies[1].open_hours.n == 0);
	cfg_free(&c);
	path = write_tmp("auth: { token_secret = \"0123456789abcdef\"; };\n"
			 "bot: { max_turns = -1; };\n"
			 "companies = ( { id = 1; agents = [1, 2];\n"
			 "  bot_domains = [\"suport\"];\n"
			 "  hours = \"mon-fri 8-18\";\n"
			 "  timezone = \"America/Nowhere\"; } );\n");
	CHECK(!cfg_load(path, &c, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s:2: bot.max_turns: -1 is out of range", path);
	CHECK(strstr(err, want) != NULL);
	snprintf(want, sizeof(want), "%s:4: companies: bot_domains: unknown domain \"suport\"", path);
	CHECK(strstr(err, want) != NULL);
	snprintf(want, sizeof(want), "%s:5: companies: hours:", path);
	CHECK(strstr(err, want) != NULL);
	snprintf(want, sizeof(want), "%s:6: companies: timezone \"America/Nowhere\" is not a known time zone", path);
	CHECK(strstr(err, want) != NULL);
	if (!strstr(err, want))
		printf("%s\n", err);
	cfg_free(&c);
	unlink(path);
}

int main(void)
{
	RUN(asking_for_a_person);
	RUN(templates_and_expansion);
	RUN(business_hours);
	RUN(bot_answer_parser);
	RUN(config_bot_keys);
	return unit_done();
}
