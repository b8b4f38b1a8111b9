/*
 * roster: accounts and presence in PostgreSQL for the notifier (see roster.h).
 */
#include "roster.h"
#include "web.h"
#include "api.h"
#include "conn.h"
#include "event.h"
#include "log.h"
#include "notifier.h"
#include "presence.h"
#include "stream.h"
#include "xalloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	long agent;
	bool disabled;
	long password_at; /* Unix seconds (floor) of the last password change, 0 if none */
} roster_entry_t;

static struct {
	roster_entry_t *entries; /* ascending by agent */
	int n;
	bool refreshing;
	struct event *timer;
} R;

static void roster_refresh_cb(evutil_socket_t fd, short what, void *arg);
static void roster_refreshed(PGresult *res, void *arg);
static void roster_joined(PGresult *res, void *arg);
static void roster_done(PGresult *res, void *arg);
static void roster_hand_out(long company);
static void roster_handed_out(PGresult *res, void *arg);
static void roster_collect(long company, const long *agents, const int *tabs, int n, void *arg);
static bool roster_query(const char *sql, int n, const char *const *params, db_result_fn cb, void *arg);
static const roster_entry_t *roster_find(long agent);

void roster_start(void)
{
	R.timer = event_new(N.base, -1, EV_PERSIST, roster_refresh_cb, NULL);
	struct timeval every = {ROSTER_REFRESH_S, 0};
	event_add(R.timer, &every);
	roster_refresh_cb(-1, 0, NULL);
}

void roster_stop(void)
{
	if (R.timer)
		event_free(R.timer);
	R.timer = NULL;
	free(R.entries);
	R.entries = NULL;
	R.n = 0;
}

bool roster_token_ok(const token_claims_t *claims, char *why, size_t whylen)
{
	const roster_entry_t *e = roster_find(claims->agent);
	if (e && e->disabled) {
		snprintf(why, whylen, "agent %ld is disabled", claims->agent);
		return false;
	}
	if (e && claims->iat < e->password_at) {
		snprintf(why, whylen, "token issued before the account's last password change: log in again");
		return false;
	}
	return true;
}

void roster_presence(long company, long agent, bool online)
{
	char a[24], c[24];
	snprintf(a, sizeof(a), "%ld", agent);
	snprintf(c, sizeof(c), "%ld", company);
	if (online) {
		const char *params[3] = {N.instance, a, c};
		roster_query("SELECT atende_presence_join($1, $2::bigint, $3::bigint)", 3, params, roster_joined,
			     (void *)(intptr_t)company);
	} else {
		const char *params[2] = {N.instance, a};
		roster_query("SELECT atende_presence_leave($1, $2::bigint)", 2, params, roster_done, "presence leave");
	}
}

/* The companies and agents this instance holds consoles of, as a heartbeat sees them. */
typedef struct {
	FILE *agents;         /* "{1,2,3}" being written */
	bool first;
	long companies[64];
	int n_companies;
} roster_beat_t;

void roster_heartbeat(void)
{
	char *list = NULL;
	size_t len = 0;
	roster_beat_t b = {.agents = open_memstream(&list, &len), .first = true};
	fputc('{', b.agents);
	presence_local_each(N.presence, roster_collect, &b);
	fputc('}', b.agents);
	fclose(b.agents);
	const char *params[2] = {N.instance, list};
	roster_query("SELECT atende_presence_beat($1, $2::bigint[])", 2, params, roster_done, "presence heartbeat");
	free(list);
	for (int i = 0; i < b.n_companies; i++)
		roster_hand_out(b.companies[i]);
}

static void roster_collect(long company, const long *agents, const int *tabs, int n, void *arg)
{
	roster_beat_t *b = arg;
	(void)tabs;
	for (int i = 0; i < n; i++) {
		fprintf(b->agents, "%s%ld", b->first ? "" : ",", agents[i]);
		b->first = false;
	}
	if (n > 0 && b->n_companies < (int)(sizeof(b->companies) / sizeof(b->companies[0])))
		b->companies[b->n_companies++] = company;
}

