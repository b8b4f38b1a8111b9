/*
 * broker: embedded broker process (see broker.h). The proxy is a plain byte pump: each
 * accepted connection gets a bufferevent pair to the mock's bootstrap port, with
 * high-water marks so a slow side pauses the other instead of buffering without bound.
 */
#include "broker.h"
#include "log.h"
#include "proc.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <arpa/inet.h>
#include <dlfcn.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define BROKER_PIPE_HIGH (4 * 1024 * 1024)

typedef struct {
	struct event_base *base;
	struct sockaddr_in upstream;
	rd_kafka_mock_cluster_t *mc;
	struct evconnlistener *listener; /* NULL once stopping */
	int proxy_port;
	int linger_s;                    /* how long a stop waits for the clients to leave */
	struct event *linger_ev;         /* while stopping: polls for clients still connected */
	struct timeval stop_at;
	pid_t parent;                    /* the supervisor that started us */
	int orphan_keep_s;               /* kafka.embedded_orphan_keep_s */
	struct event *orphan_ev;         /* once orphaned: polls for clients */
	time_t orphan_idle_since;        /* 0 while some client is connected */
} broker_proxy_t;

static void broker_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg);
static void broker_pump_read_cb(struct bufferevent *bev, void *arg);
static void broker_pump_write_cb(struct bufferevent *bev, void *arg);
static void broker_pump_event_cb(struct bufferevent *bev, short what, void *arg);
static void broker_signal_cb(evutil_socket_t sig, short what, void *arg);
static void broker_outage_cb(evutil_socket_t sig, short what, void *arg);
static bool broker_create_topics(rd_kafka_mock_cluster_t *mc, const cfg_t *cfg);
static void broker_linger_cb(evutil_socket_t fd, short what, void *arg);
static const char *broker_library(const cfg_t *cfg);
static void broker_orphan_cb(evutil_socket_t fd, short what, void *arg);
static void broker_parent_gone_cb(evutil_socket_t sig, short what, void *arg);
static int broker_clients(const broker_proxy_t *p);

