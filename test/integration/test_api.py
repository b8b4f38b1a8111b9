"""The conversation API on the notifier (GET /v1/conversations, GET /v1/conversations/ID/messages,
POST /v1/conversations/ID/read) on a real system fed with real webhooks: filters and search, cursor
paging without gaps or repeats while messages arrive, unread counts and read markers, a history of
200 messages with the rules' hints, tenancy across two companies, and the answers to bad input."""
import datetime
import json
import re
import threading
import urllib.parse

import pytest

from harness import System, http, serve, wait_for
from test_foundation import evolution_text, jwt


@pytest.fixture(scope="module")
def system():
    s = System(name="api", extra={
        r"companies = \(\n": 'companies = (\n  { id = 2; name = "Solo"; agents = [50, 50]; },\n',
        r"channels = \(\n": 'channels = (\n  { type = "evolution"; instance = "solo"; key = "solo-key"; company = 2; '
                            'domain = "financeiro"; },\n',
    })
    yield from serve(s)


def post(system, msg_id, text, customer, name="Cliente Teste", from_me=False, company=1):
    payload = evolution_text(msg_id, text, customer=customer, from_me=from_me,
                             instance="demo" if company == 1 else "solo")
    payload["data"]["pushName"] = name
    if company == 1:
        r = system.evolution(payload)
    else:
        payload["apikey"] = "solo-key"
        r = system.evolution(payload, key="solo-key")
    assert r.status == 200, r.body


def api(system, path, token=None, method="GET", body=None, query_token=False, **params):
    if token and query_token:
        params["token"] = token
    url = system.url("notifier", path) + ("?" + urllib.parse.urlencode(params) if params else "")
    headers = {"Authorization": f"Bearer {token}"} if token and not query_token else {}
    return http(method, url, body, headers)


def stored(system, customer, n):
    wait_for(lambda: int(system.sql(f"select count(*) from messages m join conversations c on c.id = m.conversation_id "
                                    f"where c.customer = '{customer}'")[0][0]) >= n,
             what=f"{n} messages of {customer} stored")


def conv_id(system, customer):
    return int(system.sql(f"select id from conversations where customer = '{customer}'")[0][0])


def agent_of(system, customer):
    return int(system.sql(f"select agent_id from conversations where customer = '{customer}'")[0][0])


def list_all(system, token, limit=100, **params):
    """Every page of the list; returns the conversations in order."""
    out, before = [], None
    while True:
        q = dict(params, limit=limit)
        if before:
            q["before"] = before
        r = api(system, "/v1/conversations", token, **q)
        assert r.status == 200, r.body
        page = r.json()
        out += page["conversations"]
        before = page["next"]
        if not before:
            return out


def test_no_token_is_401_and_forged_is_401(system):
    r = api(system, "/v1/conversations")
    assert r.status == 401 and "token" in r.json()["error"]
    forged = jwt("not-the-secret", {"sub": "agent:1", "agent": 1, "company": 1, "role": "agent",
                                    "iat": 1, "exp": 4102444800})
    r = api(system, "/v1/conversations", forged)
    assert r.status == 401 and "token" in r.json()["error"]
    r = api(system, "/v1/conversations/1/messages", forged, query_token=True)
    assert r.status == 401


def test_unknown_path_is_404_and_wrong_method_405(system):
    t = system.token(1, 1)
    r = api(system, "/v1/nothing", t)
    assert r.status == 404 and r.json()["error"]
    r = api(system, "/v1/conversations/12/nothing", t)
    assert r.status == 404
    r = api(system, "/v1/conversations", t, method="POST", body=b"{}")
    assert r.status == 405 and "GET" in r.json()["error"]
    r = api(system, "/v1/conversations/1/messages", t, method="DELETE")
    assert r.status == 405
    r = api(system, "/v1/conversations/1/read", t)
    assert r.status == 405 and "POST" in r.json()["error"]


