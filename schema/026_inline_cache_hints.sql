-- 026_inline_cache_hints: a cache hit stored with its message, as 023 stores a rules hint. With
-- the AI provider four hints in five are cache hits at 2,000 msg/s, nearly all found in the
-- worker's copy of the cache (024, worker/simcache.c), so known before the message is stored;
-- each still went through the coach's finish (a second transaction: the claim that writes a
-- second version of the message, the hint's insert, a second commit) after waiting in its
-- queue (docs/performance.md, "Session 16"). Now the worker sends such a message with the
-- hit as its "rules_hint" and "source": "cache" (worker/coach.c, coach_inline), and the
-- ingest stores the hint with that source; a redelivered message's hint comes back with its
-- source (atende_store's r_hint), so the repeated event says "cache" too. Without "source"
-- the hint is the rules' as in 023.
--
-- As 025 does, the change is applied to the installed definitions (pg_get_functiondef), each
-- piece found once as 023 wrote it, or the migration fails.
DO $migration$
DECLARE
    ingest text := pg_get_functiondef('atende_ingest(jsonb)'::regprocedure);
    store text := pg_get_functiondef('atende_store(jsonb, text)'::regprocedure);
    ingest_source text := E'coalesce((m.v->''rules_hint''->>''critical'')::boolean, false), m.v->''rules_hint''->>''text'', ''rules'',\n';
    store_hint text := E'''text'', x.text, ''agent_id'', x.agent_id,\n';
BEGIN
    IF (length(ingest) - length(replace(ingest, ingest_source, ''))) / length(ingest_source) <> 1
       OR (length(store) - length(replace(store, store_hint, ''))) / length(store_hint) <> 1 THEN
        RAISE EXCEPTION '026_inline_cache_hints: atende_ingest or atende_store is not 023''s';
    END IF;
    EXECUTE replace(ingest, ingest_source,
                    E'coalesce((m.v->''rules_hint''->>''critical'')::boolean, false), m.v->''rules_hint''->>''text'',\n'
                    || E'               coalesce(m.v->''rules_hint''->>''source'', ''rules''),\n');
    EXECUTE replace(store, store_hint, E'''text'', x.text, ''source'', x.source, ''agent_id'', x.agent_id,\n');
END
$migration$;
