#!/usr/bin/python3
"""Where the embedded PostgreSQL's time goes per message (issue 19). A fresh system on
deploy/bench.conf (free ports, its own data_dir) with pg_stat_statements loaded (track = all, so the
statements inside the plpgsql functions show), then `atende bench` at $BENCH_PG_RATE (2000) msg/s:
$BENCH_PG_WARMUP (10) s of warm-up, the statistics reset, then $BENCH_PG_SECONDS (20) s measured.
$BENCH_AI_LATENCY_MS: hints from a fake AI answering after that many ms (the similarity cache on,
as in bench.conf) instead of the rules: build/test/fakeai_lean (test/fakeai_lean.c: fakeai.py's
answers on one libevent loop, a tenth of its CPU), or with $BENCH_PG_LEAN_AI=0 the suite's
test/integration/fakeai.py; its CPU is printed apart from the system's. $BENCH_PG_PRIORITY sets
postgres.priority and workers.priority (e.g. 0 on a machine shared with other load).
$BENCH_PG_IDLE_S (0 = none) first measures each process's CPU with no traffic for that long;
$BENCH_PG_SECONDS=0 then stops there. $BENCH_PG_FETCH_WAIT_MS sets kafka.embedded_fetch_wait_max_ms, $BENCH_PG_COALESCE_MS
kafka.embedded_fetch_coalesce_ms, $BENCH_PG_CACHE_MEMORY cache.memory_entries, $BENCH_PG_BUFFER_MS
buffer.max_wait_ms (the smart buffer's window, 1500), $BENCH_PG_BATCH_WAIT_MS workers.batch_wait_ms; $BENCH_PG_MESSY=1 sends
texts as customers type them (atende bench --messy), $BENCH_PG_CUSTOMERS sets how many customers
(conversations) send (atende bench --customers, 5000). $BENCH_PG_PERF=1 (or postgres, worker, ingress,
notifier): `perf record` on the PostgreSQL backends (or that program's processes, with DWARF call
graphs) during the measured run (report in $BENCH_PG_OUT). $BENCH_PG_EXPLAIN=1: EXPLAIN (ANALYZE, BUFFERS)
of every statement of a 500-message ingest and its hints, afterwards (auto_explain).
$BENCH_PG_SQL: statements run before the warm-up (an experiment: an index dropped, a setting).
$BENCH_PG_AUTO_EXPLAIN_MS: the plans of the bench's own statements (nested ones too) slower than
that many ms, into the system's log (atende.log in $BENCH_PG_OUT).

Prints the bench's numbers, CPU per message per process, WAL bytes per message (pg_stat_wal), and
the statements by total time with calls per message; writes everything (statements in full) to
$BENCH_PG_OUT (default build/bench-pg-<time>/) and appends one JSON line to
build/bench-results.jsonl."""
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "integration"))
from harness import BIN, ROOT, System, free_port, http, wait_for  # noqa: E402

from bench_cpu import cpu_per_msg  # noqa: E402

