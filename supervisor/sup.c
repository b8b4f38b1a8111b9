/*
 * sup: the supervisor loop (see sup.h). It never creates a librdkafka, libpq or libcurl
 * handle itself: migrations and the embedded broker run in exec'd children, so every
 * fork happens in a process with no library threads or sockets to inherit.
 */
#include "sup.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "pgembed.h"
#include "proc.h"
#include "xalloc.h"

#include <cJSON.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef enum { ROLE_POSTGRES, ROLE_BROKER, ROLE_INGRESS, ROLE_WORKER, ROLE_NOTIFIER } sup_role_t;
static const char *const sup_role_names[] = {"postgres", "broker", "ingress", "worker", "notifier"};

typedef struct {
	sup_role_t role;
	int index;               /* worker index (across pools) */
	const cfg_pool_t *pool;  /* workers: their pool */
	pid_t pid;               /* 0 while not running */
	int restarts;
	int backoff_ms;          /* delay before the next restart after a crash */
	time_t started;
	bool planned_stop;       /* stopped by us (pipeline restart): restart at once, no backoff */
	bool adopted;            /* a broker a killed supervisor left: not our child, watched by pid */
	struct event *restart_ev;
} sup_child_t;

/* Shutdown stages, in order: each waits for its children to exit (or escalates) before
 * the next starts. The whole stop fits in supervisor.shutdown_timeout_s (sup_stage_budget),
 * so whoever stops us can be told how long to wait. */
typedef enum {
	STAGE_RUNNING, STAGE_INGRESS, STAGE_WORKERS, STAGE_NOTIFIER, STAGE_BROKER, STAGE_POSTGRES, STAGE_DONE
} sup_stage_t;

typedef struct {
	cfg_t *cfg;
	struct event_base *base;
	sup_child_t *children;
	int n_children;
	char brokers[512];       /* bootstrap handed to the children */
	char broker_library[16]; /* the embedded broker's librdkafka: "patched", "stock"; "" for an external one */
	bool broker_wakes;       /* it answers a waiting fetch when data arrives (patched): the consumers wait long */
	char conninfo[1024];     /* conninfo handed to the children */
	long long epoch;         /* broker incarnation */
	bool embedded_pg, embedded_broker;
	int broker_pipe;         /* read end while waiting for the broker's address, else -1 */
	struct event *broker_ev;
	pid_t adopt_pid;         /* an embedded broker left running by a killed supervisor, else 0 */
	struct event *adopted_ev; /* polls the adopted broker (no SIGCHLD for it) */
	sup_stage_t stage;
	bool immediate;          /* second signal: kill everything now */
	struct event *stage_timer;
	struct timespec stop_deadline; /* CLOCK_MONOTONIC: when the whole stop must be done */
	http_server_t *http;
	int exit_status;
	char self_dir[PATH_MAX]; /* folder of the atende executables */
	pid_t pid;               /* ours: children die with it (proc_child_setup) */
	struct event *retention_ev; /* every retention.interval_s */
	struct event *renice_ev;    /* every second with the embedded PostgreSQL: its new backends' priority */
	pid_t retention_pid;     /* `atende retention` running, else 0 (not a supervised child) */
	int retention_runs[2];   /* finished runs: [0] ok, [1] failed */
	time_t retention_last_ok;
} sup_t;

static sup_t S;

static bool sup_start_infra(void);
static void sup_spawn(sup_child_t *c);
static void sup_spawn_broker(sup_child_t *c);
static bool sup_wait_broker_line(int fd, int timeout_ms);
static void sup_reap_infra(void);
static void sup_broker_line_cb(evutil_socket_t fd, short what, void *arg);
static void sup_handle_broker_line(const char *line);
static void sup_restart_pipeline(void);
static void sup_signal_cb(evutil_socket_t sig, short what, void *arg);
static void sup_reap(void);
static void sup_child_exited(sup_child_t *c, int status);
static void sup_restart_cb(evutil_socket_t fd, short what, void *arg);
static void sup_begin_shutdown(void);
static void sup_advance_stage(void);
static void sup_stage_timeout_cb(evutil_socket_t fd, short what, void *arg);
static bool sup_stage_has(sup_stage_t st, sup_role_t role);
static struct timeval sup_stage_budget(void);
static void sup_reload(void);
static void sup_http_cb(http_request_t *req, void *arg);
static int sup_run_tool(const char *what, char *const extra[]);
static sup_child_t *sup_add_child(sup_role_t role, int index);
static void sup_describe_status(int status, char *buf, size_t len);
static void sup_retention_cb(evutil_socket_t fd, short what, void *arg);
static void sup_renice_cb(evutil_socket_t fd, short what, void *arg);
static bool sup_ports_free(char *err, size_t errlen);
static pid_t sup_find_orphan_broker(void);
static void sup_broker_state(bool write);
static void sup_adopted_watch_cb(evutil_socket_t fd, short what, void *arg);
static bool sup_pid_running(pid_t pid);

