/*
 * login: password logins for the consoles (see login.h). The loop parses, throttles and
 * looks the account up; the hashing thread only compares a password with a hash; the loop
 * answers. Jobs cross between them on two lists under one mutex, and a pipe wakes the loop.
 */
#include "login.h"
#include "api.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "notifier.h"
#include "passwd.h"
#include "token.h"
#include "xalloc.h"

#include <cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOGIN_SLOTS 1024 /* failure counters kept (logins and addresses); the oldest give way */

typedef struct login_job {
	struct login_job *next;
	http_request_t *req;
	char login[128], peer[64];
	char *password;              /* wiped and freed by the thread once checked */
	char hash[PASSWD_HASH_MAX];  /* the account's, or a dummy one so an unknown login costs the same */
	long agent, company;
	char role[16];
	bool found, disabled, ok;
	struct event *delay;         /* a failure's answer, held back */
	struct login_job *prev_delayed, *next_delayed;
} login_job_t;

typedef struct {
	char key[140];               /* "l:<login, lower case>" or "a:<address>" */
	int failures;
	time_t since;
} login_slot_t;

static struct {
	pthread_t thread;
	bool running, stopping;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	login_job_t *todo, *todo_tail, *done; /* under lock */
	login_job_t *delayed;        /* failures whose 401 is held back (loop only) */
	int queued;                  /* todo's length */
	int pipe[2];
	struct event *pipe_ev;
	char dummy_hash[PASSWD_HASH_MAX];
	login_slot_t slots[LOGIN_SLOTS];
	unsigned long long ok, failed, throttled, refused_disabled;
} L = {.pipe = {-1, -1}};

static void *login_thread(void *arg);
static void login_done_cb(evutil_socket_t fd, short what, void *arg);
static void login_looked_up(PGresult *res, void *arg);
static void login_answer(login_job_t *j);
static void login_fail_cb(evutil_socket_t fd, short what, void *arg);
static login_slot_t *login_slot(const char *key, bool create);
static int login_retry_after(const char *key);
static void login_count_failure(const char *key);
static void login_key(char *out, size_t len, char kind, const char *value);
static void login_job_free(login_job_t *j);

