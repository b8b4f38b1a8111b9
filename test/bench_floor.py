#!/usr/bin/python3
"""The floors under atende's CPU per message on this machine (issue 19: "why it cannot go further
here"): what the work every message must cause costs with none of atende's logic, measured on
the same box, beside what atende's own process doing that part costs.

HTTP: wrk with test/bench_ingress.lua (the bench's distinct Evolution webhooks), 64 connections
paced to ~2,000 requests/s (each waits WRK_DELAY_MS=32 after each answer) and then flat out,
against build/test/floor_sink (libevent, a fixed answer, nothing else) and against the ingress of
a fresh system on deploy/bench.conf (its workers stopped, so only the ingress and the broker
work). Prints each server's CPU per request, the broker's with the ingress, and wrk's own.

Idle, first: build/test/floor_kafka idle, a worker's two librdkafka clients (a group consumer
and a producer, the workers' fetch wait and session timeout) with nothing else, for
$BENCH_FLOOR_IDLE_S (60) s from its group join, and atende's own idle processes over the same
window.

Kafka: build/test/floor_kafka produce, the ingress's produce path alone (atende's Kafka layer, the
ingress's producer settings) at 2,000 messages/s to the five inbound topics of that system's
broker, the workers still stopped: its CPU and the broker's per message.

PostgreSQL: pgbench against that system's embedded PostgreSQL, $BENCH_FLOOR_RATE (2,000)
messages/s for $BENCH_FLOOR_SECONDS (20) s from 2 clients (the 2 workers) in transactions of
$BENCH_FLOOR_BATCH (34: what the workers commit at 2,000 msg/s) messages, synchronous_commit on,
each transaction one statement, for each message:
  rows:     its key, the message and its hint into three tables with a primary key only;
  atende's: its key, the message (its hint id set) and its hint into atende's message_keys,
            messages and hints, with their indexes, and its conversation's recency (last message,
            its preview, the customer's count) updated, as the console's list needs.
Prints the CPU per message of PostgreSQL (the postmaster and all its children) for each.
Appends one JSON line per measurement to build/bench-results.jsonl."""
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "integration"))
from harness import ROOT, free_port, wait_for  # noqa: E402

from bench_pg import PgBenchSystem, health  # noqa: E402

SINK = os.path.join(ROOT, "build", "test", "floor_sink")
KAFKA = os.path.join(ROOT, "build", "test", "floor_kafka")
LUA = os.path.join(ROOT, "test", "bench_ingress.lua")
RATE = int(os.environ.get("BENCH_FLOOR_RATE", "2000"))
SECONDS = int(os.environ.get("BENCH_FLOOR_SECONDS", "20"))
BATCH = int(os.environ.get("BENCH_FLOOR_BATCH", "34"))
HTTP_SECONDS = 15
TICK = os.sysconf("SC_CLK_TCK")
RESULTS = os.path.join(ROOT, "build", "bench-results.jsonl")
PARTS = os.environ.get("BENCH_FLOOR_PARTS", "idle pg http").split()
IDLE_S = float(os.environ.get("BENCH_FLOOR_IDLE_S", "60"))

TEXT = "quero parcelar a fatura atrasada, ta mt cara"
HINT = "Ofereca o parcelamento da fatura em atraso e confirme a data de vencimento"

SETUP_SQL = """
CREATE TABLE floor_keys (channel text, provider_id text, message_id bigint, received_at timestamptz,
                         PRIMARY KEY (channel, provider_id));
CREATE TABLE floor_messages (id bigint PRIMARY KEY, conversation_id bigint NOT NULL, company_id bigint NOT NULL,
                             channel text NOT NULL, provider_id text NOT NULL, from_me boolean NOT NULL,
                             kind text NOT NULL, text text NOT NULL, sender_name text,
                             received_at timestamptz NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
                             hint_id bigint);
CREATE TABLE floor_hints (id bigint PRIMARY KEY, message_id bigint NOT NULL, message_ids bigint[] NOT NULL,
                          conversation_id bigint NOT NULL, company_id bigint NOT NULL, domain text NOT NULL,
                          intent text NOT NULL, text text NOT NULL, source text NOT NULL,
                          created_at timestamptz NOT NULL DEFAULT now());
CREATE SEQUENCE floor_seq;
INSERT INTO conversations (company_id, channel, customer, domain)
SELECT 1, 'floor', 'C' || n, 'financeiro' FROM generate_series(0, 4999) n;
CREATE TABLE floor_convs (n int PRIMARY KEY, conv bigint NOT NULL);
INSERT INTO floor_convs SELECT substr(customer, 2)::int, id FROM conversations WHERE channel = 'floor';
"""

