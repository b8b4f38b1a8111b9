"""Agent accounts and assignment (issue 15): `atende agent add|passwd|disable|list` on a real
system, the stored yescrypt hashes, and where new, queued and reopened conversations go by
domain, presence and load (schema/006_agents_day.sql), with customer messages posted as real
webhooks and presence written as the notifier will (atende_presence_join / _leave)."""
import json
import threading
import warnings

import pytest

from harness import System, http, serve, wait_for
from test_foundation import evolution_text

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # libxcrypt through Python: an independent check of the stored hashes

FIN_CHANNEL = '{ type = "api"; name = "fin"; key = "fin-api-key"; company = 1; domain = "financeiro"; }'


@pytest.fixture(scope="module")
def system():
    # a financeiro channel beside the sample's suporte (Evolution) and comercial (api) ones
    site = r'(\{ type = "api"; name = "site"; key = "demo-api-key"; company = 1; domain = "comercial"; \})'
    yield from serve(System(name="agents", workers=2, extra={site: r"\1,\n  " + FIN_CHANNEL}))


def agent_cli(system, *args, password=None):
    """Runs `atende agent ...` with password (a line) on stdin; returns the CompletedProcess."""
    import os
    import subprocess
    from harness import BIN
    return subprocess.run([os.path.join(BIN, "atende"), "agent", args[0], "-c", system.conf, *args[1:]],
                          cwd=system.dir, input=(password + "\n") if password is not None else "",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)


def add(system, agent, login, password="senha-forte-1", **opts):
    args = ["add", "--company", "1", "--agent", str(agent), "--login", login, "--name", login.title()]
    for k, v in opts.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    return agent_cli(system, *args, password=password)


def listed(system):
    r = agent_cli(system, "list", "--json")
    assert r.returncode == 0, r.stderr
    return {a["agent"]: a for a in json.loads(r.stdout)}


def one(system, query):
    rows = system.sql(query)
    return rows[0][0] if rows else None


def online(system, *agents):
    for a in agents:
        system.sql(f"select atende_presence_join('test', {a}, 1)")


def offline(system, *agents):
    for a in agents:
        system.sql(f"select atende_presence_leave('test', {a})")


def suporte(system, customer, msg_id, text="minha internet caiu de novo, podem ver?"):
    r = system.evolution(evolution_text(msg_id, text, customer=customer))
    assert r.status == 200 and r.json()["accepted"] == 1, r.body
    return wait_conversation(system, "evolution:demo", customer, msg_id)


def financeiro(system, customer, msg_id, text="minha fatura veio com valor errado"):
    r = system.post("/v1/messages", {"customer": customer, "id": msg_id, "text": text, "sender_name": "Cliente"},
                    {"Authorization": "Bearer fin-api-key"})
    assert r.status == 200 and r.json()["accepted"] == 1, r.body
    return wait_conversation(system, "api:fin", customer, msg_id)


def wait_conversation(system, channel, customer, msg_id):
    """The conversation's id once the message msg_id is stored in it."""
    return int(wait_for(lambda: one(system, f"select c.id from conversations c join messages m on m.conversation_id = c.id "
                                            f"where c.channel = '{channel}' and c.customer = '{customer}' "
                                            f"and m.provider_id = '{msg_id}'"), what=f"message {msg_id} stored"))


def conv(system, cid):
    agent, status, waiting = system.sql(f"select coalesce(agent_id::text, ''), status, waiting_since is not null "
                                        f"from conversations where id = {cid}")[0]
    return (int(agent) if agent else None), status, waiting == "t"


def stored_by_worker(system):
    """Messages each worker stored so far, from the supervisor's merged /metrics."""
    out = {}
    for line in http("GET", system.url("metrics", "/metrics")).body.decode().splitlines():
        if line.startswith("atende_worker_messages_total{") and 'result="stored"' in line:
            index = line.split('index="')[1].split('"')[0]
            out[index] = out.get(index, 0) + float(line.split()[-1])
    return out


