"""Outbound through several gateway instances: the Evolution channel lists two fake
gateways (weights 3:1); replies spread by weight, a failing instance is skipped once its
breaker opens and re-admitted when its health check passes, an instance that its health
check finds disconnected is skipped, an instance that times out hands the reply over to the
other (sent once), and mistakes in instances name file:line. One worker, so one process's
round-robin is what the fake gateways see."""
import os
import signal
import subprocess
import tempfile
import time

import pytest

from fakegateway import FakeGateway
from harness import BIN, ROOT, System, http, serve, wait_for
from test_foundation import evolution_text

TIMEOUT_MS, HEALTH_S = 1000, 3


@pytest.fixture(scope="module")
def gws():
    a, b = FakeGateway().start(), FakeGateway().start()
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture(scope="module")
def system(gws):
    a, b = gws
    yield from serve(System(name="test_gateways", workers=1, extra={
        r'url = "http://127.0.0.1:8090";':
            f'instances = ( {{ url = "{a.url}"; weight = 3; }},\n'
            f'    {{ url = "{b.url}/"; weight = 1; instance = "demo-b"; key = "demo-b-key"; }} );',
        r'(outbound: \{[^\n]*\n  timeout_ms = )10000;': rf'\g<1>{TIMEOUT_MS};',
        r'retries = 3;( +# \(reload\) after 5xx)': r'retries = 2;\1',
        r'retry_base_ms = 1000;': 'retry_base_ms = 50;',
        r'ops_per_second = 20;': 'ops_per_second = 1000;',  # the tests send replies in bursts
        r'health_interval_s = 30;': f'health_interval_s = {HEALTH_S};',
        r'health_timeout_ms = 5000;': 'health_timeout_ms = 500;',
        # only a passing health check (or a restart) re-admits an open instance here
        r'breaker_open_s = 30;( +# open this long, then one probe send)': r'breaker_open_s = 600;\1',
    }))


def scalar(system, sql):
    rows = system.sql(sql)
    return rows[0][0] if rows else None


def metric(system, name, gw, **labels):
    """A per-instance series of the worker's, by the fake gateway's host:port (and labels)."""
    text = http("GET", system.url("metrics", "/metrics")).body.decode()
    want = [f'instance="127.0.0.1:{gw.port}"', 'channel="evolution:demo"'] + [f'{k}="{v}"' for k, v in labels.items()]
    for line in text.splitlines():
        if line.startswith(name + "{") and all(w in line for w in want):
            return float(line.rsplit(" ", 1)[1])
    return None


class Replies:
    """Conversations of one agent to send replies in, a few at a time."""

    def __init__(self, system, tag, n=4):
        self.system = system
        self.c = system.ws(system.token(1, 1))
        assert self.c.subscribe("company:1")["type"] == "ack"
        self.convs = []
        for k in range(n):
            customer = f"55119{abs(hash(tag)) % 10000:04d}{k:04d}"
            mid = f"IN-{tag}-{k}-{time.time_ns()}"
            assert system.evolution(evolution_text(mid, "preciso de ajuda com a minha conta", customer=customer)).status == 200
            m = self.c.wait(lambda f, mid=mid: f["type"] == "message" and f["data"]["message_id"] == mid)
            self.convs.append(m["data"]["conversation_id"])
        self.seq = 0

    def send(self, n, tag):
        """Sends n replies spread over the conversations; returns {text: event data} once all are answered."""
        rids = {}
        for k in range(n):
            self.seq += 1
            text = f"{tag} resposta {self.seq}"
            ack = self.c.request(op="reply", conversation=self.convs[k % len(self.convs)], text=text)
            assert ack["type"] == "ack", ack
            rids[ack["request_id"]] = text
        out = {}
        for rid, text in rids.items():
            ev = self.c.wait(lambda f, rid=rid: f["type"] == "message" and f["data"].get("request_id") == rid, 60)
            out[text] = ev["data"]
        return out

    def close(self):
        self.c.close()


def got(gw, texts):
    return [r for r in gw.sent() if r["body"] and r["body"].get("text") in texts]


