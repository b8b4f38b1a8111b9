"""Starts a real atende (supervisor + embedded PostgreSQL + embedded broker + ingress,
workers, notifier) on a generated config with free ports, and talks to it with real
HTTP, WebSocket and psql clients. One System per test module keeps the suite fast."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import websocket  # Debian python3-websocket

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "bin")
FIXTURES = os.path.join(ROOT, "test", "fixtures")


# Ports are handed out below the kernel's ephemeral range (32768 and up), so no
# client connection can take one between the choice and the server's bind, and
# never twice in one process: port 0's answer can repeat once the socket is closed,
# and one clean-clone run gave the notifier the supervisor's metrics port.
_PORT_LOW, _PORT_HIGH = 20000, 32000
_next_port = _PORT_LOW + (os.getpid() * 37) % (_PORT_HIGH - _PORT_LOW)


def free_port():
    """Returns a loopback TCP port nothing listens on, not handed out before by this process."""
    global _next_port
    for _ in range(_PORT_HIGH - _PORT_LOW):
        port = _next_port
        _next_port = _PORT_LOW + (_next_port + 1 - _PORT_LOW) % (_PORT_HIGH - _PORT_LOW)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free port between %d and %d" % (_PORT_LOW, _PORT_HIGH))


def fixture(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return f.read()


def wait_for(cond, timeout=30.0, what="condition", interval=0.02):
    """Polls cond() until it returns a truthy value; fails with what after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)


def http(method, url, body=None, headers=None, timeout=10):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Response(r.status, dict(r.headers), r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, dict(e.headers), e.read())


