#!/bin/sh
# make bench: starts a fresh system on deploy/bench.conf in a temporary data_dir, runs
# `atende bench` at each rate of $BENCH_RATES (default "500 2000") for $BENCH_SECONDS (default 20),
# then the notifier runs (--idle $BENCH_IDLE, default 20000; --fanout $BENCH_FANOUT subscribers,
# default 1000, of $BENCH_FANOUT_MESSAGES messages, default 2000, at each rate of
# $BENCH_FANOUT_RATES, default "100 1000"; BENCH_NOTIFIER=0 or BENCH_AI_LATENCY_MS skips them),
# after the ingress: the answer time of the first message to each domain after start, then wrk
# (first, on the fresh system: 64 connections, then 8 once the embedded broker holds those
# messages; BENCH_WRK_CONNECTIONS, each run starting with the workers drained), then one
# diagnostic wrk run with the workers stopped (SIGSTOP; BENCH_WRK_DIAGNOSTIC=0 skips it), which
# shows the ingress and broker without the workers' reads; and prints each run's JSON line on
# stdout, also appending it to build/bench-results.jsonl, and at the end the CPU per message per
# process of the open-loop runs (test/bench_cpu.py).
# The system is stopped (SIGTERM, then waited for) however the script ends.
set -u

cd "$(dirname "$0")/.." || exit 1
RATES=${BENCH_RATES-500 2000}
# BENCH_AI_LATENCY_MS=1500: hints come from a fake OpenAI-compatible server (started here,
# answering after that many ms) instead of the built-in rules: build/test/fakeai_lean (one
# libevent loop, fakeai.py's answers; the Python fakeai.py itself took a quarter of this machine
# at 2,000 msg/s), or with BENCH_LEAN_AI=0 test/integration/fakeai.py.
AI_LATENCY=${BENCH_AI_LATENCY_MS:-}
AI_PID=""
SECONDS_PER_RUN=${BENCH_SECONDS:-20}
CONF_SRC=deploy/bench.conf
RESULTS=build/bench-results.jsonl

# bench.conf uses the fixed sample ports; a system already on them would be benchmarked instead.
# Listening sockets are read from /proc/net/tcp{,6} (state 0A), so no extra tool is needed.
busy=""
for port in 8080 8081 8082 9092 5433; do
	hex=$(printf '%04X' "$port")
	if cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
		awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }'; then
		busy="$busy $port"
	fi
done
if [ -n "$busy" ]; then
	echo "bench: port(s)$busy already in use (is atende running? stop it first)" >&2
	exit 1
fi

TMP=$(mktemp -d /tmp/atende-bench.XXXXXX) || exit 1
# The embedded PostgreSQL runs as an unprivileged user: it must be able to enter the data dir.
chmod 755 "$TMP"
CONF="$TMP/bench.conf"
PID=""

cleanup() {
	if [ -n "$AI_PID" ]; then
		kill "$AI_PID" 2>/dev/null
		wait "$AI_PID" 2>/dev/null
	fi
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		kill -TERM "$PID" 2>/dev/null
		wait "$PID" 2>/dev/null
	fi
	PID=""
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

sed "s|^data_dir = \"var\";|data_dir = \"$TMP\";|" "$CONF_SRC" >"$CONF"
if [ -n "$AI_LATENCY" ]; then
	if [ "${BENCH_LEAN_AI:-1}" = 1 ]; then
		build/test/fakeai_lean --port 18099 --latency-ms "$AI_LATENCY" >"$TMP/fakeai.log" 2>&1 &
	else
		/usr/bin/python3 test/integration/fakeai.py --port 18099 --latency-ms "$AI_LATENCY" >"$TMP/fakeai.log" 2>&1 &
	fi
	AI_PID=$!
	sed -i -e 's|^  provider = "rules";|  provider = "openai";|' \
		-e 's|^  base_url = "";|  base_url = "http://127.0.0.1:18099/v1";|' \
		-e 's|^  max_in_flight = 1000;|  max_in_flight = 4000;|' "$CONF"
	echo "bench: AI hints from a fake server answering after ${AI_LATENCY} ms" >&2
fi
if ! grep -q "^data_dir = \"$TMP\";" "$CONF"; then
	echo "bench: could not set data_dir in a copy of $CONF_SRC" >&2
	exit 1
fi

# --idle holds 20,000 WebSockets: the notifier and the bench need that many descriptors. Root may
# raise the hard limit; anyone may raise the soft one up to it (dash and bash have ulimit -n).
# shellcheck disable=SC3045
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -H -n)" 2>/dev/null
# The supervisor is healthy once every process is started; the ingress and notifier answer theirs
# once they listen and reach the broker, which is what the bench needs.
healthy() {
	for port in 8082 8080 8081; do
		curl -fs -m 2 -o /dev/null "http://127.0.0.1:$port/healthz" || return 1
	done
}

