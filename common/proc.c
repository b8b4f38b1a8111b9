/*
 * proc: process-level helpers (see proc.h).
 */
#include "proc.h"
#include "log.h"
#include "xalloc.h"

#include <dirent.h>
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
		c->kafka.brokers = xstrdup(v);
	}
	if ((v = getenv(PROC_ENV_CONNINFO)) && *v) {
		free(c->postgres.conninfo);
		c->postgres.conninfo = xstrdup(v);
	}
}

long long proc_epoch(void)
{
	const char *v = getenv(PROC_ENV_EPOCH);
	return v ? atoll(v) : 0;
}

void proc_child_setup(pid_t parent)
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
	proc_die_with_parent(parent, SIGTERM);
}

void proc_die_with_parent(pid_t parent, int sig)
{
	if (prctl(PR_SET_PDEATHSIG, sig) != 0 || getppid() != parent)
		_exit(127);
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

/* Calls found(inode, arg) for each TCP socket on local port port in state state, from
 * /proc/net/tcp and tcp6; returns how many matched, -1 when neither can be read. */
static int proc_tcp_scan(int port, int state, void (*found)(unsigned long inode, void *arg), void *arg)
{
	static const char *const tables[] = {"/proc/net/tcp", "/proc/net/tcp6"};
	char line[512];
	int matched = 0, readable = 0;
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
		FILE *f = fopen(tables[t], "re");
		if (!f)
			continue;
		readable++;
		/* "sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ..." */
		while (fgets(line, sizeof(line), f)) {
			char local[64];
			unsigned st, local_port;
			unsigned long inode;
			if (sscanf(line, " %*d: %63s %*s %x %*s %*s %*s %*d %*d %lu", local, &st, &inode) != 3)
				continue; /* the header */
			const char *colon = strrchr(local, ':');
			if (!colon || sscanf(colon + 1, "%x", &local_port) != 1)
				continue;
			if ((int)local_port == port && (int)st == state) {
				matched++;
				if (found)
					found(inode, arg);
			}
		}
		fclose(f);
	}
	return readable ? matched : -1;
}

int proc_tcp_count(int port, int state)
{
	return proc_tcp_scan(port, state, NULL, NULL);
}

static void proc_keep_inode(unsigned long inode, void *arg)
{
	*(unsigned long *)arg = inode;
}

pid_t proc_port_holder(int port, char *name, size_t len)
{
	unsigned long inode = 0;
	char want[64], path[300], link[64];
	pid_t holder = -1;
	if (proc_tcp_scan(port, PROC_TCP_LISTEN, proc_keep_inode, &inode) <= 0)
		return 0;
	snprintf(want, sizeof(want), "socket:[%lu]", inode);
	snprintf(name, len, "?");
	DIR *procs = opendir("/proc");
	struct dirent *p;
	while (holder < 0 && procs && (p = readdir(procs))) {
		pid_t pid = (pid_t)atoi(p->d_name);
		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
		DIR *fds = opendir(path);
		struct dirent *fd;
		while (holder < 0 && fds && (fd = readdir(fds))) {
			snprintf(path, sizeof(path), "/proc/%d/fd/%s", (int)pid, fd->d_name);
			ssize_t n = readlink(path, link, sizeof(link) - 1);
			if (n > 0 && (link[n] = 0, strcmp(link, want) == 0))
				holder = pid;
		}
		if (fds)
			closedir(fds);
	}
	if (procs)
		closedir(procs);
	if (holder > 0) {
		snprintf(path, sizeof(path), "/proc/%d/comm", (int)holder);
		FILE *f = fopen(path, "re");
		if (f && fgets(name, (int)len, f))
			name[strcspn(name, "\n")] = 0;
		if (f)
			fclose(f);
	}
	return holder;
}

static const char *proc_pidfile_path(const cfg_t *c, const char *role, char *buf, size_t len)
{
	char sub[128];
	snprintf(sub, sizeof(sub), "run/%s.pid", role);
	return cfg_data_path(c, sub, buf, len);
}

void proc_pidfile_write(const cfg_t *c, const char *role)
{
	char path[1200];
	FILE *f = fopen(proc_pidfile_path(c, role, path, sizeof(path)), "we");
	if (!f || fprintf(f, "%d\n", (int)getpid()) < 0)
		log_warn("%s: cannot write: %s", path, strerror(errno));
	if (f)
		fclose(f);
}

void proc_pidfile_remove(const cfg_t *c, const char *role)
{
	char path[1200];
	unlink(proc_pidfile_path(c, role, path, sizeof(path)));
}

bool proc_pidfile_alive(const cfg_t *c, const char *role, const char *comm)
{
	char path[1200], name[64] = "";
	int pid = 0;
	FILE *f = fopen(proc_pidfile_path(c, role, path, sizeof(path)), "re");
	if (!f)
		return false;
	if (fscanf(f, "%d", &pid) != 1)
		pid = 0;
	fclose(f);
	if (pid <= 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	bool same = fgets(name, sizeof(name), f) && (name[strcspn(name, "\n")] = 0, strcmp(name, comm) == 0);
	fclose(f);
	return same;
}
