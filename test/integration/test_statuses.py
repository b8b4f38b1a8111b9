"""Delivery statuses and transfers that re-route. Replies go out through a fake gateway
(so real provider ids exist); the gateways' statuses then move the stored message forward
only (sent < failed < delivered < read), out of order, twice, or before the message is
stored, and the consoles hear a `status` event exactly when it moved. A conversation moved
to another domain is coached there: that domain's pool and prompt (the fake AI records the
system prompt it got)."""
import hashlib
import hmac
import json
import os
import subprocess
import time
import urllib.parse

import pytest

from fakeai import FakeAI
from fakegateway import FakeGateway
from harness import ROOT, http, serve, System, wait_for
from test_foundation import evolution_text


@pytest.fixture(scope="module")
def gateway():
    gw = FakeGateway().start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def ai():
    a = FakeAI().start()
    yield a
    a.stop()


@pytest.fixture(scope="module")
def system(gateway, ai):
    s = System(name="statuses", extra={
        r'url = "http://127.0.0.1:8090";': f'url = "{gateway.url}";',
        r'access_token = "";': f'access_token = "cloud-test-token"; url = "{gateway.url}/";',
        r'provider = "rules";': 'provider = "openai";',
        r'base_url = "";': f'base_url = "{ai.base_url}";',
        r"max_wait_ms = 1500;": "max_wait_ms = 300;",
        r'prompts_dir = "deploy/prompts";': f'prompts_dir = "{os.path.join(ROOT, "deploy", "prompts")}";',
        # financeiro has a pool of its own: a message coached as financeiro is coached there
        r"companies = \(\n": 'pools = (\n  { name = "money"; domains = ["financeiro"]; count = 1; },\n'
                             '  { name = "main"; domains = ["comercial", "suporte", "ouvidoria", "cancelamento"]; '
                             'count = 1; }\n);\n\ncompanies = (\n',
    })
    yield from serve(s)


def scalar(system, sql):
    rows = system.sql(sql)
    return rows[0][0] if rows else None


def metric(system, name):
    """Sum of a metric's series over every process (label filters in name, e.g. 'x{result="kept"')."""
    text = http("GET", system.url("metrics", "/metrics")).body.decode()
    base, _, want = name.partition("{")
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(base) or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        if key.split("{")[0] == base and all(w in key for w in want.rstrip("}").split(",") if w):
            total += float(value)
    return total


def console(system, agent, *channels):
    c = system.ws(system.token(agent, 1))
    for ch in channels:
        assert c.subscribe(ch)["type"] == "ack", ch
    return c


def new_conversation(system, customer, text="bom dia, minha internet está caindo toda hora"):
    c = console(system, 1, "company:1")
    mid = f"IN-{customer}-{time.time_ns()}"
    assert system.evolution(evolution_text(mid, text, customer=customer)).status == 200
    d = c.wait(lambda f: f["type"] == "message" and f["data"]["message_id"] == mid)["data"]
    c.close()
    return d["conversation_id"], d["agent_id"]


def reply(c, conv, text):
    ack = c.request(op="reply", conversation=conv, text=text)
    assert ack["type"] == "ack", ack
    d = c.wait(lambda f: f["type"] == "message" and f["data"].get("request_id") == ack["request_id"])["data"]
    assert d["status"] == "sent", d
    return d["message_id"]


def evolution_status(system, provider_id, customer, status):
    r = system.evolution({"event": "messages.update", "instance": "demo", "apikey": "demo-evolution-key",
                          "data": {"keyId": provider_id, "remoteJid": f"{customer}@s.whatsapp.net", "fromMe": True,
                                   "status": status}})
    assert r.status == 200, r.body
    return r.json()


def cloud_post(system, value):
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "messages", "value": dict({"messaging_product": "whatsapp",
                                             "metadata": {"phone_number_id": "106540352242922"}}, **value)}]}]}).encode()
    sig = "sha256=" + hmac.new(b"demo-app-secret", body, hashlib.sha256).hexdigest()
    r = system.post("/webhooks/whatsapp", body, {"X-Hub-Signature-256": sig})
    assert r.status == 200, r.body