def test_cli_accounts(system):
    r = add(system, 11, "ana", domains="financeiro", max_open=1)
    assert r.returncode == 0, r.stderr
    assert "agent 11 (ana) added to company 1" in r.stdout
    assert add(system, 12, "bia", domains="suporte", max_open=2).returncode == 0
    assert add(system, 13, "caio", max_open=3).returncode == 0
    assert add(system, 15, "sara", role="supervisor").returncode == 0

    dup = add(system, 16, "ANA")
    assert dup.returncode != 0 and "login ANA is taken" in dup.stderr and dup.stderr.count("\n") == 1
    short = add(system, 16, "duda", password="1234567")
    assert short.returncode != 0 and "shorter than 8" in short.stderr
    bad = add(system, 16, "duda", domains="suporte,marketing")
    assert bad.returncode != 0 and '"marketing"' in bad.stderr
    assert add(system, 16, "duda", role="chefe").returncode != 0
    assert add(system, 16, "duda", password=None).returncode != 0  # nothing on stdin
    again = add(system, 11, "ana2")
    assert again.returncode != 0 and "already has the login ana" in again.stderr
    other = agent_cli(system, "add", "--company", "9", "--agent", "16", "--login", "duda", "--name", "D",
                      password="senha-forte-1")
    assert other.returncode != 0 and "company 9" in other.stderr
    assert one(system, "select count(*) from agents where id = 16") == "0"

    a = listed(system)
    assert a[11]["login"] == "ana" and a[11]["domains"] == ["financeiro"] and a[11]["max_open"] == 1
    assert a[12]["domains"] == ["suporte"] and a[12]["max_open"] == 2 and a[12]["role"] == "agent"
    assert a[13]["domains"] == [] and a[15]["role"] == "supervisor" and a[15]["max_open"] == 10
    assert a[1]["login"] is None and a[1]["active"] is True  # seeded from the config, no account
    assert all(x["online"] is False and x["disabled_at"] is None for x in a.values())
    text = agent_cli(system, "list")
    assert text.returncode == 0 and "ana" in text.stdout and "financeiro" in text.stdout

    h = one(system, "select password_hash from agents where login = 'ana'")
    assert h.startswith("$y$") and crypt.crypt("senha-forte-1", h) == h and crypt.crypt("senha-errada", h) != h
    assert one(system, "select password_hash from agents where login = 'bia'") != h  # salted

    r = agent_cli(system, "passwd", "--login", "Ana", password="outra-senha-2")
    assert r.returncode == 0, r.stderr
    h2 = one(system, "select password_hash from agents where id = 11")
    assert h2 != h and crypt.crypt("outra-senha-2", h2) == h2 and crypt.crypt("senha-forte-1", h2) != h2
    assert agent_cli(system, "passwd", "--agent", "11", password="curta").returncode != 0
    assert one(system, "select password_hash from agents where id = 11") == h2
    noacc = agent_cli(system, "passwd", "--agent", "2", password="senha-forte-1")
    assert noacc.returncode != 0 and "no account" in noacc.stderr

    assert add(system, 14, "davi").returncode == 0
    online(system, 14)
    r = agent_cli(system, "disable", "--login", "davi")
    assert r.returncode == 0, r.stderr
    d = listed(system)[14]
    assert d["disabled_at"] and d["active"] is False and d["online"] is False  # presence gone too
    assert agent_cli(system, "disable", "--agent", "14").returncode == 0  # already disabled: fine
    missing = agent_cli(system, "disable", "--login", "ninguem")
    assert missing.returncode != 0 and "does not exist" in missing.stderr
    assert agent_cli(system, "disable").returncode == 2
    # the config's seeding at the next start must not touch accounts
    system.cli("migrate")
    assert listed(system)[11]["login"] == "ana" and one(system, "select password_hash from agents where id = 11") == h2


