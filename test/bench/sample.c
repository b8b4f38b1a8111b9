/*
 * sample: per-process CPU and memory for the bench's report, read from /proc (ticks in
 * /proc/<pid>/stat, VmRSS in /proc/<pid>/status) so the system under test needs no help; the
 * process list comes from the supervisor's /healthz, fetched with libcurl outside the window.
 */
#include "sample.h"
#include "xalloc.h"

#include <cJSON.h>
#include <curl/curl.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static cJSON *sample_health(const char *listen, char *err, size_t errlen);
static sample_proc_t *sample_add(sample_set_t *set, const char *role, int index, pid_t pid, bool children);
static void sample_list(sample_set_t *set, const cJSON *health);
static int sample_children(pid_t parent, sample_ticks_t **out);

bool sample_init(sample_set_t *set, const char *metrics_listen, char *err, size_t errlen)
{
	cJSON *health = sample_health(metrics_listen, err, errlen);
	if (!health)
		return false;
	sample_list(set, health);
	cJSON_Delete(health);
	return true;
}

const sample_proc_t *sample_find(const sample_set_t *set, const char *role)
{
	for (int i = 0; i < set->n; i++)
		if (strcmp(set->procs[i].role, role) == 0)
			return &set->procs[i];
	return NULL;
}

void sample_free(sample_set_t *set)
{
	for (int i = 0; i < set->n; i++)
		free(set->procs[i].kids0);
	free(set->procs);
	set->procs = NULL;
	set->n = 0;
}

void sample_start(sample_set_t *set)
{
	for (int i = 0; i < set->n; i++) {
		sample_proc_t *p = &set->procs[i];
		if (p->children) {
			p->n_kids0 = sample_children(p->pid, &p->kids0);
			p->ok = true;
		} else {
			p->ok = sample_stat(p->pid, NULL, &p->t0);
		}
	}
}

/* CPU over the measured window, RSS now, and whether the supervisor restarted anything meanwhile. */
void sample_end(sample_set_t *set, const char *listen)
{
	double hz = (double)sysconf(_SC_CLK_TCK);
	for (int i = 0; i < set->n; i++) {
		sample_proc_t *p = &set->procs[i];
		unsigned long long t1;
		p->cpu_s = -1;
		if (p->children) {
			sample_ticks_t *kids = NULL;
			int n = sample_children(p->pid, &kids);
			unsigned long long sum = 0;
			double rss = 0;
			for (int k = 0; k < n; k++) {
				unsigned long long before = 0;
				for (int j = 0; j < p->n_kids0; j++)
					if (p->kids0[j].pid == kids[k].pid)
						before = p->kids0[j].ticks;
				sum += kids[k].ticks >= before ? kids[k].ticks - before : 0;
				rss += sample_rss_mb(kids[k].pid);
			}
			free(kids);
			p->count = n;
			p->cpu_s = (double)sum / hz;
			p->rss_mb = rss;
		} else if (p->ok && sample_stat(p->pid, NULL, &t1)) {
			p->cpu_s = (double)(t1 - p->t0) / hz;
			p->rss_mb = sample_rss_mb(p->pid);
			p->count = 1;
		}
	}
	char err[256];
	cJSON *health = sample_health(listen, err, sizeof(err));
	const cJSON *e, *list = health ? cJSON_GetObjectItem(health, "processes") : NULL;
	cJSON_ArrayForEach(e, list)
	{
		const cJSON *role = cJSON_GetObjectItem(e, "role"), *pid = cJSON_GetObjectItem(e, "pid");
		const cJSON *index = cJSON_GetObjectItem(e, "index"), *restarts = cJSON_GetObjectItem(e, "restarts");
		for (int i = 0; i < set->n; i++) {
			sample_proc_t *p = &set->procs[i];
			if (!p->children && cJSON_IsString(role) && strcmp(p->role, role->valuestring) == 0 &&
			    cJSON_IsNumber(index) && p->index == index->valueint)
				p->restarted = (cJSON_IsNumber(pid) && pid->valueint != p->pid) ||
					       (cJSON_IsNumber(restarts) && restarts->valueint != p->restarts);
		}
	}
	cJSON_Delete(health);
}

/* utime+stime (clock ticks) and parent of pid from /proc/<pid>/stat; either out may be NULL. */
bool sample_stat(pid_t pid, pid_t *ppid, unsigned long long *ticks)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	/* The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'. */
	char *p = strrchr(buf, ')');
	int pp;
	unsigned long long ut, st;
	if (!p || sscanf(p + 1, " %*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &pp, &ut, &st) != 3)
		return false;
	if (ppid)
		*ppid = pp;
	if (ticks)
		*ticks = ut + st;
	return true;
}

double sample_rss_mb(pid_t pid)
{
	char path[64], line[256];
	double mb = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "VmRSS:", 6) == 0) {
			mb = strtod(line + 6, NULL) / 1024.0;
			break;
		}
	if (f)
		fclose(f);
	return mb;
}

