/*
 * report: the pieces of the bench's one JSON result line that several runs share: latency
 * percentiles (from samples or from a histogram) and the per-process costs. A line is built in
 * memory and written whole, so a reader of stdout never sees half of one.
 */
#ifndef ATENDE_BENCH_REPORT_H
#define ATENDE_BENCH_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sample.h"

/* A result line being built. */
typedef struct {
	FILE *f;     /* write the line's parts here */
	char *buf;   /* what was written, once closed */
	size_t len;
} report_line_t;

/* Opens a line. NULL (nothing to report, the run's counters are lost) when out of memory. */
FILE *report_begin(report_line_t *line);

/* Closes the line, writes it to stdout with a newline, and flushes. */
void report_end(report_line_t *line);

/* "name":{"p50":..,"p95":..,"p99":..,"max":..} in ms, nearest-rank over the n samples of v (sorted
 * in place); nulls when there is no sample. */
void report_latency(FILE *f, const char *name, double *v, size_t n);

/* The same from a histogram of n samples in 0.1 ms buckets (bucket lower bounds); max exact. */
void report_hist(FILE *f, const char *name, const uint32_t *hist, uint64_t n, double max);

/* "processes":[{"role","index","pid","cpu_s","cpu_pct","rss_mb",...}]: each process's CPU over
 * window seconds and its RSS at the end. */
void report_processes(FILE *f, const sample_set_t *set, double window);

#endif
