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
-- the installed definition (pg_get_functiondef) instead of repeating the whole function here:
-- an IF before the statement's first line and an END IF after its last, each found once as
-- 020 wrote it, or the migration fails.
DO $migration$
DECLARE
    def text := pg_get_functiondef('atende_coach_admit(jsonb)'::regprocedure);
    first_line text := E'            PERFORM set_config(''pg_trgm.similarity_threshold'', r->''cache''->>''threshold'', true);\n';
    last_lines text := E'             ORDER BY similarity(h.norm, r->>''norm'') DESC, h.id DESC\n             LIMIT 1;\n';
BEGIN
    IF (length(def) - length(replace(def, first_line, ''))) / length(first_line) <> 1
       OR (length(def) - length(replace(def, last_lines, ''))) / length(last_lines) <> 1 THEN
        RAISE EXCEPTION '025_cache_similar_searched: atende_coach_admit is not 020''s (its similar lookup was not found once)';
    END IF;
    -- FOUND stays the exact lookup's when the similar one is skipped
    def := replace(def, first_line,
                   E'            IF NOT coalesce((r->''cache''->>''similar_searched'')::boolean, false) THEN\n' || first_line);
    EXECUTE replace(def, last_lines, last_lines || E'            END IF;\n');
END
$migration$;
