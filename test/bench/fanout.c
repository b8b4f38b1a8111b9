/*
 * fanout: counting the fan-out run's deliveries. Frames are matched by fixed positions and
 * plain searches instead of a JSON parse: at a million deliveries per second the bench must stay
 * cheaper than the notifier it measures.
 */
#include "fanout.h"

#include "loop.h"
#include "report.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FAN_HIST_BUCKETS (1 << 20) /* latency histogram, 0.1 ms buckets (up to ~105 s) */
#define FAN_QUIET_S 3              /* no frame of the run for this long ends the wait */
#define FAN_EXTRA_S 30             /* the most it waits for frames after the drain */

static struct {
	const char *prefix;     /* message ids of the run start with it */
	size_t prefix_len;
	uint64_t deliveries, other_frames;
	double t_send0_ms, t_first_ms, t_last_ms; /* wall clock, ms */
	uint32_t *hist;         /* publish->deliver of message events, 0.1 ms buckets */
	uint64_t n_lat;
	double lat_max;
	long long seq_base;     /* first seq the run's events can have */
	bool have_base;
	uint32_t *seq_count;    /* per event (seq - seq_base): subscribers that received it */
	double *seq_first, *seq_last;
	size_t seq_cap;
	uint64_t events_msg, events_hint; /* distinct events of the run seen */
	char ts_prefix[20];     /* "YYYY-MM-DDTHH:MM:SS" last parsed, and its Unix time */
	long long ts_sec;
} F;

static void fan_seq(long long seq, double now_ms, bool is_msg);
static double fan_created_ms(const char *data, size_t len);

bool fan_init(const char *prefix, size_t prefix_len)
{
	memset(&F, 0, sizeof(F));
	F.prefix = prefix;
	F.prefix_len = prefix_len;
	F.hist = xcalloc(FAN_HIST_BUCKETS, sizeof(*F.hist));
	return F.hist != NULL;
}

void fan_ack_seq(long long seq)
{
	if (!F.have_base || seq + 1 < F.seq_base)
		F.seq_base = seq + 1;
	F.have_base = true;
}

void fan_start(void)
{
	F.t_send0_ms = loop_wall_ms();
}

/* The type from the frame's fixed start, the run's id prefix near the start (message_id /
 * message_ids come first in data), the seq, and for message events data.created_at from the
 * frame's tail. */
void fan_frame(const char *data, size_t len, uint64_t *frames)
{
	bool is_msg;
	if (len > 40 && memcmp(data, "{\"type\":\"message\"", 17) == 0)
		is_msg = true;
	else if (len > 40 && memcmp(data, "{\"type\":\"hint\"", 14) == 0)
		is_msg = false;
	else {
		F.other_frames++;
		return;
	}
	size_t head = len < 384 ? len : 384;
	if (!memmem(data, head, F.prefix, F.prefix_len)) {
		F.other_frames++; /* another run's, or another gateway's */
		return;
	}
	double now = loop_wall_ms();
	F.deliveries++;
	(*frames)++;
	if (F.t_first_ms == 0)
		F.t_first_ms = now;
	F.t_last_ms = now;
	const char *p = memmem(data, head, "\"seq\":", 6);
	if (p)
		fan_seq(strtoll(p + 6, NULL, 10), now, is_msg);
	if (!is_msg)
		return;
	double created = fan_created_ms(data, len);
	if (created <= 0)
		return;
	double lat = now - created;
	size_t b = lat > 0 ? (size_t)(lat * 10.0) : 0;
	F.hist[b < FAN_HIST_BUCKETS ? b : FAN_HIST_BUCKETS - 1]++;
	F.n_lat++;
	if (lat > F.lat_max)
		F.lat_max = lat;
}

bool fan_settled(double now, double drain_end, uint64_t acked, uint64_t hints, bool all_hinted, int subscribers)
{
	uint64_t events = (acked > F.events_msg ? acked : F.events_msg) + (hints > F.events_hint ? hints : F.events_hint);
	if (all_hinted && F.deliveries >= events * (uint64_t)subscribers)
		return true;
	double last = F.t_last_ms > 0 ? F.t_last_ms : F.t_send0_ms;
	return loop_wall_ms() - last >= FAN_QUIET_S * 1000.0 || now >= drain_end + FAN_EXTRA_S;
}

uint64_t fan_deliveries(void)
{
	return F.deliveries;
}

/* The subscribers are the watcher (agent 1) and agents 2..S.
 * expected = S x the run's events (one message event per acknowledged webhook, and the hint
 * events, fewer when the smart buffer grouped messages); spread = last minus first subscriber
 * to get an event. */