bool login_start(void)
{
	char err[160];
	/* an unknown login is checked against this, so it takes as long as a known one */
	if (!passwd_hash("atende: no such account", L.dummy_hash, sizeof(L.dummy_hash), err, sizeof(err))) {
		log_error("login: %s", err);
		return false;
	}
	if (pipe2(L.pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
		log_error("login: pipe: %s", strerror(errno));
		return false;
	}
	pthread_mutex_init(&L.lock, NULL);
	pthread_cond_init(&L.wake, NULL);
	L.pipe_ev = event_new(N.base, L.pipe[0], EV_READ | EV_PERSIST, login_done_cb, NULL);
	event_add(L.pipe_ev, NULL);
	if (pthread_create(&L.thread, NULL, login_thread, NULL) != 0) {
		log_error("login: cannot start the hashing thread");
		return false;
	}
	L.running = true;
	return true;
}

void login_stop(void)
{
	if (L.running) {
		pthread_mutex_lock(&L.lock);
		L.stopping = true;
		pthread_cond_signal(&L.wake);
		pthread_mutex_unlock(&L.lock);
		pthread_join(L.thread, NULL);
		L.running = false;
	}
	/* what the thread finished is answered as usual; what it never took gets 503 */
	login_done_cb(-1, 0, NULL);
	for (login_job_t *j = L.todo, *next; j; j = next) {
		next = j->next;
		http_respond_error(j->req, 503, "shutting down");
		login_job_free(j);
	}
	L.todo = L.todo_tail = NULL;
	while (L.delayed)
		login_fail_cb(-1, 0, L.delayed);
	if (L.pipe_ev)
		event_free(L.pipe_ev);
	L.pipe_ev = NULL;
	for (int i = 0; i < 2; i++)
		if (L.pipe[i] >= 0)
			close(L.pipe[i]);
	L.pipe[0] = L.pipe[1] = -1;
}

void login_handle(http_request_t *req)
{
	size_t len;
	char akey[140], lkey[140];
	if (strcmp(http_request_method(req), "POST") != 0) {
		http_response_add_header(req, "Allow", "POST");
		http_respond_error(req, 405, "use POST");
		return;
	}
	const char *body = http_request_body(req, &len);
	cJSON *msg = cJSON_ParseWithLength(body, len);
	const char *login = json_str(msg, "login"), *password = json_str(msg, "password");
	if (!cJSON_IsObject(msg) || !login || !password || !*login || strlen(login) >= sizeof(((login_job_t *)0)->login) ||
	    strlen(password) > PASSWD_MAX_BYTES) {
		cJSON_Delete(msg);
		http_respond_error(req, 400, "the body must be JSON {\"login\": \"...\", \"password\": \"...\"}");
		return;
	}
	login_job_t *j = xcalloc(1, sizeof(*j));
	j->req = req;
	snprintf(j->login, sizeof(j->login), "%s", login);
	const char *peer = http_request_peer(req);
	size_t host = strrchr(peer, ':') ? (size_t)(strrchr(peer, ':') - peer) : strlen(peer);
	snprintf(j->peer, sizeof(j->peer), "%.*s", (int)host, peer);
	j->password = xstrdup(password);
	explicit_bzero((char *)password, strlen(password)); /* cJSON's copy */
	cJSON_Delete(msg);

	login_key(lkey, sizeof(lkey), 'l', j->login);
	login_key(akey, sizeof(akey), 'a', j->peer);
	int wait = login_retry_after(lkey) > login_retry_after(akey) ? login_retry_after(lkey) : login_retry_after(akey);
	if (wait > 0) {
		char secs[16];
		L.throttled++;
		snprintf(secs, sizeof(secs), "%d", wait);
		http_response_add_header(req, "Retry-After", secs);
		http_respond_error(req, 429, "too many failed logins: try again later");
		login_job_free(j);
		return;
	}
	db_t *db = api_db_pick();
	const char *params[1] = {j->login};
	if (!db || !db_query(db,
			     "SELECT id, company_id, role, password_hash, disabled_at IS NOT NULL FROM agents "
			     "WHERE lower(login) = lower($1) AND password_hash IS NOT NULL",
			     1, params, login_looked_up, j)) {
		http_response_add_header(req, "Retry-After", "2");
		http_respond_error(req, 503, "database unreachable");
		login_job_free(j);
	}
}

/* The account (or none): to the hashing thread, whatever was found, so that the answer
 * takes the same time either way. */
static void login_looked_up(PGresult *res, void *arg)
{
	login_job_t *j = arg;
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		if (res)
			log_error("login: %s", PQresultErrorMessage(res));
		http_response_add_header(j->req, "Retry-After", "2");
		http_respond_error(j->req, 503, "database unreachable");
		login_job_free(j);
		return;
	}
	j->found = PQntuples(res) == 1;
	snprintf(j->hash, sizeof(j->hash), "%s", j->found ? PQgetvalue(res, 0, 3) : L.dummy_hash);
	if (j->found) {
		j->agent = atol(PQgetvalue(res, 0, 0));
		j->company = atol(PQgetvalue(res, 0, 1));
		snprintf(j->role, sizeof(j->role), "%s", PQgetvalue(res, 0, 2));
		j->disabled = PQgetvalue(res, 0, 4)[0] == 't';
	}
	pthread_mutex_lock(&L.lock);
	bool full = L.queued >= LOGIN_QUEUE_MAX || !L.running;
	if (!full) {
		if (L.todo_tail)
			L.todo_tail->next = j;
		else
			L.todo = j;
		L.todo_tail = j;
		L.queued++;
		pthread_cond_signal(&L.wake);
	}
	pthread_mutex_unlock(&L.lock);
	if (full) {
		http_response_add_header(j->req, "Retry-After", "1");
		http_respond_error(j->req, 503, "too many logins at once: try again in a second");
		login_job_free(j);
	}
}

/* The hashing thread: takes a job, compares, wipes the password, hands the job back. It
 * touches nothing but the job and the two lists. */
static void *login_thread(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&L.lock);
	for (;;) {
		while (!L.todo && !L.stopping)
			pthread_cond_wait(&L.wake, &L.lock);
		if (L.stopping)
			break;
		login_job_t *j = L.todo;
		L.todo = j->next;
		if (!L.todo)
			L.todo_tail = NULL;
		L.queued--;
		pthread_mutex_unlock(&L.lock);

		j->ok = passwd_verify(j->password, j->hash) && j->found;
		explicit_bzero(j->password, strlen(j->password));

		pthread_mutex_lock(&L.lock);
		j->next = L.done;
		L.done = j;
		char one = 1;
		if (write(L.pipe[1], &one, 1) < 0 && errno != EAGAIN)
			log_error("login: wake the loop: %s", strerror(errno)); /* the next job's write wakes it */
	}
	pthread_mutex_unlock(&L.lock);
	return NULL;
}

static void login_done_cb(evutil_socket_t fd, short what, void *arg)
{
	char drain[64];
	(void)what, (void)arg;
	while (fd >= 0 && read(fd, drain, sizeof(drain)) > 0)
		;
	pthread_mutex_lock(&L.lock);
	login_job_t *done = L.done;
	L.done = NULL;
	pthread_mutex_unlock(&L.lock);
	while (done) {
		login_job_t *j = done;
		done = j->next;
		login_answer(j);
	}
}

