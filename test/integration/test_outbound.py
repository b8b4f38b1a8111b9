"""Replies and transfers end to end: a console op goes through the notifier and
atende.outbound to a worker, which sends the reply to a fake gateway (Evolution, Cloud
API), stores it as an agent message and publishes it, or changes the assignment and tells
both agents; retries, failures, a worker killed mid-send, and what the worker refuses."""
import hashlib
import hmac
import json
import os
import signal
import subprocess
import time

import pytest
import websocket

from harness import System, serve, wait_for
from test_foundation import evolution_text

TIMEOUT_MS, RETRIES, RETRY_BASE_MS = 2000, 2, 200


@pytest.fixture(scope="module")
def system(gateway):
    s = System(name="test_outbound", extra={
        r'url = "http://127.0.0.1:8090";': f'url = "{gateway.url}";',
        r'access_token = "";': f'access_token = "cloud-test-token"; url = "{gateway.url}/";',
        r'(\{ id = 1; name = "Demo Telecom"; agents = \[1, 5\]; \})':
            r'\1,\n  { id = 2; name = "Other Co"; agents = [6, 8]; }',
        r'(outbound: \{[^\n]*\n  timeout_ms = )10000;': rf'\g<1>{TIMEOUT_MS};',
        r'retries = 3;( +# \(reload\) after 5xx)': rf'retries = {RETRIES};\1',
        r'retry_base_ms = 1000;': f'retry_base_ms = {RETRY_BASE_MS};',
    })
    yield from serve(s)


def scalar(system, sql):
    rows = system.sql(sql)
    return rows[0][0] if rows else None


def new_conversation(system, customer, text="bom dia, minha internet está caindo toda hora"):
    """Posts a customer message; returns (conversation id, assigned agent) once the notifier has it."""
    c = system.ws(system.token(1, 1))
    c.subscribe("company:1")
    mid = f"IN-{customer}-{time.time_ns()}"
    assert system.evolution(evolution_text(mid, text, customer=customer)).status == 200
    m = c.wait(lambda f: f["type"] == "message" and f["data"]["message_id"] == mid)
    c.close()
    return m["data"]["conversation_id"], m["data"]["agent_id"]


def console(system, agent, company=1, *channels):
    c = system.ws(system.token(agent, company))
    for ch in channels:
        assert c.subscribe(ch)["type"] == "ack", ch
    return c


def reply(c, conv, text):
    ack = c.request(op="reply", conversation=conv, text=text)
    assert ack["type"] == "ack", ack
    return ack["request_id"]


def event_of(c, request_id, type_="message", timeout=30):
    return c.wait(lambda f: f["type"] == type_ and f.get("data", {}).get("request_id") == request_id, timeout)


def collect(c, pred, n, timeout=30):
    """Waits until the console got n frames matching pred; returns them."""
    deadline = time.monotonic() + timeout
    while len([f for f in c.frames if pred(f)]) < n:
        left = deadline - time.monotonic()
        assert left > 0, f"fewer than {n} matching frames within {timeout}s; got {c.frames[-5:]}"
        try:
            c.recv_one(min(left, 1))
        except websocket.WebSocketTimeoutException:
            pass
    return [f for f in c.frames if pred(f)]


def kcat_produce(system, key, payload, type_):
    subprocess.run(["kcat", "-b", f"127.0.0.1:{system.ports['kafka']}", "-P", "-t", "atende.outbound", "-k", str(key),
                    "-H", f"type={type_}", "-H", f"company={payload['company_id']}"],
                   input=json.dumps(payload), text=True, check=True, timeout=30)


def workers(system):
    status = json.loads(system.cli("status", "--json", check=False).stdout or "{}")
    return [p for p in status.get("processes", []) if p["role"] == "worker"]


# ---------------------------------------------------------------- replies

