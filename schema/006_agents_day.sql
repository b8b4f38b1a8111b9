-- 006_agents_day: what an agent's working day needs from the database: accounts (login,
-- yescrypt hash, role, skills, a cap on open conversations), presence written by the
-- notifiers (so every instance and every worker sees who is online), conversation states
-- (open, pending, resolved) with their history, and assignment by skill, presence and load
-- with a waiting queue per domain. atende_ingest() keeps its signature and its first seven
-- columns; what a message did to its conversation comes in columns added at the end.
--
-- Who counts as online. A company *uses presence* once any of its agents has an account
-- (a login, `atende agent add`), or when companies.assignment = 'presence'. Then only
-- agents with a fresh agent_presence row (seen within atende_presence_ttl(), 90 s) take
-- conversations, and with nobody online they wait in their domain's queue. A company
-- without accounts (agents seeded from the config, consoles opened with tokens that ops
-- mint) keeps the round robin over its active agents, none of them ever "offline": it has
-- no logins, so nothing could tell an agent who left from one who never logged in.
-- Presence rows themselves cannot be the switch: they vanish when the last agent logs off
-- at night, and a company would then flip back to assigning to everybody exactly when its
-- conversations should queue. companies.assignment = 'round_robin' keeps the old rule even
-- with accounts.

ALTER TABLE companies ADD COLUMN assignment text NOT NULL DEFAULT 'auto'
    CHECK (assignment IN ('auto', 'presence', 'round_robin'));

-- Accounts. Seeding from the config (atende_sync_companies) inserts missing agents only,
-- so nothing below is ever overwritten by it. A disabled agent is also inactive: every
-- older query that filters on active (transfers, the round robin) leaves it out too.
ALTER TABLE agents
    ADD COLUMN login         text,                  -- NULL: seeded from the config, no account
    ADD COLUMN password_hash text,                  -- crypt(3) yescrypt "$y$...", see common/passwd.h
    ADD COLUMN role          text NOT NULL DEFAULT 'agent' CHECK (role IN ('agent', 'supervisor')),
    ADD COLUMN domains       text[] NOT NULL DEFAULT '{}'   -- skills; empty: every domain
        CHECK (domains <@ ARRAY['financeiro', 'comercial', 'suporte', 'ouvidoria', 'cancelamento']),
    ADD COLUMN max_open      integer NOT NULL DEFAULT 10 CHECK (max_open BETWEEN 1 AND 10000),
    ADD COLUMN disabled_at   timestamptz,
    ADD COLUMN password_at   timestamptz,           -- last password change: tokens older may be refused
    ADD CONSTRAINT agents_account CHECK ((login IS NULL) = (password_hash IS NULL)),
    ADD CONSTRAINT agents_disabled CHECK (disabled_at IS NULL OR NOT active);
-- logins are matched case-insensitively ("Ana" and "ana" are one login)
CREATE UNIQUE INDEX agents_login ON agents (lower(login)) WHERE login IS NOT NULL;
CREATE INDEX agents_accounts ON agents (company_id) WHERE login IS NOT NULL;   -- atende_uses_presence

-- Presence: one row per agent and notifier instance holding at least one of the agent's
-- connections; an agent is online while any of its rows is fresh. The notifier upserts a
-- row when the agent's first connection arrives, refreshes all of its rows in one UPDATE
-- per heartbeat and deletes a row when the agent's last connection to it closes; a
-- crashed instance's rows simply go stale. seen_at is in no index, so heartbeats are HOT
-- updates (fillfactor leaves them room on the page).
CREATE TABLE agent_presence (
    agent_id     bigint NOT NULL,
    notifier     text NOT NULL,            -- the instance: "host:pid" or any stable name
    company_id   bigint NOT NULL,
    online_since timestamptz NOT NULL DEFAULT now(),
    seen_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, notifier)
) WITH (fillfactor = 50);
CREATE INDEX agent_presence_notifier ON agent_presence (notifier);

