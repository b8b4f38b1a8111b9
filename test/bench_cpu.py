#!/usr/bin/python3
"""CPU per message per process of open-loop `atende bench` runs (issue 19's table): reads their JSON
lines on stdin (other lines are ignored) and prints one row per run: the rate, what was sent and
hinted, and each role's CPU time over the run divided by the messages sent, in microseconds (the
workers summed; PostgreSQL is the postmaster and its backends; the bench itself is shown but left
out of the total). test/bench.sh pipes each invocation's lines through it."""
import json
import sys

ROLES = ["postgres", "broker", "ingress", "workers", "notifier", "supervisor"]


def cpu_per_msg(run):
    """{role: microseconds of CPU per message sent} of one bench JSON line, workers summed and
    PostgreSQL's postmaster and children together; "total" is every role but the bench."""
    sent = run.get("sent") or 0
    out = {}
    for p in run.get("processes", []):
        if p.get("cpu_s") is None or not sent:
            continue
        role = {"worker": "workers", "postgres-children": "postgres"}.get(p["role"], p["role"])
        out[role] = out.get(role, 0.0) + p["cpu_s"] * 1e6 / sent
    out["total"] = sum(v for k, v in out.items() if k != "bench")
    return {k: round(v) for k, v in out.items()}


def main():
    runs = []
    for line in sys.stdin:
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if isinstance(r, dict) and "processes" in r and "sent" in r and "hint_ms" in r:
            runs.append(r)
    if not runs:
        return
    print(f"\nCPU per message (us of CPU per message sent, over the measured run):")
    print(f"{'run':<22} {'sent':>7} {'hinted':>7} " + " ".join(f"{r:>10}" for r in ROLES + ["total", "bench"]))
    for r in runs:
        c = cpu_per_msg(r)
        label = f"{r['rate']:g}/s" + (f" AI {r['ai_latency_ms']} ms" if "ai_latency_ms" in r else " rules")
        print(f"{label:<22} {r['sent']:>7} {r.get('hinted', 0):>7} " +
              " ".join(f"{c.get(k, '-'):>10}" for k in ROLES + ["total", "bench"]))


if __name__ == "__main__":
    main()
