/*
 * agents: agent accounts from the command line (see agents.h). Every change is one
 * statement, so two operators at once cannot leave an account half-made; a duplicate
 * login is caught by the unique index even when the friendly check before it raced.
 */
#include "agents.h"
#include "passwd.h"
#include "pgsync.h"
#include "xalloc.h"

#include <cJSON.h>
#include <ctype.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define AGENTS_DEFAULT_MAX_OPEN 10

static bool agents_parse_long(const char *s, long min, long max, long *out);
static bool agents_parse_domains(const char *list, char *out, size_t outlen, char *err, size_t errlen);
static bool agents_login_ok(const char *login);
static bool agents_read_password(FILE *in, char *out, size_t outlen, char *err, size_t errlen);
static bool agents_new_hash(FILE *in, char *hash, size_t hashlen);
static PGresult *agents_exec(PGconn *pg, const char *sql, int n, const char *const *params);
static int agents_add(PGconn *pg, const agents_opts_t *o, FILE *in);
static int agents_passwd(PGconn *pg, const agents_opts_t *o, FILE *in);
static int agents_disable(PGconn *pg, const agents_opts_t *o);
static int agents_list(PGconn *pg, const agents_opts_t *o);
static void agents_who(const agents_opts_t *o, char *out, size_t outlen);

bool agents_parse_args(int argc, char **argv, agents_opts_t *o, char *err, size_t errlen)
{
	memset(o, 0, sizeof(*o));
	o->role = "agent";
	o->max_open = AGENTS_DEFAULT_MAX_OPEN;
	snprintf(o->domains, sizeof(o->domains), "{}");
	const char *sub = argc > 1 ? argv[1] : "";
	if (strcmp(sub, "add") == 0)
		o->cmd = AGENTS_ADD;
	else if (strcmp(sub, "passwd") == 0)
		o->cmd = AGENTS_PASSWD;
	else if (strcmp(sub, "disable") == 0)
		o->cmd = AGENTS_DISABLE;
	else if (strcmp(sub, "list") == 0)
		o->cmd = AGENTS_LIST;
	else {
		snprintf(err, errlen, "expected add, passwd, disable or list (atende agent --help)");
		return false;
	}
	bool has_role = false, has_domains = false, has_max = false;
	for (int i = 2; i < argc; i++) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(k, "--json") == 0) {
			o->json = true;
			continue;
		}
		if (strcmp(k, "-c") != 0 && strcmp(k, "--company") != 0 && strcmp(k, "--agent") != 0 &&
		    strcmp(k, "--login") != 0 && strcmp(k, "--name") != 0 && strcmp(k, "--role") != 0 &&
		    strcmp(k, "--domains") != 0 && strcmp(k, "--max-open") != 0) {
			snprintf(err, errlen, "unknown option \"%s\" for agent %s", k, sub);
			return false;
		}
		if (!v) {
			snprintf(err, errlen, "%s needs a value", k);
			return false;
		}
		i++;
		long n;
		if (strcmp(k, "--company") == 0) {
			if (!agents_parse_long(v, 1, 1L << 53, &n)) {
				snprintf(err, errlen, "--company must be a positive integer, not \"%s\"", v);
				return false;
			}
			o->company = n;
		} else if (strcmp(k, "--agent") == 0) {
			if (!agents_parse_long(v, 1, 1L << 53, &n)) {
				snprintf(err, errlen, "--agent must be a positive integer, not \"%s\"", v);
				return false;
			}
			o->agent = n;
		} else if (strcmp(k, "--login") == 0) {
			if (!agents_login_ok(v)) {
				snprintf(err, errlen, "--login \"%.64s\" must be 1 to 64 of letters, digits and . _ @ -", v);
				return false;
			}
			o->login = v;
		} else if (strcmp(k, "--name") == 0) {
			if (!v[0] || strlen(v) > 200) {
				snprintf(err, errlen, "--name must be 1 to 200 bytes");
				return false;
			}
			o->name = v;
		} else if (strcmp(k, "--role") == 0) {
			if (strcmp(v, "agent") != 0 && strcmp(v, "supervisor") != 0) {
				snprintf(err, errlen, "--role must be agent or supervisor, not \"%s\"", v);
				return false;
			}
			o->role = v;
			has_role = true;
		} else if (strcmp(k, "--domains") == 0) {
			if (!agents_parse_domains(v, o->domains, sizeof(o->domains), err, errlen))
				return false;
			has_domains = true;
		} else if (strcmp(k, "--max-open") == 0) {
			if (!agents_parse_long(v, 1, 10000, &n)) {
				snprintf(err, errlen, "--max-open must be an integer from 1 to 10000, not \"%s\"", v);
				return false;
			}
			o->max_open = (int)n;
			has_max = true;
		}
	}
	switch (o->cmd) {
	case AGENTS_ADD:
		if (!o->company || !o->agent || !o->login || !o->name) {
			snprintf(err, errlen, "agent add needs --company, --agent, --login and --name");
			return false;
		}
		return true;
	case AGENTS_PASSWD:
	case AGENTS_DISABLE:
		if (!o->login == !o->agent) {
			snprintf(err, errlen, "agent %s needs --login L or --agent A (one of them)", sub);
			return false;
		}
		break;
	case AGENTS_LIST:
		if (o->agent || o->login) {
			snprintf(err, errlen, "agent list takes --company C and --json only");
			return false;
		}
		break;
	}
	if (o->cmd != AGENTS_LIST && o->company) {
		snprintf(err, errlen, "agent %s does not take --company (logins and agent ids are unique)", sub);
		return false;
	}
	if (o->cmd != AGENTS_ADD && (has_role || has_domains || has_max || o->name)) {
		snprintf(err, errlen, "agent %s does not take --name, --role, --domains or --max-open", sub);
		return false;
	}
	return true;
}