def test_reply_is_sent_once_stored_and_published(system, gateway):
    conv, agent = new_conversation(system, "5511977770001")
    c = console(system, agent, 1, f"conversation:{conv}")
    text = "Olá! Já reiniciei sua conexão, pode testar agora?"
    rid = reply(c, conv, text)
    ev = event_of(c, rid)
    d = ev["data"]
    assert ev["channel"] == f"conversation:{conv}"
    assert d["status"] == "sent" and d["from_me"] is True and d["text"] == text and d["by_agent"] == agent
    assert d["message_id"].startswith("3EB0FAKE") and d["db_id"] and d["conversation_id"] == conv
    assert d["sender_name"] == f"Agente {agent}" and d["customer"] == "5511977770001" and d["attempts"] == 1
    sent = gateway.sent(text)
    assert len(sent) == 1
    r = sent[0]
    assert r["path"] == "/message/sendText/demo" and r["headers"].get("apikey") == "demo-evolution-key"
    assert r["body"] == {"number": "5511977770001", "text": text}
    row = system.sql(f"select from_me, provider_id, sender_name, conversation_id from messages where text = '{text}'")
    assert row == [["t", d["message_id"], f"Agente {agent}", str(conv)]]
    assert system.sql(f"select status, attempts, provider_id, published_at is not null from outbound_requests "
                      f"where request_id = '{rid}'") == [["sent", "1", d["message_id"], "t"]]
    # Evolution echoes the agent's message back (fromMe): stored once all the same
    echo = evolution_text(d["message_id"], text, customer="5511977770001", from_me=True)
    assert system.evolution(echo).status == 200
    marker = f"AFTER-ECHO-{time.time_ns()}"
    assert system.evolution(evolution_text(marker, "ok, vou testar", customer="5511977770001")).status == 200
    c.wait(lambda f: f["type"] == "message" and f["data"].get("message_id") == marker)
    assert scalar(system, f"select count(*) from messages where provider_id = '{d['message_id']}'") == "1"
    assert len(gateway.sent(text)) == 1
    c.close()


def test_a_reply_resent_with_the_same_string_op_id_goes_out_once(system, gateway):
    """A console that lost an ack sends the reply again with the same op id (its client_id)
    under a new request; a string op id is the agent's idempotency key. Numeric op ids are
    per-connection counters and repeat across sessions, so they are not."""
    conv, agent = new_conversation(system, "5511977770012")
    c = console(system, agent, 1, f"conversation:{conv}")
    text = "Reenviada pelo console: sua visita técnica está confirmada para amanhã."
    first = c.request(op="reply", conversation=conv, text=text, id="r-7f3a")
    assert first["type"] == "ack"
    c.wait(lambda f: f["type"] == "message" and f["data"].get("request_id") == first["request_id"])
    c.send(op="reply", conversation=conv, text=text, id="r-7f3a")  # the same op id: not c.request's match
    again = c.wait(lambda f: f.get("type") == "ack" and f.get("id") == "r-7f3a"
                   and f["request_id"] != first["request_id"])
    numeric = "Duas respostas com o mesmo id numérico são duas respostas."
    acks = []
    for _ in range(2):
        c.send(op="reply", conversation=conv, text=numeric, id=5)
        acks.append(c.wait(lambda f: f.get("type") == "ack" and f.get("id") == 5
                           and f["request_id"] not in [a["request_id"] for a in acks]))
    for ack in acks:
        c.wait(lambda f, rid=ack["request_id"]: f["type"] == "message" and f["data"].get("request_id") == rid)
    # a conversation's requests are handled in order: the resend was handled before these
    assert scalar(system, f"select count(*) from outbound_requests where request_id = '{again['request_id']}'") == "0"
    assert len(gateway.sent(text)) == 1 and len(gateway.sent(numeric)) == 2
    assert scalar(system, f"select count(*) from messages where text = '{text}'") == "1"
    assert scalar(system, f"select count(*) from messages where text = '{numeric}'") == "2"
    c.close()


