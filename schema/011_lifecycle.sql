-- 011_lifecycle: the conversation lifecycle jobs the workers run (worker/jobs.c): follow-ups
-- when the customer stops answering, an auto-resolve after a long silence, and a
-- satisfaction survey after every resolve whose answer (the customer's next message, when it
-- is a score) is stored in `surveys` without reopening the conversation.
--
-- State lives on the conversation row (lc_* columns), kept by atende_ingest (wrapped below)
-- and by a trigger on status changes; atende_lifecycle_due() hands due jobs to whichever
-- worker asks first (rows locked FOR UPDATE SKIP LOCKED) and records each in
-- conversation_jobs, unique per (conversation, kind, cycle), in the same transaction: a job
-- runs once however many workers and machines tick. What a job does goes out as an ordinary
-- atende.outbound request with a deterministic request_id (a bot reply, or a resolve by
-- "system"), so the outbound path's claim sends or applies it exactly once too; the claim
-- (wrapped below) first checks that the job still applies (the customer has not written
-- since), else records it as "skipped".

-- Per company: nps | csat | off; NULL = lifecycle.survey.
ALTER TABLE companies ADD COLUMN survey text CHECK (survey IN ('nps', 'csat', 'off'));

ALTER TABLE conversations
    -- bumped whenever a silence ends (a customer message after ours) and on resolve/reopen:
    -- the cycle of a job, and how a queued job learns it no longer applies
    ADD COLUMN lc_cycle       bigint NOT NULL DEFAULT 0,
    ADD COLUMN lc_anchor_at   timestamptz,  -- our last message (agent or bot, not a follow-up) the customer has not answered
    ADD COLUMN lc_stage       smallint NOT NULL DEFAULT 0, -- jobs done in this silence: 1 follow-up 1, 2 follow-up 2, 3 auto-resolve
    ADD COLUMN lc_next_at     timestamptz,  -- when the scheduler looks at it again; NULL: nothing to do
    ADD COLUMN lc_resolved_at timestamptz,  -- the last resolve (the survey's moment)
    ADD COLUMN survey_kind    text,         -- a survey question went out: the kind of answer awaited ...
    ADD COLUMN survey_until   timestamptz;  -- ... until then (the customer's next message only)
CREATE INDEX conversations_lc_next ON conversations (lc_next_at) WHERE lc_next_at IS NOT NULL;

-- Every job handed out, once per (conversation, kind, cycle). request is the atende.outbound
-- message; published_at is set when the broker acknowledged it. A row left unpublished by a
-- worker that died is handed out again after lease_until (the same request_id: the outbound
-- claim sends it at most once).
CREATE TABLE conversation_jobs (
    id              bigserial PRIMARY KEY,
    conversation_id bigint NOT NULL,
    company_id      bigint NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('followup1', 'followup2', 'auto_resolve', 'survey')),
    cycle           bigint NOT NULL,
    request         jsonb NOT NULL,
    owner           text NOT NULL,            -- the worker that took it last: "host:pid"
    lease_until     timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz,
    UNIQUE (conversation_id, kind, cycle)
);
CREATE INDEX conversation_jobs_unpublished ON conversation_jobs (lease_until) WHERE published_at IS NULL;
CREATE INDEX conversation_jobs_created ON conversation_jobs (created_at);

-- Survey answers.
CREATE TABLE surveys (
    id              bigserial PRIMARY KEY,
    conversation_id bigint NOT NULL,
    company_id      bigint NOT NULL,
    agent_id        bigint,                   -- the conversation's agent when it was resolved
    domain          text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('nps', 'csat')),
    score           smallint NOT NULL CHECK (score BETWEEN 0 AND 10),
    raw_text        text NOT NULL,            -- the customer's message
    message_id      bigint NOT NULL UNIQUE,   -- messages.id of that message
    answered_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX surveys_company ON surveys (company_id, answered_at);
CREATE INDEX surveys_conversation ON surveys (conversation_id);

-- The scheduler's first delay (the smallest configured), written by atende_lifecycle_due, so
-- that a stored agent message schedules its conversation's first look for when something can
-- be due rather than at once.
CREATE TABLE lifecycle_settings (
    id            int PRIMARY KEY CHECK (id = 1),
    first_after_s int NOT NULL
);

-- Resolving or reopening starts a new cycle: a silence's jobs no longer apply, and a resolve
-- schedules the survey (looked at by the next tick); a reopen cancels an awaited answer.
-- Between open and pending nothing changes (pending is waiting for the customer: the
-- follow-ups still apply).
CREATE FUNCTION atende_lifecycle_on_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.lc_cycle := OLD.lc_cycle + 1;
    NEW.lc_anchor_at := NULL;
    NEW.lc_stage := 0;
    NEW.survey_kind := NULL;
    NEW.survey_until := NULL;
    IF NEW.status = 'resolved' THEN
        NEW.lc_resolved_at := clock_timestamp();
        NEW.lc_next_at := NEW.lc_resolved_at;
    ELSE
        NEW.lc_next_at := NULL;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER conversations_lifecycle BEFORE UPDATE OF status ON conversations FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status AND (NEW.status = 'resolved' OR OLD.status = 'resolved'))
    EXECUTE FUNCTION atende_lifecycle_on_status();

