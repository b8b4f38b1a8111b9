-- 025_cache_similar_searched: PostgreSQL looks for a similar text only when the worker has not.
-- With cache.memory_entries a worker searches its copy of the recent hint_cache rows (024,
-- worker/simcache.c) with pg_trgm's similarity, and decides a miss only against a copy read
-- after the lookup began, so the copy holds every row PostgreSQL would compare. It then asks
-- atende_coach_admit with "cache": {..., "similar_searched": true}, and the lookup by similarity
-- is skipped: it compared the text with every row of the company and domain of the last
-- cache.ttl_s, 6.5 ms per lookup at 2,000 msg/s in the benchmark, 9.7 ms with texts as
-- customers type them, and growing with the table (docs/performance.md, "Session 15"). The
-- exact lookup stays (a row the worker's ring has let go). Without the flag (no copy, a read
-- that failed) the lookup is 020's.
--
-- atende_coach_admit is 020's with that statement made conditional: the change is applied to
-- the installed definition (pg_get_functiondef) instead of repeating the whole function here,
-- and the migration fails if 020's statement is not found as written.
DO $migration$
DECLARE
    def text := pg_get_functiondef('atende_coach_admit(jsonb)'::regprocedure);
    old_lookup text := $old$            PERFORM set_config('pg_trgm.similarity_threshold', r->'cache'->>'threshold', true);
            SELECT h.hint_id, h.intent, h.critical, h.text, similarity(h.norm, r->>'norm') AS sim INTO c
              FROM hint_cache h
             WHERE h.company_id = (r->>'company')::bigint AND h.domain = r->>'domain'
               AND h.created_at > now_ts - make_interval(secs => (r->'cache'->>'ttl_s')::int)
               AND h.norm % (r->>'norm')
             ORDER BY similarity(h.norm, r->>'norm') DESC, h.id DESC
             LIMIT 1;
$old$;
BEGIN
    IF position(old_lookup IN def) = 0 THEN
        RAISE EXCEPTION '025_cache_similar_searched: atende_coach_admit is not 020''s (its similarity lookup was not found)';
    END IF;
    -- FOUND stays the exact lookup's when the similar one is skipped
    EXECUTE replace(def, old_lookup,
                    E'            IF NOT coalesce((r->''cache''->>''similar_searched'')::boolean, false) THEN\n'
                    || old_lookup || E'            END IF;\n');
END
$migration$;
