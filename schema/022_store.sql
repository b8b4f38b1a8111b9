-- 022_store: the worker's storage statement as one function. The worker sent a statement that
-- set the bot's domains (010), called atende_ingest (lateral) and joined each row's
-- conversation for the domain it had before the batch; PostgreSQL planned it at every batch,
-- ~0.7 ms, about a fifth of a small batch's fixed cost (docs/performance.md, "Session 13").
-- Inside a function its plan is kept for the session. Same rows, same columns.
CREATE FUNCTION atende_store(batch jsonb, bot_on text)
RETURNS TABLE (r_idx int, r_message_id bigint, r_conversation_id bigint, r_agent_id bigint,
               r_inserted boolean, r_hint_id bigint, r_hint_inserted boolean,
               r_status text, r_prev_status text, r_assigned boolean, r_from_agent bigint, r_queued boolean,
               r_changed_at timestamptz, r_survey jsonb, r_conv_domain text)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('atende.bot_on', bot_on, true);
    -- the join reads the conversations as they were when this statement began: NULL for one
    -- the batch creates, the domain before any transfer this batch does not make
    RETURN QUERY SELECT i.*, c.domain FROM atende_ingest(batch) i
                   LEFT JOIN conversations c ON c.id = i.r_conversation_id
                  ORDER BY i.r_idx;
END;
$$;
