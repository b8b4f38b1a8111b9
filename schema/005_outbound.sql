-- 005_outbound: the workers' side of the consoles' replies and transfers (atende.outbound).
-- One row per request_id (the notifier's id of the op) is written before anything leaves
-- the worker, so a redelivered request finds it and is never sent or applied twice.
-- owner/lease_until say which worker handles it and until when at most; events are what
-- to publish once the outcome is final, published_at that the broker acknowledged them.

CREATE TABLE outbound_requests (
    request_id      text PRIMARY KEY,
    kind            text NOT NULL,               -- reply | transfer
    company_id      bigint NOT NULL,             -- the requester's
    conversation_id bigint NOT NULL,
    agent_id        bigint,                      -- the requester
    status          text NOT NULL,               -- reply: sending, then sent | not_sent | failed | unknown;
                                                 -- transfer: transferred; both: refused
    attempts        integer NOT NULL DEFAULT 0,  -- gateway calls made for a reply
    provider_id     text,                        -- the gateway's id of the sent reply
    message_id      bigint,                      -- the reply stored as an agent message
    error           text,                        -- why failed, unknown or refused
    events          jsonb,                       -- [{"type","company_id","conversation_id","agent_id","data"}]
    owner           text NOT NULL,               -- the worker handling it: "host:pid:start:n"
    lease_until     timestamptz NOT NULL,        -- another worker takes over only after this
    request         jsonb NOT NULL,              -- the message as consumed
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz                  -- events acknowledged by the broker: nothing left to do
);
CREATE INDEX outbound_requests_conversation ON outbound_requests (conversation_id, created_at);
CREATE INDEX outbound_requests_created ON outbound_requests (created_at);

-- "2026-11-23T10:00:00.000Z", the format of every time field atende emits.
CREATE FUNCTION atende_iso(ts timestamptz) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- Claims a request for the worker p_owner (one round trip, its own transaction).
-- New request: the row is written (a reply as 'sending': the caller sends it next), the
-- conversation is checked against the requester's company and, for a transfer, the
-- assignment is changed right here (same transaction: applied exactly once).
-- Known request: already published -> {"claimed":false,"published":true}; another
-- owner's lease still running -> {"claimed":false,"wait_ms":N}; otherwise the caller
-- takes it over ("fresh" only when it was its own claim, i.e. nothing was sent since).
-- A claimed answer carries the row's status, error and events, and the conversation.
CREATE FUNCTION atende_outbound_claim(req jsonb, p_owner text, lease_ms int) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    rid       text := req->>'request_id';
    kind      text := req->>'type';
    company   bigint := (req->>'company_id')::bigint;
    conv_id   bigint := (req->>'conversation_id')::bigint;
    by_agent  bigint := (req->>'agent_id')::bigint;
    to_agent  bigint := (req->>'to_agent')::bigint;
    to_domain text := req->>'to_domain';
    lease     timestamptz := clock_timestamp() + make_interval(secs => lease_ms / 1000.0);
    o         outbound_requests;
    c         record;
    new_agent bigint;
    new_dom   text;
    why       text;
    at_iso    text := atende_iso(clock_timestamp());
    data      jsonb;
    evs       jsonb := '[]'::jsonb;
    fresh     boolean := true;
BEGIN
    INSERT INTO outbound_requests (request_id, kind, company_id, conversation_id, agent_id, status, owner,
                                   lease_until, request)
    VALUES (rid, kind, company, conv_id, by_agent, CASE WHEN kind = 'reply' THEN 'sending' ELSE 'new' END,
            p_owner, lease, req)
    ON CONFLICT (request_id) DO NOTHING;
    IF NOT FOUND THEN
        SELECT * INTO o FROM outbound_requests WHERE request_id = rid FOR UPDATE;
        IF o.published_at IS NOT NULL THEN
            RETURN jsonb_build_object('claimed', false, 'published', true, 'status', o.status);
        END IF;
        IF o.owner <> p_owner AND o.lease_until > clock_timestamp() THEN
            RETURN jsonb_build_object('claimed', false, 'published', false, 'status', o.status,
                                      'wait_ms', ceil(extract(epoch FROM o.lease_until - clock_timestamp()) * 1000));
        END IF;
        fresh := o.owner = p_owner;
        UPDATE outbound_requests SET owner = p_owner, lease_until = lease, updated_at = now()
         WHERE request_id = rid;
    END IF;

    SELECT cv.id, cv.company_id, cv.channel, cv.customer, cv.domain, cv.agent_id INTO c
      FROM conversations cv WHERE cv.id = conv_id FOR UPDATE;
    IF NOT FOUND OR c.company_id <> company THEN
        why := format('conversation %s is not known in company %s', conv_id, company);
    END IF;

    IF why IS NULL AND fresh AND kind = 'transfer' AND (o.request_id IS NULL OR o.status = 'new') THEN
        IF to_agent IS NOT NULL THEN
            PERFORM 1 FROM agents a WHERE a.id = to_agent AND a.company_id = company AND a.active;
            IF NOT FOUND THEN
                why := format('agent %s is not an active agent of company %s', to_agent, company);
            END IF;
            new_agent := to_agent;
        ELSIF to_domain = ANY (ARRAY['financeiro', 'comercial', 'suporte', 'ouvidoria', 'cancelamento']) THEN
            -- atende_ingest's round robin, away from the current agent when anyone else is there
            SELECT a.id INTO new_agent FROM agents a
             WHERE a.company_id = company AND a.active AND a.id IS DISTINCT FROM c.agent_id
             ORDER BY a.last_assigned_at NULLS FIRST, a.id LIMIT 1 FOR UPDATE SKIP LOCKED;
            IF new_agent IS NULL THEN
                SELECT a.id INTO new_agent FROM agents a
                 WHERE a.company_id = company AND a.active AND a.id IS DISTINCT FROM c.agent_id
                 ORDER BY a.last_assigned_at NULLS FIRST, a.id LIMIT 1;
            END IF;
            new_agent := coalesce(new_agent, c.agent_id);
        ELSE
            why := 'a transfer needs to_agent or to_domain (financeiro, comercial, suporte, ouvidoria, cancelamento)';
        END IF;
        IF why IS NULL THEN
            IF new_agent IS NOT NULL THEN
                UPDATE agents SET last_assigned_at = clock_timestamp() WHERE id = new_agent;
            END IF;
            UPDATE conversations cv SET agent_id = new_agent, domain = coalesce(to_domain, old.domain)
              FROM (SELECT x.id, x.agent_id, x.domain FROM conversations x WHERE x.id = conv_id FOR UPDATE) old
             WHERE cv.id = old.id
            RETURNING old.agent_id, cv.domain INTO c.agent_id, new_dom;
            data := jsonb_build_object(
                'request_id', rid, 'client_id', req->'client_id', 'conversation_id', conv_id,
                'conversation_key', c.channel || ':' || c.customer, 'company_id', company, 'channel', c.channel,
                'customer', c.customer, 'from_agent', c.agent_id, 'to_agent', new_agent, 'agent_id', new_agent,
                'from_domain', c.domain, 'domain', new_dom, 'to_domain', to_domain, 'by_agent', by_agent,
                'at', at_iso, 'created_at', at_iso);
            -- the old and the new agent each get it on their agent channel
            IF c.agent_id IS NOT NULL AND c.agent_id IS DISTINCT FROM new_agent THEN
                evs := evs || jsonb_build_object('type', 'assignment', 'company_id', company, 'conversation_id', conv_id,
                                                 'agent_id', c.agent_id, 'data', data);
            END IF;
            evs := evs || jsonb_build_object('type', 'assignment', 'company_id', company, 'conversation_id', conv_id,
                                             'agent_id', new_agent, 'data', data);
            UPDATE outbound_requests SET status = 'transferred', events = evs, updated_at = now()
             WHERE request_id = rid;
            RETURN jsonb_build_object('claimed', true, 'fresh', true, 'status', 'transferred', 'events', evs);
        END IF;
    END IF;

    IF why IS NOT NULL AND (o.request_id IS NULL OR o.status IN ('sending', 'new')) THEN
        -- refused: the requester learns why; nothing else happened (the conversation id is
        -- left out of the routing when it belongs to another company)
        data := jsonb_build_object('op', kind, 'status', 'refused', 'error', why, 'request_id', rid,
                                   'client_id', req->'client_id', 'conversation_id', conv_id, 'company_id', company,
                                   'agent_id', by_agent, 'at', at_iso, 'created_at', at_iso);
        evs := jsonb_build_array(jsonb_build_object('type', 'error', 'company_id', company, 'conversation_id',
                                 CASE WHEN c.company_id = company THEN conv_id ELSE 0 END, 'agent_id', by_agent,
                                 'data', data));
        UPDATE outbound_requests SET status = 'refused', error = why, events = evs, updated_at = now()
         WHERE request_id = rid;
        RETURN jsonb_build_object('claimed', true, 'fresh', fresh, 'status', 'refused', 'error', why, 'events', evs);
    END IF;

    IF o.request_id IS NOT NULL AND o.status NOT IN ('sending', 'new') THEN
        RETURN jsonb_build_object('claimed', true, 'fresh', fresh, 'status', o.status, 'error', o.error,
                                  'events', o.events);
    END IF;
    RETURN jsonb_build_object(
        'claimed', true, 'fresh', fresh, 'status', 'sending', 'attempts', coalesce(o.attempts, 0),
        'conversation', jsonb_build_object('channel', c.channel, 'customer', c.customer, 'domain', c.domain,
                                           'agent_id', c.agent_id),
        'agent_name', (SELECT a.name FROM agents a WHERE a.id = by_agent AND a.company_id = company));
END;
$$;

-- A reply the gateway accepted (or, on an api channel without url, one that stays here):
-- stored as an agent message through atende_ingest (idempotent: the gateway echoing it
-- back later is a duplicate) and recorded, in one transaction. ev is the canonical event
-- the ingress would have built; p_events the message event, completed here with the
-- stored ids. Returns {"inserted","message_id","events"}.
CREATE FUNCTION atende_outbound_sent(rid text, ev jsonb, p_events jsonb, p_status text, p_attempts int)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    r   record;
    aid jsonb;
BEGIN
    SELECT * INTO r FROM atende_ingest(jsonb_build_array(ev)) LIMIT 1;
    aid := coalesce(to_jsonb(r.r_agent_id), 'null'::jsonb);
    p_events := jsonb_set(p_events, '{0,data,db_id}', to_jsonb(r.r_message_id));
    p_events := jsonb_set(p_events, '{0,data,agent_id}', aid);
    p_events := jsonb_set(p_events, '{0,agent_id}', aid);
    UPDATE outbound_requests SET status = p_status, provider_id = ev->>'provider_id', message_id = r.r_message_id,
           attempts = p_attempts, error = NULL, events = p_events, updated_at = now()
     WHERE request_id = rid;
    RETURN jsonb_build_object('inserted', r.r_inserted, 'message_id', r.r_message_id, 'events', p_events);
END;
$$;
