"""make chaos (issue 18, "Prove it"): load plus faults, then the end-to-end checker.

Starts a system on a copy of deploy/bench.conf in a temporary directory (embedded broker and
PostgreSQL, free ports, two workers, hints from the suite's fake AI test/integration/fakeai.py
answering after CHAOS_AI_LATENCY_MS, replies to a fake gateway test/integration/fakegateway.py),
runs `atende bench --ids --events` at CHAOS_RATE msg/s for CHAOS_SECONDS while a few consoles
reply now and then, and meanwhile injects the faults of CHAOS_FAULTS one after another, evenly
spread over the run (each logged with its time and how long the system took to be healthy again):

  worker      kill -9 worker 0 (the supervisor restarts it)
  ingress     kill -9 the ingress
  notifier    kill -9 the notifier (consoles resume with since/epoch)
  broker      the embedded broker down for 10 s (SIGUSR1, then SIGUSR2: its outage drill)
  ai          the fake AI answers 500 for 30 s
  gateway     the fake gateway answers 500 for 30 s
  slow        a company console that stops reading for 30 s (the notifier should close it)
  postgres    kill -9 the embedded PostgreSQL's postmaster (the supervisor restarts it); with
              CHAOS_PG=external, kill -9 the external server's postmaster and start it again
              3 s later, as its process manager would (atende only reconnects)
  supervisor  kill -9 the supervisor (its children stop by themselves, the embedded broker
              stays to be adopted; `atende run` again once the ingress and notifier have
              left their ports, or after 90 s, as a process manager would), last: the most
              disruptive

Then it waits for the system to drain and runs test/chaos/check.py, printing its JSON report
(with the faults) and exiting with its status. Knobs (environment): CHAOS_SECONDS (300),
CHAOS_RATE (1000), CHAOS_FAULTS (all, in the order above), CHAOS_AI_LATENCY_MS (1000),
CHAOS_CONSOLES (3), CHAOS_KEEP=1 keeps the temporary directory (logs, config, ids, events),
CHAOS_PG=external runs the system on a PostgreSQL server of its own (postgres.conninfo set, started
by this script as the unprivileged postgres.user), the way production runs.
"""
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "test", "integration"))
sys.path.insert(0, HERE)

import websocket  # noqa: E402  (Debian python3-websocket)

import check  # noqa: E402
from fakegateway import FakeGateway  # noqa: E402
from harness import System, free_port, http, wait_for  # noqa: E402

ALL_FAULTS = ["worker", "ingress", "notifier", "broker", "ai", "gateway", "slow", "postgres", "supervisor"]


