-- 003_retention: messages and hints become tables partitioned by week (UTC, ISO weeks,
-- partitions named <table>_<IYYY>w<IW>), so `atende retention` can archive and drop whole
-- old weeks instead of deleting rows. PostgreSQL wants the partition key in every unique
-- constraint, so exactly-once storage moves to message_keys: one row per (channel,
-- provider_id), unpartitioned, pruned after retention.dedup_days. The existing rows are
-- copied over with their ids (sequences kept); atende_ingest() keeps its signature and output.

-- the old tables step aside (their index names are needed again)
ALTER TABLE hints RENAME TO hints_v1;
ALTER TABLE messages RENAME TO messages_v1;
ALTER INDEX hints_pkey RENAME TO hints_v1_pkey;
ALTER INDEX hints_message_id_key RENAME TO hints_v1_message_id_key;
ALTER INDEX messages_pkey RENAME TO messages_v1_pkey;
ALTER INDEX messages_channel_provider_id_key RENAME TO messages_v1_channel_provider_id_key;
ALTER INDEX messages_conversation RENAME TO messages_v1_conversation;
ALTER TABLE messages_v1 RENAME CONSTRAINT messages_conversation_id_fkey TO messages_v1_conversation_id_fkey;
ALTER SEQUENCE messages_id_seq OWNED BY NONE;
ALTER SEQUENCE hints_id_seq OWNED BY NONE;

-- same columns as before (whatever earlier migrations added), partitioned by received_at
CREATE TABLE messages (LIKE messages_v1 INCLUDING DEFAULTS, PRIMARY KEY (id, received_at))
    PARTITION BY RANGE (received_at);
ALTER TABLE messages ADD FOREIGN KEY (conversation_id) REFERENCES conversations(id);
CREATE INDEX messages_conversation ON messages (conversation_id, id);
ALTER SEQUENCE messages_id_seq OWNED BY messages.id;

-- one hint per message is kept by atende_ingest (it locks the message row and checks
-- hint_id), as a unique message_id would have to include created_at
CREATE TABLE hints (LIKE hints_v1 INCLUDING DEFAULTS, PRIMARY KEY (id, created_at))
    PARTITION BY RANGE (created_at);
CREATE INDEX hints_message ON hints (message_id);
ALTER SEQUENCE hints_id_seq OWNED BY hints.id;

-- Exactly-once storage: the first worker to insert a key stores the message; a redelivery
-- finds the key and the message it points to.
CREATE TABLE message_keys (
    channel      text NOT NULL,
    provider_id  text NOT NULL,
    message_id   bigint NOT NULL,
    received_at  timestamptz NOT NULL,        -- of the message: finds its partition
    PRIMARY KEY (channel, provider_id)
);
CREATE INDEX message_keys_received ON message_keys (received_at);

-- The tables retention manages, and the column each is partitioned on.
CREATE TABLE atende_partitioned (
    tbl        text PRIMARY KEY,
    key_column text NOT NULL
);
INSERT INTO atende_partitioned VALUES ('messages', 'received_at'), ('hints', 'created_at');

-- Monday 00:00 UTC of the week holding ts.
CREATE FUNCTION atende_week_start(ts timestamptz) RETURNS timestamptz LANGUAGE sql IMMUTABLE AS $$
    SELECT date_trunc('week', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
$$;

-- Creates the missing weekly partitions of every managed table, from the week holding
-- since (default now) to weeks_ahead weeks after the later of since and now. New tables
-- are created alone and then attached: ATTACH takes only a SHARE UPDATE EXCLUSIVE lock on
-- the parent, so inserts keep flowing. Returns the names created.
CREATE FUNCTION atende_create_partitions(weeks_ahead int, since timestamptz DEFAULT NULL)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    t     record;
    w     timestamptz;
    last  timestamptz;
    pname text;
BEGIN
    PERFORM pg_advisory_xact_lock(727100011);
    last := atende_week_start(greatest(coalesce(since, now()), now())) + make_interval(weeks => weeks_ahead);
    FOR t IN SELECT * FROM atende_partitioned ORDER BY tbl LOOP
        w := atende_week_start(coalesce(since, now()));
        WHILE w <= last LOOP
            pname := t.tbl || '_' || to_char(w AT TIME ZONE 'UTC', 'IYYY"w"IW');
            IF to_regclass(pname) IS NULL THEN
                EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', pname, t.tbl);
                EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', t.tbl, pname,
                               w, w + interval '1 week');
                RETURN NEXT pname;
            END IF;
            w := w + interval '1 week';
        END LOOP;
    END LOOP;