int broker_main(const cfg_t *cfg, int ready_fd)
{
	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	/* this handle only hosts the mock cluster; it never connects, so hush its config notice */
	rd_kafka_conf_set(conf, "log_level", "4", err, sizeof(err));
	/* The mock's sockets take this handle's settings. With Nagle on, a response written while the
	 * client still had an unacknowledged request in flight waited for that ACK: at 500 msg/s half
	 * of the ingress's acks took ~4 ms instead of ~0.5 ms. */
	rd_kafka_conf_set(conf, "socket.nagle.disable", "true", err, sizeof(err));
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!rk) {
		log_error("embedded broker: %s", err);
		return 1;
	}
	rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, 1);
	if (!mc) {
		log_error("embedded broker: cannot create the mock cluster");
		rd_kafka_destroy(rk);
		return 1;
	}
	if (!broker_create_topics(mc, cfg)) {
		rd_kafka_mock_cluster_destroy(mc);
		rd_kafka_destroy(rk);
		return 1;
	}
	const char *bootstrap = rd_kafka_mock_cluster_bootstraps(mc);

	broker_proxy_t proxy = {0};
	char host[64];
	const char *colon = strrchr(bootstrap, ':');
	snprintf(host, sizeof(host), "%.*s", (int)(colon - bootstrap), bootstrap);
	proxy.upstream.sin_family = AF_INET;
	proxy.upstream.sin_port = htons((uint16_t)atoi(colon + 1));
	inet_pton(AF_INET, "127.0.0.1", &proxy.upstream.sin_addr);

	proxy.base = event_base_new();
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg->kafka.embedded_port)};
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	struct evconnlistener *l = evconnlistener_new_bind(proxy.base, broker_accept_cb, &proxy,
							   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 128,
							   (struct sockaddr *)&sin, sizeof(sin));
	if (!l) {
		log_error("embedded broker: cannot listen on 127.0.0.1:%d (kafka.embedded_port): %s",
			  cfg->kafka.embedded_port, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		event_base_free(proxy.base);
		rd_kafka_mock_cluster_destroy(mc);
		rd_kafka_destroy(rk);
		return 1;
	}
	proxy.mc = mc;
	proxy.listener = l;
	proxy.proxy_port = cfg->kafka.embedded_port;
	proxy.linger_s = cfg->supervisor.shutdown_timeout_s;
	struct event *sigterm = evsignal_new(proxy.base, SIGTERM, broker_signal_cb, &proxy);
	struct event *sigint = evsignal_new(proxy.base, SIGINT, broker_signal_cb, &proxy);
	struct event *sigusr1 = evsignal_new(proxy.base, SIGUSR1, broker_outage_cb, &proxy);
	struct event *sigusr2 = evsignal_new(proxy.base, SIGUSR2, broker_outage_cb, &proxy);
	event_add(sigterm, NULL);
	event_add(sigint, NULL);
	event_add(sigusr1, NULL);
	event_add(sigusr2, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* The supervisor's death is SIGHUP here, not the children's SIGTERM: the topics, which
	 * hold what the ingress acknowledged and the workers have not finished, outlive it for
	 * the next `atende run` to adopt (supervisor/sup.c). 0 keeps the old way: stop with it. */
	proxy.parent = getppid();
	proxy.orphan_keep_s = cfg->kafka.embedded_orphan_keep_s;
	struct event *sighup = evsignal_new(proxy.base, SIGHUP, broker_parent_gone_cb, &proxy);
	event_add(sighup, NULL);
	if (proxy.orphan_keep_s > 0)
		proc_die_with_parent(proxy.parent, SIGHUP);

	char line[256];
	const char *lib = broker_library(cfg);
	/* the patch's third part (atende-mock-3 on) ends a held fetch when data arrives */
	const char *(*patch_str)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "rd_kafka_mock_patch_str");
	bool wakes = patch_str && strstr(patch_str(), "new data ends the wait");
	/* the patch's fifth part (atende-mock-5 on): those wakes a little later, gathered */
	void (*set_wake_delay)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "rd_kafka_mock_set_fetch_wake_delay");
	if (set_wake_delay) {
		set_wake_delay(cfg->kafka.embedded_fetch_coalesce_ms);
		log_info("embedded broker: new data ends a waiting fetch %d ms later (kafka.embedded_fetch_coalesce_ms)",
			 cfg->kafka.embedded_fetch_coalesce_ms);
	} else if (wakes && cfg->kafka.embedded_fetch_coalesce_ms > 0)
		log_warn("embedded broker: kafka.embedded_fetch_coalesce_ms needs a newer patched librdkafka "
			 "(deploy/rdkafka-mock.sh); fetches are woken at once");
	int n = snprintf(line, sizeof(line), "BOOTSTRAP %s %s%s\n", bootstrap, lib, wakes ? " wakes" : "");
	if (write(ready_fd, line, (size_t)n) != n)
		log_warn("embedded broker: cannot report the bootstrap address");
	close(ready_fd);
	log_info("embedded broker up: in-memory, bootstrap %s, proxied at 127.0.0.1:%d", bootstrap, cfg->kafka.embedded_port);

	event_base_dispatch(proxy.base);

	log_info("embedded broker stopping (its data is in memory and is gone)");
	if (proxy.listener)
		evconnlistener_free(proxy.listener);
	if (proxy.linger_ev)
		event_free(proxy.linger_ev);
	if (proxy.orphan_ev)
		event_free(proxy.orphan_ev);
	event_free(sighup);
	event_free(sigterm);
	event_free(sigint);
	event_free(sigusr1);
	event_free(sigusr2);
	event_base_free(proxy.base);
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(rk);
	return 0;
}

/* Which librdkafka this process got, logged once: "patched" when the library exports the
 * marker of deploy/rdkafka-mock.patch, else "stock", with a warning when the patched one was
 * wanted (kafka.embedded_patched) but is missing or did not load. */
