-- 017_embeddings: the semantic side of the hint cache (ai.embeddings_model). Each hint the AI
-- gave is stored with the embedding of what it answered (the rules_cache_key text), so that a
-- later text of the same meaning, in the same company and domain, reuses it. The workers keep
-- the newest ai.embeddings_ring vectors per company and domain in memory and search them
-- there: this table is what they load at start and the way workers see each other's hints.
-- Vectors are plain real[] (no pgvector: not in Debian's postgres); model names the
-- embeddings model (vectors of two models are not comparable); worker is the pid of the
-- worker that wrote the row, so its refresh skips what it already holds. Rows older than
-- cache.ttl_s are never used again and are deleted by the workers' refresh.
CREATE TABLE hint_embeddings (
    id         bigserial PRIMARY KEY,
    hint_id    bigint NOT NULL,
    company_id bigint NOT NULL,
    domain     text NOT NULL,
    intent     text NOT NULL,
    critical   boolean NOT NULL,
    text       text NOT NULL,
    model      text NOT NULL,
    worker     integer NOT NULL,
    vec        real[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX hint_embeddings_recent ON hint_embeddings (model, company_id, domain, id);
CREATE INDEX hint_embeddings_age ON hint_embeddings (created_at);