int agents_run(const cfg_t *cfg, const agents_opts_t *o, FILE *in)
{
	char err[1024];
	PGconn *pg = pgsync_connect(cfg->postgres.conninfo, 5, err, sizeof(err));
	if (!pg) {
		fprintf(stderr, "agent: %s\n", err);
		return 1;
	}
	int rc = 1;
	switch (o->cmd) {
	case AGENTS_ADD:
		rc = agents_add(pg, o, in);
		break;
	case AGENTS_PASSWD:
		rc = agents_passwd(pg, o, in);
		break;
	case AGENTS_DISABLE:
		rc = agents_disable(pg, o);
		break;
	case AGENTS_LIST:
		rc = agents_list(pg, o);
		break;
	}
	PQfinish(pg);
	return rc;
}

/* An existing agent row may receive an account when it has none yet (a config-seeded
 * agent), belongs to the same company and is not disabled; the login is checked first
 * for a clear message, and again by the unique index (SQLSTATE 23505) against a race. */
static int agents_add(PGconn *pg, const agents_opts_t *o, FILE *in)
{
	char ids[32], company[32], max_open[16], hash[PASSWD_HASH_MAX];
	snprintf(ids, sizeof(ids), "%ld", o->agent);
	snprintf(company, sizeof(company), "%ld", o->company);
	snprintf(max_open, sizeof(max_open), "%d", o->max_open);

	const char *cp[1] = {company};
	PGresult *r = agents_exec(pg, "SELECT 1 FROM companies WHERE id = $1::bigint", 1, cp);
	if (!r)
		return 1;
	bool known = PQntuples(r) == 1;
	PQclear(r);
	if (!known) {
		fprintf(stderr, "agent: company %s is not configured (companies in the config file, then atende migrate)\n",
			company);
		return 1;
	}
	const char *lp[1] = {o->login};
	r = agents_exec(pg, "SELECT id FROM agents WHERE lower(login) = lower($1)", 1, lp);
	if (!r)
		return 1;
	if (PQntuples(r) > 0) {
		fprintf(stderr, "agent: login %s is taken (agent %s)\n", o->login, PQgetvalue(r, 0, 0));
		PQclear(r);
		return 1;
	}
	PQclear(r);
	const char *ap[1] = {ids};
	r = agents_exec(pg, "SELECT company_id, login, disabled_at IS NOT NULL FROM agents WHERE id = $1::bigint", 1, ap);
	if (!r)
		return 1;
	if (PQntuples(r) == 1) {
		const char *why = NULL;
		char buf[256];
		if (strcmp(PQgetvalue(r, 0, 0), company) != 0) {
			snprintf(buf, sizeof(buf), "agent %s belongs to company %s", ids, PQgetvalue(r, 0, 0));
			why = buf;
		} else if (!PQgetisnull(r, 0, 1)) {
			snprintf(buf, sizeof(buf), "agent %s already has the login %s (atende agent passwd to change its password)",
				 ids, PQgetvalue(r, 0, 1));
			why = buf;
		} else if (PQgetvalue(r, 0, 2)[0] == 't') {
			snprintf(buf, sizeof(buf), "agent %s is disabled", ids);
			why = buf;
		}
		if (why) {
			fprintf(stderr, "agent: %s\n", why);
			PQclear(r);
			return 1;
		}
	}
	PQclear(r);

	if (!agents_new_hash(in, hash, sizeof(hash)))
		return 1;

	const char *p[8] = {ids, company, o->name, o->login, hash, o->role, o->domains, max_open};
	r = PQexecParams(pg,
			 "INSERT INTO agents (id, company_id, name, login, password_hash, role, domains, max_open, password_at) "
			 "VALUES ($1::bigint, $2::bigint, $3, $4, $5, $6, $7::text[], $8::int, now()) "
			 "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, login = EXCLUDED.login, "
			 "  password_hash = EXCLUDED.password_hash, role = EXCLUDED.role, domains = EXCLUDED.domains, "
			 "  max_open = EXCLUDED.max_open, password_at = EXCLUDED.password_at "
			 "WHERE agents.login IS NULL AND agents.company_id = EXCLUDED.company_id AND agents.disabled_at IS NULL "
			 "RETURNING id",
			 8, NULL, p, NULL, NULL, 0);
	int rc = 1;
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		if (state && strcmp(state, "23505") == 0)
			fprintf(stderr, "agent: login %s is taken\n", o->login);
		else
			fprintf(stderr, "agent: %s", PQresultErrorMessage(r));
	} else if (PQntuples(r) == 0) {
		fprintf(stderr, "agent: agent %s changed while being added; run the command again\n", ids);
	} else {
		printf("agent %s (%s) added to company %s: role %s, domains %.*s, max_open %d\n", ids, o->login, company,
		       o->role, strcmp(o->domains, "{}") == 0 ? 3 : (int)strlen(o->domains) - 2,
		       strcmp(o->domains, "{}") == 0 ? "all" : o->domains + 1, o->max_open);
		rc = 0;
	}
	PQclear(r);
	return rc;
}

