/*
 * config: the key table and the libconfig-based loader (see config.h). Every key is
 * validated (type, range, unknown names) and every problem is reported as
 * "file:line: what", so check-config can list all of them at once.
 */
#include "config.h"
#include "kq.h"
#include "log.h"
#include "proc.h"
#include "xalloc.h"

#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const cfg_other_topics[CFG_N_OTHER_TOPICS] = {"events", "outbound", "dlq", "typing"};
const char *const cfg_domains[CFG_MAX_DOMAINS] = {"financeiro", "comercial", "suporte", "ouvidoria",
						  "cancelamento"};

#define K_INT(n, f, d, lo, hi, r, doc) {n, CFG_INT, offsetof(cfg_t, f), d, lo, hi, r, doc}
#define K_BOOL(n, f, d, r, doc) {n, CFG_BOOL, offsetof(cfg_t, f), d, 0, 1, r, doc}
#define K_DBL(n, f, d, lo, hi, r, doc) {n, CFG_DOUBLE, offsetof(cfg_t, f), d, lo, hi, r, doc}
#define K_STR(n, f, d, r, doc) {n, CFG_STRING, offsetof(cfg_t, f), d, 0, 0, r, doc}

const cfg_key_t cfg_keys[] = {
	K_STR("data_dir", data_dir, "var", false, "where embedded PostgreSQL, broker state and runtime files live"),
	K_STR("log.level", log.level, "info", true, "error | warn | info | debug"),
	K_STR("log.format", log.format, "text", true, "text (key=value) | json"),

	K_STR("ingress.listen", ingress.listen, "127.0.0.1:8080", false, "webhook HTTP listener"),
	K_INT("ingress.max_body_bytes", ingress.max_body_bytes, "1048576", 1024, 67108864, true, "largest accepted request body (413 above)"),
	K_INT("ingress.max_header_bytes", ingress.max_header_bytes, "16384", 1024, 1048576, true, "largest request line + headers (431 above)"),
	K_INT("ingress.max_connections", ingress.max_connections, "10000", 1, 1000000, true, "open HTTP connections at most (503 above)"),
	K_INT("ingress.request_timeout_ms", ingress.request_timeout_ms, "10000", 100, 600000, true, "a started request must arrive whole within this (408)"),
	K_INT("ingress.idle_timeout_ms", ingress.idle_timeout_ms, "60000", 100, 3600000, true, "idle keep-alive connections are closed after this"),
	K_INT("ingress.ack_timeout_ms", ingress.ack_timeout_ms, "5000", 10, 120000, true, "wait this long for the broker's acknowledgement before answering 503"),
	K_INT("ingress.retry_after_s", ingress.retry_after_s, "2", 1, 3600, true, "Retry-After sent with 503"),
	K_INT("ingress.max_partition_backlog_bytes", ingress.max_partition_backlog_bytes, "3145728", 0, INT_MAX, true, "refuse (503) while any inbound partition holds this many unconsumed bytes; 0 = off (the embedded broker keeps ~5 MiB per partition)"),
	K_INT("ingress.dedup_window", ingress.dedup_window, "100000", 0, 10000000, true, "recent message ids remembered to answer duplicates without producing; 0 = off"),
	K_INT("ingress.linger_ms", ingress.linger_ms, "0", 0, 1000, false, "producer batching delay; 0 = send at once (batches still form while requests are in flight)"),

	K_STR("notifier.listen", notifier.listen, "127.0.0.1:8081", false, "WebSocket, console and long-poll listener"),
	K_STR("notifier.console_dir", notifier.console_dir, "notifier/console", false, "folder of the agent console page"),
	K_STR("notifier.allowed_origins", notifier.allowed_origins, "", true, "space-separated Origin allow-list for WebSocket handshakes; empty = any"),
	K_INT("notifier.ping_interval_s", notifier.ping_interval_s, "30", 0, 3600, true, "server ping interval; peers silent for two intervals are dropped; 0 = off"),
	K_INT("notifier.max_connections", notifier.max_connections, "50000", 1, 1000000, true, "open connections at most"),
	K_INT("notifier.history_events", notifier.history_events, "20000", 100, 10000000, false, "events kept in memory for resume"),
	K_INT("notifier.max_send_buffer", notifier.max_send_buffer, "1048576", 4096, 268435456, true, "bytes queued to one client before it counts as slow"),
	K_INT("notifier.slow_consumer_ms", notifier.slow_consumer_ms, "5000", 100, 600000, true, "a client still over max_send_buffer this long after going over is closed with 1008 (at 4x max_send_buffer: at once)"),
	K_INT("notifier.socket_send_buffer", notifier.socket_send_buffer, "0", 0, 67108864, true, "kernel send buffer (SO_SNDBUF) of each console socket; 0 = kernel autotuning"),
	K_INT("notifier.max_connections_per_token", notifier.max_connections_per_token, "20", 1, 1000000, true, "WebSocket + long-poll connections one token may hold at once (429 above)"),
	K_INT("notifier.ops_per_second", notifier.ops_per_second, "20", 1, 100000, true, "ops one agent may send per second over all its connections, WebSocket and POST /op alike (burst: twice that); excess ops get an error (429 over POST /op)"),
	K_INT("notifier.typing_ttl_s", notifier.typing_ttl_s, "8", 1, 300, true, "a typing start without a stop ends after this"),
	K_INT("notifier.presence_heartbeat_s", notifier.presence_heartbeat_s, "10", 1, 3600, false, "each instance republishes its presence this often; entries of an instance silent for 3 periods expire (same on every instance)"),
	K_INT("notifier.poll_timeout_s", notifier.poll_timeout_s, "25", 1, 300, true, "longest a GET /poll is held open without events"),
	K_INT("notifier.db_connections", notifier.db_connections, "2", 1, 64, false, "PostgreSQL connections of the conversation API (/v1/), each pipelined; one per core of the database is plenty"),
	K_INT("notifier.statement_timeout_ms", notifier.statement_timeout_ms, "2000", 0, 600000, false, "statement_timeout of the conversation API's connections (sent as a startup option); 0 = the server's (behind PgBouncer, which refuses startup options, set it on the role)"),

	K_STR("metrics.listen", metrics.listen, "127.0.0.1:8082", false, "supervisor /metrics and /healthz listener"),
	K_INT("metrics.business_interval_s", metrics.business_interval_s, "30", 0, 3600, false, "the notifier reads the business gauges (first response, resolution, automation, transfers, surveys, delivery failures; last hour, per company) this often; 0 = off"),
	K_BOOL("metrics.on_public_ports", metrics.on_public_ports, "true", true, "also serve each process's own /metrics on the ingress and notifier ports (INTERFACE.md); false keeps them on metrics.listen only, off the ports gateways and consoles reach"),

	K_STR("kafka.brokers", kafka.brokers, "", false, "bootstrap servers; empty = embedded in-memory broker (one box, demos, tests)"),
	K_STR("kafka.properties", kafka.properties, "", false, "librdkafka settings for every client, \"key=value; key=value\" (e.g. security.protocol=SASL_SSL; sasl.mechanism=SCRAM-SHA-512; sasl.username=atende; sasl.password=...; ssl.ca.location=/etc/ssl/certs/kafka-ca.pem); checked by librdkafka at load"),
	K_INT("kafka.embedded_port", kafka.embedded_port, "9092", 1, 65535, false, "fixed loopback port of the embedded broker (for kcat)"),
	K_BOOL("kafka.embedded_patched", kafka.embedded_patched, "true", false, "run the embedded broker on atende's patched librdkafka (bin/rdkafka-mock/, built by deploy/rdkafka-mock.sh: fetches stay fast once partitions fill) when it is there; false: on Debian's library like the other processes"),
	K_INT("kafka.embedded_fetch_wait_max_ms", kafka.embedded_fetch_wait_max_ms, "500", 1, 10000, false, "kafka.fetch_wait_max_ms when the embedded broker runs on the patched librdkafka, which answers a waiting fetch as soon as data arrives for it or another answer queues behind it: a long wait costs no latency and keeps the idle system quiet (docs/performance.md)"),
	K_INT("kafka.embedded_fetch_coalesce_ms", kafka.embedded_fetch_coalesce_ms, "3", 0, 100, false, "on the patched embedded broker: new data ends a waiting fetch this much later, so that what arrives meanwhile is read by one fetch (under load a fifth less CPU in the workers and a third less in the broker, docs/performance.md; that much more latency per hop); 0 = at once"),
	K_INT("kafka.embedded_orphan_keep_s", kafka.embedded_orphan_keep_s, "0", 0, 86400, false, "0: the embedded broker stops with the supervisor, like every child (its in-memory data with it). N > 0: when the supervisor dies (kill -9), the broker keeps its topics for the next `atende run` to adopt, and stops once it has had no client for N seconds: nothing acknowledged is lost, at the price of a process outliving the supervisor"),
	K_INT("kafka.partitions", kafka.partitions, "4", 1, 1024, false, "partitions of each topic created by atende"),
	K_STR("kafka.topic_prefix", kafka.topic_prefix, "atende", false, "topic names are <prefix>.inbound.<domain>, <prefix>.events, ..."),
	K_STR("kafka.group", kafka.group, "atende-workers", false, "consumer group of the workers"),
	K_INT("kafka.fetch_wait_max_ms", kafka.fetch_wait_max_ms, "10", 1, 10000, false, "longest a fetch waits for new data; the embedded broker on Debian's librdkafka never answers a fetch early, so this bounds its delivery latency (on the patched one, kafka.embedded_fetch_wait_max_ms applies instead)"),
	K_INT("kafka.session_timeout_ms", kafka.session_timeout_ms, "6000", 1000, 300000, false, "consumer group session timeout (rebalances wait about this long)"),

	K_STR("postgres.conninfo", postgres.conninfo, "", false, "libpq connection string; empty = embedded PostgreSQL under data_dir"),
	K_STR("postgres.admin_conninfo", postgres.admin_conninfo, "", false, "direct connection for migrate and retention (session advisory locks, DDL) when postgres.conninfo goes through PgBouncer in transaction mode; empty = postgres.conninfo"),
	K_INT("postgres.embedded_port", postgres.embedded_port, "5433", 1, 65535, false, "loopback port of the embedded PostgreSQL"),
	K_STR("postgres.user", postgres.user, "atende", false, "unprivileged system user that runs the embedded PostgreSQL when started as root"),
	K_STR("postgres.bin_dir", postgres.bin_dir, "", false, "folder of initdb/postgres; empty = newest /usr/lib/postgresql/*/bin"),
	K_INT("postgres.priority", postgres.priority, "10", -20, 19, false, "nice value of the embedded PostgreSQL and its backends: on a shared box the webhook answers keep the CPU while storage catches up from Kafka (below 0 needs root)"),

	K_INT("workers.count", workers.count, "2", 1, 256, false, "worker processes in the consumer group"),
	K_INT("workers.batch_size", workers.batch_size, "500", 1, 100000, true, "messages stored per PostgreSQL round trip at most"),
	K_INT("workers.batch_wait_ms", workers.batch_wait_ms, "100", 0, 1000, true, "a batch waits this long from its first message for more before it is stored (while a storage query is in flight it waits for that anyway): fewer, larger batches when the workers keep up, each batch costing PostgreSQL its statements and its commit whatever its size (docs/performance.md, \"Session 16\"); 0 = at once"),
	K_INT("workers.retries", workers.retries, "3", 1, 100, true, "attempts to store a message before it goes to the dead-letter topic and table"),
	K_INT("workers.priority", workers.priority, "10", -20, 19, false, "nice value of the workers (without pools): under a burst the ingress keeps answering within milliseconds while the workers drain Kafka (below 0 needs root)"),
	K_INT("workers.stall_s", workers.stall_s, "30", 1, 3600, true, "a worker with messages in flight or unread that consumes and finishes none for this long logs where they wait (once a minute while it lasts), counts atende_worker_stalls_total and, when it is its fetch that stopped, restarts it"),

	K_BOOL("coaching.enabled", coaching.enabled, "true", true, "make hints for customer messages"),
	K_INT("coaching.min_message_length", coaching.min_message_length, "10", 0, 100000, true, "customer messages shorter than this (characters) get no hint (per company: companies.min_message_length)"),
	K_INT("coaching.delay_ms", coaching.delay_ms, "0", 0, 60000, true, "debounce: wait this long after a customer message before analysing, collecting what else arrives"),
	K_STR("coaching.critical_patterns", coaching.critical_patterns, "", true, "extra critical patterns, |-separated, matched on normalized text (urgency, fraud, legal, health are built in); critical messages are analysed first"),
	K_INT("limits.agent_interval_s", limits.agent_interval_s, "10", 0, 86400, true, "an agent gets at most one hint per this many seconds, across all workers (per company: companies.agent_interval_s); 0 = off"),
	K_INT("limits.analyses_per_minute", limits.analyses_per_minute, "0", 0, 10000000, true, "AI analyses per minute across all workers; over it hints come from the cache or the rules; 0 = off"),
	K_DBL("limits.cost_per_hour_usd", limits.cost_per_hour_usd, "0", 0, 1000000, true, "AI spending cap per clock hour (USD); 0 = off"),
	K_DBL("limits.cost_per_day_usd", limits.cost_per_day_usd, "0", 0, 10000000, true, "AI spending cap per day (USD, UTC); 0 = off"),
	K_INT("limits.pending_analyses", limits.pending_analyses, "0", 0, 10000000, true, "AI analyses in flight across all workers at most; 0 = off"),
	K_INT("buffer.max_wait_ms", buffer.max_wait_ms, "1500", 0, 60000, true, "smart buffer: while a conversation is being analysed, collect its new messages this long and analyse them together"),
	K_BOOL("cache.enabled", cache.enabled, "true", true, "reuse a recent hint of a similar message (same company and domain) instead of an AI call"),
	K_DBL("cache.similarity_threshold", cache.similarity_threshold, "0.85", 0, 1, true, "trigram similarity (0..1) of normalized texts for a cache hit"),
	K_INT("cache.ttl_s", cache.ttl_s, "3600", 1, 31536000, true, "cached hints are reused for this long"),
	K_INT("cache.memory_entries", cache.memory_entries, "4096", 0, 1000000, false, "recent cached hints each worker keeps per company and domain and searches in memory before asking PostgreSQL (a miss there is still asked there); 0 = every lookup in PostgreSQL"),

	K_STR("ai.provider", ai.provider, "rules", true, "rules (built-in, no network) | openai (any OpenAI-compatible endpoint)"),
	K_STR("ai.base_url", ai.base_url, "", true, "e.g. http://127.0.0.1:18099/v1; the client POSTs to <base_url>/chat/completions"),
	K_STR("ai.api_key", ai.api_key, "", true, "bearer key of the AI endpoint"),
	K_STR("ai.model", ai.model, "gpt-4o-mini", true, "model name sent to the AI endpoint"),
	K_BOOL("ai.stream", ai.stream, "true", true, "provider openai: ask for a streamed answer (server-sent events) and send the hint to the consoles as it is written (hint events with partial true, same hint_id as the final one); false = one answer at the end"),
	K_INT("ai.timeout_ms", ai.timeout_ms, "10000", 100, 600000, true, "per-call AI timeout"),
	K_STR("ai.model_large", ai.model_large, "gpt-4o", true, "larger model for long, wordy or critical messages (see ai.large_*); empty = always ai.model"),
	K_INT("ai.large_min_chars", ai.large_min_chars, "280", 0, 1000000, true, "messages analysed together of at least this many characters use ai.model_large; 0 = off"),
	K_INT("ai.large_min_words", ai.large_min_words, "50", 0, 1000000, true, "messages analysed together of at least this many words use ai.model_large; 0 = off"),
	K_BOOL("ai.large_when_critical", ai.large_when_critical, "true", true, "messages flagged critical use ai.model_large"),
	K_INT("ai.max_retries", ai.max_retries, "3", 0, 10, true, "retries of a failed AI call (5xx, timeout, garbage, 429) before the rules fallback"),
	K_INT("ai.retry_base_ms", ai.retry_base_ms, "2000", 1, 600000, true, "first retry delay, doubled per retry (2, 4, 8 s)"),
	K_INT("ai.deadline_ms", ai.deadline_ms, "60000", 100, 3600000, true, "an analysis not answered within this (queueing, 429 pauses and retries included) gets the rules fallback hint"),
	K_INT("ai.max_in_flight", ai.max_in_flight, "1000", 1, 100000, true, "AI calls in flight per worker at most; more wait in FIFO order"),
	K_INT("ai.history_messages", ai.history_messages, "10", 0, 1000, false, "recent messages of the conversation sent with each analysis"),
	K_INT("ai.history_max_tokens", ai.history_max_tokens, "1000", 0, 1000000, true, "bound on that history in approximate tokens (bytes / 4), newest kept"),
	K_STR("ai.prompts_dir", ai.prompts_dir, "deploy/prompts", false, "system prompt templates <domain>.txt and default.txt, loaded once at start"),
	K_INT("ai.price_small_in", ai.price_small_in, "150000", 0, INT_MAX, true, "ai.model input price: micro-USD per 1M tokens (150000 = $0.15)"),
	K_INT("ai.price_small_out", ai.price_small_out, "600000", 0, INT_MAX, true, "ai.model output price: micro-USD per 1M tokens"),
	K_INT("ai.price_large_in", ai.price_large_in, "2500000", 0, INT_MAX, true, "ai.model_large input price: micro-USD per 1M tokens"),
	K_INT("ai.price_large_out", ai.price_large_out, "10000000", 0, INT_MAX, true, "ai.model_large output price: micro-USD per 1M tokens"),
	K_INT("ai.breaker_window_s", ai.breaker_window_s, "60", 1, 3600, false, "circuit breaker: window of recent AI calls it judges"),
	K_INT("ai.breaker_min_calls", ai.breaker_min_calls, "10", 1, 1000000, false, "circuit breaker: calls in the window before it may open"),
	K_INT("ai.breaker_error_pct", ai.breaker_error_pct, "50", 1, 100, false, "circuit breaker: opens at this error percentage"),
	K_BOOL("ai.route_confident", route.confident, "false", true, "a message the rules classify with at least ai.route_min_confidence, not critical and at most ai.route_max_chars characters gets its hint from the rules (source rules, routed) without an AI call"),
	K_DBL("ai.route_min_confidence", route.min_confidence, "0.4", 0, 1, true, "the rules' confidence (0..1) from which a message is routed to them"),
	K_INT("ai.route_max_chars", route.max_chars, "160", 1, 100000, true, "messages analysed together longer than this (characters) always go to the AI"),
	K_DBL("ai.shadow_share", route.shadow_share, "0", 0, 1, true, "share (0..1) of cache and routed hints also sent to the AI in the background, to measure their agreement (same intent and critical flag); not while a cost cap is set"),
	K_STR("ai.embeddings_model", emb.model, "", true, "provider openai: embed each text going to the AI after a trigram cache miss through <ai.base_url>/embeddings with this model and reuse the hint of a recent AI hint (same company and domain) whose vector is ai.embeddings_threshold close and whose rules' intent and critical flag agree (source cache); empty = off"),
	K_DBL("ai.embeddings_threshold", emb.threshold, "0.9", 0, 1, true, "cosine similarity (0..1) of two texts' embeddings from which the earlier hint is reused"),
	K_INT("ai.embeddings_ring", emb.ring, "2000", 1, 1000000, false, "recent AI hints' vectors each worker keeps per company and domain (memory: ring x dimensions x 4 bytes + the hint texts, e.g. 2000 x 1536 x 4 = 12 MB)"),
	K_INT("ai.embeddings_timeout_ms", emb.timeout_ms, "2000", 50, 600000, true, "per embeddings call; a failed or late one only skips the semantic lookup"),
	K_INT("ai.price_embeddings", emb.price, "20000", 0, INT_MAX, true, "ai.embeddings_model input price: micro-USD per 1M tokens (20000 = $0.02), counted in the analysis' cost and the budget"),
	K_INT("ai.breaker_open_s", ai.breaker_open_s, "30", 1, 3600, false, "circuit breaker: open this long, then one probe call (half-open)"),
	K_STR("ai.transcription_model", ai.transcription_model, "whisper-1", true, "model of <ai.base_url>/audio/transcriptions for voice notes (provider openai only)"),
	K_BOOL("ai.vision", ai.vision, "false", true, "provider openai: an image a customer sends is described by ai.model (chat completions with an image_url part holding the file as a data URL) and the description, with the caption, is what is coached; false: the caption alone"),
	K_INT("ai.price_transcription_minute", ai.price_transcription_minute, "6000", 0, INT_MAX, true, "transcription price: micro-USD per minute of audio (6000 = $0.006), counted in the same budget as the analyses"),

	K_INT("outbound.timeout_ms", outbound.timeout_ms, "10000", 100, 600000, true, "per-call timeout of a reply sent to a gateway (Evolution sendText, Cloud API messages)"),
	K_INT("outbound.retries", outbound.retries, "3", 0, 10, true, "retries of a reply after a 5xx, 429, timeout or connection error; then it is recorded as failed"),
	K_INT("outbound.retry_base_ms", outbound.retry_base_ms, "1000", 1, 600000, true, "first retry delay of a reply, doubled per retry (1, 2, 4 s)"),
	K_INT("outbound.breaker_window_s", outbound.breaker_window_s, "60", 1, 3600, false, "circuit breaker of each gateway instance: window of recent sends it judges"),
	K_INT("outbound.breaker_min_calls", outbound.breaker_min_calls, "10", 1, 1000000, false, "circuit breaker of each gateway instance: sends in the window before it may open"),
	K_INT("outbound.breaker_error_pct", outbound.breaker_error_pct, "50", 1, 100, false, "circuit breaker of each gateway instance: opens above this error percentage (5xx, 429, timeout, connection error)"),
	K_INT("outbound.breaker_open_s", outbound.breaker_open_s, "30", 1, 3600, false, "circuit breaker of each gateway instance: open this long, then one probe send (half-open; a passing health check half-opens it at once)"),
	K_INT("outbound.health_interval_s", outbound.health_interval_s, "30", 0, 3600, true, "health check of each gateway instance (Evolution connectionState, Cloud API phone number) this often; 0 = off"),
	K_INT("outbound.health_timeout_ms", outbound.health_timeout_ms, "5000", 100, 600000, true, "timeout of one health check"),

	K_BOOL("lifecycle.enabled", lifecycle.enabled, "true", true, "run the conversation lifecycle jobs (follow-ups, auto-resolve, survey) in the workers"),
	K_INT("lifecycle.tick_ms", lifecycle.tick_ms, "1000", 50, 600000, true, "each worker asks PostgreSQL for due jobs this often, every 5th tick while none are due (each due job goes to exactly one worker)"),
	K_INT("lifecycle.batch", lifecycle.batch, "200", 1, 100000, true, "conversations' jobs taken per tick at most (a full batch asks again at once)"),
	K_INT("lifecycle.followup1_after_s", lifecycle.followup1_after_s, "600", 0, 2592000, true, "first follow-up when the customer has not answered our (agent or bot) last message for this long; 0 = off"),
	K_INT("lifecycle.followup2_after_s", lifecycle.followup2_after_s, "1200", 0, 2592000, true, "second follow-up after this long without an answer (after the first); 0 = off"),
	K_STR("lifecycle.followup1_text", lifecycle.followup1_text, "Olá! Ainda está por aí? Se precisar de mais alguma coisa, é só responder.", true, "the first follow-up's text"),
	K_STR("lifecycle.followup2_text", lifecycle.followup2_text, "Como não tivemos resposta, vamos encerrar este atendimento em breve. Se ainda precisar de ajuda, é só responder.", true, "the second follow-up's text"),
	K_INT("lifecycle.auto_resolve_after_s", lifecycle.auto_resolve_after_s, "7200", 0, 2592000, true, "an open or pending conversation whose customer has not answered for this long is resolved by \"system\"; 0 = off"),
	K_STR("lifecycle.survey", lifecycle.survey, "nps", true, "satisfaction survey after every resolve: nps (0..10) | csat (1..5) | off (per company: companies.survey)"),
	K_STR("lifecycle.survey_nps_text", lifecycle.survey_nps_text, "Seu atendimento foi encerrado. De 0 a 10, quanto você recomendaria nosso atendimento? Responda só com o número.", true, "the NPS survey question"),
	K_STR("lifecycle.survey_csat_text", lifecycle.survey_csat_text, "Seu atendimento foi encerrado. De 1 a 5, como você avalia este atendimento? Responda só com o número.", true, "the CSAT survey question"),
	K_INT("lifecycle.survey_window_s", lifecycle.survey_window_s, "86400", 60, 2592000, true, "the customer's next message within this long after the survey question is read as the answer (when it is a score); no survey for a resolve older than this"),

	K_INT("bot.max_turns", bot.max_turns, "3", 0, 1000, true, "bot mode: the bot answers at most this many customer messages of a conversation, then hands it to an agent (reason max_turns); 0 = hand off at once"),
	K_STR("bot.name", bot.name, "Assistente virtual", true, "bot mode: the sender name of the bot's messages"),
	K_STR("bot.handoff_phrases", bot.handoff_phrases, "", true, "bot mode: extra |-separated phrases (matched on normalized text) by which a customer asks for a person; \"atendente\", \"falar com uma pessoa\", \"humano\" and the like are built in"),
	K_STR("bot.handoff_message", bot.handoff_message, "", true, "bot mode: sent to the customer when the bot hands off within business hours; empty = nothing (the agent speaks first)"),
	K_STR("bot.after_hours_message", bot.after_hours_message, "Nossos atendentes estão fora do horário agora e voltam {back}. Sua mensagem fica registrada e um atendente continua a conversa assim que chegar.", true, "bot mode: sent instead of a hand-off outside the company's hours; {back} becomes when they open next (e.g. \"amanhã (terça-feira) às 08:00\")"),

	K_STR("auth.token_secret", auth.token_secret, "", true, "HS256 secret of agent tokens (at least 16 characters)"),
	K_STR("auth.previous_token_secret", auth.previous_token_secret, "", true, "while rotating: the secret being replaced, whose tokens stay valid until it is removed (empty: none); consoles holding its tokens are closed with 4001 when it goes"),
	K_STR("auth.default_ttl", auth.default_ttl, "8h", true, "token lifetime when --ttl is not given"),

	K_INT("supervisor.backoff_initial_ms", supervisor.backoff_initial_ms, "500", 10, 600000, true, "first restart delay of a crashed child"),
	K_INT("supervisor.backoff_max_ms", supervisor.backoff_max_ms, "30000", 10, 3600000, true, "restart delay cap (doubles per crash)"),
	K_INT("supervisor.healthy_after_s", supervisor.healthy_after_s, "60", 1, 86400, true, "a child up this long has its backoff reset"),
	K_INT("supervisor.shutdown_timeout_s", supervisor.shutdown_timeout_s, "20", 1, 600, true, "the whole stop's drain time: each stage gets what is left of it (a second kept for each later stage), then SIGKILL; workers give up on analyses 5 s before it (at half of it below 10 s); service managers must wait longer"),
	K_STR("supervisor.roles", supervisor.roles, "ingress worker notifier", false, "processes this machine runs (space-separated subset of ingress worker notifier); scale out by running several machines against the same Kafka and PostgreSQL"),

	K_INT("retention.keep_days", retention.keep_days, "90", 0, 36500, true, "weekly partitions of messages and hints entirely older than this are archived and dropped; 0 = keep forever"),
	K_INT("retention.weeks_ahead", retention.weeks_ahead, "4", 1, 520, true, "weekly partitions created ahead of time"),
	K_STR("retention.archive_dir", retention.archive_dir, "archive", true, "where dropped partitions are exported as <table>-<week>.csv.gz (relative to data_dir)"),
	K_INT("retention.interval_s", retention.interval_s, "3600", 10, 604800, false, "the supervisor runs `atende retention` at start and then this often"),
	K_INT("retention.dedup_days", retention.dedup_days, "30", 1, 36500, true, "gateway message ids and finished console requests remembered for exactly-once handling (a redelivery older than this would be stored or sent again)"),

	K_STR("media.dir", media.dir, "media", false, "media files, content-addressed by SHA-256 (<dir>/<2 hex>/<64 hex>), relative to data_dir; a shared mount when workers and notifiers run on several machines"),
	K_INT("media.max_audio_bytes", media.max_audio_bytes, "16777216", 1024, 1073741824, true, "largest voice note/audio file stored; larger ones are recorded as too_large with their metadata"),
	K_INT("media.max_image_bytes", media.max_image_bytes, "5242880", 1024, 1073741824, true, "largest image or sticker stored (too_large above)"),
	K_INT("media.max_video_bytes", media.max_video_bytes, "16777216", 1024, 1073741824, true, "largest video stored (too_large above)"),
	K_INT("media.max_document_bytes", media.max_document_bytes, "33554432", 1024, 1073741824, true, "largest document stored (too_large above)"),
	K_INT("media.inline_max_bytes", media.inline_max_bytes, "524288", 0, 8388608, true, "base64 media in a webhook (Evolution's webhook_base64) of at most this many bytes rides the broker to the worker; larger inline media is dropped from the event and fetched from the gateway instead (a broker message stays under 1 MB); 0 = always fetch"),
	K_INT("media.fetch_timeout_ms", media.fetch_timeout_ms, "30000", 100, 600000, true, "per-call timeout of a media download from a gateway"),
	K_INT("media.fetch_retries", media.fetch_retries, "3", 0, 10, true, "retries of a media download after a 5xx, 429, timeout or connection error; then the media is recorded as failed"),
	K_INT("media.max_upload_bytes", media.max_upload_bytes, "16777216", 1024, 67108864, true, "largest file an agent may send from the console (POST /v1/conversations/ID/media; 413 above); the notifier holds one such body in memory per upload under way"),
	K_INT("media.fetch_retry_base_ms", media.fetch_retry_base_ms, "500", 1, 600000, true, "first retry delay of a media download, doubled per retry"),
};
const size_t cfg_n_keys = sizeof(cfg_keys) / sizeof(cfg_keys[0]);

