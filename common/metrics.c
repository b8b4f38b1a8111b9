/*
 * metrics: registry, Prometheus rendering, file export and merging (see metrics.h).
 * A process has a few dozen families with a handful of series each, so lookups are
 * linear scans; hot paths keep series pointers.
 */
#include "metrics.h"
#include "log.h"
#include "tick.h"
#include "xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const double metrics_latency_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
const int metrics_latency_nbuckets = sizeof(metrics_latency_buckets) / sizeof(double);
const double metrics_size_buckets[] = {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000};
const int metrics_size_nbuckets = sizeof(metrics_size_buckets) / sizeof(double);

struct metrics_series {
	metrics_series_t *next;
	metrics_family_t *family;
	char *labels;
	double value;         /* counter/gauge value, or histogram sum */
	unsigned long count;  /* histogram observations */
	unsigned long *buckets;
};

struct metrics_family {
	metrics_family_t *next;
	char *name, *help;
	metrics_type_t type;
	double *bounds;
	int nbounds;
	metrics_series_t *series, *last;
};

static metrics_family_t *metrics_all, *metrics_all_tail;
/* The export file is rewritten when its text changed, or after this long unchanged: under
 * the supervisor's 10 s staleness bound (sup.c), so an idle process writes it every few
 * seconds instead of every second (a file write, a rename and an inode freed each time:
 * half of an idle worker's main thread, docs/performance.md "Idle"). */
#define METRICS_REWRITE_S 4

static char *metrics_path;
static void (*metrics_before)(void);
static char *metrics_written;      /* the text last written */
static size_t metrics_written_len;
static time_t metrics_written_at;

static void metrics_export_cb(evutil_socket_t fd, short what, void *arg);
static void metrics_fmt(FILE *f, double v);

metrics_family_t *metrics_family(const char *name, metrics_type_t type, const char *help, const double *buckets,
				 int nbuckets)
{
	for (metrics_family_t *f = metrics_all; f; f = f->next)
		if (strcmp(f->name, name) == 0)
			return f;
	metrics_family_t *f = xcalloc(1, sizeof(*f));
	f->name = xstrdup(name);
	f->help = xstrdup(help);
	f->type = type;
	if (type == METRICS_HISTOGRAM) {
		f->nbounds = nbuckets;
		f->bounds = xmalloc((size_t)nbuckets * sizeof(double));
		memcpy(f->bounds, buckets, (size_t)nbuckets * sizeof(double));
	}
	if (metrics_all_tail)
		metrics_all_tail->next = f;
	else
		metrics_all = f;
	metrics_all_tail = f;
	return f;
}

metrics_series_t *metrics_series(metrics_family_t *f, const char *labels)
{
	for (metrics_series_t *s = f->series; s; s = s->next)
		if (strcmp(s->labels, labels) == 0)
			return s;
	metrics_series_t *s = xcalloc(1, sizeof(*s));
	s->labels = xstrdup(labels);
	s->family = f;
	if (f->type == METRICS_HISTOGRAM)
		s->buckets = xcalloc((size_t)f->nbounds, sizeof(unsigned long));
	if (f->last)
		f->last->next = s;
	else
		f->series = s;
	f->last = s;
	return s;
}

void metrics_add(metrics_series_t *s, double v)
{
	s->value += v;
}

void metrics_set(metrics_series_t *s, double v)
{
	s->value = v;
}

void metrics_inc(metrics_family_t *f, const char *labels)
{
	metrics_series(f, labels)->value += 1;
}

void metrics_gauge_set(metrics_family_t *f, const char *labels, double v)
{
	metrics_series(f, labels)->value = v;
}

/* Bucket counts are stored per bucket and made cumulative when rendered. */
void metrics_observe(metrics_series_t *s, double v)
{
	metrics_family_t *f = s->family;
	s->value += v;
	s->count++;
	for (int i = 0; i < f->nbounds; i++)
		if (v <= f->bounds[i]) {
			s->buckets[i]++;
			break;
		}
}

char *metrics_render(size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *out = open_memstream(&buf, &n);
	static const char *const types[] = {"counter", "gauge", "histogram"};
	for (metrics_family_t *f = metrics_all; f; f = f->next) {
		fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, types[f->type]);
		for (metrics_series_t *s = f->series; s; s = s->next) {
			const char *sep = s->labels[0] ? "," : "";
			if (f->type != METRICS_HISTOGRAM) {
				fprintf(out, "%s%s%s%s ", f->name, s->labels[0] ? "{" : "", s->labels, s->labels[0] ? "}" : "");
				metrics_fmt(out, s->value);
				fputc('\n', out);
				continue;
			}
			unsigned long cum = 0;
			for (int i = 0; i < f->nbounds; i++) {
				cum += s->buckets[i];
				fprintf(out, "%s_bucket{%s%sle=\"", f->name, s->labels, sep);
				metrics_fmt(out, f->bounds[i]);
				fprintf(out, "\"} %lu\n", cum);
			}
			fprintf(out, "%s_bucket{%s%sle=\"+Inf\"} %lu\n", f->name, s->labels, sep, s->count);
			fprintf(out, "%s_sum%s%s%s ", f->name, s->labels[0] ? "{" : "", s->labels, s->labels[0] ? "}" : "");
			metrics_fmt(out, s->value);
			fprintf(out, "\n%s_count%s%s%s %lu\n", f->name, s->labels[0] ? "{" : "", s->labels,
				s->labels[0] ? "}" : "", s->count);
		}
	}
	fclose(out);
	*len = n;
	return buf;
}

