"""The ingress as gateways see it: every sample payload, the limits, a broker outage
with nothing answered 200 lost, backpressure, and hot reload of channels."""
import hashlib
import hmac
import http.client as httpclient
import json
import os
import signal
import socket
import subprocess

import pytest

from harness import System, fixture, http, wait_for, serve
from test_foundation import evolution_text


@pytest.fixture(scope="module")
def system():
    s = System(name="ingress", extra={
        r"max_connections = 10000;": "max_connections = 40;",
        r"request_timeout_ms = 10000;": "request_timeout_ms = 1500;",
        r"ack_timeout_ms = 5000;": "ack_timeout_ms = 1500;",
        r"max_partition_backlog_bytes = 3145728;": "max_partition_backlog_bytes = 20000;",
    })
    yield from serve(s)


def signed(body, secret=b"demo-app-secret"):
    return {"X-Hub-Signature-256": "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()}


def stored(system, provider_id):
    return int(system.sql(f"select count(*) from messages where provider_id = '{provider_id}'")[0][0])


def test_every_sample_payload(system):
    for name, accepted in (("evolution-messages-upsert-text.json", 1), ("evolution-messages-upsert-extended.json", 1),
                           ("evolution-messages-upsert-image.json", 1), ("evolution-messages-upsert-fromme.json", 1),
                           ("evolution-messages-update.json", 1)):
        r = system.evolution(fixture(name))
        assert r.status == 200 and r.json() == {"accepted": accepted, "duplicates": 0}, (name, r.body)
    for name, accepted in (("whatsapp-cloud-text.json", 1), ("whatsapp-cloud-batch.json", 3),
                           ("whatsapp-cloud-status.json", 1)):
        body = fixture(name)
        r = system.post("/webhooks/whatsapp", body, signed(body))
        assert r.status == 200 and r.json() == {"accepted": accepted, "duplicates": 0}, (name, r.body)
    wait_for(lambda: stored(system, "3EB09F8E7D6C5B4A3921") == 1, what="the image message")
    kind, mime, caption, size = system.sql("select kind, media->>'mimetype', media->>'caption', media->>'size' "
                                           "from messages where provider_id = '3EB09F8E7D6C5B4A3921'")[0]
    assert (kind, mime, caption, size) == ("image", "image/jpeg", "olha a luz do roteador", "48213")
    wait_for(lambda: stored(system, "wamid.BATCH0003") == 1, what="the cloud batch")
    assert system.sql("select from_me, hint_id is null from messages where provider_id = '3EB0FFEE00112233AA44'") == [["t", "t"]]
    # statuses are published with a type header for kcat filters, not stored as messages
    out = subprocess.run(["kcat", "-b", f"127.0.0.1:{system.ports['kafka']}", "-C", "-t", "atende.inbound.suporte",
                          "-o", "beginning", "-e", "-q", "-f", "%h %s\n"], stdout=subprocess.PIPE, text=True,
                         timeout=30).stdout
    statuses = [l for l in out.splitlines() if "type=status" in l]
    assert len(statuses) == 2 and any('"status":"read","gateway_status":"READ"' in l for l in statuses)
    assert any("message_id=wamid.BATCH0002" in l and "company=1" in l and "domain=suporte" in l for l in out.splitlines())
    assert stored(system, "wamid.OUT0001") == 0


def test_neutral_api(system):
    r = system.post("/v1/messages", [{"customer": "5511977770000", "id": "API-1", "text": "quanto custa o plano família?"},
                                     {"customer": "5511977770000", "id": "API-2", "text": "e a fibra de 600 mega?"}],
                    {"Authorization": "Bearer demo-api-key"})
    assert r.status == 200 and r.json() == {"accepted": 2, "duplicates": 0}
    assert system.post("/v1/messages", {"customer": "1", "id": "x", "text": "y"},
                       {"Authorization": "Bearer nope"}).status == 401
    bad = system.post("/v1/messages", [{"customer": "1", "id": "ok-1", "text": "a"}, {"customer": "1", "text": "b"}],
                      {"Authorization": "Bearer demo-api-key"})
    assert bad.status == 422 and "[1].id" in bad.json()["error"]
    wait_for(lambda: stored(system, "API-2") == 1, what="the API messages")
    assert system.sql("select domain from conversations where channel = 'api:site'") == [["comercial"]]
    assert stored(system, "ok-1") == 0  # a request with a bad message is refused whole


def raw(system, data, timeout=5):
    s = socket.create_connection(("127.0.0.1", system.ports["ingress"]), timeout=timeout)
    s.sendall(data)
    chunks = []
    try:
        while True:
            c = s.recv(65536)
            if not c:
                break
            chunks.append(c)
    except socket.timeout:
        pass
    s.close()
    return b"".join(chunks)


def test_limits_headers_slow_clients_connections(system):
    big = b"POST /webhooks/evolution HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
    resp = raw(system, big)
    assert resp.startswith(b"HTTP/1.1 431") and b'"error"' in resp
    # a client that starts a request and stalls is answered 408 after ingress.request_timeout_ms
    resp = raw(system, b"POST /webhooks/evolution HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{", timeout=10)
    assert resp.startswith(b"HTTP/1.1 408") and b'"error"' in resp
    held = [socket.create_connection(("127.0.0.1", system.ports["ingress"])) for _ in range(40)]
    try:
        wait_for(lambda: b"HTTP/1.1 503" in raw(system, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
                 what="connections over ingress.max_connections to be refused")
    finally:
        for s in held:
            s.close()
    wait_for(lambda: http("GET", system.url("ingress", "/healthz")).status == 200, what="connections to be freed")


def test_broker_outage_answers_503_and_loses_nothing(system):
    broker = system.pid("broker")
    answers = {}
    os.kill(broker, signal.SIGUSR1)
    try:
        wait_for(lambda: http("GET", system.url("ingress", "/healthz")).status == 503, what="healthz to report the outage")
        for i in range(5):
            r = system.evolution(evolution_text(f"OUTAGE-{i}", "a conexão cai toda hora"))
            answers[f"OUTAGE-{i}"] = r.status
            assert r.status in (200, 503)
            if r.status == 503:
                assert int(r.headers["Retry-After"]) >= 1 and "broker" in r.json()["error"]
        assert 503 in answers.values()
    finally:
        os.kill(broker, signal.SIGUSR2)
    wait_for(lambda: http("GET", system.url("ingress", "/healthz")).status == 200, what="healthz after the outage")
    for mid, status in answers.items():  # the gateway retries what was refused
        if status != 200:
            r = wait_for(lambda: system.evolution(evolution_text(mid, "a conexão cai toda hora")),
                         what=f"{mid} to be accepted")
            assert r.status == 200
    wait_for(lambda: all(stored(system, mid) == 1 for mid in answers), what="every outage message stored once")


def test_backpressure_refuses_before_the_broker_could_drop(system):
    workers = [system.pid("worker", i) for i in (0, 1)]
    for w in workers:
        os.kill(w, signal.SIGSTOP)
    statuses = []
    try:
        for i in range(2000):  # until refused: the committed-offset poll (250 ms) must see the backlog
            r = system.evolution(evolution_text(f"BP-{i}", "preciso da segunda via do boleto de março", customer="5511900001234"))
            statuses.append(r.status)
            if r.status == 503:
                assert "backpressure" in r.json()["error"] and r.headers.get("Retry-After")
                break
        assert statuses[-1] == 503, statuses
    finally:
        for w in workers:
            os.kill(w, signal.SIGCONT)
    accepted = [f"BP-{i}" for i, st in enumerate(statuses) if st == 200]
    wait_for(lambda: system.evolution(evolution_text("BP-after", "preciso da segunda via do boleto de março",
                                                     customer="5511900001234")).status == 200,
             timeout=60, what="backpressure to clear once the workers catch up")
    wait_for(lambda: int(system.sql("select count(*) from messages where provider_id like 'BP-%'")[0][0]) >= len(accepted) + 1,
             what="every accepted message stored")
    for mid in accepted:
        assert stored(system, mid) == 1
    # stored is not yet committed (hint events come first): the next test needs the backlog gone
    wait_for(lambda: system.metric("ingress", "atende_ingress_partition_backlog_bytes") == 0,
             what="the workers' commits to reach the ingress")


def test_reload_keeps_dedup_and_adds_channels_without_dropping_connections(system):
    body = json.dumps(evolution_text("RELOAD-1", "tem desconto para contratar fibra?")).encode()
    conn = httpclient.HTTPConnection("127.0.0.1", system.ports["ingress"], timeout=10)
    conn.request("POST", "/webhooks/evolution", body, {"Content-Type": "application/json"})
    assert json.loads(conn.getresponse().read()) == {"accepted": 1, "duplicates": 0}
    with open(system.conf) as f:
        text = f.read()
    text = text.replace('channels = (', 'channels = (\n  { type = "evolution"; instance = "novo"; key = "novo-key"; '
                                         'company = 1; domain = "comercial"; },', 1)
    with open(system.conf, "w") as f:
        f.write(text)
    os.kill(system.proc.pid, signal.SIGHUP)
    novo = json.dumps(dict(evolution_text("RELOAD-2", "quero fazer a portabilidade do meu número", instance="novo"),
                           apikey="novo-key")).encode()

    def novo_accepted():
        conn.request("POST", "/webhooks/evolution", novo, {"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        return r.status == 200

    wait_for(novo_accepted, what="the reloaded channel")  # on the same keep-alive connection
    conn.request("POST", "/webhooks/evolution", body, {"Content-Type": "application/json"})
    assert json.loads(conn.getresponse().read()) == {"accepted": 0, "duplicates": 1}
    conn.close()
    wait_for(lambda: stored(system, "RELOAD-2") == 1, what="the new channel's message")
    assert system.sql("select domain from conversations c join messages m on m.conversation_id = c.id "
                      "where m.provider_id = 'RELOAD-2'") == [["comercial"]]
    # a broken file is refused and the running config kept
    with open(system.conf, "a") as f:
        f.write("\nbogus_key = 1;\n")
    os.kill(system.proc.pid, signal.SIGHUP)
    wait_for(lambda: 'unknown key "bogus_key"' in system.log_text(), what="the reload error in the log")
    assert system.evolution(evolution_text("RELOAD-3", "o técnico não apareceu na visita marcada")).status == 200
