"""Bot mode end to end on one system (fake gateway): a worker's own reply request on
atende.outbound (role "bot") goes out once through the outbound path like an agent's reply,
is stored by "bot" and reaches the consoles."""
import json
import subprocess
import time
import urllib.parse

import pytest

from fakegateway import FakeGateway
from harness import System, http, wait_for
from test_foundation import evolution_text


@pytest.fixture(scope="module")
def gateway():
    gw = FakeGateway().start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def system(gateway):
    s = System(name="test_bot", extra={
        r'url = "http://127.0.0.1:8090";': f'url = "{gateway.url}";',
    })
    try:
        s.start()
    except Exception:
        print(s.tail(200))
        s.destroy()
        raise
    yield s
    if s.proc and s.proc.poll() is None:
        s.stop()
    s.destroy()


def scalar(system, sql):
    rows = system.sql(sql)
    return rows[0][0] if rows else None


def api(system, path, token):
    return http("GET", system.url("notifier", path), None, {"Authorization": f"Bearer {token}"})


def produce_outbound(system, payload):
    subprocess.run(["kcat", "-b", f"127.0.0.1:{system.ports['kafka']}", "-P", "-t", "atende.outbound",
                    "-k", str(payload["conversation_id"]), "-H", f"type={payload['type']}",
                    "-H", f"company={payload['company_id']}"],
                   input=json.dumps(payload), text=True, check=True, timeout=30)


def customer_message(system, console, customer, text, mid=None):
    """Posts a customer message; returns its message event once a console has it."""
    mid = mid or f"IN-{customer}-{time.time_ns()}"
    assert system.evolution(evolution_text(mid, text, customer=customer)).status == 200
    return console.wait(lambda f: f["type"] == "message" and f["data"]["message_id"] == mid)


def test_a_bot_reply_request_goes_out_once_stored_by_bot(system, gateway):
    c = system.ws(system.token(1, 1))
    assert c.subscribe("company:1")["type"] == "ack"
    conv = customer_message(system, c, "5511966660001", "qual o horário de funcionamento da loja?")["data"]
    cid = conv["conversation_id"]
    text = "Nossas lojas abrem das 9h às 18h, de segunda a sábado."
    req = {"type": "reply", "role": "bot", "request_id": f"bot:test-{cid}", "company_id": 1,
           "conversation_id": cid, "agent_id": 0, "text": text, "client_id": None}
    produce_outbound(system, req)
    ev = c.wait(lambda f: f["type"] == "message" and f["data"].get("request_id") == req["request_id"])
    d = ev["data"]
    assert d["status"] == "sent" and d["from_me"] is True and d["by"] == "bot" and d["by_agent"] is None
    assert d["sender_name"] == "Assistente virtual" and d["text"] == text and d["agent_id"] == conv["agent_id"]
    # the same request again (a redelivery) is not sent again
    produce_outbound(system, req)
    marker = f"bot:test-marker-{cid}"
    produce_outbound(system, dict(req, request_id=marker, text="marcador"))
    c.wait(lambda f: f["type"] == "message" and f["data"].get("request_id") == marker)
    assert len(gateway.sent(text)) == 1
    r = gateway.sent(text)[0]
    assert r["path"] == "/message/sendText/demo" and r["body"] == {"number": "5511966660001", "text": text}
    assert system.sql(f"select status, by, agent_id is null, published_at is not null from outbound_requests "
                      f"where request_id = '{req['request_id']}'") == [["sent", "bot", "t", "t"]]
    assert scalar(system, f"select count(*) from messages where text = '{text}' and from_me") == "1"
    # agents see it in the history as the bot's
    msgs = api(system, f"/v1/conversations/{cid}/messages", system.token(1, 1)).json()["messages"]
    assert [(m["by"], m["text"]) for m in msgs if m["from_me"]][0] == ("bot", text)
    assert [m["by"] for m in msgs if not m["from_me"]] == ["customer"]
    c.close()


def test_a_console_cannot_send_as_the_bot(system, gateway):
    """The notifier sets the role from the token: whatever a console writes, its reply is its agent's."""
    c = system.ws(system.token(1, 1))
    assert c.subscribe("company:1")["type"] == "ack"
    conv = customer_message(system, c, "5511966660002", "oi, tudo bem?")["data"]
    cid = conv["conversation_id"]
    agent = conv["agent_id"]
    a = system.ws(system.token(agent, 1))
    assert a.subscribe(f"conversation:{cid}")["type"] == "ack"
    text = "Resposta de um console que tenta se passar pelo bot."
    ack = a.request(op="reply", conversation=cid, text=text, role="bot", by="bot")
    assert ack["type"] == "ack", ack
    ev = a.wait(lambda f: f["type"] == "message" and f["data"].get("request_id") == ack["request_id"])
    assert ev["data"]["by_agent"] == agent and "by" not in ev["data"]
    assert system.sql(f"select by is null, agent_id from outbound_requests where request_id = '{ack['request_id']}'") \
        == [["t", str(agent)]]
    a.close()
    c.close()
