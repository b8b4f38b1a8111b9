/*
 * pgembed: embedded PostgreSQL set-up and launch (see pgembed.h). Every external
 * program (useradd, initdb, postgres) is run by fork+exec with an argv, never through
 * a shell, so paths with spaces or quotes cannot break anything.
 */
#include "pgembed.h"
#include "log.h"
#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static bool pgembed_bin_dir(const cfg_t *cfg, char *buf, size_t len);
static int pgembed_run(char *const argv[], const struct passwd *as);
static bool pgembed_drop_to(const struct passwd *pw);
static bool pgembed_mkdir_owned(const char *path, const struct passwd *pw, mode_t mode, char *err, size_t errlen);
static bool pgembed_write_hba(const char *pgdir, const struct passwd *pw, char *err, size_t errlen);
static bool pgembed_runs_on(int pid, const char *real_pgdir, char *exe, size_t exelen);

bool pgembed_prepare(const cfg_t *cfg, char *err, size_t errlen)
{
	char bindir[512], pgdir[1024], rundir[1024], tool[1100], probe[1100];
	struct passwd *pw = NULL;
	struct stat st;

	if (!pgembed_bin_dir(cfg, bindir, sizeof(bindir))) {
		snprintf(err, errlen, "no PostgreSQL server binaries found (install the Debian package postgresql, or set postgres.bin_dir)");
		return false;
	}
	cfg_data_path(cfg, "pg", pgdir, sizeof(pgdir));
	cfg_data_path(cfg, "run", rundir, sizeof(rundir));
	if (strlen(rundir) > 90) {
		snprintf(err, errlen, "%s is too long for a unix socket path; use a shorter data_dir", rundir);
		return false;
	}
	if (geteuid() == 0) {
		pw = getpwnam(cfg->postgres.user);
		if (!pw) {
			char *argv[] = {"useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell",
					"/usr/sbin/nologin", (char *)cfg->postgres.user, NULL};
			log_info("creating system user %s for the embedded PostgreSQL", cfg->postgres.user);
			if (pgembed_run(argv, NULL) != 0 || !(pw = getpwnam(cfg->postgres.user))) {
				snprintf(err, errlen, "cannot create system user %s (useradd failed)", cfg->postgres.user);
				return false;
			}
		}
	}
	if (!pgembed_mkdir_owned(pgdir, pw, 0700, err, errlen) || !pgembed_mkdir_owned(rundir, pw, 0755, err, errlen))
		return false;
	if (pw) {
		/* the server must be able to reach its folders: every parent needs search permission for it */
		snprintf(probe, sizeof(probe), "%s/PG_VERSION", pgdir);
		char *argv[] = {"test", "-w", pgdir, NULL};
		if (pgembed_run(argv, pw) != 0) {
			snprintf(err, errlen, "user %s cannot reach %s: give its parent folders o+x (chmod o+x) or set data_dir elsewhere",
				 cfg->postgres.user, pgdir);
			return false;
		}
	}
	snprintf(probe, sizeof(probe), "%s/PG_VERSION", pgdir);
	if (stat(probe, &st) == 0)
		return pgembed_write_hba(pgdir, pw, err, errlen);

	log_info("initdb: creating the embedded PostgreSQL cluster in %s", pgdir);
	snprintf(tool, sizeof(tool), "%s/initdb", bindir);
	char *argv[] = {tool, "-D", pgdir, "-U", "atende", "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
			"--locale=C.UTF-8", "--no-instructions", NULL};
	int rc = pgembed_run(argv, pw);
	if (rc != 0) {
		snprintf(err, errlen, "initdb failed (exit %d); see the lines above", rc);
		return false;
	}
	return pgembed_write_hba(pgdir, pw, err, errlen);
}

/* Who may log in, rewritten at every start (clusters made before this kept initdb's trust for
 * TCP): the socket, which only the server's user and root can open (unix_socket_permissions
 * 0700), is trusted; TCP on loopback needs a password, and atende sets none, so another user
 * of the machine cannot read every customer's messages through 127.0.0.1. */