# Starts atende on $CONF (PostgreSQL's data kept between starts, the embedded broker empty) and
# waits until it is healthy and the workers' consumer group has formed (healthy comes first; without
# the wait the first seconds of a run measure the rebalance instead of the system).
start_system() {
	starts=$((${starts:-0} + 1))
	LOG="$TMP/atende.$starts.log"
	bin/atende run -c "$CONF" >"$LOG" 2>&1 &
	PID=$!
	waited=0
	until healthy; do
		if ! kill -0 "$PID" 2>/dev/null; then
			echo "bench: atende exited during start-up; last lines of its log:" >&2
			tail -n 30 "$LOG" >&2
			exit 1
		fi
		if [ "$waited" -ge 120 ]; then
			echo "bench: atende not healthy after 120 s; last lines of its log:" >&2
			tail -n 30 "$LOG" >&2
			exit 1
		fi
		sleep 1
		waited=$((waited + 1))
	done
	echo "bench: system up after ${waited}s (log: $LOG)" >&2
	waited=0
	until [ "$(grep -c 'assigned [0-9]* partitions' "$LOG")" -ge 2 ] || [ "$waited" -ge 60 ]; do
		sleep 1
		waited=$((waited + 1))
	done
}

stop_system() {
	kill -TERM "$PID" 2>/dev/null
	wait "$PID" 2>/dev/null
	PID=""
}

# Waits (at most $1 s) until the workers have consumed every inbound message (no lag, and as many
# consumed as the ingress accepted: a stopped worker's lag is stale); prints the seconds it took,
# with one decimal.
wait_drained() {
	python3 - "$1" <<'PY'
import sys, time, urllib.request
limit, start = float(sys.argv[1]), time.monotonic()
def total(lines, prefix):
    return sum(float(l.rsplit(" ", 1)[1]) for l in lines if l.startswith(prefix))
while True:
    lines = urllib.request.urlopen("http://127.0.0.1:8082/metrics", timeout=5).read().decode().splitlines()
    lag = total(lines, "atende_worker_consumer_lag{")
    behind = total(lines, "atende_ingress_messages_accepted_total{") - total(lines, "atende_worker_messages_total{")
    if (lag == 0 and behind <= 0) or time.monotonic() - start > limit:
        print(round(time.monotonic() - start, 1) if lag == 0 and behind <= 0 else -1)
        break
    time.sleep(0.2)
PY
}

mkdir -p build
rc=0
start_system
# The ingress alone, closed loop with wrk, first, on the fresh system (the embedded broker
# slows as its partitions fill) (issue: acked webhooks/s with ack p99 < 5 ms, and the
# ingress's CPU per 1,000 requests). Each request is a distinct message (test/bench_ingress.lua).
# Prints one result line and appends it to $RESULTS.
record() {
	echo "$1"
	echo "$1" >>"$RESULTS"
	echo "$1" >>"$TMP/lines.jsonl"
}

# pids of the processes of one role, from `atende status --json`
pids_of() {
	bin/atende status -c "$CONF" --json |
		python3 -c 'import json,sys; print(" ".join(str(p["pid"]) for p in json.load(sys.stdin)["processes"] if p["role"]==sys.argv[1]))' "$1"
}

