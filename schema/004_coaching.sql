-- 004_coaching: what the coaching stage of the workers shares through PostgreSQL, so that
-- every limit holds across all workers on all machines: per-company overrides of the
-- filters, the per-agent hint interval, the AI budget (analyses per minute, cost per hour
-- and per day, pending analyses), the similarity cache, and each message's coaching outcome.
-- The worker calls two batched functions per loop turn: atende_coach_admit (before an AI
-- call) and atende_coach_finish (to store a hint).

CREATE EXTENSION IF NOT EXISTS pg_trgm;

ALTER TABLE companies ADD COLUMN min_message_length integer;   -- NULL: coaching.min_message_length
ALTER TABLE companies ADD COLUMN agent_interval_s integer;     -- NULL: limits.agent_interval_s

-- NULL while pending; 'hinted', 'covered' (by a hint of a grouped analysis),
-- 'skipped:<why>' (a filter) or 'refused:<why>' (the per-agent interval).
ALTER TABLE messages ADD COLUMN coaching text;
ALTER TABLE hints ADD COLUMN limited_by text;                  -- the budget limit that sent it to cache/rules
ALTER TABLE hints ADD COLUMN provider_ids text[];              -- the gateway ids of message_ids

CREATE TABLE agent_hint_state (
    agent_id     bigint PRIMARY KEY,
    last_hint_at timestamptz NOT NULL
);

-- Budget windows: one row per (kind, start): kind 'minute' counts analyses, 'hour' and
-- 'day' sum cost. Reserved cost is charged at admission (an upper bound of the call's
-- cost) and settled to the real cost when the hint is stored, so caps are never exceeded.
CREATE TABLE ai_budget (
    kind         text NOT NULL,
    window_start timestamptz NOT NULL,
    calls        integer NOT NULL DEFAULT 0,
    cost_usd     numeric(14,6) NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, window_start)
);

-- Admitted analyses not yet finished (the pending cap). A worker that dies leaves rows
-- behind; they stop counting after expires_at.
CREATE TABLE ai_pending (
    id            bigserial PRIMARY KEY,
    reserved_usd  numeric(14,6) NOT NULL,
    hour_start    timestamptz NOT NULL,
    day_start     timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL
);