static bool pgembed_write_hba(const char *pgdir, const struct passwd *pw, char *err, size_t errlen)
{
	static const char hba[] =
		"# written by atende at each start (supervisor/pgembed.c); edits here are lost.\n"
		"# The socket (mode 0700: this server's user and root) is trusted; TCP needs a password,\n"
		"# which atende does not set (ALTER ROLE atende PASSWORD '...' to allow TCP logins).\n"
		"local all all trust\n"
		"host all all 127.0.0.1/32 scram-sha-256\n"
		"host all all ::1/128 scram-sha-256\n";
	char path[1100], tmp[1110];
	snprintf(path, sizeof(path), "%s/pg_hba.conf", pgdir);
	snprintf(tmp, sizeof(tmp), "%s.atende", path);
	FILE *f = fopen(tmp, "we");
	if (!f || fputs(hba, f) < 0 || fclose(f) != 0 || (pw && chown(tmp, pw->pw_uid, pw->pw_gid) != 0) ||
	    chmod(tmp, 0600) != 0 || rename(tmp, path) != 0) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
		return false;
	}
	return true;
}

bool pgembed_stop_leftover(const cfg_t *cfg, char *err, size_t errlen)
{
	char pgdir[1024], lockfile[1100], path[64], line[1024], real_pgdir[PATH_MAX], exe[PATH_MAX];
	cfg_data_path(cfg, "pg", pgdir, sizeof(pgdir));
	snprintf(lockfile, sizeof(lockfile), "%s/postmaster.pid", pgdir);
	FILE *f = fopen(lockfile, "re");
	if (!f)
		return true;
	int pid = fgets(line, sizeof(line), f) ? atoi(line) : 0;
	fclose(f);
	if (pid <= 0 || (kill(pid, 0) != 0 && errno == ESRCH)) {
		/* its process is gone: PostgreSQL recovers from the stale file itself, once the
		 * backends it left (if any still run) are gone too */
		pgembed_kill_orphans(cfg);
		return true;
	}
	/* ours if it is a postgres on our data directory, not merely a live process that
	 * reuses the pid */
	if (!realpath(pgdir, real_pgdir) || !pgembed_runs_on(pid, real_pgdir, exe, sizeof(exe))) {
		log_warn("embedded PostgreSQL: %s names pid %d, which is not a postgres on this data directory "
			 "(%s): removing the stale lock file", lockfile, pid, exe[0] ? exe : "unknown program");
		if (unlink(lockfile) != 0) {
			snprintf(err, errlen, "cannot remove the stale %s: %s", lockfile, strerror(errno));
			return false;
		}
		return true;
	}
	log_warn("embedded PostgreSQL: pid %d, left running on %s by an earlier run, is stopped first (fast shutdown)",
		 pid, pgdir);
	static const struct { int sig; int wait_s; } steps[] = {{SIGINT, 60}, {SIGQUIT, 10}};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		kill(pid, steps[i].sig);
		/* not our child: no waitpid, so watch /proc until it is gone */
		snprintf(path, sizeof(path), "/proc/%d", pid);
		struct stat st;
		for (int tick = 0; tick < steps[i].wait_s * 10; tick++) {
			if (stat(path, &st) != 0) {
				log_info("embedded PostgreSQL: the earlier run's pid %d has stopped", pid);
				return true;
			}
			poll(NULL, 0, 100); /* start-up only: nothing else runs yet */
		}
		log_warn("embedded PostgreSQL: pid %d still running after %d s", pid, steps[i].wait_s);
	}
	snprintf(err, errlen, "PostgreSQL pid %d, left running on %s by an earlier run, does not stop", pid, pgdir);
	return false;
}

/* Whether pid runs a postgres binary (its path in exe, for messages) with real_pgdir as its
 * working directory: the postmaster chdirs to its data directory and every backend
 * inherits it, so this tells our server's processes from any other postgres. */
static bool pgembed_runs_on(int pid, const char *real_pgdir, char *exe, size_t exelen)
{
	char path[64], cwd[PATH_MAX];
	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	ssize_t n = readlink(path, exe, exelen - 1);
	exe[n > 0 ? n : 0] = 0;
	const char *base = strrchr(exe, '/') ? strrchr(exe, '/') + 1 : exe;
	snprintf(path, sizeof(path), "/proc/%d/cwd", pid);
	n = readlink(path, cwd, sizeof(cwd) - 1);
	cwd[n > 0 ? n : 0] = 0;
	return strncmp(base, "postgres", 8) == 0 && strcmp(cwd, real_pgdir) == 0;
}