static void roster_refresh_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	if (R.refreshing)
		return;
	R.refreshing = roster_query("SELECT id, disabled_at IS NOT NULL, "
				    "coalesce(floor(extract(epoch FROM password_at)), 0)::bigint FROM agents "
				    "WHERE disabled_at IS NOT NULL OR password_at IS NOT NULL ORDER BY id",
				    0, NULL, roster_refreshed, NULL);
}

/* The new list replaces the old one; consoles of agents it now refuses are closed. */
static void roster_refreshed(PGresult *res, void *arg)
{
	(void)arg;
	R.refreshing = false;
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		if (res)
			log_error("roster: %s", PQresultErrorMessage(res));
		return; /* the last list stays */
	}
	int n = PQntuples(res);
	roster_entry_t *e = xcalloc((size_t)n + 1, sizeof(*e));
	for (int i = 0; i < n; i++)
		e[i] = (roster_entry_t){.agent = atol(PQgetvalue(res, i, 0)), .disabled = PQgetvalue(res, i, 1)[0] == 't',
					.password_at = atol(PQgetvalue(res, i, 2))};
	free(R.entries);
	R.entries = e;
	R.n = n;
	web_sweep_tokens();
}

static void roster_joined(PGresult *res, void *arg)
{
	long company = (long)(intptr_t)arg;
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		roster_done(res, "presence join");
		return;
	}
	if (PQgetvalue(res, 0, 0)[0] == 't')
		roster_hand_out(company); /* came online: there may be room for the queue now */
}

static void roster_done(PGresult *res, void *arg)
{
	if (res && PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
		log_error("roster %s: %s", (const char *)arg, PQresultErrorMessage(res));
}

static void roster_hand_out(long company)
{
	char c[24];
	snprintf(c, sizeof(c), "%ld", company);
	const char *params[1] = {c};
	roster_query("SELECT conversation_id, agent_id, domain, channel, customer, waited_ms, at "
		     "FROM atende_assign_waiting($1::bigint)",
		     1, params, roster_handed_out, (void *)(intptr_t)company);
}

/* Each conversation taken out of the queue: an assignment event to its new agent. */
static void roster_handed_out(PGresult *res, void *arg)
{
	long company = (long)(intptr_t)arg;
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		roster_done(res, "queue hand-out");
		return;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		char key[200];
		int64_t conversation = atoll(PQgetvalue(res, i, 0)), agent = atoll(PQgetvalue(res, i, 1));
		snprintf(key, sizeof(key), "%s:%s", PQgetvalue(res, i, 3), PQgetvalue(res, i, 4));
		evt_route_t route = {.company = company, .conversation = conversation, .agent = agent};
		evt_assignment_t a = {.conversation_id = conversation, .conversation_key = key, .company_id = company,
				      .channel = PQgetvalue(res, i, 3), .customer = PQgetvalue(res, i, 4),
				      .to_agent = agent, .agent_id = agent, .domain = PQgetvalue(res, i, 2),
				      .at = PQgetvalue(res, i, 6), .created_at = PQgetvalue(res, i, 6), .reason = "queue",
				      .waited_ms = atoll(PQgetvalue(res, i, 5))};
		stream_publish(company, "assignment", evt_assignment(&route, &a, NULL));
		log_info("queue: conversation %lld to agent %lld after %s ms", (long long)conversation, (long long)agent,
			 PQgetvalue(res, i, 5));
	}
}

static bool roster_query(const char *sql, int n, const char *const *params, db_result_fn cb, void *arg)
{
	db_t *db = api_db_pick();
	return db && db_query(db, sql, n, params, cb, arg);
}

static const roster_entry_t *roster_find(long agent)
{
	int lo = 0, hi = R.n - 1;
	while (lo <= hi) {
		int mid = (lo + hi) / 2;
		if (R.entries[mid].agent == agent)
			return &R.entries[mid];
		if (R.entries[mid].agent < agent)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}
