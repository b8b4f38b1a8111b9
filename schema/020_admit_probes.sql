-- 020_admit_probes: atende_coach_admit's first question, whether an analysis's messages are
-- still unhandled, had the shape 019 fixed in the claim: `id = ANY(...) AND received_at =
-- ANY(...)` of arrays built in the statement. Under 018's generic plans the weekly partitions
-- were never pruned, and it cost 3.1 ms per call on the AI path at 500 msg/s (3,137 µs per
-- stored message, the largest statement: test/bench_pg.py with BENCH_AI_LATENCY_MS=1500
-- BENCH_PG_RATE=500; docs/performance.md). Now the arrays are built first and the
-- received_at condition is their span: one probe per message, the other weeks pruned at
-- executor start. That alone brought it to 1.4 ms: the generic plan is made at a session's
-- first call, when the week's partition may be empty, and a seq scan is the cheapest plan of an
-- empty table; the session keeps that plan while the partition grows (until an ANALYZE of it
-- invalidates the plan). Every query here is a key lookup, so seq scans are off for the
-- function: 378 µs per message for the whole admission (docs/performance.md). The rest of the
-- function is 004's, unchanged; 018's plan_cache_mode stays.
CREATE OR REPLACE FUNCTION atende_coach_admit(batch jsonb) RETURNS jsonb LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
DECLARE
    r jsonb; out jsonb[] := '{}'; lim jsonb; c record;
    now_ts timestamptz := now();
    minute_ts timestamptz := date_trunc('minute', now());
    hour_ts timestamptz := date_trunc('hour', now());
    day_ts timestamptz := date_trunc('day', now());
    used_calls int; used_hour numeric; used_day numeric; pending int; res_id bigint; reserve numeric;
    reason text;
    ids bigint[]; rats timestamptz[]; lo timestamptz; hi timestamptz;
