#!/usr/bin/python3
"""make bench's closing table (issue 19): one row per open-loop run that this `make bench` appended
to build/bench-results.jsonl (the lines after its last {"bench": "start"} marker; `--start` writes
the marker): the system (fresh, or after how many messages), the path (rules, AI), the rate,
acked, missing and duplicated messages, ack and hint p50/p99, the messages hinted per second
past the start (the load generator's "hinted_per_s"), CPU per message sent per process
(microseconds; PostgreSQL with its backends, the workers summed) and the system's RSS; then the
floors test/bench_floor.py measured (the same work with none of atende's logic), one line each."""
import json
import os
import sys
import time

from bench_cpu import cpu_per_msg

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "bench-results.jsonl")
ROLES = ["postgres", "broker", "ingress", "workers", "notifier", "total"]


def rows(lines):
    """(system, path, rate, acked, missing, duplicates, ack p50, ack p99, hint p50, hint p99,
    hinted per second, {role: us}, rss MB) of each run line: test/bench.sh's (fresh systems) and test/bench_pg.py's."""
    out = []
    for r in lines:
        if "processes" in r and "hint_ms" in r and "rate" in r:
            cpu = cpu_per_msg(r)
            rss = round(sum(p.get("rss_mb") or 0 for p in r["processes"] if p["role"] not in ("bench", "postgres")))
            out.append(("fresh", f"AI {r['ai_latency_ms']} ms" if "ai_latency_ms" in r else "rules", r["rate"],
                        r["acked"], r["missing"], r["duplicates"], r["ack_ms"]["p50"], r["ack_ms"]["p99"],
                        r["hint_ms"]["p50"], r["hint_ms"]["p99"], r.get("hinted_per_s", "-"), cpu, rss))
        elif r.get("bench") == "pg" and "cpu_us_per_msg" in r:
            warm = r.get("warmup_messages", 0)
            system = "fresh" if warm < 100000 else f"after {warm:,}"
            out.append((system, r["mode"].replace("ai", "AI", 1), r["rate"], r["acked"], r["missing"], r["duplicates"],
                        r.get("ack_p50_ms", "-"), r["ack_p99_ms"], r["hint_p50_ms"], r["hint_p99_ms"],
                        r.get("hinted_per_s", "-"), r["cpu_us_per_msg"], r.get("rss_mb", "-")))
    return out


def floors(lines):
    """One text line per test/bench_floor.py measurement."""
    out = []
    for r in lines:
        b = r.get("bench")
        if b == "floor_http":
            cpu = r["cpu_us_per_request"]
            out.append(f"HTTP {'paced' if r['paced'] else 'flat out'} {r['per_s']}/s: {r['server']} {cpu['server']} us"
                       + (f" (broker {cpu['broker']})" if "broker" in cpu else "") + f", wrk {cpu['wrk']}")
        elif b == "floor_produce":
            cpu = r["cpu_us_per_message"]
            out.append(f"produce {r['rate']}/s: producer {cpu['producer']} us, broker {cpu['broker']}")
        elif b == "floor_pg":
            out.append(f"PostgreSQL {r['rows']} {r['rate']}/s in batches of {r['batch']}: "
                       f"{r['postgres_cpu_us_per_message']} us per message")
        elif b == "floor_idle":
            out.append("idle % of a core: " + ", ".join(f"{k} {v}" for k, v in r["cpu_pct_of_a_core"].items()))
    return out


def main():
    if sys.argv[1:] == ["--start"]:
        with open(RESULTS, "a") as f:
            f.write(json.dumps({"bench": "start", "at": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")
        return
    lines = []
    with open(RESULTS) as f:
        for text in f:
            try:
                r = json.loads(text)
            except ValueError:
                continue
            if r.get("bench") == "start":
                lines = []
            else:
                lines.append(r)
    table = rows(lines)
    if table:
        print_runs(table)
    else:
        print("bench_table: no open-loop runs since make bench started")
    floor = floors(lines)
    if floor:
        print("\nthe floors on this machine (test/bench_floor.py; docs/performance.md, \"Session 14\")")
        for line in floor:
            print("  " + line)


def print_runs(table):
    print("\nmake bench: every open-loop run (CPU in us per message sent; RSS of atende's processes, MB)")
    head = (f"{'system':<16} {'path':<12} {'rate':>6} {'acked':>7} {'missing':>7} {'dup':>4} {'ack p50/p99 ms':>16} "
            f"{'hint p50/p99 ms':>18} {'hinted/s':>8} " + " ".join(f"{k:>8}" for k in ROLES) + f" {'RSS':>6}")
    print(head)
    for (system, path, rate, acked, missing, dup, a50, a99, h50, h99, per_s, cpu, rss) in table:
        print(f"{system:<16} {path:<12} {rate:>6} {acked:>7} {missing:>7} {dup:>4} {f'{a50}/{a99}':>16} "
              f"{f'{h50}/{h99}':>18} {per_s:>8} " + " ".join(f"{cpu.get(k, '-'):>8}" for k in ROLES) + f" {rss:>6}")


if __name__ == "__main__":
    main()
