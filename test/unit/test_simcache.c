/*
 * Unit tests of simcache: pg_trgm's similarity (the expected figures are PostgreSQL 15's
 * pg_trgm answers to `SELECT similarity(a, b)` for the same pairs), the exact and the
 * nearest lookups with their threshold, age and company/domain filters, refreshed entries
 * and the bounded rings.
 */
#include "simcache.h"
#include "unit.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

TEST(similarity_is_pg_trgms)
{
	static const struct {
		const char *a, *b;
		float pg;
	} pairs[] = {
		{"o roteador esta piscando luz vermelha desde cedo", "o roteador esta piscando a luz vermelha desde cedo", 0.96f},
		{"preciso segunda via fatura", "preciso segunda via fatura valor", 0.84375f},
		{"a", "a", 1.0f},
		{"a b", "b a", 1.0f},
		{"fatura 2x", "fatura 22x", 0.75f},
		{"", "fatura", 0.0f},
		{"quero cancelar meu contrato", "quero canelar meu contrato", 0.82758623f},
		{"x9 y", "x9", 0.6f},
	};
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		CHECK(fabsf(simcache_similarity(pairs[i].a, pairs[i].b) - pairs[i].pg) < 1e-6f);
		CHECK(fabsf(simcache_similarity(pairs[i].b, pairs[i].a) - pairs[i].pg) < 1e-6f);
	}
}

TEST(find_exact_nearest_and_filters)
{
	simcache_t *s = simcache_new(16);
	simcache_hit_t hit;
	CHECK(!simcache_find(s, 1, "suporte", "o roteador esta piscando luz vermelha", 0.85, 0, &hit));
	simcache_put(s, 1, "suporte", "o roteador esta piscando luz vermelha desde cedo", 10, "outage", false, "reinicie", 1000);
	simcache_put(s, 1, "financeiro", "preciso segunda via fatura", 11, "billing", false, "envie a via", 1000);
	simcache_put(s, 2, "suporte", "o roteador esta piscando a luz vermelha desde cedo", 12, "outage", true, "x", 1000);
	CHECK(simcache_size(s) == 3);
	/* the same text */
	CHECK(simcache_find(s, 1, "financeiro", "preciso segunda via fatura", 0.85, 0, &hit));
	CHECK(hit.hint_id == 11 && hit.similarity == 1.0 && strcmp(hit.intent, "billing") == 0 &&
	      strcmp(hit.text, "envie a via") == 0 && !hit.critical);
	/* a near one, in its own company and domain only */
	CHECK(simcache_find(s, 1, "suporte", "o roteador esta piscando a luz vermelha desde cedo", 0.85, 0, &hit));
	CHECK(hit.hint_id == 10 && fabs(hit.similarity - 0.96) < 1e-6);
	CHECK(!simcache_find(s, 3, "suporte", "o roteador esta piscando a luz vermelha desde cedo", 0.85, 0, &hit));
	CHECK(!simcache_find(s, 1, "comercial", "preciso segunda via fatura", 0.85, 0, &hit));
	/* under the threshold: 0.84375 */
	CHECK(!simcache_find(s, 1, "financeiro", "preciso segunda via fatura valor", 0.85, 0, &hit));
	CHECK(simcache_find(s, 1, "financeiro", "preciso segunda via fatura valor", 0.84, 0, &hit) && hit.hint_id == 11);
	/* too old: neither the same text nor a near one */
	CHECK(!simcache_find(s, 1, "financeiro", "preciso segunda via fatura", 0.85, 1000, &hit));
	CHECK(!simcache_find(s, 1, "suporte", "o roteador esta piscando a luz vermelha desde cedo", 0.85, 1000, &hit));
	/* the best of two near ones; the newer among equals */
	simcache_put(s, 1, "suporte", "o roteador esta piscando a luz vermelha desde cedo hoje", 13, "outage", false, "y", 1001);
	CHECK(simcache_find(s, 1, "suporte", "o roteador esta piscando a luz vermelha desde cedo", 0.8, 0, &hit));
	CHECK(hit.hint_id == 10); /* 0.96 against 25/30 */
	CHECK(simcache_find(s, 1, "suporte", "o roteador esta piscando a luz vermelha desde cedo hoje sim", 0.8, 0, &hit));
	CHECK(hit.hint_id == 13);
	simcache_put(s, 1, "suporte", "o roteador esta piscando uz vermelha desde cedo", 14, "outage", false, "z", 1002);
	CHECK(simcache_find(s, 1, "suporte", "o roteador esta piscando luz vermelha desde cedo", 0.5, 0, &hit));
	CHECK(hit.hint_id == 10 && hit.similarity == 1.0);
	simcache_free(s);
	simcache_free(NULL);
}