/* Error accumulator: each problem on its own line. */
typedef struct {
	char *buf;
	size_t len, cap;
	int count;
} cfg_errs_t;

static void cfg_err(cfg_errs_t *e, const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static const cfg_key_t *cfg_key_by_name(const char *name);
static void cfg_set_default(cfg_t *c, const cfg_key_t *k);
static void cfg_check_unknown(const config_setting_t *s, const char *file, cfg_errs_t *e);
static void cfg_read_key(const config_t *lc, cfg_t *c, const cfg_key_t *k, const char *file, cfg_errs_t *e);
static void cfg_read_channels(const config_t *lc, cfg_t *c, const char *file, cfg_errs_t *e);
static void cfg_read_companies(const config_t *lc, cfg_t *c, const char *file, cfg_errs_t *e);
static void cfg_read_pools(const config_t *lc, cfg_t *c, const char *file, cfg_errs_t *e);
static void cfg_read_company_bot(const config_setting_t *g, cfg_company_t *co, const char *file, cfg_errs_t *e);
static void cfg_validate(cfg_t *c, const config_t *lc, const char *file, cfg_errs_t *e);
static bool cfg_roles_valid(const char *roles);
static char *cfg_child_string(const config_setting_t *g, const char *name, const char *file, cfg_errs_t *e, bool required);
static char *cfg_child_secret(const config_setting_t *g, const char *name, const char *file, cfg_errs_t *e, bool required);
static const char *cfg_secret_problem(const char *value);
static void cfg_read_instances(const cfg_t *c, const config_setting_t *g, cfg_channel_t *ch, const char *file, cfg_errs_t *e);
static void cfg_channel_clear(cfg_channel_t *ch);

bool cfg_load(const char *path, cfg_t *out, char *err, size_t errlen)
{
	config_t lc;
	cfg_errs_t e = {err, 0, errlen, 0};
	if (errlen)
		err[0] = 0;
	memset(out, 0, sizeof(*out));
	out->path = xstrdup(path);
	for (size_t i = 0; i < cfg_n_keys; i++)
		cfg_set_default(out, &cfg_keys[i]);

	config_init(&lc);
	if (!config_read_file(&lc, path)) {
		if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
			snprintf(err, errlen, "%s: cannot read the file: %s", path, strerror(errno)), e.count++;
		else
			cfg_err(&e, config_error_file(&lc) ? config_error_file(&lc) : path, config_error_line(&lc), "%s",
				config_error_text(&lc));
		config_destroy(&lc);
		return false;
	}
	cfg_check_unknown(config_root_setting(&lc), path, &e);
	for (size_t i = 0; i < cfg_n_keys; i++)
		cfg_read_key(&lc, out, &cfg_keys[i], path, &e);
	cfg_read_channels(&lc, out, path, &e);
	cfg_read_companies(&lc, out, path, &e);
	cfg_read_pools(&lc, out, path, &e);
	cfg_validate(out, &lc, path, &e);
	config_destroy(&lc);
	return e.count == 0;
}

void cfg_free(cfg_t *c)
{
	for (size_t i = 0; i < cfg_n_keys; i++)
		if (cfg_keys[i].type == CFG_STRING) {
			char **p = (char **)((char *)c + cfg_keys[i].offset);
			free(*p);
			*p = NULL;
		}
	for (int i = 0; i < c->n_channels; i++)
		cfg_channel_clear(&c->channels[i]);
	free(c->channels);
	for (int i = 0; i < c->n_companies; i++)
		free(c->companies[i].name), free(c->companies[i].hours), free(c->companies[i].timezone);
	free(c->companies);
	for (int i = 0; i < c->n_pools; i++)
		free(c->pools[i].name);
	free(c->pools);
	free(c->path);
	memset(c, 0, sizeof(*c));
}

void cfg_apply_reload(cfg_t *dst, cfg_t *src)
{
	for (size_t i = 0; i < cfg_n_keys; i++) {
		const cfg_key_t *k = &cfg_keys[i];
		if (!k->reloadable)
			continue;
		char *d = (char *)dst + k->offset, *s = (char *)src + k->offset;
		if (k->type == CFG_STRING) {
			char **ds = (char **)d, **ss = (char **)s;
			free(*ds);
			*ds = *ss;
			*ss = NULL;
		} else if (k->type == CFG_INT) {
			*(int *)d = *(int *)s;
		} else if (k->type == CFG_DOUBLE) {
			*(double *)d = *(double *)s;
		} else {
			*(bool *)d = *(bool *)s;
		}
	}
	cfg_t old_lists = {0};
	old_lists.channels = dst->channels, old_lists.n_channels = dst->n_channels;
	old_lists.companies = dst->companies, old_lists.n_companies = dst->n_companies;
	dst->channels = src->channels, dst->n_channels = src->n_channels;
	dst->companies = src->companies, dst->n_companies = src->n_companies;
	src->channels = NULL, src->n_channels = 0, src->companies = NULL, src->n_companies = 0;
	cfg_free(&old_lists);
}

const cfg_channel_t *cfg_channel_find(const cfg_t *c, cfg_channel_type_t type, const char *name)
{
	for (int i = 0; i < c->n_channels; i++)
		if (c->channels[i].type == type && strcmp(c->channels[i].name, name) == 0)
			return &c->channels[i];
	for (int i = 0; type == CHAN_EVOLUTION && i < c->n_channels; i++)
		for (int k = 0; c->channels[i].type == type && k < c->channels[i].n_instances; k++)
			if (c->channels[i].instances[k].instance && strcmp(c->channels[i].instances[k].instance, name) == 0)
				return &c->channels[i];
	return NULL;
}

const char *cfg_channel_key(const cfg_channel_t *ch, const char *name)
{
	for (int k = 0; ch->type == CHAN_EVOLUTION && name && k < ch->n_instances; k++)
		if (ch->instances[k].instance && strcmp(ch->instances[k].instance, name) == 0 && ch->instances[k].key)
			return ch->instances[k].key;
	return ch->key;
}

const cfg_pool_t *cfg_pool_find(const cfg_t *c, const char *name)
{
	for (int i = 0; i < c->n_pools; i++)
		if (strcmp(c->pools[i].name, name) == 0)
			return &c->pools[i];
	return NULL;
}

const cfg_pool_t *cfg_pool_of_domain(const cfg_t *c, int domain)
{
	for (int i = 0; i < c->n_pools; i++)
		if (c->pools[i].domains[domain])
			return &c->pools[i];
	return NULL;
}

const char *cfg_pool_group(const cfg_t *c, const cfg_pool_t *p, char *buf, size_t len)
{
	if (c->n_pools == 1 && strcmp(p->name, "main") == 0)
		snprintf(buf, len, "%s", c->kafka.group);
	else
		snprintf(buf, len, "%s-%s", c->kafka.group, p->name);
	return buf;
}

const cfg_company_t *cfg_company_find(const cfg_t *c, long id)
{
	for (int i = 0; i < c->n_companies; i++)
		if (c->companies[i].id == id)
			return &c->companies[i];
	return NULL;
}

int cfg_domain_index(const char *name)
{
	for (int i = 0; i < CFG_MAX_DOMAINS; i++)
		if (strcmp(cfg_domains[i], name) == 0)
			return i;
	return -1;
}

void cfg_print_docs(void)
{
	static const char *const tn[] = {"int", "bool", "string", "number"};
	for (size_t i = 0; i < cfg_n_keys; i++) {
		const cfg_key_t *k = &cfg_keys[i];
		printf("%-40s %-6s default=\"%s\"", k->name, tn[k->type], k->def);
		if (k->type == CFG_INT)
			printf(" range=%ld..%ld", k->min, k->max);
		printf("%s\n    %s\n", k->reloadable ? " (reloadable)" : "", k->doc);
	}
}

int cfg_fetch_wait_ms(const cfg_t *c)
{
	const char *wakes = getenv(PROC_ENV_BROKER_WAKES);
	return wakes && strcmp(wakes, "1") == 0 ? c->kafka.embedded_fetch_wait_max_ms : c->kafka.fetch_wait_max_ms;
}

bool cfg_has_role(const cfg_t *c, const char *role)
{
	size_t n = strlen(role);
	for (const char *p = c->supervisor.roles; (p = strstr(p, role)); p += n)
		if ((p == c->supervisor.roles || p[-1] == ' ') && (p[n] == 0 || p[n] == ' '))
			return true;
	return false;
}

int cfg_topic_partitions(const cfg_t *c, const char *suffix)
{
	return strcmp(suffix, "typing") == 0 ? 1 : c->kafka.partitions;
}

const char *cfg_topic(const cfg_t *c, const char *suffix, char *buf, size_t len)
{
	if (cfg_domain_index(suffix) >= 0)
		snprintf(buf, len, "%s.inbound.%s", c->kafka.topic_prefix, suffix);
	else
		snprintf(buf, len, "%s.%s", c->kafka.topic_prefix, suffix);
	return buf;
}

const char *cfg_data_path(const cfg_t *c, const char *sub, char *buf, size_t len)
{
	char cwd[PATH_MAX];
	if (c->data_dir[0] == '/')
		snprintf(buf, len, "%s%s%s", c->data_dir, *sub ? "/" : "", sub);
	else
		snprintf(buf, len, "%s/%s%s%s", getcwd(cwd, sizeof(cwd)) ? cwd : ".", c->data_dir, *sub ? "/" : "", sub);
	return buf;
}

const char *cfg_media_root(const cfg_t *c, char *buf, size_t len)
{
	if (c->media.dir[0] == '/')
		snprintf(buf, len, "%s", c->media.dir);
	else
		cfg_data_path(c, c->media.dir, buf, len);
	return buf;
}

static void cfg_err(cfg_errs_t *e, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	e->count++;
	if (e->len + 2 >= e->cap)
		return;
	int n = snprintf(e->buf + e->len, e->cap - e->len, "%s%s:%d: ", e->len ? "\n" : "", file, line);
	if (n > 0)
		e->len = e->len + (size_t)n < e->cap ? e->len + (size_t)n : e->cap - 1;
	va_start(ap, fmt);
	n = vsnprintf(e->buf + e->len, e->cap - e->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		e->len = e->len + (size_t)n < e->cap ? e->len + (size_t)n : e->cap - 1;
}

static const cfg_key_t *cfg_key_by_name(const char *name)
{
	for (size_t i = 0; i < cfg_n_keys; i++)
		if (strcmp(cfg_keys[i].name, name) == 0)
			return &cfg_keys[i];
	return NULL;
}

static void cfg_set_default(cfg_t *c, const cfg_key_t *k)
{
	char *f = (char *)c + k->offset;
	if (k->type == CFG_STRING)
		*(char **)f = xstrdup(k->def);
	else if (k->type == CFG_INT)
		*(int *)f = atoi(k->def);
	else if (k->type == CFG_DOUBLE)
		*(double *)f = atof(k->def);
	else
		*(bool *)f = strcmp(k->def, "true") == 0;
}

/* Walks the whole file: any scalar or group not in the table (and not a known list) is an error. */
static void cfg_check_unknown(const config_setting_t *s, const char *file, cfg_errs_t *e)
{
	int n = config_setting_length(s);
	for (int i = 0; i < n; i++) {
		const config_setting_t *ch = config_setting_get_elem(s, (unsigned)i);
		char path[256] = "";
		const char *name = config_setting_name(ch);
		const config_setting_t *p = config_setting_parent(ch);
		if (p && !config_setting_is_root(p) && config_setting_name(p))
			snprintf(path, sizeof(path), "%s.%s", config_setting_name(p), name);
		else
			snprintf(path, sizeof(path), "%s", name);
		if (config_setting_is_root(s) &&
		    (strcmp(name, "channels") == 0 || strcmp(name, "companies") == 0 || strcmp(name, "pools") == 0))
			continue;
		if (config_setting_is_group(ch)) {
			bool known = false;
			size_t plen = strlen(path);
			for (size_t k = 0; k < cfg_n_keys; k++)
				if (strncmp(cfg_keys[k].name, path, plen) == 0 && cfg_keys[k].name[plen] == '.')
					known = true;
			if (!known)
				cfg_err(e, file, config_setting_source_line(ch), "unknown group \"%s\"", path);
			else
				cfg_check_unknown(ch, file, e);
		} else if (!cfg_key_by_name(path)) {
			cfg_err(e, file, config_setting_source_line(ch), "unknown key \"%s\"", path);
		}
	}
}

static void cfg_read_key(const config_t *lc, cfg_t *c, const cfg_key_t *k, const char *file, cfg_errs_t *e)
{
	const config_setting_t *s = config_lookup(lc, k->name);
	char *f = (char *)c + k->offset;
	if (!s)
		return;
	int line = config_setting_source_line(s);
	int t = config_setting_type(s);
	switch (k->type) {
	case CFG_STRING:
		if (t != CONFIG_TYPE_STRING) {
			cfg_err(e, file, line, "%s: expected a string", k->name);
			return;
		}
		free(*(char **)f);
		*(char **)f = xstrdup(config_setting_get_string(s));
		break;
	case CFG_BOOL:
		if (t != CONFIG_TYPE_BOOL) {
			cfg_err(e, file, line, "%s: expected true or false", k->name);
			return;
		}
		*(bool *)f = config_setting_get_bool(s);
		break;
	case CFG_INT: {
		if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) {
			cfg_err(e, file, line, "%s: expected an integer", k->name);
			return;
		}
		long long v = config_setting_get_int64(s);
		if (v < k->min || v > k->max) {
			cfg_err(e, file, line, "%s: %lld is out of range %ld..%ld", k->name, v, k->min, k->max);
			return;
		}
		*(int *)f = (int)v;
		break;
	}
	case CFG_DOUBLE: {
		if (t != CONFIG_TYPE_FLOAT && t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) {
			cfg_err(e, file, line, "%s: expected a number", k->name);
			return;
		}
		double v = t == CONFIG_TYPE_FLOAT ? config_setting_get_float(s) : (double)config_setting_get_int64(s);
		if (v < (double)k->min || v > (double)k->max) {
			cfg_err(e, file, line, "%s: %g is out of range %ld..%ld", k->name, v, k->min, k->max);
			return;
		}
		*(double *)f = v;
		break;
	}
	}
}

static char *cfg_child_string(const config_setting_t *g, const char *name, const char *file, cfg_errs_t *e, bool required)
{
	const config_setting_t *s = config_setting_get_member(g, name);
	if (!s) {
		if (required)
			cfg_err(e, file, config_setting_source_line(g), "missing \"%s\"", name);
		return NULL;
	}
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		cfg_err(e, file, config_setting_source_line(s), "\"%s\": expected a string", name);
		return NULL;
	}
	return xstrdup(config_setting_get_string(s));
}