def test_bad_limit_cursor_and_filters_are_400_naming_the_parameter(system):
    t = system.token(1, 1)
    for path in ("/v1/conversations", "/v1/conversations/1/messages"):
        for bad in ("0", "101", "abc", "-1", "", "1e2"):
            r = api(system, path, t, limit=bad)
            assert r.status == 400 and "limit" in r.json()["error"], (path, bad, r.body)
        for bad in ("nonsense", "YzEuMTAuMjA=", "", "%%%"):
            r = api(system, path, t, before=bad)
            assert r.status == 400 and "before" in r.json()["error"], (path, bad, r.body)
    # a list's cursor is not a history's, and the other way round
    post(system, "BAD-1", "mensagem para ter um cursor", "5511970009901")
    post(system, "BAD-2", "mensagem para ter um cursor 2", "5511970009902")
    # both stored (they may land on different partitions and workers): then a page of one has a next
    stored(system, "5511970009901", 1)
    stored(system, "5511970009902", 1)
    nxt = api(system, "/v1/conversations", t, limit=1).json()["next"]
    assert nxt
    r = api(system, f"/v1/conversations/{conv_id(system, '5511970009901')}/messages", t, before=nxt)
    assert r.status == 400 and "before" in r.json()["error"]
    for name, bad in (("status", "closed"), ("agent", "someone"), ("q", "ab"), ("q", "x" * 101)):
        r = api(system, "/v1/conversations", t, **{name: bad})
        assert r.status == 400 and name in r.json()["error"], (name, r.body)
    r = api(system, f"/v1/conversations/{conv_id(system, '5511970009901')}/read", t, method="POST", body=b"[1]")
    assert r.status == 400 and "message_id" in r.json()["error"]


def test_list_filters_and_search_by_name_number_and_text(system):
    people = [("5511971110001", "Mariana Prado", "minha fatura do mês veio com um valor xilofônico"),
              ("5511971110002", "Rodrigo Nunes", "quero saber dos planos de internet"),
              ("5511971110003", "Helena Duarte", "o técnico não apareceu ontem")]
    for i, (num, name, text) in enumerate(people):
        post(system, f"FLT-{i}", text, num, name=name)
    for num, _, _ in people:
        stored(system, num, 1)
    t = system.token(1, 1, role="supervisor")

    def search(q):
        r = api(system, "/v1/conversations", t, q=q)
        assert r.status == 200, r.body
        return [c["customer"] for c in r.json()["conversations"]]

    assert search("Mariana") == ["5511971110001"]
    assert search("prado") == ["5511971110001"]            # case-insensitive
    assert search("71110002") == ["5511971110002"]          # part of the number
    assert search("xilofônico") == ["5511971110001"]        # message text
    assert search("técnico não apareceu") == ["5511971110003"]
    assert search("50%_off") == []                          # wildcards are literal
    assert set(search("711100")) == {p[0] for p in people}

    rows = list_all(system, t)
    mine = {c["customer"]: c for c in rows}
    c = mine["5511971110001"]
    assert set(c) == {"id", "customer", "name", "domain", "status", "agent_id", "last_message", "unread",
                      "waiting_since", "updated_at"}
    assert c["name"] == "Mariana Prado" and c["domain"] == "suporte" and c["status"] == "open"
    assert c["agent_id"] == agent_of(system, "5511971110001")
    assert c["last_message"]["text"] == people[0][2] and c["last_message"]["provider_id"] == "FLT-0"
    assert c["last_message"]["from_me"] is False and re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$",
                                                                c["updated_at"])
    # newest activity first, ties broken by id
    keys = [(r["updated_at"], r["id"]) for r in rows]
    assert keys == sorted(keys, reverse=True)

    # agent=me and agent=A: the agent's own; status and domain filters
    a = agent_of(system, "5511971110002")
    ta = system.token(a, 1)
    own = list_all(system, ta, agent="me")
    assert own and all(r["agent_id"] == a for r in own)
    assert "5511971110002" in {r["customer"] for r in own}
    assert [r["id"] for r in list_all(system, t, agent=str(a))] == [r["id"] for r in own]
    assert all(r["domain"] == "suporte" for r in list_all(system, t, domain="suporte"))
    assert list_all(system, t, domain="financeiro") == []   # company 2's channel is financeiro
    cid = conv_id(system, "5511971110003")
    system.sql(f"update conversations set status = 'resolved' where id = {cid}")
    try:
        assert [r["id"] for r in list_all(system, t, status="resolved")] == [cid]
        assert cid not in {r["id"] for r in list_all(system, t, status="open")}
        assert list_all(system, t, status="pending") == []
        assert [r["id"] for r in list_all(system, t, status="resolved", q="Helena")] == [cid]
    finally:
        system.sql(f"update conversations set status = 'open' where id = {cid}")


