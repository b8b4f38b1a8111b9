-- 002_dlq: messages the workers could not process after their retries. Each row is also
-- on the atende.dlq topic (error in headers); `atende dlq replay` re-produces the payload
-- to its original topic and stamps replayed_at.
CREATE TABLE dlq (
    id           bigserial PRIMARY KEY,
    topic        text NOT NULL,               -- where the message was consumed from
    partition    integer NOT NULL,
    "offset"     bigint NOT NULL,
    msg_key      text,
    payload      text NOT NULL,
    error        text NOT NULL,
    attempts     integer NOT NULL DEFAULT 1,
    company_id   bigint,
    provider_id  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    replayed_at  timestamptz,
    UNIQUE (topic, partition, "offset")
);
CREATE INDEX dlq_pending ON dlq (created_at) WHERE replayed_at IS NULL;