int pgembed_kill_orphans(const cfg_t *cfg)
{
	char pgdir[1024], real_pgdir[PATH_MAX], exe[PATH_MAX];
	cfg_data_path(cfg, "pg", pgdir, sizeof(pgdir));
	if (!realpath(pgdir, real_pgdir))
		return 0;
	int killed = 0;
	DIR *d = opendir("/proc");
	struct dirent *e;
	while (d && (e = readdir(d))) {
		int pid = atoi(e->d_name);
		if (pid > 0 && pgembed_runs_on(pid, real_pgdir, exe, sizeof(exe)) && kill(pid, SIGKILL) == 0)
			killed++;
	}
	if (d)
		closedir(d);
	if (killed)
		log_warn("embedded PostgreSQL: %d processes of the server that died still held its shared memory: "
			 "killed, so that it restarts at once", killed);
	return killed;
}

pid_t pgembed_spawn(const cfg_t *cfg)
{
	char bindir[512], pgdir[1024], rundir[1024], tool[1100], port[16];
	struct passwd *pw = geteuid() == 0 ? getpwnam(cfg->postgres.user) : NULL;
	if (!pgembed_bin_dir(cfg, bindir, sizeof(bindir)))
		return -1;
	cfg_data_path(cfg, "pg", pgdir, sizeof(pgdir));
	cfg_data_path(cfg, "run", rundir, sizeof(rundir));
	snprintf(tool, sizeof(tool), "%s/postgres", bindir);
	snprintf(port, sizeof(port), "%d", cfg->postgres.embedded_port);
	pid_t parent = getpid(), pid = fork();
	if (pid != 0)
		return pid;
	proc_child_setup(parent);
	/* before dropping privileges: a negative (higher) priority needs root */
	if (cfg->postgres.priority && setpriority(PRIO_PROCESS, 0, cfg->postgres.priority) != 0)
		fprintf(stderr, "embedded PostgreSQL: cannot set priority %d: %s\n", cfg->postgres.priority, strerror(errno));
	if (pw && !pgembed_drop_to(pw))
		_exit(126);
	/* setuid cleared the parent-death signal. SIGTERM is PostgreSQL's smart shutdown: it
	 * lets the workers' sessions finish their drain, then checkpoints and exits, so a
	 * killed supervisor never leaves a postmaster holding our data_dir. */
	proc_die_with_parent(parent, SIGTERM);
	char *argv[] = {tool, "-D", pgdir, "-k", rundir, "-p", port, "-h", "127.0.0.1",
			"-c", "max_connections=200", "-c", "shared_buffers=128MB", "-c", "unix_socket_permissions=0700",
			"-c", "log_min_messages=warning", "-c", "log_line_prefix=ts=%m proc=postgres pid=%p ",
			NULL};
	execv(tool, argv);
	fprintf(stderr, "exec %s: %s\n", tool, strerror(errno));
	_exit(127);
}

/* Gives the autogroup of pid the nice value priority; true when it changed it. */
static bool pgembed_renice_one(int pid, int priority)
{
	char path[64], line[128];
	snprintf(path, sizeof(path), "/proc/%d/autogroup", pid);
	FILE *f = fopen(path, "r+e");
	if (!f)
		return false; /* kernel without autogroup, or the backend just exited */
	int nice = 0;
	bool changed = false;
	if (fgets(line, sizeof(line), f) && sscanf(line, "%*s nice %d", &nice) == 1 && nice != priority) {
		rewind(f);
		changed = fprintf(f, "%d", priority) > 0 && fflush(f) == 0;
	}
	fclose(f);
	return changed;
}