/* A channel's credential that authenticates a gateway to us (key, app_secret,
 * verify_token). An empty one would let anyone in (an envelope with "apikey":"", a body
 * signed with an empty key, hub.verify_token=) and a sample's placeholder is as good as
 * public. */
static char *cfg_child_secret(const config_setting_t *g, const char *name, const char *file, cfg_errs_t *e, bool required)
{
	char *v = cfg_child_string(g, name, file, e, required);
	const char *why = v ? cfg_secret_problem(v) : NULL;
	if (why)
		cfg_err(e, file, config_setting_source_line(config_setting_get_member(g, name)), "channels: \"%s\" %s", name,
			why);
	return v;
}

/* Why a secret's value cannot be used, or NULL: empty, or one of the placeholders
 * deploy/atende.production.conf ships ("change-me-...", "sk-change-me"). The demo values of
 * deploy/atende.conf are real (if public) secrets for `make run` on one box. */
static const char *cfg_secret_problem(const char *value)
{
	if (!*value)
		return "is empty: it would let anyone in; set a secret";
	if (strncasecmp(value, "change-me", 9) == 0 || strncasecmp(value, "sk-change-me", 12) == 0)
		return "is the sample's placeholder: set a real secret";
	return NULL;
}

static bool cfg_child_long(const config_setting_t *g, const char *name, long *out, const char *file, cfg_errs_t *e)
{
	const config_setting_t *s = config_setting_get_member(g, name);
	if (!s) {
		cfg_err(e, file, config_setting_source_line(g), "missing \"%s\"", name);
		return false;
	}
	if (config_setting_type(s) != CONFIG_TYPE_INT && config_setting_type(s) != CONFIG_TYPE_INT64) {
		cfg_err(e, file, config_setting_source_line(s), "\"%s\": expected an integer", name);
		return false;
	}
	*out = (long)config_setting_get_int64(s);
	return true;
}