def test_assignment_by_domain_presence_and_load(system):
    # accounts exist now, so company 1 assigns by presence: the seeded agents 1-5 are offline
    online(system, 11, 12, 13)
    s1 = suporte(system, "5511900000001", "AS-1")
    assert conv(system, s1) == (12, "open", False)  # bia and caio both empty: bia, never assigned
    s2 = suporte(system, "5511900000002", "AS-2")
    assert conv(system, s2)[0] == 13                 # fewer open conversations: caio
    s3 = suporte(system, "5511900000003", "AS-3")
    assert conv(system, s3)[0] == 12                 # one each: the least recently assigned, bia
    f1 = financeiro(system, "5511900000011", "AF-1")
    assert conv(system, f1)[0] == 11                 # ana has the skill and room
    f2 = financeiro(system, "5511900000012", "AF-2")
    assert conv(system, f2)[0] == 13                 # ana is full (max 1); bia lacks financeiro
    hint_agent = wait_for(lambda: one(system, f"select coalesce(agent_id::text, 'null') from hints where conversation_id = {f2}"),
                          what="the hint of AF-2")
    assert hint_agent == "13"

    offline(system, 13)
    s4 = suporte(system, "5511900000004", "AS-4")
    assert conv(system, s4) == (None, "open", True)  # bia full, caio offline: the suporte queue
    f3 = financeiro(system, "5511900000013", "AF-3")
    assert conv(system, f3) == (None, "open", True)
    assert one(system, f"select kind || ':' || coalesce(agent_id::text, '-') from conversation_events "
                       f"where conversation_id = {s4}") == "created:-"
    # a queued conversation's next message keeps its place in the queue
    suporte(system, "5511900000004", "AS-4b", "alguém aí?")
    assert conv(system, s4) == (None, "open", True)
    assert system.sql("select * from atende_assign_waiting(1)") == []  # nobody free yet

    assert system.sql("select atende_presence_join('test', 13, 1)") == [["t"]]  # came online
    handed = system.sql("select conversation_id, agent_id, domain from atende_assign_waiting(1)")
    # longest-waiting first: s4 fills caio's third slot; f3 has nobody left
    assert handed == [[str(s4), "13", "suporte"]]
    assert conv(system, s4) == (13, "open", False) and conv(system, f3) == (None, "open", True)
    assert one(system, f"select by || ':' || kind from conversation_events where conversation_id = {s4} "
                       f"order by id desc limit 1") == "system:assignment"

    # resolve frees ana's slot; handing out the queue gives her f3
    res = json.loads(one(system, f"select atende_conversation_set_status({f1}, 1, 'resolved', 'agent:11', 11)"))
    assert res["ok"] and res["changed"] and res["from"] == "open"
    ev = res["event"]
    assert ev["conversation_id"] == f1 and ev["status"] == "resolved" and ev["agent_id"] == 11
    assert ev["domain"] == "financeiro" and ev["by"] == "agent:11" and ev["at"].endswith("Z")
    same = json.loads(one(system, f"select atende_conversation_set_status({f1}, 1, 'resolved', 'agent:11', 11)"))
    assert same["ok"] and same["changed"] is False
    assert json.loads(one(system, f"select atende_conversation_set_status({f1}, 2, 'open', 'agent:7', 7)"))["error"] == "forbidden"
    assert json.loads(one(system, "select atende_conversation_set_status(987654, 1, 'open', 'system')"))["error"] == "not_found"
    assert json.loads(one(system, f"select atende_conversation_set_status({f1}, 1, 'pending', 'agent:11', 11)"))["error"] == "bad_transition"
    assert json.loads(one(system, f"select atende_conversation_set_status({f1}, 1, 'closed', 'agent:11', 11)"))["error"] == "bad_status"
    assert system.sql("select conversation_id, agent_id from atende_assign_waiting(1)") == [[str(f3), "11"]]

    # a customer message reopens a resolved conversation; its agent is online, so it stays hers
    events_before = int(one(system, f"select count(*) from conversation_events where conversation_id = {f1}"))
    console = system.ws(system.token(15, 1, role="supervisor"))
    console.subscribe("company:1")
    financeiro(system, "5511900000011", "AF-1b", "voltei, ainda não resolveu")
    assert conv(system, f1) == (11, "open", False)
    # and the consoles hear of it: a conversation event from the worker that stored it
    reopened = console.wait(lambda f: f["type"] == "conversation" and f["data"]["conversation_id"] == f1)["data"]
    assert (reopened["status"], reopened["agent_id"], reopened["by"], reopened["domain"]) == ("open", 11, "customer",
                                                                                            "financeiro")
    console.close()
    row = system.sql(f"select kind, from_status, status, from_agent, agent_id, by from conversation_events "
                     f"where conversation_id = {f1} order by id desc limit 1")[0]
    assert row == ["status", "resolved", "open", "11", "11", "customer"]
    assert int(one(system, f"select count(*) from conversation_events where conversation_id = {f1}")) == events_before + 1
    # a redelivery of that message (as a worker would store it again after a crash) does
    # not reopen the conversation once it is resolved again
    assert json.loads(one(system, f"select atende_conversation_set_status({f1}, 1, 'resolved', 'supervisor:15', 15)"))["changed"]
    again = json.dumps([{"company": 1, "channel": "api:fin", "customer": "5511900000011", "domain": "financeiro",
                         "provider_id": "AF-1b", "from_me": False, "text": "voltei, ainda não resolveu",
                         "received_at": "2026-01-05T10:00:00Z"}])
    assert system.sql(f"select r_inserted, r_status, coalesce(r_prev_status, '-') from atende_ingest('{again}')") == [
        ["f", "resolved", "-"]]
    assert conv(system, f1)[1] == "resolved"

    # reopened after its agent left: bia goes offline, her resolved conversation comes back
    assert json.loads(one(system, f"select atende_conversation_set_status({s1}, 1, 'resolved', 'supervisor:15', 15)"))["changed"]
    offline(system, 12)
    suporte(system, "5511900000001", "AS-1b", "o problema voltou")
    agent, status, waiting = conv(system, s1)
    assert status == "open" and agent is None and waiting  # caio is full: the queue
    row = system.sql(f"select from_status, status, from_agent, coalesce(agent_id::text, '-') from conversation_events "
                     f"where conversation_id = {s1} order by id desc limit 1")[0]
    assert row == ["resolved", "open", "12", "-"]

    # nobody ever above max_open through routing (reopens to the same agent may go above)
    for a, cap in system.sql("select a.id, a.max_open from agents a where a.id in (12, 13)"):
        assert int(one(system, f"select count(*) from conversations where agent_id = {a} and status = 'open'")) <= int(cap)