-- True when a stored agent-side message is a lifecycle job's own (a follow-up or the survey
-- question): a lifecycle request of that conversation with that text is being sent. Its
-- storage (atende_outbound_sent) and the gateway's echo of it both happen then.
CREATE FUNCTION atende_lifecycle_own(p_conv bigint, p_text text) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM outbound_requests o
                    WHERE o.conversation_id = p_conv AND o.status = 'sending' AND o.request ? 'lifecycle'
                      AND o.request->>'text' = p_text)
$$;

-- Whether a score fits the survey kind's scale (NPS 0..10, CSAT 1..5).
CREATE FUNCTION atende_survey_in_range(p_kind text, p_score int) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_kind WHEN 'nps' THEN p_score BETWEEN 0 AND 10 WHEN 'csat' THEN p_score BETWEEN 1 AND 5
                       ELSE false END
$$;

-- atende_ingest, same contract as in 006 plus one column at the end:
--   r_survey  {"kind","score","survey_id"} when this customer message was stored as the
--             answer to a survey (it leaves the conversation resolved and gets no hint), else NULL
-- A survey answer is the first customer message of the batch to a resolved conversation
-- awaiting one (survey_until not passed) whose "survey_score" (the worker parses the text,
-- worker/survey.c) is in the kind's range; it is stored here. Everything else goes through
-- the 006 function; afterwards each stored message moves its conversation's silence: a
-- customer message ends it, one of ours (not a lifecycle job's own) starts or extends it.
ALTER FUNCTION atende_ingest(jsonb) RENAME TO atende_ingest_006;

CREATE FUNCTION atende_ingest(batch jsonb)
RETURNS TABLE (r_idx int, r_message_id bigint, r_conversation_id bigint, r_agent_id bigint,
               r_inserted boolean, r_hint_id bigint, r_hint_inserted boolean,
               r_status text, r_prev_status text, r_assigned boolean, r_from_agent bigint, r_queued boolean,
               r_changed_at timestamptz, r_survey jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    n         int := jsonb_array_length(batch);
    answered  boolean[] := array_fill(false, ARRAY[greatest(n, 1)]);
    out_rows  jsonb[] := array_fill(NULL::jsonb, ARRAY[greatest(n, 1)]);
    rest      jsonb := '[]'::jsonb;
    rest_pos  int[] := '{}';
    a         record;
    conv      record;
    x         record;
    e         jsonb;
    mid       bigint;
    rat       timestamptz;
    sid       bigint;
    first_s   int;
    n_answered int := 0;
    m_conv    bigint[] := '{}';    -- the stored messages of the batch, in order
    m_in      boolean[] := '{}';
    m_at      timestamptz[] := '{}';
    m_text    text[] := '{}';
BEGIN
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(batch) v
                 JOIN conversations c ON c.channel = v->>'channel' AND c.customer = v->>'customer'
                WHERE v ? 'survey_score' AND c.survey_until IS NOT NULL) THEN
        -- the assignment lock of the batch's companies before any row lock, as atende_ingest_006 takes it
        PERFORM atende_assign_lock(ARRAY(SELECT DISTINCT (v->>'company')::bigint FROM jsonb_array_elements(batch) v));
        FOR a IN SELECT DISTINCT ON (v->>'channel', v->>'customer') v AS ev, (o - 1)::int AS pos
                   FROM jsonb_array_elements(batch) WITH ORDINALITY AS t(v, o)
                  WHERE NOT coalesce((v->>'from_me')::boolean, false)
                  ORDER BY v->>'channel', v->>'customer', o LOOP
            CONTINUE WHEN NOT (a.ev ? 'survey_score') OR jsonb_typeof(a.ev->'survey_score') <> 'number';
            SELECT c.id, c.company_id, c.agent_id, c.domain, c.status, c.survey_kind, c.survey_until INTO conv
              FROM conversations c WHERE c.channel = a.ev->>'channel' AND c.customer = a.ev->>'customer' FOR UPDATE;
            CONTINUE WHEN NOT FOUND OR conv.status <> 'resolved' OR conv.survey_until IS NULL
                          OR conv.survey_until < clock_timestamp()
                          OR NOT atende_survey_in_range(conv.survey_kind, (a.ev->>'survey_score')::int);
            rat := (a.ev->>'received_at')::timestamptz;
            mid := NULL;
            INSERT INTO message_keys (channel, provider_id, message_id, received_at)
            VALUES (a.ev->>'channel', a.ev->>'provider_id', nextval('messages_id_seq'), rat)
            ON CONFLICT (channel, provider_id) DO NOTHING
            RETURNING message_id INTO mid;
            CONTINUE WHEN mid IS NULL;   -- a redelivery: the 006 function answers it as stored
            INSERT INTO messages (id, conversation_id, company_id, channel, provider_id, from_me, kind, text, media,
                                  sender_name, sent_at, received_at)
            VALUES (mid, conv.id, conv.company_id, a.ev->>'channel', a.ev->>'provider_id', false,
                    coalesce(a.ev->>'kind', 'text'), coalesce(a.ev->>'text', ''), a.ev->'media', a.ev->>'sender_name',
                    (a.ev->>'sent_at')::timestamptz, rat);
            UPDATE conversations c SET last_message_at = greatest(c.last_message_at, rat),
                   customer_name = coalesce(a.ev->>'sender_name', c.customer_name),
                   survey_kind = NULL, survey_until = NULL
             WHERE c.id = conv.id;
            INSERT INTO surveys (conversation_id, company_id, agent_id, domain, kind, score, raw_text, message_id)
            VALUES (conv.id, conv.company_id, conv.agent_id, conv.domain, conv.survey_kind,
                    (a.ev->>'survey_score')::int, coalesce(a.ev->>'text', ''), mid)
            RETURNING id INTO sid;
            answered[a.pos + 1] := true;
            n_answered := n_answered + 1;
            out_rows[a.pos + 1] := jsonb_build_object(
                'r_message_id', mid, 'r_conversation_id', conv.id, 'r_agent_id', conv.agent_id,
                'r_queued', conv.agent_id IS NULL,
                'r_survey', jsonb_build_object('kind', conv.survey_kind, 'score', (a.ev->>'survey_score')::int,
                                               'survey_id', sid));
        END LOOP;
    END IF;

    IF n_answered = 0 THEN
        rest := batch;
    ELSE
        FOR i IN 1..n LOOP
            IF NOT answered[i] THEN
                rest := rest || jsonb_build_array(batch->(i - 1));
                rest_pos := rest_pos || (i - 1);
            END IF;
        END LOOP;
    END IF;

    SELECT s.first_after_s INTO first_s FROM lifecycle_settings s WHERE s.id = 1;
    IF jsonb_array_length(rest) > 0 THEN
        FOR x IN SELECT * FROM atende_ingest_006(rest) LOOP
            IF x.r_inserted THEN
                e := rest->x.r_idx;
                m_conv := m_conv || x.r_conversation_id;
                m_in := m_in || NOT coalesce((e->>'from_me')::boolean, false);
                m_at := m_at || (e->>'received_at')::timestamptz;
                m_text := m_text || coalesce(e->>'text', '');
            END IF;
            IF n_answered = 0 THEN
                -- no survey answer in the batch (nearly always): the 006 rows as they come
                r_idx := x.r_idx; r_message_id := x.r_message_id; r_conversation_id := x.r_conversation_id;
                r_agent_id := x.r_agent_id; r_inserted := x.r_inserted; r_hint_id := x.r_hint_id;
                r_hint_inserted := x.r_hint_inserted; r_status := x.r_status; r_prev_status := x.r_prev_status;
                r_assigned := x.r_assigned; r_from_agent := x.r_from_agent; r_queued := x.r_queued;
                r_changed_at := x.r_changed_at; r_survey := NULL;
                RETURN NEXT;
            ELSE
                out_rows[rest_pos[x.r_idx + 1] + 1] := to_jsonb(x);
            END IF;
        END LOOP;
    END IF;
    -- the silences, one statement per batch: per conversation, a customer message ends its
    -- silence (and any awaited survey answer); our last message after the customer's last
    -- one (not a lifecycle job's own) starts or extends one
    UPDATE conversations c
       SET lc_cycle = c.lc_cycle + CASE WHEN g.any_in AND (c.lc_anchor_at IS NOT NULL OR c.lc_stage <> 0
                                                            OR c.survey_until IS NOT NULL) THEN 1 ELSE 0 END,
           lc_stage = CASE WHEN g.any_in THEN 0 ELSE c.lc_stage END,
           lc_anchor_at = CASE WHEN g.starts THEN CASE WHEN g.any_in THEN g.out_at ELSE greatest(c.lc_anchor_at, g.out_at) END
                               WHEN g.any_in THEN NULL ELSE c.lc_anchor_at END,
           lc_next_at = CASE WHEN g.starts THEN CASE WHEN g.any_in THEN g.out_at ELSE greatest(c.lc_anchor_at, g.out_at) END
                                                + make_interval(secs => coalesce(first_s, 0))
                             WHEN g.any_in AND c.status <> 'resolved' THEN NULL ELSE c.lc_next_at END,
           survey_kind = CASE WHEN g.any_in THEN NULL ELSE c.survey_kind END,
           survey_until = CASE WHEN g.any_in THEN NULL ELSE c.survey_until END
      FROM (SELECT u.conv, bool_or(u.is_in) AS any_in,
                   (array_agg(u.at ORDER BY u.ord DESC) FILTER (WHERE u.ours))[1] AS out_at,
                   coalesce(max(u.ord) FILTER (WHERE u.ours), 0) > coalesce(max(u.ord) FILTER (WHERE u.is_in), 0) AS starts
              FROM (SELECT v.*, NOT v.is_in AND NOT atende_lifecycle_own(v.conv, v.txt) AS ours
                      FROM unnest(m_conv, m_in, m_at, m_text) WITH ORDINALITY AS v(conv, is_in, at, txt, ord)) u
             GROUP BY u.conv) g
     WHERE c.id = g.conv
       AND ((g.any_in AND (c.lc_anchor_at IS NOT NULL OR c.lc_stage <> 0 OR c.survey_until IS NOT NULL))
            OR (g.starts AND c.status <> 'resolved'));
    IF n_answered = 0 THEN
        RETURN;
    END IF;

    FOR i IN 1..n LOOP
        e := out_rows[i];
        r_idx := i - 1;
        r_message_id := (e->>'r_message_id')::bigint;
        r_conversation_id := (e->>'r_conversation_id')::bigint;
        r_agent_id := (e->>'r_agent_id')::bigint;
        IF answered[i] THEN
            r_inserted := true;
            r_hint_id := NULL;
            r_hint_inserted := false;
            r_status := 'resolved';
            r_prev_status := NULL;
            r_assigned := false;
            r_from_agent := NULL;
            r_queued := (e->>'r_queued')::boolean;
            r_changed_at := NULL;
            r_survey := e->'r_survey';
        ELSE
            r_inserted := (e->>'r_inserted')::boolean;
            r_hint_id := (e->>'r_hint_id')::bigint;
            r_hint_inserted := (e->>'r_hint_inserted')::boolean;
            r_status := e->>'r_status';
            r_prev_status := e->>'r_prev_status';
            r_assigned := (e->>'r_assigned')::boolean;
            r_from_agent := (e->>'r_from_agent')::bigint;
            r_queued := (e->>'r_queued')::boolean;
            r_changed_at := (e->>'r_changed_at')::timestamptz;
            r_survey := NULL;
        END IF;
        RETURN NEXT;
    END LOOP;
END;
$$;

-- atende_outbound_sent, same contract as in 005; a survey question that went out (or was
-- stored on an api channel without url) makes its conversation await the answer for the
-- request's window, unless the conversation moved on meanwhile (reopened, resolved again).
ALTER FUNCTION atende_outbound_sent(text, jsonb, jsonb, text, int) RENAME TO atende_outbound_sent_005;

CREATE FUNCTION atende_outbound_sent(rid text, ev jsonb, p_events jsonb, p_status text, p_attempts int)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    res jsonb := atende_outbound_sent_005(rid, ev, p_events, p_status, p_attempts);
    lc  jsonb;
    cid bigint;
BEGIN
    SELECT o.request->'lifecycle', o.conversation_id INTO lc, cid FROM outbound_requests o WHERE o.request_id = rid;
    IF lc->>'job' = 'survey' THEN
        UPDATE conversations c SET survey_kind = lc->>'kind',
               survey_until = clock_timestamp() + make_interval(secs => (lc->>'window_s')::int)
         WHERE c.id = cid AND c.status = 'resolved' AND c.lc_cycle = (lc->>'cycle')::bigint;
    END IF;
    RETURN res;
END;
$$;

-- Hands out due lifecycle jobs, at most p_limit conversations' worth plus the unpublished
-- jobs of workers that died, to the caller p_owner for lease_ms. Concurrent callers get
-- disjoint sets (rows locked FOR UPDATE SKIP LOCKED, the job rows written in the same
-- transaction). p is the configuration (worker/jobs.c):
--   {"followup_after_s":[F1,F2], "followup_texts":[T1,T2], "auto_resolve_after_s":R,
--    "survey":"nps"|"csat"|"off", "survey_texts":{"nps":..,"csat":..}, "survey_window_s":W}
-- with 0 for a job that is off. Per conversation the furthest job reached is the one run (a
-- silence found 3 h old after downtime is resolved, without follow-ups first). Returns each
-- job with its atende.outbound request; fresh is false for one taken over from another worker.
CREATE FUNCTION atende_lifecycle_due(p jsonb, p_owner text, lease_ms int, p_limit int)
RETURNS TABLE (job_id bigint, job_kind text, job_company bigint, job_conversation bigint, job_cycle bigint,
               job_request jsonb, job_fresh boolean)
LANGUAGE plpgsql AS $$
DECLARE
    now_ts    timestamptz := clock_timestamp();
    lease     timestamptz := clock_timestamp() + make_interval(secs => lease_ms / 1000.0);
    after_s   int[] := ARRAY[coalesce((p->'followup_after_s'->>0)::int, 0), coalesce((p->'followup_after_s'->>1)::int, 0),
                             coalesce((p->>'auto_resolve_after_s')::int, 0)];
    kinds     text[] := ARRAY['followup1', 'followup2', 'auto_resolve'];
    first_s   int;
    j         conversation_jobs;
    c         record;
    el        double precision;
    stage     int;
    nxt       timestamptz;
    v_kind      text;
    k         text;
    req       jsonb;
    new_id    bigint;
BEGIN
    SELECT min(v) INTO first_s FROM unnest(after_s) v WHERE v > 0;
    -- written only when it changed (a reload): a row locked by every call would serialize them
    IF NOT EXISTS (SELECT 1 FROM lifecycle_settings ls WHERE ls.id = 1 AND ls.first_after_s = coalesce(first_s, 0)) THEN
        INSERT INTO lifecycle_settings (id, first_after_s) VALUES (1, coalesce(first_s, 0))
        ON CONFLICT (id) DO UPDATE SET first_after_s = EXCLUDED.first_after_s;
    END IF;

    -- jobs a worker took and did not see published before its lease ended
    FOR j IN SELECT * FROM conversation_jobs x WHERE x.published_at IS NULL AND x.lease_until < now_ts
              ORDER BY x.lease_until LIMIT p_limit FOR UPDATE SKIP LOCKED LOOP
        UPDATE conversation_jobs SET owner = p_owner, lease_until = lease WHERE id = j.id;
        job_id := j.id; job_kind := j.kind; job_company := j.company_id; job_conversation := j.conversation_id;
        job_cycle := j.cycle; job_request := j.request; job_fresh := false;
        RETURN NEXT;
    END LOOP;

    FOR c IN SELECT x.id, x.company_id, x.status, x.lc_cycle, x.lc_anchor_at, x.lc_stage, x.lc_resolved_at
               FROM conversations x WHERE x.lc_next_at <= now_ts
              ORDER BY x.lc_next_at LIMIT p_limit FOR UPDATE SKIP LOCKED LOOP
        v_kind := NULL;
        req := NULL;
        nxt := NULL;
        stage := c.lc_stage;
        IF c.status = 'resolved' THEN
            k := coalesce((SELECT co.survey FROM companies co WHERE co.id = c.company_id), p->>'survey', 'off');
            IF k IN ('nps', 'csat') AND c.lc_resolved_at > now_ts - make_interval(secs => (p->>'survey_window_s')::int)
               AND coalesce(p->'survey_texts'->>k, '') <> '' THEN
                v_kind := 'survey';
                req := jsonb_build_object('type', 'reply', 'role', 'bot', 'text', p->'survey_texts'->>k,
                                          'lifecycle', jsonb_build_object('job', v_kind, 'cycle', c.lc_cycle, 'kind', k,
                                                                          'window_s', (p->>'survey_window_s')::int));
            END IF;
        ELSIF c.lc_anchor_at IS NOT NULL THEN
            el := extract(epoch FROM now_ts - c.lc_anchor_at);
            FOR s IN REVERSE 3..1 LOOP
                IF after_s[s] > 0 AND el >= after_s[s] AND stage < s THEN
                    v_kind := kinds[s];
                    stage := s;
                    EXIT;
                END IF;
            END LOOP;
            IF v_kind = 'auto_resolve' THEN
                req := jsonb_build_object('type', 'resolve',
                                          'lifecycle', jsonb_build_object('job', v_kind, 'cycle', c.lc_cycle));
            ELSIF v_kind IS NOT NULL THEN
                req := jsonb_build_object('type', 'reply', 'role', 'bot',
                                          'text', p->'followup_texts'->>(stage - 1),
                                          'lifecycle', jsonb_build_object('job', v_kind, 'cycle', c.lc_cycle));
            END IF;
            -- the next look: the first later job's moment
            IF stage < 3 THEN
                FOR s IN stage + 1..3 LOOP
                    IF after_s[s] > 0 THEN
                        nxt := c.lc_anchor_at + make_interval(secs => after_s[s]);
                        EXIT;
                    END IF;
                END LOOP;
            END IF;
        END IF;
        UPDATE conversations SET lc_stage = stage, lc_next_at = nxt WHERE id = c.id;
        CONTINUE WHEN v_kind IS NULL;
        req := req || jsonb_build_object('request_id', format('lifecycle:%s:%s:%s', c.id, c.lc_cycle, v_kind),
                                         'company_id', c.company_id, 'conversation_id', c.id, 'agent_id', 0,
                                         'client_id', NULL);
        INSERT INTO conversation_jobs (conversation_id, company_id, kind, cycle, request, owner, lease_until)
        VALUES (c.id, c.company_id, v_kind, c.lc_cycle, req, p_owner, lease)
        ON CONFLICT (conversation_id, kind, cycle) DO NOTHING
        RETURNING id INTO new_id;
        CONTINUE WHEN new_id IS NULL;
        job_id := new_id; job_kind := v_kind; job_company := c.company_id; job_conversation := c.id;
        job_cycle := c.lc_cycle; job_request := req; job_fresh := true;
        RETURN NEXT;
    END LOOP;
END;
$$;

-- The outbound claim (the latest before this one, whichever migration wrote it, is kept as
-- atende_outbound_claim_010 and called for everything else). A lifecycle request (one with a
-- "lifecycle" member, from atende_lifecycle_due through a worker) is checked on its first
-- handling: a follow-up or auto-resolve applies only while the conversation is open or
-- pending in the same cycle (the customer has not written, nobody resolved it), a survey
-- only while it is resolved in the same cycle; otherwise it is recorded as "skipped", with
-- nothing sent and no events. Follow-ups and the survey question are replies with role
-- "bot" (010: sent and stored once, by "bot", the conversation API's author of automatic
-- messages); an auto-resolve is a resolve by
-- "system" applied here (008's resolve with that author: conversation event with reason
-- "inactivity", then the queue handed out). Only workers write lifecycle requests: the
-- notifier builds a console's request from its own fields, with no "lifecycle" member and
-- the role from the token (agent | supervisor).
ALTER FUNCTION atende_outbound_claim(jsonb, text, int) RENAME TO atende_outbound_claim_010;

CREATE FUNCTION atende_outbound_claim(req jsonb, p_owner text, lease_ms int) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    lc       jsonb := req->'lifecycle';
    rid      text := req->>'request_id';
    op_kind  text := req->>'type';
    company  bigint := (req->>'company_id')::bigint;
    conv_id  bigint := (req->>'conversation_id')::bigint;
    c        record;
    res      jsonb;
    data     jsonb;
    evs      jsonb := '[]'::jsonb;
    q        record;
    applies  boolean;
BEGIN
    IF lc IS NULL OR jsonb_typeof(lc) <> 'object' THEN
        RETURN atende_outbound_claim_010(req, p_owner, lease_ms);
    END IF;
    PERFORM 1 FROM outbound_requests WHERE request_id = rid;
    IF FOUND THEN
        RETURN atende_outbound_claim_010(req, p_owner, lease_ms);   -- handled before: as decided then
    END IF;
    SELECT x.status, x.lc_cycle, x.company_id INTO c FROM conversations x WHERE x.id = conv_id FOR UPDATE;
    applies := FOUND AND c.company_id = company AND c.lc_cycle = (lc->>'cycle')::bigint
               AND CASE WHEN lc->>'job' = 'survey' THEN c.status = 'resolved' ELSE c.status IN ('open', 'pending') END;
    IF NOT applies THEN
        INSERT INTO outbound_requests (request_id, kind, company_id, conversation_id, agent_id, status, error, events,
                                       owner, lease_until, request, by)
        VALUES (rid, op_kind, company, conv_id, NULL, 'skipped', 'the conversation moved on before the job ran',
                '[]'::jsonb, p_owner, clock_timestamp(), req, 'system')
        ON CONFLICT (request_id) DO NOTHING;
        RETURN jsonb_build_object('claimed', true, 'fresh', true, 'status', 'skipped', 'events', '[]'::jsonb);
    END IF;
    IF op_kind <> 'resolve' THEN
        RETURN atende_outbound_claim_010(req, p_owner, lease_ms);   -- a follow-up or the survey: a bot reply
    END IF;

    INSERT INTO outbound_requests (request_id, kind, company_id, conversation_id, agent_id, status, owner,
                                   lease_until, request, by)
    VALUES (rid, op_kind, company, conv_id, NULL, 'new', p_owner, clock_timestamp(), req, 'system');
    res := atende_conversation_set_status(conv_id, company, 'resolved', 'system', NULL);
    data := (res->'event') || jsonb_build_object('request_id', rid, 'client_id', NULL, 'changed', res->'changed',
                                                 'reason', 'inactivity');
    evs := jsonb_build_array(jsonb_build_object('type', 'conversation', 'company_id', company,
                                                'conversation_id', conv_id,
                                                'agent_id', res->'event'->'agent_id', 'data', data));
    IF (res->>'changed')::boolean THEN
        FOR q IN SELECT * FROM atende_assign_waiting(company) LOOP
            evs := evs || jsonb_build_object('type', 'assignment', 'company_id', company,
                'conversation_id', q.conversation_id, 'agent_id', q.agent_id,
                'data', jsonb_build_object('conversation_id', q.conversation_id,
                    'conversation_key', q.channel || ':' || q.customer, 'company_id', company,
                    'channel', q.channel, 'customer', q.customer, 'from_agent', NULL, 'to_agent', q.agent_id,
                    'agent_id', q.agent_id, 'domain', q.domain, 'reason', 'queue', 'waited_ms', q.waited_ms,
                    'at', q.at, 'created_at', q.at));
        END LOOP;
    END IF;
    UPDATE outbound_requests SET status = 'resolved', events = evs, updated_at = now() WHERE request_id = rid;
    RETURN jsonb_build_object('claimed', true, 'fresh', true, 'status', 'resolved', 'events', evs);
END;
$$;
