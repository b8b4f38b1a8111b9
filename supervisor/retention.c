/*
 * retention: weekly partitions ahead, archive-then-drop behind (see retention.h). The
 * order for each expired partition is export (one REPEATABLE READ snapshot: count + COPY)
 * -> read the archive back -> DETACH CONCURRENTLY -> count again (re-export if a late row
 * slipped in) -> DROP, so nothing is dropped that is not in a verified file.
 */
#include "retention.h"
#include "log.h"
#include "mstore.h"
#include "pgsync.h"
#include "xalloc.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>
#include <zlib.h>

#define RETENTION_LOCK_KEY_S "727100010" /* 727100001 migrate, 727100002 coaching, 727100011 partitions */
#define RETENTION_PRUNE_BATCH_S "10000" /* rows per pruning DELETE */
#define RETENTION_DAYS(d) ((long long)(d) * 86400)

/* One run's findings, reported at the end as text, log lines or JSON. */
typedef struct {
	const cfg_t *cfg;
	const retention_opts_t *opts;
	PGconn *pg;
	char archive_dir[PATH_MAX];
	cJSON *out;        /* the JSON report */
	cJSON *created, *archived, *errors;
	int n_errors;
} retention_t;

static void retention_report(retention_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void retention_error(retention_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static PGresult *retention_exec(retention_t *r, const char *sql, int n, const char *const *params, const char *what);
static bool retention_cmd(retention_t *r, const char *sql, const char *what);
static void retention_create_ahead(retention_t *r);
static void retention_expire(retention_t *r);
static bool retention_archive_one(retention_t *r, const char *tbl, const char *part, const char *week, bool attached,
				  bool pending);
static long long retention_count(retention_t *r, const char *ident);
static long long retention_export(retention_t *r, const char *ident, const char *path, long long *bytes);
static bool retention_copy_to(retention_t *r, const char *ident, gzFile gz, long long *rows, long long *bytes);
static bool retention_verify(const char *path, long long rows, long long bytes, char *err, size_t errlen);
static long long retention_prune(retention_t *r, const char *table, const char *age_column, const char *also,
				 long long seconds);
static bool retention_mkdirs(const char *path);
static long long retention_media_sweep(retention_t *r);

int retention_run(const cfg_t *cfg, const retention_opts_t *opts)
{
	retention_t R = {.cfg = cfg, .opts = opts};
	retention_t *r = &R;
	char err[1024];
	if (cfg->retention.archive_dir[0] == '/')
		snprintf(r->archive_dir, sizeof(r->archive_dir), "%s", cfg->retention.archive_dir);
	else
		cfg_data_path(cfg, cfg->retention.archive_dir, r->archive_dir, sizeof(r->archive_dir));
	r->pg = pgsync_connect(cfg->postgres.conninfo, 10, err, sizeof(err));
	if (!r->pg) {
		if (opts->log)
			log_error("retention: %s", err);
		else
			fprintf(stderr, "retention: %s\n", err);
		return 1;
	}
	r->out = cJSON_CreateObject();
	cJSON_AddBoolToObject(r->out, "dry_run", opts->dry_run);
	cJSON_AddNumberToObject(r->out, "keep_days", cfg->retention.keep_days);
	cJSON_AddNumberToObject(r->out, "weeks_ahead", cfg->retention.weeks_ahead);
	cJSON_AddStringToObject(r->out, "archive_dir", r->archive_dir);
	r->created = cJSON_AddArrayToObject(r->out, "created");
	r->archived = cJSON_AddArrayToObject(r->out, "archived");
	r->errors = cJSON_AddArrayToObject(r->out, "errors");

	/* a short lock_timeout: DDL must never queue in front of the workers' inserts for long */
	retention_cmd(r, "SET client_min_messages = warning", "settings");
	retention_cmd(r, "SET lock_timeout = '5s'", "settings");
	retention_cmd(r, "SET application_name = 'atende-retention'", "settings");
	PGresult *lock = retention_exec(r, "SELECT pg_try_advisory_lock(" RETENTION_LOCK_KEY_S ")", 0, NULL, "lock");
	bool locked = lock && PQgetvalue(lock, 0, 0)[0] == 't';
	PQclear(lock);
	if (!locked) {
		if (r->n_errors == 0)
			retention_report(r, "retention: another run holds the lock; nothing to do");
		cJSON_AddBoolToObject(r->out, "skipped", true);
	} else {
		if (!opts->dry_run)
			retention_create_ahead(r);
		retention_expire(r);
		if (!opts->dry_run) {
			long long keys = retention_prune(r, "message_keys", "received_at", NULL,
							 RETENTION_DAYS(cfg->retention.dedup_days));
			long long dlq = cfg->retention.keep_days > 0
						? retention_prune(r, "dlq", "replayed_at", NULL, RETENTION_DAYS(cfg->retention.keep_days))
						: 0;
			/* a finished console request is only looked up when its Kafka message is
			 * redelivered: the same horizon as the gateway ids; unfinished ones stay */
			long long outbound = retention_prune(r, "outbound_requests", "created_at",
							     "published_at IS NOT NULL", RETENTION_DAYS(cfg->retention.dedup_days));
			/* a delivery status whose message never came (a message atende did not send):
			 * kept as long as the message could still turn up (schema/009) */
			long long statuses = retention_prune(r, "pending_statuses", "kept_at", NULL,
							     RETENTION_DAYS(cfg->retention.dedup_days));
			/* a lifecycle job's once-ness lives on its conversation (stage, cycle): the row
			 * is history, and the published ones go at the same horizon */
			long long jobs = retention_prune(r, "conversation_jobs", "created_at", "published_at IS NOT NULL",
							 RETENTION_DAYS(cfg->retention.dedup_days));
			cJSON_AddNumberToObject(r->out, "jobs_pruned", (double)jobs);
			if (jobs)
				retention_report(r, "retention: pruned %lld published lifecycle jobs older than %d days", jobs,
						 cfg->retention.dedup_days);
			/* the bot's decision about a message: looked up, like the message's key, only
			 * when that message is redelivered */
			long long bot = retention_prune(r, "bot_turns", "created_at", NULL,
							RETENTION_DAYS(cfg->retention.dedup_days));
			cJSON_AddNumberToObject(r->out, "bot_turns_pruned", (double)bot);
			/* a console upload is sent within minutes or never; a sent one has its own media
			 * row naming the file, so the upload's row is only the unsent file's hold */
			long long uploads = retention_prune(r, "media_uploads", "created_at", NULL,
							    RETENTION_DAYS(cfg->retention.dedup_days));
			cJSON_AddNumberToObject(r->out, "uploads_pruned", (double)uploads);
			/* a cached hint older than cache.ttl_s is never reused: lookups skip it */
			long long cached = retention_prune(r, "hint_cache", "created_at", NULL, cfg->cache.ttl_s);
			cJSON_AddNumberToObject(r->out, "cached_hints_pruned", (double)cached);
			if (bot)
				retention_report(r, "retention: pruned %lld bot decisions older than %d days", bot,
						 cfg->retention.dedup_days);
			cJSON_AddNumberToObject(r->out, "keys_pruned", (double)keys);
			cJSON_AddNumberToObject(r->out, "pending_statuses_pruned", (double)statuses);
			cJSON_AddNumberToObject(r->out, "outbound_pruned", (double)outbound);
			cJSON_AddNumberToObject(r->out, "dlq_pruned", (double)dlq);
			long long files = retention_media_sweep(r);
			cJSON_AddNumberToObject(r->out, "media_files_removed", (double)files);
			if (files)
				retention_report(r, "retention: removed %lld media files no message names any more", files);
			if (keys || outbound || statuses || dlq)
				retention_report(r, "retention: pruned %lld message keys, %lld finished console requests "
						 "and %lld waiting delivery statuses older than %d days, %lld replayed dead letters",
						 keys, outbound, statuses, cfg->retention.dedup_days, dlq);
		}
		PGresult *n = retention_exec(r, "SELECT count(*) FILTER (WHERE attached), "
						"to_char(max(week_start) AT TIME ZONE 'UTC', 'IYYY\"w\"IW') FROM atende_partitions(0)",
					     0, NULL, "partitions");
		if (n) {
			cJSON_AddNumberToObject(r->out, "partitions", atof(PQgetvalue(n, 0, 0)));
			cJSON_AddStringToObject(r->out, "newest_week", PQgetvalue(n, 0, 1));
			retention_report(r, "retention: %s partitions, newest week %s, keep %d days%s", PQgetvalue(n, 0, 0),
					 PQgetvalue(n, 0, 1), cfg->retention.keep_days,
					 cfg->retention.keep_days ? "" : " (0: forever)");
			PQclear(n);
		}
		PQclear(PQexec(r->pg, "SELECT pg_advisory_unlock(" RETENTION_LOCK_KEY_S ")"));
	}
	cJSON_AddBoolToObject(r->out, "ok", r->n_errors == 0);
	if (opts->json) {
		char *s = cJSON_PrintUnformatted(r->out);
		printf("%s\n", s);
		free(s);
	}
	cJSON_Delete(r->out);
	PQfinish(r->pg);
	return r->n_errors ? 1 : 0;
}

long long retention_csv_records(const char *buf, size_t len, bool *quoted)
{
	long long n = 0;
	for (size_t i = 0; i < len; i++) {
		if (buf[i] == '"')
			*quoted = !*quoted; /* an escaped quote ("") flips twice */
		else if (buf[i] == '\n' && !*quoted)
			n++;
	}
	return n;
}

/* Human lines on stdout (or log lines); nothing in --json mode. */
static void retention_report(retention_t *r, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (r->opts->log)
		log_info("%s", line);
	else if (!r->opts->json)
		printf("%s\n", line);
}

static void retention_error(retention_t *r, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	line[strcspn(line, "\n")] = 0;
	r->n_errors++;
	cJSON_AddItemToArray(r->errors, cJSON_CreateString(line));
	if (r->opts->log)
		log_error("retention: %s", line);
	else
		fprintf(stderr, "retention: %s\n", line);
}

/* A query expected to succeed; NULL (reported) otherwise. */
static PGresult *retention_exec(retention_t *r, const char *sql, int n, const char *const *params, const char *what)
{
	PGresult *res = PQexecParams(r->pg, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return res;
	retention_error(r, "%s: %s", what, PQresultErrorMessage(res));
	PQclear(res);
	return NULL;
}

static bool retention_cmd(retention_t *r, const char *sql, const char *what)
{
	PGresult *res = retention_exec(r, sql, 0, NULL, what);
	PQclear(res);
	return res != NULL;
}

static void retention_create_ahead(retention_t *r)
{
	char ahead[16];
	snprintf(ahead, sizeof(ahead), "%d", r->cfg->retention.weeks_ahead);
	const char *params[1] = {ahead};
	PGresult *res = retention_exec(r, "SELECT * FROM atende_create_partitions($1::int)", 1, params,
				       "creating partitions ahead");
	if (!res)
		return;
	for (int i = 0; i < PQntuples(res); i++) {
		cJSON_AddItemToArray(r->created, cJSON_CreateString(PQgetvalue(res, i, 0)));
		retention_report(r, "retention: created partition %s", PQgetvalue(res, i, 0));
	}
	PQclear(res);
}

static void retention_expire(retention_t *r)
{
	char keep[16];
	snprintf(keep, sizeof(keep), "%d", r->cfg->retention.keep_days);
	const char *params[1] = {keep};
	PGresult *res = retention_exec(r,
				       "SELECT tbl, part, right(part, 7), attached, detach_pending FROM atende_partitions($1::int) "
				       "WHERE expired ORDER BY week_start, tbl",
				       1, params, "listing partitions");
	if (!res)
		return;
	if (PQntuples(res) && !r->opts->dry_run && !retention_mkdirs(r->archive_dir)) {
		retention_error(r, "cannot create %s: %s", r->archive_dir, strerror(errno));
		PQclear(res);
		return;
	}
	for (int i = 0; i < PQntuples(res); i++)
		retention_archive_one(r, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
				      PQgetvalue(res, i, 3)[0] == 't', PQgetvalue(res, i, 4)[0] == 't');
	PQclear(res);
}

static bool retention_archive_one(retention_t *r, const char *tbl, const char *part, const char *week, bool attached,
				  bool pending)
{
	char path[PATH_MAX + 64], sql[512];
	long long bytes = 0, rows;
	snprintf(path, sizeof(path), "%s/%s-%s.csv.gz", r->archive_dir, tbl, week);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "table", tbl);
	cJSON_AddStringToObject(o, "partition", part);
	cJSON_AddStringToObject(o, "week", week);
	cJSON_AddStringToObject(o, "file", path);
	cJSON_AddItemToArray(r->archived, o);
	char *ptbl = PQescapeIdentifier(r->pg, tbl, strlen(tbl)), *ppart = PQescapeIdentifier(r->pg, part, strlen(part));
	bool ok = false;
	if (r->opts->dry_run) {
		rows = retention_count(r, ppart);
		cJSON_AddNumberToObject(o, "rows", (double)rows);
		cJSON_AddBoolToObject(o, "dropped", false);
		retention_report(r, "retention: would archive %s (%lld rows) to %s and drop it", part, rows, path);
		ok = true;
		goto out;
	}
	if (pending) {
		/* an earlier DETACH ... CONCURRENTLY was interrupted: complete it */
		snprintf(sql, sizeof(sql), "ALTER TABLE %s DETACH PARTITION %s FINALIZE", ptbl, ppart);
		if (!retention_cmd(r, sql, part))
			goto out;
		attached = false;
	}
	if ((rows = retention_export(r, ppart, path, &bytes)) < 0)
		goto out;
	if (attached) {
		/* not in a transaction: only SHARE UPDATE EXCLUSIVE on the parent, inserts go on */
		snprintf(sql, sizeof(sql), "ALTER TABLE %s DETACH PARTITION %s CONCURRENTLY", ptbl, ppart);
		if (!retention_cmd(r, sql, part))
			goto out;
	}
	long long now_rows = retention_count(r, ppart);
	if (now_rows < 0)
		goto out;
	if (now_rows != rows && (rows = retention_export(r, ppart, path, &bytes)) < 0)
		goto out; /* a row arrived between the export and the detach: export the final table again */
	snprintf(sql, sizeof(sql), "DROP TABLE %s", ppart);
	if (!retention_cmd(r, sql, part))
		goto out;
	cJSON_AddNumberToObject(o, "rows", (double)rows);
	cJSON_AddNumberToObject(o, "bytes", (double)bytes);
	cJSON_AddBoolToObject(o, "dropped", true);
	retention_report(r, "retention: archived %s (%lld rows, %lld bytes) to %s and dropped it", part, rows, bytes, path);
	ok = true;
out:
	if (!ok && !cJSON_GetObjectItem(o, "dropped"))
		cJSON_AddBoolToObject(o, "dropped", false);
	PQfreemem(ptbl);
	PQfreemem(ppart);
	return ok;
}

static long long retention_count(retention_t *r, const char *ident)
{
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", ident);
	PGresult *res = retention_exec(r, sql, 0, NULL, "count");
	long long n = res ? atoll(PQgetvalue(res, 0, 0)) : -1;
	PQclear(res);
	return n;
}

/* Writes <path>.part, reads it back, renames it to path. Returns the rows, -1 on error
 * (reported). */
static long long retention_export(retention_t *r, const char *ident, const char *path, long long *bytes)
{
	char tmp[PATH_MAX + 80], err[512];
	long long rows = -1;
	snprintf(tmp, sizeof(tmp), "%s.part", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0) {
		retention_error(r, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	int gfd = dup(fd);
	gzFile gz = gfd >= 0 ? gzdopen(gfd, "wb6") : NULL;
	if (!gz) {
		retention_error(r, "%s: cannot start compression", tmp);
		if (gfd >= 0)
			close(gfd);
		close(fd);
		unlink(tmp);
		return -1;
	}
	*bytes = 0;
	bool copied = retention_copy_to(r, ident, gz, &rows, bytes);
	int zrc = gzclose(gz);
	bool ok = copied && zrc == Z_OK && fsync(fd) == 0;
	if (copied && !ok)
		retention_error(r, "%s: write failed (%s)", tmp, zrc != Z_OK ? "compression" : strerror(errno));
	close(fd);
	if (ok && !retention_verify(tmp, rows, *bytes, err, sizeof(err))) {
		retention_error(r, "%s: the archive does not read back whole: %s", tmp, err);
		ok = false;
	}
	if (ok && rename(tmp, path) != 0) {
		retention_error(r, "rename %s: %s", tmp, strerror(errno));
		ok = false;
	}
	if (!ok) {
		unlink(tmp);
		return -1;
	}
	int dfd = open(r->archive_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd); /* the rename itself must survive a crash before the DROP */
		close(dfd);
	}
	return rows;
}

/* COPY ident TO STDOUT as CSV with a header, inside one snapshot that also counts the
 * rows: the COPY must report exactly that count. */
static bool retention_copy_to(retention_t *r, const char *ident, gzFile gz, long long *rows, long long *bytes)
{
	char sql[256];
	if (!retention_cmd(r, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "export"))
		return false;
	long long expect = retention_count(r, ident);
	snprintf(sql, sizeof(sql), "COPY %s TO STDOUT WITH (FORMAT csv, HEADER true)", ident);
	PGresult *res = expect >= 0 ? PQexec(r->pg, sql) : NULL;
	bool ok = res && PQresultStatus(res) == PGRES_COPY_OUT;
	if (res && !ok)
		retention_error(r, "%s: %s", sql, PQresultErrorMessage(res));
	PQclear(res);
	char *buf;
	int n;
	bool written = true;
	while (ok && (n = PQgetCopyData(r->pg, &buf, 0)) > 0) {
		written = written && gzwrite(gz, buf, (unsigned)n) == n;
		*bytes += n;
		PQfreemem(buf);
	}
	if (ok) {
		res = PQgetResult(r->pg);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			retention_error(r, "%s: %s", sql, PQresultErrorMessage(res));
			ok = false;
		} else {
			*rows = atoll(PQcmdTuples(res));
		}
		PQclear(res);
		while ((res = PQgetResult(r->pg)))
			PQclear(res);
	}
	if (ok && !written) {
		retention_error(r, "%s: compressed write failed", ident);
		ok = false;
	}
	if (ok && *rows != expect) {
		retention_error(r, "%s: COPY gave %lld rows, the snapshot holds %lld", ident, *rows, expect);
		ok = false;
	}
	retention_cmd(r, ok ? "COMMIT" : "ROLLBACK", "export");
	return ok;
}

/* Decompresses the whole file (zlib checks its CRC and length at the end) and compares
 * the bytes and CSV records (a header + one per row) with what COPY gave. */
static bool retention_verify(const char *path, long long rows, long long bytes, char *err, size_t errlen)
{
	gzFile gz = gzopen(path, "rb");
	if (!gz) {
		snprintf(err, errlen, "cannot open: %s", strerror(errno));
		return false;
	}
	char buf[65536];
	long long got = 0, records = 0;
	bool quoted = false;
	int n;
	while ((n = gzread(gz, buf, sizeof(buf))) > 0) {
		got += n;
		records += retention_csv_records(buf, (size_t)n, &quoted);
	}
	int zerr = Z_OK;
	const char *zmsg = n < 0 ? gzerror(gz, &zerr) : NULL;
	if (n < 0) {
		snprintf(err, errlen, "%s", zmsg);
		gzclose(gz);
		return false;
	}
	if (gzclose(gz) != Z_OK) {
		snprintf(err, errlen, "corrupt end of file");
		return false;
	}
	if (got != bytes || records != rows + 1) {
		snprintf(err, errlen, "%lld bytes and %lld records read, %lld bytes and %lld rows written", got, records - 1,
			 bytes, rows);
		return false;
	}
	return true;
}

/* Deletes the rows of table whose age_column is more than seconds old (and that match also,
 * when given) in batches of RETENTION_PRUNE_BATCH_S, so no statement holds many row locks
 * while traffic flows; returns how many. */
static long long retention_prune(retention_t *r, const char *table, const char *age_column, const char *also,
				 long long seconds)
{
	char d[24], sql[512];
	long long total = 0;
	snprintf(d, sizeof(d), "%lld", seconds);
	snprintf(sql, sizeof(sql),
		 "DELETE FROM %s WHERE ctid = ANY (ARRAY (SELECT ctid FROM %s WHERE %s%s%s < now() - "
		 "make_interval(secs => $1::float8) LIMIT " RETENTION_PRUNE_BATCH_S "))",
		 table, table, also ? also : "", also ? " AND " : "", age_column);
	const char *params[1] = {d};
	for (;;) {
		PGresult *res = retention_exec(r, sql, 1, params, "pruning");
		if (!res)
			return total;
		long long n = atoll(PQcmdTuples(res));
		PQclear(res);
		total += n;
		if (n < atoll(RETENTION_PRUNE_BATCH_S))
			return total;
	}
}

static bool retention_mkdirs(const char *path)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = 0;
			mkdir(tmp, 0755);
			*p = '/';
		}
	return mkdir(tmp, 0750) == 0 || errno == EEXIST;
}

