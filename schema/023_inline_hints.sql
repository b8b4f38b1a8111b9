-- 023_inline_hints: a rules hint stored with its message, in the ingest's own statement. A
-- customer message's hint went through a second transaction, the coach's finish
-- (atende_coach_finish): a JSON round trip, the claim that writes a second version of the
-- message (hint_id, coaching) and the hint's insert, then a second commit per batch: about a
-- quarter of PostgreSQL's time per message at 2,000 msg/s, and the most of what separates it
-- from its floor (docs/performance.md, "Session 14").
--
-- Now the worker may send a customer message with the rules' hint already made
-- ("rules_hint": {intent, critical, text, latency_ms}), when nothing but that hint can come of
-- its coaching (worker/coach.c, coach_inline). If the set-based path (021) stores it and its
-- conversation is in the message's domain, the message is inserted with its hint's id and
-- coaching 'hinted', and the hint with it: the row comes back with r_hint_id and
-- r_hint_inserted. Anything else (the 011 path, a transferred conversation) ignores the
-- member: the row comes back without a hint and the worker coaches the message as before.
-- A hint stored with its message is marked (hints.with_message): a worker that dies after
-- the commit and before the broker took the message's and the hint's events leaves both
-- unpublished, and the message, redelivered, comes back already hinted. atende_store
-- returns such a hint with its redelivered message (r_hint), and the worker publishes both
-- events again (consoles take a repeat by message_id and hint_id). atende_ingest is 021's
-- with the changes commented; atende_store adds the transaction's time (r_now: the
-- created_at of the hints stored with their messages) and r_hint.

ALTER TABLE hints ADD COLUMN with_message boolean NOT NULL DEFAULT false;

CREATE OR REPLACE FUNCTION atende_ingest(batch jsonb) RETURNS SETOF atende_ingest_row
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    got       atende_ingest_row[] := '{}';
    plain     int[];       -- batch positions (0-based) that may be stored set-based...
    plain_c   bigint[];    -- ...their conversations...
    plain_in  boolean[];   -- ...and whether each is the customer's
    others    int[];       -- the rest, for atende_ingest_011, in batch order
    locked    bigint[];    -- the plain conversations still plain once locked
    done      int[];       -- the positions stored set-based
    m_conv    bigint[]; m_in boolean[]; m_at timestamptz[]; m_text text[];