/* channels = ( { type = "evolution"; instance = "demo"; key = "..."; company = 1; domain = "suporte"; url = "..."; }, ... ) */
static void cfg_read_channels(const config_t *lc, cfg_t *c, const char *file, cfg_errs_t *e)
{
	static const char *const allowed[] = {"type", "instance", "phone_number_id", "name", "key", "app_secret",
					      "verify_token", "access_token", "url", "instances", "company", "domain", NULL};
	const config_setting_t *list = config_lookup(lc, "channels");
	if (!list)
		return;
	if (!config_setting_is_list(list)) {
		cfg_err(e, file, config_setting_source_line(list), "channels: expected a list ( {...}, ... )");
		return;
	}
	int n = config_setting_length(list);
	c->channels = xcalloc((size_t)n + 1, sizeof(cfg_channel_t));
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		int line = config_setting_source_line(g);
		if (!config_setting_is_group(g)) {
			cfg_err(e, file, line, "channels: each entry must be a group { ... }");
			continue;
		}
		for (int m = 0; m < config_setting_length(g); m++) {
			const config_setting_t *mem = config_setting_get_elem(g, (unsigned)m);
			bool ok = false;
			for (int a = 0; allowed[a]; a++)
				ok |= strcmp(allowed[a], config_setting_name(mem)) == 0;
			if (!ok)
				cfg_err(e, file, config_setting_source_line(mem), "channels: unknown key \"%s\"",
					config_setting_name(mem));
		}
		cfg_channel_t *ch = &c->channels[c->n_channels];
		ch->line = line;
		char *type = cfg_child_string(g, "type", file, e, true);
		char *domain = cfg_child_string(g, "domain", file, e, true);
		if (!type || !domain || !cfg_child_long(g, "company", &ch->company, file, e)) {
			free(type), free(domain);
			continue;
		}
		ch->domain = cfg_domain_index(domain);
		if (ch->domain < 0)
			cfg_err(e, file, line, "channels: unknown domain \"%s\" (one of financeiro comercial suporte ouvidoria cancelamento)", domain);
		ch->url = cfg_child_string(g, "url", file, e, false);
		if (strcmp(type, "evolution") == 0) {
			ch->type = CHAN_EVOLUTION;
			ch->name = cfg_child_string(g, "instance", file, e, true);
			ch->key = cfg_child_secret(g, "key", file, e, true);
		} else if (strcmp(type, "cloud") == 0) {
			ch->type = CHAN_CLOUD;
			ch->name = cfg_child_string(g, "phone_number_id", file, e, true);
			ch->app_secret = cfg_child_secret(g, "app_secret", file, e, true);
			ch->verify_token = cfg_child_secret(g, "verify_token", file, e, true);
			ch->access_token = cfg_child_string(g, "access_token", file, e, false); /* may be "": no replies */
			if (ch->access_token && *ch->access_token && cfg_secret_problem(ch->access_token))
				cfg_err(e, file, config_setting_source_line(config_setting_get_member(g, "access_token")),
					"channels: \"access_token\" %s", cfg_secret_problem(ch->access_token));
		} else if (strcmp(type, "api") == 0) {
			ch->type = CHAN_API;
			ch->name = cfg_child_string(g, "name", file, e, true);
			ch->key = cfg_child_secret(g, "key", file, e, true);
		} else {
			cfg_err(e, file, line, "channels: unknown type \"%s\" (evolution | cloud | api)", type);
		}
		free(type), free(domain);
		cfg_read_instances(c, g, ch, file, e);
		if (!ch->name) {
			cfg_channel_clear(ch); /* the slot is reused: what was read of it goes */
			continue;
		}
		if (cfg_channel_find(c, ch->type, ch->name))
			cfg_err(e, file, line, "channels: \"%s\" is defined twice", ch->name);
		c->n_channels++;
	}
}