def test_list_paging_has_no_gaps_or_repeats_while_messages_arrive(system):
    base = [f"55119720{i:05d}" for i in range(40)]
    for i, num in enumerate(base):
        post(system, f"PAGE-{i}", f"primeira mensagem da conversa {i}", num)
    for num in base:
        stored(system, num, 1)
    t = system.token(1, 1, role="supervisor")
    before_paging = {r["id"] for r in list_all(system, t)}
    seen, before, page_no, touched = [], None, 0, set()
    while True:
        q = {"limit": 5}
        if before:
            q["before"] = before
        page = api(system, "/v1/conversations", t, **q).json()
        seen += [r["id"] for r in page["conversations"]]
        # between pages: new conversations, and new messages in ones not listed yet
        post(system, f"PAGE-NEW-{page_no}", "uma conversa nova durante a paginação", f"55119729{page_no:05d}")
        victim = base[(page_no * 7) % len(base)]
        post(system, f"PAGE-MORE-{page_no}", "mais uma mensagem durante a paginação", victim)
        touched.add(conv_id(system, victim))
        page_no += 1
        before = page["next"]
        if not before:
            break
    assert len(seen) == len(set(seen)), "a conversation was listed twice"
    # every conversation whose activity predates the paging and did not move meanwhile is listed
    missing = before_paging - set(seen) - touched
    assert not missing, f"gaps: {sorted(missing)}"


def test_history_of_200_messages_with_hints_oldest_first(system):
    num = "5511973000001"
    console = system.ws(system.token(1, 1, role="supervisor"))
    assert console.subscribe("company:1")["type"] == "ack"
    texts = ["minha internet caiu de novo e preciso de ajuda urgente", "quero cancelar meu plano agora",
             "a fatura deste mês veio com cobrança indevida", "quanto custa o plano de 500 mega"]
    for i in range(200):
        post(system, f"HIST-{i:03d}", f"{texts[i % 4]} (mensagem {i})", num)
    stored(system, num, 200)
    cid = conv_id(system, num)
    wait_for(lambda: int(system.sql(f"select count(*) from messages where conversation_id = {cid} "
                                    "and hint_id is null and coaching is null")[0][0]) == 0,
             timeout=60, what="every message coached")
    t = system.token(1, 1, role="supervisor")
    pages, before = [], None
    while True:
        q = {"limit": 30}
        if before:
            q["before"] = before
        r = api(system, f"/v1/conversations/{cid}/messages", t, **q)
        assert r.status == 200, r.body
        page = r.json()
        ids = [m["id"] for m in page["messages"]]
        assert ids == sorted(ids), "a page is oldest first"
        pages.append(page["messages"])
        before = page["next"]
        if not before:
            break
    assert [len(p) for p in pages] == [30] * 6 + [20]
    msgs = [m for p in reversed(pages) for m in p]
    assert [m["provider_id"] for m in msgs] == [f"HIST-{i:03d}" for i in range(200)]
    m0 = msgs[0]
    assert set(m0) == {"id", "provider_id", "from_me", "by", "kind", "text", "transcript", "media", "status",
                       "status_error", "sent_at", "hint"}
    assert m0["by"] == "customer" and m0["from_me"] is False and m0["kind"] == "text" and m0["status"] is None
    assert m0["transcript"] is None and m0["media"] is None

    hinted = [m for m in msgs if m["hint"]]
    db_hints = system.sql(f"select h.id from hints h where h.conversation_id = {cid}")
    assert len(hinted) == len(db_hints) > 0, "each hint once, on the message it answers"
    for m in hinted:
        assert m["hint"]["message_id"] == m["provider_id"] and m["provider_id"] in m["hint"]["message_ids"]
    # the same fields and values as the hint event on the WebSocket
    last = hinted[-1]["hint"]
    ev = console.wait(lambda f: f["type"] == "hint" and f["data"]["hint_id"] == last["hint_id"])["data"]
    assert set(ev) <= set(last) | {"received_at"}
    for k in ("message_ids", "message_id", "hint_id", "conversation_id", "conversation_key", "agent_id",
              "company_id", "domain", "intent", "critical", "text", "source", "from_cache", "model"):
        assert last[k] == ev[k], k
    # the same instant; the API writes atende's format (the worker's event passes PostgreSQL's on)
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", last["created_at"])
    ms = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1000
    assert int(ms(last["created_at"])) == int(ms(ev["created_at"]))
    console.close()