int sup_run(cfg_t *cfg)
{
	char path[PATH_MAX], err[512];
	memset(&S, 0, sizeof(S));
	S.cfg = cfg;
	S.pid = getpid();
	S.broker_pipe = -1;
	S.embedded_pg = !cfg->postgres.conninfo[0];
	S.embedded_broker = !cfg->kafka.brokers[0];
	ssize_t n = readlink("/proc/self/exe", S.self_dir, sizeof(S.self_dir) - 1);
	if (n <= 0) {
		log_error("cannot find my own executable");
		return 1;
	}
	S.self_dir[n] = 0;
	*strrchr(S.self_dir, '/') = 0;

	/* one supervisor per data_dir */
	cfg_data_path(cfg, "", path, sizeof(path));
	mkdir(path, 0755);
	/* run/ holds broker.state and the metrics exports whatever PostgreSQL is used (the
	 * embedded one's set-up used to be the only one making it) */
	cfg_data_path(cfg, "run", path, sizeof(path));
	mkdir(path, 0755);
	cfg_data_path(cfg, "atende.lock", path, sizeof(path));
	int lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) != 0) {
		log_error("%s: another atende run is using this data_dir", path);
		return 1;
	}

	/* what an earlier run left behind, then anyone else on our ports: named, not guessed */
	if (S.embedded_pg && !pgembed_stop_leftover(cfg, err, sizeof(err))) {
		log_error("embedded PostgreSQL: %s", err);
		return 1;
	}
	if (S.embedded_broker)
		S.adopt_pid = sup_find_orphan_broker();
	if (!sup_ports_free(err, sizeof(err))) {
		log_error("%s", err);
		return 1;
	}

	signal(SIGPIPE, SIG_IGN);
	S.base = event_base_new();
	int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD};
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		struct event *ev = evsignal_new(S.base, sigs[i], sup_signal_cb, NULL);
		event_add(ev, NULL);
	}
	http_limits_t lim = {.max_header_bytes = 16384, .max_body_bytes = 65536, .max_connections = 256,
			     .request_timeout_ms = 10000, .idle_timeout_ms = 60000};
	S.http = http_server_new(S.base, cfg->metrics.listen, &lim, sup_http_cb, NULL, err, sizeof(err));
	if (!S.http) {
		log_error("metrics.listen %s: %s", cfg->metrics.listen, err);
		return 1;
	}
	int n_workers = 0;
	for (int p = 0; p < cfg->n_pools; p++)
		n_workers += cfg->pools[p].count;
	S.children = xcalloc((size_t)n_workers + 8, sizeof(sup_child_t));
	if (!sup_start_infra()) {
		S.exit_status = 1;
		sup_begin_shutdown();
	} else {
		if (cfg_has_role(cfg, "ingress"))
			sup_add_child(ROLE_INGRESS, 0);
		for (int p = 0, i = 0; cfg_has_role(cfg, "worker") && p < cfg->n_pools; p++)
			for (int k = 0; k < cfg->pools[p].count; k++)
				sup_add_child(ROLE_WORKER, i++)->pool = &cfg->pools[p];
		if (cfg_has_role(cfg, "notifier"))
			sup_add_child(ROLE_NOTIFIER, 0);
		for (int i = 0; i < S.n_children; i++)
			if (S.children[i].role >= ROLE_INGRESS)
				sup_spawn(&S.children[i]);
		log_info("atende running (%s): ingress %s, notifier %s, metrics %s, %d workers, broker %s%s, postgres %s",
			 cfg->supervisor.roles, cfg->ingress.listen, cfg->notifier.listen, cfg->metrics.listen,
			 cfg_has_role(cfg, "worker") ? n_workers : 0, S.embedded_broker ? "embedded (in-memory) " : "",
			 S.brokers, S.embedded_pg ? "embedded" : "external");
		/* retention now (partitions ahead are ensured at every start), then on schedule */
		S.retention_ev = event_new(S.base, -1, EV_PERSIST, sup_retention_cb, NULL);
		struct timeval every = {cfg->retention.interval_s, 0};
		event_add(S.retention_ev, &every);
		sup_retention_cb(-1, 0, NULL);
		if (S.embedded_pg && cfg->postgres.priority) {
			S.renice_ev = event_new(S.base, -1, EV_PERSIST, sup_renice_cb, NULL);
			struct timeval second = {1, 0};
			event_add(S.renice_ev, &second);
			sup_renice_cb(-1, 0, NULL);
		}
	}
	if (S.stage != STAGE_DONE)
		event_base_dispatch(S.base);

	http_server_free(S.http);
	log_info("atende stopped");
	close(lock);
	return S.exit_status;
}