def settled(system, c, customer):
    """Posts a customer message behind what was posted before on the conversation (same
    partition, same worker, same database connection) and waits for its event: whatever
    came before it has been applied and published by then."""
    marker = f"MARK-{customer}-{time.time_ns()}"
    assert system.evolution(evolution_text(marker, "ok, obrigado pela ajuda", customer=customer)).status == 200
    c.wait(lambda f: f["type"] == "message" and f["data"]["message_id"] == marker)


def statuses_of(c, provider_id):
    return [f for f in c.frames if f["type"] == "status" and f["data"]["provider_id"] == provider_id]


def history(system, conv, agent):
    q = urllib.parse.urlencode({"token": system.token(agent, 1)})
    r = http("GET", system.url("notifier", f"/v1/conversations/{conv}/messages?{q}"))
    assert r.status == 200, r.body
    return {m["provider_id"]: m for m in r.json()["messages"]}


# ---------------------------------------------------------------- statuses

def test_statuses_out_of_order_end_read_with_one_event(system, gateway):
    customer = "5511966660001"
    conv, agent = new_conversation(system, customer)
    c = console(system, agent, f"agent:{agent}")
    pid = reply(c, conv, "Já reiniciei sua porta, pode testar?")
    assert scalar(system, f"select coalesce(status, 'none') from messages where provider_id = '{pid}'") == "none"
    unchanged = metric(system, 'atende_worker_statuses_total{result="unchanged"')
    # read first (a blue tick proves the rest), then the older news arriving late
    for st in ("READ", "DELIVERY_ACK", "SERVER_ACK"):
        assert evolution_status(system, pid, customer, st) == {"accepted": 1, "duplicates": 0}
    wait_for(lambda: metric(system, 'atende_worker_statuses_total{result="unchanged"') >= unchanged + 2,
             what="the two late statuses counted as unchanged")  # metrics are exported every second
    settled(system, c, customer)
    evs = statuses_of(c, pid)
    assert [e["data"]["status"] for e in evs] == ["read"], evs
    d = evs[0]["data"]
    assert evs[0]["channel"] == f"agent:{agent}" and d["conversation_id"] == conv and d["at"].endswith("Z")
    assert d["message_id"] == int(scalar(system, f"select id from messages where provider_id = '{pid}'"))
    assert "error" not in d
    assert scalar(system, f"select status from messages where provider_id = '{pid}'") == "read"
    # the history shows it after a reload
    assert history(system, conv, agent)[pid]["status"] == "read"
    c.close()


def test_a_duplicate_status_changes_nothing_and_publishes_nothing(system, gateway):
    customer = "5511966660002"
    conv, agent = new_conversation(system, customer)
    c = console(system, agent, f"conversation:{conv}")
    pid = reply(c, conv, "Vou abrir um chamado técnico para você.")
    assert evolution_status(system, pid, customer, "DELIVERY_ACK") == {"accepted": 1, "duplicates": 0}
    c.wait(lambda f: f["type"] == "status" and f["data"]["provider_id"] == pid)
    # the same news under the other spelling is a duplicate at the ingress already ...
    assert evolution_status(system, pid, customer, "delivery_ack") == {"accepted": 0, "duplicates": 1}
    # ... and a copy that gets past it (a redelivery, another ingress) is a no-op in the worker
    unchanged = metric(system, 'atende_worker_statuses_total{result="unchanged"')
    event = {"v": 1, "type": "status", "company": 1, "channel": "evolution:demo", "domain": "suporte",
             "conversation": f"evolution:demo:{customer}", "customer": customer, "provider_id": pid,
             "from_me": True, "status": "delivered", "gateway_status": "DELIVERY_ACK",
             "received_at": "2026-01-01T00:00:00.000Z"}
    subprocess.run(["kcat", "-b", f"127.0.0.1:{system.ports['kafka']}", "-P", "-t", "atende.inbound.suporte",
                    "-k", event["conversation"]], input=json.dumps(event), text=True, check=True, timeout=30)
    wait_for(lambda: metric(system, 'atende_worker_statuses_total{result="unchanged"') >= unchanged + 1,
             what="the copy to be applied")
    settled(system, c, customer)
    assert [e["data"]["status"] for e in statuses_of(c, pid)] == ["delivered"]
    assert scalar(system, f"select status from messages where provider_id = '{pid}'") == "delivered"
    c.close()


