"""Start, stop and restart: a clean drain leaves nothing behind and var/ is reusable;
bad configs are refused with file:line."""
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from fakeai import FakeAI
from harness import BIN, System, fixture, free_port, http, wait_for
from test_foundation import evolution_text


def test_sigterm_stops_everything_and_var_is_reusable():
    s = System(name="lifecycle")
    try:
        s.start()
        assert s.evolution(fixture("evolution-messages-upsert-text.json")).json() == {"accepted": 1, "duplicates": 0}
        wait_for(lambda: s.sql("select count(*) from hints")[0][0] == "1", what="the hint")
        assert s.stop() == 0
        assert s.leftover_processes() == []
        log = s.log_text()
        for line in ("stopped", "draining"):
            assert line in log
        # a second start on the same data_dir: initdb is skipped, data is still there
        s.start()
        assert s.sql("select count(*) from messages") == [["1"]]
        r = s.evolution(fixture("evolution-messages-upsert-extended.json"))
        assert r.json() == {"accepted": 1, "duplicates": 0}
        wait_for(lambda: s.sql("select count(*) from hints")[0][0] == "2", what="the second hint")
        assert s.stop() == 0
        assert s.leftover_processes() == []
        assert s.log_text().count("initdb: creating") == 1
    finally:
        s.destroy()


def test_bad_config_is_refused_with_file_and_line(tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text('auth: { token_secret = "0123456789abcdef"; };\nworkers: { count = "two"; };\nnope = 1;\n'
                   'ingress: { max_body_bytes = 5; };\n')
    for verb in ("check-config", "run"):
        r = subprocess.run([os.path.join(BIN, "atende"), verb, "-c", str(bad)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=30)
        assert r.returncode != 0
        assert f"{bad}:2: workers.count: expected an integer" in r.stderr
        assert f'{bad}:3: unknown key "nope"' in r.stderr
        assert f"{bad}:4: ingress.max_body_bytes: 5 is out of range" in r.stderr
    ok = subprocess.run([os.path.join(BIN, "atende"), "check-config", "-c", "deploy/atende.conf"],
                        cwd=os.path.dirname(BIN), stdout=subprocess.PIPE, text=True)
    assert ok.returncode == 0


def test_cli_help_and_token():
    r = subprocess.run([os.path.join(BIN, "atende"), "--help"], stdout=subprocess.PIPE, text=True)
    for verb in ("run", "token", "status", "migrate", "check-config", "psql"):
        assert verb in r.stdout
    bad = subprocess.run([os.path.join(BIN, "atende"), "token", "-c", "deploy/atende.conf", "--agent", "x",
                          "--company", "1"], cwd=os.path.dirname(BIN), stderr=subprocess.PIPE, text=True)
    assert bad.returncode != 0 and "--agent" in bad.stderr


def test_worker_pools_each_serve_their_domains():
    from test_foundation import evolution_text, nice_of
    s = System(name="pools", extra={
        r"companies = \(\n": 'pools = (\n  { name = "urgent"; domains = ["ouvidoria", "cancelamento"]; count = 1; '
                             'priority = 5; },\n  { name = "rest"; domains = ["financeiro", "comercial", "suporte"]; '
                             'count = 2; }\n);\n\ncompanies = (\n',
        r"channels = \(\n": 'channels = (\n  { type = "evolution"; instance = "canc"; key = "canc-key"; company = 1; '
                            'domain = "cancelamento"; },\n',
    })
    try:
        s.start()
        status = __import__("json").loads(s.cli("status", "--json").stdout)
        workers = [p for p in status["processes"] if p["role"] == "worker"]
        assert len(workers) == 3
        nice = [nice_of(p["pid"]) for p in workers]
        assert sorted(nice) == [5, 10, 10]  # urgent runs at its priority; rest takes workers.priority
        assert s.evolution(evolution_text("POOL-S", "minha internet caiu desde ontem")).status == 200
        canc = dict(evolution_text("POOL-C", "quero cancelar meu contrato", instance="canc"), apikey="canc-key")
        assert s.evolution(canc, key="canc-key").status == 200
        wait_for(lambda: s.sql("select count(*) from messages m join hints h on h.id = m.hint_id "
                               "where m.provider_id in ('POOL-S', 'POOL-C')") == [["2"]], what="both domains hinted")
        log = s.log_text()
        assert "of pool urgent consuming 2 domain topics and the outbound replies in group atende-workers-urgent" in log
        assert "of pool rest consuming 3 domain topics in group atende-workers-rest" in log
        def committed():  # by the pool's own group (commits run every 200 ms)
            topics = __import__("json").loads(s.cli("topics", "--json").stdout)
            parts = [t for t in topics if t["topic"] == "atende.inbound.cancelamento"][0]["partition_offsets"]
            return sum(p["committed"] for p in parts) >= 1

        wait_for(committed, what="the urgent pool's commit")
        assert s.stop() == 0
    finally:
        s.destroy()


def open_files(pid):
    """(soft, hard) "Max open files" of a process."""
    with open(f"/proc/{pid}/limits") as f:
        line = [l for l in f if l.startswith("Max open files")][0]
    return tuple(int(v) for v in line.split()[3:5])


def test_open_files_limit_is_raised_for_the_connections_configured():
    """Started as a service manager without LimitNOFILE leaves it (soft 1024, hard 4096): the
    ingress raises its soft limit to hold ingress.max_connections, at start and on reload; the
    notifier's 50,000 cannot fit under the hard limit and the log says what to raise."""
    s = System(name="nofile", extra={r"max_connections = 10000;": "max_connections = 2000;"})
    s.preexec = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 4096))
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # this test's own 1,500 sockets
    socks = []
    try:
        s.start()
        ingress, notifier = s.pid("ingress"), s.pid("notifier")
        assert open_files(ingress) == (2256, 4096)
        assert open_files(notifier) == (4096, 4096)
        assert ("notifier.max_connections = 50000 needs 50256 open files but the hard limit is 4096"
                in s.log_text())
        for _ in range(1500):  # more than the 1024 it was started with, all held open at once
            socks.append(socket.create_connection(("127.0.0.1", s.ports["ingress"]), timeout=10))
        for c in socks:
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert all(c.recv(12) == b"HTTP/1.1 200" for c in socks)
        s.write_config(**{r"max_connections = 10000;": "max_connections = 3000;"})
        os.kill(s.proc.pid, signal.SIGHUP)
        wait_for(lambda: open_files(ingress) == (3256, 4096), what="the reload to raise the limit")
        for c in socks:
            c.close()
        socks = []
        assert s.stop() == 0
    finally:
        for c in socks:
            c.close()
        s.destroy()


