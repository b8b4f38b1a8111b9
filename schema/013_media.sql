-- 013_media: the files of media messages (voice notes, images, videos, documents, stickers).
-- One row per media message, partitioned by its message's week (received_at) so retention
-- archives and drops a week's media rows with its messages; the bytes live in the media
-- store (common/mstore.c), named by their SHA-256, and are removed by retention's sweep once
-- no row names them. A redelivered webhook finds its message's row (UNIQUE message) and
-- stores nothing twice. messages.transcript holds what a voice note said.

CREATE TABLE media (
    id              bigserial,
    company_id      bigint NOT NULL,
    message_id      bigint NOT NULL,            -- messages.id
    conversation_id bigint NOT NULL,
    received_at     timestamptz NOT NULL,       -- the message's: its week is the message's week
    kind            text NOT NULL,              -- the gateway's: audio | image | video | document | sticker
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'stored', 'too_large', 'failed')),
    sha256          text CHECK (sha256 ~ '^[0-9a-f]{64}$'),  -- the file in the store (stored only)
    mime            text,                       -- decided from the bytes once stored; the gateway's before
    size            bigint,                     -- bytes (stored), or what the gateway announced
    name            text,                       -- a document's file name, as the customer sent it (display only)
    duration_ms     integer,
    width           integer,
    height          integer,
    error           text,                       -- failed / too_large: why
    attempts        integer NOT NULL DEFAULT 0, -- downloads tried
    created_at      timestamptz NOT NULL DEFAULT now(),
    stored_at       timestamptz,
    PRIMARY KEY (id, received_at),
    UNIQUE (message_id, received_at)
) PARTITION BY RANGE (received_at);
CREATE INDEX media_sha256 ON media (sha256) WHERE sha256 IS NOT NULL;

INSERT INTO atende_partitioned VALUES ('media', 'received_at');
SELECT count(*) FROM atende_create_partitions(8, (SELECT least(min(received_at), now()) FROM messages));

ALTER TABLE messages ADD COLUMN transcript text;

-- The media row of a stored message (found by its gateway key, so a redelivery with another
-- received_at finds the same message), created pending when missing. Returns the row.
CREATE FUNCTION atende_media_begin(p_channel text, p_provider_id text, p_company bigint, p_conversation bigint,
                                   p_kind text, p_mime text, p_size bigint, p_name text)
RETURNS TABLE (r_id bigint, r_status text, r_mime text, r_size bigint, r_name text, r_sha256 text,
               r_error text, r_message_id bigint, r_duration_ms integer)
LANGUAGE plpgsql AS $$
DECLARE
    k record;
BEGIN
    SELECT message_id, received_at INTO k FROM message_keys WHERE channel = p_channel AND provider_id = p_provider_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no stored message %/%', p_channel, p_provider_id;
    END IF;
    INSERT INTO media (company_id, message_id, conversation_id, received_at, kind, mime, size, name)
    VALUES (p_company, k.message_id, p_conversation, k.received_at, p_kind, p_mime, p_size, p_name)
    ON CONFLICT (message_id, received_at) DO NOTHING;
    RETURN QUERY SELECT m.id, m.status, m.mime, m.size, m.name, m.sha256, m.error, m.message_id, m.duration_ms
                   FROM media m WHERE m.message_id = k.message_id AND m.received_at = k.received_at;
END;
$$;

-- A voice note's transcription against the AI budget (limits.cost_per_hour_usd / _day_usd, 0 =
-- no cap): its cost is known before the call (priced per minute of audio), so it is charged
-- here, at once, when it fits. Returns NULL when admitted, else the cap it would pass.
CREATE FUNCTION atende_transcription_admit(p_cost numeric, p_cost_hour numeric, p_cost_day numeric)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    hour_ts timestamptz := date_trunc('hour', now());
    day_ts  timestamptz := date_trunc('day', now());
    used    numeric;
BEGIN
    PERFORM pg_advisory_xact_lock(727100002); -- the coaching admission's lock: one budget
    IF p_cost_hour > 0 THEN
        SELECT coalesce(sum(cost_usd), 0) INTO used FROM ai_budget WHERE kind = 'hour' AND window_start = hour_ts;
        IF used + p_cost > p_cost_hour THEN RETURN 'cost_hour'; END IF;
    END IF;
    IF p_cost_day > 0 THEN
        SELECT coalesce(sum(cost_usd), 0) INTO used FROM ai_budget WHERE kind = 'day' AND window_start = day_ts;
        IF used + p_cost > p_cost_day THEN RETURN 'cost_day'; END IF;
    END IF;
    INSERT INTO ai_budget AS b (kind, window_start, calls, cost_usd) VALUES ('hour', hour_ts, 0, p_cost)
    ON CONFLICT (kind, window_start) DO UPDATE SET cost_usd = b.cost_usd + p_cost;
    INSERT INTO ai_budget AS b (kind, window_start, calls, cost_usd) VALUES ('day', day_ts, 0, p_cost)
    ON CONFLICT (kind, window_start) DO UPDATE SET cost_usd = b.cost_usd + p_cost;
    RETURN NULL;
END;
$$;