static int agents_passwd(PGconn *pg, const agents_opts_t *o, FILE *in)
{
	char ids[32], who[128], hash[PASSWD_HASH_MAX];
	snprintf(ids, sizeof(ids), "%ld", o->agent);
	agents_who(o, who, sizeof(who));
	const char *kp[2] = {o->login ? o->login : "", ids};
	PGresult *r = agents_exec(pg, "SELECT id, login FROM agents WHERE lower(login) = lower($1) OR id = $2::bigint",
				  2, kp);
	if (!r)
		return 1;
	if (PQntuples(r) == 0 || PQgetisnull(r, 0, 1)) {
		fprintf(stderr, "agent: %s %s\n", who,
			PQntuples(r) == 0 ? "does not exist" : "has no account (atende agent add gives it one)");
		PQclear(r);
		return 1;
	}
	snprintf(ids, sizeof(ids), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	if (!agents_new_hash(in, hash, sizeof(hash)))
		return 1;
	const char *p[2] = {ids, hash};
	r = agents_exec(pg,
			"UPDATE agents SET password_hash = $2, password_at = now() "
			"WHERE id = $1::bigint AND login IS NOT NULL RETURNING login",
			2, p);
	if (!r)
		return 1;
	int rc = PQntuples(r) == 1 ? 0 : 1;
	if (rc == 0)
		printf("agent %s (%s): password changed\n", ids, PQgetvalue(r, 0, 0));
	else
		fprintf(stderr, "agent: %s lost its account meanwhile\n", who);
	PQclear(r);
	return rc;
}

/* Disabling also takes the agent offline everywhere (its presence rows), so assignment
 * stops at once; its open conversations go to someone else when their customers write
 * again (atende_ingest) or by a transfer. The notifier refuses its token and closes its
 * consoles (disabled_at). */
static int agents_disable(PGconn *pg, const agents_opts_t *o)
{
	char ids[32], who[128];
	snprintf(ids, sizeof(ids), "%ld", o->agent);
	agents_who(o, who, sizeof(who));
	const char *p[2] = {o->login ? o->login : "", ids};
	PGresult *r = agents_exec(
		pg,
		"WITH a AS (SELECT id, disabled_at FROM agents WHERE (login IS NOT NULL AND lower(login) = lower($1)) "
		"           OR id = $2::bigint FOR UPDATE), "
		"u AS (UPDATE agents g SET active = false, disabled_at = coalesce(a.disabled_at, now()) FROM a "
		"      WHERE g.id = a.id RETURNING g.id, g.disabled_at), "
		"d AS (DELETE FROM agent_presence p USING a WHERE p.agent_id = a.id) "
		"SELECT u.id, a.disabled_at IS NOT NULL, "
		"       to_char(u.disabled_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
		"       (SELECT count(*) FROM conversations c WHERE c.agent_id = u.id AND c.status <> 'resolved') "
		"FROM u JOIN a ON a.id = u.id",
		2, p);
	if (!r)
		return 1;
	int rc = 0;
	if (PQntuples(r) == 0) {
		fprintf(stderr, "agent: %s does not exist\n", who);
		rc = 1;
	} else if (PQgetvalue(r, 0, 1)[0] == 't') {
		printf("agent %s was already disabled (since %s)\n", PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 2));
	} else {
		printf("agent %s disabled; %s unresolved conversations go to other agents when their customers write "
		       "again, or by transfer\n",
		       PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 3));
	}
	PQclear(r);
	return rc;
}

