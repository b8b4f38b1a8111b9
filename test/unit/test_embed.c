/*
 * Unit tests of embed: cosine similarity and normalisation, the per company and domain
 * rings (bounded, oldest overwritten, dimension and age filters, threshold), the
 * embeddings answer parser, and the float4[] literal round trip.
 */
#include "embed.h"
#include "unit.h"

#include <math.h>
#include <stdlib.h>

TEST(cosine_and_normalize)
{
	float a[3] = {1, 0, 0}, b[3] = {0, 2, 0}, c[3] = {3, 0, 0}, d[3] = {1, 1, 0}, z[3] = {0, 0, 0};
	CHECK(fabs(embed_cosine(a, c, 3) - 1.0) < 1e-9);
	CHECK(fabs(embed_cosine(a, b, 3)) < 1e-9);
	CHECK(fabs(embed_cosine(a, d, 3) - sqrt(0.5)) < 1e-6);
	CHECK(embed_cosine(a, z, 3) == 0);
	float m[3] = {-2, 0, 0};
	CHECK(fabs(embed_cosine(a, m, 3) + 1.0) < 1e-9);
	CHECK(embed_normalize(d, 2));
	CHECK(fabs(d[0] - sqrt(0.5)) < 1e-6 && fabs(d[1] - sqrt(0.5)) < 1e-6);
	CHECK(!embed_normalize(z, 3));
	CHECK(z[0] == 0);
}

static void vec2(float out[2], double angle_deg)
{
	out[0] = (float)cos(angle_deg * M_PI / 180);
	out[1] = (float)sin(angle_deg * M_PI / 180);
}

TEST(nearest_threshold_and_groups)
{
	embed_index_t *x = embed_index_new(10);
	float v[2], q[2];
	vec2(v, 0);
	CHECK(embed_index_add(x, 1, "suporte", v, 2, 100, "outage", false, "reinicie", 1000));
	vec2(v, 90);
	CHECK(embed_index_add(x, 1, "suporte", v, 2, 101, "billing", false, "fatura", 1000));
	vec2(v, 5);
	CHECK(embed_index_add(x, 2, "suporte", v, 2, 200, "sales", false, "plano", 1000)); /* other company */
	CHECK(embed_index_size(x) == 3);
	double sim;
	vec2(q, 10); /* cos 10 deg = 0.985 */
	const embed_entry_t *e = embed_index_nearest(x, 1, "suporte", q, 2, 0.9, 0, &sim);
	CHECK(e && e->hint_id == 100);
	CHECK(e && strcmp(e->intent, "outage") == 0 && strcmp(e->text, "reinicie") == 0 && !e->critical);
	CHECK(fabs(sim - cos(10 * M_PI / 180)) < 1e-5);
	vec2(q, 30); /* cos 30 deg = 0.866: below the threshold */
	CHECK(!embed_index_nearest(x, 1, "suporte", q, 2, 0.9, 0, &sim));
	CHECK(fabs(sim - cos(30 * M_PI / 180)) < 1e-5);
	CHECK(embed_index_nearest(x, 1, "suporte", q, 2, 0.85, 0, NULL) != NULL);
	vec2(q, 80);
	e = embed_index_nearest(x, 1, "suporte", q, 2, 0.9, 0, NULL);
	CHECK(e && e->hint_id == 101);
	CHECK(!embed_index_nearest(x, 1, "financeiro", q, 2, 0.0, 0, &sim)); /* other domain: nothing */
	CHECK(sim == -1);
	CHECK(!embed_index_nearest(x, 3, "suporte", q, 2, 0.0, 0, NULL));
	/* too old for not_before; another dimension is never compared */
	CHECK(!embed_index_nearest(x, 1, "suporte", q, 2, 0.0, 1001, NULL));
	float q3[3] = {1, 0, 0};
	CHECK(!embed_index_nearest(x, 1, "suporte", q3, 3, 0.0, 0, NULL));
	/* a stored vector need not be unit length: it is normalised on the way in */
	float big[2] = {0, 50};
	CHECK(embed_index_add(x, 1, "suporte", big, 2, 102, "billing", true, "fatura 2", 2000));
	vec2(q, 90);
	e = embed_index_nearest(x, 1, "suporte", q, 2, 0.999, 1500, &sim);
	CHECK(e && e->hint_id == 102 && e->critical);
	CHECK(fabs(sim - 1.0) < 1e-6);
	float zero[2] = {0, 0};
	CHECK(!embed_index_add(x, 1, "suporte", zero, 2, 103, "other", false, "", 0));
	CHECK(!embed_index_add(x, 1, "suporte", zero, 0, 103, "other", false, "", 0));
	CHECK(embed_index_size(x) == 4);
	embed_index_clear(x);
	CHECK(embed_index_size(x) == 0);
	CHECK(!embed_index_nearest(x, 1, "suporte", q, 2, 0.0, 0, NULL));
	embed_index_free(x);
}