int pgembed_renice_backends(pid_t postmaster, int priority)
{
	/* The postmaster's children from /proc/<pid>/task/<pid>/children (one thread: all of
	 * them), and nothing to do while that list is what it was a second ago. Walking all of
	 * /proc every second instead was the idle supervisor's largest cost (perf: ~0.4 % of a
	 * core on a machine with a few hundred processes; docs/performance.md, "Idle"). */
	static char last[4096];
	static pid_t last_pm;
	char path[64], line[512], kids[sizeof(last)];
	int changed = 0;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)postmaster, (int)postmaster);
	FILE *cf = fopen(path, "re");
	if (cf) {
		size_t n = fread(kids, 1, sizeof(kids) - 1, cf);
		fclose(cf);
		kids[n] = '\0';
		if (last_pm == postmaster && strcmp(kids, last) == 0)
			return 0;
		char copy[sizeof(kids)];
		memcpy(copy, kids, n + 1);
		for (char *save, *tok = strtok_r(kids, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save))
			changed += pgembed_renice_one(atoi(tok), priority);
		/* settled only by a pass that had nothing to change: a backend reniced before its
		 * setsid (a new autogroup at nice 0) is looked at again a second later. A list too
		 * long to compare is walked every time. */
		if (changed == 0 && n < sizeof(kids) - 1) {
			memcpy(last, copy, n + 1);
			last_pm = postmaster;
		}
		return changed;
	}
	/* a kernel without CONFIG_PROC_CHILDREN: every process's parent, from /proc/<pid>/stat */
	DIR *d = opendir("/proc");
	struct dirent *e;
	while (d && (e = readdir(d))) {
		int pid = atoi(e->d_name);
		if (pid <= 0)
			continue;
		/* /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so parse after ')' */
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		char *close_paren = fgets(line, sizeof(line), f) ? strrchr(line, ')') : NULL;
		fclose(f);
		int ppid = 0;
		if (!close_paren || sscanf(close_paren + 1, " %*c %d", &ppid) != 1 || ppid != postmaster)
			continue;
		changed += pgembed_renice_one(pid, priority);
	}
	if (d)
		closedir(d);
	return changed;
}

const char *pgembed_conninfo(const cfg_t *cfg, char *buf, size_t len)
{
	char rundir[1024];
	cfg_data_path(cfg, "run", rundir, sizeof(rundir));
	snprintf(buf, len, "host=%s port=%d dbname=atende user=atende", rundir, cfg->postgres.embedded_port);
	return buf;
}

/* Newest /usr/lib/postgresql/<version>/bin holding a postgres binary, unless configured. */
static bool pgembed_bin_dir(const cfg_t *cfg, char *buf, size_t len)
{
	struct stat st;
	char probe[600];
	if (cfg->postgres.bin_dir[0]) {
		snprintf(buf, len, "%s", cfg->postgres.bin_dir);
		snprintf(probe, sizeof(probe), "%s/postgres", buf);
		return stat(probe, &st) == 0;
	}
	DIR *d = opendir("/usr/lib/postgresql");
	int best = -1;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		int v = atoi(e->d_name);
		snprintf(probe, sizeof(probe), "/usr/lib/postgresql/%s/bin/postgres", e->d_name);
		if (v > best && stat(probe, &st) == 0)
			best = v;
	}
	if (d)
		closedir(d);
	if (best < 0)
		return false;
	snprintf(buf, len, "/usr/lib/postgresql/%d/bin", best);
	return true;
}

/* Runs argv to completion, optionally as another user; returns its exit status. */
static int pgembed_run(char *const argv[], const struct passwd *as)
{
	pid_t parent = getpid(), pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		proc_child_setup(parent);
		if (as && !pgembed_drop_to(as))
			_exit(126);
		if (as)
			proc_die_with_parent(parent, SIGTERM);
		execvp(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static bool pgembed_drop_to(const struct passwd *pw)
{
	if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
		fprintf(stderr, "cannot switch to user %s: %s\n", pw->pw_name, strerror(errno));
		return false;
	}
	return true;
}

static bool pgembed_mkdir_owned(const char *path, const struct passwd *pw, mode_t mode, char *err, size_t errlen)
{
	char tmp[1024];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = 0;
			mkdir(tmp, 0755);
			*p = '/';
		}
	if (mkdir(tmp, mode) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "mkdir %s: %s", path, strerror(errno));
		return false;
	}
	if (pw && chown(path, pw->pw_uid, pw->pw_gid) != 0) {
		snprintf(err, errlen, "chown %s: %s", path, strerror(errno));
		return false;
	}
	chmod(path, mode);
	return true;
}