static int agents_list(PGconn *pg, const agents_opts_t *o)
{
	char company[32];
	snprintf(company, sizeof(company), "%ld", o->company);
	const char *p[1] = {company};
	PGresult *r = agents_exec(
		pg,
		"SELECT a.id, a.company_id, a.login, a.name, a.role, array_to_string(a.domains, ','), a.max_open, "
		"       (SELECT count(*) FROM conversations c WHERE c.agent_id = a.id AND c.status = 'open'), "
		"       atende_agent_online(a.id), "
		"       to_char(a.disabled_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), a.active "
		"FROM agents a WHERE $1::bigint = 0 OR a.company_id = $1::bigint ORDER BY a.company_id, a.id",
		1, p);
	if (!r)
		return 1;
	int n = PQntuples(r);
	if (o->json) {
		cJSON *arr = cJSON_CreateArray();
		for (int i = 0; i < n; i++) {
			cJSON *a = cJSON_CreateObject();
			cJSON_AddNumberToObject(a, "agent", atof(PQgetvalue(r, i, 0)));
			cJSON_AddNumberToObject(a, "company", atof(PQgetvalue(r, i, 1)));
			if (PQgetisnull(r, i, 2))
				cJSON_AddNullToObject(a, "login");
			else
				cJSON_AddStringToObject(a, "login", PQgetvalue(r, i, 2));
			cJSON_AddStringToObject(a, "name", PQgetvalue(r, i, 3));
			cJSON_AddStringToObject(a, "role", PQgetvalue(r, i, 4));
			cJSON *doms = cJSON_AddArrayToObject(a, "domains");
			char *list = xstrdup(PQgetvalue(r, i, 5)), *save = NULL;
			for (char *d = strtok_r(list, ",", &save); d; d = strtok_r(NULL, ",", &save))
				cJSON_AddItemToArray(doms, cJSON_CreateString(d));
			free(list);
			cJSON_AddNumberToObject(a, "max_open", atof(PQgetvalue(r, i, 6)));
			cJSON_AddNumberToObject(a, "open", atof(PQgetvalue(r, i, 7)));
			cJSON_AddBoolToObject(a, "online", PQgetvalue(r, i, 8)[0] == 't');
			cJSON_AddBoolToObject(a, "active", PQgetvalue(r, i, 10)[0] == 't');
			if (PQgetisnull(r, i, 9))
				cJSON_AddNullToObject(a, "disabled_at");
			else
				cJSON_AddStringToObject(a, "disabled_at", PQgetvalue(r, i, 9));
			cJSON_AddItemToArray(arr, a);
		}
		char *s = cJSON_Print(arr);
		printf("%s\n", s);
		free(s);
		cJSON_Delete(arr);
	} else {
		printf("%-8s %-8s %-20s %-24s %-10s %-32s %-8s %-5s %-7s %s\n", "AGENT", "COMPANY", "LOGIN", "NAME", "ROLE",
		       "DOMAINS", "MAX_OPEN", "OPEN", "ONLINE", "STATE");
		for (int i = 0; i < n; i++) {
			const char *doms = PQgetvalue(r, i, 5);
			char state[48];
			if (!PQgetisnull(r, i, 9))
				snprintf(state, sizeof(state), "disabled %s", PQgetvalue(r, i, 9));
			else
				snprintf(state, sizeof(state), "%s", PQgetvalue(r, i, 10)[0] == 't' ? "active" : "inactive");
			printf("%-8s %-8s %-20s %-24.24s %-10s %-32s %-8s %-5s %-7s %s\n", PQgetvalue(r, i, 0),
			       PQgetvalue(r, i, 1), PQgetisnull(r, i, 2) ? "-" : PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
			       PQgetvalue(r, i, 4), doms[0] ? doms : "all", PQgetvalue(r, i, 6), PQgetvalue(r, i, 7),
			       PQgetvalue(r, i, 8)[0] == 't' ? "yes" : "no", state);
		}
		printf("%d agents (accounts: atende agent add; online: seen by a notifier within 90 s)\n", n);
	}
	PQclear(r);
	return 0;
}