BEGIN
    FOR r IN SELECT value FROM jsonb_array_elements(batch) LOOP
        -- already handled (a redelivery after a crash): nothing to do
        ids := ARRAY(SELECT (jsonb_array_elements_text(r->'ids'))::bigint);
        rats := ARRAY(SELECT (jsonb_array_elements_text(r->'received_at'))::timestamptz);
        SELECT min(t), max(t) INTO lo, hi FROM unnest(rats) t;
        IF NOT EXISTS (SELECT 1 FROM messages m
                        WHERE m.id = ANY(ids) AND m.received_at BETWEEN lo AND hi
                          AND m.hint_id IS NULL AND m.coaching IS NULL) THEN
            out := array_append(out, jsonb_build_object('decision', 'done'));
            CONTINUE;
        END IF;
        -- the agent had a hint moments ago: no hint can be shown, so spend nothing on one
        -- (finish checks again atomically; this only saves AI calls)
        IF r->>'agent' IS NOT NULL AND coalesce((r->>'agent_interval_s')::int, 0) > 0 AND EXISTS (
               SELECT 1 FROM agent_hint_state s WHERE s.agent_id = (r->>'agent')::bigint
                  AND s.last_hint_at > clock_timestamp() - make_interval(secs => (r->>'agent_interval_s')::int)) THEN
            out := array_append(out, jsonb_build_object('decision', 'refused', 'reason', 'agent_interval'));
            CONTINUE;
        END IF;
        IF jsonb_typeof(r->'cache') = 'object' THEN
            -- the same text asked again: one index probe, no ranking
            SELECT h.hint_id, h.intent, h.critical, h.text, 1.0::real AS sim INTO c
              FROM hint_cache h
             WHERE h.company_id = (r->>'company')::bigint AND h.domain = r->>'domain' AND h.norm = r->>'norm'
               AND h.created_at > now_ts - make_interval(secs => (r->'cache'->>'ttl_s')::int);
            IF NOT FOUND THEN
            PERFORM set_config('pg_trgm.similarity_threshold', r->'cache'->>'threshold', true);
            SELECT h.hint_id, h.intent, h.critical, h.text, similarity(h.norm, r->>'norm') AS sim INTO c
              FROM hint_cache h
             WHERE h.company_id = (r->>'company')::bigint AND h.domain = r->>'domain'
               AND h.created_at > now_ts - make_interval(secs => (r->'cache'->>'ttl_s')::int)
               AND h.norm % (r->>'norm')
             ORDER BY similarity(h.norm, r->>'norm') DESC, h.id DESC
             LIMIT 1;
            END IF;
            IF FOUND THEN
                out := array_append(out, jsonb_build_object('decision', 'cache', 'hint',
                    jsonb_build_object('hint_id', c.hint_id, 'intent', c.intent, 'critical', c.critical,
                                       'text', c.text, 'similarity', c.sim)));
                CONTINUE;
            END IF;
        END IF;
        lim := r->'limits';
        reserve := coalesce((r->>'reserve_usd')::numeric, 0);
        reason := NULL;
        -- every budget limit off: nothing to count or reserve (the hint rows keep the cost)
        IF coalesce((lim->>'per_minute')::int, 0) = 0 AND coalesce((lim->>'cost_hour')::numeric, 0) = 0
           AND coalesce((lim->>'cost_day')::numeric, 0) = 0 AND coalesce((lim->>'pending')::int, 0) = 0 THEN
            out := array_append(out, jsonb_build_object('decision', 'ai'));
            CONTINUE;
        END IF;
        -- serialise admissions so two workers cannot both take the last unit of a cap
        PERFORM pg_advisory_xact_lock(727100002);
        IF coalesce((lim->>'per_minute')::int, 0) > 0 THEN
            SELECT coalesce(sum(b.calls), 0) INTO used_calls FROM ai_budget b
             WHERE b.kind = 'minute' AND b.window_start = minute_ts;
            IF used_calls + 1 > (lim->>'per_minute')::int THEN reason := 'per_minute'; END IF;
        END IF;
        IF reason IS NULL AND coalesce((lim->>'cost_hour')::numeric, 0) > 0 THEN
            SELECT coalesce(sum(b.cost_usd), 0) INTO used_hour FROM ai_budget b
             WHERE b.kind = 'hour' AND b.window_start = hour_ts;
            IF used_hour + reserve > (lim->>'cost_hour')::numeric THEN reason := 'cost_hour'; END IF;
        END IF;
        IF reason IS NULL AND coalesce((lim->>'cost_day')::numeric, 0) > 0 THEN
            SELECT coalesce(sum(b.cost_usd), 0) INTO used_day FROM ai_budget b
             WHERE b.kind = 'day' AND b.window_start = day_ts;
            IF used_day + reserve > (lim->>'cost_day')::numeric THEN reason := 'cost_day'; END IF;
        END IF;
        IF reason IS NULL AND coalesce((lim->>'pending')::int, 0) > 0 THEN
            SELECT count(*) INTO pending FROM ai_pending p WHERE p.expires_at > now_ts;
            IF pending + 1 > (lim->>'pending')::int THEN reason := 'pending'; END IF;
        END IF;
        IF reason IS NOT NULL THEN
            out := array_append(out, jsonb_build_object('decision', 'limited', 'reason', reason));
            CONTINUE;
        END IF;
        INSERT INTO ai_budget AS b (kind, window_start, calls) VALUES ('minute', minute_ts, 1)
        ON CONFLICT (kind, window_start) DO UPDATE SET calls = b.calls + 1;
        INSERT INTO ai_budget AS b (kind, window_start, calls, cost_usd) VALUES ('hour', hour_ts, 1, reserve)
        ON CONFLICT (kind, window_start) DO UPDATE SET calls = b.calls + 1, cost_usd = b.cost_usd + reserve;
        INSERT INTO ai_budget AS b (kind, window_start, calls, cost_usd) VALUES ('day', day_ts, 1, reserve)
        ON CONFLICT (kind, window_start) DO UPDATE SET calls = b.calls + 1, cost_usd = b.cost_usd + reserve;
        INSERT INTO ai_pending (reserved_usd, hour_start, day_start, expires_at)
        VALUES (reserve, hour_ts, day_ts, now_ts + make_interval(secs => coalesce((r->>'deadline_s')::int, 120)))
        RETURNING id INTO res_id;
        out := array_append(out, jsonb_build_object('decision', 'ai', 'reservation', res_id));
    END LOOP;
    RETURN to_jsonb(out);  -- built as an array: appending to a jsonb value would copy it every time
END;
$$;

-- atende_coach_finish (019) has the same generic plans and the same key lookups: its
-- per-analysis updates (refused, skipped) and its claim would seq-scan a week's partition
-- whose plan was made while it was empty (1,044 sequential scans of messages in 20 s at
-- 1,000 msg/s with 019, none after this).
ALTER FUNCTION atende_coach_finish(jsonb) SET enable_seqscan = off;
