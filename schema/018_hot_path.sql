-- 018_hot_path: what PostgreSQL spent per message on the rules path at 2,000 msg/s, cut
-- without changing what is stored (test/bench_pg.py profiles it; docs/performance.md,
-- "PostgreSQL", has the figures).

-- 006_agents_day and 007_conversation_api, written at the same time, both created the
-- list's indexes: conversations_company is conversations_company_recent and
-- conversations_company_status is conversations_status_recent, column for column. Every
-- stored message moves its conversation's last_message_at, so every index of conversations
-- gets a new entry per message; the planner uses the 007 names (README, conversation API).
DROP INDEX IF EXISTS conversations_company;
DROP INDEX IF EXISTS conversations_company_status;

-- atende_coach_finish, same contract as 015's. 015's claimed each hinted analysis's messages
-- with its own UPDATE of the partitioned messages table and stored its hint with its own
-- INSERT: per hint, PL/pgSQL planned that UPDATE again over the weekly partitions (a custom
-- plan always looks cheaper than the generic one for a partitioned table, whose generic cost
-- counts every partition) and started two executors; that was ~60 % of the function's time. Now the analyses that may store a hint are collected in the loop and
-- claimed by one UPDATE for the whole batch, their hints stored by one INSERT; what comes
-- before (reservations, refusals, skips, the agent interval) stays per analysis and in order.
-- A message in two analyses of one batch is claimed by the first, as before. Generic plans
-- (plan_cache_mode): nothing here is planned twice in a session. They do not prune the weekly
-- partitions (received_at = ANY of an array parameter cannot be pruned), so the claim probes
-- each partition's primary key once per batch (EXPLAIN: ~0.1 ms per empty partition for 500
-- messages), far less than planning it per hint.
CREATE OR REPLACE FUNCTION atende_coach_finish(batch jsonb) RETURNS jsonb LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    r jsonb; h jsonb; ids bigint[]; rats timestamptz[];
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
        WITH want AS (
            -- a message asked for twice goes to the first analysis that asked; last: the
            -- newest message of its analysis (windows come before DISTINCT)
            SELECT DISTINCT ON (u.id) u.id, u.hid, u.id = max(u.id) OVER (PARTITION BY u.hid) AS last
              FROM unnest(m_id, m_hid) WITH ORDINALITY AS u(id, hid, ord)
             ORDER BY u.id, u.ord),
        claimed AS (
            UPDATE messages m SET hint_id = w.hid, coaching = CASE WHEN w.last THEN 'hinted' ELSE 'covered' END
              FROM want w
             WHERE m.id = ANY(m_id) AND m.received_at = ANY(m_at) AND m.id = w.id
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

-- atende_coach_admit (the AI path) had the same habit on a smaller scale: its agent-interval
-- test was planned again for every analysis (8,006 plans for 8,006 runs in the AI bench, 9 times
-- its run time); the statements that settled on a generic plan are unchanged by this.
ALTER FUNCTION atende_coach_admit(jsonb) SET plan_cache_mode = force_generic_plan;

-- atende_pending_statuses_applied runs every second in each worker with outbound on (the
-- status sweep), nearly always with nothing to do. As a SQL function with a data-modifying
-- CTE it was planned afresh on every call, joining the partitioned messages table: 33 ms of a
-- backend per call on an idle system (test/bench_pg.py with BENCH_PG_IDLE_S; the whole idle
-- system's largest PostgreSQL cost). The same statement in PL/pgSQL, behind a probe of the
-- partial index pending_statuses_applied: idle, a call is that probe. A status marked just
-- after the probe goes out with the next sweep, as one marked after the old statement did.
CREATE OR REPLACE FUNCTION atende_pending_statuses_applied(p_limit int)
RETURNS TABLE (r_message_id bigint, r_conversation_id bigint, r_company_id bigint, r_agent_id bigint,
               r_provider_id text, r_status text, r_error text, r_at text)
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pending_statuses s WHERE s.applied_message_id IS NOT NULL) THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH taken AS (
        DELETE FROM pending_statuses p
         WHERE p.ctid = ANY (ARRAY (SELECT s.ctid FROM pending_statuses s WHERE s.applied_message_id IS NOT NULL
                                     ORDER BY s.kept_at LIMIT p_limit FOR UPDATE SKIP LOCKED))
        RETURNING p.channel, p.provider_id)
    SELECT DISTINCT ON (m.id) m.id, m.conversation_id, m.company_id, c.agent_id, m.provider_id, m.status,
           m.status_error, atende_iso(m.status_at)
      FROM taken t
      JOIN message_keys k ON k.channel = t.channel AND k.provider_id = t.provider_id
      JOIN messages m ON m.id = k.message_id AND m.received_at = k.received_at
      JOIN conversations c ON c.id = m.conversation_id
     WHERE m.status IS NOT NULL
     ORDER BY m.id;
END;
$$;