/* Every port this run will listen on must be free: a holder is named with its pid. */
static bool sup_ports_free(char *err, size_t errlen)
{
	struct { const char *key; const char *listen; int port; bool used; } ports[] = {
		{"metrics.listen", S.cfg->metrics.listen, 0, true},
		{"ingress.listen", S.cfg->ingress.listen, 0, cfg_has_role(S.cfg, "ingress")},
		{"notifier.listen", S.cfg->notifier.listen, 0, cfg_has_role(S.cfg, "notifier")},
		{"kafka.embedded_port", NULL, S.cfg->kafka.embedded_port, S.embedded_broker},
		{"postgres.embedded_port", NULL, S.cfg->postgres.embedded_port, S.embedded_pg},
	};
	for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++) {
		char name[64];
		if (!ports[i].used)
			continue;
		int port = ports[i].listen ? atoi(strrchr(ports[i].listen, ':') ? strrchr(ports[i].listen, ':') + 1 : "0")
					   : ports[i].port;
		pid_t holder = port > 0 ? proc_port_holder(port, name, sizeof(name)) : 0;
		if (holder > 0 && holder == S.adopt_pid && !ports[i].listen)
			continue; /* the embedded broker we adopt */
		if (holder > 0)
			snprintf(err, errlen, "port %d is held by pid %d (%s); %s needs it", port, (int)holder, name, ports[i].key);
		else if (holder < 0)
			snprintf(err, errlen, "port %d is held by a process not visible here; %s needs it", port, ports[i].key);
		if (holder != 0)
			return false;
	}
	return true;
}

/* Starts the embedded PostgreSQL and broker (as configured) and applies migrations.
 * Blocking: this runs before the loop, when nothing else is up yet. */
static bool sup_start_infra(void)
{
	char err[1024];
	if (S.embedded_pg) {
		if (!pgembed_prepare(S.cfg, err, sizeof(err))) {
			log_error("embedded PostgreSQL: %s", err);
			return false;
		}
		pgembed_conninfo(S.cfg, S.conninfo, sizeof(S.conninfo));
		sup_spawn(sup_add_child(ROLE_POSTGRES, 0));
	} else {
		snprintf(S.conninfo, sizeof(S.conninfo), "%s", S.cfg->postgres.conninfo);
	}
	char *migrate[] = {"migrate", "--wait", "60", NULL};
	if (sup_run_tool("migrate", migrate) != 0) {
		log_error("cannot prepare the database; stopping");
		return false;
	}
	if (S.embedded_broker && S.adopt_pid > 0) {
		sup_child_t *b = sup_add_child(ROLE_BROKER, 0);
		b->pid = S.adopt_pid;
		b->adopted = true;
		b->started = time(NULL);
		log_warn("adopted the embedded broker pid %d that a killed supervisor left at %s (epoch %lld, %s "
			 "librdkafka): its topics, committed offsets and the messages not yet handled are kept",
			 (int)b->pid, S.brokers, S.epoch, S.broker_library);
		S.adopted_ev = event_new(S.base, -1, EV_PERSIST, sup_adopted_watch_cb, b);
		struct timeval every = {0, 200 * 1000};
		event_add(S.adopted_ev, &every);
	} else if (S.embedded_broker) {
		sup_child_t *b = sup_add_child(ROLE_BROKER, 0);
		sup_spawn(b);
		if (b->pid <= 0 || !sup_wait_broker_line(S.broker_pipe, 15000)) {
			sup_reap_infra();
			if (b->pid > 0)
				log_error("the embedded broker did not report its address within 15 s; stopping");
			return false;
		}
	} else {
		snprintf(S.brokers, sizeof(S.brokers), "%s", S.cfg->kafka.brokers);
		S.epoch = 1;
		char *topics[] = {"topics", "--create", NULL};
		if (sup_run_tool("topics", topics) != 0) {
			log_error("cannot create the topics on %s; stopping", S.brokers);
			return false;
		}
	}
	return true;
}

/* Runs `atende VERB -c FILE extra...` in a child and waits for it: start-up steps that
 * need libpq or librdkafka, of which the supervisor itself never holds a handle. */
