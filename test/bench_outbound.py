#!/usr/bin/python3
"""make bench, outbound part: replies alone (no notifier, no consoles) through one Evolution
channel with 3 gateway instances (fake gateways, each a process of its own, answering at once),
three runs: all healthy, one answering 500 to every send, one never answering in time
(outbound.timeout_ms 300). $BENCH_OUTBOUND_REPLIES (6000) replies are produced straight to
atende.outbound with kcat over $BENCH_OUTBOUND_CONVERSATIONS (300) conversations (a
conversation's replies go out one after another), two workers. Measures sends/s from the first
reply produced to the last one recorded and published, checks every reply was sent exactly
once (no text twice at the gateways, one stored message each), and prints one JSON line per run,
appended to build/bench-results.jsonl."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "integration"))
from harness import ROOT, System, free_port, http, wait_for  # noqa: E402
from test_foundation import evolution_text  # noqa: E402

REPLIES = int(os.environ.get("BENCH_OUTBOUND_REPLIES", "6000"))
CONVS = int(os.environ.get("BENCH_OUTBOUND_CONVERSATIONS", "300"))
RESULTS = os.path.join(ROOT, "build", "bench-results.jsonl")
TIMEOUT_MS = 300
GW = os.path.join(ROOT, "test", "integration", "fakegateway.py")


def gateways(bad):
    """Three fake gateway processes; bad: None, ("500",) or ("timeout",) for the third."""
    procs, ports = [], []
    for i in range(3):
        port = free_port()
        args = [sys.executable, GW, str(port)]
        if i == 2 and bad == "500":
            args += ["500"]
        elif i == 2 and bad == "timeout":
            args += ["0", str(TIMEOUT_MS / 1000 * 3)]
        procs.append(subprocess.Popen(args))
        ports.append(port)
    for port in ports:
        wait_for(lambda port=port: ok(f"http://127.0.0.1:{port}/stats"), 10, "a fake gateway")
    return procs, ports


def ok(url):
    try:
        return http("GET", url, timeout=2).status == 200
    except OSError:
        return False


def stats(port):
    return http("GET", f"http://127.0.0.1:{port}/stats").json()


def run(bad):
    procs, ports = gateways(bad)
    inst = ", ".join(f'{{ url = "http://127.0.0.1:{p}"; weight = 1; }}' for p in ports)
    s = System(name="bench_outbound", workers=2, extra={
        r'url = "http://127.0.0.1:8090";': f"instances = ( {inst} );",
        r'(outbound: \{[^\n]*\n  timeout_ms = )10000;': rf'\g<1>{TIMEOUT_MS};',
        r'retry_base_ms = 1000;': 'retry_base_ms = 20;',
        r'level = "info";': 'level = "warn";',
        r'enabled = true;( +# \(reload\)\n  min_message_length)': r'enabled = false;\1',
    })
    try:
        s.start()
        for k in range(CONVS):
            assert s.evolution(evolution_text(f"BENCH-IN-{k}", "oi", customer=f"55119{k:08d}")).status == 200
        wait_for(lambda: s.sql("select count(*) from conversations")[0][0] == str(CONVS), 120, "the conversations")
        convs = [int(r[0]) for r in s.sql("select id from conversations order by id")]
        lines = []
        for i in range(REPLIES):
            c = convs[i % len(convs)]
            lines.append(f"{c}\t" + json.dumps({
                "type": "reply", "company_id": 1, "conversation_id": c, "agent_id": 1, "client_id": None,
                "text": f"bench reply {i}", "request_id": f"bench-{bad}-{i}",
                "requested_at": "2026-01-01T00:00:00.000Z"}))
        t0 = time.monotonic()
        subprocess.run(["kcat", "-b", f"127.0.0.1:{s.ports['kafka']}", "-P", "-t", "atende.outbound", "-K", "\t",
                        "-H", "type=reply", "-H", "company=1"], input="\n".join(lines) + "\n", text=True,
                       check=True, timeout=120)
        produced = time.monotonic() - t0
        wait_for(lambda: s.sql("select count(*) from outbound_requests where published_at is not null")[0][0]
                 == str(REPLIES), 600, "every reply handled", interval=0.1)
        elapsed = time.monotonic() - t0
        by_status = dict(s.sql("select status, count(*) from outbound_requests group by 1"))
        stored = int(s.sql("select count(*) from messages where from_me")[0][0])
        st = [stats(p) for p in ports]
        good = st[:2] if bad else st
        line = {"bench": "outbound", "instances": 3, "bad_instance": bad or "none", "replies": REPLIES,
                "conversations": CONVS, "workers": 2, "seconds": round(elapsed, 2),
                "produce_seconds": round(produced, 2), "sends_per_s": round(REPLIES / elapsed, 1),
                "status": by_status, "stored": stored, "posts_per_instance": [x["posts"] for x in st],
                "duplicates": sum(x["duplicates"] for x in good),
                "sent_once": sum(x["texts"] for x in good) == REPLIES and stored == REPLIES}
        print(json.dumps(line), flush=True)
        os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
        with open(RESULTS, "a") as f:
            f.write(json.dumps(line) + "\n")
        return line
    finally:
        if s.proc and s.proc.poll() is None:
            s.stop()
        s.destroy()
        for p in procs:
            p.terminate()
            p.wait()


def main():
    runs = os.environ.get("BENCH_OUTBOUND_RUNS", "none 500 timeout").split()
    bad_runs = [run(None if r == "none" else r) for r in runs]
    sys.exit(0 if all(x["sent_once"] for x in bad_runs) else 1)


if __name__ == "__main__":
    main()
