#!/usr/bin/python3
"""The embedded broker, stock librdkafka against the patched one (deploy/rdkafka-mock.patch), back to
back on one machine. For each library in $BENCH_BROKER_LIBS (default "stock patched"): a fresh system
on deploy/bench.conf (free ports, its own data_dir), the broker's idle CPU over $BENCH_BROKER_IDLE_S
(30) s with no traffic, then without a restart `atende bench` at each "rate:seconds" of
$BENCH_BROKER_STEPS (default "2000:80 2000:20 5000:20 10000:20": the first fills every inbound
partition to the broker's ~5 MiB cap, the others run on the full broker). Prints one JSON line per
run (library, step, hints/s, hint and ack p50/p99, missing, the broker's CPU per message) and a
table; appends the lines to build/bench-results.jsonl. $BENCH_BROKER_PRIORITY (default: the
config's) sets postgres.priority and workers.priority, e.g. 0 on a machine shared with other load;
$BENCH_BROKER_FETCH_WAIT_MS sets the consumers' fetch wait on either library (default: the config's,
kafka.fetch_wait_max_ms on the stock broker, kafka.embedded_fetch_wait_max_ms on the patched one)."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "integration"))
from harness import BIN, ROOT, System, http  # noqa: E402

LIBS = os.environ.get("BENCH_BROKER_LIBS", "stock patched").split()
STEPS = [tuple(int(x) for x in s.split(":")) for s in
         os.environ.get("BENCH_BROKER_STEPS", "2000:80 2000:20 5000:20 10000:20").split()]
IDLE_S = float(os.environ.get("BENCH_BROKER_IDLE_S", "30"))
PRIORITY = os.environ.get("BENCH_BROKER_PRIORITY")
FETCH_WAIT = os.environ.get("BENCH_BROKER_FETCH_WAIT_MS")
RESULTS = os.path.join(ROOT, "build", "bench-results.jsonl")
TICK = os.sysconf("SC_CLK_TCK")


class BenchSystem(System):
    """A System on deploy/bench.conf (bench-key channels, agents 1-100, limits off)."""

    def __init__(self, lib):
        self.lib = lib
        super().__init__(name=f"bench_broker_{lib}")

    def write_config(self, **changes):
        subs = self.port_substitutions()
        subs.update({
            r'(?m)^data_dir = "var";': f'data_dir = "{self.dir}";',
            r"embedded_patched = true;": f"embedded_patched = {'true' if self.lib == 'patched' else 'false'};",
        })
        if FETCH_WAIT is not None:
            # the same wait whichever library the broker runs on
            subs[r"(?m)^  fetch_wait_max_ms = \d+;"] = f"  fetch_wait_max_ms = {FETCH_WAIT};"
            subs[r"embedded_fetch_wait_max_ms = \d+;"] = f"embedded_fetch_wait_max_ms = {FETCH_WAIT};"
        if PRIORITY is not None:
            subs[r"(postgres: \{[^}]*priority = )\d+"] = rf"\g<1>{PRIORITY}"
            subs[r"(workers: \{[^}]*priority = )\d+"] = rf"\g<1>{PRIORITY}"
        self.render_config("bench.conf", subs)

    def health(self):
        return json.loads(http("GET", self.url("metrics", "/healthz")).body)


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def descendants(root):
    """root and every process below it (the embedded PostgreSQL's backends included)."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
    found, todo = set(), [root]
    while todo:
        p = todo.pop()
        found.add(p)
        todo += [c for c, pp in parent.items() if pp == p and c not in found]
    return found


def total_cpu_s(pids):
    t = 0.0
    for p in pids:
        try:
            t += cpu_s(p)
        except OSError:
            pass
    return t


def run_lib(lib):
    s = BenchSystem(lib)
    lines = []
    try:
        s.start()
        h = s.health()
        if h.get("broker_library") != lib:
            print(f"bench_broker: skipped {lib}: the broker runs on the {h.get('broker_library')!r} library"
                  " (deploy/rdkafka-mock.sh builds the patched one)", file=sys.stderr)
            return lines
        broker = next(p["pid"] for p in h["processes"] if p["role"] == "broker")
        time.sleep(5)  # start-up settles (consumer groups join)
        everyone = descendants(s.proc.pid)
        c0, all0, t0 = cpu_s(broker), total_cpu_s(everyone), time.monotonic()
        time.sleep(IDLE_S)
        elapsed = time.monotonic() - t0
        idle = 100 * (cpu_s(broker) - c0) / elapsed
        idle_all = 100 * (total_cpu_s(everyone) - all0) / elapsed
        line = {"bench": "broker_idle", "library": lib, "seconds": IDLE_S, "broker_cpu_pct": round(idle, 1),
                "system_cpu_pct": round(idle_all, 1), "fetch_wait_max_ms": FETCH_WAIT or "config",
                "loadavg_1m": round(os.getloadavg()[0], 1)}
        print(json.dumps(line), flush=True)
        lines.append(line)
        for i, (rate, seconds) in enumerate(STEPS):
            out = subprocess.run([os.path.join(BIN, "atende"), "bench", "-c", s.conf, "--rate", str(rate),
                                  "--seconds", str(seconds), "--drain", "30"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            b = next(p for p in r["processes"] if p["role"] == "broker")
            line = {"bench": "broker_ab", "library": lib, "step": i + 1, "rate": rate, "seconds": seconds,
                    "sent": r["sent"], "acked": r["acked"], "rejected": r["rejected"], "missing": r["missing"],
                    "hints_per_s": round(r["hinted"] / r["window_s"]) if r["window_s"] else 0,
                    "hint_p50_ms": r["hint_ms"]["p50"], "hint_p99_ms": r["hint_ms"]["p99"],
                    "ack_p50_ms": r["ack_ms"]["p50"], "ack_p99_ms": r["ack_ms"]["p99"],
                    "broker_us_per_msg": round(b["cpu_s"] * 1e6 / r["sent"]) if r["sent"] else None,
                    "unsent": r["unsent"], "loadavg_1m": round(os.getloadavg()[0], 1)}
            print(json.dumps(line), flush=True)
            lines.append(line)
    finally:
        s.destroy()
    return lines


def main():
    all_lines = []
    for lib in LIBS:
        all_lines += run_lib(lib)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "a") as f:
        for line in all_lines:
            f.write(json.dumps(line) + "\n")
    print(f"\n{'library':8} {'step':>4} {'rate':>6} {'hints/s':>8} {'hint p50':>9} {'hint p99':>9} "
          f"{'ack p99':>8} {'missing':>7} {'broker us/msg':>13} {'load':>5}")
    for x in all_lines:
        if x["bench"] == "broker_idle":
            print(f"{x['library']:8} idle: broker {x['broker_cpu_pct']} %, whole system {x['system_cpu_pct']} % "
                  f"of a core over {x['seconds']:g} s "
                  f"(load {x['loadavg_1m']})")
        else:
            print(f"{x['library']:8} {x['step']:>4} {x['rate']:>6} {x['hints_per_s']:>8} {x['hint_p50_ms']:>9} "
                  f"{x['hint_p99_ms']:>9} {x['ack_p99_ms']:>8} {x['missing']:>7} {x['broker_us_per_msg']:>13} "
                  f"{x['loadavg_1m']:>5}")


if __name__ == "__main__":
    main()