void fan_report(const fan_totals_t *t)
{
	report_line_t line;
	FILE *f = report_begin(&line);
	if (!f)
		return;
	uint64_t ev_msg = t->acked > F.events_msg ? t->acked : F.events_msg;
	uint64_t ev_hint = t->hints > F.events_hint ? t->hints : F.events_hint;
	uint64_t expected = (ev_msg + ev_hint) * (uint64_t)t->o->fanout;
	double span = (F.t_last_ms - F.t_first_ms) / 1000.0, window = t->window;
	int complete = t->watcher_frames >= ev_msg + ev_hint;
	for (int i = 0; i < t->subs->n; i++)
		complete += t->subs->socks[i].frames >= ev_msg + ev_hint;
	if (window <= 0)
		window = 1e-9;
	fprintf(f, "{\"bench\":\"fanout\",\"subscribers\":%d,\"messages\":%ld,\"rate\":%g,\"acked\":%llu,\"rejected\":%llu,"
		   "\"events\":{\"message\":%llu,\"hint\":%llu},\"deliveries\":%llu,\"expected\":%llu,\"missing\":%llu,"
		   "\"subscribers_complete\":%d,\"cut\":%d,\"deliveries_per_s\":%.0f,\"delivery_window_s\":%.3f,",
		t->o->fanout, t->o->messages, t->o->rate, (unsigned long long)t->acked, (unsigned long long)t->rejected,
		(unsigned long long)ev_msg, (unsigned long long)ev_hint, (unsigned long long)F.deliveries,
		(unsigned long long)expected, (unsigned long long)(expected > F.deliveries ? expected - F.deliveries : 0),
		complete, t->cut, span > 0 ? (double)F.deliveries / span : 0.0, span > 0 ? span : 0.0);
	report_hist(f, "deliver_ms", F.hist, F.n_lat, F.lat_max);
	size_t n = 0;
	double *spread = xmalloc((F.seq_cap ? F.seq_cap : 1) * sizeof(double));
	for (size_t i = 0; spread && i < F.seq_cap; i++)
		if (F.seq_count[i])
			spread[n++] = F.seq_last[i] - F.seq_first[i];
	fputc(',', f);
	report_latency(f, "spread_ms", spread, n);
	free(spread);
	const sample_proc_t *ntf = sample_find(t->procs, "notifier"), *self = sample_find(t->procs, "bench");
	if (ntf && ntf->cpu_s >= 0)
		fprintf(f, ",\"notifier_cpu_pct\":%.1f,\"notifier_rss_mb\":%.1f", 100.0 * ntf->cpu_s / window, ntf->rss_mb);
	else
		fprintf(f, ",\"notifier_cpu_pct\":null,\"notifier_rss_mb\":null");
	if (self && self->cpu_s >= 0)
		fprintf(f, ",\"bench_cpu_pct\":%.1f", 100.0 * self->cpu_s / window);
	fprintf(f, ",\"window_s\":%.2f,\"other_frames\":%llu,\"notifier_restarted\":%s,\"interrupted\":%s}", window,
		(unsigned long long)F.other_frames, ntf && ntf->restarted ? "true" : "false", t->interrupted ? "true" : "false");
	report_end(&line);
}


void fan_free(void)
{
	free(F.hist);
	free(F.seq_count);
	free(F.seq_first);
	free(F.seq_last);
	memset(&F, 0, sizeof(F));
}

/* Counts a delivery of event seq: how many subscribers got it, the first and the last time. */
static void fan_seq(long long seq, double now_ms, bool is_msg)
{
	if (!F.have_base || seq < F.seq_base)
		return;
	size_t i = (size_t)(seq - F.seq_base);
	if (i >= F.seq_cap) {
		size_t cap = F.seq_cap ? F.seq_cap : 4096;
		while (cap <= i)
			cap *= 2;
		if (cap > ((size_t)1 << 26))
			return; /* a seq far beyond the run's: not tracked */
		uint32_t *c = xrealloc(F.seq_count, cap * sizeof(*c));
		if (!c)
			return;
		F.seq_count = c;
		double *fi = xrealloc(F.seq_first, cap * sizeof(*fi));
		if (!fi)
			return;
		F.seq_first = fi;
		double *la = xrealloc(F.seq_last, cap * sizeof(*la));
		if (!la)
			return;
		F.seq_last = la;
		memset(c + F.seq_cap, 0, (cap - F.seq_cap) * sizeof(*c));
		F.seq_cap = cap;
	}
	if (F.seq_count[i]++ == 0) {
		F.seq_first[i] = now_ms;
		if (is_msg)
			F.events_msg++;
		else
			F.events_hint++;
	}
	F.seq_last[i] = now_ms;
}

/* data.created_at of a message event (the ingress's receive time, ISO with ms) in Unix ms, -1 when
 * absent. The worker writes it last in data: the frame's tail is tried before a search, and the
 * seconds part is converted once per second of timestamps. */
static double fan_created_ms(const char *data, size_t len)
{
	static const char key[] = "\"created_at\":\"";
	const size_t kl = sizeof(key) - 1;
	const char *v = NULL;
	if (len >= kl + 27 && memcmp(data + len - 27 - kl, key, kl) == 0) { /* ..."created_at":"<24>"}} */
		v = data + len - 27;
	} else {
		const char *k = memmem(data, len, key, kl);
		if (k && (size_t)(data + len - (k + kl)) >= 24)
			v = k + kl;
	}
	if (!v || v[4] != '-' || v[10] != 'T' || v[19] != '.' || v[23] != 'Z')
		return -1;
	if (memcmp(v, F.ts_prefix, 19) != 0) {
		struct tm tm;
		memset(&tm, 0, sizeof(tm));
		if (sscanf(v, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
			   &tm.tm_sec) != 6)
			return -1;
		tm.tm_year -= 1900;
		tm.tm_mon -= 1;
		F.ts_sec = (long long)timegm(&tm);
		memcpy(F.ts_prefix, v, 19);
	}
	return (double)F.ts_sec * 1e3 + (v[20] - '0') * 100 + (v[21] - '0') * 10 + (v[22] - '0');
}
