-- 010_bot: replies the workers write themselves (bot mode, worker/bot.c) walk the consoles'
-- path: a {"type":"reply","role":"bot","request_id":"bot:…",…} request on atende.outbound is
-- claimed like an agent's reply (atende_outbound_claim, 008 wrapping 005: claim before send,
-- so it reaches the gateway once) and stored as an outbound message. Who wrote it is kept in
-- outbound_requests.by ("bot", or "system" for other automatic messages; NULL: the
-- requesting agent), which the conversation API reads as the message's `by`. The notifier
-- never writes these roles (a console's reply carries none; a status change the token's).

ALTER TABLE outbound_requests ADD COLUMN by text CHECK (by IN ('bot', 'system'));

ALTER FUNCTION atende_outbound_claim(jsonb, text, int) RENAME TO atende_outbound_claim_008;

-- Same contract as 005/008. A worker's own reply (role bot|system, type reply) is claimed by
-- 008 as any reply (its company's conversation checked; no agent behind it, so none of the
-- agent checks), and its row says who wrote it, with no requesting agent, in the same
-- transaction as the claim.
CREATE FUNCTION atende_outbound_claim(req jsonb, p_owner text, lease_ms int) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    rid  text := req->>'request_id';
    role text := req->>'role';
    res  jsonb;
BEGIN
    res := atende_outbound_claim_008(req, p_owner, lease_ms);
    IF role IN ('bot', 'system') AND req->>'type' = 'reply' THEN
        UPDATE outbound_requests SET by = role, agent_id = NULL
         WHERE request_id = rid AND by IS NULL;
    END IF;
    RETURN res;
END;
$$;