def test_gateway_failing_twice_then_succeeding_stores_one_message(system, gateway):
    conv, agent = new_conversation(system, "5511977770002")
    c = console(system, agent, 1, f"conversation:{conv}")
    text = "Vou verificar a fatura e já te retorno."
    gateway.fail_next(2, 500)
    rid = reply(c, conv, text)
    d = event_of(c, rid)["data"]
    assert d["status"] == "sent" and d["attempts"] == 3
    assert len(gateway.sent(text)) == 3
    assert scalar(system, f"select count(*) from messages where text = '{text}'") == "1"
    assert scalar(system, f"select attempts from outbound_requests where request_id = '{rid}'") == "3"
    c.close()


def test_replies_of_a_conversation_go_out_in_order(system, gateway):
    conv, agent = new_conversation(system, "5511977770009")
    c = console(system, agent, 1, f"conversation:{conv}")
    gateway.delay_next(0.6)  # the first is slow: the second must still not overtake it
    texts = ["Primeiro: vou olhar seu plano.", "Segundo: pronto, já está ativo.", "Terceiro: algo mais?"]
    rids = [reply(c, conv, t) for t in texts]
    for rid in rids:
        assert event_of(c, rid)["data"]["status"] == "sent"
    sent = [r for r in gateway.sent() if r["body"] and r["body"].get("text") in texts]
    assert [r["body"]["text"] for r in sent] == texts
    assert sent[1]["at"] - sent[0]["at"] >= 0.55  # the second left only after the first was answered
    ids = [int(x[0]) for x in system.sql(f"select id from messages where conversation_id = {conv} and from_me order by id")]
    assert ids == sorted(ids) and len(ids) == 3
    c.close()


def test_gateway_failing_for_good_tells_the_agent(system, gateway):
    conv, agent = new_conversation(system, "5511977770003")
    c = console(system, agent, 1, f"agent:{agent}")
    text = "Esta resposta não vai sair."
    gateway.fail_next(RETRIES + 1, 503)
    rid = reply(c, conv, text)
    ev = event_of(c, rid)
    d = ev["data"]
    assert ev["channel"] == f"agent:{agent}"
    assert d["status"] == "failed" and d["message_id"] is None and "503" in d["error"] and d["text"] == text
    assert len(gateway.sent(text)) == RETRIES + 1
    assert scalar(system, f"select count(*) from messages where text = '{text}'") == "0"
    assert system.sql(f"select status, attempts from outbound_requests where request_id = '{rid}'") == \
        [["failed", str(RETRIES + 1)]]
    # a 4xx is not retried
    gateway.fail_next(1, 400)
    rid = reply(c, conv, "Esta também não.")
    d = event_of(c, rid)["data"]
    assert d["status"] == "failed" and "400" in d["error"] and len(gateway.sent("Esta também não.")) == 1
    c.close()


def test_cloud_and_api_channels(system, gateway):
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": "Bia"}, "wa_id": "5521977770004"}],
        "messages": [{"from": "5521977770004", "id": "wamid.IN-OUT-1", "timestamp": str(int(time.time())),
                      "type": "text", "text": {"body": "minha fatura veio errada"}}]}}]}]}).encode()
    sig = "sha256=" + hmac.new(b"demo-app-secret", body, hashlib.sha256).hexdigest()
    c = console(system, 1, 1, "company:1")
    assert system.post("/webhooks/whatsapp", body, {"X-Hub-Signature-256": sig}).status == 200
    conv = c.wait(lambda f: f["type"] == "message" and f["data"]["message_id"] == "wamid.IN-OUT-1")["data"]["conversation_id"]
    text = "Oi Bia, já corrigimos a fatura."
    d = event_of(c, reply(c, conv, text))["data"]
    assert d["status"] == "sent" and d["message_id"].startswith("wamid.FAKE")
    r = gateway.sent(text)[0]
    assert r["path"] == "/v21.0/106540352242922/messages"
    assert r["headers"].get("Authorization") == "Bearer cloud-test-token"
    assert r["body"] == {"messaging_product": "whatsapp", "recipient_type": "individual", "to": "5521977770004",
                         "type": "text", "text": {"preview_url": False, "body": text}}
    # a neutral api channel without url: stored for its owner to fetch, marked not_sent
    assert system.post("/v1/messages", {"customer": "site-user-9", "id": "site-out-1", "text": "quero os planos"},
                       {"Authorization": "Bearer demo-api-key"}).status == 200
    conv = c.wait(lambda f: f["type"] == "message" and f["data"]["message_id"] == "site-out-1")["data"]["conversation_id"]
    rid = reply(c, conv, "Temos planos de 300 e 500 mega.")
    d = event_of(c, rid)["data"]
    assert d["status"] == "not_sent" and d["message_id"] == f"atende-{rid}"
    assert scalar(system, f"select from_me from messages where provider_id = 'atende-{rid}'") == "t"
    assert not gateway.sent("Temos planos de 300 e 500 mega.")
    c.close()


