/*
 * sample: what each process of the system costs during a bench run, from /proc: CPU over the
 * measured window and RSS at its end, for every process the supervisor's /healthz lists, the
 * supervisor itself, the embedded PostgreSQL's children (backends come and go, so summed) and the
 * bench. Also whether the supervisor restarted anything meanwhile, which would spoil the numbers.
 */
#ifndef ATENDE_BENCH_SAMPLE_H
#define ATENDE_BENCH_SAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* A pid and its CPU ticks, for children that come and go (postgres backends). */
typedef struct {
	pid_t pid;
	unsigned long long ticks;
} sample_ticks_t;

/* One process (or the sum of a process's children) whose cost is reported. */
typedef struct {
	char role[24];
	int index;
	pid_t pid;
	bool children;           /* sums every child of pid instead of pid itself */
	int restarts;            /* as /healthz said at the start */
	bool restarted;          /* pid or restart count changed during the run */
	bool ok;                 /* the start sample could be read */
	unsigned long long t0;   /* ticks at the start (not for children) */
	sample_ticks_t *kids0;   /* children ticks at the start */
	int n_kids0;
	double cpu_s, rss_mb;    /* results; cpu_s < 0 when it could not be read */
	int count;               /* processes summed at the end */
} sample_proc_t;

/* The processes of one run, in report order. */
typedef struct {
	sample_proc_t *procs;
	int n;
	pid_t pg_pid; /* the embedded postmaster, 0 when there is none */
} sample_set_t;

/* Builds the list from the supervisor's /healthz at metrics_listen (pids and roles; blocking, so
 * only called outside the measured window). False with a reason when the system is not there. */
bool sample_init(sample_set_t *set, const char *metrics_listen, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Takes the start sample: the measured window begins. */
void sample_start(sample_set_t *set);

/* CPU since sample_start, RSS now, and (from /healthz again) whether anything restarted. */
void sample_end(sample_set_t *set, const char *metrics_listen);

/* The first process of role, NULL when there is none. */
const sample_proc_t *sample_find(const sample_set_t *set, const char *role);

/* Frees the list. */
void sample_free(sample_set_t *set);

/* utime+stime (clock ticks) and parent of pid from /proc/<pid>/stat; either out may be NULL. */
bool sample_stat(pid_t pid, pid_t *ppid, unsigned long long *ticks);

/* VmRSS of pid in MB, 0 when unreadable. */
double sample_rss_mb(pid_t pid);

/* The soft "Max open files" of another process (/proc/<pid>/limits), -1 if unreadable. */
long sample_nofile(pid_t pid);

#endif