/* Media files no row names (their weeks dropped with the messages, no agent's upload left):
 * removed. A file written or put again within the last day is spared, so a worker that stored
 * it and has not yet recorded its row keeps it; the age is checked again just before the unlink. */
typedef struct {
	char (*shas)[MSTORE_SHA_HEX];
	int n, cap;
	long long before;
} retention_files_t;

static void retention_media_file(const char *sha, long long mtime, void *arg)
{
	retention_files_t *f = arg;
	if (mtime >= f->before)
		return;
	if (f->n == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 256;
		f->shas = xrealloc(f->shas, (size_t)f->cap * MSTORE_SHA_HEX);
	}
	snprintf(f->shas[f->n++], MSTORE_SHA_HEX, "%s", sha);
}

static long long retention_media_sweep(retention_t *r)
{
	char root[PATH_MAX], err[256];
	long long removed = 0;
	cfg_media_root(r->cfg, root, sizeof(root));
	mstore_t *st = mstore_new(root, err, sizeof(err));
	if (!st) {
		retention_error(r, "%s", err);
		return 0;
	}
	retention_files_t f = {.before = (long long)time(NULL) - 86400};
	mstore_each(st, retention_media_file, &f);
	for (int at = 0; at < f.n; at += 1000) {
		int n = f.n - at < 1000 ? f.n - at : 1000;
		size_t cap = (size_t)n * (MSTORE_SHA_HEX + 3) + 3, o = 0;
		char *arr = xmalloc(cap);
		arr[o++] = '{';
		for (int i = 0; i < n; i++)
			o += (size_t)snprintf(arr + o, cap - o, "%s%s", i ? "," : "", f.shas[at + i]);
		arr[o++] = '}';
		arr[o] = '\0';
		const char *params[1] = {arr};
		PGresult *res = retention_exec(r, "SELECT s FROM unnest($1::text[]) s "
						  "WHERE NOT EXISTS (SELECT 1 FROM media m WHERE m.sha256 = s) "
						  "AND NOT EXISTS (SELECT 1 FROM media_uploads u WHERE u.sha256 = s)",
					       1, params, "media files no row names");
		free(arr);
		if (!res)
			break;
		for (int i = 0; i < PQntuples(res); i++)
			if (mstore_old(st, PQgetvalue(res, i, 0), f.before) && mstore_remove(st, PQgetvalue(res, i, 0)))
				removed++;
		PQclear(res);
	}
	free(f.shas);
	mstore_free(st);
	return removed;
}
