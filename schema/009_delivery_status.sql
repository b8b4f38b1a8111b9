-- 009_delivery_status: what the gateways report about the messages atende sent (the
-- ingress's "status" events) is stored on the message and only ever moves forward:
--   (none) < sent < failed < delivered < read
-- so the same status twice, or an older one arriving late (read, then delivered, then sent),
-- changes nothing. failed ranks below delivered and read: a delivery or a read proves the
-- message arrived, whatever an earlier failure report said (the error is then cleared); a
-- failure reported after a delivery is not believed. A status whose message is not stored
-- yet (the webhook can beat the worker that records the sent reply) waits in
-- pending_statuses; the trigger that sees the message stored applies it, and a worker's
-- sweep publishes the event. Pending rows are pruned by `atende retention` after
-- retention.dedup_days, like message_keys.

ALTER TABLE messages ADD COLUMN status text CHECK (status IN ('sent', 'failed', 'delivered', 'read')),
                     ADD COLUMN status_error text,      -- why failed, as the gateway said
                     ADD COLUMN status_at timestamptz;  -- when the gateway saw the current status

CREATE TABLE pending_statuses (
    channel            text NOT NULL,
    provider_id        text NOT NULL,
    status             text NOT NULL,            -- atende's name
    error              text,
    at                 timestamptz NOT NULL,     -- the gateway's time of the status
    kept_at            timestamptz NOT NULL DEFAULT now(),
    applied_message_id bigint,                   -- set once its message is stored: left for the sweep
    PRIMARY KEY (channel, provider_id, status)
);
CREATE INDEX pending_statuses_kept ON pending_statuses (kept_at);
CREATE INDEX pending_statuses_applied ON pending_statuses (kept_at) WHERE applied_message_id IS NOT NULL;

-- atende's name of a status: the canonical names the ingress writes, and the gateways' own
-- (events queued by an ingress older than 009). NULL: not a delivery status atende keeps.
CREATE FUNCTION atende_status_name(s text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE lower(s) WHEN 'sent' THEN 'sent' WHEN 'server_ack' THEN 'sent'
                         WHEN 'delivered' THEN 'delivered' WHEN 'delivery_ack' THEN 'delivered'
                         WHEN 'read' THEN 'read' WHEN 'played' THEN 'read'
                         WHEN 'failed' THEN 'failed' WHEN 'error' THEN 'failed' END
$$;

CREATE FUNCTION atende_status_rank(s text) RETURNS int LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE s WHEN 'sent' THEN 1 WHEN 'failed' THEN 2 WHEN 'delivered' THEN 3 WHEN 'read' THEN 4 ELSE 0 END
$$;

-- A status and the storing of its message serialize on this lock, so that one of them
-- always sees the other: the status finds the message, or the trigger finds the status.
CREATE FUNCTION atende_status_lock(p_channel text, p_provider_id text) RETURNS void LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(727100009, hashtext(p_channel || chr(31) || p_provider_id))
$$;

-- Applies a batch of status events (the canonical JSON of the ingress: channel,
-- provider_id, status, error, sent_at, received_at), one output row per element in order:
--   r_result  advanced (the message's status moved: publish it), unchanged (it already was
--             there or further), kept (no such message yet: waits in pending_statuses),
--             ignored (not a status atende keeps, not a message atende sent, or archived)
--   r_status, r_prev_status, r_error, r_at: the message's status after and before, its
--   error, the status's time; r_message_id, r_conversation_id, r_company_id, r_agent_id:
--   for the event and its routing (advanced only).
CREATE FUNCTION atende_apply_statuses(batch jsonb)
RETURNS TABLE (r_idx int, r_result text, r_message_id bigint, r_conversation_id bigint, r_company_id bigint,
               r_agent_id bigint, r_provider_id text, r_status text, r_prev_status text, r_error text, r_at text)
LANGUAGE plpgsql AS $$
DECLARE
    r   jsonb;
    st  text;
    err text;
    sat timestamptz;
    mid bigint;
    rat timestamptz;
    msg record;
BEGIN
    -- every key's lock up front, in one order: two batches never wait for each other in a cycle
    PERFORM atende_status_lock(k.channel, k.provider_id)
       FROM (SELECT DISTINCT e->>'channel' AS channel, e->>'provider_id' AS provider_id
               FROM jsonb_array_elements(batch) e
              WHERE e->>'channel' IS NOT NULL AND e->>'provider_id' IS NOT NULL
              ORDER BY 1, 2) k;
    r_idx := 0;
    FOR r IN SELECT value FROM jsonb_array_elements(batch) LOOP
        st := atende_status_name(r->>'status');
        err := CASE WHEN st = 'failed' THEN coalesce(r->>'error', 'the gateway reported ' || (r->>'status')) END;
        sat := coalesce((r->>'sent_at')::timestamptz, (r->>'received_at')::timestamptz, now());
        r_result := 'ignored';
        r_message_id := NULL; r_conversation_id := NULL; r_company_id := NULL; r_agent_id := NULL;
        r_provider_id := r->>'provider_id';
        r_status := st; r_prev_status := NULL; r_error := err; r_at := atende_iso(sat);
        IF st IS NOT NULL THEN
            SELECT k.message_id, k.received_at INTO mid, rat FROM message_keys k
             WHERE k.channel = r->>'channel' AND k.provider_id = r->>'provider_id';
            IF NOT FOUND THEN
                INSERT INTO pending_statuses (channel, provider_id, status, error, at)
                VALUES (r->>'channel', r->>'provider_id', st, err, sat)
                ON CONFLICT (channel, provider_id, status) DO NOTHING;
                r_result := CASE WHEN FOUND THEN 'kept' ELSE 'unchanged' END;
            ELSE
                SELECT m.id, m.conversation_id, m.company_id, m.from_me, m.status INTO msg FROM messages m
                 WHERE m.id = mid AND m.received_at = rat FOR UPDATE;
                IF FOUND AND msg.from_me THEN
                    r_message_id := msg.id;
                    r_conversation_id := msg.conversation_id;
                    r_company_id := msg.company_id;
                    r_prev_status := msg.status;
                    IF atende_status_rank(st) > atende_status_rank(msg.status) THEN
                        UPDATE messages SET status = st, status_error = err, status_at = sat
                         WHERE id = mid AND received_at = rat;
                        SELECT c.agent_id INTO r_agent_id FROM conversations c WHERE c.id = msg.conversation_id;
                        r_result := 'advanced';
                    ELSE
                        r_result := 'unchanged';
                    END IF;
                END IF;
            END IF;
        END IF;
        RETURN NEXT;
        r_idx := r_idx + 1;
    END LOOP;
END;
$$;

-- A message atende sent is stored: the statuses that came before it apply now (the most
-- advanced of them), and stay, marked, for atende_pending_statuses_applied to publish.
CREATE FUNCTION atende_pending_status_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    p record;
BEGIN
    PERFORM atende_status_lock(NEW.channel, NEW.provider_id);
    SELECT * INTO p FROM pending_statuses s
     WHERE s.channel = NEW.channel AND s.provider_id = NEW.provider_id AND s.applied_message_id IS NULL
     ORDER BY atende_status_rank(s.status) DESC LIMIT 1;
    IF FOUND THEN
        UPDATE messages SET status = p.status, status_error = p.error, status_at = p.at
         WHERE id = NEW.id AND received_at = NEW.received_at
           AND atende_status_rank(p.status) > atende_status_rank(status);
        UPDATE pending_statuses SET applied_message_id = NEW.id
         WHERE channel = NEW.channel AND provider_id = NEW.provider_id;
    END IF;
    RETURN NULL;
END;
$$;
-- cloned onto every partition, present and future (ATTACH PARTITION clones row triggers)
CREATE TRIGGER messages_pending_statuses AFTER INSERT ON messages
    FOR EACH ROW WHEN (NEW.from_me) EXECUTE FUNCTION atende_pending_status_apply();

-- Takes up to p_limit pending statuses the trigger applied (SKIP LOCKED: workers sweeping at
-- once share them out) and returns, once per message, its status now for the event.
CREATE FUNCTION atende_pending_statuses_applied(p_limit int)
RETURNS TABLE (r_message_id bigint, r_conversation_id bigint, r_company_id bigint, r_agent_id bigint,
               r_provider_id text, r_status text, r_error text, r_at text)
LANGUAGE sql AS $$
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
     ORDER BY m.id
$$;
