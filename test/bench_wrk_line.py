"""One JSON line for a wrk run of make bench (test/bench.sh): wrk's own line (stdin) plus
the ingress's CPU, the time the workers took to store the burst, and the ingress's own
answer-time distribution for the run (its request histogram, before/after metrics files),
which does not depend on the load generator getting the CPU in time.
usage: bench_wrk_line.py CONNECTIONS INGRESS_CPU_TICKS DRAIN_S METRICS_BEFORE METRICS_AFTER"""
import json
import os
import re
import sys

BUCKET = re.compile(r'^atende_ingress_request_seconds_bucket\{.*route="/webhooks/evolution".*le="([^"]+)"\} (\S+)$')


def buckets(path):
    """le -> cumulative count, summed over statuses."""
    out = {}
    with open(path) as f:
        for line in f:
            m = BUCKET.match(line.strip())
            if m:
                le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
                out[le] = out.get(le, 0) + float(m.group(2))
    return out


def main():
    conns, ticks, drain, before, after = sys.argv[1:6]
    r = json.loads(sys.stdin.read())
    r.update(tool="wrk", connections=int(conns))
    r["ingress_cpu_s"] = round(int(ticks) / os.sysconf("SC_CLK_TCK"), 2)
    r["ingress_cpu_ms_per_1000"] = round(r["ingress_cpu_s"] * 1e6 / max(r["requests"], 1), 1)
    r["drain_s"] = float(drain)
    b, a = buckets(before), buckets(after)
    delta = {le: a.get(le, 0) - b.get(le, 0) for le in sorted(a)}
    total = delta.get(float("inf"), 0)
    if total:
        r["ingress_answered_within_ms"] = {f"{le * 1000:g}": round(n / total, 4)
                                           for le, n in delta.items() if le in (0.001, 0.0025, 0.005, 0.01, 0.025)}
    print(json.dumps(r))


main()
