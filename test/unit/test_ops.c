/* Unit tests of the ops CLI's pure parts: the Prometheus text reader behind `atende
 * status` (samples, labels with escapes), the CSV record counter that retention uses
 * to check an archive before dropping its partition, the open-files limit raise, and
 * the /proc socket readers behind the start-up port check and the broker's stop. */
#include "proc.h"
#include "retention.h"
#include "status.h"
#include "unit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

TEST(parse_prometheus_text)
{
	status_samples_t s = {0};
	status_parse_metrics("# HELP atende_x_total X.\n# TYPE atende_x_total counter\n"
			     "atende_x_total{process=\"worker\",index=\"1\",result=\"stored\"} 42\n"
			     "atende_up 1\n"
			     "atende_lat_bucket{le=\"+Inf\",path=\"/a}b\"} 3\n"
			     "atende_g{reason=\"say \\\"hi\\\", ok\"} -2.5e1\n"
			     "garbage line without value\n"
			     "atende_last 7",
			     &s);
	CHECK(s.n == 5);
	CHECK_STR(s.v[0].name, "atende_x_total");
	CHECK_STR(s.v[0].labels, "process=\"worker\",index=\"1\",result=\"stored\"");
	CHECK(s.v[0].value == 42);
	CHECK_STR(s.v[1].name, "atende_up");
	CHECK_STR(s.v[1].labels, "");
	CHECK_STR(s.v[2].labels, "le=\"+Inf\",path=\"/a}b\"");
	CHECK(s.v[3].value == -25);
	CHECK_STR(s.v[4].name, "atende_last");
	char buf[64];
	CHECK(status_label(s.v[0].labels, "index", buf, sizeof(buf)) && strcmp(buf, "1") == 0);
	CHECK(status_label(s.v[0].labels, "result", buf, sizeof(buf)) && strcmp(buf, "stored") == 0);
	CHECK(!status_label(s.v[0].labels, "proc", buf, sizeof(buf)));
	CHECK(status_label(s.v[3].labels, "reason", buf, sizeof(buf)) && strcmp(buf, "say \\\"hi\\\", ok") == 0);
	CHECK(status_label(s.v[2].labels, "path", buf, sizeof(buf)) && strcmp(buf, "/a}b") == 0);
	status_samples_free(&s);
	CHECK(s.n == 0 && s.v == NULL);
}

TEST(csv_records_ignore_newlines_in_quotes)
{
	bool quoted = false;
	const char *csv = "id,text\n1,plain\n2,\"two\nlines, \"\"quoted\"\"\"\n3,\"\"\n";
	CHECK(retention_csv_records(csv, strlen(csv), &quoted) == 4);
	CHECK(!quoted);
	/* split inside a quoted field: the state carries over */
	quoted = false;
	const char *a = "id,text\n1,\"a\nb", *b = "c\"\n2,x\n";
	long long n = retention_csv_records(a, strlen(a), &quoted);
	CHECK(n == 1 && quoted);
	n += retention_csv_records(b, strlen(b), &quoted);
	CHECK(n == 3 && !quoted);
}

/* Whether this process may raise hard limits (CAP_SYS_RESOURCE, bit 24 of CapEff):
 * root in a container often may not. */
static int may_raise_hard_limits(void)
{
	char line[256];
	unsigned long long eff = 0;
	FILE *f = fopen("/proc/self/status", "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &eff) == 1)
			break;
	if (f)
		fclose(f);
	return (eff >> 24) & 1;
}

/* In a child, as limits are per process: the soft limit rises to what is asked within the
 * hard one and is never lowered; above the hard one, both move only when privileged. */
TEST(raise_nofile_within_and_above_the_hard_limit)
{
	int privileged = may_raise_hard_limits();
	pid_t pid = fork();
	if (pid == 0) {
		struct rlimit low = {64, 128}, now;
		int bad = setrlimit(RLIMIT_NOFILE, &low) != 0;
		bad += proc_raise_nofile(100) != 100;
		getrlimit(RLIMIT_NOFILE, &now);
		bad += now.rlim_cur != 100 || now.rlim_max != 128;
		bad += proc_raise_nofile(50) != 100;
		long got = proc_raise_nofile(500);
		getrlimit(RLIMIT_NOFILE, &now);
		bad += privileged ? got != 500 || now.rlim_max != 500 : got != 128 || now.rlim_cur != 128 || now.rlim_max != 128;
		_exit(bad);
	}
	int status = -1;
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(port_holder_and_connections_from_proc)
{
	char name[64];
	int listener = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	CHECK(bind(listener, (struct sockaddr *)&sin, sizeof(sin)) == 0 && listen(listener, 4) == 0);
	CHECK(getsockname(listener, (struct sockaddr *)&sin, &len) == 0);
	int port = ntohs(sin.sin_port);
	CHECK(proc_port_holder(port, name, sizeof(name)) == getpid());
	CHECK_STR(name, "test_ops");
	CHECK(proc_tcp_count(port, PROC_TCP_LISTEN) == 1);
	CHECK(proc_tcp_count(port, PROC_TCP_ESTABLISHED) == 0);
	int client = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(connect(client, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	int served = accept(listener, NULL, NULL);
	CHECK(proc_tcp_count(port, PROC_TCP_ESTABLISHED) == 1); /* the served end; the client's is another port */
	close(client);
	close(served);
	close(listener);
	CHECK(proc_port_holder(port, name, sizeof(name)) == 0);
	CHECK(proc_tcp_count(port, PROC_TCP_LISTEN) == 0);
}

int main(void)
{
	RUN(parse_prometheus_text);
	RUN(csv_records_ignore_newlines_in_quotes);
	RUN(raise_nofile_within_and_above_the_hard_limit);
	RUN(port_holder_and_connections_from_proc);
	return unit_done();
}
