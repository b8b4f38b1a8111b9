/*
 * db: asynchronous libpq in pipeline mode on a libevent loop (see db.h). The socket is
 * watched for reads always and for writes only while libpq has unsent data; results
 * are matched to queued requests in FIFO order.
 */
#include "db.h"
#include "log.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define DB_MAX_QUEUE 100000
#define DB_MAX_INFLIGHT 64

typedef struct db_req {
	struct db_req *next;
	char *sql;
	int nparams;
	char **params;
	db_result_fn cb;
	void *arg;
	struct timeval sent;
} db_req_t;

typedef enum { DB_DOWN, DB_CONNECTING, DB_UP } db_state_t;

struct db {
	struct event_base *base;
	char *conninfo, *name;
	PGconn *conn;
	db_state_t state;
	PostgresPollingStatusType poll_status;
	struct event *sock_ev, *retry_ev;
	short watching;                          /* the flags sock_ev was made with */
	db_req_t *queue_head, *queue_tail;      /* not yet sent */
	db_req_t *flight_head, *flight_tail;    /* sent, awaiting results */
	PGresult *current;                       /* result of the head in flight, held until its NULL */
	int n_queue, n_flight, backoff_ms;
	double rtt_ms;
};

static void db_start_connect(db_t *db);
static void db_sock_cb(evutil_socket_t fd, short what, void *arg);
static void db_retry_cb(evutil_socket_t fd, short what, void *arg);
static void db_fail(db_t *db, const char *why);
static void db_send_queued(db_t *db);
static void db_read_results(db_t *db);
static void db_watch(db_t *db);
static void db_req_free(db_req_t *r);

db_t *db_new(struct event_base *base, const char *conninfo, const char *name)
{
	db_t *db = xcalloc(1, sizeof(*db));
	db->base = base;
	db->conninfo = xstrdup(conninfo);
	db->name = xstrdup(name);
	db->retry_ev = evtimer_new(base, db_retry_cb, db);
	db->backoff_ms = 100;
	db_start_connect(db);
	return db;
}

bool db_query(db_t *db, const char *sql, int nparams, const char *const *params, db_result_fn cb, void *arg)
{
	if (db->n_queue >= DB_MAX_QUEUE)
		return false;
	db_req_t *r = xcalloc(1, sizeof(*r));
	r->sql = xstrdup(sql);
	r->nparams = nparams;
	r->params = xcalloc((size_t)nparams + 1, sizeof(char *));
	for (int i = 0; i < nparams; i++)
		r->params[i] = params[i] ? xstrdup(params[i]) : NULL;
	r->cb = cb;
	r->arg = arg;
	if (db->queue_tail)
		db->queue_tail->next = r;
	else
		db->queue_head = r;
	db->queue_tail = r;
	db->n_queue++;
	if (db->state == DB_UP) {
		db_send_queued(db);
		/* a large query may not fit the socket at once: watch for writability until
		 * libpq has sent all of it */
		if (db->state == DB_UP)
			db_watch(db);
	}
	return true;
}

bool db_connected(const db_t *db)
{
	return db->state == DB_UP;
}

int db_pending(const db_t *db)
{
	return db->n_queue + db->n_flight;
}

double db_last_rtt_ms(const db_t *db)
{
	return db->rtt_ms;
}

void db_free(db_t *db)
{
	if (!db)
		return;
	if (db->current)
		PQclear(db->current);
	for (db_req_t *lists[2] = {db->flight_head, db->queue_head}, **l = lists; l < lists + 2; l++)
		while (*l) {
			db_req_t *r = *l;
			*l = r->next;
			r->cb(NULL, r->arg);
			db_req_free(r);
		}
	if (db->sock_ev)
		event_free(db->sock_ev);
	event_free(db->retry_ev);
	if (db->conn)
		PQfinish(db->conn);
	free(db->conninfo);
	free(db->name);
	free(db);
}

bool db_ok(const PGresult *res, const char *what)
{
	if (!res) {
		log_warn("db %s: connection lost", what);
		return false;
	}
	ExecStatusType st = PQresultStatus(res);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return true;
	log_error("db %s: %s", what, PQresultErrorMessage(res));
	return false;
}

static void db_start_connect(db_t *db)
{
	db->conn = PQconnectStart(db->conninfo);
	if (!db->conn || PQstatus(db->conn) == CONNECTION_BAD) {
		db_fail(db, db->conn ? PQerrorMessage(db->conn) : "out of memory");
		return;
	}
	db->state = DB_CONNECTING;
	db->poll_status = PGRES_POLLING_WRITING;
	db_watch(db);
}

/* (Re)arms the socket event for what libpq currently waits for. */
static void db_watch(db_t *db)
{
	short what;
	if (db->state == DB_CONNECTING)
		what = db->poll_status == PGRES_POLLING_READING ? EV_READ : EV_WRITE;
	else
		what = EV_READ | (PQflush(db->conn) == 1 ? EV_WRITE : 0);
	/* the socket can change while connecting (libpq retries other addresses) */
	if (db->sock_ev && db->watching == what && event_get_fd(db->sock_ev) == PQsocket(db->conn))
		return;
	if (db->sock_ev)
		event_free(db->sock_ev);
	db->watching = what;
	db->sock_ev = event_new(db->base, PQsocket(db->conn), what | EV_PERSIST, db_sock_cb, db);
	event_add(db->sock_ev, NULL);
}