/* A channel's gateway instances: instances = ( { url = "..."; weight = 3; instance = "..."; key = "..."; }, ... ),
 * or the single url as one instance of weight 1. Both at once would be ambiguous. */
static void cfg_read_instances(const cfg_t *c, const config_setting_t *g, cfg_channel_t *ch, const char *file, cfg_errs_t *e)
{
	const config_setting_t *list = config_setting_get_member(g, "instances");
	if (!list) {
		if (ch->url && *ch->url) {
			ch->instances = xcalloc(1, sizeof(cfg_instance_t));
			ch->instances[0].url = xstrdup(ch->url);
			ch->instances[0].weight = 1;
			ch->instances[0].line = ch->line;
			ch->n_instances = 1;
		}
		return;
	}
	int line = config_setting_source_line(list);
	if (ch->url && *ch->url) {
		cfg_err(e, file, line, "channels: \"url\" and \"instances\" both given; put the url in instances");
		return;
	}
	if (!config_setting_is_list(list) || config_setting_length(list) == 0) {
		cfg_err(e, file, line, "channels: \"instances\" must be a non-empty list ( { url = \"...\"; weight = 1; }, ... )");
		return;
	}
	int n = config_setting_length(list);
	if (n > CFG_MAX_INSTANCES) {
		cfg_err(e, file, line, "channels: %d instances, at most %d", n, CFG_MAX_INSTANCES);
		return;
	}
	ch->instances = xcalloc((size_t)n, sizeof(cfg_instance_t));
	for (int i = 0; i < n; i++) {
		const config_setting_t *ig = config_setting_get_elem(list, (unsigned)i);
		int il = config_setting_source_line(ig);
		if (!config_setting_is_group(ig)) {
			cfg_err(e, file, il, "channels: each instance must be a group { url = \"...\"; weight = 1; }");
			continue;
		}
		for (int m = 0; m < config_setting_length(ig); m++) {
			const config_setting_t *mem = config_setting_get_elem(ig, (unsigned)m);
			const char *mn = config_setting_name(mem);
			bool evo_only = strcmp(mn, "instance") == 0 || strcmp(mn, "key") == 0;
			if (strcmp(mn, "url") != 0 && strcmp(mn, "weight") != 0 && !evo_only)
				cfg_err(e, file, config_setting_source_line(mem),
					"channels: instances: unknown key \"%s\" (url, weight; instance and key for evolution)", mn);
			else if (evo_only && ch->type != CHAN_EVOLUTION)
				cfg_err(e, file, config_setting_source_line(mem),
					"channels: instances: \"%s\" is only for evolution channels", mn);
		}
		cfg_instance_t *in = &ch->instances[ch->n_instances];
		in->line = il;
		in->weight = 1;
		in->url = cfg_child_string(ig, "url", file, e, true);
		if (in->url && strncmp(in->url, "http://", 7) != 0 && strncmp(in->url, "https://", 8) != 0)
			cfg_err(e, file, il, "channels: instances: url \"%s\" is not http:// or https://", in->url);
		if (config_setting_get_member(ig, "weight")) {
			long w = 0;
			if (cfg_child_long(ig, "weight", &w, file, e) && (w < 1 || w > 100))
				cfg_err(e, file, config_setting_source_line(config_setting_get_member(ig, "weight")),
					"channels: instances: weight %ld is out of range 1..100", w);
			in->weight = (int)w;
		}
		if (ch->type == CHAN_EVOLUTION) {
			in->instance = cfg_child_string(ig, "instance", file, e, false);
			in->key = config_setting_get_member(ig, "key") ? cfg_child_secret(ig, "key", file, e, false) : NULL;
		}
		if (!in->url) {
			free(in->instance), free(in->key);
			memset(in, 0, sizeof(*in));
			continue;
		}
		if (in->instance && cfg_channel_find(c, CHAN_EVOLUTION, in->instance))
			cfg_err(e, file, il, "channels: instances: instance \"%s\" is already another channel's", in->instance);
		for (int k = 0; k < ch->n_instances; k++) {
			const cfg_instance_t *o = &ch->instances[k];
			const char *a = o->instance ? o->instance : "", *b = in->instance ? in->instance : "";
			if (strcmp(o->url, in->url) == 0 && strcmp(a, b) == 0)
				cfg_err(e, file, il, "channels: instances: \"%s\" is listed twice", in->url);
		}
		ch->n_instances++;
	}
}