END;
$$;

-- Every weekly table of the managed tables: attached partitions, partitions whose
-- DETACH ... CONCURRENTLY was interrupted (detach_pending), and tables left detached by
-- an interrupted retention run (attached = false). expired: the whole week is older than
-- keep_days (never when keep_days is 0).
CREATE FUNCTION atende_partitions(keep_days int)
RETURNS TABLE (tbl text, part text, week_start timestamptz, week_end timestamptz, attached boolean,
               detach_pending boolean, expired boolean)
LANGUAGE sql STABLE AS $$
    SELECT a.tbl, c.relname::text, ws, ws + interval '1 week', i.inhrelid IS NOT NULL,
           coalesce(i.inhdetachpending, false),
           keep_days > 0 AND ws + interval '1 week' <= now() - make_interval(days => keep_days)
      FROM atende_partitioned a
      JOIN pg_class c ON c.relname ~ ('^' || a.tbl || '_[0-9]{4}w[0-9]{2}$') AND c.relkind = 'r'
                     AND c.relnamespace = current_schema()::regnamespace
      LEFT JOIN pg_inherits i ON i.inhrelid = c.oid AND i.inhparent = a.tbl::regclass
      CROSS JOIN LATERAL (SELECT CASE WHEN c.relname ~ '_[0-9]{4}w[0-9]{2}$'
                                      THEN to_date(right(c.relname, 7), 'IYYY"w"IW')::timestamp AT TIME ZONE 'UTC'
                                 END AS ws) s
     ORDER BY a.tbl, ws
$$;

-- Existing data: partitions for every week it spans (and 8 ahead; retention keeps the
-- configured number ahead from then on), then copied with its ids.
SELECT count(*) FROM atende_create_partitions(8, (SELECT least(min(received_at), now()) FROM messages_v1));
SELECT count(*) FROM atende_create_partitions(8, (SELECT least(min(created_at), now()) FROM hints_v1));
INSERT INTO messages SELECT * FROM messages_v1;
INSERT INTO message_keys (channel, provider_id, message_id, received_at)
SELECT channel, provider_id, id, received_at FROM messages_v1;
INSERT INTO hints SELECT * FROM hints_v1;
DROP TABLE hints_v1;
DROP TABLE messages_v1;

-- Same contract as in 001 (one row per input element, in order, same columns), on the
-- partitioned tables: message_keys decides whether a message is new; a redelivered one
-- is found through its key, its row locked, and a hint attached only if it has none.
CREATE OR REPLACE FUNCTION atende_ingest(batch jsonb)
RETURNS TABLE (r_idx int, r_message_id bigint, r_conversation_id bigint, r_agent_id bigint,
               r_inserted boolean, r_hint_id bigint, r_hint_inserted boolean)
LANGUAGE plpgsql AS $$
DECLARE
    r      jsonb;
    conv   record;
    aid    bigint;
    h      jsonb;
    rat    timestamptz;
    found_msg boolean;
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

        rat := (r->>'received_at')::timestamptz;
        r_message_id := NULL;
        INSERT INTO message_keys (channel, provider_id, message_id, received_at)
        VALUES (r->>'channel', r->>'provider_id', nextval('messages_id_seq'), rat)
        ON CONFLICT (channel, provider_id) DO NOTHING
        RETURNING message_id INTO r_message_id;
        r_inserted := r_message_id IS NOT NULL;
        r_hint_id := NULL;
        IF r_inserted THEN
            INSERT INTO messages (id, conversation_id, company_id, channel, provider_id, from_me, kind, text, media,
                                  sender_name, sent_at, received_at)
            VALUES (r_message_id, conv.id, conv.company_id, r->>'channel', r->>'provider_id', (r->>'from_me')::boolean,
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