static void db_sock_cb(evutil_socket_t fd, short what, void *arg)
{
	db_t *db = arg;
	(void)fd;
	if (db->state == DB_CONNECTING) {
		db->poll_status = PQconnectPoll(db->conn);
		if (db->poll_status == PGRES_POLLING_FAILED) {
			db_fail(db, PQerrorMessage(db->conn));
			return;
		}
		if (db->poll_status == PGRES_POLLING_OK) {
			if (PQsetnonblocking(db->conn, 1) != 0 || PQenterPipelineMode(db->conn) != 1) {
				db_fail(db, "cannot enter pipeline mode");
				return;
			}
			db->state = DB_UP;
			db->backoff_ms = 100;
			log_info("db %s: connected", db->name);
			db_send_queued(db);
			if (db->state == DB_UP)
				db_watch(db);
			return;
		}
		db_watch(db);
		return;
	}
	if (what & EV_WRITE) {
		if (PQflush(db->conn) < 0) {
			db_fail(db, PQerrorMessage(db->conn));
			return;
		}
	}
	if (what & EV_READ)
		db_read_results(db);
	if (db->state == DB_UP)
		db_send_queued(db);
	if (db->state == DB_UP)
		db_watch(db);
}

static void db_send_queued(db_t *db)
{
	while (db->queue_head && db->n_flight < DB_MAX_INFLIGHT) {
		db_req_t *r = db->queue_head;
		if (!PQsendQueryParams(db->conn, r->sql, r->nparams, NULL, (const char *const *)r->params, NULL, NULL, 0) ||
		    !PQpipelineSync(db->conn)) {
			db_fail(db, PQerrorMessage(db->conn));
			return;
		}
		gettimeofday(&r->sent, NULL);
		db->queue_head = r->next;
		if (!db->queue_head)
			db->queue_tail = NULL;
		db->n_queue--;
		r->next = NULL;
		if (db->flight_tail)
			db->flight_tail->next = r;
		else
			db->flight_head = r;
		db->flight_tail = r;
		db->n_flight++;
	}
	if (PQflush(db->conn) < 0)
		db_fail(db, PQerrorMessage(db->conn));
}

/* Each request yields: its result(s), NULL, then PIPELINE_SYNC. The first result is
 * kept and handed over at the sync, so multi-result errors still map to one callback. */
static void db_read_results(db_t *db)
{
	if (!PQconsumeInput(db->conn)) {
		db_fail(db, PQerrorMessage(db->conn));
		return;
	}
	while (db->flight_head && !PQisBusy(db->conn)) {
		PGresult *res = PQgetResult(db->conn);
		if (!res)
			continue; /* end of one query's results; its sync follows */
		if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
			PQclear(res);
			db_req_t *r = db->flight_head;
			struct timeval now;
			db->flight_head = r->next;
			if (!db->flight_head)
				db->flight_tail = NULL;
			db->n_flight--;
			gettimeofday(&now, NULL);
			db->rtt_ms = (double)(now.tv_sec - r->sent.tv_sec) * 1000.0 + (double)(now.tv_usec - r->sent.tv_usec) / 1000.0;
			PGresult *mine = db->current;
			db->current = NULL;
			r->cb(mine, r->arg);
			if (mine)
				PQclear(mine);
			db_req_free(r);
			if (db->state != DB_UP)
				return;
			continue;
		}
		if (!db->current)
			db->current = res;
		else
			PQclear(res);
	}
}

/* Connection lost: in-flight requests get NULL (their outcome is unknown), queued ones wait. */
static void db_fail(db_t *db, const char *why)
{
	char msg[512];
	snprintf(msg, sizeof(msg), "%s", why ? why : "unknown error");
	msg[strcspn(msg, "\n")] = 0;
	log_warn("db %s: %s; reconnecting in %d ms", db->name, msg, db->backoff_ms);
	if (db->sock_ev) {
		event_free(db->sock_ev);
		db->sock_ev = NULL;
	}
	if (db->current) {
		PQclear(db->current);
		db->current = NULL;
	}
	if (db->conn) {
		PQfinish(db->conn);
		db->conn = NULL;
	}
	db->state = DB_DOWN;
	while (db->flight_head) {
		db_req_t *r = db->flight_head;
		db->flight_head = r->next;
		db->n_flight--;
		r->cb(NULL, r->arg);
		db_req_free(r);
	}
	db->flight_tail = NULL;
	struct timeval tv = {db->backoff_ms / 1000, (db->backoff_ms % 1000) * 1000};
	evtimer_add(db->retry_ev, &tv);
	db->backoff_ms = db->backoff_ms * 2 > 5000 ? 5000 : db->backoff_ms * 2;
}

static void db_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	db_start_connect(arg);
}

static void db_req_free(db_req_t *r)
{
	for (int i = 0; i < r->nparams; i++)
		free(r->params[i]);
	free(r->params);
	free(r->sql);
	free(r);
}