static bool agents_parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (!s[0] || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* "d1,d2" -> "{d1,d2}" (known domains only, each once). */
static bool agents_parse_domains(const char *list, char *out, size_t outlen, char *err, size_t errlen)
{
	bool seen[CFG_MAX_DOMAINS] = {false};
	size_t len = 0;
	char *copy = xstrdup(list), *save = NULL;
	out[len++] = '{';
	bool ok = true;
	for (char *d = strtok_r(copy, ",", &save); d; d = strtok_r(NULL, ",", &save)) {
		while (isspace((unsigned char)*d))
			d++;
		size_t l = strlen(d);
		while (l && isspace((unsigned char)d[l - 1]))
			d[--l] = '\0';
		int idx = cfg_domain_index(d);
		if (idx < 0) {
			snprintf(err, errlen, "unknown domain \"%.64s\" in --domains (financeiro, comercial, suporte, ouvidoria, "
					      "cancelamento)", d);
			ok = false;
			break;
		}
		if (seen[idx])
			continue;
		seen[idx] = true;
		len += (size_t)snprintf(out + len, outlen - len, "%s%s", len > 1 ? "," : "", cfg_domains[idx]);
	}
	free(copy);
	if (ok && len == 1) {
		snprintf(err, errlen, "--domains needs at least one domain (leave it out for every domain)");
		ok = false;
	}
	if (ok)
		snprintf(out + len, outlen - len, "}");
	return ok;
}

static bool agents_login_ok(const char *login)
{
	size_t n = strlen(login);
	if (n < 1 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)login[i]) && !strchr("._@-", login[i]))
			return false;
	return true;
}