TEST(refresh_replaces_and_rings_are_bounded)
{
	simcache_t *s = simcache_new(3);
	simcache_hit_t hit;
	simcache_put(s, 1, "suporte", "texto um", 1, "other", false, "a", 100);
	simcache_put(s, 1, "suporte", "texto um", 2, "outage", true, "b", 200); /* the row refreshed */
	CHECK(simcache_size(s) == 1);
	CHECK(simcache_find(s, 1, "suporte", "texto um", 0.9, 150, &hit));
	CHECK(hit.hint_id == 2 && hit.critical && strcmp(hit.text, "b") == 0 && strcmp(hit.intent, "outage") == 0);
	simcache_put(s, 1, "suporte", "texto dois", 3, "other", false, "c", 300);
	simcache_put(s, 1, "suporte", "texto tres", 4, "other", false, "d", 400);
	simcache_put(s, 1, "suporte", "texto quatro", 5, "other", false, "e", 500); /* "texto um" goes */
	CHECK(simcache_size(s) == 3);
	CHECK(!simcache_find(s, 1, "suporte", "texto um", 0.99, 0, &hit));
	CHECK(simcache_find(s, 1, "suporte", "texto quatro", 0.99, 0, &hit) && hit.hint_id == 5);
	simcache_put(s, 1, "suporte", "", 6, "other", false, "f", 600); /* no text: not kept */
	CHECK(simcache_size(s) == 3);
	CHECK(!simcache_find(s, 1, "suporte", "", 0, 0, &hit));
	simcache_free(s);
}

TEST(map_survives_many_evictions)
{
	/* a small ring over many texts: every eviction takes a text out of the ring's map, and
	 * the texts still held must all be found by their exact text, the evicted ones not */
	simcache_t *s = simcache_new(8);
	simcache_hit_t hit;
	char text[64];
	int bad = 0;
	for (int i = 0; i < 2000; i++) {
		snprintf(text, sizeof(text), "texto numero %d de teste", (i * 7919) % 5000);
		simcache_put(s, 1, "suporte", text, i, "other", false, "x", 1000 + i);
		if (i % 3 == 0) /* a reread of a held row: replaced in place */
			simcache_put(s, 1, "suporte", text, i, "other", false, "x", 1000 + i);
		for (int k = i > 7 ? i - 7 : 0; k <= i; k++) {
			snprintf(text, sizeof(text), "texto numero %d de teste", (k * 7919) % 5000);
			if (!simcache_find(s, 1, "suporte", text, 1.0, 0, &hit) || hit.hint_id != k)
				bad++;
		}
		if (i >= 8) {
			snprintf(text, sizeof(text), "texto numero %d de teste", ((i - 8) * 7919) % 5000);
			if (simcache_find(s, 1, "suporte", text, 1.0, 0, &hit) && hit.hint_id == i - 8)
				bad++;
		}
	}
	CHECK(bad == 0);
	CHECK(simcache_size(s) == 8);
	simcache_free(s);
}

int main(void)
{
	RUN(similarity_is_pg_trgms);
	RUN(find_exact_nearest_and_filters);
	RUN(refresh_replaces_and_rings_are_bounded);
	RUN(map_survives_many_evictions);
	return unit_done();
}
