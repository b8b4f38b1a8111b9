-- 012_business: the numbers a contact centre runs on, per company, over a recent window:
-- time to first response, time to resolution, automation rate (resolved by the bot alone /
-- all resolved), transfer rate, survey score and delivery failure rate. One function reads
-- them from what is already stored (no counters to keep in step with the data); the notifier
-- exports it as Prometheus gauges every metrics.business_interval_s (notifier/business.c), and
-- `atende status` prints it. Each figure is over conversations (or messages) of the window:
--   first response   conversations created since p_since: from the conversation's creation (its
--                    first customer message) to the first message from our side (agent, phone or
--                    bot); still unanswered ones are counted apart, with the oldest one's wait
--   resolution       resolves since p_since (conversation_events): from the conversation's
--                    creation to that resolve
--   automation       of those resolves, the conversations no agent ever had and the bot answered
--                    (conversations.agent_taken_at NULL, bot_turns > 0; schema/010)
--   transfers        conversations transferred by an agent or supervisor since p_since
--                    (outbound_requests, kind transfer) over conversations with a message since then
--   surveys          answers since p_since (schema/011), averaged per kind (nps 0-10, csat 1-5)
--   delivery         our messages since p_since whose gateway reported a status (schema/009):
--                    failed over all that got one

CREATE INDEX conversations_created ON conversations (company_id, created_at);
CREATE INDEX outbound_requests_transfers ON outbound_requests (company_id, created_at) WHERE kind = 'transfer';

CREATE FUNCTION atende_business(p_since timestamptz)
RETURNS TABLE (company_id bigint, conversations bigint, responded bigint, first_response_p50_s double precision,
               first_response_p95_s double precision, unanswered bigint, unanswered_oldest_s double precision,
               resolved bigint, resolution_p50_s double precision, resolution_p95_s double precision,
               resolved_by_bot bigint, automation_ratio double precision, active bigint, transferred bigint,
               transfer_ratio double precision, nps_answers bigint, nps_avg double precision, csat_answers bigint,
               csat_avg double precision, delivery_tracked bigint, delivery_failed bigint,
               delivery_failure_ratio double precision)
LANGUAGE sql STABLE AS $$
    WITH companies AS (
        SELECT id FROM companies
    ), firsts AS (
        SELECT c.company_id, c.created_at,
               (SELECT m.received_at FROM messages m
                 WHERE m.conversation_id = c.id AND m.from_me AND m.received_at >= c.created_at - interval '1 minute'
                 ORDER BY m.id LIMIT 1) AS answered_at
          FROM conversations c
         WHERE c.created_at >= p_since
    ), fr AS (
        SELECT f.company_id, count(*) AS conversations, count(f.answered_at) AS responded,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM f.answered_at - f.created_at))
                   FILTER (WHERE f.answered_at IS NOT NULL) AS p50,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM f.answered_at - f.created_at))
                   FILTER (WHERE f.answered_at IS NOT NULL) AS p95,
               count(*) FILTER (WHERE f.answered_at IS NULL) AS unanswered,
               max(extract(epoch FROM clock_timestamp() - f.created_at)) FILTER (WHERE f.answered_at IS NULL) AS oldest
          FROM firsts f GROUP BY f.company_id
    ), res AS (
        SELECT e.company_id, count(*) AS resolved,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM e.at - c.created_at)) AS p50,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM e.at - c.created_at)) AS p95,
               count(*) FILTER (WHERE c.agent_taken_at IS NULL AND c.bot_turns > 0) AS by_bot
          FROM conversation_events e JOIN conversations c ON c.id = e.conversation_id
         WHERE e.kind = 'status' AND e.status = 'resolved' AND e.at >= p_since
         GROUP BY e.company_id
    ), act AS (
        SELECT c.company_id, count(*) AS active FROM conversations c
         WHERE c.last_message_at >= p_since GROUP BY c.company_id
    ), tr AS (
        SELECT o.company_id, count(DISTINCT o.conversation_id) AS transferred FROM outbound_requests o
         WHERE o.kind = 'transfer' AND o.status = 'transferred' AND o.created_at >= p_since
         GROUP BY o.company_id
    ), sv AS (
        SELECT s.company_id, count(*) FILTER (WHERE s.kind = 'nps') AS nps_n, avg(s.score) FILTER (WHERE s.kind = 'nps') AS nps,
               count(*) FILTER (WHERE s.kind = 'csat') AS csat_n, avg(s.score) FILTER (WHERE s.kind = 'csat') AS csat
          FROM surveys s WHERE s.answered_at >= p_since GROUP BY s.company_id
    ), dl AS (
        SELECT m.company_id, count(*) AS tracked, count(*) FILTER (WHERE m.status = 'failed') AS failed
          FROM messages m
         WHERE m.received_at >= p_since AND m.from_me AND m.status IS NOT NULL
         GROUP BY m.company_id
    )
    SELECT co.id, coalesce(fr.conversations, 0), coalesce(fr.responded, 0), fr.p50, fr.p95,
           coalesce(fr.unanswered, 0), fr.oldest,
           coalesce(res.resolved, 0), res.p50, res.p95, coalesce(res.by_bot, 0),
           CASE WHEN res.resolved > 0 THEN res.by_bot::double precision / res.resolved END,
           coalesce(act.active, 0), coalesce(tr.transferred, 0),
           CASE WHEN act.active > 0 THEN coalesce(tr.transferred, 0)::double precision / act.active END,
           coalesce(sv.nps_n, 0), sv.nps::double precision, coalesce(sv.csat_n, 0), sv.csat::double precision,
           coalesce(dl.tracked, 0), coalesce(dl.failed, 0),
           CASE WHEN dl.tracked > 0 THEN dl.failed::double precision / dl.tracked END
      FROM companies co
      LEFT JOIN fr ON fr.company_id = co.id
      LEFT JOIN res ON res.company_id = co.id
      LEFT JOIN act ON act.company_id = co.id
      LEFT JOIN tr ON tr.company_id = co.id
      LEFT JOIN sv ON sv.company_id = co.id
      LEFT JOIN dl ON dl.company_id = co.id
     ORDER BY co.id
$$;