BEGIN
    SELECT coalesce(array_agg(q.idx ORDER BY q.idx) FILTER (WHERE q.conv_plain), '{}'),
           coalesce(array_agg(q.conv ORDER BY q.idx) FILTER (WHERE q.conv_plain), '{}'),
           coalesce(array_agg(NOT q.from_me ORDER BY q.idx) FILTER (WHERE q.conv_plain), '{}'),
           coalesce(array_agg(q.idx ORDER BY q.idx) FILTER (WHERE NOT q.conv_plain), '{}')
      INTO plain, plain_c, plain_in, others
      FROM (SELECT p.idx, p.conv, p.from_me, bool_and(p.ok) OVER (PARTITION BY coalesce(p.conv, -1 - p.idx)) AS conv_plain
              FROM (SELECT e.idx, c.id AS conv, e.from_me,
                           c.id IS NOT NULL AND c.agent_id IS NOT NULL
                           AND (e.from_me OR (c.status = 'open'
                                              AND EXISTS (SELECT 1 FROM agents a WHERE a.id = c.agent_id AND a.active)))
                           AND NOT (e.v ? 'survey_score' AND c.survey_until IS NOT NULL)
                           AND NOT (e.v ? 'hint')
                           AND count(*) OVER (PARTITION BY e.v->>'channel', e.v->>'provider_id') = 1
                           AND k.known IS NULL AS ok
                      FROM (SELECT (o - 1)::int AS idx, v, coalesce((v->>'from_me')::boolean, false) AS from_me
                              FROM jsonb_array_elements(batch) WITH ORDINALITY AS t(v, o)) e
                      LEFT JOIN conversations c ON c.channel = e.v->>'channel' AND c.customer = e.v->>'customer'
                      -- lateral: a probe per message (a NOT EXISTS was planned as a hash of the channel's every key)
                      LEFT JOIN LATERAL (SELECT true AS known FROM message_keys k
                                          WHERE k.channel = e.v->>'channel' AND k.provider_id = e.v->>'provider_id'
                                          LIMIT 1) k ON true) p) q;

    IF cardinality(others) > 0 THEN
        got := atende_ingest_rest(batch, others);
    END IF;
    IF cardinality(plain) = 0 THEN
        RETURN QUERY SELECT * FROM unnest(got) ORDER BY 1;
        RETURN;
    END IF;

    -- lock the plain conversations; one changed meanwhile (resolved, transferred) is no
    -- longer plain and goes the 011 way below
    locked := ARRAY(SELECT c.id FROM conversations c
                      JOIN (SELECT u.conv, bool_or(u.is_in) AS has_in
                              FROM unnest(plain_c, plain_in) AS u(conv, is_in) GROUP BY u.conv) w ON w.conv = c.id
                     WHERE c.agent_id IS NOT NULL AND (NOT w.has_in OR c.status = 'open')
                     ORDER BY c.id FOR UPDATE OF c);

    PERFORM set_config('atende.touched', 'on', true);
    WITH f AS (
        SELECT u.idx, u.conv, batch->u.idx AS v, NOT u.is_in AS from_me
          FROM unnest(plain, plain_c, plain_in) AS u(idx, conv, is_in)
         WHERE u.conv = ANY(locked)),
    keys AS (
        -- ids in batch order (a volatile target list is computed after the sort)
        INSERT INTO message_keys AS k (channel, provider_id, message_id, received_at)
        SELECT f.v->>'channel', f.v->>'provider_id', nextval('messages_id_seq'), (f.v->>'received_at')::timestamptz
          FROM f ORDER BY f.idx
        ON CONFLICT (channel, provider_id) DO NOTHING
        RETURNING k.channel, k.provider_id, k.message_id, k.received_at),
    m AS (
        -- hid: a customer message the worker sent with its rules hint, in the conversation's
        -- own domain (one moved by a transfer is coached where it went), stores it
        SELECT f.*, k.message_id, k.received_at,
               CASE WHEN NOT f.from_me AND f.v ? 'rules_hint' AND c.domain = f.v->>'domain'
                    THEN nextval('hints_id_seq') END AS hid
          FROM f JOIN keys k ON k.channel = f.v->>'channel' AND k.provider_id = f.v->>'provider_id'
          JOIN conversations c ON c.id = f.conv),
    stored AS (
        INSERT INTO messages (id, conversation_id, company_id, channel, provider_id, from_me, kind, text, media,
                              sender_name, sent_at, received_at, hint_id, coaching)
        SELECT m.message_id, m.conv, c.company_id, m.v->>'channel', m.v->>'provider_id', m.from_me,
               coalesce(m.v->>'kind', 'text'), coalesce(m.v->>'text', ''), m.v->'media', m.v->>'sender_name',
               (m.v->>'sent_at')::timestamptz, m.received_at, m.hid, CASE WHEN m.hid IS NOT NULL THEN 'hinted' END
          FROM m JOIN conversations c ON c.id = m.conv
         ORDER BY m.message_id),
    hinted AS (
        -- what atende_coach_finish stores for a one-message rules analysis
        INSERT INTO hints (id, message_id, message_ids, provider_ids, conversation_id, company_id, agent_id,
                           domain, intent, critical, text, source, latency_ms, with_message)
        SELECT m.hid, m.message_id, ARRAY[m.message_id], ARRAY[m.v->>'provider_id'], m.conv, c.company_id,
               c.agent_id, c.domain, m.v->'rules_hint'->>'intent',
               coalesce((m.v->'rules_hint'->>'critical')::boolean, false), m.v->'rules_hint'->>'text', 'rules',
               coalesce((m.v->'rules_hint'->>'latency_ms')::int, 0), true
          FROM m JOIN conversations c ON c.id = m.conv
         WHERE m.hid IS NOT NULL),
    g AS (
        SELECT m.conv, max(m.received_at) AS last_at, max(m.message_id) AS last_id,
               (array_agg(m.v->>'sender_name' ORDER BY m.idx DESC)
                  FILTER (WHERE NOT m.from_me AND m.v->>'sender_name' IS NOT NULL))[1] AS name,
               array_agg(m.message_id) FILTER (WHERE NOT m.from_me) AS in_ids,
               (array_agg(jsonb_build_object('id', m.message_id, 'provider_id', m.v->>'provider_id',
                                             'from_me', m.from_me, 'kind', coalesce(m.v->>'kind', 'text'),
                                             'text', left(coalesce(m.v->>'text', ''), 200),
                                             'sent_at', atende_iso(coalesce((m.v->>'sent_at')::timestamptz,
                                                                            m.received_at)))
                          ORDER BY m.message_id DESC))[1] AS preview
          FROM m GROUP BY m.conv),
    touched AS (
        -- 011's upsert and 007's touch in one row version
        UPDATE conversations c
           SET last_message_at = greatest(c.last_message_at, g.last_at),
               customer_name = coalesce(g.name, c.customer_name),
               last_message_id = CASE WHEN g.last_id > coalesce(c.last_message_id, 0) THEN g.last_id
                                      ELSE c.last_message_id END,
               last_message = CASE WHEN g.last_id > coalesce(c.last_message_id, 0) THEN g.preview
                                   ELSE c.last_message END,
               customer_messages = c.customer_messages
                                   + (SELECT count(*) FROM unnest(g.in_ids) i WHERE i > coalesce(c.last_message_id, 0))
          FROM g WHERE c.id = g.conv)
    SELECT got || coalesce(array_agg(ROW(m.idx, m.message_id, m.conv, c.agent_id, true, m.hid, m.hid IS NOT NULL, c.status,
                                         NULL, false, NULL, false, NULL, NULL)::atende_ingest_row), '{}'),
           coalesce(array_agg(m.idx), '{}'),
           array_agg(m.conv ORDER BY m.idx), array_agg(NOT m.from_me ORDER BY m.idx),
           array_agg(m.received_at ORDER BY m.idx), array_agg(coalesce(m.v->>'text', '') ORDER BY m.idx)
      INTO got, done, m_conv, m_in, m_at, m_text
      FROM m JOIN conversations c ON c.id = m.conv;
    PERFORM set_config('atende.touched', '', true);
    IF cardinality(done) > 0 THEN
        PERFORM atende_silences(m_conv, m_in, m_at, m_text);
    END IF;

    -- what was not stored set-based after all: a conversation changed before its lock, or a
    -- key another worker stored meanwhile (a redelivery), the 011 way
    IF cardinality(done) < cardinality(plain) THEN
        got := got || atende_ingest_rest(batch, ARRAY(SELECT u.idx FROM unnest(plain) u(idx)
                                                        WHERE u.idx <> ALL(done) ORDER BY u.idx));
    END IF;
    RETURN QUERY SELECT * FROM unnest(got) ORDER BY 1;
END;
$$;

DROP FUNCTION atende_store(jsonb, text);
CREATE FUNCTION atende_store(batch jsonb, bot_on text)
RETURNS TABLE (r_idx int, r_message_id bigint, r_conversation_id bigint, r_agent_id bigint,
               r_inserted boolean, r_hint_id bigint, r_hint_inserted boolean,
               r_status text, r_prev_status text, r_assigned boolean, r_from_agent bigint, r_queued boolean,
               r_changed_at timestamptz, r_survey jsonb, r_conv_domain text, r_now text,
               r_hint jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('atende.bot_on', bot_on, true);
    -- the join reads the conversations as they were when this statement began: NULL for one
    -- the batch creates, the domain before any transfer this batch does not make
    RETURN QUERY SELECT i.*, c.domain, to_jsonb(now()) #>> '{}', h.hint FROM atende_ingest(batch) i
                   LEFT JOIN conversations c ON c.id = i.r_conversation_id
                   -- a redelivered message's hint stored with it (read only for those)
                   LEFT JOIN LATERAL (SELECT jsonb_build_object('intent', x.intent, 'critical', x.critical,
                                                                'text', x.text, 'agent_id', x.agent_id,
                                                                'created_at', x.created_at) AS hint
                                        FROM hints x
                                       WHERE NOT i.r_inserted AND x.id = i.r_hint_id AND x.with_message
                                       LIMIT 1) h ON true
                  ORDER BY i.r_idx;
END;
$$;
