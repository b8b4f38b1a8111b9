-- 021_ingest_sets: atende_ingest stores the common message set-based. Before, every message
-- of a batch ran 011's path row by row from PL/pgSQL: the conversation's upsert (a BEFORE
-- INSERT trigger call and a new row version with an entry in each of its nine indexes, the
-- trigram index's twenty-odd among them), its key, the message, the touch trigger's second
-- version of the conversation, the agent checks: 4-6 executor runs per message, about two
-- thirds of PostgreSQL's time per message at 2,000 msg/s (docs/performance.md, "Session 13").
--
-- Now a message is "plain" when nothing but storing happens to it: its conversation exists
-- and has an agent, and it is ours or the conversation is open with that agent active (no
-- routing, no reopening, no history row), its key is new and once in the batch, it is no
-- survey answer. A conversation's messages are all plain or all go the 011 way, so ids stay
-- in arrival order within each conversation. The plain ones are stored by one statement
-- per batch (keys, messages, one new version per conversation carrying both the upsert's
-- and the touch's columns), the rest by atende_ingest_011 as before, first: it takes the
-- companies' assignment lock before any row lock, and this function locks its rows after.
-- Same contract and columns as 011 (one row per element, in order).

ALTER FUNCTION atende_ingest(jsonb) RENAME TO atende_ingest_011;

CREATE TYPE atende_ingest_row AS (
    r_idx int, r_message_id bigint, r_conversation_id bigint, r_agent_id bigint, r_inserted boolean,
    r_hint_id bigint, r_hint_inserted boolean, r_status text, r_prev_status text, r_assigned boolean,
    r_from_agent bigint, r_queued boolean, r_changed_at timestamptz, r_survey jsonb);

-- The touch (007) is made by the set-based path's own update; elsewhere it stays a trigger.
DROP TRIGGER messages_touch_conversation ON messages;
CREATE TRIGGER messages_touch_conversation AFTER INSERT ON messages FOR EACH ROW
    WHEN (coalesce(current_setting('atende.touched', true), '') <> 'on')
    EXECUTE FUNCTION atende_conversation_touch();

-- 011's silences, callable: per conversation, a customer message ends its silence (and any
-- awaited survey answer); our last message after the customer's last one (not a lifecycle
-- job's own) starts or extends one. The arrays are the stored messages, in batch order.
CREATE FUNCTION atende_silences(m_conv bigint[], m_in boolean[], m_at timestamptz[], m_text text[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conversations c
       SET lc_cycle = c.lc_cycle + CASE WHEN g.any_in AND (c.lc_anchor_at IS NOT NULL OR c.lc_stage <> 0
                                                            OR c.survey_until IS NOT NULL) THEN 1 ELSE 0 END,
           lc_stage = CASE WHEN g.any_in THEN 0 ELSE c.lc_stage END,
           lc_anchor_at = CASE WHEN g.starts THEN CASE WHEN g.any_in THEN g.out_at ELSE greatest(c.lc_anchor_at, g.out_at) END
                               WHEN g.any_in THEN NULL ELSE c.lc_anchor_at END,
           lc_next_at = CASE WHEN g.starts THEN CASE WHEN g.any_in THEN g.out_at ELSE greatest(c.lc_anchor_at, g.out_at) END
                                                + make_interval(secs => coalesce(g.first_s, 0))
                             WHEN g.any_in AND c.status <> 'resolved' THEN NULL ELSE c.lc_next_at END,
           survey_kind = CASE WHEN g.any_in THEN NULL ELSE c.survey_kind END,
           survey_until = CASE WHEN g.any_in THEN NULL ELSE c.survey_until END
      FROM (SELECT u.conv, bool_or(u.is_in) AS any_in,
                   (array_agg(u.at ORDER BY u.ord DESC) FILTER (WHERE u.ours))[1] AS out_at,
                   coalesce(max(u.ord) FILTER (WHERE u.ours), 0) > coalesce(max(u.ord) FILTER (WHERE u.is_in), 0) AS starts,
                   (SELECT s.first_after_s FROM lifecycle_settings s WHERE s.id = 1) AS first_s
              FROM (SELECT v.*, NOT v.is_in AND NOT atende_lifecycle_own(v.conv, v.txt) AS ours
                      FROM unnest(m_conv, m_in, m_at, m_text) WITH ORDINALITY AS v(conv, is_in, at, txt, ord)) u
             GROUP BY u.conv) g
     WHERE c.id = g.conv
       AND ((g.any_in AND (c.lc_anchor_at IS NOT NULL OR c.lc_stage <> 0 OR c.survey_until IS NOT NULL))
            OR (g.starts AND c.status <> 'resolved'));
END;
$$;

-- atende_ingest_011 over the batch's elements at positions (0-based, in order), its rows
-- numbered by those positions. (The functions here are PL/pgSQL, not SQL: their plans are kept
-- for the session, where a SQL function's are made at every call, ~1 ms each.)
CREATE FUNCTION atende_ingest_rest(batch jsonb, positions int[]) RETURNS atende_ingest_row[]
LANGUAGE plpgsql AS $$
BEGIN
    RETURN (SELECT coalesce(array_agg(ROW(positions[x.r_idx + 1], x.r_message_id, x.r_conversation_id, x.r_agent_id,
                                  x.r_inserted, x.r_hint_id, x.r_hint_inserted, x.r_status, x.r_prev_status,
                                  x.r_assigned, x.r_from_agent, x.r_queued, x.r_changed_at, x.r_survey)::atende_ingest_row),
                    '{}')
      FROM atende_ingest_011((SELECT jsonb_agg(batch->p ORDER BY o) FROM unnest(positions) WITH ORDINALITY AS u(p, o))) x);
END;
$$;

-- Sequential scans off: every query here is a key lookup, and a generic plan made while the
-- tables were small would keep scanning them (020).
CREATE FUNCTION atende_ingest(batch jsonb) RETURNS SETOF atende_ingest_row
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
        SELECT f.*, k.message_id, k.received_at
          FROM f JOIN keys k ON k.channel = f.v->>'channel' AND k.provider_id = f.v->>'provider_id'),
    stored AS (
        INSERT INTO messages (id, conversation_id, company_id, channel, provider_id, from_me, kind, text, media,
                              sender_name, sent_at, received_at)
        SELECT m.message_id, m.conv, c.company_id, m.v->>'channel', m.v->>'provider_id', m.from_me,
               coalesce(m.v->>'kind', 'text'), coalesce(m.v->>'text', ''), m.v->'media', m.v->>'sender_name',
               (m.v->>'sent_at')::timestamptz, m.received_at
          FROM m JOIN conversations c ON c.id = m.conv
         ORDER BY m.message_id),
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
    SELECT got || coalesce(array_agg(ROW(m.idx, m.message_id, m.conv, c.agent_id, true, NULL, false, c.status,
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