ROWS_SQL = f"""
WITH s AS (SELECT nextval('floor_seq') AS id, clock_timestamp() AS at FROM generate_series(1, :batch)),
k AS (INSERT INTO floor_keys SELECT 'floor', 'F' || s.id, s.id, s.at FROM s),
m AS (INSERT INTO floor_messages (id, conversation_id, company_id, channel, provider_id, from_me, kind, text,
                                  sender_name, received_at, hint_id)
      SELECT s.id, s.id % 5000, 1, 'floor', 'F' || s.id, false, 'text', '{TEXT}', 'Bench', s.at, s.id FROM s)
INSERT INTO floor_hints (id, message_id, message_ids, conversation_id, company_id, domain, intent, text, source)
SELECT s.id, s.id, ARRAY[s.id], s.id % 5000, 1, 'financeiro', 'billing', '{HINT}', 'rules' FROM s;
"""

# atende.touched: the touch trigger stays out, as in atende_ingest's set-based path (021), so the
# conversation gets the one row version the statement gives it
ATENDE_SQL = f"""
SET atende.touched = 'on';
WITH s AS (SELECT nextval('floor_seq') AS n, nextval('messages_id_seq') AS id, nextval('hints_id_seq') AS hid,
                  clock_timestamp() AS at FROM generate_series(1, :batch)),
c AS (SELECT s.*, 'F' || s.n AS pid, fc.conv FROM s JOIN floor_convs fc ON fc.n = s.n % 5000),
k AS (INSERT INTO message_keys (channel, provider_id, message_id, received_at) SELECT 'floor', c.pid, c.id, c.at FROM c),
m AS (INSERT INTO messages (id, conversation_id, company_id, channel, provider_id, from_me, text, sender_name,
                            received_at, hint_id)
      SELECT c.id, c.conv, 1, 'floor', c.pid, false, '{TEXT}', 'Bench', c.at, c.hid FROM c),
h AS (INSERT INTO hints (id, message_id, message_ids, conversation_id, company_id, domain, intent, text, source)
      SELECT c.hid, c.id, ARRAY[c.id], c.conv, 1, 'financeiro', 'billing', '{HINT}', 'rules' FROM c)
UPDATE conversations x
   SET last_message_at = c.at, last_message_id = c.id, customer_messages = x.customer_messages + 1,
       last_message = jsonb_build_object('id', c.id, 'provider_id', c.pid, 'from_me', false, 'kind', 'text',
                                         'text', '{TEXT}', 'sent_at', c.at)
  FROM c WHERE x.id = c.conv;
"""


def ticks(pid, reaped=False):
    """utime + stime of pid, and with reaped its children's that it has waited for."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if reaped else 0)


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], stdout=subprocess.PIPE, text=True).stdout
    return [int(x) for x in out.split()]


def tree_ticks(root):
    """CPU ticks of root and its children, live or exited (the postmaster, its backends, pgbench's
    among them, once they have exited)."""
    total = ticks(root, reaped=True)
    for pid in children(root):
        try:
            total += ticks(pid)
        except OSError:
            pass
    return total


def record(line):
    print(json.dumps(line))
    sys.stdout.flush()
    with open(RESULTS, "a") as f:
        f.write(json.dumps(line) + "\n")


def run_timed(argv, env=None):
    """Runs argv to its end: (its stdout, its CPU seconds, its exit code)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return out, usage.ru_utime + usage.ru_stime, proc.returncode


def wrk(port, paced, watch):
    """One wrk run against 127.0.0.1:port; returns its result line with the CPU per request of
    wrk and of each pid in watch ({name: pid})."""
    env = dict(os.environ)
    env.pop("WRK_DELAY_MS", None)
    if paced:
        env["WRK_DELAY_MS"] = "32"
    before = {n: ticks(p) for n, p in watch.items()}
    out, cpu_s, rc = run_timed(["wrk", "-t1", "-c64", f"-d{HTTP_SECONDS}s", "-s", LUA, f"http://127.0.0.1:{port}"],
                               env)
    if rc != 0:
        raise RuntimeError(f"wrk exited with {rc}")
    res = json.loads(out.strip().splitlines()[-1])
    n = res["requests"]
    cpu = {name: round((ticks(p) - before[name]) / TICK * 1e6 / n, 1) for name, p in watch.items()}
    cpu["wrk"] = round(cpu_s * 1e6 / n, 1)
    return {"requests": n, "per_s": res["acked_per_s"], "refused": res["refused"],
            "latency_p99_ms": res["latency_ms"]["p99"], "cpu_us_per_request": cpu}