static int sup_run_tool(const char *what, char *const extra[])
{
	char exe[PATH_MAX + 16];
	char *argv[16] = {exe};
	int n = 1;
	snprintf(exe, sizeof(exe), "%s/atende", S.self_dir);
	argv[n++] = extra[0];
	argv[n++] = "-c";
	argv[n++] = S.cfg->path;
	for (int i = 1; extra[i] && n < 15; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	pid_t pid = fork();
	if (pid == 0) {
		proc_child_setup(S.pid);
		setenv(PROC_ENV_CONNINFO, S.cfg->postgres.admin_conninfo[0] ? S.cfg->postgres.admin_conninfo : S.conninfo, 1);
		execv(exe, argv);
		_exit(127);
	}
	int status = 0;
	for (;;) {
		pid_t w = waitpid(-1, &status, 0);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR)
			return 1;
		for (int i = 0; w > 0 && i < S.n_children; i++)
			if (S.children[i].pid == w) {
				char why[64];
				sup_describe_status(status, why, sizeof(why));
				log_error("%s exited while running %s (%s)", sup_role_names[S.children[i].role], what, why);
				S.children[i].pid = 0;
				kill(pid, SIGTERM);
			}
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

/* Start-up failed: reaps the embedded PostgreSQL or broker if either has exited and
 * says so, so the error names the part that failed. */
static void sup_reap_infra(void)
{
	int status;
	for (int i = 0; i < S.n_children; i++) {
		sup_child_t *c = &S.children[i];
		if (c->pid > 0 && waitpid(c->pid, &status, WNOHANG) == c->pid) {
			char why[64];
			sup_describe_status(status, why, sizeof(why));
			log_error("the embedded %s exited during start-up (%s); see its lines above; stopping",
				  c->role == ROLE_POSTGRES ? "PostgreSQL" : "broker", why);
			c->pid = 0;
		}
	}
}

static sup_child_t *sup_add_child(sup_role_t role, int index)
{
	sup_child_t *c = &S.children[S.n_children++];
	c->role = role;
	c->index = index;
	c->backoff_ms = S.cfg->supervisor.backoff_initial_ms;
	c->restart_ev = evtimer_new(S.base, sup_restart_cb, c);
	return c;
}

static void sup_spawn(sup_child_t *c)
{
	static const char *const progs[] = {NULL, NULL, "atende-ingress", "atende-worker", "atende-notifier"};
	char exe[PATH_MAX + 32], idx[16], epoch[32];
	if (c->role == ROLE_POSTGRES) {
		c->pid = pgembed_spawn(S.cfg);
	} else if (c->role == ROLE_BROKER) {
		sup_spawn_broker(c);
	} else {
		snprintf(exe, sizeof(exe), "%s/%s", S.self_dir, progs[c->role]);
		snprintf(idx, sizeof(idx), "%d", c->index);
		snprintf(epoch, sizeof(epoch), "%lld", S.epoch);
		c->pid = fork();
		if (c->pid == 0) {
			proc_child_setup(S.pid);
			setenv(PROC_ENV_BROKERS, S.brokers, 1);
			setenv(PROC_ENV_CONNINFO, S.conninfo, 1);
			setenv(PROC_ENV_EPOCH, epoch, 1);
			setenv(PROC_ENV_INDEX, idx, 1);
			if (S.embedded_broker)
				setenv(PROC_ENV_BROKER_IN_MEMORY, "1", 1);
			if (S.embedded_broker && S.broker_wakes)
				setenv(PROC_ENV_BROKER_WAKES, "1", 1);
			if (c->pool) {
				setenv(PROC_ENV_POOL, c->pool->name, 1);
				/* the pool's priority is its processes' nice value */
				if (c->pool->priority && setpriority(PRIO_PROCESS, 0, c->pool->priority) != 0)
					fprintf(stderr, "pool %s: cannot set priority %d: %s\n", c->pool->name,
						c->pool->priority, strerror(errno));
			}
			char *argv[] = {exe, "-c", S.cfg->path, NULL};
			execv(exe, argv);
			fprintf(stderr, "exec %s: %s\n", exe, strerror(errno));
			_exit(127);
		}
	}
	if (c->pid < 0) {
		log_error("cannot start %s: %s", sup_role_names[c->role], strerror(errno));
		c->pid = 0;
		return;
	}
	c->started = time(NULL);
	c->planned_stop = false;
	log_info("started %s[%d] pid %d", sup_role_names[c->role], c->index, (int)c->pid);
}

/* The broker reports its bootstrap address on a pipe; we read it asynchronously except
 * at start-up, where nothing can run without it. */
static void sup_spawn_broker(sup_child_t *c)
{
	char exe[PATH_MAX + 16], fdnum[16], lib_dir[PATH_MAX + 16], lib[PATH_MAX + 40];
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0) {
		c->pid = -1;
		return;
	}
	snprintf(exe, sizeof(exe), "%s/atende", S.self_dir);
	/* The patched librdkafka (deploy/rdkafka-mock.sh) is for the broker alone: the loader
	 * of the exec'd broker picks it up from LD_LIBRARY_PATH, the other children never see it.
	 * The broker itself says which library it got (and warns when it is the stock one). */
	snprintf(lib_dir, sizeof(lib_dir), "%s/rdkafka-mock", S.self_dir);
	snprintf(lib, sizeof(lib), "%s/librdkafka.so.1", lib_dir);
	bool patched = S.cfg->kafka.embedded_patched && access(lib, R_OK) == 0;
	c->pid = fork();
	if (c->pid == 0) {
		proc_child_setup(S.pid);
		close(p[0]);
		fcntl(p[1], F_SETFD, 0);
		snprintf(fdnum, sizeof(fdnum), "%d", p[1]);
		setenv("ATENDE_READY_FD", fdnum, 1);
		if (patched) {
			setenv("LD_LIBRARY_PATH", lib_dir, 1);
			setenv(PROC_ENV_BROKER_LIBRARY, lib, 1);
		} else {
			unsetenv(PROC_ENV_BROKER_LIBRARY);
		}
		char *argv[] = {exe, "embedded-broker", "-c", S.cfg->path, NULL};
		execv(exe, argv);
		_exit(127);
	}
	close(p[1]);
	if (S.broker_ev) {
		event_free(S.broker_ev);
		S.broker_ev = NULL;
	}
	if (S.broker_pipe >= 0)
		close(S.broker_pipe);
	S.broker_pipe = p[0];
	if (S.stage == STAGE_RUNNING && S.n_children > 2) {
		/* a restart while running: read the address from the loop */
		S.broker_ev = event_new(S.base, p[0], EV_READ | EV_PERSIST, sup_broker_line_cb, NULL);
		event_add(S.broker_ev, NULL);
	}
}

static bool sup_wait_broker_line(int fd, int timeout_ms)
{
	char line[512];
	size_t got = 0;
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	struct timespec now, until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout_ms / 1000;
	while (got < sizeof(line) - 1) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		int left = (int)((until.tv_sec - now.tv_sec) * 1000 + (until.tv_nsec - now.tv_nsec) / 1000000);
		int ready = left > 0 ? poll(&pfd, 1, left) : 0;
		if (ready < 0 && errno == EINTR)
			continue; /* SIGCHLD: sup_reap_infra says who exited */
		if (ready <= 0)
			return false;
		ssize_t r = read(fd, line + got, sizeof(line) - 1 - got);
		if (r <= 0)
			return false;
		got += (size_t)r;
		line[got] = 0;
		if (strchr(line, '\n')) {
			sup_handle_broker_line(line);
			return S.brokers[0] != 0;
		}
	}
	return false;
}

