"""Bot mode end to end on one system (fake AI, fake gateway): a worker's own reply request on
atende.outbound (role "bot") goes out once like an agent's reply; the bot answers a customer
of a bot domain once (also when the message is redelivered), hands off to an agent with a
reason when the customer asks for a person, when the message is critical, when the AI says it
cannot help and after bot.max_turns answers; the rules answer when the AI fails; outside
business hours the bot says when agents are back; a domain without the bot is coached as
before."""
import datetime
import json
import subprocess
import time
import zoneinfo

import pytest

from fakeai import BOT_ANSWERS, FakeAI
from fakegateway import FakeGateway
from harness import System, http, wait_for
from test_foundation import evolution_text

AI = FakeAI().start()
MAX_TURNS = 2
TZ = "America/Sao_Paulo"
# company 2's hours exclude today (in its zone): every hand-off there is after hours
TOMORROW = (datetime.datetime.now(zoneinfo.ZoneInfo(TZ)) + datetime.timedelta(days=1))
TOMORROW_DAY = TOMORROW.strftime("%a").lower()
DAY_NAMES = ["segunda-feira", "terça-feira", "quarta-feira", "quinta-feira", "sexta-feira", "sábado", "domingo"]


@pytest.fixture(scope="module")
def gateway():
    gw = FakeGateway().start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def system(gateway):
    s = System(name="test_bot", extra={
        r'url = "http://127.0.0.1:8090";': f'url = "{gateway.url}";',
        r'provider = "rules";': 'provider = "openai";',
        r'base_url = "";': f'base_url = "{AI.base_url}";',
        r"retry_base_ms = 2000;": "retry_base_ms = 100;",
        r"max_retries = 3;": "max_retries = 1;",
        r"(?m)^  timeout_ms = 10000;( +# \(reload\) per call)": r"  timeout_ms = 1000;\1",
        r"deadline_ms = 60000;": "deadline_ms = 10000;",
        r"max_turns = 3;": f"max_turns = {MAX_TURNS};",
        r'\{ id = 1; name = "Demo Telecom"; agents = \[1, 5\]; \}\n\);':
            '{ id = 1; name = "Demo Telecom"; agents = [1, 5]; bot_domains = ["suporte"]; },\n'
            f'  {{ id = 2; name = "Noite"; agents = [6, 8]; bot_domains = ["suporte"]; '
            f'hours = "{TOMORROW_DAY} 08:00-18:00"; timezone = "{TZ}"; }}\n);',
        r"channels = \(\n": 'channels = (\n'
            f'  {{ type = "evolution"; instance = "noite"; key = "noite-key"; company = 2; domain = "suporte"; '
            f'url = "{gateway.url}"; }},\n'
            f'  {{ type = "evolution"; instance = "fin"; key = "fin-key"; company = 1; domain = "financeiro"; '
            f'url = "{gateway.url}"; }},\n',
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


@pytest.fixture(autouse=True)
def fresh_ai():
    AI.reset()
    yield


@pytest.fixture()
def company1(system):
    c = system.ws(system.token(1, 1))
    assert c.subscribe("company:1")["type"] == "ack"
    yield c
    c.close()


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


KEYS = {"demo": "demo-evolution-key", "noite": "noite-key", "fin": "fin-key"}


def post(system, customer, text, instance="demo", mid=None):
    """Posts a customer message to an Evolution instance; returns its provider id."""
    mid = mid or f"IN-{customer}-{time.time_ns()}"
    body = dict(evolution_text(mid, text, customer=customer, instance=instance), apikey=KEYS[instance])
    assert system.evolution(body, key=KEYS[instance]).status == 200
    return mid


def customer_message(system, console, customer, text, instance="demo"):
    """Posts a customer message; returns its message event once a console has it."""
    mid = post(system, customer, text, instance)
    return console.wait(lambda f: f["type"] == "message" and f["data"]["message_id"] == mid)


def bot_message(console, customer, n=1, timeout=30):
    """The n-th message event the bot sent to customer."""
    def pred(f):
        d = f.get("data", {})
        return f["type"] == "message" and d.get("by") == "bot" and d.get("customer") == customer
    deadline = time.monotonic() + timeout
    while True:
        got = [f for f in console.frames if pred(f)]
        if len(got) >= n:
            return got[n - 1]["data"]
        assert time.monotonic() < deadline, f"no bot message #{n} to {customer}; got {console.frames[-5:]}"
        try:
            console.recv_one(1)
        except Exception:
            pass


def sent_to(gateway, customer):
    return [r for r in gateway.sent() if isinstance(r["body"], dict) and r["body"].get("number") == customer]


def handoff_of(console, conv):
    return console.wait(lambda f: f["type"] == "assignment" and f["data"].get("conversation_id") == conv
                        and f["data"].get("reason"))["data"]


def metric_sum(system, name, labels=""):
    text = http("GET", system.url("metrics", "/metrics")).body.decode()
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
               if l.startswith(name + "{") and labels in l.split(" ")[0])


def test_a_bot_reply_request_goes_out_once_stored_by_bot(system, gateway):
    c = system.ws(system.token(1, 1))
    assert c.subscribe("company:1")["type"] == "ack"
    conv = customer_message(system, c, "5511966660001", "qual o horário de funcionamento da loja?", "fin")["data"]
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
    assert r["path"] == "/message/sendText/fin" and r["body"] == {"number": "5511966660001", "text": text}
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
    conv = customer_message(system, c, "5511966660002", "oi, tudo bem?", "fin")["data"]
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


# ---------------------------------------------------------------- bot mode

def test_bot_answers_a_simple_question_once_also_when_redelivered(system, gateway, company1):
    customer = "5511955550001"
    m = customer_message(system, company1, customer, "qual o horário de funcionamento das lojas?")["data"]
    conv = m["conversation_id"]
    assert m["agent_id"] is None  # in the bot's hands: no agent
    d = bot_message(company1, customer)
    answer = BOT_ANSWERS["other"]
    assert d["text"] == answer and d["from_me"] is True and d["status"] == "sent" and d["by_agent"] is None
    assert d["sender_name"] == "Assistente virtual" and d["conversation_id"] == conv
    rid = f"bot:evolution:demo:{m['message_id']}"
    assert d["request_id"] == rid
    assert [r["body"]["text"] for r in sent_to(gateway, customer)] == [answer]
    assert system.sql(f"select bot_active, bot_turns, agent_id is null, waiting_since is null, agent_taken_at is null "
                      f"from conversations where id = {conv}") == [["t", "1", "t", "t", "t"]]
    assert system.sql(f"select by, status from outbound_requests where request_id = '{rid}'") == [["bot", "sent"]]
    assert scalar(system, f"select hint_id is null from messages where provider_id = '{m['message_id']}'") == "t"
    assert system.sql(f"select decision, source from bot_turns where message_id = {m['db_id']}") == [["answer", "ai"]]
    # no "queued" history rows for a conversation nobody waits for
    assert system.sql(f"select kind from conversation_events where conversation_id = {conv} order by id") == [["created"]]
    msgs = api(system, f"/v1/conversations/{conv}/messages", system.token(1, 1)).json()["messages"]
    assert [(x["by"], x["text"]) for x in msgs] == [("customer", "qual o horário de funcionamento das lojas?"),
                                                    ("bot", answer)]

    # the same Kafka message again (a redelivery): stored once, decided once, sent once
    out = subprocess.run(["kcat", "-b", f"127.0.0.1:{system.ports['kafka']}", "-C", "-t", "atende.inbound.suporte",
                          "-o", "beginning", "-e", "-q", "-f", "%k\t%s\n"], stdout=subprocess.PIPE, text=True,
                         timeout=30).stdout
    key, value = [l.split("\t", 1) for l in out.splitlines() if f'"provider_id":"{m["message_id"]}"' in l][0]
    dup_before = metric_sum(system, "atende_worker_outbound_total", 'result="duplicate"')
    stored_dups = metric_sum(system, "atende_worker_messages_total", 'result="duplicate"')
    for _ in range(2):
        subprocess.run(["kcat", "-b", f"127.0.0.1:{system.ports['kafka']}", "-P", "-t", "atende.inbound.suporte",
                        "-k", key], input=value, text=True, check=True, timeout=30)
    wait_for(lambda: metric_sum(system, "atende_worker_messages_total", 'result="duplicate"') >= stored_dups + 2,
             what="the redeliveries to be stored (as duplicates)")
    wait_for(lambda: metric_sum(system, "atende_worker_outbound_total", 'result="duplicate"') >= dup_before + 2,
             what="the bot's reply requests of the redeliveries to be found done")
    assert [r["body"]["text"] for r in sent_to(gateway, customer)] == [answer]
    assert scalar(system, f"select bot_turns from conversations where id = {conv}") == "1"
    assert scalar(system, f"select count(*) from messages where conversation_id = {conv} and from_me") == "1"


@pytest.mark.parametrize("customer,text", [("5511955550002", "quero falar com um atendente"),
                                           ("5511955550012", "qro falar c/ atendete por favor"),
                                           ("5511955550022", "Quero falar com uma PESSOA de verdade")])
def test_asking_for_a_person_hands_off_without_an_answer(system, gateway, company1, customer, text):
    first = customer_message(system, company1, customer, "oi, boa tarde")["data"]
    bot_message(company1, customer)
    conv = first["conversation_id"]
    mid = post(system, customer, text)
    h = handoff_of(company1, conv)
    assert h["reason"] == "customer_asked" and h["to_agent"] and h["agent_id"] == h["to_agent"]
    assert h["from_agent"] is None and h["after_hours"] is False and h["domain"] == "suporte"
    # the agent gets coaching for the message as usual
    hint = company1.wait(lambda f: f["type"] == "hint" and f["data"]["message_id"] == mid)["data"]
    assert hint["agent_id"] == h["to_agent"]
    assert len(sent_to(gateway, customer)) == 1  # the greeting's answer only
    assert scalar(system, f"select count(*) from outbound_requests where request_id = 'bot:evolution:demo:{mid}'") == "0"
    assert system.sql(f"select bot_active, agent_id, bot_handoff_reason, agent_taken_at is not null from conversations "
                      f"where id = {conv}") == [["f", str(h["to_agent"]), "customer_asked", "t"]]
    # the next message is the agent's: coached, no bot
    nxt = post(system, customer, "meu roteador está piscando vermelho")
    company1.wait(lambda f: f["type"] == "hint" and f["data"]["message_id"] == nxt)
    assert len(sent_to(gateway, customer)) == 1


def test_a_critical_message_hands_off_without_an_answer(system, gateway, company1):
    customer = "5511955550003"
    m = customer_message(system, company1, customer,
                         "URGENTE: minha mãe usa oxigênio em casa e a internet do home care caiu")["data"]
    h = handoff_of(company1, m["conversation_id"])
    assert h["reason"] == "critical" and h["to_agent"]
    hint = company1.wait(lambda f: f["type"] == "hint" and f["data"]["message_id"] == m["message_id"])["data"]
    assert hint["critical"] is True and hint["agent_id"] == h["to_agent"]
    assert sent_to(gateway, customer) == []
    assert scalar(system, f"select bot_turns from conversations where id = {m['conversation_id']}") == "0"


def test_after_max_turns_the_bot_hands_off(system, gateway, company1):
    customer = "5511955550004"
    texts = ["oi", "qual o valor do plano de 500 mega?", "e tem fidelidade?"]
    conv = None
    for i, text in enumerate(texts[:MAX_TURNS]):
        m = customer_message(system, company1, customer, text)["data"]
        conv = m["conversation_id"]
        bot_message(company1, customer, i + 1)
    m = customer_message(system, company1, customer, texts[MAX_TURNS])["data"]
    h = handoff_of(company1, conv)
    assert h["reason"] == "max_turns" and h["bot_turns"] == MAX_TURNS and h["to_agent"]
    company1.wait(lambda f: f["type"] == "hint" and f["data"]["message_id"] == m["message_id"])
    assert len(sent_to(gateway, customer)) == MAX_TURNS
    # the agent sees the bot's turns in the history
    msgs = api(system, f"/v1/conversations/{conv}/messages", system.token(h["to_agent"], 1)).json()["messages"]
    assert [x["by"] for x in msgs] == ["customer", "bot", "customer", "bot", "customer"]


def test_the_ai_saying_it_cannot_help_hands_off(system, gateway, company1):
    customer = "5511955550005"
    m = customer_message(system, company1, customer, "preciso renegociar a dívida do meu contrato")["data"]
    h = handoff_of(company1, m["conversation_id"])
    assert h["reason"] == "bot_cannot_help" and h["to_agent"]
    company1.wait(lambda f: f["type"] == "hint" and f["data"]["message_id"] == m["message_id"])
    assert sent_to(gateway, customer) == []
    assert any("renegociar" in c["user"] for c in AI.calls()["calls"])


def test_the_rules_answer_when_the_ai_fails(system, gateway, company1):
    AI.control(mode="500")
    customer = "5511955550006"
    m = customer_message(system, company1, customer, "como pego a segunda via do boleto?")["data"]
    d = bot_message(company1, customer)
    assert d["text"].startswith("Posso ajudar com a sua fatura!")
    assert AI.calls()["count"] >= 1 and all(c["status"] == 500 for c in AI.calls()["calls"])
    assert system.sql(f"select decision, source from bot_turns where message_id = {m['db_id']}") == [["answer", "rules"]]
    assert len(sent_to(gateway, customer)) == 1


def test_outside_business_hours_the_bot_says_when_agents_are_back(system, gateway):
    # by presence, with none of its agents online: the hand-off queues it for the morning (a
    # round-robin company has no notion of being away, and assigns at once); the console
    # watching is no agent of the company's routing
    system.sql("update companies set assignment = 'presence' where id = 2")
    c = system.ws(system.token(99, 2))
    assert c.subscribe("company:2")["type"] == "ack"
    customer = "5511955550007"
    m = customer_message(system, c, customer, "oi, qual o horário das lojas?", "noite")["data"]
    assert bot_message(c, customer)["text"] == BOT_ANSWERS["other"]  # the bot answers questions around the clock
    mid = post(system, customer, "quero falar com um atendente", "noite")
    h = handoff_of(c, m["conversation_id"])
    assert h["reason"] == "customer_asked" and h["after_hours"] is True and h["to_agent"] is None
    d = bot_message(c, customer, 2)
    assert d["request_id"] == f"bot:evolution:noite:{mid}"
    assert f"amanhã ({DAY_NAMES[TOMORROW.weekday()]}) às 08:00" in d["text"] and "voltam" in d["text"]
    assert len(sent_to(gateway, customer)) == 2
    # queued for the morning: no agent, waiting
    assert system.sql(f"select bot_active, agent_id is null, waiting_since is not null from conversations "
                      f"where id = {m['conversation_id']}") == [["f", "t", "t"]]
    c.close()


def test_a_domain_without_the_bot_is_coached_as_before(system, gateway, company1):
    customer = "5511955550008"
    m = customer_message(system, company1, customer, "minha fatura veio com um valor errado este mês", "fin")["data"]
    assert m["agent_id"]
    hint = company1.wait(lambda f: f["type"] == "hint" and f["data"]["message_id"] == m["message_id"])["data"]
    assert hint["agent_id"] == m["agent_id"] and hint["source"] == "ai"
    assert system.sql(f"select bot_active, bot_turns from conversations where id = {m['conversation_id']}") == [["f", "0"]]
    assert scalar(system, f"select count(*) from bot_turns where conversation_id = {m['conversation_id']}") == "0"
    assert sent_to(gateway, customer) == []


def test_bot_metrics(system):
    assert metric_sum(system, "atende_worker_bot_answers_total", 'source="ai"') >= 1
    assert metric_sum(system, "atende_worker_bot_answers_total", 'source="rules"') >= 1
    for reason in ("customer_asked", "critical", "bot_cannot_help", "max_turns"):
        assert metric_sum(system, "atende_worker_bot_handoffs_total", f'reason="{reason}"') >= 1, reason


def test_retention_prunes_old_bot_decisions(system):
    rows = system.sql("select message_id from bot_turns order by message_id limit 2")
    assert len(rows) == 2
    old, recent = rows[0][0], rows[1][0]
    system.sql(f"update bot_turns set created_at = now() - interval '31 days' where message_id = {old}")
    report = json.loads(system.cli("retention", "--json").stdout)
    assert report["bot_turns_pruned"] == 1
    assert system.sql(f"select message_id from bot_turns where message_id in ({old}, {recent})") == [[recent]]