-- Conversation states. open: someone has to act; pending: waiting for the customer;
-- resolved: done (a customer message reopens it). waiting_since: set while the
-- conversation waits in its domain's queue for an agent (agent_id NULL), cleared when one
-- takes it or it is resolved.
ALTER TABLE conversations ADD CONSTRAINT conversations_status CHECK (status IN ('open', 'pending', 'resolved'));
ALTER TABLE conversations ADD COLUMN waiting_since timestamptz;
UPDATE conversations SET waiting_since = created_at WHERE agent_id IS NULL AND status <> 'resolved';

-- The conversation list (GET /v1/conversations, newest activity first, cursor on
-- (last_message_at, id)): by company, by company and status, by agent and status; the
-- load of an agent (its open conversations) is a range of agent_status; the queue of a
-- domain, longest-waiting first.
CREATE INDEX conversations_company ON conversations (company_id, last_message_at DESC, id DESC);
CREATE INDEX conversations_company_status ON conversations (company_id, status, last_message_at DESC, id DESC);
CREATE INDEX conversations_agent_status ON conversations (agent_id, status, last_message_at DESC, id DESC);
CREATE INDEX conversations_queue ON conversations (company_id, domain, waiting_since, id)
    WHERE waiting_since IS NOT NULL;

-- Every change of a conversation's state or agent: who (by), when (at), from what to what.
CREATE TABLE conversation_events (
    id              bigserial PRIMARY KEY,
    conversation_id bigint NOT NULL REFERENCES conversations(id),
    company_id      bigint NOT NULL,
    kind            text NOT NULL,            -- created | status | assignment | queued
    from_status     text,                     -- NULL when created
    status          text NOT NULL,
    from_agent      bigint,
    agent_id        bigint,                   -- after the change (NULL: in the queue)
    domain          text NOT NULL,
    by              text NOT NULL,            -- customer | agent:A | supervisor:A | system
    at              timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX conversation_events_conversation ON conversation_events (conversation_id, id);
CREATE INDEX conversation_events_company ON conversation_events (company_id, at);

-- How long a presence row stays fresh without a heartbeat (the notifier beats every 30 s).
CREATE FUNCTION atende_presence_ttl() RETURNS interval LANGUAGE sql IMMUTABLE AS $$
    SELECT interval '90 seconds'
$$;

-- True when the company assigns by presence (see the top of this file).
CREATE FUNCTION atende_uses_presence(p_company bigint) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT CASE coalesce((SELECT assignment FROM companies WHERE id = p_company), 'auto')
           WHEN 'presence' THEN true
           WHEN 'round_robin' THEN false
           ELSE EXISTS (SELECT 1 FROM agents WHERE company_id = p_company AND login IS NOT NULL) END
$$;

-- True when the agent has a fresh presence row on any notifier.
CREATE FUNCTION atende_agent_online(p_agent bigint) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM agent_presence p
                    WHERE p.agent_id = p_agent AND p.seen_at > now() - atende_presence_ttl())
$$;