static void sup_broker_line_cb(evutil_socket_t fd, short what, void *arg)
{
	char line[512];
	(void)what, (void)arg;
	ssize_t r = read(fd, line, sizeof(line) - 1);
	event_free(S.broker_ev);
	S.broker_ev = NULL;
	close(S.broker_pipe);
	S.broker_pipe = -1;
	if (r <= 0)
		return; /* it died before reporting: the reaper restarts it */
	line[r] = 0;
	sup_handle_broker_line(line);
	sup_restart_pipeline();
}

static void sup_handle_broker_line(const char *line)
{
	struct timeval tv;
	if (strncmp(line, "BOOTSTRAP ", 10) != 0)
		return;
	const char *addr = line + 10, *lib = addr + strcspn(addr, " \r\n");
	snprintf(S.brokers, sizeof(S.brokers), "%.*s", (int)(lib - addr), addr);
	lib += *lib == ' ';
	snprintf(S.broker_library, sizeof(S.broker_library), "%.*s", (int)strcspn(lib, " \r\n"), lib);
	S.broker_wakes = strncmp(lib + strcspn(lib, " \r\n"), " wakes", 6) == 0;
	gettimeofday(&tv, NULL);
	S.epoch = (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
	log_info("embedded broker at %s (epoch %lld, %s librdkafka%s)", S.brokers, S.epoch,
		 S.broker_library[0] ? S.broker_library : "unknown",
		 S.broker_wakes ? ": the consumers use kafka.embedded_fetch_wait_max_ms" : "");
	sup_broker_state(true);
}

/* run/broker.state ("PID EPOCH BOOTSTRAP LIBRARY WAKES"): what the next supervisor needs to adopt the
 * embedded broker if this one is killed; removed when the broker stops with us. */
static void sup_broker_state(bool write)
{
	char path[1200];
	cfg_data_path(S.cfg, "run/broker.state", path, sizeof(path));
	pid_t pid = 0;
	for (int i = 0; i < S.n_children; i++)
		if (S.children[i].role == ROLE_BROKER)
			pid = S.children[i].pid;
	if (!write || pid <= 0) {
		unlink(path);
		return;
	}
	FILE *f = fopen(path, "we");
	if (!f || fprintf(f, "%d %lld %s %s %d\n", (int)pid, S.epoch, S.brokers,
			  S.broker_library[0] ? S.broker_library : "unknown", S.broker_wakes) < 0)
		log_warn("%s: cannot write (a supervisor killed now could not adopt the broker): %s", path, strerror(errno));
	if (f)
		fclose(f);
}

/* The embedded broker a killed supervisor left (broker.c keeps it for
 * kafka.embedded_orphan_keep_s), if run/broker.state names a live `atende embedded-broker`
 * still holding kafka.embedded_port: its pid, with S.brokers and S.epoch set from the file;
 * else 0. */
static pid_t sup_find_orphan_broker(void)
{
	char path[1200], bootstrap[512], library[16], comm[64], cmdline[256];
	int pid = 0, wakes = 0;
	long long epoch = 0;
	cfg_data_path(S.cfg, "run/broker.state", path, sizeof(path));
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	bool parsed = fscanf(f, "%d %lld %511s %15s %d", &pid, &epoch, bootstrap, library, &wakes) == 5 && pid > 1;
	fclose(f);
	if (!parsed || proc_port_holder(S.cfg->kafka.embedded_port, comm, sizeof(comm)) != pid)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	f = fopen(path, "re");
	size_t n = f ? fread(cmdline, 1, sizeof(cmdline) - 1, f) : 0;
	if (f)
		fclose(f);
	cmdline[n] = 0;
	/* argv is NUL-separated: the second argument is the verb */
	if (n == 0 || strlen(cmdline) + 1 >= n || strcmp(cmdline + strlen(cmdline) + 1, "embedded-broker") != 0)
		return 0;
	snprintf(S.brokers, sizeof(S.brokers), "%s", bootstrap);
	snprintf(S.broker_library, sizeof(S.broker_library), "%s", library);
	S.broker_wakes = wakes == 1;
	S.epoch = epoch;
	return pid;
}

/* Whether pid runs: a zombie no longer does (a container's PID 1 may never reap the
 * orphans it inherits). */
static bool sup_pid_running(pid_t pid)
{
	char path[64], stat[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "re");
	size_t n = f ? fread(stat, 1, sizeof(stat) - 1, f) : 0;
	if (f)
		fclose(f);
	stat[n] = 0;
	const char *end = strrchr(stat, ')'); /* the name in parentheses may hold anything */
	return end && end[1] == ' ' && end[2] != 'Z' && end[2] != 'X';
}

/* The adopted broker is not our child: no SIGCHLD, so its exit is seen here. */
static void sup_adopted_watch_cb(evutil_socket_t fd, short what, void *arg)
{
	sup_child_t *b = arg;
	(void)fd, (void)what;
	if (b->pid > 0 && b->adopted && sup_pid_running(b->pid))
		return;
	event_free(S.adopted_ev);
	S.adopted_ev = NULL;
	if (b->pid <= 0 || !b->adopted)
		return;
	b->adopted = false;
	sup_child_exited(b, 0);
	if (S.stage != STAGE_RUNNING)
		sup_advance_stage();
}

/* The broker came back empty: every pipeline process must reconnect to the new address
 * and start from the new broker's beginning, so stop them and start them again. */
static void sup_restart_pipeline(void)
{
	log_warn("embedded broker restarted with empty topics: restarting ingress, workers and notifier");
	for (int i = 0; i < S.n_children; i++) {
		sup_child_t *c = &S.children[i];
		if (c->role < ROLE_INGRESS)
			continue;
		if (c->pid > 0) {
			c->planned_stop = true;
			kill(c->pid, SIGTERM);
		} else {
			evtimer_del(c->restart_ev);
			sup_spawn(c);
		}
	}
}

static void sup_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what, (void)arg;
	switch (sig) {
	case SIGCHLD:
		sup_reap();
		break;
	case SIGHUP:
		sup_reload();
		break;
	default:
		if (S.stage == STAGE_RUNNING) {
			log_info("signal %d: draining (a second signal stops at once)", (int)sig);
			sup_begin_shutdown();
		} else if (!S.immediate) {
			log_warn("second signal: stopping immediately");
			S.immediate = true;
			for (int i = 0; i < S.n_children; i++)
				if (S.children[i].pid > 0)
					kill(S.children[i].pid, S.children[i].role == ROLE_POSTGRES ? SIGQUIT : SIGKILL);
		}
	}
}