def signal_all(pids, sig):
    """Sends sig to each of pids that still exists (a backend listed by descendants may have
    ended before the signal: a CI run once failed there on SIGCONT)."""
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def descendants(root):
    """Every process below root (pids), from /proc's parent links."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            found.append(c)
            todo.append(c)
    return found


def running(pid):
    """Whether pid is a live process (a zombie no longer runs)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def open_psql_session(s):
    """An `atende psql` session that has answered a query and stays open (it keeps an old
    PostgreSQL's smart shutdown waiting); the caller kills it."""
    psql = subprocess.Popen([os.path.join(BIN, "atende"), "psql", "-c", s.conf, "--", "-X", "-q"], cwd=s.dir,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    psql.stdin.write(b"select 'session-open';\n")
    psql.stdin.flush()
    assert b"session-open" in psql.stdout.readline() + psql.stdout.readline() + psql.stdout.readline()
    return psql


def post_until_stopped(s):
    """Posts K9-<i> messages from a thread until the returned event is set or the ingress is
    gone; returns (the ids acknowledged so far, growing; the event; the thread)."""
    acked, stop_posting = [], threading.Event()

    def post():
        for i in range(100000):
            if stop_posting.is_set():
                return
            mid = f"K9-{i}"
            try:
                r = s.evolution(evolution_text(mid, f"quero a segunda via do boleto {i}",
                                               customer=f"55119{i % 40:08d}"))
            except OSError:
                return  # the ingress is gone
            if r.status == 200:
                acked.append(mid)
    poster = threading.Thread(target=post)
    poster.start()
    return acked, stop_posting, poster


def test_kill_9_of_the_supervisor_leaves_nothing_and_the_next_start_recovers():
    """Under load, kill -9 the supervisor: every child, the embedded PostgreSQL included,
    stops by itself, after storing every message the ingress acknowledged; one psql
    session keeps the old PostgreSQL alive (its smart shutdown waits for it), and the next
    start stops that leftover first and is healthy within 30 s."""
    s = System(name="kill9")
    try:
        s.start()
        psql = open_psql_session(s)
        postmaster = s.pid("postgres")
        tree = descendants(s.proc.pid)
        assert postmaster in tree and s.pid("broker") in tree and len(tree) >= 6

        acked, stop_posting, poster = post_until_stopped(s)
        wait_for(lambda: len(acked) >= 200, what="200 acknowledged messages")
        os.kill(s.proc.pid, signal.SIGKILL)
        s.proc.wait()
        stop_posting.set()
        poster.join(30)
        old = [p for p in tree if p != psql.pid]
        # everything but the PostgreSQL that the open session holds ends by itself
        wait_for(lambda: [p for p in old if running(p) and p not in descendants(postmaster) and p != postmaster] == [],
                 what="the supervisor's children to stop")
        assert running(postmaster), "the open psql session should keep the smart shutdown waiting"

        s.start(timeout=30)
        assert not running(postmaster)
        assert f"pid {postmaster}, left running on" in s.log_text()
        assert [p for p in old if running(p)] == []
        psql.kill()
        psql.wait()
        stored = dict(s.sql("select provider_id, count(*) from messages where provider_id like 'K9-%' "
                            "group by provider_id"))
        missing = [m for m in acked if m not in stored]
        assert missing == [], f"{len(missing)} of {len(acked)} acknowledged messages not stored:\n{s.tail(80)}"
        assert [m for m, n in stored.items() if n != "1"] == []
        assert s.stop() == 0
        assert s.leftover_processes() == []
    finally:
        s.destroy()


def test_kill_9_of_the_embedded_postgres_with_a_busy_backend_restarts_it_at_once():
    """A backend in a long statement outlives its killed postmaster until it next looks for it
    (one in a make chaos run held on 14 s), and while any does a new postmaster refuses to
    start ("pre-existing shared memory block is still in use"): the supervisor kills what the
    dead server left, so the restart works the first time and messages are stored again."""
    s = System(name="pgorphan", workers=1)
    busy = None
    try:
        s.start()
        busy = subprocess.Popen([os.path.join(BIN, "atende"), "psql", "-c", s.conf, "--", "-X", "-q",
                                 "-c", "set statement_timeout = '90s'", "-c",  # bounded even if the test fails
                                 "DO $$ DECLARE i bigint := 0; BEGIN WHILE i < 20000000000 LOOP i := i + 1; "
                                 "END LOOP; END $$;"], cwd=s.dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: s.sql("select count(*) from pg_stat_activity where state = 'active' "
                               "and query like 'DO $$%'") == [["1"]], what="the busy backend")
        postmaster = s.pid("postgres")
        os.kill(postmaster, signal.SIGKILL)
        wait_for(lambda: "of the server that died still held its shared memory: killed" in s.log_text(),
                 what="the dead server's processes killed")
        wait_for(lambda: s.pid("postgres") != postmaster and
                 s.evolution(evolution_text("ORPHAN-1", "oi, voltou?")).status == 200, timeout=30,
                 what="a new PostgreSQL and the ingress taking messages")
        def stored():
            try:
                return s.sql("select count(*) from messages where provider_id = 'ORPHAN-1'") == [["1"]]
            except AssertionError:  # the new server still recovering: psql refused
                return False
        wait_for(stored, timeout=30, what="a message stored by the new server")
        assert "pre-existing shared memory block" not in s.log_text()
        assert busy.wait(10) != 0  # its backend was killed, not finished
        busy = None
    finally:
        if busy:
            busy.kill()
        s.destroy()


def test_kill_9_of_the_supervisor_keeps_the_broker_for_the_next_start():
    """Under load, with the workers frozen (SIGSTOP) so that acknowledged messages wait in the
    embedded broker, kill -9 the supervisor, then the workers: the ingress, the notifier and
    the embedded PostgreSQL stop by themselves (one psql session keeps the old PostgreSQL's
    smart shutdown waiting), but the embedded broker stays with what it holds. The next start
    stops the PostgreSQL leftover, adopts that broker, and its workers store every message the
    ingress acknowledged, once; a clean stop then stops the adopted broker too. With
    kafka.embedded_orphan_keep_s (0 by default: then the broker stops with the rest, above)."""
    s = System(name="kill9keep", extra={r"embedded_orphan_keep_s = 0;": "embedded_orphan_keep_s = 300;"})
    try:
        s.start()
        psql = open_psql_session(s)
        postmaster, broker = s.pid("postgres"), s.pid("broker")
        status = json.loads(s.cli("status", "--json").stdout)
        workers = [p["pid"] for p in status["processes"] if p["role"] == "worker"]
        tree = descendants(s.proc.pid)
        assert postmaster in tree and broker in tree and len(tree) >= 6 and workers

        acked, stop_posting, poster = post_until_stopped(s)
        wait_for(lambda: len(acked) >= 50, what="50 acknowledged messages")
        for w in workers:
            os.kill(w, signal.SIGSTOP)
        frozen_at = len(acked)
        wait_for(lambda: len(acked) >= frozen_at + 200, what="200 messages acknowledged while the workers are frozen")
        os.kill(s.proc.pid, signal.SIGKILL)
        s.proc.wait()
        stop_posting.set()
        poster.join(30)
        for w in workers:
            os.kill(w, signal.SIGKILL)  # frozen workers never finish what they held: the broker must keep it
        old = [p for p in tree if p != psql.pid]
        # everything but the broker and the PostgreSQL that the open session holds ends by itself
        wait_for(lambda: [p for p in old if running(p) and p not in descendants(postmaster)
                          and p not in (postmaster, broker)] == [],
                 what="the supervisor's children but the broker to stop")
        assert running(postmaster), "the open psql session should keep the smart shutdown waiting"
        assert running(broker), "the embedded broker should outlive the supervisor with its data"

        s.start(timeout=30)
        assert not running(postmaster)
        assert f"pid {postmaster}, left running on" in s.log_text()
        assert f"adopted the embedded broker pid {broker}" in s.log_text()
        assert s.pid("broker") == broker
        assert [p for p in old if running(p) and p != broker] == []
        psql.kill()
        psql.wait()

        def stored():
            return dict(s.sql("select provider_id, count(*) from messages where provider_id like 'K9-%' "
                              "group by provider_id"))
        wait_for(lambda: all(m in stored() for m in acked), timeout=90, interval=0.5,
                 what=f"all {len(acked)} acknowledged messages stored by the new workers")
        assert [m for m, n in stored().items() if n != "1"] == []
        assert s.stop() == 0
        assert not running(broker)
        assert s.leftover_processes() == []
    finally:
        s.destroy()


def test_kill_9_with_an_external_postgres_keeps_the_broker_too():
    """The same adoption when postgres.conninfo points at a server atende does not own (make
    chaos CHAOS_PG=external found the state file unwritten there: the run/ folder was made
    only by the embedded PostgreSQL's set-up, so the next start found the port held)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "chaos"))
    from run import ExternalPostgres  # test/chaos/run.py
    root = tempfile.mkdtemp(prefix="atende-extpg-", dir="/tmp")
    os.chmod(root, 0o755)
    pg = ExternalPostgres(os.path.join(root, "pgdata"), free_port()).create()
    s = System(name="kill9ext", extra={r"embedded_orphan_keep_s = 0;": "embedded_orphan_keep_s = 300;",
                                       r'(?m)^  conninfo = "";': f'  conninfo = "{pg.conninfo}";'})
    try:
        s.start()
        broker = s.pid("broker")
        with open(os.path.join(s.dir, "var", "run", "broker.state")) as f:
            assert int(f.read().split()[0]) == broker
        os.kill(s.proc.pid, signal.SIGKILL)
        s.proc.wait()
        s.log.close()
        wait_for(lambda: not [p for p in s.leftover_processes() if "atende-ingress" in p or "atende-notifier" in p],
                 what="the old ingress and notifier to stop")
        s.start(timeout=30)
        assert f"adopted the embedded broker pid {broker}" in s.log_text()
        assert s.pid("broker") == broker
        assert s.stop() == 0
        assert not running(broker)
    finally:
        s.destroy()
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_a_port_held_by_another_process_is_named():
    s = System(name="ports")
    try:
        holder = socket.socket()
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", s.ports["pg"]))
        holder.listen(1)
        r = subprocess.run([os.path.join(BIN, "atende"), "run", "-c", s.conf], cwd=s.dir, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=60)
        holder.close()
        assert r.returncode != 0
        assert f"port {s.ports['pg']} is held by pid {os.getpid()} (" in r.stdout
        assert "postgres.embedded_port needs it" in r.stdout
        assert "broker" not in r.stdout
    finally:
        s.destroy()


def test_a_stop_with_analyses_in_flight_ends_within_shutdown_timeout():
    ai = FakeAI().start()
    s = System(name="slowstop", extra={
        r'provider = "rules";': 'provider = "openai";',
        r'base_url = "";': f'base_url = "{ai.base_url}";',
        r"shutdown_timeout_s = 20;": "shutdown_timeout_s = 8;",
    })
    try:
        s.start()
        ai.control(mode="hang")
        for i in range(20):
            assert s.evolution(evolution_text(f"SLOW-{i}", "minha internet caiu de novo, preciso de ajuda",
                                              customer=f"55118{i:08d}")).status == 200
        count = "select count(*) from messages where provider_id like 'SLOW-%'"
        try:
            wait_for(lambda: s.sql(count) == [["20"]], what="the messages stored")
        except AssertionError as e:
            # CI once timed out here (not reproduced, 6 runs, 3 beside two busy loops): say where
            raise AssertionError(f"{e}\nstored: {s.sql(count)}\n{s.tail()}") from None
        wait_for(lambda: ai.calls()["count"] > 0, what="analyses in flight")
        started = time.monotonic()
        assert s.stop() == 0
        took = time.monotonic() - started
        assert took < 8 + 1.5, f"the stop took {took:.1f} s with shutdown_timeout_s = 8"
        log = s.log_text()
        assert "messages unfinished" in log, log[-4000:]
        assert s.leftover_processes() == []
    finally:
        s.destroy()
        ai.stop()


def test_a_stalled_worker_says_where_its_messages_wait():
    """With PostgreSQL frozen (SIGSTOP: a database that hangs rather than fails), a worker
    that consumed a message can neither store nor finish it. After workers.stall_s it logs
    one line saying where its messages wait and counts atende_worker_stalls_total
    {kind="finish"}; once PostgreSQL moves again the message is stored and the worker says it
    is moving again. (A run of make chaos once stalled with a worker that logged nothing.)
    Then the drill (SIGUSR2) stops the worker's fetch: the watchdog finds it, the worker exits,
    and a fresh one stores and hints the waiting message once."""
    s = System(name="stall", workers=1, extra={r"stall_s = 30;": "stall_s = 2;"})
    frozen = []
    stored = lambda pid: s.sql(f"select count(*) from messages where provider_id = '{pid}'") == [["1"]]
    hinted = lambda pid: s.sql("select count(*) from hints h join messages m on m.id = h.message_id "
                               f"where m.provider_id = '{pid}'") == [["1"]]
    try:
        s.start()
        assert s.evolution(evolution_text("STALL-0", "oi, a fatura veio errada de novo")).status == 200
        # Stored is not finished: its hint may still be on the way. Freeze only once it has one,
        # so the stall line is about STALL-1 (CI once froze STALL-0's coaching with it).
        wait_for(lambda: hinted("STALL-0"), what="the first message stored and hinted")
        postmaster = s.pid("postgres")
        frozen = [postmaster] + descendants(postmaster)
        signal_all(frozen, signal.SIGSTOP)
        assert s.evolution(evolution_text("STALL-1", "oi, a internet caiu de novo aqui")).status == 200
        wait_for(lambda: "stalled (finish)" in s.log_text(), what="the worker's stall line")
        line = [l for l in s.log_text().splitlines() if "stalled (finish)" in l][0]
        waiting = re.search(r"(\d+) messages in flight \(.*?(\d+) storage queries unanswered", line)
        assert waiting and int(waiting.group(1)) >= 1 and int(waiting.group(2)) >= 1, line
        stalls = lambda: [l for l in http("GET", s.url("metrics", "/metrics")).body.decode().splitlines()
                          if l.startswith('atende_worker_stalls_total{') and 'kind="finish"' in l]
        wait_for(lambda: stalls() and float(stalls()[0].split()[-1]) >= 1, what="the stall counted")
        signal_all(frozen, signal.SIGCONT)
        frozen = []
        wait_for(lambda: stored("STALL-1"), what="the message stored once PostgreSQL moves again")
        wait_for(lambda: "moving again after" in s.log_text(), what="the worker's recovery line")

        # The consumer that stops fetching (the worker's SIGUSR2 drill: what librdkafka 2.0.2
        # did in a chaos run after rebalances) is found, and a fresh one takes its partitions:
        # the message waiting for it is stored once.
        wedged = s.pid("worker")
        os.kill(wedged, signal.SIGUSR2)
        wait_for(lambda: "drill (SIGUSR2): the consumer stops fetching" in s.log_text(), what="the drill")
        assert s.evolution(evolution_text("STALL-2", "boa tarde, quero a segunda via do boleto")).status == 200
        wait_for(lambda: "exiting so that the supervisor starts a fresh consumer" in s.log_text(),
                 what="the wedged worker's exit")
        line = [l for l in s.log_text().splitlines() if "stalled (consume)" in l][-1]
        assert "0 messages in flight" in line and re.search(r"[1-9]\d* unread in \d+ assigned partitions", line), line
        wait_for(lambda: stored("STALL-2"), timeout=60, what="the waiting message stored by the fresh consumer")
        assert s.pid("worker") != wedged
        wait_for(lambda: hinted("STALL-2"), what="its one hint")
        assert s.sql("select count(*) from messages where provider_id like 'STALL-%'") == [["3"]]
    finally:
        signal_all(frozen, signal.SIGCONT)
        s.destroy()