def test_history_paging_has_no_gaps_or_repeats_while_messages_arrive(system):
    num = "5511973000002"
    for i in range(50):
        post(system, f"HP-{i:03d}", f"mensagem de histórico {i}", num)
    stored(system, num, 50)
    cid = conv_id(system, num)
    t = system.token(1, 1, role="supervisor")
    got, before, i = [], None, 0
    while True:
        q = {"limit": 7}
        if before:
            q["before"] = before
        page = api(system, f"/v1/conversations/{cid}/messages", t, **q).json()
        got = [m["provider_id"] for m in page["messages"]] + got
        post(system, f"HP-NEW-{i}", f"chegou durante a paginação {i}", num)
        i += 1
        before = page["next"]
        if not before:
            break
    assert got == [f"HP-{i:03d}" for i in range(50)]


def test_unread_counts_and_read_markers(system):
    num = "5511974000001"
    for i in range(3):
        post(system, f"UNR-{i}", f"mensagem não lida {i}", num)
    stored(system, num, 3)
    cid, a = conv_id(system, num), agent_of(system, num)
    ta, sup = system.token(a, 1), system.token(a % 5 + 1, 1, role="supervisor")  # markers are per agent id

    def unread(token):
        rows = [r for r in list_all(system, token, q=num) if r["id"] == cid]
        return rows[0]["unread"]

    assert unread(ta) == 3
    # an older page does not mark read; the first page does
    r = api(system, f"/v1/conversations/{cid}/messages", ta, limit=1)
    older = r.json()["next"]
    assert unread(ta) == 0
    post(system, "UNR-3", "mais uma", num)
    post(system, "UNR-ME", "resposta do agente pelo celular", num, from_me=True)
    post(system, "UNR-4", "e outra", num)
    stored(system, num, 6)
    assert unread(ta) == 2                      # the agent's own message is not unread
    assert api(system, f"/v1/conversations/{cid}/messages", ta, before=older).status == 200
    assert unread(ta) == 2
    # the supervisor's reading is the supervisor's
    assert unread(sup) == 5
    api(system, f"/v1/conversations/{cid}/messages", sup)
    assert unread(sup) == 0 and unread(ta) == 2
    # read up to a message, then all; a marker never moves back
    msgs = api(system, f"/v1/conversations/{cid}/messages", sup).json()["messages"]
    ids = {m["provider_id"]: m["id"] for m in msgs}
    r = api(system, f"/v1/conversations/{cid}/read", ta, method="POST",
            body=json.dumps({"message_id": ids["UNR-3"]}).encode())
    assert r.status == 200 and r.json() == {"conversation_id": cid, "last_read_message_id": ids["UNR-3"], "unread": 1}
    r = api(system, f"/v1/conversations/{cid}/read", ta, method="POST", body=json.dumps({"message_id": ids["UNR-0"]}).encode())
    assert r.json()["last_read_message_id"] == ids["UNR-3"] and r.json()["unread"] == 1
    r = api(system, f"/v1/conversations/{cid}/read", ta, method="POST")
    assert r.status == 200 and r.json()["unread"] == 0 and r.json()["last_read_message_id"] == ids["UNR-4"]
    assert unread(ta) == 0
    # an agent's phone echo: by the conversation's agent (INTERFACE.md: customer, agent:A or bot), sent
    me = [m for m in msgs if m["provider_id"] == "UNR-ME"][0]
    assert me["from_me"] is True and me["by"] == f"agent:{a}" and me["status"] == "sent"