-- The notifier: the agent's first connection on this instance. Returns true when the agent
-- was offline everywhere before (the caller then publishes presence and hands out the
-- queue with atende_assign_waiting).
CREATE FUNCTION atende_presence_join(p_notifier text, p_agent bigint, p_company bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    was_online boolean := atende_agent_online(p_agent);
BEGIN
    INSERT INTO agent_presence (agent_id, notifier, company_id) VALUES (p_agent, p_notifier, p_company)
    ON CONFLICT (agent_id, notifier) DO UPDATE
        SET seen_at = now(),
            online_since = CASE WHEN agent_presence.seen_at > now() - atende_presence_ttl()
                                THEN agent_presence.online_since ELSE now() END;
    RETURN NOT was_online;
END;
$$;

-- The notifier: the agent's last connection on this instance closed. Returns true when
-- the agent is still online through another instance.
CREATE FUNCTION atende_presence_leave(p_notifier text, p_agent bigint) RETURNS boolean
LANGUAGE sql AS $$
    DELETE FROM agent_presence WHERE agent_id = p_agent AND notifier = p_notifier;
    SELECT atende_agent_online(p_agent);
$$;

-- The notifier's heartbeat: refreshes its rows of the agents it holds connections of and
-- drops its other rows (whatever a lost leave left behind). One call per beat.
CREATE FUNCTION atende_presence_beat(p_notifier text, p_agents bigint[]) RETURNS void
LANGUAGE sql AS $$
    UPDATE agent_presence SET seen_at = now() WHERE notifier = p_notifier AND agent_id = ANY (p_agents);
    DELETE FROM agent_presence WHERE notifier = p_notifier AND agent_id <> ALL (p_agents);
$$;

-- Serialises assignment within a company, so that two workers never both see an agent
-- below its max_open and both give it a conversation. Taken for every company of the
-- batch at once, in id order, so that two batches never wait for each other in a cycle.
CREATE FUNCTION atende_assign_lock(p_companies bigint[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    c bigint;
BEGIN
    FOR c IN SELECT DISTINCT x FROM unnest(p_companies) x ORDER BY x LOOP
        PERFORM pg_advisory_xact_lock(727100021, (c % 2147483647)::int);
    END LOOP;
END;
$$;

-- The agent a conversation of this company and domain should go to now, or NULL (it waits).
-- Presence: the online, active agent whose domains include p_domain (or are empty) with the
-- fewest open conversations, below its max_open; ties to the least recently assigned.
-- Supervisors watch and assign by hand (transfer); routing leaves them out. The
-- caller holds atende_assign_lock for the company: the counts below are then exact.
-- Round robin (a company without accounts): the least recently assigned active agent, as
-- atende_ingest always did, with no cap and no lock (see the top of this file).
CREATE FUNCTION atende_pick_agent(p_company bigint, p_domain text, p_presence boolean) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    aid bigint;
BEGIN
    IF p_presence THEN
        SELECT a.id INTO aid FROM agents a
         CROSS JOIN LATERAL (SELECT count(*) AS n FROM conversations x
                              WHERE x.agent_id = a.id AND x.status = 'open') l
         WHERE a.company_id = p_company AND a.active AND a.role = 'agent'
           AND (cardinality(a.domains) = 0 OR p_domain = ANY (a.domains))
           AND atende_agent_online(a.id)
           AND l.n < a.max_open
         ORDER BY l.n, a.last_assigned_at NULLS FIRST, a.id
         LIMIT 1;
    ELSE
        SELECT a.id INTO aid FROM agents a
         WHERE a.company_id = p_company AND a.active
           AND (cardinality(a.domains) = 0 OR p_domain = ANY (a.domains))
         ORDER BY a.last_assigned_at NULLS FIRST, a.id
         LIMIT 1 FOR UPDATE SKIP LOCKED;
        IF aid IS NULL THEN
            -- every agent is being assigned by another worker right now: take the least
            -- recently assigned one without waiting (round robin is approximate then)
            SELECT a.id INTO aid FROM agents a
             WHERE a.company_id = p_company AND a.active
               AND (cardinality(a.domains) = 0 OR p_domain = ANY (a.domains))
             ORDER BY a.last_assigned_at NULLS FIRST, a.id LIMIT 1;
        END IF;
    END IF;
    IF aid IS NOT NULL THEN
        UPDATE agents SET last_assigned_at = clock_timestamp() WHERE id = aid;
    END IF;
    RETURN aid;
END;
$$;

-- True when the conversation's agent may keep it when the customer comes back: an active
-- agent, online when the company uses presence.
CREATE FUNCTION atende_agent_keeps(p_agent bigint, p_presence boolean) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT p_agent IS NOT NULL
       AND EXISTS (SELECT 1 FROM agents a WHERE a.id = p_agent AND a.active)
       AND (NOT p_presence OR atende_agent_online(p_agent))
$$;

-- Hands queued conversations of a company (of one domain, or all) to agents who can take
-- them now, longest-waiting first; called when an agent comes online (notifier), after a
-- resolve frees room (worker), and on the notifier's heartbeat as a safety net. Exactly
-- once however many run at the same time: the company's assignment lock, and each
-- conversation row locked (SKIP LOCKED: one being changed elsewhere is left for later).
-- Returns one row per assignment made, with what an `assignment` event carries.
CREATE FUNCTION atende_assign_waiting(p_company bigint, p_domain text DEFAULT NULL)
RETURNS TABLE (conversation_id bigint, agent_id bigint, domain text, channel text, customer text,
               waited_ms bigint, at text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    q        record;
    aid      bigint;
    presence boolean := atende_uses_presence(p_company);
    full_domains text[] := '{}';
BEGIN
    IF presence THEN
        PERFORM atende_assign_lock(ARRAY[p_company]);
    END IF;
    FOR q IN SELECT c.id, c.domain, c.channel, c.customer, c.waiting_since, c.status FROM conversations c
              WHERE c.company_id = p_company AND c.waiting_since IS NOT NULL
                AND (p_domain IS NULL OR c.domain = p_domain)
              ORDER BY c.waiting_since, c.id
                FOR UPDATE SKIP LOCKED LOOP
        CONTINUE WHEN q.domain = ANY (full_domains);
        aid := atende_pick_agent(p_company, q.domain, presence);
        IF aid IS NULL THEN
            full_domains := full_domains || q.domain;   -- nobody for this domain: skip the rest of it
            CONTINUE;
        END IF;
        UPDATE conversations c SET agent_id = aid, waiting_since = NULL WHERE c.id = q.id;
        INSERT INTO conversation_events (conversation_id, company_id, kind, from_status, status, from_agent,
                                         agent_id, domain, by)
        VALUES (q.id, p_company, 'assignment', q.status, q.status, NULL, aid, q.domain, 'system');
        conversation_id := q.id;
        agent_id := aid;
        domain := q.domain;
        channel := q.channel;
        customer := q.customer;
        waited_ms := (extract(epoch FROM clock_timestamp() - q.waiting_since) * 1000)::bigint;
        at := atende_iso(clock_timestamp());
        RETURN NEXT;
    END LOOP;
END;
$$;

-- Routes a conversation that needs an agent (new, reopened without its agent, or in the
-- queue): to atende_pick_agent's choice, unless conversations of its domain have waited
-- longer (they go first: this one queues behind them). Sets agent_id / waiting_since on
-- the row (which the caller holds locked) and returns the agent, or NULL when queued.
CREATE FUNCTION atende_route(p_conv bigint, p_company bigint, p_domain text, p_presence boolean,
                             p_batch_companies bigint[], p_waiting_from timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    aid bigint;
    mine timestamptz;
BEGIN
    IF p_presence THEN
        PERFORM atende_assign_lock(coalesce(p_batch_companies, ARRAY[p_company]));
        SELECT c.waiting_since INTO mine FROM conversations c WHERE c.id = p_conv;
        IF NOT EXISTS (SELECT 1 FROM conversations c
                        WHERE c.company_id = p_company AND c.domain = p_domain AND c.waiting_since IS NOT NULL
                          AND c.id <> p_conv
                          AND (mine IS NULL OR (c.waiting_since, c.id) < (mine, p_conv))) THEN
            aid := atende_pick_agent(p_company, p_domain, true);
        END IF;
    ELSE
        aid := atende_pick_agent(p_company, p_domain, false);
    END IF;
    UPDATE conversations c
       SET agent_id = aid,
           waiting_since = CASE WHEN aid IS NULL THEN coalesce(c.waiting_since, p_waiting_from) END
     WHERE c.id = p_conv;
    RETURN aid;
END;
$$;

-- Changes a conversation's status (resolve, reopen, pending) for the console's ops, the
-- worker and supervisors. by: "agent:A", "supervisor:A", "system" or "customer";
-- by_agent: the requesting agent, if any. Checks that the conversation belongs to
-- p_company and that the transition exists (open <-> pending, open|pending -> resolved,
-- resolved -> open); the same status again changes nothing ("changed": false, and the
-- event as it stands, so a repeated op can be acknowledged the same way). Resolving leaves
-- the queue; reopening keeps the agent while it is active, else the requesting agent takes
-- it, else it is routed like a new conversation (possibly to the queue). Records a
-- conversation_events row. Returns
--   {"ok":true,"changed":B,"from":S,"company_id":C,"event":{conversation_id,status,agent_id,domain,by,at}}
--   {"ok":false,"error":"not_found"|"forbidden"|"bad_status"|"bad_transition","message":"..."}
-- After a resolve the caller hands out the queue (atende_assign_waiting): room was freed.
CREATE FUNCTION atende_conversation_set_status(p_conv bigint, p_company bigint, p_status text, p_by text,
                                               p_by_agent bigint DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    c        record;
    by_who   text := coalesce(nullif(p_by, ''), 'system');
    aid      bigint;
    presence boolean;
    now_ts   timestamptz := clock_timestamp();
BEGIN
    IF p_status IS NULL OR p_status NOT IN ('open', 'pending', 'resolved') THEN
        RETURN jsonb_build_object('ok', false, 'error', 'bad_status',
                                  'message', format('status must be open, pending or resolved, not %s', p_status));
    END IF;
    SELECT x.id, x.company_id, x.status, x.agent_id, x.domain INTO c FROM conversations x WHERE x.id = p_conv;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('ok', false, 'error', 'not_found',
                                  'message', format('conversation %s does not exist', p_conv));
    END IF;
    IF c.company_id <> p_company THEN
        RETURN jsonb_build_object('ok', false, 'error', 'forbidden',
                                  'message', format('conversation %s belongs to another company', p_conv));
    END IF;
    presence := atende_uses_presence(p_company);
    IF presence AND p_status = 'open' THEN
        -- routing may follow: the assignment lock comes before the row lock, as in atende_ingest
        PERFORM atende_assign_lock(ARRAY[p_company]);
    END IF;
    SELECT x.id, x.company_id, x.status, x.agent_id, x.domain INTO c FROM conversations x WHERE x.id = p_conv FOR UPDATE;
    IF c.status = p_status THEN
        RETURN jsonb_build_object('ok', true, 'changed', false, 'from', c.status, 'company_id', p_company,
                                  'event', jsonb_build_object('conversation_id', p_conv, 'status', c.status,
                                                              'agent_id', c.agent_id, 'domain', c.domain,
                                                              'by', by_who, 'at', atende_iso(now_ts)));
    END IF;
    IF c.status = 'resolved' AND p_status = 'pending' THEN
        RETURN jsonb_build_object('ok', false, 'error', 'bad_transition',
                                  'message', 'a resolved conversation is reopened (open), not set pending');
    END IF;

    aid := c.agent_id;
    IF p_status = 'resolved' THEN
        UPDATE conversations SET status = p_status, waiting_since = NULL WHERE id = p_conv;
    ELSE
        UPDATE conversations SET status = p_status WHERE id = p_conv;
        IF p_status = 'open' AND NOT atende_agent_keeps(aid, false) THEN
            IF p_by_agent IS NOT NULL AND EXISTS (SELECT 1 FROM agents a WHERE a.id = p_by_agent
                                                     AND a.company_id = p_company AND a.active) THEN
                aid := p_by_agent;
                UPDATE conversations SET agent_id = aid, waiting_since = NULL WHERE id = p_conv;
            ELSE
                aid := atende_route(p_conv, p_company, c.domain, presence, NULL, now_ts);
            END IF;
        END IF;
    END IF;
    INSERT INTO conversation_events (conversation_id, company_id, kind, from_status, status, from_agent, agent_id,
                                     domain, by, at)
    VALUES (p_conv, p_company, 'status', c.status, p_status, c.agent_id, aid, c.domain, by_who, now_ts);
    RETURN jsonb_build_object('ok', true, 'changed', true, 'from', c.status, 'company_id', p_company,
                              'event', jsonb_build_object('conversation_id', p_conv, 'status', p_status,
                                                          'agent_id', aid, 'domain', c.domain,
                                                          'by', by_who, 'at', atende_iso(now_ts)));
END;
$$;

-- Same contract as in 003 (one row per input element, in order, the same first seven
-- columns), now routing by atende_route instead of a plain round robin, and with the
-- conversation's state. A stored customer message (not a redelivery) to a resolved or
-- pending conversation makes it open again; when its agent is gone (disabled, or offline
-- in a company that uses presence) it is routed again, as is an open conversation whose
-- agent was disabled and one waiting in the queue. Columns added at the end:
--   r_status       the conversation's status after this message
--   r_prev_status  the status this message changed (resolved|pending -> open), else NULL
--   r_assigned     this message gave the conversation an agent (r_agent_id): new, re-routed
--                  or taken out of the queue
--   r_from_agent   the agent it had before a re-routing
--   r_queued       the conversation waits in its domain's queue (r_agent_id NULL)
--   r_changed_at   when (the conversation_events row's at), for the events to publish
DROP FUNCTION atende_ingest(jsonb);
CREATE FUNCTION atende_ingest(batch jsonb)
RETURNS TABLE (r_idx int, r_message_id bigint, r_conversation_id bigint, r_agent_id bigint,
               r_inserted boolean, r_hint_id bigint, r_hint_inserted boolean,
               r_status text, r_prev_status text, r_assigned boolean, r_from_agent bigint, r_queued boolean,
               r_changed_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    r         jsonb;
    conv      record;
    h         jsonb;
    rat       timestamptz;
    found_msg boolean;
    from_me   boolean;
    presence  boolean;
    route     boolean;
    companies bigint[];
BEGIN
    -- Routing takes the assignment lock of the batch's companies (atende_assign_lock). Taken
    -- here, before any conversation row is locked, whenever some message may need routing,
    -- it keeps the order "assignment lock, then rows" that atende_conversation_set_status
    -- and atende_assign_waiting follow, so none of them waits for another in a cycle.
    companies := ARRAY(SELECT DISTINCT (e->>'company')::bigint FROM jsonb_array_elements(batch) e);
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(batch) e
                 LEFT JOIN conversations c ON c.channel = e->>'channel' AND c.customer = e->>'customer'
                WHERE (c.id IS NULL OR c.agent_id IS NULL
                       OR (c.status <> 'open' AND NOT coalesce((e->>'from_me')::boolean, false))
                       OR NOT EXISTS (SELECT 1 FROM agents a WHERE a.id = c.agent_id AND a.active))
                  AND atende_uses_presence((e->>'company')::bigint)) THEN
        PERFORM atende_assign_lock(companies);
    END IF;
    r_idx := 0;
    FOR r IN SELECT value FROM jsonb_array_elements(batch) LOOP
        from_me := coalesce((r->>'from_me')::boolean, false);
        rat := (r->>'received_at')::timestamptz;
        INSERT INTO conversations AS c (company_id, channel, customer, customer_name, domain, last_message_at)
        VALUES ((r->>'company')::bigint, r->>'channel', r->>'customer',
                CASE WHEN from_me THEN NULL ELSE r->>'sender_name' END,
                r->>'domain', rat)
        ON CONFLICT (channel, customer) DO UPDATE
            SET last_message_at = greatest(c.last_message_at, EXCLUDED.last_message_at),
                customer_name = coalesce(EXCLUDED.customer_name, c.customer_name)
        RETURNING c.id, c.agent_id, c.company_id, c.domain, c.status, c.waiting_since, (c.xmax = 0) AS created
             INTO conv;
        r_conversation_id := conv.id;
        r_agent_id := conv.agent_id;
        r_status := conv.status;
        r_prev_status := NULL;
        r_assigned := false;
        r_from_agent := NULL;
        r_changed_at := NULL;

        r_message_id := NULL;
        INSERT INTO message_keys (channel, provider_id, message_id, received_at)
        VALUES (r->>'channel', r->>'provider_id', nextval('messages_id_seq'), rat)
        ON CONFLICT (channel, provider_id) DO NOTHING
        RETURNING message_id INTO r_message_id;
        r_inserted := r_message_id IS NOT NULL;

        -- the conversation's state follows new messages only: a redelivery changes nothing
        IF r_inserted THEN
            route := conv.created OR (conv.agent_id IS NULL AND conv.waiting_since IS NOT NULL);
            presence := NULL;
            IF NOT from_me AND conv.status <> 'open' THEN
                r_prev_status := conv.status;
                r_status := 'open';
                UPDATE conversations SET status = 'open' WHERE id = conv.id;
                presence := atende_uses_presence(conv.company_id);
                route := route OR NOT atende_agent_keeps(conv.agent_id, presence);
            ELSIF NOT from_me AND conv.agent_id IS NOT NULL AND NOT route THEN
                -- an open conversation whose agent was disabled goes to someone else
                route := NOT atende_agent_keeps(conv.agent_id, false);
            ELSIF conv.agent_id IS NULL AND NOT conv.created THEN
                route := true;   -- in the queue, or (before 006) never assigned
            END IF;
            IF route THEN
                presence := coalesce(presence, atende_uses_presence(conv.company_id));
                r_agent_id := atende_route(conv.id, conv.company_id, conv.domain, presence, companies,
                                           coalesce(conv.waiting_since, least(rat, now())));
                r_assigned := r_agent_id IS NOT NULL AND r_agent_id IS DISTINCT FROM conv.agent_id;
                r_from_agent := CASE WHEN r_assigned THEN conv.agent_id END;
            END IF;
            IF conv.created OR r_prev_status IS NOT NULL OR r_assigned
               OR (route AND r_agent_id IS NULL AND conv.waiting_since IS NULL) THEN
                r_changed_at := clock_timestamp();
                INSERT INTO conversation_events (conversation_id, company_id, kind, from_status, status, from_agent,
                                                 agent_id, domain, by, at)
                VALUES (conv.id, conv.company_id,
                        CASE WHEN conv.created THEN 'created' WHEN r_prev_status IS NOT NULL THEN 'status'
                             WHEN r_agent_id IS NULL THEN 'queued' ELSE 'assignment' END,
                        CASE WHEN conv.created THEN NULL ELSE conv.status END, r_status, conv.agent_id, r_agent_id,
                        conv.domain, CASE WHEN from_me THEN 'system' ELSE 'customer' END, r_changed_at);
            END IF;
        END IF;
        r_queued := r_agent_id IS NULL;

        r_hint_id := NULL;
        IF r_inserted THEN
            INSERT INTO messages (id, conversation_id, company_id, channel, provider_id, from_me, kind, text, media,
                                  sender_name, sent_at, received_at)
            VALUES (r_message_id, conv.id, conv.company_id, r->>'channel', r->>'provider_id', from_me,
                    coalesce(r->>'kind', 'text'), coalesce(r->>'text', ''), r->'media', r->>'sender_name',
                    (r->>'sent_at')::timestamptz, rat);
            found_msg := true;
        ELSE
            SELECT k.message_id, k.received_at INTO r_message_id, rat FROM message_keys k
             WHERE k.channel = r->>'channel' AND k.provider_id = r->>'provider_id';
            SELECT m.hint_id INTO r_hint_id FROM messages m
             WHERE m.id = r_message_id AND m.received_at = rat FOR UPDATE;
            found_msg := FOUND;   -- false once the message's week was archived
        END IF;

        r_hint_inserted := false;
        h := r->'hint';
        IF found_msg AND r_hint_id IS NULL AND h IS NOT NULL AND jsonb_typeof(h) = 'object' THEN
            INSERT INTO hints (message_id, message_ids, conversation_id, company_id, agent_id, domain, intent,
                               critical, text, source, model, latency_ms)
            VALUES (r_message_id, ARRAY[r_message_id], conv.id, conv.company_id, r_agent_id, r->>'domain',
                    h->>'intent', coalesce((h->>'critical')::boolean, false), h->>'text', h->>'source',
                    h->>'model', coalesce((h->>'latency_ms')::int, 0))
            RETURNING id INTO r_hint_id;
            UPDATE messages SET hint_id = r_hint_id WHERE id = r_message_id AND received_at = rat;
            r_hint_inserted := true;
        END IF;
        RETURN NEXT;
        r_idx := r_idx + 1;
    END LOOP;
END;
$$;