def test_a_status_before_its_message_is_applied_once_the_message_is_stored(system):
    customer = "5511966660003"
    conv, agent = new_conversation(system, customer)
    c = console(system, agent, f"conversation:{conv}")
    kept = metric(system, 'atende_worker_statuses_total{result="kept"')
    pid = f"3EB0EARLY{time.time_ns()}"
    # the status of a message the agent typed on the phone beats the message itself
    assert evolution_status(system, pid, customer, "DELIVERY_ACK")["accepted"] == 1
    wait_for(lambda: metric(system, 'atende_worker_statuses_total{result="kept"') >= kept + 1,
             what="the status to be kept")
    assert scalar(system, f"select status from pending_statuses where provider_id = '{pid}'") == "delivered"
    assert scalar(system, f"select count(*) from messages where provider_id = '{pid}'") == "0"
    text = "Mandei pelo celular: o técnico chega amanhã cedo."
    assert system.evolution(evolution_text(pid, text, customer=customer, from_me=True)).status == 200
    ev = c.wait(lambda f: f["type"] == "status" and f["data"]["provider_id"] == pid)
    assert ev["data"]["status"] == "delivered" and ev["data"]["conversation_id"] == conv
    assert scalar(system, f"select status from messages where provider_id = '{pid}'") == "delivered"
    wait_for(lambda: scalar(system, f"select count(*) from pending_statuses where provider_id = '{pid}'") == "0",
             what="the pending status to be taken")
    # and it moves on from there as any other
    assert evolution_status(system, pid, customer, "READ")["accepted"] == 1
    c.wait(lambda f: f["type"] == "status" and f["data"]["provider_id"] == pid and f["data"]["status"] == "read")
    assert [e["data"]["status"] for e in statuses_of(c, pid)] == ["delivered", "read"]
    assert history(system, conv, agent)[pid]["status"] == "read"
    c.close()


def test_cloud_failed_stores_the_error_and_a_later_read_wins(system, gateway):
    customer = "5521966660004"
    c = console(system, 1, "company:1")
    cloud_post(system, {"contacts": [{"profile": {"name": "Bia"}, "wa_id": customer}],
                        "messages": [{"from": customer, "id": f"wamid.IN-ST-{time.time_ns()}",
                                      "timestamp": str(int(time.time())), "type": "text",
                                      "text": {"body": "minha fatura veio com valor errado"}}]})
    d = c.wait(lambda f: f["type"] == "message" and f["data"]["customer"] == customer)["data"]
    conv, agent = d["conversation_id"], d["agent_id"]
    c.close()
    c = console(system, agent, f"agent:{agent}")
    failed = metric(system, "atende_worker_delivery_failed_total")
    pid = reply(c, conv, "Oi Bia, vou revisar a sua fatura.")
    assert pid.startswith("wamid.FAKE")
    cloud_post(system, {"statuses": [{"id": pid, "status": "failed", "timestamp": str(int(time.time())),
                                      "recipient_id": customer,
                                      "errors": [{"code": 131026, "title": "Message undeliverable"}]}]})
    ev = c.wait(lambda f: f["type"] == "status" and f["data"]["provider_id"] == pid)
    assert ev["data"]["status"] == "failed" and ev["data"]["error"] == "Message undeliverable (code 131026)"
    assert system.sql(f"select status, status_error from messages where provider_id = '{pid}'") == \
        [["failed", "Message undeliverable (code 131026)"]]
    m = history(system, conv, agent)[pid]
    assert m["status"] == "failed" and m["status_error"] == "Message undeliverable (code 131026)"
    wait_for(lambda: metric(system, "atende_worker_delivery_failed_total") >= failed + 1, what="the failure counted")
    # a late "sent" is older news; a read proves delivery: it wins, and the error goes
    cloud_post(system, {"statuses": [{"id": pid, "status": "sent", "timestamp": str(int(time.time())),
                                      "recipient_id": customer}]})
    cloud_post(system, {"statuses": [{"id": pid, "status": "read", "timestamp": str(int(time.time())),
                                      "recipient_id": customer}]})
    c.wait(lambda f: f["type"] == "status" and f["data"]["provider_id"] == pid and f["data"]["status"] == "read")
    assert [e["data"]["status"] for e in statuses_of(c, pid)] == ["failed", "read"]
    assert system.sql(f"select status, coalesce(status_error, '') from messages where provider_id = '{pid}'") == \
        [["read", ""]]
    m = history(system, conv, agent)[pid]
    assert m["status"] == "read" and m["status_error"] is None
    c.close()


