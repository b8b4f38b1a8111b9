/*
 * config: one declarative table of every configuration key (type, default, range,
 * reloadable flag, one-line doc) drives parsing, defaults, validation, check-config
 * and the documentation test. Channels and companies are lists parsed beside it.
 */
#ifndef ATENDE_CONFIG_H
#define ATENDE_CONFIG_H

#include "hours.h"

#include <stdbool.h>
#include <stddef.h>

#define CFG_MAX_DOMAINS 5
extern const char *const cfg_domains[CFG_MAX_DOMAINS]; /* financeiro comercial suporte ouvidoria cancelamento */
/* The topics besides the domains' (cfg_topic suffixes): events, outbound, dlq, and typing
 * (the typing events of atende.events again, for the workers: a small topic to read). */
#define CFG_N_OTHER_TOPICS 4
extern const char *const cfg_other_topics[CFG_N_OTHER_TOPICS];

typedef enum { CHAN_EVOLUTION, CHAN_CLOUD, CHAN_API } cfg_channel_type_t;

#define CFG_MAX_INSTANCES 16 /* gateway instances of one channel at most */

/* One gateway instance of a channel: a base URL replies go to, with its share of them.
 * instance/key (Evolution only) name the Evolution instance and apikey on that server when
 * they differ from the channel's; NULL = the channel's. */
typedef struct {
	char *url;           /* base URL (as the channel's url) */
	char *instance;      /* evolution: instance name on this server; NULL = the channel's */
	char *key;           /* evolution: apikey on this server; NULL = the channel's */
	int weight;          /* 1..100: its share of the sends among the channel's healthy instances */
	int line;            /* line in the config file, for errors */
} cfg_instance_t;

/* One gateway channel: where messages come from and which company/domain owns them. */
typedef struct {
	cfg_channel_type_t type;
	char *name;          /* evolution instance, cloud phone_number_id, or api channel name */
	char *key;           /* evolution apikey, or api bearer key */
	char *app_secret;    /* cloud: X-Hub-Signature-256 secret */
	char *verify_token;  /* cloud: GET verification token */
	char *access_token;  /* cloud: outbound bearer token */
	char *url;           /* outbound gateway base URL (the single-instance form) */
	cfg_instance_t *instances; /* where replies go: instances = (...), or url as one of weight 1;
				      empty = none configured (cloud: graph.facebook.com) */
	int n_instances;
	long company;
	int domain;          /* index into cfg_domains */
	int line;            /* line in the config file, for errors */
} cfg_channel_t;

/* A pool of workers: its own consumer group over some domains' topics, so one domain's
 * backlog never starves another's. Without a pools list, one pool "main" holds every
 * domain with workers.count workers. */
typedef struct {
	char *name;
	bool domains[CFG_MAX_DOMAINS];
	int count;
	int priority;        /* nice value of its processes (-20..19; below 0 needs root) */
	int line;
} cfg_pool_t;

/* A company and the range of agent ids that work for it. */
typedef struct {
	long id;
	char *name;
	long agent_first, agent_last;
	bool bot_domains[CFG_MAX_DOMAINS]; /* bot mode on for these domains (worker/bot.c) */
	char *hours;         /* business hours as written ("mon-fri 08:00-18:00"); NULL = always */
	char *timezone;      /* IANA zone of hours; NULL = UTC */
	hours_t open_hours;  /* hours, parsed */
} cfg_company_t;

typedef struct {
	char *data_dir;
	struct { char *level, *format; } log;
	struct {
		char *listen;
		int max_body_bytes, max_header_bytes, max_connections;
		int request_timeout_ms, idle_timeout_ms, ack_timeout_ms, retry_after_s;
		int max_partition_backlog_bytes, dedup_window, linger_ms;
	} ingress;
	struct {
		char *listen, *console_dir, *allowed_origins;
		int ping_interval_s, max_connections, history_events, max_send_buffer;
		int typing_ttl_s, slow_consumer_ms, max_connections_per_token, ops_per_second, presence_heartbeat_s;
		int poll_timeout_s, socket_send_buffer;
		int db_connections, statement_timeout_ms; /* the conversation API's PostgreSQL */
	} notifier;
	struct { char *listen; bool on_public_ports; int business_interval_s; } metrics;
	struct {
		char *brokers, *properties, *topic_prefix, *group;
		int embedded_port, embedded_orphan_keep_s, partitions, session_timeout_ms, fetch_wait_max_ms;
		int embedded_fetch_wait_max_ms, embedded_fetch_coalesce_ms;
		bool embedded_patched;
	} kafka;
	struct { char *conninfo, *admin_conninfo, *user, *bin_dir; int embedded_port, priority; } postgres;
	struct { int count, batch_size, batch_wait_ms, retries, priority, stall_s; } workers;
	struct { bool enabled; int min_message_length, delay_ms; char *critical_patterns; } coaching;
	struct { int agent_interval_s, analyses_per_minute, pending_analyses; double cost_per_hour_usd, cost_per_day_usd; } limits;
	struct { int max_wait_ms; } buffer;
	struct { bool enabled; double similarity_threshold; int ttl_s, memory_entries; } cache;
	struct { bool confident; double min_confidence; int max_chars; double shadow_share; } route; /* ai.route_*, ai.shadow_share */
	struct { char *model; double threshold; int ring, timeout_ms, price; } emb; /* ai.embeddings_*, ai.price_embeddings */
	struct { char *provider, *base_url, *api_key, *model, *model_large, *prompts_dir; char *transcription_model; int price_transcription_minute; int timeout_ms, large_min_chars, large_min_words, max_retries, retry_base_ms, deadline_ms, max_in_flight, history_messages, history_max_tokens, price_small_in, price_small_out, price_large_in, price_large_out, breaker_window_s, breaker_min_calls, breaker_error_pct, breaker_open_s; bool large_when_critical, stream, vision; } ai;
	struct { int timeout_ms, retries, retry_base_ms, breaker_window_s, breaker_min_calls, breaker_error_pct, breaker_open_s, health_interval_s, health_timeout_ms; } outbound;
	struct {
		bool enabled;
		int tick_ms, batch, followup1_after_s, followup2_after_s, auto_resolve_after_s, survey_window_s;
		char *followup1_text, *followup2_text, *survey, *survey_nps_text, *survey_csat_text;
	} lifecycle;
	struct { int max_turns; char *name, *handoff_phrases, *handoff_message, *after_hours_message; } bot;
	struct { char *token_secret, *previous_token_secret, *default_ttl; } auth;
	struct { int backoff_initial_ms, backoff_max_ms, healthy_after_s, shutdown_timeout_s; char *roles; } supervisor;
	struct { int keep_days, weeks_ahead, interval_s, dedup_days; char *archive_dir; } retention;
	struct { char *dir; int max_audio_bytes, max_image_bytes, max_video_bytes, max_document_bytes, inline_max_bytes, fetch_timeout_ms, fetch_retries, fetch_retry_base_ms, max_upload_bytes; } media;

	cfg_channel_t *channels;
	int n_channels;
	cfg_company_t *companies;
	int n_companies;
	cfg_pool_t *pools;  /* never empty after cfg_load */
	int n_pools;
	char *path; /* the file this was loaded from */
} cfg_t;