static void sup_reap(void)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == S.retention_pid) {
			char why[64];
			sup_describe_status(status, why, sizeof(why));
			S.retention_runs[status != 0]++;
			if (status == 0) {
				S.retention_last_ok = time(NULL);
				log_info("retention pid %d done", (int)pid);
			} else {
				log_error("retention pid %d failed (%s); next run in %d s", (int)pid, why, S.cfg->retention.interval_s);
			}
			S.retention_pid = 0;
		}
		for (int i = 0; i < S.n_children; i++)
			if (S.children[i].pid == pid)
				sup_child_exited(&S.children[i], status);
	}
	if (S.stage != STAGE_RUNNING)
		sup_advance_stage();
}

static void sup_child_exited(sup_child_t *c, int status)
{
	char why[64];
	pid_t pid = c->pid;
	sup_describe_status(status, why, sizeof(why));
	c->pid = 0;
	if (c->role >= ROLE_INGRESS) {
		char path[1200];
		unlink(proc_metrics_path(S.cfg, sup_role_names[c->role], c->index, path, sizeof(path))); /* its numbers died with it */
	}
	if (S.stage != STAGE_RUNNING) {
		log_info("%s stopped (%s)", sup_role_names[c->role], why);
		if (c->role == ROLE_BROKER)
			sup_broker_state(false);
		return;
	}
	if (c->role == ROLE_POSTGRES)
		pgembed_kill_orphans(S.cfg); /* else the restart fails while they hold its shared memory */
	if (c->planned_stop) {
		sup_spawn(c);
		return;
	}
	time_t up = time(NULL) - c->started;
	if (up >= S.cfg->supervisor.healthy_after_s)
		c->backoff_ms = S.cfg->supervisor.backoff_initial_ms;
	c->restarts++;
	log_error("%s pid %d exited (%s) after %lds; restart #%d in %d ms", sup_role_names[c->role], (int)pid, why,
		  (long)up, c->restarts, c->backoff_ms);
	struct timeval tv = {c->backoff_ms / 1000, (c->backoff_ms % 1000) * 1000};
	evtimer_add(c->restart_ev, &tv);
	c->backoff_ms = c->backoff_ms * 2 > S.cfg->supervisor.backoff_max_ms ? S.cfg->supervisor.backoff_max_ms
									      : c->backoff_ms * 2;
}

