-- 019_claim_probes: the batch claim of atende_coach_finish (018) asked for its messages with
-- `id = ANY(ids) AND received_at = ANY(rats)`, and both arrays became index conditions of the
-- messages primary key (id, received_at): PostgreSQL 15's btree probes every combination of
-- the two arrays, so a batch of n messages cost n * n probes (EXPLAIN (ANALYZE, BUFFERS) of a
-- 300-message claim: 90,000 probes, 100,203 buffer hits in the current week's partition, for
-- 300 rows), the largest statement after the ingest at 2,000 msg/s (docs/performance.md,
-- "PostgreSQL"). The received_at condition is now the batch's span (BETWEEN its earliest and
-- latest): one probe per message, and at executor start-up the weeks outside the span are
-- pruned, which an array parameter never allowed in a generic plan. Nothing else changes.
CREATE OR REPLACE FUNCTION atende_coach_finish(batch jsonb) RETURNS jsonb LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    r jsonb; h jsonb; ids bigint[]; rats timestamptz[];
    m_lo timestamptz; m_hi timestamptz; -- the claimed messages' received_at span
    n int := jsonb_array_length(batch);
    out jsonb[] := array_fill(NULL::jsonb, ARRAY[greatest(n, 1)]);
    i int := 0;
    ok_agent boolean; res record; hid bigint;
    seq text := pg_get_serial_sequence('hints', 'id');
    -- the analyses that may store a hint: their place in the batch and hint id...
    c_pos int[] := '{}'; c_hid bigint[] := '{}';
    -- ...and their messages, in batch order
    m_id bigint[] := '{}'; m_at timestamptz[] := '{}'; m_hid bigint[] := '{}';
    -- per analysis of c_pos, after the claim: the messages it claimed, and its hint's created_at
    k_open jsonb[]; k_created timestamptz[];
BEGIN
    FOR r IN SELECT value FROM jsonb_array_elements(batch) LOOP
        i := i + 1;
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
            out[i] := jsonb_build_object('decision', CASE WHEN FOUND THEN 'refused' ELSE 'done' END,
                                         'reason', r->>'refuse');
            CONTINUE;
        END IF;
        IF r->>'skip' IS NOT NULL THEN
            UPDATE messages SET coaching = 'skipped:' || (r->>'skip')
             WHERE id = ANY(ids) AND received_at = ANY(rats) AND hint_id IS NULL AND coaching IS NULL;
            out[i] := jsonb_build_object('decision', CASE WHEN FOUND THEN 'skipped' ELSE 'done' END);
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
            out[i] := jsonb_build_object('decision', CASE WHEN FOUND THEN 'refused' ELSE 'done' END,
                                         'reason', 'agent_interval');
            CONTINUE;
        END IF;
        hid := coalesce((r->>'hint_id')::bigint, nextval(seq));
        c_pos := c_pos || i;
        c_hid := c_hid || hid;
        m_id := m_id || ids;
        m_at := m_at || rats;
        m_hid := m_hid || array_fill(hid, ARRAY[cardinality(ids)]);
    END LOOP;

    IF cardinality(c_pos) > 0 THEN
        SELECT min(t), max(t) INTO m_lo, m_hi FROM unnest(m_at) t;
        WITH want AS (
            -- a message asked for twice goes to the first analysis that asked; last: the
            -- newest message of its analysis (windows come before DISTINCT)
            SELECT DISTINCT ON (u.id) u.id, u.hid, u.id = max(u.id) OVER (PARTITION BY u.hid) AS last
              FROM unnest(m_id, m_hid) WITH ORDINALITY AS u(id, hid, ord)
             ORDER BY u.id, u.ord),
        claimed AS (
            UPDATE messages m SET hint_id = w.hid, coaching = CASE WHEN w.last THEN 'hinted' ELSE 'covered' END
              FROM want w
             WHERE m.id = ANY(m_id) AND m.received_at BETWEEN m_lo AND m_hi AND m.id = w.id
               AND m.hint_id IS NULL AND m.coaching IS NULL
            RETURNING m.id, w.hid),
        got AS (
            SELECT c.hid, array_agg(c.id ORDER BY c.id) AS open_ids FROM claimed c GROUP BY c.hid),
        a AS (
            SELECT t.k, t.hid, batch->(t.pos - 1) AS r, g.open_ids
              FROM unnest(c_pos, c_hid) WITH ORDINALITY AS t(pos, hid, k)
              LEFT JOIN got g ON g.hid = t.hid),
        stored AS (
            INSERT INTO hints (id, message_id, message_ids, provider_ids, conversation_id, company_id, agent_id,
                               domain, intent, critical, text, source, model, tokens_in, tokens_out, cost_usd,
                               latency_ms, limited_by, routed)
            SELECT a.hid, a.open_ids[cardinality(a.open_ids)], a.open_ids,
                   ARRAY(SELECT jsonb_array_elements_text(a.r->'provider_ids')),
                   (a.r->>'conversation_id')::bigint, (a.r->>'company')::bigint, (a.r->>'agent')::bigint,
                   a.r->>'domain', a.r->'hint'->>'intent', coalesce((a.r->'hint'->>'critical')::boolean, false),
                   a.r->'hint'->>'text', a.r->'hint'->>'source', a.r->'hint'->>'model',
                   coalesce((a.r->'hint'->>'tokens_in')::int, 0), coalesce((a.r->'hint'->>'tokens_out')::int, 0),
                   coalesce((a.r->'hint'->>'cost_usd')::numeric, 0), coalesce((a.r->'hint'->>'latency_ms')::int, 0),
                   a.r->'hint'->>'limited_by', coalesce((a.r->'hint'->>'routed')::boolean, false)
              FROM a WHERE a.open_ids IS NOT NULL
            RETURNING hints.id, hints.created_at)
        SELECT array_agg(to_jsonb(a.open_ids) ORDER BY a.k), array_agg(s.created_at ORDER BY a.k)
          INTO k_open, k_created
          FROM a LEFT JOIN stored s ON s.id = a.hid;

        FOR k IN 1..cardinality(c_pos) LOOP
            i := c_pos[k];
            IF k_created[k] IS NULL THEN
                out[i] := jsonb_build_object('decision', 'done');
                CONTINUE;
            END IF;
            r := batch->(i - 1);
            IF coalesce((r->>'cache_it')::boolean, false) THEN
                h := r->'hint';
                INSERT INTO hint_cache AS hc (company_id, domain, norm, hint_id, intent, critical, text)
                VALUES ((r->>'company')::bigint, r->>'domain', r->>'norm', c_hid[k], h->>'intent',
                        coalesce((h->>'critical')::boolean, false), h->>'text')
                ON CONFLICT (company_id, domain, norm) DO UPDATE
                   SET hint_id = EXCLUDED.hint_id, intent = EXCLUDED.intent, critical = EXCLUDED.critical,
                       text = EXCLUDED.text, created_at = now();
            END IF;
            out[i] := jsonb_build_object('decision', 'hinted', 'hint_id', c_hid[k], 'covered', k_open[k],
                                         'created_at', k_created[k]);
        END LOOP;
    END IF;
    RETURN coalesce(to_jsonb(out[1:n]), '[]'::jsonb);
END;
$$;
