-- 008_conversation_ops: the consoles' resolve, reopen and pending ops walk the same path as their
-- replies and transfers (notifier -> atende.outbound -> a worker -> atende_outbound_claim),
-- so each is applied once and its events are published once whatever is redelivered.
-- The 005 claim keeps replies and transfers; this one answers resolve and reopen itself:
-- the request row first (its events stored with it), then atende_conversation_set_status
-- (006) in the same transaction, and after a resolve the queue is handed out (room was
-- freed), each hand-out an `assignment` event to its new agent.
-- It also makes a console's resend of a reply harmless: a reply whose op id (client_id) is a
-- string is that agent's idempotency key, so a second request with the same one (a console
-- that lost the ack and sent it again, under a new request_id) is answered as already done.
-- Numeric op ids are per-connection counters that repeat across sessions: not keys.

CREATE INDEX outbound_requests_client_id ON outbound_requests (agent_id, (request->>'client_id'))
    WHERE kind = 'reply' AND jsonb_typeof(request->'client_id') = 'string';

ALTER FUNCTION atende_outbound_claim(jsonb, text, int) RENAME TO atende_outbound_claim_005;

CREATE FUNCTION atende_outbound_claim(req jsonb, p_owner text, lease_ms int) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    rid      text := req->>'request_id';
    op_kind  text := req->>'type';
    company  bigint := (req->>'company_id')::bigint;
    conv_id  bigint := (req->>'conversation_id')::bigint;
    by_agent bigint := (req->>'agent_id')::bigint;
    by_who   text := CASE WHEN req->>'role' = 'supervisor' THEN 'supervisor:' ELSE 'agent:' END || (req->>'agent_id');
    o        outbound_requests;
    res      jsonb;
    data     jsonb;
    evs      jsonb := '[]'::jsonb;
    why      text;
    at_iso   text := atende_iso(clock_timestamp());
    q        record;
BEGIN
    IF op_kind = 'reply' AND jsonb_typeof(req->'client_id') = 'string' THEN
        -- requests of a conversation are handled one at a time, in order (worker/outbound.c),
        -- and a console's resend goes to the same conversation: no race between the two
        SELECT * INTO o FROM outbound_requests x
         WHERE x.agent_id = by_agent AND x.kind = 'reply' AND jsonb_typeof(x.request->'client_id') = 'string'
           AND x.request->>'client_id' = req->>'client_id' AND x.company_id = company AND x.request_id <> rid
         LIMIT 1;
        IF FOUND THEN
            RETURN jsonb_build_object('claimed', false, 'published', true, 'status', o.status,
                                      'duplicate_of', o.request_id);
        END IF;
    END IF;
    IF op_kind IS NULL OR op_kind NOT IN ('resolve', 'reopen', 'pending') THEN
        RETURN atende_outbound_claim_005(req, p_owner, lease_ms);
    END IF;
    INSERT INTO outbound_requests (request_id, kind, company_id, conversation_id, agent_id, status, owner,
                                   lease_until, request)
    VALUES (rid, op_kind, company, conv_id, by_agent, 'new', p_owner, clock_timestamp(), req)
    ON CONFLICT (request_id) DO NOTHING;
    IF NOT FOUND THEN
        -- applied by an earlier handling (in one transaction, so never half): publish what it decided
        SELECT * INTO o FROM outbound_requests WHERE request_id = rid FOR UPDATE;
        IF o.published_at IS NOT NULL THEN
            RETURN jsonb_build_object('claimed', false, 'published', true, 'status', o.status);
        END IF;
        RETURN jsonb_build_object('claimed', true, 'fresh', false, 'status', o.status, 'error', o.error,
                                  'events', o.events);
    END IF;

    res := atende_conversation_set_status(conv_id, company,
                                          CASE op_kind WHEN 'resolve' THEN 'resolved' WHEN 'pending' THEN 'pending' ELSE 'open' END,
                                          by_who, by_agent);
    IF (res->>'ok')::boolean THEN
        data := (res->'event') || jsonb_build_object('request_id', rid, 'client_id', req->'client_id',
                                                     'changed', res->'changed');
        -- the company's consoles and the conversation's agent hear of it (one event routes to all)
        evs := jsonb_build_array(jsonb_build_object('type', 'conversation', 'company_id', company,
                                                    'conversation_id', conv_id,
                                                    'agent_id', res->'event'->'agent_id', 'data', data));
        IF op_kind = 'resolve' AND (res->>'changed')::boolean THEN
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
        UPDATE outbound_requests SET status = CASE op_kind WHEN 'resolve' THEN 'resolved' WHEN 'pending' THEN 'pending'
                                                     ELSE 'reopened' END,
                                     events = evs, updated_at = now()
         WHERE request_id = rid;
        RETURN jsonb_build_object('claimed', true, 'fresh', true,
                                  'status', CASE op_kind WHEN 'resolve' THEN 'resolved' WHEN 'pending' THEN 'pending'
                                                 ELSE 'reopened' END,
                                  'events', evs);
    END IF;

    -- refused: the requester learns why (not_found and forbidden read alike, so no console
    -- learns whether another company's conversation exists)
    why := CASE WHEN res->>'error' IN ('not_found', 'forbidden')
                THEN format('conversation %s is not known in company %s', conv_id, company)
                ELSE res->>'message' END;
    data := jsonb_build_object('op', op_kind, 'status', 'refused', 'error', why, 'request_id', rid,
                               'client_id', req->'client_id', 'conversation_id', conv_id, 'company_id', company,
                               'agent_id', by_agent, 'at', at_iso, 'created_at', at_iso);
    evs := jsonb_build_array(jsonb_build_object('type', 'error', 'company_id', company, 'conversation_id',
                             CASE WHEN res->>'error' IN ('not_found', 'forbidden') THEN 0 ELSE conv_id END,
                             'agent_id', by_agent, 'data', data));
    UPDATE outbound_requests SET status = 'refused', error = why, events = evs, updated_at = now()
     WHERE request_id = rid;
    RETURN jsonb_build_object('claimed', true, 'fresh', true, 'status', 'refused', 'error', why, 'events', evs);
END;
$$;
