/*
 * presence: who is online, per company, as pure state (no I/O, the caller's clock). Two
 * halves: the tabs this notifier instance holds, counted per agent (closing one of two
 * tabs changes nothing), and the union over every instance, rebuilt from the presence
 * messages all instances publish to atende.events and read back in the same order. An
 * agent is online while any instance reports tabs for it; the entries of an instance whose
 * heartbeats stop are reported stale so a live instance can publish their expiry.
 */
#ifndef ATENDE_PRESENCE_H
#define ATENDE_PRESENCE_H

#include <stdbool.h>

#define PRESENCE_INSTANCE_MAX 64 /* longest instance id, with its NUL */

typedef struct presence presence_t;

presence_t *presence_new(void);
void presence_free(presence_t *p);

/* ---- this instance's tabs ---- */

/* Counts one more (join) or one less (leave) tab of agent; returns the agent's local tab
 * count after the change (1 after a join: it just came online here; 0 after a leave: it
 * just went offline here). A leave of an agent with no tabs returns -1 and changes nothing. */
int presence_local_join(presence_t *p, long company, long agent);
int presence_local_leave(presence_t *p, long company, long agent);
int presence_local_tabs(const presence_t *p, long company, long agent);

/* Calls fn once per company where this instance holds tabs, with its agents (ascending) and
 * their tab counts: what a heartbeat carries. The arrays are valid during the call. */
typedef void (*presence_company_fn)(long company, const long *agents, const int *tabs, int n, void *arg);
void presence_local_each(const presence_t *p, presence_company_fn fn, void *arg);

/* ---- the union over instances, fed from the log ---- */

/* A change of an agent's union status; fn may be NULL where a change is not wanted. */
typedef void (*presence_change_fn)(long company, long agent, bool online, void *arg);

/* instance reports tabs (0 = none) for agent at ts_ms (the message's time). */
void presence_report(presence_t *p, long company, long agent, const char *instance, int tabs, long long ts_ms,
		     presence_change_fn fn, void *arg);

/* instance's full state for company at ts_ms (a heartbeat): the agents listed get their tab
 * counts and a fresh ts, that instance's other entries in company are removed. */
void presence_snapshot(presence_t *p, long company, const char *instance, const long *agents, const int *tabs, int n,
		       long long ts_ms, presence_change_fn fn, void *arg);

/* Removes instance's entry for agent if it was last refreshed at or before last_seen_ms
 * (an entry refreshed since, by a heartbeat that raced the expiry, stays). */
void presence_expire(presence_t *p, long company, long agent, const char *instance, long long last_seen_ms,
		     presence_change_fn fn, void *arg);

/* Calls fn once for every entry of another instance than self not refreshed since
 * now_ms - max_age_ms (not again until it is refreshed): the caller publishes its expiry. */
typedef void (*presence_stale_fn)(long company, long agent, const char *instance, long long last_seen_ms, void *arg);
void presence_stale(presence_t *p, const char *self, long long now_ms, long long max_age_ms, presence_stale_fn fn,
		    void *arg);

bool presence_online(const presence_t *p, long company, long agent);

/* Writes the online agents of company in ascending order into out (at most cap) and returns
 * how many are online (may exceed cap). */
int presence_list(const presence_t *p, long company, long *out, int cap);

#endif