static const char *broker_library(const cfg_t *cfg)
{
	const char *(*patch_str)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "rd_kafka_mock_patch_str");
	const char *wanted = getenv(PROC_ENV_BROKER_LIBRARY);
	if (patch_str) {
		log_info("embedded broker on the patched librdkafka %s (%s): %s", rd_kafka_version_str(),
			 wanted ? wanted : "found on the loader's path", patch_str());
		return "patched";
	}
	if (!cfg->kafka.embedded_patched)
		log_info("embedded broker on Debian's librdkafka %s (kafka.embedded_patched is false)", rd_kafka_version_str());
	else if (wanted)
		log_warn("embedded broker: %s did not load; on Debian's stock librdkafka %s instead, whose fetches "
			 "slow down once partitions fill (README, \"The embedded broker\")", wanted, rd_kafka_version_str());
	else
		log_warn("embedded broker on Debian's stock librdkafka %s: no bin/rdkafka-mock/librdkafka.so.1 "
			 "(deploy/rdkafka-mock.sh builds it; make run/test/bench call it), so fetches slow down once "
			 "partitions fill (README, \"The embedded broker\")", rd_kafka_version_str());
	return "stock";
}

static bool broker_create_topics(rd_kafka_mock_cluster_t *mc, const cfg_t *cfg)
{
	char topic[256];
	for (int i = 0; i < CFG_MAX_DOMAINS + CFG_N_OTHER_TOPICS; i++) {
		const char *suffix = i < CFG_MAX_DOMAINS ? cfg_domains[i] : cfg_other_topics[i - CFG_MAX_DOMAINS];
		cfg_topic(cfg, suffix, topic, sizeof(topic));
		rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, topic, cfg_topic_partitions(cfg, suffix), 1);
		if (e) {
			log_error("embedded broker: create topic %s: %s", topic, rd_kafka_err2str(e));
			return false;
		}
	}
	return true;
}

static void broker_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
	broker_proxy_t *p = arg;
	(void)l, (void)sa, (void)len;
	struct bufferevent *down = bufferevent_socket_new(p->base, fd, BEV_OPT_CLOSE_ON_FREE);
	struct bufferevent *up = bufferevent_socket_new(p->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!down || !up || bufferevent_socket_connect(up, (struct sockaddr *)&p->upstream, sizeof(p->upstream)) < 0) {
		if (down)
			bufferevent_free(down);
		if (up)
			bufferevent_free(up);
		return;
	}
	bufferevent_setcb(down, broker_pump_read_cb, NULL, broker_pump_event_cb, up);
	bufferevent_setcb(up, broker_pump_read_cb, NULL, broker_pump_event_cb, down);
	bufferevent_enable(down, EV_READ | EV_WRITE);
	bufferevent_enable(up, EV_READ | EV_WRITE);
}

static void broker_pump_read_cb(struct bufferevent *bev, void *arg)
{
	struct bufferevent *other = arg;
	bufferevent_write_buffer(other, bufferevent_get_input(bev));
	if (evbuffer_get_length(bufferevent_get_output(other)) >= BROKER_PIPE_HIGH) {
		bufferevent_disable(bev, EV_READ);
		bufferevent_setwatermark(other, EV_WRITE, BROKER_PIPE_HIGH / 2, 0);
		bufferevent_setcb(other, broker_pump_read_cb, broker_pump_write_cb, broker_pump_event_cb, bev);
	}
}

/* The other side drained: resume reading from the side that filled it. */
static void broker_pump_write_cb(struct bufferevent *bev, void *arg)
{
	struct bufferevent *other = arg;
	bufferevent_setcb(bev, broker_pump_read_cb, NULL, broker_pump_event_cb, other);
	bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
	bufferevent_enable(other, EV_READ);
}

static void broker_pump_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct bufferevent *other = arg;
	if (what & BEV_EVENT_CONNECTED)
		return;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		/* flush what we have to the other side, then drop both */
		bufferevent_write_buffer(other, bufferevent_get_input(bev));
		bufferevent_free(bev);
		bufferevent_setcb(other, NULL, NULL, NULL, NULL);
		bufferevent_free(other);
	}
}

/* Outage drill: SIGUSR1 takes the broker down (connections dropped and refused, data
 * kept), SIGUSR2 brings it back. Lets ops and tests rehearse a broker outage without
 * losing the in-memory data, which a restart would. */