static void sup_restart_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	if (S.stage == STAGE_RUNNING)
		sup_spawn(arg);
}

static void sup_begin_shutdown(void)
{
	for (int i = 0; i < S.n_children; i++)
		evtimer_del(S.children[i].restart_ev);
	if (S.retention_ev)
		event_del(S.retention_ev);
	if (S.retention_pid > 0)
		kill(S.retention_pid, SIGTERM); /* an interrupted run is completed by the next one */
	S.stage = STAGE_RUNNING;
	S.stage_timer = evtimer_new(S.base, sup_stage_timeout_cb, NULL);
	clock_gettime(CLOCK_MONOTONIC, &S.stop_deadline);
	S.stop_deadline.tv_sec += S.cfg->supervisor.shutdown_timeout_s;
	http_server_stop_accepting(S.http);
	sup_advance_stage();
}

static bool sup_stage_has(sup_stage_t st, sup_role_t role)
{
	switch (st) {
	case STAGE_INGRESS: return role == ROLE_INGRESS;
	case STAGE_WORKERS: return role == ROLE_WORKER;
	case STAGE_NOTIFIER: return role == ROLE_NOTIFIER;
	case STAGE_BROKER: return role == ROLE_BROKER;
	case STAGE_POSTGRES: return role == ROLE_POSTGRES;
	default: return false;
	}
}

/* Moves to the next stage whose children are still running, signalling them. */
static void sup_advance_stage(void)
{
	for (;;) {
		bool waiting = false;
		for (int i = 0; i < S.n_children; i++)
			if (S.children[i].pid > 0 && (S.immediate || sup_stage_has(S.stage, S.children[i].role)))
				waiting = true;
		if (waiting)
			return;
		if (S.stage == STAGE_DONE || (S.immediate && S.stage != STAGE_RUNNING)) {
			S.stage = STAGE_DONE;
			event_base_loopbreak(S.base);
			return;
		}
		S.stage++;
		if (S.stage == STAGE_DONE) {
			event_base_loopbreak(S.base);
			return;
		}
		bool any = false;
		for (int i = 0; i < S.n_children; i++) {
			sup_child_t *c = &S.children[i];
			if (c->pid > 0 && sup_stage_has(S.stage, c->role)) {
				kill(c->pid, c->role == ROLE_POSTGRES ? SIGINT : SIGTERM);
				any = true;
			}
		}
		if (any) {
			struct timeval tv = sup_stage_budget();
			evtimer_add(S.stage_timer, &tv);
			return;
		}
	}
}

/* What is left of the stop's deadline for the current stage: one second is kept back for
 * each later stage that still has a process to stop (at least 100 ms for this one). */
static struct timeval sup_stage_budget(void)
{
	struct timespec now;
	long later = 0;
	for (sup_stage_t st = S.stage + 1; st < STAGE_DONE; st++)
		for (int i = 0; i < S.n_children; i++)
			if (S.children[i].pid > 0 && sup_stage_has(st, S.children[i].role)) {
				later++;
				break;
			}
	clock_gettime(CLOCK_MONOTONIC, &now);
	long ms = (S.stop_deadline.tv_sec - now.tv_sec) * 1000 + (S.stop_deadline.tv_nsec - now.tv_nsec) / 1000000 -
		  later * 1000;
	if (ms < 100)
		ms = 100;
	return (struct timeval){ms / 1000, (ms % 1000) * 1000};
}

static void sup_stage_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	for (int i = 0; i < S.n_children; i++) {
		sup_child_t *c = &S.children[i];
		if (c->pid > 0 && sup_stage_has(S.stage, c->role)) {
			log_warn("%s pid %d did not stop in its share of supervisor.shutdown_timeout_s (%d s): killing it",
				 sup_role_names[c->role], (int)c->pid, S.cfg->supervisor.shutdown_timeout_s);
			kill(c->pid, c->role == ROLE_POSTGRES ? SIGQUIT : SIGKILL);
		}
	}
}

/* SIGHUP: parse into a scratch copy; only a fully valid file replaces the reloadable keys. */
static void sup_reload(void)
{
	if (!proc_reload_config(S.cfg))
		return;
	for (int i = 0; i < S.n_children; i++)
		if (S.children[i].pid > 0 && S.children[i].role >= ROLE_INGRESS)
			kill(S.children[i].pid, SIGHUP);
	log_info("reload: configuration applied and forwarded to the children");
}