RATE = int(os.environ.get("BENCH_PG_RATE", "2000"))
SECONDS = int(os.environ.get("BENCH_PG_SECONDS", "20"))
WARMUP = int(os.environ.get("BENCH_PG_WARMUP", "10"))
AI_MS = os.environ.get("BENCH_AI_LATENCY_MS", "")
LEAN_AI = os.environ.get("BENCH_PG_LEAN_AI", "1") == "1"  # build/test/fakeai_lean, else the suite's fakeai.py
PRIORITY = os.environ.get("BENCH_PG_PRIORITY")
# "1" or "postgres": the backends; "worker", "ingress", "notifier": that program's processes
PERF = {"1": "postgres"}.get(os.environ.get("BENCH_PG_PERF", ""), os.environ.get("BENCH_PG_PERF", ""))
EXPLAIN = os.environ.get("BENCH_PG_EXPLAIN") == "1"
FETCH_WAIT = os.environ.get("BENCH_PG_FETCH_WAIT_MS")  # kafka.embedded_fetch_wait_max_ms
COALESCE = os.environ.get("BENCH_PG_COALESCE_MS")  # kafka.embedded_fetch_coalesce_ms
CACHE_MEMORY = os.environ.get("BENCH_PG_CACHE_MEMORY")  # cache.memory_entries
BUFFER_MS = os.environ.get("BENCH_PG_BUFFER_MS")  # buffer.max_wait_ms
BATCH_WAIT_MS = os.environ.get("BENCH_PG_BATCH_WAIT_MS")  # workers.batch_wait_ms
SQL = os.environ.get("BENCH_PG_SQL")  # run before the warm-up (experiments: an index dropped, a setting)
MESSY = os.environ.get("BENCH_PG_MESSY") == "1"  # atende bench --messy
CUSTOMERS = os.environ.get("BENCH_PG_CUSTOMERS")  # atende bench --customers (5000)
IDLE_S = float(os.environ.get("BENCH_PG_IDLE_S", "0"))
AUTO_EXPLAIN_MS = os.environ.get("BENCH_PG_AUTO_EXPLAIN_MS")
TICK = os.sysconf("SC_CLK_TCK")
OUT = os.environ.get("BENCH_PG_OUT") or os.path.join(ROOT, "build", time.strftime("bench-pg-%Y%m%d-%H%M%S"))
RESULTS = os.path.join(ROOT, "build", "bench-results.jsonl")


class PgBenchSystem(System):
    def __init__(self, ai_port=None):
        self.ai_port = ai_port
        super().__init__(name="bench_pg")

    def write_config(self, **changes):
        subs = self.port_substitutions()
        subs[r'(?m)^data_dir = "var";'] = f'data_dir = "{self.dir}";'
        if PRIORITY is not None:
            subs[r"(postgres: \{[^}]*priority = )\d+"] = rf"\g<1>{PRIORITY}"
            subs[r"(workers: \{[^}]*priority = )\d+"] = rf"\g<1>{PRIORITY}"
        if self.ai_port:
            subs[r'(?m)^  provider = "rules";'] = '  provider = "openai";'
            subs[r'(?m)^  base_url = "";'] = f'  base_url = "http://127.0.0.1:{self.ai_port}/v1";'
            subs[r"(?m)^  max_in_flight = 1000;"] = "  max_in_flight = 4000;"
        if FETCH_WAIT is not None:
            subs[r"embedded_fetch_wait_max_ms = \d+;"] = f"embedded_fetch_wait_max_ms = {FETCH_WAIT};"
        if COALESCE is not None:
            subs[r"embedded_fetch_coalesce_ms = \d+;"] = f"embedded_fetch_coalesce_ms = {COALESCE};"
        if CACHE_MEMORY is not None:
            subs[r"memory_entries = \d+;"] = f"memory_entries = {CACHE_MEMORY};"
        if BATCH_WAIT_MS is not None:
            subs[r"batch_wait_ms = \d+;"] = f"batch_wait_ms = {BATCH_WAIT_MS};"
        if BUFFER_MS is not None:
            subs[r"max_wait_ms = \d+;"] = f"max_wait_ms = {BUFFER_MS};"
        subs.update(changes)
        self.render_config("bench.conf", subs)


def health(s):
    return json.loads(http("GET", s.url("metrics", "/healthz")).body)