/* The soft "Max open files" of another process (/proc/<pid>/limits), -1 if unreadable. */
long sample_nofile(pid_t pid)
{
	char path[64], line[256];
	long v = -1;
	snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
	FILE *f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "Max open files", 14) == 0) {
			const char *p = line + 14 + strspn(line + 14, " ");
			v = strncmp(p, "unlimited", 9) == 0 ? LONG_MAX : strtol(p, NULL, 10);
			break;
		}
	if (f)
		fclose(f);
	return v;
}

static size_t sample_curl_sink(char *p, size_t sz, size_t n, void *arg)
{
	return fwrite(p, sz, n, (FILE *)arg);
}

/* The supervisor's /healthz (pids and roles of every process). Blocking, so only called outside the
 * measured window. NULL with a reason when the system is not there. */
static cJSON *sample_health(const char *listen, char *err, size_t errlen)
{
	char url[512], *body = NULL;
	size_t len = 0;
	snprintf(url, sizeof(url), "http://%s/healthz", listen);
	FILE *mem = open_memstream(&body, &len);
	CURL *c = curl_easy_init();
	CURLcode rc = CURLE_FAILED_INIT;
	if (c && mem) {
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 3000L);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sample_curl_sink);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, mem);
		rc = curl_easy_perform(c);
	}
	if (c)
		curl_easy_cleanup(c);
	if (mem)
		fclose(mem);
	cJSON *root = rc == CURLE_OK ? cJSON_Parse(body) : NULL;
	if (rc != CURLE_OK)
		snprintf(err, errlen, "atende is not running at %s (%s)", listen, curl_easy_strerror(rc));
	else if (!cJSON_IsArray(cJSON_GetObjectItem(root, "processes")))
		snprintf(err, errlen, "http://%.300s/healthz did not answer a process list", listen);
	free(body);
	if (root && !cJSON_IsArray(cJSON_GetObjectItem(root, "processes"))) {
		cJSON_Delete(root);
		root = NULL;
	}
	return root;
}

static sample_proc_t *sample_add(sample_set_t *set, const char *role, int index, pid_t pid, bool children)
{
	sample_proc_t *p;
	set->procs = xrealloc(set->procs, (size_t)(set->n + 1) * sizeof(*set->procs));
	p = &set->procs[set->n++];
	memset(p, 0, sizeof(*p));
	snprintf(p->role, sizeof(p->role), "%s", role);
	p->index = index;
	p->pid = pid;
	p->children = children;
	return p;
}

/* Builds the list: every supervised process, the supervisor (their parent), the postgres
 * children (backends and background processes, summed) and this bench itself. */
static void sample_list(sample_set_t *set, const cJSON *health)
{
	const cJSON *p;
	pid_t parent = 0;
	cJSON_ArrayForEach(p, cJSON_GetObjectItem(health, "processes"))
	{
		const cJSON *role = cJSON_GetObjectItem(p, "role"), *pid = cJSON_GetObjectItem(p, "pid");
		const cJSON *index = cJSON_GetObjectItem(p, "index"), *restarts = cJSON_GetObjectItem(p, "restarts");
		if (!cJSON_IsString(role) || !cJSON_IsNumber(pid) || pid->valueint <= 0)
			continue;
		sample_proc_t *bp = sample_add(set, role->valuestring, cJSON_IsNumber(index) ? index->valueint : 0,
						  (pid_t)pid->valueint, false);
		bp->restarts = cJSON_IsNumber(restarts) ? restarts->valueint : 0;
		if (!parent)
			sample_stat(bp->pid, &parent, NULL);
		if (strcmp(role->valuestring, "postgres") == 0)
			set->pg_pid = bp->pid;
	}
	if (parent > 1)
		sample_add(set, "supervisor", 0, parent, false);
	if (set->pg_pid)
		sample_add(set, "postgres-children", 0, set->pg_pid, true);
	sample_add(set, "bench", 0, getpid(), false);
}

/* Every child of parent with its CPU ticks (malloc'd into *out); returns how many. */
static int sample_children(pid_t parent, sample_ticks_t **out)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0, cap = 0;
	*out = NULL;
	while (d && (e = readdir(d))) {
		pid_t pid = (pid_t)atoi(e->d_name), pp;
		unsigned long long t;
		if (pid <= 0 || !sample_stat(pid, &pp, &t) || pp != parent)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			*out = xrealloc(*out, (size_t)cap * sizeof(**out));
		}
		(*out)[n++] = (sample_ticks_t){pid, t};
	}
	if (d)
		closedir(d);
	return n;
}