def test_worker_killed_during_a_send_does_not_send_twice(system, gateway):
    conv, agent = new_conversation(system, "5511977770005")
    c = console(system, agent, 1, f"conversation:{conv}")
    text = "Resposta durante a queda do worker."
    gateway.delay_next(1.5)
    before = {p["pid"] for p in workers(system)}
    rid = reply(c, conv, text)
    wait_for(lambda: gateway.sent(text), timeout=20, what="the gateway to get the reply")
    for pid in before:  # whichever holds the outbound partition dies with the call in flight
        os.kill(pid, signal.SIGKILL)
    d = event_of(c, rid, timeout=60)["data"]
    # the claim outlived its worker: the new owner cannot know whether it went out, so it is
    # reported and never sent again (had it gone out, the gateway's echo would store it)
    assert d["status"] == "unknown" and d["message_id"] is None and "not sent again" in d["error"]
    wait_for(lambda: len(workers(system)) == 2 and all(p["up"] and p["pid"] not in before for p in workers(system)),
             timeout=30, what="the workers to be restarted")
    time.sleep(1)
    assert len(gateway.sent(text)) == 1
    assert scalar(system, f"select status from outbound_requests where request_id = '{rid}'") == "unknown"
    # and a reply handled just before a crash is not sent again by the redelivery
    text2 = "Resposta antes da queda do worker."
    rid2 = reply(c, conv, text2)
    assert event_of(c, rid2)["data"]["status"] == "sent"
    for p in workers(system):
        os.kill(p["pid"], signal.SIGKILL)
    marker = reply(c, conv, "Depois da segunda queda.")
    assert event_of(c, marker, timeout=60)["data"]["status"] == "sent"
    assert len(gateway.sent(text2)) == 1
    assert scalar(system, f"select count(*) from messages where text = '{text2}'") == "1"
    c.close()


# ---------------------------------------------------------------- transfers

def test_transfer_to_an_agent_reaches_both_agents(system):
    conv, old = new_conversation(system, "5511977770006")
    new = 1 if old != 1 else 2
    a_old = console(system, old, 1, f"agent:{old}")
    a_new = console(system, new, 1, f"agent:{new}")
    ack = a_old.request(op="transfer", conversation=conv, to_agent=new)
    assert ack["type"] == "ack", ack
    for c, agent in ((a_old, old), (a_new, new)):
        ev = c.wait(lambda f: f["type"] == "assignment" and f["data"]["request_id"] == ack["request_id"])
        assert ev["channel"] == f"agent:{agent}"
        d = ev["data"]
        assert (d["conversation_id"], d["from_agent"], d["to_agent"], d["by_agent"]) == (conv, old, new, old)
        assert d["company_id"] == 1 and d["domain"] == "suporte" and d["at"].endswith("Z")
    assert scalar(system, f"select agent_id from conversations where id = {conv}") == str(new)
    assert scalar(system, f"select status from outbound_requests where request_id = '{ack['request_id']}'") == "transferred"
    a_old.close()
    a_new.close()