/* Reads a new password from in, checks it is acceptable and hashes it into hash; the
 * clear text never outlives this call. Says why on stderr when it cannot. */
static bool agents_new_hash(FILE *in, char *hash, size_t hashlen)
{
	char pw[PASSWD_MAX_BYTES + 2], err[256];
	bool ok = agents_read_password(in, pw, sizeof(pw), err, sizeof(err)) && passwd_acceptable(pw, err, sizeof(err)) &&
		  passwd_hash(pw, hash, hashlen, err, sizeof(err));
	explicit_bzero(pw, sizeof(pw));
	if (!ok)
		fprintf(stderr, "agent: %s\n", err);
	return ok;
}

/* One line from in (its line break dropped). A terminal gets a prompt without echo and
 * is asked twice; anything else (a pipe, a file) is read as given. */
static bool agents_read_password(FILE *in, char *out, size_t outlen, char *err, size_t errlen)
{
	int fd = fileno(in);
	bool tty = isatty(fd);
	struct termios old, quiet;
	for (int round = 0; round < (tty ? 2 : 1); round++) {
		char *dst = round == 0 ? out : xmalloc(outlen);
		if (!dst) {
			snprintf(err, errlen, "out of memory");
			return false;
		}
		if (tty) {
			fprintf(stderr, round == 0 ? "password: " : "again: ");
			tcgetattr(fd, &old);
			quiet = old;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			tcsetattr(fd, TCSAFLUSH, &quiet);
		}
		bool got = fgets(dst, (int)outlen, in) != NULL;
		if (tty) {
			tcsetattr(fd, TCSAFLUSH, &old);
			fprintf(stderr, "\n");
		}
		size_t l = got ? strlen(dst) : 0;
		bool whole = got && (l < outlen - 1 || dst[l - 1] == '\n' || feof(in));
		while (l && (dst[l - 1] == '\n' || dst[l - 1] == '\r'))
			dst[--l] = '\0';
		if (!got || !whole) {
			snprintf(err, errlen, !got ? "no password on stdin (one line: atende agent ... < file, or a pipe)"
						   : "the password is longer than %d bytes", PASSWD_MAX_BYTES);
			if (round)
				free(dst);
			return false;
		}
		if (round == 1) {
			bool same = strcmp(out, dst) == 0;
			explicit_bzero(dst, outlen);
			free(dst);
			if (!same) {
				snprintf(err, errlen, "the two passwords differ");
				return false;
			}
		}
	}
	return true;
}

/* Runs a statement; NULL (reason printed) unless it succeeded. */
static PGresult *agents_exec(PGconn *pg, const char *sql, int n, const char *const *params)
{
	PGresult *r = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK)
		return r;
	const char *msg = PQresultErrorMessage(r);
	fprintf(stderr, "agent: %.*s%s\n", (int)strcspn(msg, "\n"), msg,
		strstr(msg, "does not exist") ? " (is the schema migrated? atende migrate)" : "");
	PQclear(r);
	return NULL;
}

static void agents_who(const agents_opts_t *o, char *out, size_t outlen)
{
	if (o->login)
		snprintf(out, outlen, "login %s", o->login);
	else
		snprintf(out, outlen, "agent %ld", o->agent);
}