typedef enum { CFG_INT, CFG_BOOL, CFG_STRING, CFG_DOUBLE } cfg_type_t;

/* One row of the key table. */
typedef struct {
	const char *name;   /* dotted path, e.g. "ingress.listen" */
	cfg_type_t type;
	size_t offset;      /* into cfg_t */
	const char *def;    /* default, as text */
	long min, max;      /* CFG_INT range */
	bool reloadable;    /* takes effect on SIGHUP without restart */
	const char *doc;
} cfg_key_t;

extern const cfg_key_t cfg_keys[];
extern const size_t cfg_n_keys;

/* Loads path into *out (zeroed first). On error returns false and writes every
 * problem as "file:line: what" lines into err (newline separated). */
bool cfg_load(const char *path, cfg_t *out, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Frees the strings and lists owned by c (not c itself). */
void cfg_free(cfg_t *c);

/* Copies the reloadable keys and the channel/company lists from src into dst;
 * src's moved lists become dst's (src's are emptied). Used after a scratch load. */
void cfg_apply_reload(cfg_t *dst, cfg_t *src);

/* Lookups; NULL when absent. An Evolution channel is also found by the instance name one of
 * its instances has on its own server (webhooks from that server carry it). */
const cfg_channel_t *cfg_channel_find(const cfg_t *c, cfg_channel_type_t type, const char *name);
/* The apikey a webhook of an Evolution channel found by name must carry: that instance's key
 * when name is one of its instances' own names with one, otherwise the channel's key. */
const char *cfg_channel_key(const cfg_channel_t *ch, const char *name);
const cfg_company_t *cfg_company_find(const cfg_t *c, long id);
const cfg_pool_t *cfg_pool_find(const cfg_t *c, const char *name);
/* The pool whose workers consume a domain (every domain has one after cfg_load). */
const cfg_pool_t *cfg_pool_of_domain(const cfg_t *c, int domain);
/* A pool's consumer group: kafka.group for the implicit pool, <kafka.group>-<name> otherwise. */
const char *cfg_pool_group(const cfg_t *c, const cfg_pool_t *p, char *buf, size_t len);

/* Index of a domain name, -1 if unknown. */
int cfg_domain_index(const char *name);

/* Prints the key table as documentation (name, type, default, range, reload, doc). */
void cfg_print_docs(void);

/* Whether supervisor.roles names role ("ingress", "worker", "notifier"). */
/* The consumers' fetch wait: kafka.embedded_fetch_wait_max_ms when the supervisor said that the
 * embedded broker ends a waiting fetch when data arrives (PROC_ENV_BROKER_WAKES, the patched
 * librdkafka), else kafka.fetch_wait_max_ms (a stock embedded broker holds an empty fetch for the
 * whole wait, so the wait is the delivery latency). */
int cfg_fetch_wait_ms(const cfg_t *c);
bool cfg_has_role(const cfg_t *c, const char *role);

/* Topic name for a domain's inbound stream ("atende.inbound.suporte"), or for one of
 * cfg_other_topics ("atende.events"). Writes into buf. */
const char *cfg_topic(const cfg_t *c, const char *suffix, char *buf, size_t len);

/* The partitions a topic is created with: kafka.partitions, but one for typing (agents type
 * at human speed; every worker reads all of it, and each partition costs every fetch). */
int cfg_topic_partitions(const cfg_t *c, const char *suffix);

/* Absolute path under data_dir ("var/run"); writes into buf. */
const char *cfg_data_path(const cfg_t *c, const char *sub, char *buf, size_t len);

/* The media store's folder: media.dir, under data_dir when relative. Returns buf. */
const char *cfg_media_root(const cfg_t *c, char *buf, size_t len);

#endif