def test_tenancy_across_companies(system):
    post(system, "TEN-1", "mensagem da empresa dois", "5511975000001", company=2)
    post(system, "TEN-2", "mensagem da empresa um", "5511975000002")
    stored(system, "5511975000001", 1)
    stored(system, "5511975000002", 1)
    c2, c1 = conv_id(system, "5511975000001"), conv_id(system, "5511975000002")
    t2 = system.token(50, 2)
    rows = list_all(system, t2)
    assert [r["id"] for r in rows] == [c2]
    assert api(system, f"/v1/conversations/{c2}/messages", t2).status == 200

    # another company's conversation answers exactly as one that does not exist: 404
    missing = int(system.sql("select coalesce(max(id), 0) + 1000 from conversations")[0][0])
    for token, other in ((t2, c1), (system.token(1, 1), c2), (system.token(1, 1, role="supervisor"), c2)):
        for cid in (other, missing):
            for method, path in (("GET", "messages"), ("POST", "read")):
                r = api(system, f"/v1/conversations/{cid}/{path}", token, method=method)
                assert r.status == 404 and r.json() == {"error": f"no conversation {cid}"}, (cid, path, r.body)
    assert int(system.sql(f"select count(*) from conversation_reads where conversation_id = {c1} "
                          "and agent_id = 50")[0][0]) == 0

    # a supervisor sees everything of its company, never another's
    sup = list_all(system, system.token(1, 1, role="supervisor"))
    ids = {r["id"] for r in sup}
    assert ids == {int(x[0]) for x in system.sql("select id from conversations where company_id = 1")}
    assert c2 not in ids
    # an agent lists another agent's conversations only as a supervisor (as on the WebSocket)
    r = api(system, "/v1/conversations", system.token(1, 1), agent="2")
    assert r.status == 403 and "agent" in r.json()["error"]
    assert all(r["agent_id"] == 2 for r in list_all(system, system.token(1, 1, role="supervisor"), agent="2"))
    # a company-2 filter on an agent of company 1 finds nothing of company 1
    assert list_all(system, system.token(50, 2, role="supervisor"), agent="1") == []


def test_concurrent_requests_are_answered(system):
    """Many requests in flight on the notifier's pipelined connections at once."""
    t = system.token(1, 1, role="supervisor")
    cid = conv_id(system, "5511973000001")
    errors = []

    def worker():
        for _ in range(10):
            for path in ("/v1/conversations", f"/v1/conversations/{cid}/messages"):
                r = api(system, path, t, limit=20)
                if r.status != 200:
                    errors.append((path, r.status, r.body))

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors[:3]


def test_the_api_has_its_own_named_connections(system):
    """notifier.db_connections connections, named, with the startup option (else they would not connect)."""
    rows = system.sql("select count(*) from pg_stat_activity where application_name = 'atende-notifier-api'")
    assert int(rows[0][0]) == 2
    r = http("GET", system.url("notifier", "/healthz"))
    assert r.status == 200 and r.json() == {"ok": True}