static void broker_outage_cb(evutil_socket_t sig, short what, void *arg)
{
	broker_proxy_t *p = arg;
	(void)what;
	if (sig == SIGUSR1) {
		rd_kafka_mock_broker_set_down(p->mc, 1);
		log_warn("embedded broker: outage drill: down (SIGUSR2 ends it)");
	} else {
		rd_kafka_mock_broker_set_up(p->mc, 1);
		log_info("embedded broker: outage drill over: up");
	}
}

/* SIGTERM or SIGINT: refuse new connections and stop when the last client has gone
 * (bounded by supervisor.shutdown_timeout_s); a second signal stops at once. The
 * supervisor stops the broker after the workers, so normally no client is left; but
 * when the supervisor is killed every child gets SIGTERM together, and the workers
 * still draining must be able to commit and publish what they finish. */
static void broker_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	broker_proxy_t *p = arg;
	(void)what;
	if (!p->listener) {
		event_base_loopbreak(p->base);
		return;
	}
	evconnlistener_free(p->listener);
	p->listener = NULL;
	log_info("signal %d: embedded broker stopping once its clients have left (at most %d s)", (int)sig, p->linger_s);
	gettimeofday(&p->stop_at, NULL);
	p->stop_at.tv_sec += p->linger_s;
	p->linger_ev = event_new(p->base, -1, EV_PERSIST, broker_linger_cb, p);
	struct timeval every = {0, 100 * 1000};
	event_add(p->linger_ev, &every);
	broker_linger_cb(-1, 0, p);
}

/* Clients connect to the mock's own port (its metadata names it), not through the
 * proxy: count the connections the kernel holds on either port. */
static int broker_clients(const broker_proxy_t *p)
{
	return proc_tcp_count(ntohs(p->upstream.sin_port), PROC_TCP_ESTABLISHED) +
	       proc_tcp_count(p->proxy_port, PROC_TCP_ESTABLISHED);
}

static void broker_linger_cb(evutil_socket_t fd, short what, void *arg)
{
	broker_proxy_t *p = arg;
	struct timeval now;
	(void)fd, (void)what;
	int clients = broker_clients(p);
	gettimeofday(&now, NULL);
	if (clients <= 0) {
		log_info("embedded broker: no client left");
		event_base_loopbreak(p->base);
	} else if (!timercmp(&now, &p->stop_at, <)) {
		log_warn("embedded broker: %d connections still open after %d s: stopping anyway", clients, p->linger_s);
		event_base_loopbreak(p->base);
	}
}

/* SIGHUP: the kernel's parent-death signal (nobody else sends it; the supervisor forwards
 * reloads to the pipeline processes only). From now on the broker waits to be adopted: the
 * old children drain and leave, the next supervisor's connect, and it stops only after
 * kafka.embedded_orphan_keep_s without any client (nobody came back for the data). */
static void broker_parent_gone_cb(evutil_socket_t sig, short what, void *arg)
{
	broker_proxy_t *p = arg;
	(void)sig, (void)what;
	if (getppid() == p->parent || p->orphan_ev || !p->listener)
		return;
	log_warn("embedded broker: the supervisor (pid %d) is gone; keeping the topics for the next `atende run` "
		 "to adopt, stopping after %d s without clients (kafka.embedded_orphan_keep_s)",
		 (int)p->parent, p->orphan_keep_s);
	p->orphan_ev = event_new(p->base, -1, EV_PERSIST, broker_orphan_cb, p);
	struct timeval every = {1, 0};
	event_add(p->orphan_ev, &every);
}

static void broker_orphan_cb(evutil_socket_t fd, short what, void *arg)
{
	broker_proxy_t *p = arg;
	(void)fd, (void)what;
	time_t now = time(NULL);
	if (broker_clients(p) > 0) {
		p->orphan_idle_since = 0;
	} else if (!p->orphan_idle_since) {
		p->orphan_idle_since = now;
	} else if (now - p->orphan_idle_since >= p->orphan_keep_s) {
		log_warn("embedded broker: no supervisor adopted me and no client for %d s: stopping (the data goes)",
			 p->orphan_keep_s);
		event_base_loopbreak(p->base);
	}
}
