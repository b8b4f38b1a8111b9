-- 001_init: companies, agents, conversations, messages, hints, and the batched ingest
-- functions the workers call (one round trip per batch; idempotent on redelivery).

CREATE TABLE companies (
    id               bigint PRIMARY KEY,
    name             text NOT NULL DEFAULT '',
    coaching_enabled boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE agents (
    id               bigint PRIMARY KEY,
    company_id       bigint NOT NULL REFERENCES companies(id),
    name             text NOT NULL DEFAULT '',
    active           boolean NOT NULL DEFAULT true,
    last_assigned_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agents_company ON agents (company_id, last_assigned_at NULLS FIRST, id) WHERE active;

CREATE TABLE conversations (
    id              bigserial PRIMARY KEY,
    company_id      bigint NOT NULL,
    channel         text NOT NULL,            -- "evolution:demo", "cloud:106540352242922", "api:site"
    customer        text NOT NULL,            -- the customer's number / id on that channel
    customer_name   text,
    domain          text NOT NULL,
    agent_id        bigint,
    status          text NOT NULL DEFAULT 'open',
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_message_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (channel, customer)
);
CREATE INDEX conversations_agent ON conversations (agent_id, last_message_at DESC);

CREATE TABLE messages (
    id              bigserial PRIMARY KEY,
    conversation_id bigint NOT NULL REFERENCES conversations(id),
    company_id      bigint NOT NULL,
    channel         text NOT NULL,
    provider_id     text NOT NULL,            -- the gateway's message id
    from_me         boolean NOT NULL,         -- written by the agent (phone or console)
    kind            text NOT NULL DEFAULT 'text',
    text            text NOT NULL DEFAULT '',
    media           jsonb,
    sender_name     text,
    sent_at         timestamptz,
    received_at     timestamptz NOT NULL,     -- when the ingress accepted it
    created_at      timestamptz NOT NULL DEFAULT now(),
    hint_id         bigint,
    UNIQUE (channel, provider_id)
);
CREATE INDEX messages_conversation ON messages (conversation_id, id);

CREATE TABLE hints (
    id              bigserial PRIMARY KEY,
    message_id      bigint NOT NULL UNIQUE REFERENCES messages(id), -- the newest message it answers
    message_ids     bigint[] NOT NULL,        -- every message it covers
    conversation_id bigint NOT NULL,
    company_id      bigint NOT NULL,
    agent_id        bigint,
    domain          text NOT NULL,
    intent          text NOT NULL,
    critical        boolean NOT NULL DEFAULT false,
    text            text NOT NULL,
    source          text NOT NULL,            -- ai | rules | cache | fallback
    model           text,
    tokens_in       integer NOT NULL DEFAULT 0,
    tokens_out      integer NOT NULL DEFAULT 0,
    cost_usd        numeric(12,6) NOT NULL DEFAULT 0,
    latency_ms      integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Stores a batch of canonical inbound events (a JSON array, see worker/store.c):
-- upserts conversations, assigns an agent round-robin to new ones, inserts messages
-- once per (channel, provider_id), and stores the attached hint ("hint" member) when
-- the message has none yet. Returns one row per input element, in order.
CREATE FUNCTION atende_ingest(batch jsonb)
RETURNS TABLE (r_idx int, r_message_id bigint, r_conversation_id bigint, r_agent_id bigint,
               r_inserted boolean, r_hint_id bigint, r_hint_inserted boolean)
LANGUAGE plpgsql AS $$
DECLARE
    r      jsonb;
    conv   record;
    aid    bigint;
    h      jsonb;
BEGIN
    r_idx := 0;
    FOR r IN SELECT value FROM jsonb_array_elements(batch) LOOP
        INSERT INTO conversations AS c (company_id, channel, customer, customer_name, domain, last_message_at)
        VALUES ((r->>'company')::bigint, r->>'channel', r->>'customer',
                CASE WHEN (r->>'from_me')::boolean THEN NULL ELSE r->>'sender_name' END,
                r->>'domain', (r->>'received_at')::timestamptz)
        ON CONFLICT (channel, customer) DO UPDATE
            SET last_message_at = greatest(c.last_message_at, EXCLUDED.last_message_at),
                customer_name = coalesce(EXCLUDED.customer_name, c.customer_name)
        RETURNING c.id, c.agent_id, c.company_id INTO conv;

        r_agent_id := conv.agent_id;
        IF r_agent_id IS NULL THEN
            SELECT a.id INTO aid FROM agents a
             WHERE a.company_id = conv.company_id AND a.active
             ORDER BY a.last_assigned_at NULLS FIRST, a.id
             LIMIT 1 FOR UPDATE SKIP LOCKED;
            IF aid IS NOT NULL THEN
                UPDATE agents SET last_assigned_at = clock_timestamp() WHERE id = aid;
            ELSE
                -- every agent is being assigned by another worker right now: take the least
                -- recently assigned one without waiting (round robin is approximate then)
                SELECT a.id INTO aid FROM agents a WHERE a.company_id = conv.company_id AND a.active
                 ORDER BY a.last_assigned_at NULLS FIRST, a.id LIMIT 1;
            END IF;
            IF aid IS NOT NULL THEN
                UPDATE conversations SET agent_id = aid WHERE id = conv.id;
                r_agent_id := aid;
            END IF;
        END IF;
        r_conversation_id := conv.id;

        INSERT INTO messages (conversation_id, company_id, channel, provider_id, from_me, kind, text, media,
                              sender_name, sent_at, received_at)
        VALUES (conv.id, conv.company_id, r->>'channel', r->>'provider_id', (r->>'from_me')::boolean,
                coalesce(r->>'kind', 'text'), coalesce(r->>'text', ''), r->'media', r->>'sender_name',
                (r->>'sent_at')::timestamptz, (r->>'received_at')::timestamptz)
        ON CONFLICT ON CONSTRAINT messages_channel_provider_id_key DO NOTHING
        RETURNING id INTO r_message_id;
        r_inserted := r_message_id IS NOT NULL;
        r_hint_id := NULL;
        IF NOT r_inserted THEN
            SELECT m.id, m.hint_id INTO r_message_id, r_hint_id FROM messages m
             WHERE m.channel = r->>'channel' AND m.provider_id = r->>'provider_id';
        END IF;

        r_hint_inserted := false;
        h := r->'hint';
        IF r_hint_id IS NULL AND h IS NOT NULL AND jsonb_typeof(h) = 'object' THEN
            INSERT INTO hints (message_id, message_ids, conversation_id, company_id, agent_id, domain, intent,
                               critical, text, source, model, latency_ms)
            VALUES (r_message_id, ARRAY[r_message_id], conv.id, conv.company_id, r_agent_id, r->>'domain',
                    h->>'intent', coalesce((h->>'critical')::boolean, false), h->>'text', h->>'source',
                    h->>'model', coalesce((h->>'latency_ms')::int, 0))
            ON CONFLICT ON CONSTRAINT hints_message_id_key DO NOTHING
            RETURNING id INTO r_hint_id;
            IF r_hint_id IS NOT NULL THEN
                UPDATE messages SET hint_id = r_hint_id WHERE id = r_message_id;
                r_hint_inserted := true;
            END IF;
        END IF;
        RETURN NEXT;
        r_idx := r_idx + 1;
    END LOOP;
END;
$$;

-- Seeds/refreshes companies and agents from the configuration (JSON array of
-- {"id","name","agent_first","agent_last"}); agents outside the ranges stay as they are.
CREATE FUNCTION atende_sync_companies(cfg jsonb) RETURNS void LANGUAGE sql AS $$
    INSERT INTO companies (id, name)
    SELECT (c->>'id')::bigint, coalesce(c->>'name', '') FROM jsonb_array_elements(cfg) c
    ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name;
    INSERT INTO agents (id, company_id, name)
    SELECT g, (c->>'id')::bigint, 'Agente ' || g
      FROM jsonb_array_elements(cfg) c,
           generate_series((c->>'agent_first')::bigint, (c->>'agent_last')::bigint) g
    ON CONFLICT (id) DO NOTHING;
$$;
