/*
 * proc: process-level helpers (see proc.h).
 */
#include "proc.h"
#include "log.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

const char *proc_find_path(const char *rel, char *buf, size_t len)
{
	struct stat st;
	char exe[PATH_MAX];
	if (rel[0] == '/' || stat(rel, &st) == 0) {
		snprintf(buf, len, "%s", rel);
		return buf;
	}
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = 0;
		char *slash = strrchr(exe, '/');
		if (slash)
			*slash = 0; /* bin/ */
		slash = strrchr(exe, '/');
		if (slash)
			*slash = 0; /* project root */
		snprintf(buf, len, "%s/%s", exe, rel);
		if (stat(buf, &st) == 0)
			return buf;
	}
	snprintf(buf, len, "%s", rel);
	return buf;
}

void proc_apply_env(cfg_t *c)
{
	const char *v;
	if ((v = getenv(PROC_ENV_BROKERS)) && *v) {
		free(c->kafka.brokers);
		c->kafka.brokers = strdup(v);
	}
	if ((v = getenv(PROC_ENV_CONNINFO)) && *v) {
		free(c->postgres.conninfo);
		c->postgres.conninfo = strdup(v);
	}
}

long long proc_epoch(void)
{
	const char *v = getenv(PROC_ENV_EPOCH);
	return v ? atoll(v) : 0;
}

void proc_child_setup(void)
{
	sigset_t none;
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			signal(s, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* own process group: a Ctrl-C or a group-wide signal reaches only the supervisor,
	 * which then stops the children in order */
	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
}

void proc_load_config(int argc, char **argv, const char *process_name, cfg_t *out)
{
	const char *path = "deploy/atende.conf";
	char err[8192];
	log_init(process_name);
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			path = argv[++i];
	if (!cfg_load(path, out, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	proc_apply_env(out);
	proc_apply_log(out);
}

void proc_apply_log(const cfg_t *c)
{
	log_set_level((log_level_t)log_level_parse(c->log.level));
	log_set_format(strcmp(c->log.format, "json") == 0 ? LOG_FMT_JSON : LOG_FMT_TEXT);
}

bool proc_reload_config(cfg_t *c)
{
	cfg_t scratch;
	char err[8192];
	bool ok = cfg_load(c->path, &scratch, err, sizeof(err));
	if (ok) {
		proc_apply_env(&scratch);
		cfg_apply_reload(c, &scratch);
		proc_apply_log(c);
	} else {
		log_error("reload: keeping the current configuration:\n%s", err);
	}
	cfg_free(&scratch);
	return ok;
}

long proc_fd_limit(long connections, const char *key)
{
	long want = connections + PROC_FD_RESERVE;
	long got = proc_raise_nofile(want);
	if (got >= 0 && got < want)
		log_warn("%s = %ld needs %ld open files but the hard limit is %ld: connections past about %ld wait "
			 "unaccepted; raise it (systemd LimitNOFILE, supervisord minfds, ulimit -Hn)",
			 key, connections, want, got, got > PROC_FD_RESERVE ? got - PROC_FD_RESERVE : 0);
	return got;
}

long proc_raise_nofile(long want)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		log_warn("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
		return -1;
	}
	if (rl.rlim_cur < (rlim_t)want && rl.rlim_max < (rlim_t)want) {
		struct rlimit both = {(rlim_t)want, (rlim_t)want};
		if (setrlimit(RLIMIT_NOFILE, &both) == 0) /* CAP_SYS_RESOURCE: root under a low hard limit */
			return want;
	}
	if (rl.rlim_cur < (rlim_t)want) {
		struct rlimit soft = {rl.rlim_max < (rlim_t)want ? rl.rlim_max : (rlim_t)want, rl.rlim_max};
		if (setrlimit(RLIMIT_NOFILE, &soft) == 0)
			rl = soft;
		else
			log_warn("setrlimit(RLIMIT_NOFILE, %llu): %s", (unsigned long long)soft.rlim_cur, strerror(errno));
	}
	return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (rlim_t)LONG_MAX ? LONG_MAX : (long)rl.rlim_cur;
}

int proc_index(void)
{
	const char *idx = getenv(PROC_ENV_INDEX);
	return idx ? atoi(idx) : 0;
}

const char *proc_metrics_path(const cfg_t *c, const char *role, int index, char *buf, size_t len)
{
	char sub[128];
	snprintf(sub, sizeof(sub), "run/metrics/%s-%d.prom", role, index);
	return cfg_data_path(c, sub, buf, len);
}
