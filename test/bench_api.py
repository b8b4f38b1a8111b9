#!/usr/bin/python3
"""make bench, conversation API part: a fresh system with $BENCH_API_CONVERSATIONS (50,000)
conversations and 20 messages each (1,000,000) stored by test/bench_api_data.sql, then
$BENCH_API_AGENTS (100) agents, each on its own keep-alive connection, calling the API as a
console does, round after round: its own list (agent=me), the first page of one of its
conversations (which marks it read), the company's list and its second page, and an older page
of that conversation's history.

Two runs: open loop at $BENCH_API_RATE requests/s in all (default 200: each agent every 0.5 s;
latency counted from when a request was due, so a slow answer delays the next one's count too,
no coordinated omission) for $BENCH_API_SECONDS (20), then closed loop (every agent sends its next
request as soon as the last one is answered) for 10 s: the most this machine serves. Prints one
JSON line per run (p50/p99/max per endpoint) and appends it to build/bench-results.jsonl."""
import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "integration"))
from harness import BIN, ROOT, System  # noqa: E402

CONVS = int(os.environ.get("BENCH_API_CONVERSATIONS", "50000"))
PER = 20
AGENTS = int(os.environ.get("BENCH_API_AGENTS", "100"))
RATE = float(os.environ.get("BENCH_API_RATE", "200"))
SECONDS = float(os.environ.get("BENCH_API_SECONDS", "20"))
RESULTS = os.path.join(ROOT, "build", "bench-results.jsonl")


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))], 2)


class Agent:
    """One console: a token, a keep-alive connection, its conversations."""

    def __init__(self, system, agent, conversations):
        self.token = system.token(agent, 1)
        self.port = system.ports["notifier"]
        self.convs = conversations
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        self.rng = random.Random(agent)
        self.step = 0
        self.company_next = None
        self.history_next = None
        self.conv = None

    def get(self, path):
        self.conn.request("GET", path, headers={"Authorization": f"Bearer {self.token}"})
        r = self.conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"{path}: {r.status} {body[:200]!r}")
        return json.loads(body)

    def one(self):
        """The next request of the round; returns its endpoint's name."""
        s = self.step % 5
        self.step += 1
        if s == 0:
            self.get("/v1/conversations?agent=me&limit=30")
            return "list"
        if s == 1:
            self.conv = self.rng.choice(self.convs)
            self.history_next = self.get(f"/v1/conversations/{self.conv}/messages?limit=30")["next"]
            return "messages"
        if s == 2:
            self.company_next = self.get("/v1/conversations?limit=30")["next"]
            return "list"
        if s == 3:
            self.get(f"/v1/conversations?limit=30&before={self.company_next}")
            return "list"
        if self.history_next:
            self.get(f"/v1/conversations/{self.conv}/messages?limit=30&before={self.history_next}")
        else:
            self.get(f"/v1/conversations/{self.conv}/messages?limit=30")
        return "messages"


def run(agents, seconds, rate):
    """rate 0: closed loop. Returns {endpoint: [ms...]} and the error count."""
    lat = {"list": [], "messages": []}
    errors = []
    lock = threading.Lock()
    t0 = time.monotonic() + 0.5
    interval = len(agents) / rate if rate else 0

    def loop(i, a):
        due = t0 + (i * interval / len(agents) if rate else 0)
        mine = {"list": [], "messages": []}
        while True:
            now = time.monotonic()
            if rate and due > now:
                time.sleep(due - now)
            start = due if rate else time.monotonic()
            if start >= t0 + seconds:
                break
            try:
                kind = a.one()
            except Exception as e:  # noqa: BLE001 - counted and reported
                with lock:
                    errors.append(str(e))
                a.conn.close()
                a.conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=30)
                kind = None
            if kind:
                mine[kind].append((time.monotonic() - start) * 1000.0)
            due += interval
        with lock:
            for k in lat:
                lat[k] += mine[k]

    threads = [threading.Thread(target=loop, args=(i, a)) for i, a in enumerate(agents)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return lat, errors


def record(line):
    text = json.dumps(line)
    print(text, flush=True)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "a") as f:
        f.write(text + "\n")


def main():
    extra = {
        r"companies = \(\n  \{ id = 1; name = \"Demo Telecom\"; agents = \[1, 5\]; \}":
            'companies = (\n  { id = 1; name = "Demo Telecom"; agents = [1, 100]; }',
    }
    if os.environ.get("BENCH_API_PG_PRIORITY"):  # the embedded server's nice value (10 as shipped)
        extra[r"(?m)^  priority = 10;( +# nice value of the embedded server)"] = \
            f"  priority = {int(os.environ['BENCH_API_PG_PRIORITY'])};\\1"
    s = System(name="bench-api", extra=extra)
    try:
        s.start()
        t = time.monotonic()
        subprocess.run([os.path.join(BIN, "atende"), "psql", "-c", s.conf, "--", "-X", "-q", "-v", f"convs={CONVS}",
                        "-v", f"per={PER}", "-v", "days=28", "-f", os.path.join(ROOT, "test", "bench_api_data.sql")],
                       cwd=s.dir, check=True, stdout=subprocess.DEVNULL, timeout=900)
        load_s = time.monotonic() - t
        rows = s.sql("select agent_id, string_agg(id::text, ',') from (select agent_id, id, row_number() over "
                     "(partition by agent_id order by id) n from conversations where company_id = 1) x "
                     "where n <= 200 group by agent_id")
        convs = {int(a): [int(c) for c in ids.split(",")] for a, ids in rows if a}
        agents = [Agent(s, a, convs[a]) for a in sorted(convs)[:AGENTS]]
        stored = s.sql("select (select count(*) from conversations), (select count(*) from messages), "
                       "(select count(*) from hints)")[0]
        run(agents, 5, 0)  # warm-up: every connection open, caches and plans warm
        for rate, seconds in ((RATE, SECONDS), (0, 10.0)):
            lat, errors = run(agents, seconds, rate)
            n = sum(len(v) for v in lat.values())
            line = {"bench": "api", "mode": f"open loop {rate:g} req/s" if rate else "closed loop",
                    "pg_priority": int(os.environ.get("BENCH_API_PG_PRIORITY", "10")),
                    "agents": len(agents), "seconds": seconds, "stored": {"conversations": int(stored[0]),
                    "messages": int(stored[1]), "hints": int(stored[2])}, "load_s": round(load_s, 1),
                    "requests": n, "req_per_s": round(n / seconds, 1), "errors": len(errors),
                    "first_error": errors[0] if errors else None}
            for k, v in lat.items():
                line[k] = {"n": len(v), "p50_ms": pct(v, 50), "p99_ms": pct(v, 99), "max_ms": pct(v, 100)}
            record(line)
    finally:
        if s.proc and s.proc.poll() is None:
            s.stop()
        s.destroy()


if __name__ == "__main__":
    main()
