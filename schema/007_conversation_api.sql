-- 007_conversation_api: what the notifier's conversation API (notifier/api.c) reads and
-- writes: each agent's read marker per conversation (unread counts, mark-read), and the
-- indexes that make each of its queries an index scan bounded by the page size.
-- 006_agents_day (written at the same time) adds conversations.waiting_since too: IF NOT
-- EXISTS lets the two apply in either order.

ALTER TABLE conversations ADD COLUMN IF NOT EXISTS waiting_since timestamptz;

-- What the list shows of each conversation without reading messages (a lateral lookup of
-- the newest message and a count of the unread ones cost a probe of every weekly partition
-- per conversation listed, ~0.7 ms each): the newest message's id and preview, and how many
-- customer messages it has had. Kept by a trigger on messages (below), so atende_ingest,
-- which 006 may replace too, stays as it is.
ALTER TABLE conversations ADD COLUMN last_message_id bigint;
ALTER TABLE conversations ADD COLUMN last_message jsonb;       -- {id, provider_id, from_me, kind, text (first 200 characters), sent_at}
ALTER TABLE conversations ADD COLUMN customer_messages bigint NOT NULL DEFAULT 0;

-- One row per (agent, conversation) the agent has read: unread = the conversation's
-- customer_messages now minus customer_messages when it was read. A supervisor's reading
-- leaves the assigned agent's marker alone.
CREATE TABLE conversation_reads (
    agent_id             bigint NOT NULL,
    conversation_id      bigint NOT NULL REFERENCES conversations(id),
    last_read_message_id bigint NOT NULL,
    customer_messages    bigint NOT NULL,   -- conversations.customer_messages up to that message
    at                   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, conversation_id)
);

-- A stored message moves its conversation's preview and counter. Only a message newer than
-- the preview counts: atende_ingest allocates a message's id while it holds the conversation's
-- row (the upsert comes first), so ids grow with commits within a conversation, and an
-- archived week loaded back (README, Retention) is not counted twice. The row is already
-- locked and written by the same transaction's upsert: no new lock, one more row version.
CREATE FUNCTION atende_conversation_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conversations c
       SET last_message_id = NEW.id,
           last_message = jsonb_build_object('id', NEW.id, 'provider_id', NEW.provider_id, 'from_me', NEW.from_me,
                                             'kind', NEW.kind, 'text', left(NEW.text, 200),
                                             'sent_at', atende_iso(coalesce(NEW.sent_at, NEW.received_at))),
           customer_messages = c.customer_messages + CASE WHEN NEW.from_me THEN 0 ELSE 1 END
     WHERE c.id = NEW.conversation_id AND coalesce(c.last_message_id, 0) < NEW.id;
    RETURN NULL;
END;
$$;
CREATE TRIGGER messages_touch_conversation AFTER INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION atende_conversation_touch();

-- the messages stored so far
UPDATE conversations c
   SET last_message_id = m.id,
       last_message = jsonb_build_object('id', m.id, 'provider_id', m.provider_id, 'from_me', m.from_me, 'kind', m.kind,
                                         'text', left(m.text, 200), 'sent_at', atende_iso(coalesce(m.sent_at, m.received_at))),
       customer_messages = n.customers
  FROM (SELECT conversation_id, max(id) AS last_id, count(*) FILTER (WHERE NOT from_me) AS customers
          FROM messages GROUP BY conversation_id) n
  JOIN messages m ON m.id = n.last_id
 WHERE c.id = n.conversation_id;

-- The list, newest activity first, keyset (last_message_at, id): the company's, one
-- status's, one agent's. The agent index replaces 001's (agent_id, last_message_at), its
-- prefix. A domain filter rides on these (one domain in five: a few rows read per row kept).
CREATE INDEX conversations_company_recent ON conversations (company_id, last_message_at DESC, id DESC);
CREATE INDEX conversations_status_recent ON conversations (company_id, status, last_message_at DESC, id DESC);
CREATE INDEX conversations_agent_recent ON conversations (agent_id, last_message_at DESC, id DESC);
DROP INDEX IF EXISTS conversations_agent;

-- Search by name or number: trigrams of both in one expression (50,000 conversations make
-- a few MB of index). Message text has no trigram index (a third of the table's size, and
-- a common word matches too many rows for it to help): q scans the company's newest
-- messages, newest first, and stops after a bounded number (notifier/api.c).
CREATE INDEX messages_company_recent ON messages (company_id, received_at DESC);
CREATE INDEX conversations_search ON conversations
    USING gin ((customer || ' ' || coalesce(customer_name, '')) gin_trgm_ops);

-- A stored reply's request (who sent it, its status): found from the message.
CREATE INDEX outbound_requests_message ON outbound_requests (message_id);