def log(msg):
    print(f"chaos: {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


class Gateway(FakeGateway):
    """The fake gateway, also remembering the texts of the sends it answered 2xx."""

    def __init__(self):
        super().__init__()
        self.ok_texts = []
        # a worker killed mid-send resets its connection: expected here, not worth a traceback
        self.server.handle_error = lambda request, address: None

    def _record(self, method, path, headers, body, raw=None):
        status, answer, delay = super()._record(method, path, headers, body, raw)
        if method == "POST" and 200 <= status < 300 and isinstance(body, dict):
            with self.lock:
                self.ok_texts.append(body.get("text"))
        return status, answer, delay

    def clear_requests(self):
        """Keeps memory flat over a long run: only the counts of old requests matter."""
        with self.lock:
            n = len([r for r in self.requests if r["method"] == "POST"])
            self.requests = []
            return n


class ExternalPostgres:
    """A PostgreSQL server that atende does not own (CHAOS_PG=external): initdb'd and started by
    this script as the unprivileged user, trust on loopback, its socket in its own directory."""

    USER = "atende"  # deploy/bench.conf's postgres.user: the account exists once atende has run

    def __init__(self, directory, port):
        self.dir, self.port, self.proc = directory, port, None
        self.bindir = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))[-1]
        self.log = open(os.path.join(os.path.dirname(directory), "external-postgres.log"), "ab")

    def _as_user(self, *argv):
        return ["runuser", "-u", self.USER, "--", *argv] if os.geteuid() == 0 else list(argv)

    def create(self):
        if os.geteuid() == 0 and subprocess.run(["id", "-u", self.USER], stdout=subprocess.DEVNULL,
                                                stderr=subprocess.DEVNULL).returncode != 0:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", self.USER],
                           check=True)
        os.makedirs(self.dir, 0o700)
        if os.geteuid() == 0:
            shutil.chown(self.dir, self.USER, self.USER)
        subprocess.run(self._as_user(os.path.join(self.bindir, "initdb"), "-D", self.dir, "-U", "postgres",
                                     "-A", "trust", "-E", "UTF8", "--no-sync"),
                       check=True, stdout=self.log, stderr=subprocess.STDOUT)
        self.start()
        subprocess.run(self._as_user(os.path.join(self.bindir, "psql"), "-X", "-q", "-h", self.dir, "-p",
                                     str(self.port), "-U", "postgres", "-c", "create database atende"),
                       check=True, stdout=self.log, stderr=subprocess.STDOUT)
        return self

    @property
    def conninfo(self):
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=atende"

    def start(self, timeout=60):
        """Starts the postmaster; after a kill -9 the old backends may still hold the shared
        memory for a moment, so a refused start is tried again until timeout."""
        deadline = time.monotonic() + timeout
        while True:
            self.proc = subprocess.Popen(
                self._as_user(os.path.join(self.bindir, "postgres"), "-D", self.dir, "-p", str(self.port),
                              "-k", self.dir, "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"),
                stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
            if self._wait_ready(deadline):
                return self
            if time.monotonic() >= deadline:
                raise AssertionError(f"the external PostgreSQL did not start within {timeout}s")
            time.sleep(0.5)

    def _wait_ready(self, deadline):
        while time.monotonic() < deadline and self.proc.poll() is None:
            r = subprocess.run(self._as_user(os.path.join(self.bindir, "pg_isready"), "-q", "-h", self.dir,
                                             "-p", str(self.port)))
            if r.returncode == 0:
                return True
            time.sleep(0.2)
        return False

    def postmaster_pid(self):
        with open(os.path.join(self.dir, "postmaster.pid")) as f:
            return int(f.readline())

    def kill(self):
        """kill -9 of the postmaster (its backends notice and exit by themselves)."""
        pid = self.postmaster_pid()
        os.kill(pid, signal.SIGKILL)
        self.proc.wait(10)
        return pid

    def stop(self):
        if self.proc and self.proc.poll() is None:
            # to the postmaster itself (self.proc may be runuser, which does not pass SIGINT on)
            os.kill(self.postmaster_pid(), signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(self.postmaster_pid(), signal.SIGKILL)
        self.log.close()


class ChaosSystem(System):
    """A System on deploy/bench.conf (one Evolution instance per domain, agents 1-100, coaching
    limits off) with the fake AI and the fake gateway; external_pg: an ExternalPostgres's
    conninfo instead of the embedded server."""

    def __init__(self, ai_url, gateway_url, workers=2, conninfo=""):
        self.ai_url, self.gateway_url, self.conninfo = ai_url, gateway_url, conninfo
        super().__init__(name="chaos", workers=workers)

    def write_config(self, **changes):
        with open(os.path.join(ROOT, "deploy", "bench.conf")) as f:
            text = f.read()
        p = self.ports
        subs = [
            (r'"127\.0\.0\.1:8080"', f'"127.0.0.1:{p["ingress"]}"', 1),
            (r'"127\.0\.0\.1:8081"', f'"127.0.0.1:{p["notifier"]}"', 1),
            (r'"127\.0\.0\.1:8082"', f'"127.0.0.1:{p["metrics"]}"', 1),
            # a killed supervisor's broker waits to be adopted: its data is what the checker counts
            (r"embedded_port = 9092;", f"embedded_port = {p['kafka']}; embedded_orphan_keep_s = 300;", 1),
            (r"embedded_port = 5433;", f"embedded_port = {p['pg']};", 1),
            (r'(?m)^  conninfo = "";', f'  conninfo = "{self.conninfo}";', 1),
            (r"(?m)^  count = 2;", f"  count = {self.workers};", 1),
            (r'url = "http://127\.0\.0\.1:8090"', f'url = "{self.gateway_url}"', 5),
            (r'provider = "rules";', 'provider = "openai";', 1),
            (r'base_url = "";', f'base_url = "{self.ai_url}";', 1),
            (r"max_in_flight = 1000;", "max_in_flight = 4000;", 1),
            (r'prompts_dir = "deploy/prompts";', f'prompts_dir = "{ROOT}/deploy/prompts";', 1),
            (r'console_dir = "notifier/console";', f'console_dir = "{ROOT}/notifier/console";', 1),
        ]
        for pat, rep, want in subs:
            text, n = re.subn(pat, rep, text)
            assert n == want, f"bench.conf substitution {pat!r} matched {n} times, not {want}"
        with open(self.conf, "w") as f:
            f.write(text)


class Consoles:
    """Agents' consoles that reply now and then to a conversation of theirs (so outbound runs
    under the faults); each reconnects after a drop. Records every reply the notifier acked."""

    def __init__(self, system, agents, interval=2.0):
        self.s, self.agents, self.interval = system, agents, interval
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked, self.asked, self.refused = [], 0, 0
        self.threads = [threading.Thread(target=self._run, args=(a,), daemon=True) for a in agents]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(15)

    def _run(self, agent):
        n = 0
        token = self.s.token(agent, 1)
        while not self.stop.is_set():
            try:
                sock = websocket.create_connection(
                    f"ws://127.0.0.1:{self.s.ports['notifier']}/ws?token={token}", timeout=5)
            except (OSError, websocket.WebSocketException):
                self.stop.wait(1)
                continue
            try:
                sock.send(json.dumps({"op": "subscribe", "channel": f"agent:{agent}", "id": 1}))
                convs, pending, next_at, rid = [], {}, time.monotonic() + self.interval, 100
                while not self.stop.is_set():
                    sock.settimeout(0.5)
                    try:
                        f = json.loads(sock.recv())
                    except websocket.WebSocketTimeoutException:
                        f = None
                    if f and f.get("type") == "message" and not f["data"].get("from_me"):
                        c = f["data"].get("conversation_id")
                        if c and c not in convs:
                            convs = (convs + [c])[-50:]
                    elif f and f.get("type") in ("ack", "error") and f.get("id") in pending:
                        text = pending.pop(f["id"])
                        with self.lock:
                            if f["type"] == "ack" and f.get("request_id"):
                                self.acked.append({"request_id": f["request_id"], "text": text})
                            else:
                                self.refused += 1
                    if convs and time.monotonic() >= next_at:
                        n += 1
                        rid += 1
                        text = f"chaos reply {agent}-{n}: já verifiquei seu caso, obrigado pela paciência"
                        pending[rid] = text
                        with self.lock:
                            self.asked += 1
                        sock.send(json.dumps({"op": "reply", "id": rid, "conversation": convs[n % len(convs)],
                                              "text": text}))
                        next_at = time.monotonic() + self.interval
            except (OSError, websocket.WebSocketException, ValueError):
                self.stop.wait(0.5)  # a dropped notifier: connect again
            finally:
                try:
                    sock.close()
                except OSError:
                    pass


class Chaos:
    """One chaos run: system, fakes, load, faults, drain, check."""

    def __init__(self, seconds=300, rate=1000, faults=None, ai_latency_ms=1000, consoles=3, workers=2,
                 external_pg=False):
        self.seconds, self.rate, self.external_pg = seconds, rate, external_pg
        self.pg = None
        self.fault_names = faults if faults is not None else list(ALL_FAULTS)
        unknown = [f for f in self.fault_names if f not in ALL_FAULTS]
        if unknown:
            raise ValueError(f"unknown fault(s) {unknown}: known are {ALL_FAULTS}")
        self.ai_latency_ms, self.n_consoles, self.workers = ai_latency_ms, consoles, workers
        self.faults = []
        self.ai_proc = self.gw = self.s = self.bench = None

    # --- set-up ------------------------------------------------------------
    def start(self):
        # glibc's own fatal messages (double free, heap corruption) go to the log, not a tty
        os.environ.setdefault("LIBC_FATAL_STDERR_", "1")
        self.gw = Gateway().start()
        self.ai_port = free_port()
        self.ai_log = open(f"/tmp/chaos-fakeai-{self.ai_port}.log", "wb")
        self.ai_proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "test", "integration", "fakeai.py"),
                                         "--port", str(self.ai_port), "--latency-ms", str(self.ai_latency_ms)],
                                        stdout=self.ai_log, stderr=subprocess.STDOUT)
        wait_for(lambda: self._ai_up(), 20, "the fake AI to listen")
        conninfo = ""
        if self.external_pg:
            self.pg_root = tempfile.mkdtemp(prefix="atende-chaos-pg-", dir="/tmp")
            os.chmod(self.pg_root, 0o755)
            self.pg = ExternalPostgres(os.path.join(self.pg_root, "pgdata"), free_port()).create()
            conninfo = self.pg.conninfo
            log(f"external PostgreSQL on port {self.pg.port} in {self.pg_root}")
        self.s = ChaosSystem(f"http://127.0.0.1:{self.ai_port}/v1", self.gw.url, self.workers, conninfo)
        self.s.start(timeout=120)
        self.ids, self.events = os.path.join(self.s.dir, "ids.tsv"), os.path.join(self.s.dir, "events.tsv")
        self.replies, self.faults_path = os.path.join(self.s.dir, "replies.json"), os.path.join(self.s.dir, "faults.json")
        log(f"system up in {self.s.dir}")
        return self

    def _ai_up(self):
        try:
            return http("GET", f"http://127.0.0.1:{self.ai_port}/healthz", timeout=1).status == 200
        except OSError:
            return False

    def ai_mode(self, mode):
        http("POST", f"http://127.0.0.1:{self.ai_port}/control", json.dumps({"mode": mode}).encode(),
             {"Content-Type": "application/json"})

    def snapshot(self):
        """What a post-mortem of a failed run needs from the live system, written into its kept
        directory before it stops: the merged metrics, the status and PostgreSQL's sessions."""
        if not self.s or self.s.proc.poll() is not None:
            return
        try:
            with open(os.path.join(self.s.dir, "metrics-at-end.txt"), "w") as f:
                f.write(http("GET", self.s.url("metrics", "/metrics"), timeout=10).body.decode())
            with open(os.path.join(self.s.dir, "status-at-end.txt"), "w") as f:
                f.write(self.s.cli("status", check=False).stdout)
            with open(os.path.join(self.s.dir, "pg-activity-at-end.txt"), "w") as f:
                for row in self.s.sql("select pid, application_name, state, wait_event_type, wait_event, "
                                      "now() - query_start, left(query, 200) from pg_stat_activity"):
                    f.write("\t".join(map(str, row)) + "\n")
        except Exception as e:  # a post-mortem aid: the report matters more
            log(f"snapshot of the failed run incomplete: {type(e).__name__}: {e}")

    def destroy(self, keep=False):
        if self.bench and self.bench.poll() is None:
            self.bench.send_signal(signal.SIGINT)
            try:
                self.bench.wait(30)
            except subprocess.TimeoutExpired:
                self.bench.kill()
        if self.s:
            if keep:
                self.s.stop()
                log(f"kept {self.s.dir}")
            else:
                self.s.destroy()
        if self.ai_proc:
            self.ai_proc.terminate()
            self.ai_proc.wait(10)
            self.ai_log.close()
            os.unlink(self.ai_log.name)
        if self.gw:
            self.gw.stop()
        if self.pg:
            self.pg.stop()
            if not keep:
                shutil.rmtree(self.pg_root, ignore_errors=True)

    # --- the run -----------------------------------------------------------
    def run(self):
        """Load + faults + drain + check; returns the checker's report (with the faults)."""
        s = self.s
        self.bench_log = open(os.path.join(s.dir, "bench.log"), "wb")
        self.bench_out = os.path.join(s.dir, "bench.json")
        # the bench's company socket is the watcher whose events the checker counts: it stays
        # until the system has drained (then SIGINT ends the bench), so that what is stored
        # during the drain is checked too, not only what was stored while the load ran
        drain = 3600
        self.bench = subprocess.Popen(
            [os.path.join(ROOT, "bin", "atende"), "bench", "-c", s.conf, "--rate", str(self.rate),
             "--seconds", str(self.seconds), "--warmup", "0", "--drain", str(drain), "--connections", "64",
             "--agents", "20", "--ids", self.ids, "--events", self.events],
            cwd=s.dir, stdout=open(self.bench_out, "wb"), stderr=self.bench_log)
        consoles = Consoles(s, list(range(2, 2 + self.n_consoles))).start()
        t0 = time.time()
        n = len(self.fault_names)
        for k, name in enumerate(self.fault_names):
            at = t0 + self.seconds * (k + 0.5) / (n + 0.5) if n else 0
            while time.time() < at and self.bench.poll() is None:
                time.sleep(0.2)
            if self.bench.poll() is not None:
                log(f"the load ended before fault {name}")
                break
            self.fault(name)
        while time.time() < t0 + self.seconds and self.bench.poll() is None:
            time.sleep(0.5)  # the load's own length
        log("load sent; waiting for the system to drain")
        drained = self.wait_drained()
        try:
            # the bench ends by itself once its socket got a hint for every acknowledged message
            self.bench.wait(60)
        except subprocess.TimeoutExpired:
            self.bench.send_signal(signal.SIGINT)
            self.bench.wait(60)
        self.bench_log.close()
        consoles.finish()
        with open(self.bench_out) as f:
            bench = f.read().strip()
        log(f"drained in {drained} s; bench exit {self.bench.returncode}: {bench[:400]}")
        with open(self.replies, "w") as f:
            with self.gw.lock:
                ok = list(self.gw.ok_texts)
                posts = len([r for r in self.gw.requests if r["method"] == "POST"])
            json.dump({"acked": consoles.acked, "asked": consoles.asked, "refused": consoles.refused,
                       "gateway_2xx_texts": ok, "gateway_posts": posts}, f)
        with open(self.faults_path, "w") as f:
            json.dump(self.faults, f)
        report = check.check(s.conf, self.ids, self.events, self.replies, self.faults_path)
        try:
            report["bench"] = json.loads(bench)
        except ValueError:
            report["bench"] = bench[:2000]
        report["drain_s"] = drained
        report["consumer_lag_after_drain"] = self.settled_lag()
        # a fault kills with -9; a process the supervisor saw die of anything else crashed
        report["crashes"] = [l for l in s.log_text().splitlines()
                             if re.search(r" exited \(killed by signal (?!9 )\d+", l)]
        report["config"] = {"seconds": self.seconds, "rate": self.rate, "ai_latency_ms": self.ai_latency_ms,
                            "workers": self.workers, "consoles": self.n_consoles,
                            "postgres": "external" if self.external_pg else "embedded"}
        return report

    def consumer_lag(self):
        """The workers' consumer lag summed over partitions, from the merged /metrics (None: unknown)."""
        try:
            body = http("GET", self.s.url("metrics", "/metrics"), timeout=5).body.decode()
        except OSError:
            return None
        vals = [float(l.rsplit(" ", 1)[1]) for l in body.splitlines() if l.startswith("atende_worker_consumer_lag{")]
        return sum(vals) if vals else None

    def settled_lag(self, limit=30):
        """The merged consumer lag once the workers' statistics (every few seconds) have caught
        up with the drain: 0 unless a series is stale or something is still unconsumed."""
        deadline, lag = time.monotonic() + limit, None
        while time.monotonic() < deadline:
            lag = self.consumer_lag()
            if lag == 0:
                break
            time.sleep(1)
        return lag

    def wait_drained(self, limit=1800, stall=180):
        """Seconds until the workers have consumed everything (consumer lag 0, or, with no lag
        series at all, no new message of the run stored for 10 s), no stored customer message
        of the run awaits its coaching decision and no reply is still being sent. A slow machine
        gets time as long as the system makes progress (the lag, the stored count or the open
        count moves); -1 when nothing moved for stall seconds, or after limit: the check then
        counts what is still in the broker as lost."""
        start = time.monotonic()
        with open(self.ids) as f:
            first = f.readline().split("\t")[0]
        prefix = first[:first.index("-") + 1] if "-" in first else "BENCH"
        q = ("select (select count(*) from messages where provider_id like '" + prefix + "%' and not from_me "
             "and hint_id is null and coaching is null) + "
             "(select count(*) from outbound_requests where status = 'sending'), "
             "(select count(*) from messages where provider_id like '" + prefix + "%')")
        seen, moved_at, stored_at, lag = None, time.monotonic(), time.monotonic(), None
        while time.monotonic() - start < limit and time.monotonic() - moved_at < stall:
            try:
                row = self.s.sql(q)[0]
                still_open, stored = int(row[0]), int(row[1])
            except (AssertionError, IndexError, ValueError):
                still_open, stored = None, None
            lag = self.consumer_lag()
            if seen is None or (still_open, stored, lag) != seen:
                if seen is None or stored != seen[1]:
                    stored_at = time.monotonic()
                seen, moved_at = (still_open, stored, lag), time.monotonic()
            if still_open == 0 and (lag == 0 or (lag is None and time.monotonic() - stored_at >= 10)):
                return round(time.monotonic() - start, 1)
            time.sleep(2)
        log(f"not drained after {round(time.monotonic() - start)}s ({seen[0] if seen else None} open, "
            f"consumer lag {lag}; nothing moved for {round(time.monotonic() - moved_at)}s)")
        return -1

    # --- faults ------------------------------------------------------------
    def fault(self, name):
        start = time.time()
        entry = {"fault": name, "at": time.strftime("%H:%M:%S", time.gmtime(start)), "t": round(start, 3)}
        log(f"fault {name}")
        try:
            entry.update(getattr(self, "fault_" + name)() or {})
        except Exception as e:  # a fault that could not be injected is reported, not fatal
            entry["error"] = f"{type(e).__name__}: {e}"
        if self.s.proc.poll() is not None:  # whatever happened, the run goes on with a system
            log(f"atende is not running after fault {name}: starting it again")
            self.s.log.close()
            self.s.start(timeout=120)
            entry["restarted"] = True
        entry["recovered_s"] = self.wait_healthy(start)
        self.faults.append(entry)
        log(f"fault {name} done: {entry}")

    def wait_healthy(self, since, limit=120):
        try:
            wait_for(self.s.healthy, limit, "the system to be healthy again", interval=0.2)
            return round(time.time() - since, 1)
        except AssertionError:
            return -1

    def _kill(self, role):
        pid = self.s.pid(role)
        os.kill(pid, signal.SIGKILL)
        # healthy again only once a new process of that role runs
        wait_for(lambda: self._other_pid(role, pid), 60, f"a new {role}", interval=0.2)
        return {"pid": pid}

    def _other_pid(self, role, old):
        try:
            return self.s.pid(role) not in (old, 0, None)
        except (AssertionError, IndexError, ValueError, OSError):
            return False

    def fault_worker(self):
        return self._kill("worker")

    def fault_ingress(self):
        return self._kill("ingress")

    def fault_notifier(self):
        return self._kill("notifier")

    def fault_postgres(self):
        if not self.pg:
            return self._kill("postgres")
        pid = self.pg.kill()
        time.sleep(3)  # down for this long: a process manager's restart delay
        self.pg.start()
        return {"pid": pid, "external": True, "down_s": 3}

    def fault_supervisor(self):
        s = self.s
        pid = s.proc.pid
        os.kill(pid, signal.SIGKILL)
        s.proc.wait()
        s.log.close()
        t = time.time()
        # its children stop by themselves (they watch their parent), the workers once they have
        # stored what they hold, which under load takes a while; the embedded broker stays for
        # the next start to adopt, which also stops a leftover PostgreSQL itself: only the
        # ingress and the notifier, holding their ports, must be gone before it
        try:
            wait_for(lambda: not [p for p in s.leftover_processes() if "atende-ingress" in p or "atende-notifier" in p],
                     90, "the old ingress and notifier to stop", interval=0.5)
            stopped = round(time.time() - t, 1)
        except AssertionError:
            stopped = -1
        s.start(timeout=120)
        return {"pid": pid, "children_stopped_s": stopped, "restarted_after_s": round(time.time() - t, 1)}

    def fault_broker(self):
        pid = self.s.pid("broker")
        os.kill(pid, signal.SIGUSR1)
        time.sleep(10)  # the outage itself lasts this long
        os.kill(pid, signal.SIGUSR2)
        return {"pid": pid, "down_s": 10}

    def fault_ai(self):
        self.ai_mode("500")
        time.sleep(30)  # the outage itself
        self.ai_mode("ok")
        return {"down_s": 30}

    def fault_gateway(self):
        self.gw.fail_all(500)
        time.sleep(30)  # the outage itself
        self.gw.fail_all(None)
        return {"down_s": 30}

    def fault_slow(self):
        """A supervisor console on company:1 that stops reading: the notifier should close it
        (slow consumer) while everyone else goes on."""
        sock = socket.create_connection(("127.0.0.1", self.s.ports["notifier"]))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        ws = websocket.WebSocket()
        ws.sock_opt.timeout = 10
        ws.connect(f"ws://127.0.0.1:{self.s.ports['notifier']}/ws?token={self.s.token(1, 1, 'supervisor')}",
                   socket=sock)
        ws.send(json.dumps({"op": "subscribe", "channel": "company:1", "id": 1}))
        time.sleep(30)  # not reading: the point of the fault
        # what was queued before the close is still in the socket: read it, at most 10 s
        closed, deadline = False, time.monotonic() + 10
        ws.settimeout(2)
        try:
            while time.monotonic() < deadline:
                op, data = ws.recv_data(control_frame=True)
                if op == websocket.ABNF.OPCODE_CLOSE:
                    closed = True
                    break
        except (OSError, websocket.WebSocketException):
            closed = True
        ws.close()
        return {"stopped_reading_s": 30, "closed_by_notifier": closed}


def main():
    seconds = float(os.environ.get("CHAOS_SECONDS", "300"))
    rate = float(os.environ.get("CHAOS_RATE", "1000"))
    faults = [f for f in os.environ.get("CHAOS_FAULTS", " ".join(ALL_FAULTS)).replace(",", " ").split() if f]
    chaos = Chaos(seconds, rate, faults, int(os.environ.get("CHAOS_AI_LATENCY_MS", "1000")),
                  int(os.environ.get("CHAOS_CONSOLES", "3")),
                  external_pg=os.environ.get("CHAOS_PG", "embedded") == "external")
    keep = os.environ.get("CHAOS_KEEP") == "1"
    report = None
    try:
        chaos.start()
        report = chaos.run()
    finally:
        if report is None or not report.get("pass"):
            keep = keep or report is not None
            if keep:
                chaos.snapshot()
        chaos.destroy(keep=keep)
    print(json.dumps(report, indent=1, ensure_ascii=False))
    os.makedirs(os.path.join(ROOT, "build"), exist_ok=True)
    with open(os.path.join(ROOT, "build", "chaos-results.jsonl"), "a") as f:
        f.write(json.dumps(report, ensure_ascii=False) + "\n")
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