def test_transfer_to_a_domain_picks_another_agent(system):
    conv, old = new_conversation(system, "5511977770007")
    c = console(system, old, 1, "company:1")
    ack = c.request(op="transfer", conversation=conv, to_domain="financeiro")
    assert ack["type"] == "ack", ack
    evs = collect(c, lambda f: f["type"] == "assignment" and f["data"]["request_id"] == ack["request_id"], 2)
    d = evs[0]["data"]
    assert d["from_agent"] == old and d["to_agent"] not in (None, old) and d["domain"] == "financeiro"
    assert d["from_domain"] == "suporte" and d["to_domain"] == "financeiro"
    assert sorted(e["data"]["to_agent"] for e in evs) == [d["to_agent"]] * 2
    assert system.sql(f"select agent_id, domain from conversations where id = {conv}") == [[str(d["to_agent"]), "financeiro"]]
    c.close()


def test_worker_refuses_what_the_notifier_cannot_check_and_ignores_redeliveries(system):
    conv, agent = new_conversation(system, "5511977770008")
    c = console(system, agent, 1, f"agent:{agent}")
    # the notifier refuses an agent outside the company's range itself
    err = c.request(op="transfer", conversation=conv, to_agent=7)
    assert err["type"] == "error" and "not in your company" in err["error"]
    # the worker checks the agents table: agent 7 belongs to company 2 (a stale notifier config,
    # or a message produced by something else)
    base = {"type": "transfer", "company_id": 1, "conversation_id": conv, "agent_id": agent, "client_id": None,
            "requested_at": "2026-01-01T00:00:00.000Z"}
    kcat_produce(system, conv, dict(base, to_agent=7, request_id="test-cross-1"), "transfer")
    ev = c.wait(lambda f: f["type"] == "error" and f.get("data", {}).get("request_id") == "test-cross-1")
    assert ev["data"]["status"] == "refused" and "agent 7" in ev["data"]["error"]
    assert scalar(system, f"select agent_id from conversations where id = {conv}") == str(agent)
    # a conversation of company 1 asked for by company 2: refused, and company 1 hears nothing of it
    other = console(system, 6, 2, "agent:6")
    kcat_produce(system, conv, {"type": "reply", "company_id": 2, "conversation_id": conv, "agent_id": 6,
                                "text": "oi", "client_id": 1, "request_id": "test-cross-2",
                                "requested_at": "2026-01-01T00:00:00.000Z"}, "reply")
    ev = other.wait(lambda f: f["type"] == "error" and f.get("data", {}).get("request_id") == "test-cross-2")
    assert "not known in company 2" in ev["data"]["error"]
    # the same transfer delivered twice (same request_id) changes the assignment once
    target = 3 if agent != 3 else 4
    dup = dict(base, to_agent=target, request_id="test-dup-1")
    kcat_produce(system, conv, dup, "transfer")
    c.wait(lambda f: f["type"] == "assignment" and f["data"]["request_id"] == "test-dup-1")
    kcat_produce(system, conv, dup, "transfer")
    mark = dict(base, agent_id=target, to_agent=agent, request_id="test-dup-2")
    kcat_produce(system, conv, mark, "transfer")  # same key, same partition: handled after the copy
    c.wait(lambda f: f["type"] == "assignment" and f["data"]["request_id"] == "test-dup-2")
    assert len([e for e in c.events("assignment") if e["data"]["request_id"] == "test-dup-1"]) == 1
    assert system.sql("select request_id, status from outbound_requests where request_id like 'test-%' order by 1") == [
        ["test-cross-1", "refused"], ["test-cross-2", "refused"], ["test-dup-1", "transferred"],
        ["test-dup-2", "transferred"]]
    # a malformed request goes to the dead-letter queue
    kcat_produce(system, conv, {"type": "reply", "company_id": 1, "conversation_id": conv, "text": "x"}, "reply")
    wait_for(lambda: scalar(system, "select error from dlq where topic = 'atende.outbound'"), what="the dead letter")
    assert "request_id" in scalar(system, "select error from dlq where topic = 'atende.outbound'")
    assert "test-cross-2" not in json.dumps(c.frames)
    c.close()
    other.close()