def test_replies_spread_by_weight(system, gws):
    a, b = gws
    r = Replies(system, "rr")
    res = r.send(40, "rr")
    assert all(d["status"] == "sent" for d in res.values()), [d for d in res.values() if d["status"] != "sent"]
    na, nb = len(got(a, res)), len(got(b, res))
    # smooth weighted round-robin in one process: exactly 30:10 from any starting point within 1
    assert na + nb == 40 and abs(na - 30) <= 1 and abs(nb - 10) <= 1, (na, nb)
    # b knows the number as its own instance "demo-b", with its own key
    for g, name, key in ((a, "demo", "demo-evolution-key"), (b, "demo-b", "demo-b-key")):
        assert all(x["path"] == f"/message/sendText/{name}" and x["headers"].get("apikey") == key
                   for x in got(g, res))
    texts = "','".join(res)
    assert scalar(system, f"select count(*) from messages where text in ('{texts}')") == "40"
    # both are health-checked on Evolution's connection state endpoint
    wait_for(lambda: a.health_checks() and b.health_checks(), what="health checks of both instances")
    h = b.health_checks()[0]
    assert h["path"] == "/instance/connectionState/demo-b" and h["headers"].get("apikey") == "demo-b-key"
    h = a.health_checks()[0]
    assert h["path"] == "/instance/connectionState/demo" and h["headers"].get("apikey") == "demo-evolution-key"
    # the worker exports its metrics every second
    wait_for(lambda: metric(system, "atende_worker_outbound_instance_calls_total", b, outcome="2xx") == nb,
             what="b's sends in the metrics")
    assert metric(system, "atende_worker_outbound_instance_calls_total", a, outcome="2xx") == na
    assert metric(system, "atende_worker_outbound_instance_breaker_state", a) == 0
    assert metric(system, "atende_worker_outbound_instance_healthy", b) == 1
    r.close()


def test_webhooks_of_the_second_server_reach_the_same_conversation(system):
    """Server b posts its webhooks as instance "demo-b" with its own key: the same channel."""
    customer = "5511988887777"
    c = system.ws(system.token(1, 1))
    assert c.subscribe("company:1")["type"] == "ack"
    assert system.evolution(evolution_text("ALIAS-1", "primeira pelo servidor a", customer=customer)).status == 200
    first = c.wait(lambda f: f["type"] == "message" and f["data"]["message_id"] == "ALIAS-1")["data"]
    msg = evolution_text("ALIAS-2", "segunda pelo servidor b", customer=customer, instance="demo-b")
    assert system.evolution(dict(msg, apikey="demo-evolution-key"), key=None).status == 401  # b's key, not a's
    assert system.evolution(dict(msg, apikey="demo-b-key"), key=None).status == 200
    second = c.wait(lambda f: f["type"] == "message" and f["data"]["message_id"] == "ALIAS-2")["data"]
    assert second["conversation_id"] == first["conversation_id"] and second["channel"] == "evolution:demo"
    c.close()


def test_failing_instance_is_skipped_then_readmitted_by_its_health_check(system, gws):
    a, b = gws
    r = Replies(system, "brk")
    b.fail_all(500)  # sends fail, while its connection state still says "open"
    sent = {}
    for _ in range(20):
        sent.update(r.send(8, "brk-fail"))
        if metric(system, "atende_worker_outbound_instance_breaker_state", b) in (1, 2):
            break
    # open (1), or half-open (2) when a passing health check came since: the probe's turn
    assert metric(system, "atende_worker_outbound_instance_breaker_state", b) in (1, 2), "b's breaker never opened"
    # every reply went out once, through a, those b failed included
    assert all(d["status"] == "sent" for d in sent.values())
    assert len(got(a, sent)) == len(sent)
    assert any(d["attempts"] == 2 for d in sent.values())
    texts = "','".join(sent)
    assert scalar(system, f"select count(*) from messages where text in ('{texts}')") == str(len(sent))
    assert "circuit breaker open" in system.log_text()
    # open: b gets nothing but, after each passing health check, one probe
    checks_before, b_before = len(b.health_checks()), len(b.sent())
    res = r.send(24, "brk-open")
    probes = len(b.sent()) - b_before
    assert probes <= len(b.health_checks()) - checks_before + 1, probes
    assert probes < 6  # its share would be 6 of 24
    assert len(got(a, res)) == 24 and all(d["status"] == "sent" for d in res.values())
    # b recovers: its next health check half-opens the breaker (600 s pause: not the pause),
    # the probe succeeds and b takes its share again
    b.fail_all(None)
    deadline = time.monotonic() + 4 * HEALTH_S
    while metric(system, "atende_worker_outbound_instance_breaker_state", b) != 0:
        assert time.monotonic() < deadline, "b was not re-admitted"
        r.send(4, "brk-probe")
    res = r.send(40, "brk-back")
    assert abs(len(got(b, res)) - 10) <= 1, len(got(b, res))
    r.close()


