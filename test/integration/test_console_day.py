"""The agent's whole day in the console, in a real headless Chromium (test/browser/console_day.test.js,
playwright-core over Debian's chromium): accounts made with `atende agent add`, a password login
through POST /v1/login, the list and a history of 200 messages with hints after a reload, older pages
on scroll up, a reply typed offline delivered once (checked here in PostgreSQL and at the gateway), a
reply whose ack was lost not sent again, unread, title and notification in the background, resolve
and a customer message reopening, search, and a supervisor watching agents and the waiting queue.
Screenshots: build/console-day.png, -login.png, -history.png, -pending.png, -supervisor.png."""
import json
import os
import subprocess

import pytest

from harness import BIN, ROOT, System, serve, wait_for
from test_console_browser import BROWSER_DIR, ensure_browser_tools
from test_foundation import evolution_text

SHOT = os.path.join(ROOT, "build", "console-day.png")
AGENT, SUP = 21, 22
PASSWORD = "senha-do-dia-1"
HIST = "5511974000001"     # 200 messages, suporte
OTHER = "5511974000002"    # a second conversation of the agent
QUEUED = "5511974000003"   # comercial: nobody online serves it, so it waits


@pytest.fixture(scope="module")
def system(gateway):
    yield from serve(System(name="console-day", extra={
        r'url = "http://127.0.0.1:8090";': f'url = "{gateway.url}";',
    }))


def agent_add(system, agent, login, role="agent", domains=None):
    args = [os.path.join(BIN, "atende"), "agent", "add", "-c", system.conf, "--company", "1", "--agent", str(agent),
            "--login", login, "--name", login.title(), "--role", role]
    if domains:
        args += ["--domains", domains]
    r = subprocess.run(args, cwd=system.dir, input=PASSWORD + "\n", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def one(system, query):
    rows = system.sql(query)
    return rows[0][0] if rows else None


def conversation_of(system, customer, msg_id):
    return int(wait_for(lambda: one(system, f"select c.id from conversations c join messages m on m.conversation_id = c.id "
                                            f"where c.customer = '{customer}' and m.provider_id = '{msg_id}'"),
                        what=f"message {msg_id} stored"))


def post(system, msg_id, text, customer, name):
    payload = evolution_text(msg_id, text, customer=customer)
    payload["data"]["pushName"] = name
    r = system.evolution(payload)
    assert r.status == 200, r.body


def test_agents_day_in_headless_chromium(system, gateway):
    node = ensure_browser_tools()
    agent_add(system, AGENT, "ana.dia", domains="suporte,financeiro")
    agent_add(system, SUP, "sup.dia", role="supervisor")
    # the company now assigns by presence: the agent is online (as its console will be), nobody
    # serves comercial, so the site's (comercial) customers wait in the queue
    system.sql(f"select atende_presence_join('test', {AGENT}, 1)")

    texts = ["minha internet caiu de novo e preciso de ajuda urgente", "quero cancelar meu plano agora",
             "a fatura deste mês veio com cobrança indevida", "o modem está piscando a luz vermelha"]
    for i in range(200):
        post(system, f"HIST-{i:03d}", f"{texts[i % 4]} (mensagem {i})", HIST, "Cliente Histórico")
    hist = conversation_of(system, HIST, "HIST-199")
    post(system, "OTHER-000", "Oi, tudo bem? Preciso de uma segunda via", OTHER, "Otávio Segundo")
    other = conversation_of(system, OTHER, "OTHER-000")
    r = system.post("/v1/messages", {"customer": QUEUED, "id": "QUEUE-000", "text": "quanto custa o plano de 300 mega?",
                                     "sender_name": "Quitéria Fila"}, {"Authorization": "Bearer demo-api-key"})
    assert r.status == 200, r.body
    queued = conversation_of(system, QUEUED, "QUEUE-000")
    wait_for(lambda: one(system, f"select count(*) from messages where conversation_id = {hist} "
                                 "and hint_id is null and coaching is null") == "0", timeout=90, what="every message coached")
    assert system.sql(f"select agent_id from conversations where id in ({hist}, {other}) order by id") == [[str(AGENT)]] * 2
    assert system.sql(f"select coalesce(agent_id::text, 'none'), waiting_since is not null from conversations "
                      f"where id = {queued}") == [["none", "t"]]

    for stale in ("", "-login", "-history", "-pending", "-supervisor", "-failure"):
        path = SHOT.replace(".png", f"{stale}.png")
        if os.path.exists(path):
            os.remove(path)
    run = str(os.getpid())
    env = dict(os.environ,
               ATENDE_NOTIFIER=system.url("notifier", ""), ATENDE_INGRESS=system.url("ingress", ""),
               ATENDE_AGENT_LOGIN="ana.dia", ATENDE_AGENT_PASSWORD=PASSWORD, ATENDE_AGENT_ID=str(AGENT),
               ATENDE_SUP_LOGIN="sup.dia", ATENDE_SUP_PASSWORD=PASSWORD,
               ATENDE_HISTORY_CUSTOMER=HIST, ATENDE_HISTORY_CONVERSATION=str(hist),
               ATENDE_OTHER_CUSTOMER=OTHER, ATENDE_OTHER_NAME="Otávio Segundo",
               ATENDE_QUEUE_CONVERSATION=str(queued), ATENDE_SCREENSHOT=SHOT, ATENDE_RUN=run)
    r = subprocess.run([node, os.path.join(BROWSER_DIR, "console_day.test.js")], cwd=ROOT, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    print(r.stderr)
    assert r.returncode == 0, f"console_day.test.js failed (exit {r.returncode}):\n{r.stderr[-4000:]}"
    result = json.loads(r.stdout.strip().splitlines()[-1])
    print("console first paint after login:", json.dumps({k: result[k] for k in ("firstPaintMs", "firstConversationMs")}))
    assert result["ok"] and result["historyMessages"] == 200 and result["hintsShown"] > 0
    assert result["title"] == "(1) atende" and result["agentOpen"] >= 2
    for shot in result["screenshots"]:
        with open(shot, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", shot
        assert os.path.getsize(shot) > 20000, shot

    # exactly once: one agent message with each text in PostgreSQL, one request at the gateway
    for text in (result["offlineReply"], result["lostAckReply"]):
        q = text.replace("'", "''")
        assert system.sql(f"select count(*), min(conversation_id) from messages where from_me and text = '{q}'") == \
            [["1", str(hist)]], text
        assert len(gateway.sent(text)) == 1, text
    # resolved by the agent, reopened by the customer: both in the conversation's history
    events = system.sql(f"select status, by from conversation_events where conversation_id = {hist} order by id")
    assert ["resolved", f"agent:{AGENT}"] in events and events[-1] == ["open", "customer"], events
    assert one(system, f"select status from conversations where id = {hist}") == "open"