def test_resolve_and_reopen_are_applied_once_and_heard_by_the_consoles(system):
    conv, agent = new_conversation(system, "5511977770011")
    c = console(system, agent, 1, "company:1")
    ack = c.request(op="resolve", conversation=conv)
    assert ack["type"] == "ack", ack
    ev = c.wait(lambda f: f["type"] == "conversation" and f["data"].get("request_id") == ack["request_id"])
    d = ev["data"]
    assert (d["conversation_id"], d["status"], d["agent_id"], d["by"], d["changed"]) == (conv, "resolved", agent,
                                                                                       f"agent:{agent}", True)
    assert scalar(system, f"select status from conversations where id = {conv}") == "resolved"
    assert system.sql(f"select kind, from_status, status, by from conversation_events where conversation_id = {conv} "
                      "order by id desc limit 1") == [["status", "open", "resolved", f"agent:{agent}"]]
    # resolving again changes nothing, and says so
    again = c.request(op="resolve", conversation=conv)
    d = c.wait(lambda f: f["type"] == "conversation" and f["data"].get("request_id") == again["request_id"])["data"]
    assert (d["status"], d["changed"]) == ("resolved", False)
    # a supervisor reopens it
    sup = system.ws(system.token(5, 1, role="supervisor"))
    assert sup.subscribe("company:1")["type"] == "ack"
    reopen = sup.request(op="reopen", conversation=conv)
    d = sup.wait(lambda f: f["type"] == "conversation" and f["data"].get("request_id") == reopen["request_id"])["data"]
    assert (d["status"], d["changed"], d["by"]) == ("open", True, "supervisor:5")
    assert scalar(system, f"select status from conversations where id = {conv}") == "open"
    # the agent waits for the customer (pending); the customer's next message opens it again
    wait = c.request(op="pending", conversation=conv)
    d = c.wait(lambda f: f["type"] == "conversation" and f["data"].get("request_id") == wait["request_id"])["data"]
    assert (d["status"], d["changed"], d["by"]) == ("pending", True, f"agent:{agent}")
    assert system.evolution(evolution_text("PEND-1", "testei e continua lento", customer="5511977770011")).status == 200
    d = c.wait(lambda f: f["type"] == "conversation" and f["data"]["conversation_id"] == conv
               and f["data"]["by"] == "customer")["data"]
    assert d["status"] == "open"
    # the same op delivered twice (same request_id) is applied and published once
    base = {"type": "resolve", "company_id": 1, "conversation_id": conv, "agent_id": agent, "role": "agent",
            "client_id": None, "request_id": "test-resolve-dup", "requested_at": "2026-01-01T00:00:00.000Z"}
    kcat_produce(system, conv, base, "resolve")
    c.wait(lambda f: f["type"] == "conversation" and f["data"].get("request_id") == "test-resolve-dup")
    kcat_produce(system, conv, base, "resolve")
    wait_for(lambda: scalar(system, "select published_at is not null from outbound_requests "
                                    "where request_id = 'test-resolve-dup'") == "t", what="the first one published")
    marker = c.request(op="reopen", conversation=conv)  # the worker handles one conversation's requests in order
    c.wait(lambda f: f["type"] == "conversation" and f["data"].get("request_id") == marker["request_id"])
    assert len([f for f in c.frames if f["type"] == "conversation"
                and f["data"].get("request_id") == "test-resolve-dup"]) == 1
    assert scalar(system, f"select count(*) from conversation_events where conversation_id = {conv} "
                          "and status = 'resolved'") == "2"  # the agent's, and the duplicated one once
    # another company's conversation: refused, with nothing said about it
    other = console(system, 6, 2, "agent:6")
    err = other.request(op="resolve", conversation=conv)  # the notifier knows whose it is
    assert err["type"] == "error" and "not known in your company" in err["error"]
    kcat_produce(system, conv, dict(base, company_id=2, agent_id=6, request_id="test-resolve-cross"), "resolve")
    ev = other.wait(lambda f: f["type"] == "error" and f.get("data", {}).get("request_id") == "test-resolve-cross")
    assert ev["data"]["status"] == "refused" and "not known in company 2" in ev["data"]["error"]
    assert scalar(system, f"select status from conversations where id = {conv}") == "open"
    for x in (c, sup, other):
        x.close()