TEST(ring_is_bounded)
{
	embed_index_t *x = embed_index_new(3);
	float v[2];
	for (int i = 0; i < 5; i++) { /* angles 0, 20, 40, 60, 80: the first two are overwritten */
		vec2(v, 20.0 * i);
		CHECK(embed_index_add(x, 1, "suporte", v, 2, 100 + i, "other", false, "t", 1000 + i));
	}
	CHECK(embed_index_size(x) == 3);
	float q[2];
	vec2(q, 0);
	const embed_entry_t *e = embed_index_nearest(x, 1, "suporte", q, 2, 0.0, 0, NULL);
	CHECK(e && e->hint_id == 102); /* 40 deg: the nearest one still kept */
	vec2(q, 80);
	e = embed_index_nearest(x, 1, "suporte", q, 2, 0.99, 0, NULL);
	CHECK(e && e->hint_id == 104);
	vec2(v, 0); /* another group does not take from this one's ring */
	CHECK(embed_index_add(x, 1, "comercial", v, 2, 200, "sales", false, "t", 0));
	CHECK(embed_index_size(x) == 4);
	embed_index_free(x);
}

TEST(parse_response)
{
	float *v;
	int dim, tokens;
	char err[128];
	const char *ok = "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,"
			 "\"embedding\":[0.5,-0.25,1e-3]}],\"model\":\"m\",\"usage\":{\"prompt_tokens\":7,\"total_tokens\":7}}";
	CHECK(embed_parse_response(ok, strlen(ok), &v, &dim, &tokens, err, sizeof(err)));
	CHECK(dim == 3 && tokens == 7);
	CHECK(v && v[0] == 0.5f && v[1] == -0.25f && fabs(v[2] - 1e-3) < 1e-9);
	free(v);
	const char *total = "{\"data\":[{\"embedding\":[1]}],\"usage\":{\"total_tokens\":4}}";
	CHECK(embed_parse_response(total, strlen(total), &v, &dim, &tokens, err, sizeof(err)));
	CHECK(dim == 1 && tokens == 4);
	free(v);
	/* a provider's absurd token counts are not cast: the vector is kept, the count is 0 */
	const char *huge = "{\"data\":[{\"embedding\":[1]}],\"usage\":{\"prompt_tokens\":1e300,\"total_tokens\":-3}}";
	CHECK(embed_parse_response(huge, strlen(huge), &v, &dim, &tokens, err, sizeof(err)));
	CHECK(dim == 1 && tokens == 0);
	free(v);
	const char *bad[] = {"not json", "{}", "{\"data\":[]}", "{\"data\":[{\"embedding\":[]}]}",
			     "{\"data\":[{\"embedding\":[1,\"x\"]}]}", "{\"data\":[{\"embedding\":\"1,2\"}]}",
			     "{\"data\":[{\"embedding\":[1,1e300]}]}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		CHECK(!embed_parse_response(bad[i], strlen(bad[i]), &v, &dim, &tokens, err, sizeof(err)));
		CHECK(v == NULL && err[0]);
	}
}

TEST(pg_array_round_trip)
{
	float v[4] = {0.1f, -0.2f, 1e-7f, 3.0f}, *w;
	char *s = embed_pg_array(v, 4);
	CHECK(s[0] == '{' && s[strlen(s) - 1] == '}');
	CHECK(embed_pg_parse(s, &w) == 4);
	for (int i = 0; i < 4; i++)
		CHECK(w[i] == v[i]);
	free(w);
	free(s);
	CHECK(embed_pg_parse("{1.5}", &w) == 1 && w[0] == 1.5f);
	free(w);
	CHECK(embed_pg_parse("{1,2", &w) == -1 && !w);
	CHECK(embed_pg_parse("1,2}", &w) == -1);
	CHECK(embed_pg_parse("{1,x}", &w) == -1);
	CHECK(embed_pg_parse("{}", &w) == -1);
	CHECK(embed_pg_parse(NULL, &w) == -1);
}

int main(void)
{
	RUN(cosine_and_normalize);
	RUN(nearest_threshold_and_groups);
	RUN(ring_is_bounded);
	RUN(parse_response);
	RUN(pg_array_round_trip);
	return unit_done();
}
