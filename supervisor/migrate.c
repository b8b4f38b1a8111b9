/*
 * migrate: schema migrations (see migrate.h). Each file runs in its own transaction
 * together with its schema_migrations row, so a failed file leaves nothing half-done.
 */
#include "migrate.h"
#include "log.h"
#include "pgsync.h"
#include "proc.h"
#include "xalloc.h"

#include <cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIGRATE_LOCK_KEY_S "727100001"

static int migrate_cmp(const void *a, const void *b);
static char *migrate_read_file(const char *path);
static bool migrate_exec(PGconn *c, const char *sql, const char *what);
static PGconn *migrate_connect(const char *conninfo, int wait_s);
static bool migrate_sync_companies(PGconn *c, const cfg_t *cfg);

int migrate_run(const cfg_t *cfg, int wait_s)
{
	char dir[1024], path[2048];
	PGconn *c = migrate_connect(cfg->postgres.conninfo, wait_s);
	if (!c)
		return 1;
	PQclear(PQexec(c, "SET client_min_messages = warning"));
	if (!migrate_exec(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY_S ")", "lock") ||
	    !migrate_exec(c, "CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, name text NOT NULL, "
			     "applied_at timestamptz NOT NULL DEFAULT now())", "schema_migrations")) {
		PQfinish(c);
		return 1;
	}
	proc_find_path("schema", dir, sizeof(dir));
	DIR *d = opendir(dir);
	if (!d) {
		fprintf(stderr, "migrate: cannot open %s\n", dir);
		PQfinish(c);
		return 1;
	}
	char *names[512];
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < 512) {
		size_t l = strlen(e->d_name);
		if (l > 4 && strcmp(e->d_name + l - 4, ".sql") == 0 && atoi(e->d_name) > 0)
			names[n++] = xstrdup(e->d_name);
	}
	closedir(d);
	qsort(names, (size_t)n, sizeof(char *), migrate_cmp);

	int rc = 0, applied = 0;
	for (int i = 0; i < n && rc == 0; i++) {
		char version[16];
		snprintf(version, sizeof(version), "%d", atoi(names[i]));
		const char *params[2] = {version, names[i]};
		PGresult *r = PQexecParams(c, "SELECT 1 FROM schema_migrations WHERE version = $1", 1, NULL, params, NULL, NULL, 0);
		bool done = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
		PQclear(r);
		if (done)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		char *sql = migrate_read_file(path);
		if (!sql) {
			fprintf(stderr, "migrate: cannot read %s\n", path);
			rc = 1;
			break;
		}
		bool ok = migrate_exec(c, "BEGIN", "begin") && migrate_exec(c, sql, names[i]);
		if (ok) {
			r = PQexecParams(c, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2, NULL, params, NULL, NULL, 0);
			ok = PQresultStatus(r) == PGRES_COMMAND_OK;
			PQclear(r);
		}
		ok = ok && migrate_exec(c, "COMMIT", "commit");
		if (!ok) {
			PQclear(PQexec(c, "ROLLBACK"));
			rc = 1;
		} else {
			applied++;
			log_info("migrate: applied %s", names[i]);
		}
		free(sql);
	}
	for (int i = 0; i < n; i++)
		free(names[i]);
	if (rc == 0 && !migrate_sync_companies(c, cfg))
		rc = 1;
	if (rc == 0)
		log_info("migrate: schema up to date (%d applied now, %d files)", applied, n);
	PQfinish(c);
	return rc;
}

static PGconn *migrate_connect(const char *conninfo, int wait_s)
{
	char err[1024];
	PGconn *c = pgsync_connect(conninfo, wait_s, err, sizeof(err));
	if (c)
		return c;
	if (!strstr(err, "does not exist")) {
		fprintf(stderr, "migrate: %s\n", err);
		return NULL;
	}
	/* the embedded cluster starts with only "postgres": create our database once */
	char admin[2048];
	snprintf(admin, sizeof(admin), "%s dbname=postgres", conninfo);
	PGconn *a = pgsync_connect(admin, wait_s, err, sizeof(err));
	if (!a) {
		fprintf(stderr, "migrate: %s\n", err);
		return NULL;
	}
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL), *o;
	const char *dbname = "atende";
	for (o = opts; o && o->keyword; o++)
		if (strcmp(o->keyword, "dbname") == 0 && o->val)
			dbname = o->val;
	char *ident = PQescapeIdentifier(a, dbname, strlen(dbname));
	char sql[512];
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", ident);
	PQfreemem(ident);
	bool ok = migrate_exec(a, sql, "create database");
	PQconninfoFree(opts);
	PQfinish(a);
	if (!ok)
		return NULL;
	log_info("migrate: created database");
	c = pgsync_connect(conninfo, wait_s, err, sizeof(err));
	if (!c)
		fprintf(stderr, "migrate: %s\n", err);
	return c;
}

static bool migrate_sync_companies(PGconn *c, const cfg_t *cfg)
{
	cJSON *arr = cJSON_CreateArray();
	for (int i = 0; i < cfg->n_companies; i++) {
		const cfg_company_t *co = &cfg->companies[i];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "id", (double)co->id);
		cJSON_AddStringToObject(o, "name", co->name ? co->name : "");
		cJSON_AddNumberToObject(o, "agent_first", (double)co->agent_first);
		cJSON_AddNumberToObject(o, "agent_last", (double)co->agent_last);
		cJSON_AddItemToArray(arr, o);
	}
	char *json = cJSON_PrintUnformatted(arr);
	const char *params[1] = {json};
	PGresult *r = PQexecParams(c, "SELECT atende_sync_companies($1::jsonb)", 1, NULL, params, NULL, NULL, 0);
	bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
	if (!ok)
		fprintf(stderr, "migrate: seeding companies: %s", PQresultErrorMessage(r));
	PQclear(r);
	free(json);
	cJSON_Delete(arr);
	return ok;
}

static bool migrate_exec(PGconn *c, const char *sql, const char *what)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
	if (!ok)
		fprintf(stderr, "migrate: %s: %s", what, PQresultErrorMessage(r));
	PQclear(r);
	return ok;
}

static int migrate_cmp(const void *a, const void *b)
{
	return atoi(*(char *const *)a) - atoi(*(char *const *)b);
}

static char *migrate_read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = xmalloc((size_t)n + 1);
	if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		fclose(f);
		return NULL;
	}
	buf[n] = 0;
	fclose(f);
	return buf;
}
