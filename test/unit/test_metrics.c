/* Unit tests of the metrics registry: Prometheus text rendering (counters, gauges,
 * cumulative histogram buckets) and the supervisor's merge of exported files. */
#include "metrics.h"
#include "unit.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

TEST(render_counters_gauges_histograms)
{
	metrics_family_t *req = metrics_family("atende_test_requests_total", METRICS_COUNTER, "Requests.", NULL, 0);
	metrics_inc(req, "route=\"/a\",status=\"200\"");
	metrics_inc(req, "route=\"/a\",status=\"200\"");
	metrics_inc(req, "route=\"/a\",status=\"503\"");
	CHECK(metrics_family("atende_test_requests_total", METRICS_COUNTER, "x", NULL, 0) == req);
	metrics_gauge_set(metrics_family("atende_test_connections", METRICS_GAUGE, "Open.", NULL, 0), "", 7);
	const double b[] = {0.01, 0.1, 1};
	metrics_series_t *h = metrics_series(metrics_family("atende_test_latency_seconds", METRICS_HISTOGRAM, "Latency.", b, 3), "");
	metrics_observe(h, 0.005);
	metrics_observe(h, 0.05);
	metrics_observe(h, 0.05);
	metrics_observe(h, 5);
	size_t len;
	char *t = metrics_render(&len);
	CHECK(strlen(t) == len);
	CHECK(strstr(t, "# TYPE atende_test_requests_total counter\n") != NULL);
	CHECK(strstr(t, "atende_test_requests_total{route=\"/a\",status=\"200\"} 2\n") != NULL);
	CHECK(strstr(t, "atende_test_requests_total{route=\"/a\",status=\"503\"} 1\n") != NULL);
	CHECK(strstr(t, "atende_test_connections 7\n") != NULL);
	CHECK(strstr(t, "atende_test_latency_seconds_bucket{le=\"0.01\"} 1\n") != NULL);
	CHECK(strstr(t, "atende_test_latency_seconds_bucket{le=\"0.1\"} 3\n") != NULL);
	CHECK(strstr(t, "atende_test_latency_seconds_bucket{le=\"1\"} 3\n") != NULL);
	CHECK(strstr(t, "atende_test_latency_seconds_bucket{le=\"+Inf\"} 4\n") != NULL);
	CHECK(strstr(t, "atende_test_latency_seconds_count 4\n") != NULL);
	CHECK(strstr(t, "atende_test_latency_seconds_sum 5.105\n") != NULL);
	free(t);
}

TEST(merge_adds_process_labels_and_groups_families)
{
	char dir[] = "/tmp/atende-metrics-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char p1[128], p2[128];
	snprintf(p1, sizeof(p1), "%s/worker-0.prom", dir);
	snprintf(p2, sizeof(p2), "%s/worker-1.prom", dir);
	FILE *f = fopen(p1, "w");
	fputs("# HELP atende_x_total X.\n# TYPE atende_x_total counter\natende_x_total 3\n"
	      "# HELP atende_y_seconds Y.\n# TYPE atende_y_seconds histogram\natende_y_seconds_bucket{le=\"1\"} 2\n", f);
	fclose(f);
	f = fopen(p2, "w");
	fputs("# HELP atende_x_total X.\n# TYPE atende_x_total counter\natende_x_total{k=\"v\"} 5\n", f);
	fclose(f);
	size_t len;
	char *t = metrics_merge_dir(dir, 60, "atende_up 1\n", &len);
	CHECK(strstr(t, "atende_x_total{process=\"worker\",index=\"0\"} 3\n") != NULL);
	CHECK(strstr(t, "atende_x_total{process=\"worker\",index=\"1\",k=\"v\"} 5\n") != NULL);
	CHECK(strstr(t, "atende_y_seconds_bucket{process=\"worker\",index=\"0\",le=\"1\"} 2\n") != NULL);
	/* one HELP per family, samples of a family together */
	char *first = strstr(t, "# HELP atende_x_total");
	CHECK(first && !strstr(first + 1, "# HELP atende_x_total"));
	char *y = strstr(t, "# HELP atende_y_seconds");
	CHECK(y && strstr(t, "index=\"1\",k=\"v\"") < y);
	CHECK(strstr(t, "atende_up 1\n") != NULL);
	free(t);
	unlink(p1), unlink(p2), rmdir(dir);
}

int main(void)
{
	RUN(render_counters_gauges_histograms);
	RUN(merge_adds_process_labels_and_groups_families);
	return unit_done();
}
