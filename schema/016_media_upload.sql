-- 015_media_upload: files agents send from the console (issue 17). An upload
-- (POST /v1/conversations/ID/media, notifier/upload.c) stores the bytes once in the media
-- store and a row here; a reply op naming it ({"op":"reply","media":ID,"text":caption})
-- travels the agents' reply path (atende.outbound -> atende_outbound_claim -> the gateway's
-- media endpoint -> atende_outbound_sent), which stores the message with the upload's kind and
-- a media row of its own, so the history API and GET /v1/media/ID show a sent file exactly
-- like a received one. Upload ids come from the media rows' sequence: one id space, so
-- GET /v1/media/ID can serve an upload before it is sent (the console's preview) without
-- ever meaning two files.

CREATE TABLE media_uploads (
    id              bigint PRIMARY KEY DEFAULT nextval('media_id_seq'),
    company_id      bigint NOT NULL,
    conversation_id bigint NOT NULL,            -- where it was uploaded (a reply elsewhere is refused)
    agent_id        bigint,                     -- who uploaded it
    kind            text NOT NULL CHECK (kind IN ('image', 'document')),
    sha256          text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    mime            text NOT NULL,              -- decided from the bytes
    size            bigint NOT NULL,
    name            text,                       -- the agent's file name (display, and the document's fileName)
    width           integer,
    height          integer,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX media_uploads_sha256 ON media_uploads (sha256);
CREATE INDEX media_uploads_created ON media_uploads (created_at);

-- The upload a request names, as the worker needs it to send; NULL when the request names
-- none, or one that is not of its company and conversation.
CREATE FUNCTION atende_request_upload(req jsonb) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', u.id, 'kind', u.kind, 'sha256', u.sha256, 'mime', u.mime, 'size', u.size,
                              'name', u.name)
      FROM media_uploads u
     WHERE jsonb_typeof(req->'media') = 'number' AND u.id = (req->>'media')::bigint
       AND u.company_id = (req->>'company_id')::bigint AND u.conversation_id = (req->>'conversation_id')::bigint
$$;

-- atende_outbound_claim, same contract as before (011 wrapping 010, 008, 005); a reply still
-- to be sent that names an upload gets it in "upload" (absent: not of this conversation).
ALTER FUNCTION atende_outbound_claim(jsonb, text, int) RENAME TO atende_outbound_claim_011;

CREATE FUNCTION atende_outbound_claim(req jsonb, p_owner text, lease_ms int) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    res jsonb := atende_outbound_claim_011(req, p_owner, lease_ms);
    up  jsonb;
BEGIN
    IF req ? 'media' AND res->>'status' = 'sending' THEN
        up := atende_request_upload(req);
        IF up IS NOT NULL THEN
            res := res || jsonb_build_object('upload', up);
        END IF;
    END IF;
    RETURN res;
END;
$$;

-- atende_outbound_sent, same contract as in 005/011; a reply that carried an upload gets its
-- media row (status stored, the upload's file) in the same transaction, and its message
-- event the row's id (data.media.id), so the consoles load it from GET /v1/media/ID. A row
-- the gateway's echo of the message made first (pending, fetching) is completed instead.
ALTER FUNCTION atende_outbound_sent(text, jsonb, jsonb, text, int) RENAME TO atende_outbound_sent_011;

CREATE FUNCTION atende_outbound_sent(rid text, ev jsonb, p_events jsonb, p_status text, p_attempts int)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    res  jsonb := atende_outbound_sent_011(rid, ev, p_events, p_status, p_attempts);
    up   media_uploads;
    o    record;
    rat  timestamptz;
    mid  bigint;
    evs  jsonb;
BEGIN
    SELECT x.request, x.company_id, x.conversation_id INTO o FROM outbound_requests x WHERE x.request_id = rid;
    IF NOT FOUND OR NOT (o.request ? 'media') THEN
        RETURN res;
    END IF;
    SELECT u.* INTO up FROM media_uploads u WHERE u.id = (atende_request_upload(o.request)->>'id')::bigint;
    IF NOT FOUND THEN
        RETURN res;
    END IF;
    SELECT k.received_at INTO rat FROM message_keys k
     WHERE k.channel = ev->>'channel' AND k.provider_id = ev->>'provider_id';
    INSERT INTO media AS m (company_id, message_id, conversation_id, received_at, kind, status, sha256, mime, size,
                            name, width, height, stored_at)
    VALUES (o.company_id, (res->>'message_id')::bigint, o.conversation_id, rat, up.kind, 'stored', up.sha256,
            up.mime, up.size, up.name, up.width, up.height, now())
    ON CONFLICT (message_id, received_at) DO UPDATE
       SET status = 'stored', sha256 = EXCLUDED.sha256, mime = EXCLUDED.mime, size = EXCLUDED.size,
           name = EXCLUDED.name, width = EXCLUDED.width, height = EXCLUDED.height, error = NULL,
           stored_at = EXCLUDED.stored_at
     WHERE m.status <> 'stored'
    RETURNING m.id INTO mid;
    IF mid IS NULL THEN
        SELECT m.id INTO mid FROM media m WHERE m.message_id = (res->>'message_id')::bigint AND m.received_at = rat;
    END IF;
    evs := jsonb_set(res->'events', '{0,data,media,id}', to_jsonb(mid));
    UPDATE outbound_requests SET events = evs WHERE request_id = rid;
    RETURN jsonb_set(res, '{events}', evs);
END;
$$;
