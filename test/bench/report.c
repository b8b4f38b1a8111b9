/*
 * report: JSON fragments of the bench's result lines. Percentiles are nearest-rank, so each is a
 * latency some message really had.
 */
#include "report.h"

#include <math.h>
#include <stdlib.h>

static int report_cmp_double(const void *a, const void *b);

static const double report_ps[] = {0.50, 0.95, 0.99};
static const char *const report_names[] = {"p50", "p95", "p99"};

FILE *report_begin(report_line_t *line)
{
	line->buf = NULL;
	line->len = 0;
	line->f = open_memstream(&line->buf, &line->len);
	return line->f;
}

void report_end(report_line_t *line)
{
	fputc('\n', line->f);
	fclose(line->f);
	fputs(line->buf, stdout);
	fflush(stdout);
	free(line->buf);
}

void report_latency(FILE *f, const char *name, double *v, size_t n)
{
	fprintf(f, "\"%s\":{", name);
	if (n == 0) {
		fprintf(f, "\"p50\":null,\"p95\":null,\"p99\":null,\"max\":null}");
		return;
	}
	qsort(v, n, sizeof(double), report_cmp_double);
	for (int k = 0; k < 3; k++) {
		size_t rank = (size_t)ceil(report_ps[k] * (double)n);
		fprintf(f, "\"%s\":%.2f,", report_names[k], v[(rank ? rank : 1) - 1]);
	}
	fprintf(f, "\"max\":%.2f}", v[n - 1]);
}

void report_hist(FILE *f, const char *name, const uint32_t *hist, uint64_t n, double max)
{
	fprintf(f, "\"%s\":{", name);
	if (n == 0) {
		fprintf(f, "\"p50\":null,\"p95\":null,\"p99\":null,\"max\":null}");
		return;
	}
	size_t b = 0;
	uint64_t below = 0; /* samples in the buckets before b */
	for (int k = 0; k < 3; k++) {
		uint64_t rank = (uint64_t)ceil(report_ps[k] * (double)n);
		if (rank == 0)
			rank = 1;
		while (below + hist[b] < rank)
			below += hist[b++];
		fprintf(f, "\"%s\":%.1f,", report_names[k], (double)b / 10.0);
	}
	fprintf(f, "\"max\":%.1f}", max);
}

void report_processes(FILE *f, const sample_set_t *set, double window)
{
	fprintf(f, "\"processes\":[");
	for (int i = 0; i < set->n; i++) {
		const sample_proc_t *p = &set->procs[i];
		fprintf(f, "%s{\"role\":\"%s\",\"index\":%d,\"pid\":%d,", i ? "," : "", p->role, p->index, (int)p->pid);
		if (p->cpu_s < 0)
			fprintf(f, "\"cpu_s\":null,\"cpu_pct\":null,\"rss_mb\":null");
		else
			fprintf(f, "\"cpu_s\":%.2f,\"cpu_pct\":%.1f,\"rss_mb\":%.1f", p->cpu_s, 100.0 * p->cpu_s / window,
				p->rss_mb);
		if (p->children)
			fprintf(f, ",\"count\":%d", p->count);
		if (p->restarted)
			fprintf(f, ",\"restarted\":true");
		fputc('}', f);
	}
	fputc(']', f);
}

static int report_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}
