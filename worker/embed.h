/*
 * embed: the semantic side of the hint cache (ai.embeddings_model). Pure and clock-free:
 * it reads an OpenAI-compatible embeddings answer, and keeps, per company and domain, a
 * bounded ring of the vectors of recent AI hints (with their hint id, intent, critical flag
 * and text) searched by cosine similarity in memory. The worker loads the rings from
 * PostgreSQL (hint_embeddings, schema/017) and appends the hints it stores; the vectors'
 * text form is PostgreSQL's float4[] literal.
 */
#ifndef ATENDE_EMBED_H
#define ATENDE_EMBED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EMBED_MAX_DIM 8192 /* larger vectors are refused (text-embedding-3-large has 3072) */

typedef struct embed_index embed_index_t;

/* One remembered hint. */
typedef struct {
	float *vec;         /* L2-normalised, dim of them */
	int dim;
	int64_t hint_id;
	char intent[16];
	bool critical;
	char *text;
	double created_at;  /* unix seconds */
} embed_entry_t;

/* An empty index whose rings hold at most ring_cap entries each (>= 1). */
embed_index_t *embed_index_new(int ring_cap);
void embed_index_free(embed_index_t *x);

/* Forgets everything (a new embeddings model: old vectors are not comparable). */
void embed_index_clear(embed_index_t *x);

/* Appends a hint to its company and domain's ring, overwriting the oldest one when the
 * ring is full; vec (dim floats, copied) is normalised on the way. False (nothing kept)
 * when dim is out of 1..EMBED_MAX_DIM or the vector is all zeros. */
bool embed_index_add(embed_index_t *x, long company, const char *domain, const float *vec, int dim, int64_t hint_id,
		     const char *intent, bool critical, const char *text, double created_at);

/* The entry of company and domain most similar to vec (dim floats, normalised by the
 * caller: embed_normalize) among those of the same dimension created at or after
 * not_before, if its cosine similarity is >= threshold; NULL otherwise. *sim gets the best
 * similarity seen (-1 when none was compared). The entry stays valid until the next add,
 * clear or free. */
const embed_entry_t *embed_index_nearest(const embed_index_t *x, long company, const char *domain, const float *vec,
					 int dim, double threshold, double not_before, double *sim);

/* Entries kept, all rings together. */
int embed_index_size(const embed_index_t *x);

/* Scales v to unit length; false (v unchanged) when it is all zeros. */
bool embed_normalize(float *v, int dim);

/* Cosine similarity of two vectors of dim floats (0 when one is all zeros). */
double embed_cosine(const float *a, const float *b, int dim);

/* Reads an embeddings answer {"data":[{"embedding":[...]}],"usage":{"prompt_tokens":N}}:
 * *vec gets a malloc'd copy of data[0].embedding (*dim floats), *tokens its usage
 * (prompt_tokens, else total_tokens, else 0). False with err filled when there is no
 * numeric embedding of 1..EMBED_MAX_DIM numbers. */
bool embed_parse_response(const char *body, size_t len, float **vec, int *dim, int *tokens, char *err, size_t errlen);

/* The float4[] literal of v: "{0.1,-0.2,...}" (malloc'd). */
char *embed_pg_array(const float *v, int dim);

/* Parses a float4[] literal into a malloc'd array (*out); returns the count, -1 when
 * it is not a one-dimensional array of numbers of 1..EMBED_MAX_DIM elements. */
int embed_pg_parse(const char *s, float **out);

#endif