CREATE TABLE hint_cache (
    id         bigserial PRIMARY KEY,
    company_id bigint NOT NULL,
    domain     text NOT NULL,
    norm       text NOT NULL,             -- normalized text of what was analysed
    hint_id    bigint NOT NULL,
    intent     text NOT NULL,
    critical   boolean NOT NULL,
    text       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- one row per normalized text: a repeated question refreshes its row instead of adding
-- another, so a lookup never has to rank a pile of identical candidates
CREATE UNIQUE INDEX hint_cache_text ON hint_cache (company_id, domain, norm);
CREATE INDEX hint_cache_norm ON hint_cache USING gin (norm gin_trgm_ops);
CREATE INDEX hint_cache_recent ON hint_cache (company_id, domain, created_at);

-- "ids" travel with "received_at" (each message's, the partition key of messages once it is
-- partitioned by week) so that lookups touch one partition instead of all of them.
-- Input: JSON array of {"ids":[message ids], "received_at":[...], "company", "domain", "norm", "critical",
--   "cache": {"threshold", "ttl_s"} | null, "limits": {"per_minute","cost_hour","cost_day",
--   "pending"} (0 = off), "reserve_usd", "deadline_s", "agent", "agent_interval_s"}.
-- Output: JSON array, same order, of {"decision": "done"|"refused"|"cache"|"ai"|"limited",
--   "reason", "reservation", "hint": {...} (cache)}.
CREATE FUNCTION atende_coach_admit(batch jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    r jsonb; out jsonb[] := '{}'; lim jsonb; c record;
    now_ts timestamptz := now();
    minute_ts timestamptz := date_trunc('minute', now());
    hour_ts timestamptz := date_trunc('hour', now());
    day_ts timestamptz := date_trunc('day', now());
    used_calls int; used_hour numeric; used_day numeric; pending int; res_id bigint; reserve numeric;
    reason text;
BEGIN
    FOR r IN SELECT value FROM jsonb_array_elements(batch) LOOP
        -- already handled (a redelivery after a crash): nothing to do
        IF NOT EXISTS (SELECT 1 FROM messages m
                        WHERE m.id = ANY(ARRAY(SELECT (jsonb_array_elements_text(r->'ids'))::bigint))
                          AND m.received_at = ANY(ARRAY(SELECT (jsonb_array_elements_text(r->'received_at'))::timestamptz))
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

-- Input: JSON array of {"ids":[message ids], "provider_ids":[...], "conversation_id", "company",
--   "agent" (or null), "domain", "agent_interval_s", "norm", "cache_it" (bool),
--   "reservation" (or null), "hint": {"intent","critical","text","source","model","tokens_in",
--   "tokens_out","cost_usd","latency_ms","limited_by"} | null, "skip": reason | null,
--   "refuse": reason | null}.
-- Output: JSON array of {"decision": "hinted"|"refused"|"skipped"|"done", "hint_id",
--   "covered": [ids that got this hint], "created_at"}.
CREATE FUNCTION atende_coach_finish(batch jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    r jsonb; h jsonb; out jsonb[] := '{}'; ids bigint[]; open_ids bigint[];
    hid bigint; ok_agent boolean; res record; created timestamptz; rats timestamptz[];
    seq text := pg_get_serial_sequence('hints', 'id');
BEGIN
    FOR r IN SELECT value FROM jsonb_array_elements(batch) LOOP
        -- settle the AI reservation whatever happens next: the call was made
        IF r->>'reservation' IS NOT NULL THEN
            DELETE FROM ai_pending p WHERE p.id = (r->>'reservation')::bigint
            RETURNING p.reserved_usd, p.hour_start, p.day_start INTO res;
            IF FOUND THEN
                UPDATE ai_budget b SET cost_usd = b.cost_usd - res.reserved_usd
                                                 + coalesce((r->'hint'->>'cost_usd')::numeric, 0)
                 WHERE (b.kind = 'hour' AND b.window_start = res.hour_start)
                    OR (b.kind = 'day' AND b.window_start = res.day_start);
            END IF;
        END IF;
        ids := ARRAY(SELECT (jsonb_array_elements_text(r->'ids'))::bigint);
        rats := ARRAY(SELECT (jsonb_array_elements_text(r->'received_at'))::timestamptz);
        -- each statement below claims only messages still open (hint_id and coaching NULL),
        -- atomically: a redelivered or concurrent finish finds nothing left to claim
        IF r->>'refuse' IS NOT NULL THEN
            UPDATE messages SET coaching = 'refused:' || (r->>'refuse')
             WHERE id = ANY(ids) AND received_at = ANY(rats) AND hint_id IS NULL AND coaching IS NULL;
            out := array_append(out, jsonb_build_object('decision', CASE WHEN FOUND THEN 'refused' ELSE 'done' END,
                                                       'reason', r->>'refuse'));
            CONTINUE;
        END IF;
        IF r->>'skip' IS NOT NULL THEN
            UPDATE messages SET coaching = 'skipped:' || (r->>'skip')
             WHERE id = ANY(ids) AND received_at = ANY(rats) AND hint_id IS NULL AND coaching IS NULL;
            out := array_append(out, jsonb_build_object('decision', CASE WHEN FOUND THEN 'skipped' ELSE 'done' END));
            CONTINUE;
        END IF;
        ok_agent := true;
        IF r->>'agent' IS NOT NULL AND coalesce((r->>'agent_interval_s')::int, 0) > 0 THEN
            INSERT INTO agent_hint_state AS s (agent_id, last_hint_at) VALUES ((r->>'agent')::bigint, clock_timestamp())
            ON CONFLICT (agent_id) DO UPDATE SET last_hint_at = clock_timestamp()
             WHERE s.last_hint_at <= clock_timestamp() - make_interval(secs => (r->>'agent_interval_s')::int)
            RETURNING true INTO ok_agent;
            ok_agent := coalesce(ok_agent, false);
        END IF;
        IF NOT ok_agent THEN
            UPDATE messages SET coaching = 'refused:agent_interval'
             WHERE id = ANY(ids) AND received_at = ANY(rats) AND hint_id IS NULL AND coaching IS NULL;
            out := array_append(out, jsonb_build_object('decision', CASE WHEN FOUND THEN 'refused' ELSE 'done' END,
                                                       'reason', 'agent_interval'));
            CONTINUE;
        END IF;
        hid := nextval(seq);
        WITH claimed AS (
            UPDATE messages SET hint_id = hid,
                   coaching = CASE WHEN id = (SELECT max(x) FROM unnest(ids) x) THEN 'hinted' ELSE 'covered' END
             WHERE id = ANY(ids) AND received_at = ANY(rats) AND hint_id IS NULL AND coaching IS NULL
            RETURNING id)
        SELECT coalesce(array_agg(id ORDER BY id), '{}') INTO open_ids FROM claimed;
        IF cardinality(open_ids) = 0 THEN
            out := array_append(out, jsonb_build_object('decision', 'done'));
            CONTINUE;
        END IF;
        h := r->'hint';
        INSERT INTO hints (id, message_id, message_ids, provider_ids, conversation_id, company_id, agent_id, domain,
                           intent, critical, text, source, model, tokens_in, tokens_out, cost_usd, latency_ms,
                           limited_by)
        VALUES (hid, open_ids[cardinality(open_ids)], open_ids,
                ARRAY(SELECT jsonb_array_elements_text(r->'provider_ids')),
                (r->>'conversation_id')::bigint, (r->>'company')::bigint, (r->>'agent')::bigint, r->>'domain',
                h->>'intent', coalesce((h->>'critical')::boolean, false), h->>'text', h->>'source', h->>'model',
                coalesce((h->>'tokens_in')::int, 0), coalesce((h->>'tokens_out')::int, 0),
                coalesce((h->>'cost_usd')::numeric, 0), coalesce((h->>'latency_ms')::int, 0), h->>'limited_by')
        RETURNING hints.created_at INTO created;
        IF coalesce((r->>'cache_it')::boolean, false) THEN
            INSERT INTO hint_cache AS hc (company_id, domain, norm, hint_id, intent, critical, text)
            VALUES ((r->>'company')::bigint, r->>'domain', r->>'norm', hid, h->>'intent',
                    coalesce((h->>'critical')::boolean, false), h->>'text')
            ON CONFLICT (company_id, domain, norm) DO UPDATE
               SET hint_id = EXCLUDED.hint_id, intent = EXCLUDED.intent, critical = EXCLUDED.critical,
                   text = EXCLUDED.text, created_at = now();
        END IF;
        out := array_append(out, jsonb_build_object('decision', 'hinted', 'hint_id', hid, 'covered', to_jsonb(open_ids),
                                                   'created_at', created));
    END LOOP;
    RETURN to_jsonb(out);  -- built as an array: appending to a jsonb value would copy it every time
END;
$$;