def test_concurrent_assignment_is_exactly_once(system):
    """Many new conversations at once, stored by two workers: each is assigned once at most,
    no agent goes above max_open, and two concurrent hand-outs of the queue never give the
    same conversation twice."""
    system.sql("delete from agent_presence")
    assert add(system, 21, "eva", domains="comercial", max_open=5).returncode == 0
    assert add(system, 22, "ivo", domains="comercial", max_open=7).returncode == 0
    online(system, 21, 22)
    n = 40

    def post(lo, hi):
        batch = [{"customer": f"55119777{i:05d}", "id": f"CC-{i}", "text": "quero contratar o plano de 500 mega",
                  "sender_name": f"Cliente {i}"} for i in range(lo, hi)]
        r = system.post("/v1/messages", batch, {"Authorization": "Bearer demo-api-key"})
        assert r.status == 200 and r.json()["accepted"] == hi - lo, r.body

    before = stored_by_worker(system)
    threads = [threading.Thread(target=post, args=(i, i + 10)) for i in range(0, n, 10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_for(lambda: one(system, "select count(*) from messages where provider_id like 'CC-%'") == str(n),
             what="every message stored", timeout=60)
    # the supervisor merges the workers' metrics every few seconds: wait for all n there
    after = wait_for(lambda: (lambda a: a if sum(a.values()) - sum(before.values()) >= n else None)(stored_by_worker(system)),
                     what="the workers' stored counts", timeout=30)
    assert all(after[w] > before.get(w, 0) for w in ("0", "1")), (before, after)  # both workers stored some

    rows = system.sql("select coalesce(agent_id::text, '-'), waiting_since is not null from conversations "
                      "where channel = 'api:site' and customer like '55119777%'")
    assert len(rows) == n
    per = {}
    for agent, waiting in rows:
        per[agent] = per.get(agent, 0) + 1
        assert (agent == "-") == (waiting == "t")
    assert per.get("21") == 5 and per.get("22") == 7 and per.get("-") == n - 12, per
    # one history row each (its creation), none assigned twice
    assert system.sql("select count(*), count(distinct conversation_id) from conversation_events e "
                      "join conversations c on c.id = e.conversation_id where c.customer like '55119777%'") == [[str(n), str(n)]]

    # room for 6 more; two hand-outs at once give exactly 6, each conversation once
    system.sql("update agents set max_open = 8 where id = 21; update agents set max_open = 10 where id = 22")
    first = {r[0] for r in system.sql("select id from conversations where channel = 'api:site' and waiting_since is not null "
                                      "order by waiting_since, id limit 6")}
    results = [None, None]

    def hand_out(k):
        results[k] = system.sql("select conversation_id, agent_id from atende_assign_waiting(1, 'comercial')")

    threads = [threading.Thread(target=hand_out, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    handed = results[0] + results[1]
    assert len(handed) == 6 and len({c for c, _ in handed}) == 6, results
    counts = dict(system.sql("select agent_id, count(*) from conversations where agent_id in (21, 22) "
                             "and status = 'open' group by agent_id"))
    assert counts == {"21": "8", "22": "10"}
    assert one(system, "select count(*) from conversations where channel = 'api:site' and customer like '55119777%' "
                       "and agent_id is null and waiting_since is not null") == str(n - 18)
    assert {c for c, _ in handed} == first  # the longest-waiting went first


def login(system, body, raw=None):
    data = raw if raw is not None else json.dumps(body).encode()
    return http("POST", system.url("notifier", "/v1/login"), data, {"Content-Type": "application/json"})


def test_login_presence_queue_password_change_and_disable(system):
    """POST /v1/login on the notifier; the console's presence hands out the queue; a new
    password ends older tokens; a disabled agent's consoles are closed and its token and
    password refused; repeated failures are slowed down, then refused with 429."""
    assert add(system, 31, "duda", password="senha-da-duda", domains="comercial", max_open=2).returncode == 0
    r = login(system, {"login": "DUDA", "password": "senha-da-duda"})  # logins ignore case
    assert r.status == 200, r.body
    body = r.json()
    assert (body["agent"], body["company"], body["role"]) == (31, 1, "agent")
    token = body["token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert http("GET", system.url("notifier", "/v1/conversations?agent=me"), None, auth).status == 200
    wrong = login(system, {"login": "duda", "password": "senha-errada"})
    unknown = login(system, {"login": "ninguem", "password": "senha-da-duda"})
    assert (wrong.status, wrong.json()) == (unknown.status, unknown.json()) == (401, {"error": "wrong login or password"})
    assert login(system, None, raw=b"login=duda").status == 400
    assert login(system, {"login": "duda"}).status == 400
    assert http("GET", system.url("notifier", "/v1/login")).status == 405

    # duda comes online: the comercial queue the concurrency test left has room for two of hers
    sup = system.ws(system.token(15, 1, role="supervisor"))
    sup.subscribe("company:1")
    waiting_before = int(one(system, "select count(*) from conversations where domain = 'comercial' "
                                     "and agent_id is null and status = 'open'"))
    assert waiting_before >= 2
    duda = system.ws(token)
    handed = [sup.wait(lambda f, k=k: len([x for x in sup.frames if x["type"] == "assignment"
                                           and x["data"].get("to_agent") == 31]) > k) for k in range(2)]
    assert handed
    assigned = [f["data"] for f in sup.frames if f["type"] == "assignment" and f["data"].get("to_agent") == 31]
    assert len(assigned) == 2 and all(a["reason"] == "queue" and a["domain"] == "comercial" for a in assigned)
    assert one(system, "select count(*) from conversations where agent_id = 31 and status = 'open'") == "2"
    assert one(system, "select count(*) from agent_presence where agent_id = 31 and notifier <> 'test'") == "1"
    duda.close()
    wait_for(lambda: one(system, "select count(*) from agent_presence where agent_id = 31") == "0",
             what="duda's presence row gone with her last console")

    # a new password ends the tokens issued before it
    assert agent_cli(system, "passwd", "--login", "duda", password="outra-senha-1").returncode == 0
    wait_for(lambda: http("GET", system.url("notifier", "/v1/conversations"), None, auth).status == 401,
             what="the old token refused", timeout=15)
    token = login(system, {"login": "duda", "password": "outra-senha-1"}).json()["token"]
    duda = system.ws(token)
    assert duda.subscribe("agent:31")["type"] == "ack"

    # disabled: the open console is closed, the token and the password are refused
    assert agent_cli(system, "disable", "--login", "duda").returncode == 0

    def closed():
        try:
            duda.recv_one(1)
            return False
        except Exception as e:  # the close frame, or the socket gone
            return "timed out" not in str(e).lower()
    wait_for(closed, what="duda's console closed", timeout=15)
    assert http("GET", system.url("notifier", "/v1/conversations"), None,
                {"Authorization": f"Bearer {token}"}).status == 401
    r = login(system, {"login": "duda", "password": "outra-senha-1"})
    assert (r.status, r.json()) == (403, {"error": "this account is disabled"})
    sup.close()

    # guessing: each failure answers after a delay, and past the limit 429 with Retry-After
    assert add(system, 32, "edu", password="senha-do-edu").returncode == 0
    statuses = [login(system, {"login": "edu", "password": f"chute-{i}"}).status for i in range(6)]
    assert statuses[:3] == [401] * 3 and statuses[-1] == 429  # this address already failed twice above
    r = login(system, {"login": "edu", "password": "senha-do-edu"})
    assert r.status == 429 and int(r.headers["Retry-After"]) > 0
    metrics = http("GET", system.url("metrics", "/metrics")).body.decode()
    assert 'atende_notifier_logins_total{process="notifier",index="0",result="throttled"}' in metrics


AT_BASE = []


def at(seconds):
    """An ISO time this many seconds after five minutes before the first call: within a
    week with a partition, and a silence these messages start falls due ten minutes after
    its message (lifecycle.followup1_after_s), long after the tests here, so no lifecycle
    job moves a conversation a test compares."""
    import time
    if not AT_BASE:
        AT_BASE.append(int(time.time()) - 300)
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(AT_BASE[0] + seconds))


def ingest_sql(fn, batch):
    """A query storing batch (a list of elements) through fn, counting the conversation row
    versions it made in its transaction; its rows then that count."""
    body = json.dumps(batch).replace("'", "''")
    return (f"with i as materialized (select * from {fn}('{body}'::jsonb)) "
            "select i.r_idx, coalesce(i.r_message_id::text, '-'), i.r_inserted, coalesce(i.r_agent_id::text, '-'), "
            "i.r_status, coalesce(i.r_prev_status, '-'), i.r_assigned, i.r_queued, i.r_changed_at is null, "
            "i.r_survey is null, (select n_tup_upd from pg_stat_xact_user_tables where relname = 'conversations') "
            "from i order by i.r_idx")


def test_plain_messages_are_stored_set_based_as_the_row_path_would(system):
    """schema/021: messages to an open conversation with an active agent (and ours) are stored
    by one statement per batch; the conversation, its messages and the rows returned are
    what 011's row-by-row path makes of the same batch, with one conversation version
    instead of two per message. Anything else in the batch goes the row way, in order."""
    assert add(system, 41, "rui", domains="financeiro", max_open=50).returncode == 0
    online(system, 41)
    twins = {}
    for who in ("A", "B"):
        customer = f"551190009000{'1' if who == 'A' else '2'}"
        first = [{"company": 1, "channel": "api:fin", "customer": customer, "domain": "financeiro",
                  "provider_id": f"PL-{who}-0", "from_me": False, "text": "oi", "sender_name": "Cliente",
                  "received_at": at(0)}]
        system.sql(ingest_sql("atende_ingest", first))
        cid = int(one(system, f"select id from conversations where channel = 'api:fin' and customer = '{customer}'"))
        system.sql(f"update conversations set agent_id = 41, status = 'open', waiting_since = null where id = {cid}")
        twins[who] = (cid, customer)

    def batch(who):
        cid, customer = twins[who]
        base = {"company": 1, "channel": "api:fin", "customer": customer, "domain": "financeiro"}
        return [dict(base, provider_id=f"PL-{who}-1", from_me=False, text="minha fatura veio errada",
                     sender_name="Ana Souza", received_at=at(60), sent_at=at(59)),
                dict(base, provider_id=f"PL-{who}-2", from_me=True, text="vou verificar, um momento " + "x" * 250,
                     received_at=at(120)),
                dict(base, provider_id=f"PL-{who}-3", from_me=False, kind="audio", text="",
                     media={"mime": "audio/ogg", "url": "http://x/a.ogg"}, received_at=at(90))]

    fast = system.sql(ingest_sql("atende_ingest", batch("A")))
    slow = system.sql(ingest_sql("atende_ingest_011", batch("B")))
    # one version for the three messages (the customer's came last: no silence starts); the
    # row path: an upsert and a touch per message
    assert ([r[-1] for r in fast], [r[-1] for r in slow]) == (["1"] * 3, ["6"] * 3)
    strip = [[r[0]] + r[2:-1] for r in fast]
    assert strip == [[r[0]] + r[2:-1] for r in slow]
    assert strip[0] == ["0", "t", "41", "open", "-", "f", "f", "t", "t"]
    ids = [int(r[1]) for r in fast]
    assert ids == sorted(ids)  # ids in batch order within the conversation

    def state(who):
        cid, _ = twins[who]
        row = system.sql(f"select last_message_at, customer_name, customer_messages, last_message - 'id' - 'provider_id', "
                         f"last_message->>'provider_id', last_message_id = (select max(id) from messages "
                         f"where conversation_id = {cid}), status, agent_id, lc_anchor_at, lc_next_at, lc_stage "
                         f"from conversations where id = {cid}")[0]
        msgs = system.sql(f"select provider_id, from_me, kind, text, coalesce(media::text, '-'), "
                          f"coalesce(sender_name, '-'), coalesce(sent_at::text, '-'), received_at, company_id "
                          f"from messages where conversation_id = {cid} order by id")
        return row, [[m[0].replace(f"-{who}-", "-")] + m[1:] for m in msgs]

    (row_a, msgs_a), (row_b, msgs_b) = state("A"), state("B")
    assert row_a[4] == "PL-A-3" and row_b[4] == "PL-B-3"
    assert row_a[:4] + row_a[5:] == row_b[:4] + row_b[5:]
    assert row_a[1] == "Ana Souza" and row_a[2] == "3" and row_a[5] == "t" and row_a[8] == ""
    assert msgs_a == msgs_b and [m[0] for m in msgs_a] == ["PL-0", "PL-1", "PL-2", "PL-3"]

    # our message last: it starts a silence (011's lifecycle columns), the same both ways
    def ours(who):
        return [{"company": 1, "channel": "api:fin", "customer": twins[who][1], "domain": "financeiro",
                 "provider_id": f"PL-{who}-5", "from_me": True, "text": "conseguiu ver?", "received_at": at(200)}]
    fast = system.sql(ingest_sql("atende_ingest", ours("A")))
    slow = system.sql(ingest_sql("atende_ingest_011", ours("B")))
    assert (fast[0][-1], slow[0][-1]) == ("2", "3")  # the row path: upsert, touch, silence
    (row_a, msgs_a), (row_b, msgs_b) = state("A"), state("B")
    assert row_a[:4] + row_a[5:] == row_b[:4] + row_b[5:] and msgs_a == msgs_b
    assert row_a[8] != "" and row_a[9] != "" and row_a[2] == "3"

    # a mixed batch: a new conversation and a duplicate go the row way, the rest set-based,
    # rows in batch order; storing it again changes nothing
    cid_a, cust_a = twins["A"]
    base = {"company": 1, "channel": "api:fin", "domain": "financeiro", "from_me": False,
            "received_at": at(300)}
    mixed = [dict(base, customer=cust_a, provider_id="PL-A-4", text="e ai?"),
             dict(base, customer="5511900090009", provider_id="PL-C-1", text="boa tarde"),
             dict(base, customer=cust_a, provider_id="PL-A-1", text="minha fatura veio errada"),
             dict(base, customer="5511900090009", provider_id="PL-C-1", text="boa tarde")]
    rows = system.sql(ingest_sql("atende_ingest", mixed))
    assert [r[0] for r in rows] == ["0", "1", "2", "3"]
    assert [r[2] for r in rows] == ["t", "t", "f", "f"]
    assert rows[1][4] == "open" and rows[1][1] == rows[3][1]
    assert rows[2][1] == str(ids[0])
    again = system.sql(ingest_sql("atende_ingest", mixed))
    assert [r[2] for r in again] == ["f"] * 4 and [r[1] for r in again] == [r[1] for r in rows]
    assert one(system, f"select customer_messages from conversations where id = {cid_a}") == "4"


def ingest_behind(system, held_sql, batch, marker):
    """Stores batch with atende_ingest while another session's open transaction (held_sql)
    holds what it needs; that transaction commits once the ingest waits for a lock. Returns
    the ingest's rows."""
    import subprocess
    from harness import BIN
    holder = subprocess.Popen([f"{BIN}/atende", "psql", "-c", system.conf, "--", "-X", "-q", "-A", "-t", "-v",
                               "ON_ERROR_STOP=1"], cwd=system.dir, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    holder.stdin.write(f"begin;\n{held_sql};\nselect 'held';\n")
    holder.stdin.flush()
    assert holder.stdout.readline().strip() == "held"
    result = []
    t = threading.Thread(target=lambda: result.append(system.sql(ingest_sql("atende_ingest", batch))))
    t.start()
    wait_for(lambda: one(system, "select count(*) from pg_stat_activity where wait_event_type = 'Lock' "
                                 f"and query like '%{marker}%'") == "1", what="the ingest waiting for a lock")
    holder.stdin.write("commit;\n")
    holder.stdin.close()
    assert holder.wait(timeout=30) == 0, holder.stderr.read()
    t.join(timeout=60)
    return result[0]


def plain_conversation(system, customer, agent, first_id):
    """A conversation of customer with one message, open and given to agent; its id."""
    base = {"company": 1, "channel": "api:fin", "customer": customer, "domain": "financeiro", "from_me": False,
            "received_at": at(400)}
    system.sql(ingest_sql("atende_ingest", [dict(base, provider_id=first_id, text="oi")]))
    cid = int(one(system, f"select id from conversations where channel = 'api:fin' and customer = '{customer}'"))
    system.sql(f"update conversations set agent_id = {agent}, status = 'open', waiting_since = null where id = {cid}")
    return cid, base


def test_a_conversation_changed_before_its_lock_goes_the_row_way(system):
    """A plain message whose conversation is resolved between the batch's look and its lock
    (another transaction holds the row) is stored the 011 way: it reopens the conversation."""
    assert add(system, 42, "ari", domains="financeiro", max_open=50).returncode == 0
    online(system, 42)
    cid, base = plain_conversation(system, "5511900090021", 42, "RC-0")
    (row,) = ingest_behind(system, f"update conversations set status = 'resolved' where id = {cid}",
                           [dict(base, provider_id="RC-1", text="voltei")], "RC-1")
    assert row[2:6] == ["t", "42", "open", "resolved"]  # stored, and it reopened the conversation
    assert one(system, f"select status from conversations where id = {cid}") == "open"
    assert one(system, f"select kind from conversation_events where conversation_id = {cid} order by id desc limit 1") == "status"


def test_a_key_stored_meanwhile_is_answered_as_a_redelivery(system):
    """A plain message whose key another transaction stores between the batch's look and its
    insert (a redelivery on another worker) is answered the 011 way, as stored before, in its
    place in the batch; the batch's other message is stored."""
    cid, base = plain_conversation(system, "5511900090022", 42, "RK-0")
    rows = ingest_behind(system, "insert into message_keys (channel, provider_id, message_id, received_at) "
                                 f"values ('api:fin', 'RK-1', 987654321, '{at(400)}')",
                         [dict(base, provider_id="RK-1", text="de novo"), dict(base, provider_id="RK-2", text="e ai")],
                         "RK-1")
    assert [r[:3] for r in rows] == [["0", "987654321", "f"], ["1", rows[1][1], "t"]]
    assert one(system, "select count(*) from messages where provider_id in ('RK-1', 'RK-2')") == "1"
    assert one(system, f"select last_message->>'provider_id' from conversations where id = {cid}") == "RK-2"


def store_sql(batch):
    """The worker's statement (atende_store, schema/023) for batch, no bot on: each row's place,
    hint id (or -), whether its hint was stored with it, the statement's time and the hint
    stored with a redelivered message (or -)."""
    body = json.dumps(batch).replace("'", "''")
    return ("select r_idx, coalesce(r_hint_id::text, '-'), r_hint_inserted, r_now, coalesce(r_hint::text, '-') "
            f"from atende_store('{body}'::jsonb, '') order by r_idx")


def test_a_rules_hint_is_stored_with_its_plain_message(system):
    """schema/023: a customer message sent with its rules hint and stored set-based is stored
    with the hint in its own transaction, never updated afterwards; the hint is the row the
    coach's finish stores for a one-message rules analysis. The hint is not stored with our
    own message, with one whose conversation was transferred to another domain, or with one
    that goes the row way (a new conversation): the worker coaches those as before."""
    assert add(system, 43, "ines", domains="financeiro", max_open=50).returncode == 0
    online(system, 43)
    cid, base = plain_conversation(system, "5511900090031", 43, "IH-0")
    moved, mbase = plain_conversation(system, "5511900090032", 43, "IH-M0")
    system.sql(f"update conversations set domain = 'suporte' where id = {moved}")
    hint = {"intent": "billing", "critical": True, "text": "Ofereca o parcelamento da fatura", "latency_ms": 2}
    batch = [dict(base, provider_id="IH-1", text="quero parcelar a fatura", rules_hint=hint),
             dict(base, provider_id="IH-2", text="ja te mando o boleto", from_me=True, rules_hint=hint),
             dict(mbase, provider_id="IH-M1", text="quero parcelar", rules_hint=hint),
             dict(base, customer="5511900090033", provider_id="IH-N1", text="oi, sou novo", rules_hint=hint)]
    rows = system.sql(store_sql(batch))
    hid = rows[0][1]
    assert hid != "-" and [r[1:3] + r[4:] for r in rows] == [[hid, "t", "-"], ["-", "f", "-"], ["-", "f", "-"],
                                                             ["-", "f", "-"]]
    mid = one(system, "select id from messages where provider_id = 'IH-1'")
    assert system.sql(f"select message_id, message_ids, provider_ids, conversation_id, agent_id, domain, intent, "
                      f"critical, text, source, latency_ms, to_jsonb(created_at) #>> '{{}}' from hints where id = {hid}") == \
        [[mid, f"{{{mid}}}", "{IH-1}", str(cid), "43", "financeiro", "billing", "t",
          "Ofereca o parcelamento da fatura", "rules", "2", rows[0][3]]]
    # one transaction: the key, the message (never updated) and the hint
    assert one(system, "select count(distinct x) from (select xmin::text x from message_keys where provider_id = 'IH-1' "
                       "union all select xmin::text from messages where provider_id = 'IH-1' "
                       f"union all select xmin::text from hints where id = {hid}) t") == "1"
    assert system.sql("select provider_id, coalesce(hint_id::text, '-'), coalesce(coaching, '-') from messages "
                      "where provider_id like 'IH-%' order by provider_id") == \
        [["IH-0", "-", "-"], ["IH-1", hid, "hinted"], ["IH-2", "-", "-"], ["IH-M0", "-", "-"], ["IH-M1", "-", "-"],
         ["IH-N1", "-", "-"]]
    # the batch again (a redelivery): nothing stored twice; the hint stored with IH-1 comes
    # back with it, for the worker to publish again
    again = system.sql(store_sql(batch))
    assert [r[1:3] for r in again] == [[hid, "f"], ["-", "f"], ["-", "f"], ["-", "f"]]
    assert json.loads(again[0][4]) == {"intent": "billing", "critical": True, "text": "Ofereca o parcelamento da fatura",
                                       "source": "rules", "agent_id": 43, "created_at": rows[0][3]}
    assert [r[4] for r in again[1:]] == ["-", "-", "-"]
    assert one(system, "select count(*) from hints where 'IH-1' = any(provider_ids)") == "1"


def test_the_worker_stores_a_lone_message_with_its_rules_hint(system):
    """Through the pipeline: a customer message alone in its batch, to a conversation idle in the
    coach with its agent online, is stored with its rules hint (one transaction), and the
    console gets the hint event as from the coach's finish, after the message's event."""
    assert add(system, 44, "otto", domains="financeiro", max_open=50).returncode == 0
    online(system, 44)
    cid = financeiro(system, "5511900090041", "IW-1", text="minha fatura veio com valor errado")
    wait_for(lambda: one(system, "select coaching from messages where provider_id = 'IW-1'"), what="IW-1 coached")
    console = system.ws(system.token(44, 1))
    try:
        console.subscribe("company:1")
        financeiro(system, "5511900090041", "IW-2", text="quero parcelar a fatura atrasada, ta cara")
        hint = console.wait(lambda f: f["type"] == "hint" and f["data"]["message_id"] == "IW-2")
        row = system.sql("select h.id, h.source, h.intent, h.agent_id, h.conversation_id, to_jsonb(h.created_at) #>> '{}', "
                         "k.xmin = h.xmin and m.xmin = h.xmin from hints h join messages m on m.id = h.message_id "
                         "join message_keys k on k.channel = m.channel and k.provider_id = m.provider_id "
                         "where m.provider_id = 'IW-2'")
        assert row == [[str(hint["data"]["hint_id"]), "rules", hint["data"]["intent"], "44", str(cid),
                        hint["data"]["created_at"], "t"]]
        assert hint["data"]["source"] == "rules" and hint["data"]["agent_id"] == 44
        frames = [f for f in console.events() if f["data"].get("message_id") == "IW-2"]
        assert [f["type"] for f in frames][:2] == ["message", "hint"]

        # the same Kafka message again, as after a worker died between the commit and the
        # broker's ack of its events: both events go out again, the hint as stored
        import subprocess
        out = subprocess.run(["kcat", "-b", f"127.0.0.1:{system.ports['kafka']}", "-C", "-t", "atende.inbound.financeiro",
                              "-o", "beginning", "-e", "-q", "-f", "%k\t%s\n"], stdout=subprocess.PIPE, text=True,
                             timeout=30).stdout
        key, value = [line.split("\t", 1) for line in out.splitlines() if '"provider_id":"IW-2"' in line][0]
        subprocess.run(["kcat", "-b", f"127.0.0.1:{system.ports['kafka']}", "-P", "-t", "atende.inbound.financeiro",
                        "-k", key], input=value, text=True, check=True, timeout=30)
        console.wait(lambda f: f["type"] == "hint" and f["data"]["message_id"] == "IW-2" and f is not hint)
        frames = [f for f in console.events() if f["data"].get("message_id") == "IW-2"]
        assert [f["type"] for f in frames] == ["message", "hint", "message", "hint"]
        assert frames[3]["data"] == hint["data"]
        assert one(system, "select count(*) from hints where 'IW-2' = any(provider_ids)") == "1"
    finally:
        console.close()
