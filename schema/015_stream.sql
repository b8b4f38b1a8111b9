-- 015_stream: streamed hints (ai.stream). A streamed AI analysis shows its hint while the model
-- writes it, in partial hint events that carry the id the stored hint will have, so the id is
-- taken from the hints sequence at admission: atende_coach_admit_streamed is atende_coach_admit
-- with a "hint_id" added to each "ai" decision, and atende_coach_finish (014's) stores a hint
-- under the "hint_id" it is given (absent = a new one, as before). An id taken and never
-- stored (the analysis was refused at finish) is a gap in the sequence, as a rollback leaves.
CREATE FUNCTION atende_coach_admit_streamed(batch jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT coalesce(jsonb_agg(CASE WHEN d->>'decision' = 'ai'
                                   THEN d || jsonb_build_object('hint_id', nextval(pg_get_serial_sequence('hints', 'id')))
                                   ELSE d END ORDER BY i), '[]'::jsonb)
      FROM jsonb_array_elements(atende_coach_admit(batch)) WITH ORDINALITY AS t(d, i)
$$;

CREATE OR REPLACE FUNCTION atende_coach_finish(batch jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
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
        hid := coalesce((r->>'hint_id')::bigint, nextval(seq));
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
                           limited_by, routed)
        VALUES (hid, open_ids[cardinality(open_ids)], open_ids,
                ARRAY(SELECT jsonb_array_elements_text(r->'provider_ids')),
                (r->>'conversation_id')::bigint, (r->>'company')::bigint, (r->>'agent')::bigint, r->>'domain',
                h->>'intent', coalesce((h->>'critical')::boolean, false), h->>'text', h->>'source', h->>'model',
                coalesce((h->>'tokens_in')::int, 0), coalesce((h->>'tokens_out')::int, 0),
                coalesce((h->>'cost_usd')::numeric, 0), coalesce((h->>'latency_ms')::int, 0), h->>'limited_by',
                coalesce((h->>'routed')::boolean, false))
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