class System:
    """One running atende. overrides: extra config text appended per group key."""

    def __init__(self, name="atende", workers=2, extra=None):
        self.dir = tempfile.mkdtemp(prefix=f"atende-{name}-", dir="/tmp")
        os.chmod(self.dir, 0o755)  # the embedded PostgreSQL runs as an unprivileged user
        self.ports = {k: free_port() for k in ("ingress", "notifier", "metrics", "kafka", "pg")}
        self.conf = os.path.join(self.dir, "atende.conf")
        self.log_path = os.path.join(self.dir, "atende.log")
        self.workers = workers
        self.extra = extra or {}
        self.preexec = None  # run in the supervisor's process before exec (limits, say)
        self.proc = None
        self.write_config()

    def port_substitutions(self):
        """Config substitutions that put a sample config's listeners on this system's free ports."""
        p = self.ports
        return {
            r'(ingress: \{\s*listen = )"[^"]*"': rf'\1"127.0.0.1:{p["ingress"]}"',
            r'(notifier: \{\s*listen = )"[^"]*"': rf'\1"127.0.0.1:{p["notifier"]}"',
            r'(metrics: \{\s*listen = )"[^"]*"': rf'\1"127.0.0.1:{p["metrics"]}"',
            r"embedded_port = 9092;": f"embedded_port = {p['kafka']};",
            r"embedded_port = 5433;": f"embedded_port = {p['pg']};",
        }

    def render_config(self, sample, subs):
        """Writes deploy/<sample> with subs (pattern: replacement, each matching once) as this
        system's config."""
        with open(os.path.join(ROOT, "deploy", sample)) as f:
            text = f.read()
        for pat, rep in subs.items():
            text, n = re.subn(pat, rep, text)
            assert n == 1, f"config substitution {pat!r} matched {n} times"
        with open(self.conf, "w") as f:
            f.write(text)

    def write_config(self, **changes):
        subs = self.port_substitutions()
        subs.update({
            r"(?m)^  count = 2;": f"  count = {self.workers};",
            # limits off unless a module turns them on (test_coaching does): tests post
            # many messages to few agents within seconds
            r"agent_interval_s = 10;": "agent_interval_s = 0;",
        })
        subs.update(self.extra)
        subs.update(changes)
        self.render_config("atende.conf", subs)

    # --- lifecycle -------------------------------------------------------
    def start(self, timeout=90):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([os.path.join(BIN, "atende"), "run", "-c", self.conf], cwd=self.dir,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=self.preexec)
        wait_for(lambda: self.healthy() or self.proc.poll() is not None, timeout, "the system to become healthy")
        if self.proc.poll() is not None:
            raise AssertionError(f"atende exited with {self.proc.returncode}:\n{self.tail()}")
        return self

    def healthy(self):
        try:
            return (http("GET", self.url("ingress", "/healthz"), timeout=2).status == 200 and
                    http("GET", self.url("notifier", "/healthz"), timeout=2).status == 200 and
                    http("GET", self.url("metrics", "/healthz"), timeout=2).status == 200)
        except OSError:
            return False

    def stop(self, timeout=60):
        """SIGTERM and wait; returns the exit status. Asserts no process of ours is left."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise AssertionError(f"atende did not stop within {timeout}s:\n{self.tail()}")
        self.log.close()
        return rc

    def leftover_processes(self):
        out = subprocess.run(["ps", "-eo", "pid,args"], stdout=subprocess.PIPE, text=True).stdout
        return [l for l in out.splitlines() if self.dir in l or self.conf in l]

    def destroy(self):
        if self.proc and self.proc.poll() is None:
            try:
                self.stop()
            except AssertionError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def tail(self, n=60):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    # --- clients ---------------------------------------------------------
    def url(self, which, path):
        return f"http://127.0.0.1:{self.ports[which]}{path}"

    def pid(self, role, index=0):
        """The pid of a running child process, from the supervisor's /healthz (what `atende
        status` starts from; status itself also scrapes twice and asks PostgreSQL, too slow to
        poll on a loaded machine)."""
        s = json.loads(http("GET", self.url("metrics", "/healthz"), timeout=10).body)
        return [p["pid"] for p in s["processes"] if p["role"] == role and p["index"] == index][0]

    def metric(self, which, name, index=0):
        """The value of a process's unlabelled series, from the merged /metrics on metrics.listen
        (the only place metrics are served; each process exports its registry every second, so
        a caller waits for a value rather than asserting it at once)."""
        want = f'{name}{{process="{which}",index="{index}"}} '
        for line in http("GET", self.url("metrics", "/metrics")).body.decode().splitlines():
            if line.startswith(want):
                return float(line.split()[-1])
        raise AssertionError(f"{name} of {which} {index} not in the merged /metrics")

    def post(self, path, body, headers=None, content_type="application/json"):
        h = {"Content-Type": content_type} if content_type else {}
        h.update(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        return http("POST", self.url("ingress", path), body, h)

    def evolution(self, payload, key="demo-evolution-key"):
        return self.post("/webhooks/evolution", payload, {"apikey": key} if key else None)

    def cli(self, *args, check=True, env=None):
        r = subprocess.run([os.path.join(BIN, "atende"), args[0], "-c", self.conf, *args[1:]], cwd=self.dir,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(f"atende {' '.join(args)} failed ({r.returncode}): {r.stderr}")
        return r

    def token(self, agent, company, role="agent", ttl=None):
        args = ["token", "--agent", str(agent), "--company", str(company), "--role", role]
        if ttl:
            args += ["--ttl", ttl]
        return self.cli(*args).stdout.strip().splitlines()[-1]

    def sql(self, query):
        """Runs a query through `atende psql` (the ops path) and returns rows as lists."""
        r = self.cli("psql", "--", "-X", "-A", "-t", "-F", "\t", "-c", query)
        return [line.split("\t") for line in r.stdout.splitlines() if line]

    def ws(self, token, timeout=10):
        return Console(f"ws://127.0.0.1:{self.ports['notifier']}/ws?token={token}", timeout)


def serve(system):
    """Body of a module fixture: starts system, yields it, stops and removes it. On a
    failed start or a non-zero exit the log's tail is printed for the report."""
    try:
        system.start()
    except Exception:
        print(system.tail(200))
        system.destroy()
        raise
    yield system
    if system.proc and system.proc.poll() is None and system.stop() != 0:
        print(system.tail(100))
    system.destroy()


class Console:
    """A WebSocket client speaking the console protocol."""

    def __init__(self, url, timeout):
        self.sock = websocket.create_connection(url, timeout=timeout)
        self.frames = []
        self.next_id = 1

    def send(self, **op):
        op.setdefault("id", self.next_id)
        self.next_id += 1
        self.sock.send(json.dumps(op))
        return op["id"]

    def request(self, timeout=10, **op):
        """Sends an op and returns its ack or error frame (other frames are kept)."""
        rid = self.send(**op)
        return self.wait(lambda f: f.get("type") in ("ack", "error") and f.get("id") == rid, timeout)

    def subscribe(self, channel, **extra):
        return self.request(op="subscribe", channel=channel, **extra)

    def recv_one(self, timeout):
        self.sock.settimeout(timeout)
        frame = json.loads(self.sock.recv())
        self.frames.append(frame)
        return frame

    def wait(self, pred, timeout=30):
        for f in self.frames:
            if pred(f):
                return f
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching frame within {timeout}s; got {self.frames[-5:]}")
            try:
                f = self.recv_one(left)
            except websocket.WebSocketTimeoutException:
                continue
            if pred(f):
                return f

    def events(self, type_=None, channel=None):
        return [f for f in self.frames if f.get("type") not in ("ack", "error") and
                (type_ is None or f.get("type") == type_) and (channel is None or f.get("channel") == channel)]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
