-- 025_cache_since: PostgreSQL's similarity lookup reads only what the worker's copy of the
-- cache may lack. With cache.memory_entries a worker searches its copy of the recent
-- hint_cache rows first (worker/simcache.c, 024); on a miss it asks atende_coach_admit with
-- "cache": {..., "since": <unix time>}, the copy's horizon: every row created before it was in
-- the copy when it was searched. The lookup by similarity then reads the company and domain's
-- rows created after "since" (a second's worth, through hint_cache_recent) instead of comparing
-- the text with every row of cache.ttl_s (6.5 ms per lookup at 2,000 msg/s in the benchmark, and
-- growing with the table: docs/performance.md, "Session 15"). Without "since" (no copy, or not
-- loaded yet) the lookup is 020's. The exact lookup before it is unchanged.
--
-- atende_coach_admit is 020's with that one statement changed: the change is applied to the
-- installed definition (pg_get_functiondef) instead of repeating the whole function here, and
-- the migration fails if 020's statement is not found as written.
DO $migration$
DECLARE
    def text := pg_get_functiondef('atende_coach_admit(jsonb)'::regprocedure);
    old_lookup text := $old$            SELECT h.hint_id, h.intent, h.critical, h.text, similarity(h.norm, r->>'norm') AS sim INTO c
              FROM hint_cache h
             WHERE h.company_id = (r->>'company')::bigint AND h.domain = r->>'domain'
               AND h.created_at > now_ts - make_interval(secs => (r->'cache'->>'ttl_s')::int)
               AND h.norm % (r->>'norm')
             ORDER BY similarity(h.norm, r->>'norm') DESC, h.id DESC
             LIMIT 1;
$old$;
    new_lookup text := $new$            IF r->'cache' ? 'since' THEN
            -- 025: only the rows the worker's copy may lack (OFFSET 0: planned on its own,
            -- so the time range drives the scan and each of its rows is compared once)
            SELECT h.hint_id, h.intent, h.critical, h.text, similarity(h.norm, r->>'norm') AS sim INTO c
              FROM (SELECT * FROM hint_cache h0
                     WHERE h0.company_id = (r->>'company')::bigint AND h0.domain = r->>'domain'
                       AND h0.created_at > greatest(now_ts - make_interval(secs => (r->'cache'->>'ttl_s')::int),
                                                    to_timestamp((r->'cache'->>'since')::float8))
                    OFFSET 0) h
             WHERE h.norm % (r->>'norm')
             ORDER BY similarity(h.norm, r->>'norm') DESC, h.id DESC
             LIMIT 1;
            ELSE
$new$ || old_lookup || $end$            END IF;
$end$;
BEGIN
    IF position(old_lookup IN def) = 0 THEN
        RAISE EXCEPTION '025_cache_since: atende_coach_admit is not 020''s (its similarity lookup was not found)';
    END IF;
    EXECUTE replace(def, old_lookup, new_lookup);
END
$migration$;