/* companies = ( { id = 1; name = "Demo"; agents = [1, 5]; } )  -- agents: first and last id. */
/* pools = ( { name = "vip"; domains = ["ouvidoria", "cancelamento"]; count = 1; priority = 0; }, ... ) */
static void cfg_read_pools(const config_t *lc, cfg_t *c, const char *file, cfg_errs_t *e)
{
	const config_setting_t *list = config_lookup(lc, "pools");
	bool covered[CFG_MAX_DOMAINS] = {false};
	if (!list) {
		c->pools = xcalloc(1, sizeof(cfg_pool_t));
		c->pools[0].name = xstrdup("main");
		for (int d = 0; d < CFG_MAX_DOMAINS; d++)
			c->pools[0].domains[d] = true;
		c->pools[0].count = c->workers.count;
		c->pools[0].priority = c->workers.priority;
		c->n_pools = 1;
		return;
	}
	if (!config_setting_is_list(list)) {
		cfg_err(e, file, config_setting_source_line(list), "pools: expected a list ( {...}, ... )");
		return;
	}
	int n = config_setting_length(list);
	c->pools = xcalloc((size_t)n + 1, sizeof(cfg_pool_t));
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		int line = config_setting_source_line(g);
		cfg_pool_t *p = &c->pools[c->n_pools];
		long count = 0, prio = c->workers.priority;
		if (!config_setting_is_group(g) || !(p->name = cfg_child_string(g, "name", file, e, true)))
			continue;
		p->line = line;
		if (strspn(p->name, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(p->name) || !p->name[0])
			cfg_err(e, file, line, "pools: name \"%s\" must be lowercase letters, digits or _", p->name);
		if (cfg_child_long(g, "count", &count, file, e) && (count < 1 || count > 256))
			cfg_err(e, file, line, "pools: count %ld is out of range 1..256", count);
		if (config_setting_get_member(g, "priority") && cfg_child_long(g, "priority", &prio, file, e) &&
		    (prio < -20 || prio > 19))
			cfg_err(e, file, line, "pools: priority %ld is out of range -20..19 (a nice value)", prio);
		p->count = (int)count;
		p->priority = (int)prio;
		const config_setting_t *ds = config_setting_get_member(g, "domains");
		if (!ds || !config_setting_is_array(ds) || config_setting_length(ds) == 0) {
			cfg_err(e, file, line, "pools: \"domains\" must be a non-empty list of domain names");
		} else {
			for (int k = 0; k < config_setting_length(ds); k++) {
				const char *dn = config_setting_get_string_elem(ds, (unsigned)k);
				int d = dn ? cfg_domain_index(dn) : -1;
				if (d < 0)
					cfg_err(e, file, line, "pools: unknown domain \"%s\"", dn ? dn : "?");
				else if (covered[d])
					cfg_err(e, file, line, "pools: domain %s is in two pools", dn);
				else
					p->domains[d] = covered[d] = true;
			}
		}
		if (cfg_pool_find(c, p->name) != p && cfg_pool_find(c, p->name))
			cfg_err(e, file, line, "pools: \"%s\" is defined twice", p->name);
		c->n_pools++;
	}
	for (int d = 0; d < CFG_MAX_DOMAINS; d++)
		if (!covered[d])
			cfg_err(e, file, config_setting_source_line(list), "pools: domain %s is in no pool (its messages would never be stored)",
				cfg_domains[d]);
}