def bench(s, rate, seconds, warmup):
    out = subprocess.run([os.path.join(BIN, "atende"), "bench", "-c", s.conf, "--rate", str(rate), "--seconds",
                          str(seconds), "--warmup", str(warmup), "--drain", "30", *(["--messy"] if MESSY else []),
                          *(["--customers", CUSTOMERS] if CUSTOMERS else [])],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def sqlrows(s, q):
    return s.sql(q)


def backends(s):
    pg = next(p["pid"] for p in health(s)["processes"] if p["role"] == "postgres")
    out = subprocess.run(["pgrep", "-P", str(pg)], stdout=subprocess.PIPE, text=True).stdout
    return [int(x) for x in out.split()]


def main():
    os.makedirs(OUT, exist_ok=True)
    ai = None
    ai_port = None
    if AI_MS:
        ai_port = free_port()
        server = ([os.path.join(ROOT, "build", "test", "fakeai_lean")] if LEAN_AI else
                  ["/usr/bin/python3", os.path.join(ROOT, "test", "integration", "fakeai.py")])
        ai = subprocess.Popen(server + ["--port", str(ai_port), "--latency-ms", AI_MS],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    s = PgBenchSystem(ai_port)
    perf = None
    try:
        s.start()
        s.stop()
        # for this bench only: the server reads its postgresql.conf at start (root writes it)
        with open(os.path.join(s.dir, "pg", "postgresql.conf"), "a") as f:
            f.write("pg_stat_statements.track = all\n"
                    "pg_stat_statements.track_planning = on\n"
                    "track_io_timing = on\n")
            if AUTO_EXPLAIN_MS:
                f.write("shared_preload_libraries = 'pg_stat_statements,auto_explain'\n"
                        f"auto_explain.log_min_duration = {int(AUTO_EXPLAIN_MS)}\nauto_explain.log_analyze = on\n"
                        "auto_explain.log_buffers = on\nauto_explain.log_nested_statements = on\n")
            else:
                f.write("shared_preload_libraries = 'pg_stat_statements'\n")
        s.start()
        s.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        wait_for(lambda: sum(1 for line in s.log_text().splitlines() if re.search(r"assigned \d+ partitions", line)) >= 2,
                 60, "the workers' partitions")
        if IDLE_S > 0:
            time.sleep(10)  # start-up settles
            s.sql("SELECT pg_stat_statements_reset()")
            idle(s)
            # what the idle system asks PostgreSQL, by time
            rows = s.sql("SELECT calls, round(total_exec_time::numeric, 1), regexp_replace(left(query, 120), '\\s+', ' ', 'g') "
                         "FROM pg_stat_statements WHERE toplevel ORDER BY total_exec_time DESC LIMIT 12")
            with open(os.path.join(OUT, "idle-statements.tsv"), "w") as f:
                for row in rows:
                    f.write("\t".join(row) + "\n")
            print("idle statements (top level; calls, ms, query):")
            for row in rows:
                print("  " + "  ".join(row))
        if SECONDS <= 0:
            return
        if SQL:
            print(f"before the warm-up: {SQL}: {s.sql(SQL)}")
        # the warm-up: its own bench run, then the statistics are reset and the measured run starts
        bench(s, RATE, WARMUP, 0)
        s.sql("SELECT pg_stat_statements_reset()")
        s.sql("SELECT pg_stat_reset_shared('wal')")
        s.sql("SELECT pg_stat_reset_shared('bgwriter')")
        s.sql("SELECT pg_stat_reset()")
        wal0 = int(s.sql("SELECT pg_current_wal_lsn() - '0/0'")[0][0])
        if PERF:
            if PERF == "postgres":
                pids, graph = backends(s), ["-g"]
            else:
                pids = subprocess.run(["pgrep", "-f", os.path.join(BIN, "atende-" + PERF)], stdout=subprocess.PIPE,
                                      text=True).stdout.split()
                graph = ["--call-graph", "dwarf,16384"]
            perf = subprocess.Popen(["perf", "record", "-F", "499", *graph, "-p", ",".join(str(p) for p in pids),
                                     "-o", os.path.join(OUT, "perf.data")],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        coach0 = coach_counts(s)
        ai0 = ticks(ai.pid)[0] if ai else 0
        r = bench(s, RATE, SECONDS, 0)
        ai1 = ticks(ai.pid)[0] if ai else 0
        coach1 = coach_counts(s)
        if perf:
            perf.send_signal(2)
            perf.wait()
        wal1 = int(s.sql("SELECT pg_current_wal_lsn() - '0/0'")[0][0])
        load = round(os.getloadavg()[0], 1)
        sent = r["sent"] or 1
        # what PostgreSQL stored while measured (a loaded machine may not keep up with what was sent)
        stored, hints = (int(x or 0) for x in s.sql(
            "SELECT sum(n_tup_ins) FILTER (WHERE relname LIKE 'messages%'), sum(n_tup_ins) FILTER (WHERE relname LIKE "
            "'hints%') FROM pg_stat_user_tables")[0])
        per = stored or 1
        with open(os.path.join(OUT, "bench.json"), "w") as f:
            json.dump(r, f)
        wal = s.sql("SELECT wal_records, wal_fpi, wal_bytes, wal_buffers_full, wal_write, wal_sync FROM pg_stat_wal")[0]
        stmts = s.sql("SELECT calls, round(total_exec_time::numeric, 1), plans, round(total_plan_time::numeric, 1), rows, shared_blks_hit, shared_blks_read, "
                      "shared_blks_dirtied, shared_blks_written, wal_bytes, toplevel, "
                      "regexp_replace(left(query, 160), '\\s+', ' ', 'g') "
                      "FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 40")
        with open(os.path.join(OUT, "statements.tsv"), "w") as f:
            f.write("calls\ttotal_ms\tplans\tplan_ms\trows\thit\tread\tdirtied\twritten\twal_bytes\ttoplevel\tquery\n")
            for row in stmts:
                f.write("\t".join(row) + "\n")
        full = s.sql("SELECT round(total_exec_time::numeric, 1), calls, regexp_replace(query, '\\s+', ' ', 'g') FROM pg_stat_statements "
                     "ORDER BY total_exec_time DESC LIMIT 15")
        full = [[a, b, " ".join(c)] for a, b, *c in full if b.isdigit()]
        with open(os.path.join(OUT, "statements-full.txt"), "w") as f:
            for row in full:
                f.write(f"-- {row[0]} ms, {row[1]} calls\n{row[2]}\n\n")
        tables = s.sql("SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del, seq_scan, idx_scan "
                       "FROM pg_stat_user_tables WHERE n_tup_ins + n_tup_upd + n_tup_del > 0 ORDER BY relname")
        indexes = s.sql("SELECT relname, indexrelname, idx_scan, idx_tup_read FROM pg_stat_user_indexes "
                        "ORDER BY relname, indexrelname")
        with open(os.path.join(OUT, "tables.tsv"), "w") as f:
            for row in tables:
                f.write("\t".join(row) + "\n")
            f.write("\n")
            for row in indexes:
                f.write("\t".join(row) + "\n")
        if EXPLAIN:
            explain(s)
        procs = cpu_per_msg(r)
        line = {"bench": "pg", "mode": (f"ai {AI_MS} ms" if AI_MS else "rules") + (", messy" if MESSY else ""), "rate": RATE, "seconds": SECONDS,
                "sent": r["sent"], "acked": r["acked"], "missing": r["missing"], "duplicates": r["duplicates"],
                "hint_p50_ms": r["hint_ms"]["p50"], "hint_p99_ms": r["hint_ms"]["p99"],
                "hinted_per_s": r.get("hinted_per_s"),
                "hint_split": {k: [v["n"], v["hint_ms"]["p50"], v["hint_ms"]["p99"]] for k, v in r.get("hint_split", {}).items()},
                "ack_p50_ms": r["ack_ms"]["p50"], "ack_p99_ms": r["ack_ms"]["p99"], "cpu_us_per_msg": procs,
                "warmup_messages": RATE * WARMUP,
                "rss_mb": round(sum(p.get("rss_mb") or 0 for p in r["processes"] if p["role"] not in ("bench", "postgres"))),
                "stored": stored, "hints_stored": hints,
                "pg_us_per_stored": round(sum(p["cpu_s"] for p in r["processes"] if p["role"].startswith("postgres")
                                              and p["cpu_s"] is not None) * 1e6 / per),
                "wal_bytes_per_msg": round((wal1 - wal0) / per), "wal_fpi": int(wal[1]),
                "wal_syncs": int(wal[5]), "loadavg_1m": load, "out": OUT}
        with open(RESULTS, "a") as f:
            f.write(json.dumps(line) + "\n")
        print(json.dumps(line))
        print(f"\n{line['mode']}, {RATE} msg/s x {SECONDS} s: sent {r['sent']}, missing {r['missing']}, "
              f"hint p50/p99 {r['hint_ms']['p50']}/{r['hint_ms']['p99']} ms, load {load}")
        print(f"hinted per second (every message whose hint came {5 if SECONDS >= 10 else SECONDS / 2} s into the window "
              f"and before sending ended): {line['hinted_per_s']}")
        print("hint latency by the hint's source and grouping (messages, p50, p99 ms): "
              + ", ".join(f"{k} {v[0]} {v[1]}/{v[2]}" for k, v in line["hint_split"].items()))
        if ai:
            line["fakeai_us_per_msg"] = round((ai1 - ai0) / TICK * 1e6 / sent)
            print(f"the fake AI server ({'fakeai_lean' if LEAN_AI else 'fakeai.py'}, outside the total): {line['fakeai_us_per_msg']} us per message sent")
        print("CPU us per message sent: " + ", ".join(f"{k} {v}" for k, v in procs.items()) + " (total: all but the bench)")
        print(f"stored {stored} messages, {hints} hints; PostgreSQL {line['pg_us_per_stored']} us per stored message")
        # warm-up included: the share of hints stored with their message (schema/023, 026), by source
        inline = s.sql("SELECT source, count(*) FILTER (WHERE with_message), count(*) FROM hints GROUP BY 1 ORDER BY 1")
        line["hints_with_message"] = {src: [int(w), int(n)] for src, w, n in inline}
        print("hints stored with their message, warm-up included (of all): "
              + ", ".join(f"{src} {w} of {n}" for src, (w, n) in line["hints_with_message"].items()))
        print(f"WAL: {line['wal_bytes_per_msg']} bytes/stored msg, {wal[0]} records, {wal[1]} full pages, {wal[5]} syncs")
        coach = {k: round(v - coach0.get(k, 0)) for k, v in coach1.items() if v - coach0.get(k, 0)}
        line["coach"] = coach
        print("coaching (during the run): " + ", ".join(f"{k} {v}" for k, v in sorted(coach.items())))
        print(f"\nper stored message:\n{'ms':>9} {'us/msg':>7} {'calls/msg':>9} {'plans/msg':>9} {'plan us/msg':>11} {'dirtied':>8} {'wal/msg':>8}  query")
        for row in stmts[:25]:
            calls, total, plans, plan_ms, _, _, _, dirtied, _, walb, _, q = row[:12]
            print(f"{float(total):>9.0f} {float(total) / per * 1000:>7.0f} {int(calls) / per:>9.3f} {int(plans) / per:>9.3f} "
                  f"{float(plan_ms) / per * 1000:>11.0f} {dirtied:>8} "
                  f"{int(walb) / per:>8.0f}  {q[:100]}")
        if PERF:
            rep = subprocess.run(["perf", "report", "-i", os.path.join(OUT, "perf.data"), "--no-children",
                                  "--sort", "symbol", "--stdio", "-g", "none", "--percent-limit", "0.7"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
            with open(os.path.join(OUT, "perf.txt"), "w") as f:
                f.write(rep)
            print(f"\nperf, {PERF} (self):")
            print("\n".join(l for l in rep.splitlines() if l.strip() and not l.startswith("#"))[:4000])
    finally:
        if perf and perf.poll() is None:
            perf.kill()
        s.stop()
        shutil.copy(s.log_path, os.path.join(OUT, "atende.log"))
        s.destroy()
        if ai:
            ai.kill()
            ai.wait()


COACH_FAMILIES = ("atende_worker_hints_total", "atende_worker_cache_lookups_total",
                  "atende_worker_cache_memory_lookups_total", "atende_worker_ai_calls_total")


def coach_counts(s):
    """The coaching counters summed over the workers, by family and label: where hints came
    from, the cache's lookups in PostgreSQL and in memory, the AI calls."""
    text = http("GET", s.url("metrics", "/metrics")).body.decode()
    out = {}
    for l in text.splitlines():
        name = l.split("{", 1)[0]
        if name in COACH_FAMILIES and "{" in l:
            labels = [x for x in l.split("{", 1)[1].rsplit("}", 1)[0].split(",") if not x.startswith("process=")]
            key = name.replace("atende_worker_", "").replace("_total", "") + "{" + ",".join(labels) + "}"
            out[key] = out.get(key, 0) + float(l.rsplit(" ", 1)[1])
    return out


def ticks(pid):
    """utime + stime of pid and its parent, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12]), int(fields[1])


def idle(s):
    """Each process's CPU over BENCH_PG_IDLE_S seconds of no traffic, as % of
    a core: the supervisor, each child it lists, and PostgreSQL's postmaster and children."""
    roles = {p["pid"]: f"{p['role']}{p['index'] if p['role'] == 'worker' else ''}" for p in health(s)["processes"]}
    roles[s.proc.pid] = "supervisor"
    pg = next(p for p, r in roles.items() if r == "postgres")

    def sample():
        out = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                t, ppid = ticks(int(d))
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    cmd = f.read().split(b"\0")[0].decode(errors="replace")
            except OSError:
                continue
            if int(d) in roles:
                out[int(d)] = (roles[int(d)], t)
            elif ppid == pg:
                out[int(d)] = ("pg " + cmd.replace("postgres: ", ""), t)
        return out
    a, t0 = sample(), time.monotonic()
    time.sleep(IDLE_S)
    b, el = sample(), time.monotonic() - t0
    rows = []
    for pid, (name, t) in b.items():
        rows.append((name, 100.0 * (t - a.get(pid, (name, 0))[1]) / TICK / el))
    total = sum(v for _, v in rows)
    line = {"bench": "idle", "seconds": IDLE_S, "system_cpu_pct": round(total, 2),
            "processes": {n: round(v, 2) for n, v in sorted(rows, key=lambda x: -x[1])},
            "loadavg_1m": round(os.getloadavg()[0], 1)}
    with open(RESULTS, "a") as f:
        f.write(json.dumps(line) + "\n")
    with open(os.path.join(OUT, "idle.json"), "w") as f:
        json.dump(line, f)
    print(f"idle {IDLE_S:g} s: whole system {total:.2f} % of a core (load {line['loadavg_1m']})")
    for n, v in sorted(rows, key=lambda x: -x[1]):
        print(f"  {v:6.2f} %  {n}")
    sys.stdout.flush()


def explain(s):
    """EXPLAIN (ANALYZE, BUFFERS) of every statement inside atende_ingest and atende_coach_finish,
    through auto_explain on one session: a batch of 500 messages to 100 conversations like the
    bench's, then their rules hints, rolled back."""
    q = """
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0; SET auto_explain.log_analyze = on; SET auto_explain.log_buffers = on;
SET auto_explain.log_nested_statements = on; SET auto_explain.log_level = 'notice';
SET client_min_messages = notice;
BEGIN;
CREATE TEMP TABLE explain_stored ON COMMIT DROP AS SELECT * FROM atende_ingest((
  SELECT jsonb_agg(jsonb_build_object('channel', 'evolution:suporte', 'provider_id', 'explain-' || g,
     'company', 1, 'domain', 'suporte', 'customer', '55119' || lpad((g % 100)::text, 8, '0'),
     'sender_name', 'x', 'text', 'minha internet caiu de novo, preciso de ajuda ' || g, 'received_at', now()))
  FROM generate_series(1, 500) g));
SELECT atende_coach_finish((
  SELECT jsonb_agg(jsonb_build_object('ids', jsonb_build_array(r_message_id), 'received_at', jsonb_build_array(now()),
     'provider_ids', jsonb_build_array('explain-' || r_idx), 'conversation_id', r_conversation_id, 'company', 1,
     'domain', 'suporte', 'agent', r_agent_id,
     'hint', jsonb_build_object('intent', 'outage', 'text', 'x', 'source', 'rules')) ORDER BY r_idx)
  FROM explain_stored)) IS NOT NULL;
ROLLBACK;
"""
    r = subprocess.run([os.path.join(BIN, "atende"), "psql", "-c", s.conf, "--", "-X"], input=q,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=s.dir)
    with open(os.path.join(OUT, "explain.txt"), "w") as f:
        f.write(r.stdout)


if __name__ == "__main__":
    main()