static void login_answer(login_job_t *j)
{
	char lkey[140], akey[140];
	if (!j->ok) {
		login_key(lkey, sizeof(lkey), 'l', j->login);
		login_key(akey, sizeof(akey), 'a', j->peer);
		login_count_failure(lkey);
		login_count_failure(akey);
		L.failed++;
		log_info("login: failed for \"%s\" from %s", j->login, j->peer);
		j->next_delayed = L.delayed;
		if (L.delayed)
			L.delayed->prev_delayed = j;
		L.delayed = j;
		j->delay = evtimer_new(N.base, login_fail_cb, j);
		struct timeval tv = {LOGIN_FAIL_DELAY_MS / 1000, (LOGIN_FAIL_DELAY_MS % 1000) * 1000};
		evtimer_add(j->delay, &tv);
		return;
	}
	if (j->disabled) {
		L.refused_disabled++;
		http_respond_error(j->req, 403, "this account is disabled");
		login_job_free(j);
		return;
	}
	token_claims_t claims = {.agent = j->agent, .company = j->company, .iat = (long)time(NULL)};
	snprintf(claims.role, sizeof(claims.role), "%s", j->role);
	claims.exp = claims.iat + token_parse_ttl(N.cfg.auth.default_ttl);
	char *token = token_sign(N.cfg.auth.token_secret, &claims);
	json_out_t o;
	size_t len;
	json_out_begin(&o);
	json_out_str(&o, "token", token);
	json_out_num(&o, "agent", (double)j->agent);
	json_out_num(&o, "company", (double)j->company);
	json_out_str(&o, "role", j->role);
	char *body = json_out_finish(&o, &len);
	http_respond(j->req, 200, "application/json", body, len);
	L.ok++;
	log_info("login: agent %ld of company %ld (%s) from %s", j->agent, j->company, j->role, j->peer);
	free(body);
	free(token);
	login_job_free(j);
}

static void login_fail_cb(evutil_socket_t fd, short what, void *arg)
{
	login_job_t *j = arg;
	(void)fd, (void)what;
	if (j->prev_delayed)
		j->prev_delayed->next_delayed = j->next_delayed;
	else
		L.delayed = j->next_delayed;
	if (j->next_delayed)
		j->next_delayed->prev_delayed = j->prev_delayed;
	http_respond_error(j->req, 401, "wrong login or password");
	login_job_free(j);
}

void login_metrics_refresh(void)
{
	metrics_family_t *f = metrics_family("atende_notifier_logins_total", METRICS_COUNTER,
					     "Password logins by result (ok, failed, throttled: 429, disabled).", NULL, 0);
	metrics_set(metrics_series(f, "result=\"ok\""), (double)L.ok);
	metrics_set(metrics_series(f, "result=\"failed\""), (double)L.failed);
	metrics_set(metrics_series(f, "result=\"throttled\""), (double)L.throttled);
	metrics_set(metrics_series(f, "result=\"disabled\""), (double)L.refused_disabled);
}

/* ---------------------------------------------------------------- failure counters */

static void login_key(char *out, size_t len, char kind, const char *value)
{
	size_t n = (size_t)snprintf(out, len, "%c:%s", kind, value);
	for (size_t i = 2; i < n && i < len; i++)
		out[i] = (char)tolower((unsigned char)out[i]);
}

/* The slot of key, or (create) a free or expired one, else the one counting longest. */
static login_slot_t *login_slot(const char *key, bool create)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const char *p = key; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	time_t now = time(NULL);
	login_slot_t *free_slot = NULL, *oldest = NULL;
	for (int probe = 0; probe < 8; probe++) {
		login_slot_t *s = &L.slots[(h + (uint32_t)probe) % LOGIN_SLOTS];
		bool live = s->key[0] && now - s->since < LOGIN_WINDOW_S;
		if (live && strcmp(s->key, key) == 0)
			return s;
		if (!live && !free_slot)
			free_slot = s;
		else if (live && (!oldest || s->since < oldest->since))
			oldest = s;
	}
	if (!create)
		return NULL;
	login_slot_t *spare = free_slot ? free_slot : oldest;
	snprintf(spare->key, sizeof(spare->key), "%s", key);
	spare->failures = 0;
	spare->since = now;
	return spare;
}

static int login_retry_after(const char *key)
{
	login_slot_t *s = login_slot(key, false);
	return s && s->failures >= LOGIN_MAX_FAILURES ? (int)(s->since + LOGIN_WINDOW_S - time(NULL)) : 0;
}

static void login_count_failure(const char *key)
{
	login_slot(key, true)->failures++;
}

static void login_job_free(login_job_t *j)
{
	if (j->delay)
		event_free(j->delay);
	if (j->password) {
		explicit_bzero(j->password, strlen(j->password));
		free(j->password);
	}
	explicit_bzero(j->hash, sizeof(j->hash));
	free(j);
}
