"""The whole path on a real system: webhook -> Kafka -> worker -> PostgreSQL -> events ->
notifier -> WebSocket console, plus the ingress's answers and the notifier's tenancy."""
import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import time

import pytest
import websocket

from harness import fixture, http, wait_for

SAMPLE_ID = "3EB0C767D26A1D2A5A3A"


def evolution_text(msg_id, text, customer="5511999990009", from_me=False, instance="demo"):
    return {"event": "messages.upsert", "instance": instance, "apikey": "demo-evolution-key",
            "data": {"key": {"remoteJid": f"{customer}@s.whatsapp.net", "fromMe": from_me, "id": msg_id},
                     "pushName": "Cliente Teste", "message": {"conversation": text},
                     "messageType": "conversation", "messageTimestamp": int(time.time())}}


def jwt(secret, payload):
    enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    head = enc(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = enc(json.dumps(payload).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{enc(sig)}"


def count(system, sql):
    return int(system.sql(sql)[0][0])


def test_sample_is_stored_once_and_hinted_live(system):
    console = system.ws(system.token(1, 1))
    assert console.subscribe("company:1")["type"] == "ack"
    r = system.evolution(fixture("evolution-messages-upsert-text.json"))
    assert r.status == 200 and r.json() == {"accepted": 1, "duplicates": 0}

    hint = console.wait(lambda f: f["type"] == "hint" and f["data"]["message_id"] == SAMPLE_ID)
    d = hint["data"]
    assert hint["channel"] == "company:1" and isinstance(hint["seq"], int) and isinstance(hint["epoch"], int)
    assert d["message_ids"] == [SAMPLE_ID]
    assert d["intent"] == "outage" and d["source"] == "rules" and d["from_cache"] is False
    assert d["company_id"] == 1 and d["domain"] == "suporte" and d["text"]
    assert isinstance(d["conversation_id"], int) and d["created_at"]
    msg = console.wait(lambda f: f["type"] == "message" and f["data"]["message_id"] == SAMPLE_ID)
    assert msg["data"]["text"].startswith("Oi, minha internet caiu")
    assert msg["seq"] < hint["seq"]

    again = system.evolution(fixture("evolution-messages-upsert-text.json"))
    assert again.status == 200 and again.json() == {"accepted": 0, "duplicates": 1}
    assert count(system, f"select count(*) from messages where provider_id = '{SAMPLE_ID}'") == 1
    assert count(system, "select count(*) from hints h join messages m on m.id = h.message_id "
                         f"where m.provider_id = '{SAMPLE_ID}'") == 1
    row = system.sql(f"select m.hint_id = h.id, m.from_me, m.sender_name from messages m "
                     f"join hints h on h.message_id = m.id where m.provider_id = '{SAMPLE_ID}'")[0]
    assert row == ["t", "f", "Maria Souza"]
    console.close()


def test_redelivery_after_ingress_restart_is_stored_once(system):
    """The ingress forgets its dedup window on restart; the worker's unique key still holds."""
    payload = evolution_text("REDELIVER-1", "minha fatura veio com valor errado, pode verificar?")
    assert system.evolution(payload).json() == {"accepted": 1, "duplicates": 0}
    wait_for(lambda: count(system, "select count(*) from hints h join messages m on m.id = h.message_id "
                                   "where m.provider_id = 'REDELIVER-1'") == 1, what="the first copy's hint")
    status = json.loads(system.cli("status", "--json").stdout)
    ingress = [p for p in status["processes"] if p["role"] == "ingress"][0]
    os.kill(ingress["pid"], signal.SIGKILL)
    wait_for(lambda: system.healthy() and
             [p for p in json.loads(system.cli("status", "--json", check=False).stdout or "{}").get("processes", [])
              if p["role"] == "ingress" and p["up"] and p["pid"] != ingress["pid"]],
             what="the ingress to be restarted")
    assert system.evolution(payload).json() == {"accepted": 1, "duplicates": 0}  # produced again
    console = system.ws(system.token(1, 1))
    console.subscribe("company:1")
    marker = evolution_text("REDELIVER-MARK", "quero saber os planos de 300 mega")
    assert system.evolution(marker).status == 200
    console.wait(lambda f: f["type"] == "hint" and f["data"]["message_id"] == "REDELIVER-MARK")
    assert count(system, "select count(*) from messages where provider_id = 'REDELIVER-1'") == 1
    assert count(system, "select count(*) from hints h join messages m on m.id = h.message_id "
                         "where m.provider_id = 'REDELIVER-1'") == 1
    assert not [f for f in console.events("hint") if f["data"]["message_id"] == "REDELIVER-1"]
    console.close()


def test_agent_messages_and_short_messages_get_no_hint(system):
    console = system.ws(system.token(1, 1))
    console.subscribe("company:1")
    assert system.evolution(fixture("evolution-messages-upsert-fromme.json")).status == 200
    assert system.evolution(evolution_text("SHORT-1", "ok")).status == 200
    assert system.evolution(evolution_text("LONG-1", "quero cancelar meu contrato")).status == 200
    console.wait(lambda f: f["type"] == "hint" and f["data"]["message_id"] == "LONG-1")
    for mid in ("3EB0FFEE00112233AA44", "SHORT-1"):
        console.wait(lambda f: f["type"] == "message" and f["data"]["message_id"] == mid)
        assert count(system, f"select count(*) from messages where provider_id = '{mid}' and hint_id is null") == 1
        assert not [f for f in console.events("hint") if mid in f["data"]["message_ids"]]
    fromme = [f for f in console.events("message") if f["data"]["message_id"] == "3EB0FFEE00112233AA44"][0]
    assert fromme["data"]["from_me"] is True
    console.close()


def test_ingress_error_table(system):
    def evo(body, **kw):
        return system.post("/webhooks/evolution", body, **kw)

    cases = [
        (evo(b"not json at all", headers={"apikey": "demo-evolution-key"}), 400, "JSON"),
        (evo(b'{"event":"messages.upsert","instance":"demo"', headers={"apikey": "demo-evolution-key"}), 400, "truncated"),
        (evo(evolution_text("E1", "olá tudo bem com vocês"), headers={"apikey": "wrong"}), 401, "apikey"),
        (evo({"event": "messages.upsert", "instance": "demo"}), 401, "apikey"),
        (evo({"event": "messages.upsert", "instance": "ghost", "apikey": "x"}), 404, "ghost"),
        (evo(b"{}" + b" " * (1024 * 1024 + 10)), 413, ""),
        (evo(b"{}", content_type="text/plain"), 415, "application/json"),
        (evo({"event": "messages.upsert", "instance": "demo", "apikey": "demo-evolution-key",
              "data": {"key": {"remoteJid": "1@s.whatsapp.net"}, "message": {"conversation": "x"}}}), 422, "data.key.id"),
    ]
    for r, status, word in cases:
        assert r.status == status, (status, r.body)
        assert word in r.json()["error"], (status, r.body)
    r = system.evolution({"event": "chats.update", "instance": "demo", "apikey": "demo-evolution-key", "data": {}})
    assert r.status == 200 and r.json() == {"ignored": True}
    assert http("GET", system.url("ingress", "/webhooks/evolution")).status == 405
    assert http("GET", system.url("ingress", "/nope")).status == 404


def test_message_times_out_of_range_are_refused_by_name(system):
    """A timestamp decades away (1e300 once formatted uninitialised memory; 1e17 sent the message
    to the DLQ) is refused with 422 naming the field, and nothing of that body is stored."""
    def evo_at(mid, ts):
        body = evolution_text(mid, "minha fatura veio com valor errado")
        body["data"]["messageTimestamp"] = ts
        return system.evolution(body)

    def api_at(mid, ts):
        return system.post("/v1/messages", {"id": mid, "customer": "5511900001111", "text": "oi", "timestamp": ts},
                           headers={"Authorization": "Bearer demo-api-key"})

    for mid, r, field in [("TS-1", evo_at("TS-1", 1e300), "data.messageTimestamp"),
                          ("TS-2", evo_at("TS-2", 1e17), "data.messageTimestamp"),
                          ("TS-3", evo_at("TS-3", -5), "data.messageTimestamp"),
                          ("TS-4", evo_at("TS-4", "nan"), "data.messageTimestamp"),
                          ("TS-5", api_at("TS-5", 1e300), "timestamp")]:
        assert r.status == 422 and field in r.json()["error"] and "out of range" in r.json()["error"], (mid, r.body)
    # seconds and milliseconds of today are both fine
    assert evo_at("TS-6", int(time.time())).status == 200
    assert evo_at("TS-7", int(time.time() * 1000)).status == 200
    wait_for(lambda: count(system, "select count(*) from messages where provider_id in ('TS-6', 'TS-7')") == 2,
             what="the two good messages")
    assert count(system, "select count(*) from messages where provider_id like 'TS-%' and provider_id not in ('TS-6', 'TS-7')") == 0
    assert count(system, "select count(*) from dlq where provider_id like 'TS-%'") == 0

def test_cloud_api_batch_with_signature(system):
    body = fixture("whatsapp-cloud-batch.json")
    sig = "sha256=" + hmac.new(b"demo-app-secret", body, hashlib.sha256).hexdigest()
    r = system.post("/webhooks/whatsapp", body, {"X-Hub-Signature-256": sig})
    assert r.status == 200 and r.json() == {"accepted": 3, "duplicates": 0}
    bad = "sha256=" + hmac.new(b"other-secret", body, hashlib.sha256).hexdigest()
    assert system.post("/webhooks/whatsapp", body, {"X-Hub-Signature-256": bad}).status == 401
    ok = http("GET", system.url("ingress", "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=demo-verify-token&hub.challenge=4242"))
    assert ok.status == 200 and ok.body == b"4242"
    no = http("GET", system.url("ingress", "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1"))
    assert no.status == 403
    wait_for(lambda: count(system, "select count(*) from messages where provider_id like 'wamid.BATCH%'") == 3,
             what="the batch to be stored")
    assert system.sql("select customer_name from conversations where customer = '5521988776655'") == [["Ana Lima"]]


def test_tokens_are_checked_at_the_handshake(system):
    base = f"ws://127.0.0.1:{system.ports['notifier']}/ws"
    secret = "demo-secret-change-me-in-production"
    now = int(time.time())
    good = {"sub": "agent:1", "agent": 1, "company": 1, "role": "agent", "iat": now, "exp": now + 60}
    assert system.ws(jwt(secret, good)).subscribe("agent:1")["type"] == "ack"  # our tokens interoperate
    for token in (jwt("forged-secret-xxxxxxxx", good), jwt(secret, dict(good, exp=now - 5)), ""):
        with pytest.raises(websocket.WebSocketBadStatusException) as e:
            websocket.create_connection(f"{base}?token={token}" if token else base, timeout=5)
        assert e.value.status_code == 401


def test_tenancy_of_channels(system):
    agent1 = system.ws(system.token(1, 1))
    assert agent1.subscribe("agent:1")["type"] == "ack"
    assert agent1.subscribe("agent:2")["type"] == "error"
    assert agent1.subscribe("company:2")["type"] == "error"
    assert agent1.subscribe("presence:2")["type"] == "error"
    sup = system.ws(system.token(9, 1, role="supervisor"))
    assert sup.subscribe("agent:3")["type"] == "ack"
    other = system.ws(system.token(7, 2))
    assert other.subscribe("company:1")["type"] == "error"
    assert other.subscribe("company:2")["type"] == "ack"
    assert other.subscribe("agent:7")["type"] == "ack"
    watcher = system.ws(system.token(1, 1))
    watcher.subscribe("company:1")
    assert system.evolution(evolution_text("TENANT-1", "fui cobrado duas vezes este mês")).status == 200
    watcher.wait(lambda f: f["type"] == "hint" and f["data"]["message_id"] == "TENANT-1")
    # the company-1 hint has been delivered; company 2's socket holds nothing of it
    other.sock.settimeout(0.5)
    with pytest.raises(websocket.WebSocketTimeoutException):
        other.recv_one(0.5)
    assert other.events() == []
    for c in (agent1, sup, other, watcher):
        c.close()


def test_resume_gives_exactly_the_missed_events(system):
    console = system.ws(system.token(1, 1))
    ack = console.subscribe("company:1")
    epoch = ack["epoch"]
    assert system.evolution(evolution_text("RESUME-0", "o roteador está piscando luz vermelha")).status == 200
    h0 = console.wait(lambda f: f["type"] == "hint" and f["data"]["message_id"] == "RESUME-0")
    last = max(f["seq"] for f in console.events(channel="company:1"))
    console.close()
    for i in (1, 2):  # two customers: the smart buffer would group one customer's quick messages
        assert system.evolution(evolution_text(f"RESUME-{i}", "minha internet caiu desde ontem",
                                               customer=f"55119777700{i:02d}")).status == 200
    wait_for(lambda: count(system, "select count(*) from hints h join messages m on m.id = h.message_id "
                                   "where m.provider_id in ('RESUME-1','RESUME-2')") == 2, what="both hints stored")
    back = system.ws(system.token(1, 1))
    assert back.subscribe("company:1", since=last, epoch=epoch)["type"] == "ack"
    for mid in ("RESUME-1", "RESUME-2"):  # replayed, or live if published after the replay
        back.wait(lambda f: f["type"] == "hint" and f["data"]["message_id"] == mid)
    got = back.events(channel="company:1")
    ids = [(f["type"], f["data"]["message_id"]) for f in got]
    assert sorted(ids) == [("hint", "RESUME-1"), ("hint", "RESUME-2"), ("message", "RESUME-1"), ("message", "RESUME-2")]
    for mid in ("RESUME-1", "RESUME-2"):  # each message before its hint
        assert ids.index(("message", mid)) < ids.index(("hint", mid))
    seqs = [f["seq"] for f in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and min(seqs) > last >= h0["seq"]
    stale = system.ws(system.token(1, 1))
    stale.subscribe("company:1", since=last, epoch=epoch + 1)
    reset = stale.wait(lambda f: f["type"] == "reset")
    assert reset["channel"] == "company:1" and reset["epoch"] == epoch
    back.close(), stale.close()


def test_console_page_health_and_kcat(system):
    page = http("GET", system.url("notifier", "/"))
    assert page.status == 200 and b"<html" in page.body.lower()
    for which in ("ingress", "notifier", "metrics"):
        assert http("GET", system.url(which, "/healthz")).status == 200
    out = subprocess.run(["kcat", "-b", f"127.0.0.1:{system.ports['kafka']}", "-L"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=30).stdout
    for t in ("atende.inbound.suporte", "atende.inbound.financeiro", "atende.events", "atende.dlq", "atende.outbound"):
        assert f'topic "{t}"' in out, out
    metrics = http("GET", system.url("metrics", "/metrics")).body.decode()
    assert 'atende_process_up{process="worker",index="1"} 1' in metrics
    # one target: every process's families, labelled by process (exported once a second)
    merged = wait_for(lambda: (lambda t: t if 'atende_worker_messages_total{process="worker"' in t and
                               'route="/webhooks/evolution",status="200"}' in t else None)(
        http("GET", system.url("metrics", "/metrics")).body.decode()), what="merged metrics")
    assert 'atende_ingress_requests_total{process="ingress",index="0",route="/webhooks/evolution",status="200"}' in merged
    assert merged.count("# TYPE atende_worker_messages_total counter") == 1
    assert 'atende_worker_batch_size_bucket{process="worker"' in merged
    own = http("GET", system.url("ingress", "/metrics")).body.decode()
    assert "atende_ingress_messages_accepted_total " in own


def nice_of(pid):
    """The nice value of a process (field 19 of /proc/<pid>/stat)."""
    return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[16])


def test_webhook_answers_have_cpu_priority_over_storage(system):
    # workers.priority and postgres.priority (10 in deploy/atende.conf): the ingress, the
    # notifier and the broker keep nice 0; the workers and the embedded PostgreSQL yield.
    status = json.loads(system.cli("status", "--json").stdout)
    by_role = {}
    for p in status["processes"]:
        by_role.setdefault(p["role"], []).append(p["pid"])
    assert [nice_of(p) for p in by_role["worker"]] == [10, 10]
    assert nice_of(by_role["ingress"][0]) == 0 and nice_of(by_role["notifier"][0]) == 0
    postmaster = by_role["postgres"][0]
    assert nice_of(postmaster) == 10
    # every backend is its own session, hence its own autogroup: the supervisor gives that
    # group the priority too, or the backend would compete as a whole session
    backends = [int(d) for d in os.listdir("/proc") if d.isdigit() and os.path.exists(f"/proc/{d}/stat")
                and int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1]) == postmaster]
    assert backends, "the embedded PostgreSQL has child processes"
    if os.path.exists(f"/proc/{backends[0]}/autogroup"):
        def all_reniced():
            groups = []
            for b in backends:
                try:
                    groups.append(open(f"/proc/{b}/autogroup").read().split())
                except OSError:  # a backend that ended meanwhile
                    pass
            return groups and all(g[-1] == "10" for g in groups)
        wait_for(all_reniced, timeout=10, what="every backend's autogroup at nice 10")


def test_crashed_worker_is_restarted(system):
    status = json.loads(system.cli("status", "--json").stdout)
    worker = [p for p in status["processes"] if p["role"] == "worker" and p["index"] == 0][0]
    os.kill(worker["pid"], signal.SIGKILL)

    def restarted():
        s = json.loads(system.cli("status", "--json", check=False).stdout or "{}")
        w = [p for p in s.get("processes", []) if p["role"] == "worker" and p["index"] == 0]
        return w and w[0]["up"] and w[0]["restarts"] >= 1 and w[0]["pid"] != worker["pid"]

    wait_for(restarted, what="worker 0 to be restarted")
    assert "killed by signal 9" in system.log_text()
    console = system.ws(system.token(1, 1))
    console.subscribe("company:1")
    assert system.evolution(evolution_text("AFTER-CRASH", "vou mudar de operadora, quero cancelar")).status == 200
    console.wait(lambda f: f["type"] == "hint" and f["data"]["message_id"] == "AFTER-CRASH", timeout=30)
    console.close()


def test_poison_messages_go_to_the_dead_letter_queue(system):
    def kcat_produce(key, payload):
        subprocess.run(["kcat", "-b", f"127.0.0.1:{system.ports['kafka']}", "-P", "-t", "atende.inbound.suporte",
                        "-k", key], input=payload, text=True, check=True, timeout=30)

    key = "evolution:demo:5511900009999"
    kcat_produce(key, "this is not json {")
    # the shape of a canonical event, with a value PostgreSQL refuses
    bad = {"v": 1, "type": "message", "company": 1, "channel": "evolution:demo", "domain": "suporte",
           "conversation": key, "customer": "5511900009999", "provider_id": "POISON-TS", "from_me": False,
           "kind": "text", "text": "minha internet caiu desde ontem", "sender_name": None, "sent_at": None,
           "received_at": "not a time"}
    kcat_produce(key, json.dumps(bad))
    # the partition moves on: a good message with the same key (same partition) is stored after them
    assert system.evolution(evolution_text("AFTER-POISON", "minha internet caiu desde ontem",
                                           customer="5511900009999")).status == 200
    wait_for(lambda: count(system, "select count(*) from messages where provider_id = 'AFTER-POISON'") == 1,
             what="the message after the poison ones")
    wait_for(lambda: len(system.sql("select id from dlq")) == 2, what="both dead letters")
    rows = system.sql("select error, attempts, topic, coalesce(provider_id, '-') from dlq order by id")
    assert rows[0][0] == "not JSON" and rows[0][1] == "1" and rows[0][2] == "atende.inbound.suporte"
    assert "not a time" in rows[1][0] and rows[1][1] == "3" and rows[1][3] == "POISON-TS"
    def dlq_headers():
        out = subprocess.run(["kcat", "-b", f"127.0.0.1:{system.ports['kafka']}", "-C", "-t", "atende.dlq", "-o",
                              "beginning", "-e", "-q", "-f", "%h\n"], stdout=subprocess.PIPE, text=True, timeout=30).stdout
        return out if out.count("error=") == 2 else None

    out = wait_for(dlq_headers, what="both dead letters on atende.dlq")
    assert "error=not JSON" in out and "attempts=3" in out and "topic=atende.inbound.suporte" in out
    metrics = http("GET", system.url("metrics", "/metrics")).body.decode()
    assert "atende_worker_dead_letters_total" in metrics