def http_floors(s):
    port = free_port()
    sink = subprocess.Popen([SINK, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        if sink.stdout.readline().strip() != "listening":
            raise RuntimeError("floor_sink did not start")
        for paced in (True, False):
            line = {"bench": "floor_http", "server": "floor_sink", "paced": paced}
            line.update(wrk(port, paced, {"server": sink.pid}))
            record(line)
    finally:
        sink.terminate()
        sink.wait()
    procs = health(s)["processes"]
    ingress = next(p["pid"] for p in procs if p["role"] == "ingress")
    broker = next(p["pid"] for p in procs if p["role"] == "broker")
    workers = [p["pid"] for p in procs if p["role"] == "worker"]
    for w in workers:
        os.kill(w, signal.SIGSTOP)
    try:
        for paced in (True, False):
            line = {"bench": "floor_http", "server": "ingress", "paced": paced}
            line.update(wrk(s.ports["ingress"], paced, {"server": ingress, "broker": broker}))
            record(line)
        # the ingress's Kafka work alone, at the paced runs' rate
        before = ticks(broker)
        out, cpu_s, rc = run_timed([KAFKA, "produce", f"127.0.0.1:{s.ports['kafka']}", "2000", str(HTTP_SECONDS)])
        if rc != 0:
            raise RuntimeError(f"floor_kafka produce failed: {out}")
        res = json.loads(out.strip().splitlines()[-1])
        n = res["acked"]
        record({"bench": "floor_produce", "rate": 2000, "acked": n, "cpu_us_per_message": {
            "producer": round(cpu_s * 1e6 / n, 1),
            "broker": round((ticks(broker) - before) / TICK * 1e6 / n, 1)}})
    finally:
        for w in workers:
            os.kill(w, signal.SIGCONT)


def idle_floor(s):
    """A worker's two librdkafka clients idle with nothing of atende's around them (floor_kafka
    idle, the workers' fetch wait and session timeout), beside atende's own idle processes over
    the same window, as % of a core."""
    with open(s.conf) as f:
        conf = f.read()
    fetch_wait = re.search(r"embedded_fetch_wait_max_ms = (\d+);", conf).group(1)
    session = re.search(r"session_timeout_ms = (\d+);", conf).group(1)
    procs = {f"{p['role']}{p['index'] if p['role'] == 'worker' else ''}": p["pid"] for p in health(s)["processes"]
             if p["role"] in ("worker", "ingress", "notifier", "broker")}
    # measured from its group join (the join is start-up, not idle); it would end 30 s after the window
    proc = subprocess.Popen([KAFKA, "idle", f"127.0.0.1:{s.ports['kafka']}", str(IDLE_S + 30), fetch_wait, session],
                            stdout=subprocess.PIPE, text=True)
    if proc.stdout.readline().strip() != "assigned":
        raise RuntimeError("floor_kafka idle: no assignment")
    procs["floor_kafka (a consumer and a producer)"] = proc.pid
    before = {n: ticks(p) for n, p in procs.items()}
    t0 = time.monotonic()
    time.sleep(IDLE_S)  # the measured window itself
    elapsed = time.monotonic() - t0
    pct = {n: round(100.0 * (ticks(p) - before[n]) / TICK / elapsed, 2) for n, p in procs.items()}
    proc.terminate()  # done: it would idle on to its own end
    proc.wait()
    record({"bench": "floor_idle", "seconds": round(elapsed, 1), "cpu_pct_of_a_core": pct})


def pg_floors(s):
    s.sql(SETUP_SQL)
    pg = next(p["pid"] for p in health(s)["processes"] if p["role"] == "postgres")
    rundir = os.path.join(s.dir, "run")
    for name, script in (("rows", ROWS_SQL), ("atende_tables", ATENDE_SQL)):
        path = os.path.join(s.dir, f"floor_{name}.sql")
        with open(path, "w") as f:
            f.write(script)
        tps = RATE / BATCH
        n_children = len(children(pg))
        before = tree_ticks(pg)
        out = subprocess.run(["pgbench", "-n", "-h", rundir, "-p", str(s.ports["pg"]), "-U", "atende",
                              "-c", "2", "-j", "1", "-T", str(SECONDS), "-R", f"{tps:.2f}", "-D", f"batch={BATCH}",
                              "-M", "prepared", "--max-tries=10", "-f", path, "atende"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # pgbench's backends reaped: their CPU is then in the postmaster's children's time
        wait_for(lambda: len(children(pg)) <= n_children, 30, "pgbench's backends to exit")
        used = tree_ticks(pg) - before
        if out.returncode != 0:
            raise RuntimeError(f"pgbench ({name}) failed:\n{out.stdout}")
        done = next(int(line.split(":")[1].split("/")[0]) for line in out.stdout.splitlines()
                    if line.startswith("number of transactions actually processed"))
        lat = next((line.split("=")[1].strip() for line in out.stdout.splitlines()
                    if line.startswith("latency average")), "")
        msgs = done * BATCH
        record({"bench": "floor_pg", "rows": name, "rate": RATE, "batch": BATCH, "seconds": SECONDS,
                "messages": msgs, "latency_average": lat,
                "postgres_cpu_us_per_message": round(used / TICK * 1e6 / msgs, 1)})


def main():
    for prog in (SINK, KAFKA):
        if not os.access(prog, os.X_OK):
            sys.exit(f"bench_floor: {prog} is missing (make unit builds it)")
    s = PgBenchSystem()
    try:
        s.start()
        wait_for(lambda: sum(1 for line in s.log_text().splitlines() if "assigned" in line and "partitions" in line) >= 2,
                 60, "the workers' partitions")
        time.sleep(5)  # start-up settles: the first metadata, the first fetches
        if "idle" in PARTS:
            idle_floor(s)
        if "pg" in PARTS:
            pg_floors(s)  # first: the HTTP runs leave the stopped workers a backlog
        if "http" in PARTS:
            http_floors(s)
    finally:
        s.stop()
        s.destroy()


if __name__ == "__main__":
    main()
