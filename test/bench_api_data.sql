-- bench_api_data: realistic history for the conversation API's EXPLAINs and benchmark
-- (test/bench_api.py): :convs conversations of company 1 (on channel evolution:bench,
-- agents taken round-robin from the agents table) with :per messages each, spread over the
-- last :days days (so over several weekly partitions), a customer message every other one,
-- a hint on every other customer message, and read markers for half the conversations.
-- Bulk SQL, not webhooks: a million messages in about a minute. Run with
--   bin/atende psql -c F -- -v convs=50000 -v per=20 -v days=28 -f test/bench_api_data.sql
\set ON_ERROR_STOP on
SELECT count(*) AS partitions_created FROM atende_create_partitions(1, now() - make_interval(days => :days + 1));

CREATE TEMP TABLE bench_agents AS
SELECT row_number() OVER (ORDER BY id) - 1 AS i, id FROM agents WHERE company_id = 1 AND active;

INSERT INTO conversations (company_id, channel, customer, customer_name, domain, agent_id, created_at, last_message_at)
SELECT 1, 'evolution:bench', '55' || (11900000000 + g)::text,
       (ARRAY['Ana','Bruno','Carla','Diego','Elisa','Fábio','Gabriela','Heitor','Íris','João'])[1 + g % 10] || ' ' ||
       (ARRAY['Silva','Souza','Oliveira','Santos','Lima','Pereira','Costa','Rodrigues'])[1 + (g / 10) % 8] || ' ' || g,
       (ARRAY['financeiro','comercial','suporte','ouvidoria','cancelamento'])[1 + g % 5],
       (SELECT id FROM bench_agents WHERE i = g % (SELECT count(*) FROM bench_agents)),
       now() - make_interval(days => :days), now() - make_interval(days => :days)
  FROM generate_series(1, :convs) g;

CREATE TEMP TABLE bench_convs AS
SELECT id, company_id, channel, customer, agent_id, domain, row_number() OVER (ORDER BY id) AS n
  FROM conversations WHERE channel = 'evolution:bench';

-- every conversation's messages at its own pace across the window; ids follow time, as the
-- workers allocate them in arrival order
CREATE TEMP TABLE bench_msgs AS
SELECT nextval('messages_id_seq') AS id, t.*
  FROM (SELECT c.id AS conversation_id, c.channel, c.customer, c.agent_id, c.domain, k,
               k % 2 = 0 AS from_customer,
               now() - make_interval(days => :days)
                     + make_interval(secs => (extract(epoch FROM make_interval(days => :days)) - 60)
                                             * ((k + 1)::float8 / (:per + 1)) * (0.5 + 0.5 * ((c.n * 7919) % 1000) / 1000.0)
                                             + (c.n % 3600)) AS received_at
          FROM bench_convs c, generate_series(0, :per - 1) k
         ORDER BY received_at) t;
ALTER TABLE bench_msgs ADD COLUMN hint_id bigint;
UPDATE bench_msgs SET hint_id = nextval('hints_id_seq') WHERE from_customer AND k % 4 = 0;

-- the per-row trigger (schema/007) would update a conversation 20 times over: off for the
-- bulk load (superuser; the embedded server's user is one), its columns set once below
SET session_replication_role = replica;
INSERT INTO messages (id, conversation_id, company_id, channel, provider_id, from_me, kind, text, sender_name,
                      sent_at, received_at, hint_id, coaching)
SELECT id, conversation_id, 1, channel, 'BENCH' || id, NOT from_customer, 'text',
       CASE WHEN from_customer
            THEN (ARRAY['minha internet está muito lenta desde ontem','quero cancelar o plano',
                        'a fatura veio com valor errado','quanto custa o plano de 300 mega',
                        'não consigo acessar o aplicativo','preciso da segunda via do boleto'])[1 + (id % 6)]
                 || ', protocolo ' || (id * 7 % 100000)
            ELSE 'Olá! Vou verificar isso para você agora mesmo.' END,
       CASE WHEN from_customer THEN 'Cliente ' || conversation_id ELSE 'Agente ' || agent_id END,
       received_at, received_at, hint_id, CASE WHEN hint_id IS NOT NULL THEN 'hinted' END
  FROM bench_msgs;

INSERT INTO hints (id, message_id, message_ids, provider_ids, conversation_id, company_id, agent_id, domain, intent,
                   critical, text, source, created_at)
SELECT hint_id, id, ARRAY[id], ARRAY['BENCH' || id], conversation_id, 1, agent_id, domain,
       (ARRAY['billing','sales','outage','complaint','cancel','other'])[1 + (id % 6)], id % 50 = 0,
       'Confirme os dados do cliente e ofereça a solução adequada.', 'rules', received_at + interval '20 milliseconds'
  FROM bench_msgs WHERE hint_id IS NOT NULL;

SET session_replication_role = origin;

UPDATE conversations c
   SET last_message_at = m.received_at, last_message_id = m.id,
       last_message = jsonb_build_object('id', m.id, 'provider_id', 'BENCH' || m.id, 'from_me', NOT m.from_customer,
                                         'kind', 'text', 'text', 'Olá! Vou verificar isso para você agora mesmo.',
                                         'sent_at', atende_iso(m.received_at)),
       customer_messages = :per / 2
  FROM bench_msgs m
 WHERE c.id = m.conversation_id AND m.k = :per - 1;

-- half the conversations read by their agent up to a few messages before the end
INSERT INTO conversation_reads (agent_id, conversation_id, last_read_message_id, customer_messages, at)
SELECT c.agent_id, c.id, m.id, (:per - 4) / 2, m.received_at
  FROM bench_convs c JOIN bench_msgs m ON m.conversation_id = c.id AND m.k = :per - 5
 WHERE c.n % 2 = 0 AND c.agent_id IS NOT NULL
ON CONFLICT DO NOTHING;

-- what autovacuum would do next, done now so that it does not run during the measurement
-- (and the visibility map lets index-only scans skip the heap); then the load's dirty pages
-- are written once, not by a checkpoint in the middle of the run
VACUUM (ANALYZE) conversations, messages, hints, conversation_reads;
CHECKPOINT;
SELECT (SELECT count(*) FROM conversations) AS conversations, (SELECT count(*) FROM messages) AS messages,
       (SELECT count(*) FROM hints) AS hints;