# One wrk run of $1 connections (the workers drained first), printed and recorded as one JSON line;
# $2 is extra JSON fields for the line (e.g. ',"workers":"stopped"').
wrk_run() {
	wait_drained 120 >/dev/null
	before=$(awk '{print $14+$15}' "/proc/$ingress_pid/stat")
	curl -fs http://127.0.0.1:8082/metrics >"$TMP/metrics.before"
	# shellcheck disable=SC2046 # one pid per word
	[ -n "$2" ] && kill -STOP $(pids_of worker)
	out=$(wrk -t1 -c"$1" -d"${BENCH_WRK_SECONDS:-5}"s -s test/bench_ingress.lua http://127.0.0.1:8080 | tail -n 1)
	after=$(awk '{print $14+$15}' "/proc/$ingress_pid/stat")
	curl -fs http://127.0.0.1:8082/metrics >"$TMP/metrics.after"
	# shellcheck disable=SC2046
	[ -n "$2" ] && kill -CONT $(pids_of worker)
	drain=$(wait_drained 300)
	line=$(echo "$out" | python3 test/bench_wrk_line.py "$1" "$((after - before))" "$drain" "$TMP/metrics.before" "$TMP/metrics.after" | sed "s|}\$|$2}|")
	record "$line"
}

# The first message to each domain after start: answered without waiting for topic metadata.
line=$(python3 - <<'PY'
import json, time, urllib.request
out = {}
for d in ("financeiro", "comercial", "suporte", "ouvidoria", "cancelamento"):
    body = json.dumps({"event": "messages.upsert", "instance": d, "apikey": "bench-key",
                       "data": {"key": {"remoteJid": "5511988887777@s.whatsapp.net", "fromMe": False,
                                        "id": f"FIRST-{d}-{time.time_ns()}"},
                                "message": {"conversation": "primeira mensagem"}, "messageTimestamp": 1763800000}})
    req = urllib.request.Request("http://127.0.0.1:8080/webhooks/evolution", body.encode(),
                                 {"Content-Type": "application/json"})
    start = time.monotonic()
    urllib.request.urlopen(req, timeout=10).read()
    out[d] = round((time.monotonic() - start) * 1000, 1)
print(json.dumps({"tool": "urllib", "first_message_ack_ms": out}))
PY
)
record "$line"

if [ "${BENCH_WRK:-1}" = 1 ] && command -v wrk >/dev/null; then
	ingress_pid=$(pids_of ingress)
	# The first seconds after start (first connections, the start-up retention run) are not
	# what is measured: warm the HTTP path up on /healthz, which puts nothing in Kafka.
	wrk -t1 -c64 -d3s http://127.0.0.1:8080/healthz >/dev/null
	# each run starts with the workers caught up; how long they take to store the burst
	# afterwards is reported as drain_s
	for conns in ${BENCH_WRK_CONNECTIONS:-64 8}; do
		wrk_run "$conns" ""
	done
	if [ "${BENCH_WRK_DIAGNOSTIC:-1}" = 1 ]; then
		wrk_run 8 ',"workers":"stopped"'
	fi
fi
# The wrk bursts leave the embedded broker holding ~250,000 messages, which it reads slowly (see
# README): the runs after them start on a fresh broker (PostgreSQL's data is kept).
if [ "${BENCH_WRK:-1}" = 1 ] && command -v wrk >/dev/null; then
	stop_system
	start_system
fi
for rate in $RATES; do
	if out=$(bin/atende bench -c "$CONF" --rate "$rate" --seconds "$SECONDS_PER_RUN"); then
		if [ -n "$AI_LATENCY" ]; then
			# most AI calls each worker had in flight at once, from the merged metrics
			inflight=$(curl -fs http://127.0.0.1:8082/metrics | awk '/^atende_worker_ai_in_flight_max\{/ { printf "%s%s", sep, $2; sep = "," }')
			out=$(echo "$out" | sed "s|}\$|,\"ai_latency_ms\":$AI_LATENCY,\"ai_max_in_flight_per_worker\":[$inflight]}|")
		fi
		record "$out"
	else
		echo "bench: run at $rate msg/s failed; last lines of the system log:" >&2
		tail -n 20 "$LOG" >&2
		rc=1
	fi
done
# The notifier (issue 5): memory per idle WebSocket, then deliveries/s and publish->deliver
# latency to many subscribers of one company channel: at 100 msg/s (200,000 deliveries/s offered
# to 1,000 subscribers: the latency of a notifier that keeps up) and at 1,000 msg/s (2,000,000/s:
# what it delivers when it cannot). On the rules system only.
if [ "${BENCH_NOTIFIER:-1}" = 1 ] && [ -z "$AI_LATENCY" ]; then
	runs="--idle ${BENCH_IDLE:-20000}"
	for rate in ${BENCH_FANOUT_RATES-100 1000}; do
		runs="$runs
--fanout ${BENCH_FANOUT:-1000} --messages ${BENCH_FANOUT_MESSAGES:-2000} --rate $rate"
	done
	nl='
'
	old_ifs=$IFS
	IFS=$nl # one run per line; its options split on blanks again inside
	for args in $runs; do
		IFS=$old_ifs
		# shellcheck disable=SC2086 # $args is a list of options
		if out=$(bin/atende bench -c "$CONF" $args); then
			record "$out"
		else
			echo "bench: notifier run ($args) failed; last lines of the system log:" >&2
			tail -n 20 "$LOG" >&2
			rc=1
		fi
	done
	IFS=$old_ifs
fi
# the CPU per message per process of this invocation's open-loop runs (issue 19)
[ -f "$TMP/lines.jsonl" ] && python3 test/bench_cpu.py <"$TMP/lines.jsonl"
exit $rc