def test_disconnected_instance_is_skipped_until_healthy(system, gws):
    a, b = gws
    r = Replies(system, "hc")
    b.set_state("close")
    wait_for(lambda: metric(system, "atende_worker_outbound_instance_healthy", b) == 0, timeout=4 * HEALTH_S,
             what="b to be found unhealthy")
    res = r.send(16, "hc-down")
    assert not got(b, res) and len(got(a, res)) == 16
    assert "failed its health check (connection state close)" in system.log_text()
    b.set_state("open")
    wait_for(lambda: metric(system, "atende_worker_outbound_instance_healthy", b) == 1, timeout=4 * HEALTH_S,
             what="b to be healthy again")
    res = r.send(16, "hc-up")
    assert abs(len(got(b, res)) - 4) <= 1
    r.close()


def test_timeout_fails_over_and_is_sent_once(system, gws):
    a, b = gws
    r = Replies(system, "to")
    a.delay_all(TIMEOUT_MS / 1000 * 2.5)  # a takes the reply and never answers in time
    try:
        res = r.send(4, "to")
    finally:
        a.delay_all(0)
    assert all(d["status"] == "sent" for d in res.values())
    for text, d in res.items():
        assert len(got(b, [text])) == 1  # b sent each exactly once
        assert scalar(system, f"select count(*) from messages where text = '{text}'") == "1"
    over = [t for t, d in res.items() if got(a, [t])]
    assert over, "no reply was tried on a first"  # 3:1: a comes first for most of them
    for t in over:
        assert res[t]["attempts"] == 2 and res[t]["message_id"].startswith("3EB0FAKE")
        assert scalar(system, f"select attempts from outbound_requests where request_id = '{res[t]['request_id']}'") == "2"
    wait_for(lambda: (metric(system, "atende_worker_outbound_instance_calls_total", a, outcome="timeout") or 0)
             >= len(over), what="a's timeouts in the metrics")
    r.close()


def test_reload_adds_an_instance_and_keeps_the_others(system, gws):
    a, b = gws
    c = FakeGateway().start()
    try:
        r = Replies(system, "rl")
        b.set_state("close")  # what is known of b survives the reload
        wait_for(lambda: metric(system, "atende_worker_outbound_instance_healthy", b) == 0, timeout=4 * HEALTH_S,
                 what="b to be found unhealthy")
        system.write_config(**{r'url = "http://127.0.0.1:8090";':
                               f'instances = ( {{ url = "{a.url}"; weight = 3; }},\n'
                               f'    {{ url = "{b.url}/"; weight = 1; instance = "demo-b"; key = "demo-b-key"; }},\n'
                               f'    {{ url = "{c.url}"; weight = 3; }} );'})
        os.kill(system.proc.pid, signal.SIGHUP)
        wait_for(lambda: "channel evolution:demo sends through 3 gateway instance(s)" in system.log_text(),
                 what="the worker to take the new instance")
        wait_for(lambda: c.health_checks(), what="the new instance's first health check")
        res = r.send(24, "rl")
        assert all(d["status"] == "sent" for d in res.values())
        assert not got(b, res) and len(got(a, res)) == 12 and len(got(c, res)) == 12, \
            (len(got(a, res)), len(got(b, res)), len(got(c, res)))
        wait_for(lambda: metric(system, "atende_worker_outbound_instance_healthy", c) == 1, what="c's gauge")
        r.close()
    finally:
        b.set_state("open")
        c.stop()


def test_instance_mistakes_name_file_and_line():
    with open(os.path.join(ROOT, "deploy", "atende.conf")) as f:
        text = f.read()
    bad = text.replace('url = "http://127.0.0.1:8090"; },',
                       'instances = ( { url = "http://a:1"; weight = 0; },\n'
                       '      { weight = 2; } ); },', 1)
    assert bad != text
    line = bad[:bad.index("weight = 0")].count("\n") + 1
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write(bad)
    try:
        r = subprocess.run([os.path.join(BIN, "atende"), "check-config", "-c", f.name], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
    finally:
        os.unlink(f.name)
    assert r.returncode != 0
    assert f"{f.name}:{line}: channels: instances: weight 0 is out of range 1..100" in r.stdout, r.stdout
    assert f'{f.name}:{line + 1}: missing "url"' in r.stdout, r.stdout
