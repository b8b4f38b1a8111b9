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

-- ---------------------------------------------------------------------- bot mode
-- A conversation of a company domain with the bot on (config: companies.bot_domains) is in
-- the bot's hands from its creation (bot_active): routing gives it no agent and does not
-- queue it, and the workers answer its customer messages (worker/bot.c) until they hand it
-- off, which routes it like a new conversation (atende_route_006; outside business hours,
-- with nobody online, it queues for the morning). Any assignment (a transfer, the queue handed out) ends
-- the bot's part too. Which company domains have the bot on is the worker's config, passed
-- with each stored batch as the transaction-local setting atende.bot_on ("C:domain C:domain"),
-- so a reload applies at once and no other path (a console's reopen, a reply stored through
-- atende_ingest) ever puts a conversation in the bot's hands.
-- agent_taken_at records when an agent first had the conversation: "resolved by the bot
-- alone" is a resolved conversation with bot_turns > 0 and agent_taken_at NULL.
ALTER TABLE conversations
    ADD COLUMN bot_active         boolean NOT NULL DEFAULT false,
    ADD COLUMN bot_turns          integer NOT NULL DEFAULT 0,     -- bot answers sent (asked for) so far
    ADD COLUMN bot_handoff_reason text,                           -- customer_asked | critical | bot_cannot_help | max_turns
    ADD COLUMN bot_handoff_at     timestamptz,
    ADD COLUMN agent_taken_at     timestamptz;                    -- first time an agent had it
UPDATE conversations SET agent_taken_at = created_at WHERE agent_id IS NOT NULL;