def test_status_metrics_are_exported(system):
    for name in ("atende_worker_statuses_applied_total", "atende_worker_delivery_tracked_total",
                 "atende_worker_delivery_failed_total"):
        wait_for(lambda: metric(system, name) > 0, what=name)
    wait_for(lambda: metric(system, 'atende_worker_statuses_applied_total{status="read"') >= 3, what="reads counted")
    # every message that got a status counts once in the failure rate's denominator
    assert metric(system, "atende_worker_delivery_tracked_total") == \
        float(scalar(system, "select count(*) from messages where status is not null"))


def test_retention_prunes_statuses_whose_message_never_came(system):
    """A status kept for a message that never came goes after retention.dedup_days (30)."""
    for pid, age in (("OLD-PENDING", "31 days"), ("NEW-PENDING", "1 day")):
        system.sql("insert into pending_statuses (channel, provider_id, status, at, kept_at) values "
                   f"('evolution:demo', '{pid}', 'delivered', now(), now() - interval '{age}')")
    report = json.loads(system.cli("retention", "--json").stdout)
    assert report["ok"] and report["pending_statuses_pruned"] >= 1, report
    left = {r[0] for r in system.sql("select provider_id from pending_statuses where provider_id like '%-PENDING'")}
    assert left == {"NEW-PENDING"}


# ---------------------------------------------------------------- transfers re-route

def test_after_a_transfer_to_financeiro_messages_are_coached_as_financeiro(system, ai):
    customer = "5511966660005"
    conv, agent = new_conversation(system, customer, "minha internet não funciona desde ontem à noite")
    c = console(system, agent, f"conversation:{conv}")
    ack = c.request(op="transfer", conversation=conv, to_domain="financeiro")
    assert ack["type"] == "ack", ack
    c.wait(lambda f: f["type"] == "assignment" and f["data"].get("request_id") == ack["request_id"])
    assert scalar(system, f"select domain from conversations where id = {conv}") == "financeiro"
    rerouted = metric(system, 'atende_worker_messages_total{result="rerouted"')
    mid = f"IN-AFTER-{time.time_ns()}"
    text = "e a cobrança da fatura deste mês veio em dobro no meu cartão"
    assert system.evolution(evolution_text(mid, text, customer=customer)).status == 200
    hint = c.wait(lambda f: f["type"] == "hint" and mid in f["data"]["message_ids"])["data"]
    assert hint["domain"] == "financeiro"
    calls = [x for x in ai.calls()["calls"] if text in (x["user"] or "")]
    assert len(calls) == 1, calls
    system_prompt = calls[0]["body"]["messages"][0]
    with open(os.path.join(ROOT, "deploy", "prompts", "financeiro.txt")) as f:
        first_line = f.readline().strip()
    assert system_prompt["role"] == "system" and first_line in system_prompt["content"]
    assert scalar(system, f"select count(*) from messages where provider_id = '{mid}'") == "1"
    assert scalar(system, f"select count(*) from message_keys where provider_id = '{mid}'") == "1"
    assert scalar(system, f"select h.domain from hints h join messages m on m.hint_id = h.id "
                          f"where m.provider_id = '{mid}'") == "financeiro"
    # handed over by the main pool, coached by financeiro's own
    wait_for(lambda: metric(system, 'atende_worker_messages_total{result="rerouted"') >= rerouted + 1,
             what="the handed-over message counted by the financeiro pool")
    c.close()
