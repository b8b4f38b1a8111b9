"""The embedded broker runs on atende's patched librdkafka (deploy/rdkafka-mock.sh, which make test
calls, builds bin/rdkafka-mock/librdkafka.so.1) and the other processes on Debian's; without the
patched library, or with kafka.embedded_patched off, it runs on Debian's and says so, and the
system delivers all the same."""
import json
import os
import signal
import subprocess

from harness import BIN, System, http
from test_foundation import evolution_text

PATCHED_LIB = os.path.join(BIN, "rdkafka-mock", "librdkafka.so.1")


def metrics_text(system):
    return http("GET", system.url("metrics", "/metrics")).body.decode()


def librdkafka_of(pid):
    """The librdkafka file a process has mapped."""
    with open(f"/proc/{pid}/maps") as f:
        paths = {line.split()[-1] for line in f if "librdkafka" in line}
    assert len(paths) == 1, paths
    return os.path.realpath(paths.pop())


def environ(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        return dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)


def delivers(system, msg_id):
    console = system.ws(system.token(1, 1))
    console.subscribe("company:1")
    assert system.evolution(evolution_text(msg_id, "minha fatura veio com valor errado")).status == 200
    console.wait(lambda f: f["type"] == "hint" and f["data"]["message_id"] == msg_id, timeout=60)
    console.close()


def test_the_broker_alone_runs_on_the_patched_library(system):
    status = json.loads(system.cli("status", "--json").stdout)
    pids = {p["role"] + str(p["index"]): p["pid"] for p in status["processes"]}
    log = system.log_text()
    if os.path.exists(PATCHED_LIB):
        assert status["broker_library"] == "patched"
        assert librdkafka_of(pids["broker0"]) == os.path.realpath(PATCHED_LIB)
        assert "embedded broker on the patched librdkafka 2.0.2" in log
        assert 'atende_broker_epoch{library="patched"}' in metrics_text(system)
        # it ends a held fetch when data arrives, so the consumers wait long (and deliver at once)
        assert "the consumers use kafka.embedded_fetch_wait_max_ms" in log
        # and answers them a little later, so that one fetch reads what came meanwhile (patch part 5)
        assert "embedded broker: new data ends a waiting fetch 3 ms later" in log
        wakes = True
    else:  # the source could not be had: the stock library, with its one warning
        assert status["broker_library"] == "stock"
        assert "embedded broker on Debian's stock librdkafka" in log
        wakes = False
    for client in ("ingress0", "worker0", "worker1", "notifier0"):
        assert librdkafka_of(pids[client]) != os.path.realpath(PATCHED_LIB), client
        assert (environ(pids[client]).get(b"ATENDE_BROKER_WAKES") == b"1") == wakes, client
    assert "librdkafka)" in system.cli("status").stdout  # "brokers ... (embedded, patched librdkafka)"
    delivers(system, "LIB-PATCHED-1")


def test_kafka_embedded_patched_false_runs_the_stock_library():
    s = System(name="broker_stock", extra={"embedded_patched = true;": "embedded_patched = false;"})
    try:
        s.start()
        status = json.loads(s.cli("status", "--json").stdout)
        assert status["broker_library"] == "stock"
        broker = [p["pid"] for p in status["processes"] if p["role"] == "broker"][0]
        assert "/rdkafka-mock/" not in librdkafka_of(broker)
        worker = [p["pid"] for p in status["processes"] if p["role"] == "worker"][0]
        assert b"ATENDE_BROKER_WAKES" not in environ(worker)  # a stock broker holds fetches: short waits
        assert "embedded broker on Debian's librdkafka 2.0.2 (kafka.embedded_patched is false)" in s.log_text()
        assert 'atende_broker_epoch{library="stock"}' in metrics_text(s)
        delivers(s, "LIB-STOCK-1")
    finally:
        s.destroy()


def test_a_patched_library_that_does_not_load_falls_back_with_a_warning():
    """The broker as the supervisor execs it, told to expect a library that is not there."""
    s = System(name="broker_fallback")  # not started: its config and free ports only
    try:
        r, w = os.pipe()
        env = dict(os.environ, ATENDE_READY_FD=str(w), ATENDE_BROKER_LIBRARY="/nonexistent/librdkafka.so.1")
        env.pop("LD_LIBRARY_PATH", None)
        broker = subprocess.Popen([os.path.join(BIN, "atende"), "embedded-broker", "-c", s.conf], env=env, cwd=s.dir,
                                  pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        os.close(w)
        with os.fdopen(r) as ready:
            line = ready.readline().split()
        assert line[0] == "BOOTSTRAP" and line[2] == "stock", line
        broker.send_signal(signal.SIGTERM)
        _, err = broker.communicate(timeout=30)
        assert "/nonexistent/librdkafka.so.1 did not load; on Debian's stock librdkafka 2.0.2" in err
    finally:
        s.destroy()