void metrics_export_start(struct event_base *base, const char *path, int interval_ms, void (*before_export)(void))
{
	free(metrics_path);
	metrics_path = xstrdup(path);
	metrics_before = before_export;
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash) {
		*slash = 0;
		mkdir(dir, 0755);
	}
	tick_new(base, interval_ms, metrics_export_cb, NULL); /* for the process's life */
	metrics_export_cb(-1, 0, NULL);
}

static void metrics_export_cb(evutil_socket_t fd, short what, void *arg)
{
	char tmp[1100];
	size_t len;
	(void)fd, (void)what, (void)arg;
	if (metrics_before)
		metrics_before();
	char *text = metrics_render(&len);
	time_t now = time(NULL);
	if (metrics_written && len == metrics_written_len && memcmp(text, metrics_written, len) == 0 &&
	    now - metrics_written_at < METRICS_REWRITE_S) {
		free(text);
		return;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", metrics_path);
	FILE *f = fopen(tmp, "w");
	if (f) {
		bool ok = fwrite(text, 1, len, f) == len;
		ok = fclose(f) == 0 && ok;
		if (ok && rename(tmp, metrics_path) != 0)
			log_warn("metrics export %s: %s", metrics_path, strerror(errno));
	}
	free(metrics_written);
	metrics_written = text;
	metrics_written_len = len;
	metrics_written_at = now;
}

static void metrics_fmt(FILE *f, double v)
{
	if (v == (double)(long long)v && v < 1e15 && v > -1e15)
		fprintf(f, "%lld", (long long)v);
	else
		fprintf(f, "%.6g", v);
}

/* One family gathered from every file: its HELP/TYPE once, then all its samples. */
typedef struct {
	char name[128];
	char *head;       /* HELP and TYPE lines */
	char *body;
	size_t body_len;
	FILE *body_f;
} metrics_merged_t;

char *metrics_merge_dir(const char *dir, int stale_s, const char *extra, size_t *len)
{
	metrics_merged_t fams[256];
	int nf = 0;
	DIR *d = opendir(dir);
	struct dirent *e;
	time_t now = time(NULL);
	while (d && (e = readdir(d))) {
		char path[1200], process[64], label[160];
		int index = 0;
		struct stat st;
		size_t l = strlen(e->d_name);
		if (l < 6 || strcmp(e->d_name + l - 5, ".prom") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &st) != 0 || now - st.st_mtime > stale_s)
			continue;
		const char *dash = strrchr(e->d_name, '-');
		if (!dash)
			continue;
		snprintf(process, sizeof(process), "%.*s", (int)(dash - e->d_name), e->d_name);
		index = atoi(dash + 1);
		snprintf(label, sizeof(label), "process=\"%s\",index=\"%d\"", process, index);
		FILE *f = fopen(path, "r");
		char line[4096];
		metrics_merged_t *cur = NULL;
		while (f && fgets(line, sizeof(line), f)) {
			if (strncmp(line, "# HELP ", 7) == 0) {
				char name[128];
				sscanf(line + 7, "%127s", name);
				cur = NULL;
				for (int i = 0; i < nf; i++)
					if (strcmp(fams[i].name, name) == 0)
						cur = &fams[i];
				if (!cur && nf < 256) {
					cur = &fams[nf++];
					memset(cur, 0, sizeof(*cur));
					snprintf(cur->name, sizeof(cur->name), "%s", name);
					cur->head = xstrdup(line);
					cur->body_f = open_memstream(&cur->body, &cur->body_len);
				}
				continue;
			}
			if (strncmp(line, "# TYPE ", 7) == 0) {
				if (cur && !strstr(cur->head, "# TYPE")) {
					size_t hl = strlen(cur->head);
					cur->head = xrealloc(cur->head, hl + strlen(line) + 1);
					strcpy(cur->head + hl, line);
				}
				continue;
			}
			if (!cur || line[0] == '#' || line[0] == '\n')
				continue;
			/* insert our labels: name{process=..,index=..[,existing]} value */
			size_t name_len = strcspn(line, "{ ");
			if (line[name_len] == '{')
				fprintf(cur->body_f, "%.*s{%s,%s", (int)name_len, line, label, line + name_len + 1);
			else
				fprintf(cur->body_f, "%.*s{%s}%s", (int)name_len, line, label, line + name_len);
		}
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
	char *buf = NULL;
	size_t n = 0;
	FILE *out = open_memstream(&buf, &n);
	for (int i = 0; i < nf; i++) {
		fclose(fams[i].body_f);
		fputs(fams[i].head, out);
		fwrite(fams[i].body, 1, fams[i].body_len, out);
		free(fams[i].head);
		free(fams[i].body);
	}
	if (extra)
		fputs(extra, out);
	fclose(out);
	*len = n;
	return buf;
}
