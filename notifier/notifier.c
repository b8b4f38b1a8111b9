/*
 * notifier: the notifier process's shared state (see notifier.h), its clock and its metrics.
 */
#include "notifier.h"

#include "api.h"
#include "login.h"
#include "metrics.h"

#include <sys/time.h>

ntf_t N;

long long ntf_now_ms(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* The counters are kept as plain fields on the hot paths and copied into the registry
 * when it is rendered or exported (every second, for the supervisor's merged /metrics). */
void ntf_metrics_refresh(void)
{
	static const struct { const char *name, *help; bool counter; } defs[] = {
		{"atende_notifier_connections", "Open WebSocket connections.", false},
		{"atende_notifier_polls_waiting", "Long-poll requests waiting for events.", false},
		{"atende_notifier_typing_active", "Typing states this instance is timing.", false},
		{"atende_notifier_events_total", "Events read from atende.events.", true},
		{"atende_notifier_deliveries_total", "Frames delivered to subscribers.", true},
		{"atende_notifier_slow_consumer_cuts_total", "Consoles closed with 1008 for reading too slowly.", true},
		{"atende_notifier_handshakes_refused_total", "WebSocket handshakes refused (token, Origin, version).", true},
		{"atende_notifier_connections_limited_total", "Connections refused by the global or per-token limit.", true},
		{"atende_notifier_ops_rate_limited_total", "Console ops refused by the per-agent rate limit.", true},
		{"atende_notifier_replies_total", "Replies sent to atende.outbound.", true},
		{"atende_notifier_transfers_total", "Transfers sent to atende.outbound.", true},
		{"atende_notifier_status_changes_total", "Resolves and reopens sent to atende.outbound.", true},
		{"atende_notifier_typing_ops_total", "Typing ops accepted.", true},
		{"atende_notifier_polls_answered_total", "Long-poll requests answered.", true},
		{"atende_notifier_produce_errors_total", "Messages the notifier could not produce.", true},
		{"atende_notifier_events_lost_total", "Events the broker dropped before this notifier read them (consoles told to reset).", true},
	};
	const double values[] = {N.n_ws, N.n_polls, typing_count(N.typing), (double)N.n_events, (double)N.n_deliveries,
				 (double)N.n_slow_cuts, (double)N.n_refused, (double)N.n_limited, (double)N.n_rate_limited,
				 (double)N.n_replies, (double)N.n_transfers, (double)N.n_status_changes, (double)N.n_typing, (double)N.n_polls_answered,
				 (double)N.n_produce_errors, (double)N.n_events_lost};
	for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++)
		metrics_set(metrics_series(metrics_family(defs[i].name, defs[i].counter ? METRICS_COUNTER : METRICS_GAUGE,
							  defs[i].help, NULL, 0), ""), values[i]);
	api_metrics_refresh();
	login_metrics_refresh();
}