static void cfg_read_companies(const config_t *lc, cfg_t *c, const char *file, cfg_errs_t *e)
{
	const config_setting_t *list = config_lookup(lc, "companies");
	if (!list)
		return;
	if (!config_setting_is_list(list)) {
		cfg_err(e, file, config_setting_source_line(list), "companies: expected a list ( {...}, ... )");
		return;
	}
	int n = config_setting_length(list);
	c->companies = xcalloc((size_t)n + 1, sizeof(cfg_company_t));
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		int line = config_setting_source_line(g);
		cfg_company_t *co = &c->companies[c->n_companies];
		if (!config_setting_is_group(g) || !cfg_child_long(g, "id", &co->id, file, e))
			continue;
		co->name = cfg_child_string(g, "name", file, e, false);
		const config_setting_t *ag = config_setting_get_member(g, "agents");
		if (!ag || !config_setting_is_array(ag) || config_setting_length(ag) != 2) {
			cfg_err(e, file, line, "companies: \"agents\" must be [first_id, last_id]");
		} else {
			co->agent_first = config_setting_get_int_elem(ag, 0);
			co->agent_last = config_setting_get_int_elem(ag, 1);
			if (co->agent_first < 1 || co->agent_last < co->agent_first)
				cfg_err(e, file, line, "companies: agents range [%ld, %ld] is empty", co->agent_first, co->agent_last);
		}
		cfg_read_company_bot(g, co, file, e);
		if (cfg_company_find(c, co->id))
			cfg_err(e, file, line, "companies: id %ld is defined twice", co->id);
		c->n_companies++;
	}
}