static void sup_http_cb(http_request_t *req, void *arg)
{
	(void)arg;
	const char *path = http_request_path(req);
	if (strcmp(path, "/healthz") == 0) {
		cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "processes");
		bool ok = S.stage == STAGE_RUNNING;
		for (int i = 0; i < S.n_children; i++) {
			sup_child_t *c = &S.children[i];
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "role", sup_role_names[c->role]);
			cJSON_AddNumberToObject(o, "index", c->index);
			cJSON_AddNumberToObject(o, "pid", c->pid);
			cJSON_AddBoolToObject(o, "up", c->pid > 0);
			cJSON_AddNumberToObject(o, "restarts", c->restarts);
			cJSON_AddNumberToObject(o, "uptime_s", c->pid > 0 ? (double)(time(NULL) - c->started) : 0);
			cJSON_AddItemToArray(arr, o);
			ok = ok && c->pid > 0;
		}
		cJSON_AddBoolToObject(root, "ok", ok);
		cJSON_AddNumberToObject(root, "epoch", (double)S.epoch);
		cJSON_AddStringToObject(root, "brokers", S.brokers);
		if (S.embedded_broker)
			cJSON_AddStringToObject(root, "broker_library", S.broker_library);
		char *json = cJSON_PrintUnformatted(root);
		http_respond_json(req, ok ? 200 : 503, json);
		free(json);
		cJSON_Delete(root);
		return;
	}
	if (strcmp(path, "/metrics") == 0) {
		/* every child's exported registry, labelled by process, plus our own view */
		char dir[1024], *own = NULL;
		size_t own_len = 0, len = 0;
		FILE *f = open_memstream(&own, &own_len);
		fprintf(f, "# HELP atende_process_up Whether the supervised process is running.\n"
			   "# TYPE atende_process_up gauge\n");
		for (int i = 0; i < S.n_children; i++)
			fprintf(f, "atende_process_up{process=\"%s\",index=\"%d\"} %d\n", sup_role_names[S.children[i].role],
				S.children[i].index, S.children[i].pid > 0);
		fprintf(f, "# HELP atende_process_restarts_total Crash restarts by the supervisor.\n"
			   "# TYPE atende_process_restarts_total counter\n");
		for (int i = 0; i < S.n_children; i++)
			fprintf(f, "atende_process_restarts_total{process=\"%s\",index=\"%d\"} %d\n",
				sup_role_names[S.children[i].role], S.children[i].index, S.children[i].restarts);
		fprintf(f, "# HELP atende_broker_epoch Incarnation of the broker's data (changes when it is lost); library: "
			   "the embedded broker's librdkafka (patched, stock) or external.\n"
			   "# TYPE atende_broker_epoch gauge\natende_broker_epoch{library=\"%s\"} %lld\n",
			S.embedded_broker ? S.broker_library : "external", S.epoch);
		fprintf(f, "# HELP atende_retention_runs_total Scheduled retention runs by result.\n"
			   "# TYPE atende_retention_runs_total counter\n"
			   "atende_retention_runs_total{result=\"ok\"} %d\natende_retention_runs_total{result=\"failed\"} %d\n"
			   "# HELP atende_retention_last_success_seconds Unix time of the last successful retention run (0: none yet).\n"
			   "# TYPE atende_retention_last_success_seconds gauge\natende_retention_last_success_seconds %lld\n",
			S.retention_runs[0], S.retention_runs[1], (long long)S.retention_last_ok);
		fclose(f);
		cfg_data_path(S.cfg, "run/metrics", dir, sizeof(dir));
		char *text = metrics_merge_dir(dir, 10, own, &len);
		http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
		free(text);
		free(own);
		return;
	}
	http_respond_error(req, 404, "no such path (try /healthz or /metrics)");
}

static void sup_describe_status(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exit status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "status 0x%x", status);
}

/* Starts `atende retention --log` without waiting: the SIGCHLD reaper collects it. It is
 * not a supervised child (no restart, no stage); a run still going is not doubled. */
static void sup_renice_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	for (int i = 0; i < S.n_children; i++)
		if (S.children[i].role == ROLE_POSTGRES && S.children[i].pid > 0)
			pgembed_renice_backends(S.children[i].pid, S.cfg->postgres.priority);
}

static void sup_retention_cb(evutil_socket_t fd, short what, void *arg)
{
	char exe[PATH_MAX + 16];
	(void)fd, (void)what, (void)arg;
	if (S.stage != STAGE_RUNNING)
		return;
	if (S.retention_pid > 0) {
		log_warn("retention pid %d still running: skipping this round", (int)S.retention_pid);
		return;
	}
	snprintf(exe, sizeof(exe), "%s/atende", S.self_dir);
	pid_t pid = fork();
	if (pid == 0) {
		proc_child_setup(S.pid);
		setenv(PROC_ENV_CONNINFO, S.cfg->postgres.admin_conninfo[0] ? S.cfg->postgres.admin_conninfo : S.conninfo, 1);
		char *argv[] = {exe, "retention", "-c", S.cfg->path, "--log", NULL};
		execv(exe, argv);
		_exit(127);
	}
	if (pid < 0) {
		log_error("cannot start retention: %s", strerror(errno));
		return;
	}
	S.retention_pid = pid;
}