-- One row per customer message the bot decided about: a redelivered message finds its
-- decision (and its answer, once written) instead of deciding again.
CREATE TABLE bot_turns (
    message_id      bigint PRIMARY KEY,      -- messages.id of the customer message
    conversation_id bigint NOT NULL,
    company_id      bigint NOT NULL,
    decision        text NOT NULL,           -- answer | handoff
    reason          text,                    -- handoff: why
    request_id      text,                    -- answer: the outbound request ("bot:<channel>:<provider_id>")
    answer          text,                    -- answer: the text, once written (the first writer wins)
    source          text,                    -- answer: ai | rules | after_hours
    events          jsonb,                   -- handoff: the events to publish
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bot_turns_created ON bot_turns (created_at);

-- True when the worker storing this transaction's messages has the bot on for company:domain.
CREATE FUNCTION atende_bot_on(p_company bigint, p_domain text) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT (p_company || ':' || p_domain) = ANY (string_to_array(coalesce(current_setting('atende.bot_on', true), ''), ' '))
$$;

CREATE FUNCTION atende_bot_conversation_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.agent_id IS NULL AND atende_bot_on(NEW.company_id, NEW.domain) THEN
        NEW.bot_active := true;
    END IF;
    IF NEW.agent_id IS NOT NULL AND NEW.agent_taken_at IS NULL THEN
        NEW.agent_taken_at := clock_timestamp();
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER conversations_bot_insert BEFORE INSERT ON conversations
    FOR EACH ROW EXECUTE FUNCTION atende_bot_conversation_insert();

-- An agent given the conversation (routing, a transfer, the queue) takes it from the bot.
CREATE FUNCTION atende_bot_conversation_assign() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.agent_id IS NOT NULL THEN
        NEW.bot_active := false;
        NEW.agent_taken_at := coalesce(NEW.agent_taken_at, clock_timestamp());
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER conversations_bot_assign BEFORE UPDATE OF agent_id ON conversations
    FOR EACH ROW WHEN (NEW.agent_id IS NOT NULL) EXECUTE FUNCTION atende_bot_conversation_assign();

-- A conversation in the bot's hands is not waiting for anyone: atende_ingest's "queued"
-- history rows for it are left out.
CREATE FUNCTION atende_bot_conversation_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kind = 'queued' AND EXISTS (SELECT 1 FROM conversations c WHERE c.id = NEW.conversation_id AND c.bot_active) THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER conversation_events_bot BEFORE INSERT ON conversation_events
    FOR EACH ROW WHEN (NEW.kind = 'queued') EXECUTE FUNCTION atende_bot_conversation_event();

ALTER FUNCTION atende_route(bigint, bigint, text, boolean, bigint[], timestamptz) RENAME TO atende_route_006;

-- Same contract as 006's, except that a conversation in the bot's hands gets no agent and
-- does not queue (NULL, row unchanged).
CREATE FUNCTION atende_route(p_conv bigint, p_company bigint, p_domain text, p_presence boolean,
                             p_batch_companies bigint[], p_waiting_from timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM conversations c WHERE c.id = p_conv AND c.bot_active) THEN
        RETURN NULL;
    END IF;
    RETURN atende_route_006(p_conv, p_company, p_domain, p_presence, p_batch_companies, p_waiting_from);
END;
$$;

-- Hands the conversation (row locked by the caller, still bot_active) to an agent: routed
-- now, or queued when nobody can take it (after hours, the usual case). Records the decision of
-- message p_message and returns {"decision":"handoff","reason","agent_id","events"}.
CREATE FUNCTION atende_bot_do_handoff(p_message bigint, c conversations, p_reason text, p_after_hours boolean,
                                      p_presence boolean) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    aid  bigint;
    at   timestamptz := clock_timestamp();
    data jsonb;
    evs  jsonb;
BEGIN
    UPDATE conversations SET bot_active = false, bot_handoff_reason = p_reason, bot_handoff_at = at WHERE id = c.id;
    -- after hours too: with presence nobody is online then, and it waits in the queue for the
    -- first agent of the morning (atende_assign_waiting); a round-robin company has no notion
    -- of being away and assigns at once
    aid := atende_route_006(c.id, c.company_id, c.domain, p_presence, NULL, at);
    INSERT INTO conversation_events (conversation_id, company_id, kind, from_status, status, from_agent, agent_id,
                                     domain, by, at)
    VALUES (c.id, c.company_id, CASE WHEN aid IS NULL THEN 'queued' ELSE 'assignment' END, c.status, c.status, NULL,
            aid, c.domain, 'bot', at);
    data := jsonb_build_object('conversation_id', c.id, 'conversation_key', c.channel || ':' || c.customer,
                               'company_id', c.company_id, 'channel', c.channel, 'customer', c.customer,
                               'from_agent', NULL, 'to_agent', aid, 'agent_id', aid, 'domain', c.domain,
                               'reason', p_reason, 'by', 'bot', 'bot_turns', c.bot_turns,
                               'after_hours', p_after_hours, 'at', atende_iso(at), 'created_at', atende_iso(at));
    evs := jsonb_build_array(jsonb_build_object('type', 'assignment', 'company_id', c.company_id,
                                                'conversation_id', c.id, 'agent_id', aid, 'data', data));
    INSERT INTO bot_turns (message_id, conversation_id, company_id, decision, reason, events)
    VALUES (p_message, c.id, c.company_id, 'handoff', p_reason, evs)
    ON CONFLICT (message_id) DO UPDATE SET decision = 'handoff', reason = EXCLUDED.reason, events = EXCLUDED.events;
    RETURN jsonb_build_object('decision', 'handoff', 'reason', p_reason, 'agent_id', aid, 'events', evs);
END;
$$;

-- The bot's decision about a stored customer message (worker/bot.c), once per message:
--   p = {"message_id","conversation_id","company","reason" (customer_asked|critical|null: the
--        worker's reading of the text),"max_turns","after_hours","request_id","history"}
-- Returns
--   {"decision":"agent","agent_id"}        the conversation is not (or no longer) the bot's:
--                                          coach it as usual
--   {"decision":"answer","turn","answer"|null,"source","history":[{"from_me","text"}]}
--                                          the bot answers (answer set on a redelivery whose
--                                          answer was written: send that one again)
--   {"decision":"handoff","reason","agent_id","events"}   handed off (now or before)
-- A hand-off comes with p's reason, or "max_turns" once the bot has answered max_turns
-- times; bot_turns counts the answers decided.
CREATE FUNCTION atende_bot_turn(p jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    mid      bigint := (p->>'message_id')::bigint;
    conv_id  bigint := (p->>'conversation_id')::bigint;
    reason   text := nullif(p->>'reason', '');
    t        bot_turns;
    c        conversations;
    presence boolean;
    locked   boolean;
    max_turns int := coalesce((p->>'max_turns')::int, 3);
    hist     jsonb;
BEGIN
    SELECT * INTO t FROM bot_turns WHERE message_id = mid;
    IF FOUND THEN
        IF t.decision = 'handoff' THEN
            RETURN jsonb_build_object('decision', 'handoff', 'reason', t.reason, 'events', t.events,
                                      'agent_id', (SELECT agent_id FROM conversations WHERE id = conv_id), 'again', true);
        END IF;
        RETURN jsonb_build_object('decision', 'answer', 'answer', t.answer, 'source', t.source, 'again', true,
                                  'request_id', t.request_id, 'history', '[]'::jsonb);
    END IF;
    SELECT * INTO c FROM conversations WHERE id = conv_id;
    IF NOT FOUND OR NOT c.bot_active THEN
        RETURN jsonb_build_object('decision', 'agent', 'agent_id', c.agent_id);
    END IF;
    presence := atende_uses_presence(c.company_id);
    -- routing needs the company's assignment lock, taken before the row as everywhere; only
    -- a hand-off routes, so an answer does not serialise the company's conversations on it
    -- (a hand-off found only under the row lock, by a concurrent answer's count, waits for
    -- the next message)
    locked := presence AND (reason IS NOT NULL OR c.bot_turns >= max_turns);
    IF locked THEN
        PERFORM atende_assign_lock(ARRAY[c.company_id]);
    END IF;
    SELECT * INTO c FROM conversations WHERE id = conv_id FOR UPDATE;
    IF NOT c.bot_active THEN
        RETURN jsonb_build_object('decision', 'agent', 'agent_id', c.agent_id);
    END IF;
    IF reason IS NULL AND c.bot_turns >= max_turns AND (locked OR NOT presence) THEN
        reason := 'max_turns';
    END IF;
    IF reason IS NOT NULL THEN
        RETURN atende_bot_do_handoff(mid, c, reason, coalesce((p->>'after_hours')::boolean, false), presence);
    END IF;
    UPDATE conversations SET bot_turns = bot_turns + 1 WHERE id = conv_id;
    INSERT INTO bot_turns (message_id, conversation_id, company_id, decision, request_id)
    VALUES (mid, conv_id, c.company_id, 'answer', p->>'request_id');
    SELECT coalesce(jsonb_agg(jsonb_build_object('from_me', h.from_me, 'text', h.text) ORDER BY h.id), '[]'::jsonb)
      INTO hist
      FROM (SELECT m.id, m.from_me, m.text FROM messages m
             WHERE m.conversation_id = conv_id AND m.id < mid AND m.text <> ''
             ORDER BY m.id DESC LIMIT greatest(coalesce((p->>'history')::int, 10), 0)) h;
    RETURN jsonb_build_object('decision', 'answer', 'turn', c.bot_turns + 1, 'answer', NULL, 'history', hist);
END;
$$;

-- The AI said it cannot help with message p_message (decided as an answer): hand off now,
-- unless the conversation left the bot meanwhile ({"decision":"agent"}) or this was done
-- already (the recorded hand-off again).
CREATE FUNCTION atende_bot_handoff(p_message bigint, p_conv bigint, p_reason text, p_after_hours boolean)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    t        bot_turns;
    c        conversations;
    presence boolean;
BEGIN
    SELECT * INTO t FROM bot_turns WHERE message_id = p_message;
    IF FOUND AND t.decision = 'handoff' THEN
        RETURN jsonb_build_object('decision', 'handoff', 'reason', t.reason, 'events', t.events, 'again', true,
                                  'agent_id', (SELECT agent_id FROM conversations WHERE id = p_conv));
    END IF;
    SELECT * INTO c FROM conversations WHERE id = p_conv;
    presence := atende_uses_presence(c.company_id);
    IF presence THEN
        PERFORM atende_assign_lock(ARRAY[c.company_id]);
    END IF;
    SELECT * INTO c FROM conversations WHERE id = p_conv FOR UPDATE;
    IF NOT FOUND OR NOT c.bot_active THEN
        RETURN jsonb_build_object('decision', 'agent', 'agent_id', c.agent_id);
    END IF;
    RETURN atende_bot_do_handoff(p_message, c, p_reason, p_after_hours, presence);
END;
$$;

-- The answer to message p_message, written once: a second writer (a redelivery that asked
-- the AI again) gets the first one back, so every handling sends the same text.
CREATE FUNCTION atende_bot_answered(p_message bigint, p_answer text, p_source text) RETURNS text
LANGUAGE sql AS $$
    UPDATE bot_turns SET answer = coalesce(answer, p_answer), source = coalesce(source, p_source)
     WHERE message_id = p_message
    RETURNING answer;
$$;

-- atende_bot_turn for a batch (a JSON array of its p objects; the answer, an array in the same
-- order): one round trip per worker loop turn. Conversations are locked in id order, after the
-- assignment locks of every company where a hand-off may route (taken first, as everywhere),
-- so two batches, or a batch and atende_ingest, never wait for each other in a cycle.
CREATE FUNCTION atende_bot_decide(batch jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    out   jsonb := '[]'::jsonb;
    res   jsonb[];
    e     record;
    lockc bigint[];
BEGIN
    SELECT array_agg(DISTINCT c.company_id) INTO lockc
      FROM jsonb_array_elements(batch) x
      JOIN conversations c ON c.id = (x->>'conversation_id')::bigint
     WHERE c.bot_active
       AND (nullif(x->>'reason', '') IS NOT NULL
            OR c.bot_turns + (SELECT count(*) FROM jsonb_array_elements(batch) y
                               WHERE y->>'conversation_id' = x->>'conversation_id')
               > coalesce((x->>'max_turns')::int, 3))
       AND atende_uses_presence(c.company_id);
    IF lockc IS NOT NULL THEN
        PERFORM atende_assign_lock(lockc);
    END IF;
    res := array_fill(NULL::jsonb, ARRAY[jsonb_array_length(batch)]);
    FOR e IN SELECT x, (i - 1)::int AS idx FROM jsonb_array_elements(batch) WITH ORDINALITY AS t(x, i)
              ORDER BY (x->>'conversation_id')::bigint, (x->>'message_id')::bigint LOOP
        res[e.idx + 1] := atende_bot_turn(e.x);
    END LOOP;
    SELECT coalesce(jsonb_agg(r ORDER BY n), '[]'::jsonb) INTO out FROM unnest(res) WITH ORDINALITY AS u(r, n);
    RETURN out;
END;
$$;