/* A company's bot mode: bot_domains = ["suporte"]; hours = "mon-fri 08:00-18:00";
 * timezone = "America/Sao_Paulo"; (all optional: no bot, always open, UTC). */
static void cfg_read_company_bot(const config_setting_t *g, cfg_company_t *co, const char *file, cfg_errs_t *e)
{
	const config_setting_t *bd = config_setting_get_member(g, "bot_domains");
	char why[256];
	if (bd) {
		if (!config_setting_is_array(bd) && !config_setting_is_list(bd)) {
			cfg_err(e, file, config_setting_source_line(bd), "companies: \"bot_domains\" must be a list of domain names");
		} else {
			for (int k = 0; k < config_setting_length(bd); k++) {
				const char *dn = config_setting_get_string_elem(bd, (unsigned)k);
				int d = dn ? cfg_domain_index(dn) : -1;
				if (d < 0)
					cfg_err(e, file, config_setting_source_line(bd),
						"companies: bot_domains: unknown domain \"%s\" (one of financeiro comercial suporte ouvidoria cancelamento)",
						dn ? dn : "?");
				else
					co->bot_domains[d] = true;
			}
		}
	}
	co->hours = cfg_child_string(g, "hours", file, e, false);
	co->timezone = cfg_child_string(g, "timezone", file, e, false);
	if (co->hours && !hours_parse(co->hours, &co->open_hours, why, sizeof(why)))
		cfg_err(e, file, config_setting_source_line(config_setting_get_member(g, "hours")), "companies: %s", why);
	if (co->timezone && !hours_tz_valid(co->timezone))
		cfg_err(e, file, config_setting_source_line(config_setting_get_member(g, "timezone")),
			"companies: timezone \"%s\" is not a known time zone (e.g. \"America/Sao_Paulo\")", co->timezone);
}

/* Checks that span keys: values the table alone cannot judge. */
static void cfg_validate(cfg_t *c, const config_t *lc, const char *file, cfg_errs_t *e)
{
	const config_setting_t *s;
#define LINE_OF(key) ((s = config_lookup(lc, key)) ? config_setting_source_line(s) : 0)
	if (log_level_parse(c->log.level) < 0)
		cfg_err(e, file, LINE_OF("log.level"), "log.level: \"%s\" is not error, warn, info or debug", c->log.level);
	if (strcmp(c->log.format, "text") != 0 && strcmp(c->log.format, "json") != 0)
		cfg_err(e, file, LINE_OF("log.format"), "log.format: \"%s\" is not text or json", c->log.format);
	if (strcmp(c->ai.provider, "rules") != 0 && strcmp(c->ai.provider, "openai") != 0)
		cfg_err(e, file, LINE_OF("ai.provider"), "ai.provider: \"%s\" is not rules or openai", c->ai.provider);
	if (strcmp(c->ai.provider, "openai") == 0 && !c->ai.base_url[0])
		cfg_err(e, file, LINE_OF("ai.provider"), "ai.provider is openai but ai.base_url is empty");
	if (strlen(c->auth.token_secret) < 16)
		cfg_err(e, file, LINE_OF("auth.token_secret"), "auth.token_secret: must be at least 16 characters");
	else if (cfg_secret_problem(c->auth.token_secret))
		cfg_err(e, file, LINE_OF("auth.token_secret"), "auth.token_secret %s", cfg_secret_problem(c->auth.token_secret));
	if (c->kafka.properties[0]) {
		char why[600];
		rd_kafka_conf_t *kc = rd_kafka_conf_new();
		if (!c->kafka.brokers[0])
			cfg_err(e, file, LINE_OF("kafka.properties"), "kafka.properties needs kafka.brokers (the embedded broker speaks plaintext only)");
		else if (!kq_conf_properties(kc, c->kafka.properties, why, sizeof(why)))
			cfg_err(e, file, LINE_OF("kafka.properties"), "%s", why);
		rd_kafka_conf_destroy(kc);
	}
	if (c->auth.previous_token_secret[0]) {
		if (strlen(c->auth.previous_token_secret) < 16)
			cfg_err(e, file, LINE_OF("auth.previous_token_secret"), "auth.previous_token_secret: must be at least 16 characters (or empty)");
		else if (cfg_secret_problem(c->auth.previous_token_secret))
			cfg_err(e, file, LINE_OF("auth.previous_token_secret"), "auth.previous_token_secret %s",
				cfg_secret_problem(c->auth.previous_token_secret));
		else if (strcmp(c->auth.previous_token_secret, c->auth.token_secret) == 0)
			cfg_err(e, file, LINE_OF("auth.previous_token_secret"), "auth.previous_token_secret: is the same as auth.token_secret");
	}
	if (strcmp(c->ai.provider, "openai") == 0 && c->ai.api_key[0] && cfg_secret_problem(c->ai.api_key))
		cfg_err(e, file, LINE_OF("ai.api_key"), "ai.api_key %s", cfg_secret_problem(c->ai.api_key));
	const char *listens[] = {"ingress.listen", "notifier.listen", "metrics.listen"};
	const char *vals[] = {c->ingress.listen, c->notifier.listen, c->metrics.listen};
	for (int i = 0; i < 3; i++) {
		const char *colon = strrchr(vals[i], ':');
		if (!colon || atoi(colon + 1) <= 0 || atoi(colon + 1) > 65535)
			cfg_err(e, file, LINE_OF(listens[i]), "%s: \"%s\" is not host:port", listens[i], vals[i]);
	}
	const char *pfx = c->kafka.topic_prefix;
	if (!*pfx || strspn(pfx, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != strlen(pfx))
		cfg_err(e, file, LINE_OF("kafka.topic_prefix"), "kafka.topic_prefix: \"%s\" is not a valid topic name", pfx);
	if (!cfg_roles_valid(c->supervisor.roles))
		cfg_err(e, file, LINE_OF("supervisor.roles"), "supervisor.roles: \"%s\" is not a non-empty subset of ingress worker notifier", c->supervisor.roles);
	const char *sv = c->lifecycle.survey;
	if (strcmp(sv, "nps") != 0 && strcmp(sv, "csat") != 0 && strcmp(sv, "off") != 0)
		cfg_err(e, file, LINE_OF("lifecycle.survey"), "lifecycle.survey: \"%s\" is not nps, csat or off", sv);
	int f1 = c->lifecycle.followup1_after_s, f2 = c->lifecycle.followup2_after_s, ar = c->lifecycle.auto_resolve_after_s;
	if (f1 && f2 && f2 <= f1)
		cfg_err(e, file, LINE_OF("lifecycle.followup2_after_s"),
			"lifecycle.followup2_after_s: %d must be after followup1_after_s (%d)", f2, f1);
	if (ar && ((f1 && ar <= f1) || (f2 && ar <= f2)))
		cfg_err(e, file, LINE_OF("lifecycle.auto_resolve_after_s"),
			"lifecycle.auto_resolve_after_s: %d must be after the follow-ups (%d, %d)", ar, f1, f2);
	if ((f1 && !*c->lifecycle.followup1_text) || (f2 && !*c->lifecycle.followup2_text))
		cfg_err(e, file, LINE_OF("lifecycle.followup1_text"), "lifecycle: a follow-up that is on needs a text");
	for (int i = 0; i < c->n_channels; i++)
		if (!cfg_company_find(c, c->channels[i].company))
			cfg_err(e, file, c->channels[i].line, "channels: company %ld is not in companies", c->channels[i].company);
#undef LINE_OF
}

/* supervisor.roles: words among ingress, worker, notifier, at least one. */
static bool cfg_roles_valid(const char *roles)
{
	char buf[256];
	int n = 0;
	snprintf(buf, sizeof(buf), "%s", roles);
	for (char *save = NULL, *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save), n++)
		if (strcmp(w, "ingress") != 0 && strcmp(w, "worker") != 0 && strcmp(w, "notifier") != 0)
			return false;
	return n > 0;
}

/* Frees a channel's strings and zeroes it. */
static void cfg_channel_clear(cfg_channel_t *ch)
{
	free(ch->name), free(ch->key), free(ch->app_secret), free(ch->verify_token), free(ch->access_token),
		free(ch->url);
	for (int k = 0; k < ch->n_instances; k++)
		free(ch->instances[k].url), free(ch->instances[k].instance), free(ch->instances[k].key);
	free(ch->instances);
	memset(ch, 0, sizeof(*ch));
}
