"""Media messages on one real system with a fake gateway (issue 17): an Evolution voice note
inline (base64 in the webhook) and fetched (getBase64FromMediaMessage), a Cloud API image
(media id -> url -> bytes, both with the bearer token), a PDF; each stored once, as one
content-addressed file, its type decided from the bytes; GET /v1/media/ID with Range, only to
its company; an oversized file (too_large, never retried); the gateway's media endpoint
failing then succeeding, and failing for good (failed, with the error in the history); a voice
note transcribed by the fake AI, its transcript stored, sent to the console and coached. And
the other way: an agent uploads an image or a document (POST /v1/conversations/ID/media) and
sends it with a reply op; it reaches the gateway's media endpoint exactly once (Evolution
sendMedia with the base64, Cloud API upload then message), and shows in the history."""
import base64
import hashlib
import hmac
import json
import os
import time
import urllib.parse

import pytest

from fakeai import FakeAI
from fakegateway import FakeGateway
from harness import FIXTURES, System, http, serve, wait_for

VOICE = open(os.path.join(FIXTURES, "media", "voice.ogg"), "rb").read()
PNG = open(os.path.join(FIXTURES, "media", "image.png"), "rb").read()
PDF = open(os.path.join(FIXTURES, "media", "doc.pdf"), "rb").read()
MAX_DOC = 4096
MAX_UPLOAD = 200000


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
    s = System(name="media", extra={
        r'provider = "rules";': 'provider = "openai";',
        r'base_url = "";': f'base_url = "{ai.base_url}";',
        r'url = "http://127.0.0.1:8090";': f'url = "{gateway.url}";',
        r'access_token = "";': f'access_token = "{gateway.bearer}"; url = "{gateway.url}/";',
        r'(\{ id = 1; name = "Demo Telecom"; agents = \[1, 5\]; \})':
            r'\1,\n  { id = 2; name = "Other Co"; agents = [6, 8]; }',
        r"channels = \(\n": 'channels = (\n  { type = "evolution"; instance = "solo"; key = "solo-key"; company = 2; '
                            f'domain = "financeiro"; url = "{gateway.url}"; }},\n',
        r"max_document_bytes = 33554432;": f"max_document_bytes = {MAX_DOC};",
        r"fetch_retries = 3;": "fetch_retries = 2;",
        r"fetch_retry_base_ms = 500;": "fetch_retry_base_ms = 100;",
        r"max_upload_bytes = 16777216;": f"max_upload_bytes = {MAX_UPLOAD};",
        r"retry_base_ms = 1000;": "retry_base_ms = 200;",
    })
    yield from serve(s)


def evolution_media(msg_id, part, body, customer="5511977770001", inline=None, instance="demo"):
    message = {part: body}
    if inline is not None:
        message["base64"] = inline
    return {"event": "messages.upsert", "instance": instance,
            "data": {"key": {"remoteJid": f"{customer}@s.whatsapp.net", "fromMe": False, "id": msg_id},
                     "pushName": "Cliente Mídia", "message": message, "messageType": part,
                     "messageTimestamp": int(time.time())}}


def voice_part(size=len(VOICE)):
    return {"url": "https://mmg.whatsapp.net/v/t62.7117-24/fake.enc", "mimetype": "audio/ogg; codecs=opus",
            "seconds": 2, "ptt": True, "fileLength": str(size)}


def media_row(system, provider_id, wait_status=True):
    q = ("select md.id, md.status, md.mime, md.size, md.sha256, coalesce(md.name, ''), coalesce(md.error, ''), "
         "md.attempts, coalesce(md.duration_ms, 0), coalesce(md.width, 0), coalesce(md.height, 0) "
         f"from media md join messages m on m.id = md.message_id where m.provider_id = '{provider_id}'")
    if wait_status:
        rows = wait_for(lambda: [r for r in system.sql(q) if r[1] != "pending"], what=f"media of {provider_id} decided")
    else:
        rows = system.sql(q)
    assert len(rows) == 1, rows
    r = rows[0]
    return {"id": int(r[0]), "status": r[1], "mime": r[2], "size": int(r[3]) if r[3] else None, "sha256": r[4],
            "name": r[5], "error": r[6], "attempts": int(r[7]), "duration_ms": int(r[8]), "width": int(r[9]),
            "height": int(r[10])}


def media_file(system, sha):
    return os.path.join(system.dir, "var", "media", sha[:2], sha)


def get_media(system, media_id, token, headers=None, query_token=False):
    url = system.url("notifier", f"/v1/media/{media_id}")
    h = dict(headers or {})
    if query_token:
        url += "?" + urllib.parse.urlencode({"token": token})
    else:
        h["Authorization"] = f"Bearer {token}"
    return http("GET", url, None, h)


def test_voice_note_inline_is_stored_once_typed_from_its_bytes(system):
    inline = base64.b64encode(VOICE).decode()
    payload = evolution_media("VOICE-INLINE-1", "audioMessage", voice_part(), inline=inline)
    r = system.evolution(payload)
    assert r.status == 200, r.body
    m = media_row(system, "VOICE-INLINE-1")
    assert m["status"] == "stored" and m["mime"] == "audio/ogg" and m["size"] == len(VOICE)
    assert m["sha256"] == hashlib.sha256(VOICE).hexdigest()
    assert 1900 <= m["duration_ms"] <= 2100, m
    with open(media_file(system, m["sha256"]), "rb") as f:
        assert f.read() == VOICE
    # redelivered: answered as a duplicate, nothing stored again
    assert system.evolution(payload).status == 200
    # the same bytes in another message: a row of its own, the one file
    assert system.evolution(evolution_media("VOICE-INLINE-2", "audioMessage", voice_part(), inline=inline)).status == 200
    m2 = media_row(system, "VOICE-INLINE-2")
    assert m2["sha256"] == m["sha256"] and m2["id"] != m["id"]
    assert system.sql("select count(*) from media md join messages m on m.id = md.message_id "
                      "where m.provider_id = 'VOICE-INLINE-1'") == [["1"]]
    files = [f for d in os.listdir(os.path.join(system.dir, "var", "media"))
             for f in os.listdir(os.path.join(system.dir, "var", "media", d))]
    assert files.count(m["sha256"]) == 1 and not [f for f in files if ".tmp." in f]


def test_bad_inline_base64_is_422_naming_the_field(system):
    r = system.evolution(evolution_media("VOICE-BAD-B64", "audioMessage", voice_part(), inline="not base64 at all!"))
    assert r.status == 422 and r.json()["error"] == "data.message.base64 is not base64", r.body
    assert system.sql("select count(*) from messages where provider_id = 'VOICE-BAD-B64'") == [["0"]]


def test_voice_note_fetched_from_evolution(system, gateway):
    gateway.add_media("VOICE-FETCH-1", VOICE, "audio/ogg; codecs=opus")
    assert system.evolution(evolution_media("VOICE-FETCH-1", "audioMessage", voice_part())).status == 200
    m = media_row(system, "VOICE-FETCH-1")
    assert m["status"] == "stored" and m["mime"] == "audio/ogg" and m["attempts"] == 1
    reqs = gateway.media_requests("VOICE-FETCH-1")
    assert len(reqs) == 1 and reqs[0]["path"] == "/chat/getBase64FromMediaMessage/demo"
    assert reqs[0]["headers"].get("apikey") == "demo-evolution-key"


def cloud_image(msg_id, media_id, customer="5511977770002"):
    body = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "551100000000",
                                                      "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": customer}],
        "messages": [{"from": customer, "id": msg_id, "timestamp": str(int(time.time())), "type": "image",
                      "image": {"caption": "a luz do roteador", "mime_type": "image/jpeg", "sha256": "x",
                                "id": media_id}}]}}]}]}
    raw = json.dumps(body).encode()
    return raw, "sha256=" + hmac.new(b"demo-app-secret", raw, hashlib.sha256).hexdigest()


def test_cloud_image_two_step_fetch_with_bearer(system, gateway):
    gateway.add_media("CLOUD-MEDIA-1", PNG, "image/jpeg")  # the gateway's word is wrong: the bytes say png
    raw, sig = cloud_image("wamid.IMG1", "CLOUD-MEDIA-1")
    assert system.post("/webhooks/whatsapp", raw, {"X-Hub-Signature-256": sig}).status == 200
    m = media_row(system, "wamid.IMG1")
    assert m["status"] == "stored" and m["mime"] == "image/png" and (m["width"], m["height"]) == (8, 6)
    reqs = gateway.media_requests("CLOUD-MEDIA-1")
    assert [r["path"] for r in reqs] == ["/v21.0/CLOUD-MEDIA-1", "/files/CLOUD-MEDIA-1"]
    assert all(r["headers"].get("Authorization") == f"Bearer {gateway.bearer}" for r in reqs)


def test_pdf_served_as_attachment_only_to_its_company(system, gateway):
    gateway.add_media("DOC-1", PDF, "application/pdf")
    doc = {"url": "https://mmg.whatsapp.net/d/fake.enc", "mimetype": "application/pdf",
           "fileName": "conta de luz\"; x=.pdf", "fileLength": str(len(PDF))}
    assert system.evolution(evolution_media("DOC-1", "documentMessage", doc)).status == 200
    m = media_row(system, "DOC-1")
    assert m["status"] == "stored" and m["mime"] == "application/pdf" and m["name"] == "conta de luz\"; x=.pdf"
    t1 = system.token(1, 1)
    r = get_media(system, m["id"], t1)
    assert r.status == 200 and r.body == PDF
    assert r.headers["Content-Type"] == "application/pdf"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Content-Disposition"] == 'attachment; filename="conta de luz__ x_.pdf"'
    # another company's agent: the same answer as a media that does not exist
    t2 = system.token(6, 2)
    other, missing = get_media(system, m["id"], t2), get_media(system, 987654321, t2)
    assert other.status == missing.status == 404
    assert other.json() == {"error": f"no media {m['id']}"} and missing.json() == {"error": "no media 987654321"}
    assert get_media(system, m["id"], "forged.token.x").status == 401
    # and company 2's own media is served to it alone
    gateway.add_media("SOLO-IMG-1", PNG, "image/png")
    p = evolution_media("SOLO-IMG-1", "imageMessage", {"mimetype": "image/png", "fileLength": str(len(PNG))},
                        instance="solo")
    assert system.evolution(p, key="solo-key").status == 200
    s = media_row(system, "SOLO-IMG-1")
    assert get_media(system, s["id"], t2).body == PNG
    assert get_media(system, s["id"], t1).json() == {"error": f"no media {s['id']}"}


def test_audio_is_served_with_ranges_and_a_query_token(system):
    m = media_row(system, "VOICE-INLINE-1")
    t = system.token(1, 1)
    full = get_media(system, m["id"], t, query_token=True)
    assert full.status == 200 and full.body == VOICE and full.headers["Content-Type"] == "audio/ogg"
    assert full.headers["Content-Disposition"].startswith("inline") and full.headers["Accept-Ranges"] == "bytes"
    part = get_media(system, m["id"], t, {"Range": "bytes=10-109"})
    assert part.status == 206 and part.body == VOICE[10:110]
    assert part.headers["Content-Range"] == f"bytes 10-109/{len(VOICE)}"
    tail = get_media(system, m["id"], t, {"Range": "bytes=-50"})
    assert tail.status == 206 and tail.body == VOICE[-50:]
    bad = get_media(system, m["id"], t, {"Range": f"bytes={len(VOICE)}-"})
    assert bad.status == 416 and bad.headers["Content-Range"] == f"bytes */{len(VOICE)}"


def test_oversized_file_is_too_large_and_never_retried(system, gateway):
    big = b"%PDF-1.4\n" + os.urandom(MAX_DOC * 2)
    gateway.add_media("DOC-BIG", big, "application/pdf")
    # announced bigger: not even downloaded
    doc = {"mimetype": "application/pdf", "fileName": "big.pdf", "fileLength": str(len(big))}
    assert system.evolution(evolution_media("DOC-BIG", "documentMessage", doc)).status == 200
    m = media_row(system, "DOC-BIG")
    assert m["status"] == "too_large" and "max_document_bytes" in m["error"] and m["size"] == len(big)
    assert gateway.media_requests("DOC-BIG") == []
    # announced small (or not at all), bigger when it comes: too_large after one download
    gateway.add_media("DOC-BIG-2", big, "application/pdf")
    doc2 = {"mimetype": "application/pdf", "fileName": "big2.pdf"}
    assert system.evolution(evolution_media("DOC-BIG-2", "documentMessage", doc2)).status == 200
    m2 = media_row(system, "DOC-BIG-2")
    assert m2["status"] == "too_large" and "max_document_bytes" in m2["error"]
    assert len(gateway.media_requests("DOC-BIG-2")) == 1


def test_media_endpoint_failing_then_succeeding(system, gateway):
    gateway.add_media("VOICE-RETRY", VOICE, "audio/ogg")
    gateway.fail_media(2, 503)
    assert system.evolution(evolution_media("VOICE-RETRY", "audioMessage", voice_part())).status == 200
    m = media_row(system, "VOICE-RETRY")
    assert m["status"] == "stored" and m["attempts"] == 3
    assert len(gateway.media_requests("VOICE-RETRY")) == 3


def test_media_failing_for_good_is_shown_to_the_agent(system, gateway):
    gateway.add_media("VOICE-GONE", VOICE, "audio/ogg")
    gateway.fail_media(10, 500)
    customer = "5511977770009"
    assert system.evolution(evolution_media("VOICE-GONE", "audioMessage", voice_part(), customer=customer)).status == 200
    m = media_row(system, "VOICE-GONE")
    with gateway.lock:
        gateway._media_fail.clear()
    assert m["status"] == "failed" and "HTTP 500" in m["error"] and m["attempts"] == 3
    conv = system.sql(f"select id from conversations where customer = '{customer}'")[0][0]
    t = system.token(1, 1)
    h = http("GET", system.url("notifier", f"/v1/conversations/{conv}/messages"), None,
             {"Authorization": f"Bearer {t}"}).json()
    media = h["messages"][-1]["media"]
    assert media["id"] == m["id"] and media["status"] == "failed" and "HTTP 500" in media["error"]
    assert get_media(system, m["id"], t).status == 404


def test_history_and_events_carry_the_media_id(system, gateway):
    customer = "5511977770010"
    c = system.ws(system.token(1, 1))
    try:
        assert c.subscribe("company:1")["type"] == "ack"
        gateway.add_media("IMG-EV-1", PNG, "image/png")
        p = evolution_media("IMG-EV-1", "imageMessage", {"mimetype": "image/png", "caption": "olha a conta"},
                            customer=customer)
        assert system.evolution(p).status == 200
        upd = c.wait(lambda f: f.get("type") == "message" and f["data"].get("message_id") == "IMG-EV-1"
                     and f["data"].get("update"))
    finally:
        c.close()
    m = media_row(system, "IMG-EV-1")
    assert upd["data"]["media"]["id"] == m["id"] and upd["data"]["media"]["mime"] == "image/png"
    assert upd["data"]["media"]["status"] == "stored" and upd["data"]["text"] == "olha a conta"
    conv = system.sql(f"select id from conversations where customer = '{customer}'")[0][0]
    h = http("GET", system.url("notifier", f"/v1/conversations/{conv}/messages"), None,
             {"Authorization": f"Bearer {system.token(1, 1)}"}).json()
    last = h["messages"][-1]
    assert last["kind"] == "image" and last["media"]["id"] == m["id"] and last["media"]["size"] == len(PNG)
    assert {"id", "mime", "size", "name"} <= set(last["media"])


def test_retention_removes_only_files_no_row_names(system):
    root = os.path.join(system.dir, "var", "media")
    old = time.time() - 3 * 86400

    def put(data, age):
        sha = hashlib.sha256(data).hexdigest()
        os.makedirs(os.path.join(root, sha[:2]), exist_ok=True)
        with open(os.path.join(root, sha[:2], sha), "wb") as f:
            f.write(data)
        if age:
            os.utime(os.path.join(root, sha[:2], sha), (age, age))
        return sha

    orphan, fresh = put(b"left behind by a dropped week", old), put(b"just written by a worker", None)
    kept = media_row(system, "VOICE-INLINE-1")["sha256"]
    os.utime(media_file(system, kept), (old, old))
    report = json.loads(system.cli("retention", "--json").stdout)
    assert report["ok"] and report["media_files_removed"] == 1, report
    assert not os.path.exists(media_file(system, orphan))
    assert os.path.exists(media_file(system, fresh)) and os.path.exists(media_file(system, kept))
    assert system.sql("select tbl from atende_partitioned where tbl = 'media'") == [["media"]]


def test_voice_note_is_transcribed_sent_and_coached(system, gateway, ai):
    customer = "5511977770020"
    ai.control(transcript="minha internet caiu de novo e o roteador está com a luz vermelha piscando")
    c = system.ws(system.token(1, 1))
    try:
        assert c.subscribe("company:1")["type"] == "ack"
        gateway.add_media("VOICE-TR-1", VOICE, "audio/ogg; codecs=opus")
        assert system.evolution(evolution_media("VOICE-TR-1", "audioMessage", voice_part(), customer=customer)).status == 200
        upd = c.wait(lambda f: f.get("type") == "message" and f["data"].get("message_id") == "VOICE-TR-1"
                     and f["data"].get("transcript"))
        hint = c.wait(lambda f: f.get("type") == "hint" and "VOICE-TR-1" in f["data"].get("message_ids", []))
    finally:
        c.close()
    assert upd["data"]["transcript"].startswith("minha internet caiu") and upd["data"]["media"]["mime"] == "audio/ogg"
    assert system.sql("select transcript from messages where provider_id = 'VOICE-TR-1'") == [
        ["minha internet caiu de novo e o roteador está com a luz vermelha piscando"]]
    assert hint["data"]["intent"] == "outage" and hint["data"]["source"] == "ai"
    calls = [x for x in ai.calls()["calls"] if x["body"].get("kind") == "transcription"
             and x["body"]["file_sha256"] == hashlib.sha256(VOICE).hexdigest()]
    assert calls and calls[-1]["body"]["model"] == "whisper-1" and calls[-1]["body"]["language"] == "pt"
    analysis = [x for x in ai.calls()["calls"] if "[mensagem de voz] minha internet caiu" in (x.get("user") or "")]
    assert analysis, "the transcript was coached with its voice-note marker"
    conv = system.sql(f"select id from conversations where customer = '{customer}'")[0][0]
    h = http("GET", system.url("notifier", f"/v1/conversations/{conv}/messages"), None,
             {"Authorization": f"Bearer {system.token(1, 1)}"}).json()
    assert h["messages"][-1]["transcript"].startswith("minha internet caiu")
    assert h["messages"][-1]["hint"]["intent"] == "outage"


def test_console_plays_the_audio_and_shows_the_image_and_the_document(system, gateway):
    """Headless Chromium (test/browser/console_media.test.js) on a conversation with the three."""
    from test_console_browser import BROWSER_DIR, ensure_browser_tools
    import subprocess
    from harness import ROOT
    node = ensure_browser_tools()
    customer = "5511977770030"
    inline = base64.b64encode(VOICE).decode()
    assert system.evolution(evolution_media("BR-VOICE", "audioMessage", voice_part(), customer=customer,
                                            inline=inline)).status == 200
    gateway.add_media("BR-IMG", PNG, "image/png")
    assert system.evolution(evolution_media("BR-IMG", "imageMessage", {"mimetype": "image/png", "caption": "o roteador"},
                                            customer=customer)).status == 200
    gateway.add_media("BR-DOC", PDF, "application/pdf")
    assert system.evolution(evolution_media("BR-DOC", "documentMessage", {"mimetype": "application/pdf",
                                                                         "fileName": "fatura-marco.pdf"},
                                            customer=customer)).status == 200
    for pid in ("BR-VOICE", "BR-IMG", "BR-DOC"):
        assert media_row(system, pid)["status"] == "stored"
    wait_for(lambda: system.sql("select transcript from messages where provider_id = 'BR-VOICE'")[0][0], what="transcript")
    conv, agent = system.sql(f"select id, agent_id from conversations where customer = '{customer}'")[0]
    shot = os.path.join(ROOT, "build", "console-media.png")
    os.makedirs(os.path.dirname(shot), exist_ok=True)
    caption = "Segue a foto do roteador certo"
    env = dict(os.environ, ATENDE_NOTIFIER=system.url("notifier", ""), ATENDE_TOKEN=system.token(int(agent), 1),
               ATENDE_CONVERSATION=conv, ATENDE_DOC_NAME="fatura-marco.pdf", ATENDE_SCREENSHOT=shot,
               ATENDE_ATTACH=os.path.join(FIXTURES, "media", "image.png"), ATENDE_CAPTION=caption)
    r = subprocess.run([node, os.path.join(BROWSER_DIR, "console_media.test.js")], cwd=ROOT, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=180)
    assert r.returncode == 0, r.stderr + r.stdout
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert 1.5 < out["duration"] < 2.5, out
    assert out["audioSrc"].startswith("/v1/media/") and out["transcript"].startswith("minha internet caiu")
    assert (out["image"]["w"], out["image"]["h"]) == (8, 6) and out["image"]["href"].startswith("/v1/media/")
    assert "fatura-marco.pdf" in out["doc"]["text"] and f"({len(PDF)} B)" in out["doc"]["text"]
    assert out["doc"]["status"] == 200 and out["doc"]["type"] == "application/pdf"
    # the attach button: the image went up, out once, and shows as sent, loaded from /v1/media
    assert (out["sent"]["w"], out["sent"]["h"]) == (8, 6) and out["sent"]["src"].startswith("/v1/media/")
    assert out["caption"] == "", "the caption left the reply box with the file"
    sends = [x for x in gateway.sent(path_prefix="/message/sendMedia/") if x["body"].get("caption") == caption]
    assert len(sends) == 1 and base64.b64decode(sends[0]["body"]["media"]) == PNG
    assert sends[0]["body"]["fileName"] == "image.png" and sends[0]["body"]["number"] == customer
    assert system.sql(f"select kind from messages where provider_id = '{out['sent']['messageId']}'") == [["image"]]


# ---------------------------------------------------------------- files the agents send


def upload(system, conv, data, token, name=None, query_name=None):
    h = {"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"}
    if name is not None:
        h["X-Filename"] = urllib.parse.quote(name)
    path = f"/v1/conversations/{conv}/media"
    if query_name is not None:
        path += "?" + urllib.parse.urlencode({"name": query_name})
    return http("POST", system.url("notifier", path), data, h)


def text_conversation(system, customer):
    """A company 1 conversation on Evolution (a customer's text); returns (id, agent)."""
    from test_foundation import evolution_text
    mid = f"IN-{customer}-{time.time_ns()}"
    assert system.evolution(evolution_text(mid, "oi, preciso de ajuda com a fatura", customer=customer)).status == 200
    row = wait_for(lambda: system.sql(f"select c.id, c.agent_id from conversations c join messages m "
                                      f"on m.conversation_id = c.id where m.provider_id = '{mid}'"), what="conversation")
    return int(row[0][0]), int(row[0][1])


def history(system, conv, token):
    return http("GET", system.url("notifier", f"/v1/conversations/{conv}/messages"), None,
                {"Authorization": f"Bearer {token}"}).json()["messages"]


def test_agent_sends_an_image_once_retried_and_redelivered(system, gateway):
    customer = "5511977770040"
    conv, agent = text_conversation(system, customer)
    t = system.token(agent, 1)
    r = upload(system, conv, PNG, t, name="roteador ligado.png")
    assert r.status == 201, r.body
    up = r.json()["media"]
    assert (up["kind"], up["mime"], up["size"], up["name"]) == ("image", "image/png", len(PNG), "roteador ligado.png")
    assert (up["width"], up["height"]) == (8, 6)
    assert get_media(system, up["id"], t).body == PNG  # the console's preview, before it is sent
    c = system.ws(t)
    try:
        assert c.subscribe(f"conversation:{conv}")["type"] == "ack"
        gateway.fail_next(1, 500)
        caption = "a luz vermelha é esta?"
        ack = c.request(op="reply", conversation=conv, media=up["id"], text=caption, id="img-op-1")
        assert ack["type"] == "ack", ack
        d = c.wait(lambda f: f["type"] == "message" and f["data"].get("request_id") == ack["request_id"])["data"]
        assert d["status"] == "sent" and d["attempts"] == 2 and d["kind"] == "image" and d["text"] == caption
        assert d["media"]["mime"] == "image/png" and d["media"]["id"] != up["id"] and d["by_agent"] == agent
        # the console resends the op (a lost ack): the same op id, sent once all the same
        c.send(op="reply", conversation=conv, media=up["id"], text=caption, id="img-op-1")
        c.wait(lambda f: f.get("type") == "ack" and f.get("id") == "img-op-1" and f["request_id"] != ack["request_id"])
        after = c.request(op="reply", conversation=conv, text="mais alguma coisa?")
        c.wait(lambda f: f["type"] == "message" and f["data"].get("request_id") == after["request_id"])
    finally:
        c.close()
    sends = [x for x in gateway.sent(path_prefix="/message/sendMedia/") if x["body"].get("number") == customer]
    assert len(sends) == 2, "one failed, one that went out; the redelivered op sent nothing"
    for x in sends:
        assert x["path"] == "/message/sendMedia/demo" and x["headers"].get("apikey") == "demo-evolution-key"
        b = x["body"]
        assert (b["mediatype"], b["mimetype"], b["fileName"], b["caption"]) == ("image", "image/png",
                                                                               "roteador ligado.png", caption)
        assert base64.b64decode(b["media"]) == PNG
    assert system.sql(f"select count(*) from messages where conversation_id = {conv} and kind = 'image'") == [["1"]]
    last = [m for m in history(system, conv, t) if m["kind"] == "image"]
    assert len(last) == 1 and last[0]["from_me"] and last[0]["by"] == f"agent:{agent}"
    assert last[0]["media"]["id"] == d["media"]["id"] and last[0]["media"]["mime"] == "image/png"
    assert last[0]["text"] == caption and last[0]["provider_id"] == d["message_id"]
    served = get_media(system, last[0]["media"]["id"], t)
    assert served.status == 200 and served.body == PNG and served.headers["Content-Type"] == "image/png"
    assert get_media(system, last[0]["media"]["id"], system.token(6, 2)).status == 404


def test_agent_sends_a_document_to_a_cloud_api_channel(system, gateway):
    customer = "5521977770041"
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": "Bia"}, "wa_id": customer}],
        "messages": [{"from": customer, "id": "wamid.DOC-OUT-1", "timestamp": str(int(time.time())),
                      "type": "text", "text": {"body": "me manda a segunda via"}}]}}]}]}).encode()
    sig = "sha256=" + hmac.new(b"demo-app-secret", body, hashlib.sha256).hexdigest()
    assert system.post("/webhooks/whatsapp", body, {"X-Hub-Signature-256": sig}).status == 200
    conv, agent = [int(x) for x in wait_for(lambda: system.sql(
        "select c.id, c.agent_id from conversations c join messages m on m.conversation_id = c.id "
        "where m.provider_id = 'wamid.DOC-OUT-1'"), what="conversation")[0]]
    t = system.token(agent, 1)
    up = upload(system, conv, PDF, t, query_name="segunda via.pdf").json()["media"]
    assert (up["kind"], up["mime"], up["name"]) == ("document", "application/pdf", "segunda via.pdf")
    c = system.ws(t)
    try:
        assert c.subscribe(f"conversation:{conv}")["type"] == "ack"
        gateway.fail_next(1, 503)  # the upload to the gateway fails once: retried
        ack = c.request(op="reply", conversation=conv, media=up["id"])
        d = c.wait(lambda f: f["type"] == "message" and f["data"].get("request_id") == ack["request_id"])["data"]
    finally:
        c.close()
    assert d["status"] == "sent" and d["kind"] == "document" and d["message_id"].startswith("wamid.FAKE")
    ups = [x for x in gateway.sent(path_prefix="/v21.0/106540352242922/media") if PDF in (x.get("raw") or b"")]
    assert len(ups) == 2 and all(x["headers"].get("Authorization") == f"Bearer {gateway.bearer}" for x in ups)
    assert b'name="type"\r\n\r\napplication/pdf' in ups[-1]["raw"]
    assert ups[-1]["headers"]["Content-Type"].startswith("multipart/form-data; boundary=")
    msgs = [x for x in gateway.sent(path_prefix="/v21.0/106540352242922/messages") if x["body"].get("to") == customer]
    assert len(msgs) == 1
    assert msgs[0]["body"]["type"] == "document" and msgs[0]["body"]["document"]["filename"] == "segunda via.pdf"
    assert msgs[0]["body"]["document"]["id"].startswith("FAKEUPLOAD") and "caption" not in msgs[0]["body"]["document"]
    h = [m for m in history(system, conv, t) if m["kind"] == "document"]
    assert len(h) == 1 and h[0]["media"]["name"] == "segunda via.pdf" and h[0]["by"] == f"agent:{agent}"
    assert get_media(system, h[0]["media"]["id"], t).body == PDF


def test_uploads_that_are_refused(system):
    conv, agent = text_conversation(system, "5511977770042")
    t = system.token(agent, 1)
    big = upload(system, conv, b"%PDF-1.4\n" + os.urandom(MAX_UPLOAD), t, name="big.pdf")
    assert big.status == 413 and big.json() == {"error": f"request body too large (at most {MAX_UPLOAD} bytes)"}
    # more than the notifier's 64 KiB for other requests: taken here, but only with a good token
    mid = b"%PDF-1.4\n" + os.urandom(100000)
    assert upload(system, conv, mid, t, name="mid.pdf").status == 201
    forged = upload(system, conv, mid, "forged.token.x", name="mid.pdf")
    assert forged.status == 413 and forged.json() == {"error": "request body too large (at most 65536 bytes)"}
    gif = upload(system, conv, b"GIF89a" + bytes(40), t, name="x.gif")
    assert gif.status == 415 and "image/gif" in gif.json()["error"]
    noise = upload(system, conv, os.urandom(300), t, name="fatura.pdf")  # the name says pdf, the bytes do not
    assert noise.status == 415 and "application/octet-stream" in noise.json()["error"]
    assert upload(system, conv, b"", t).status == 422
    assert upload(system, conv, PNG, t, name="a\x01b").status == 422
    # another company's agent: the same answer as a conversation that does not exist
    other, missing = upload(system, conv, PNG, system.token(6, 2), name="x.png"), upload(system, 987654321, PNG, t)
    assert other.status == missing.status == 404
    assert other.json() == {"error": f"no conversation {conv}"} and missing.json() == {"error": "no conversation 987654321"}
    assert upload(system, conv, PNG, "forged.token.x").status == 401
    assert system.sql(f"select name from media_uploads where conversation_id = {conv}") == [["mid.pdf"]]
    # an upload of another conversation cannot be sent here
    conv2, _ = text_conversation(system, "5511977770043")
    up = upload(system, conv2, PNG, system.token(1, 1)).json()["media"]
    assert up["name"] == "imagem.png"
    c = system.ws(t)
    try:
        assert c.subscribe(f"agent:{agent}")["type"] == "ack"
        bad = c.request(op="reply", conversation=conv, media="x")
        assert bad["type"] == "error" and "upload" in bad["error"]
        ack = c.request(op="reply", conversation=conv, media=up["id"], text="esta não")
        d = c.wait(lambda f: f["type"] == "message" and f["data"].get("request_id") == ack["request_id"])["data"]
    finally:
        c.close()
    assert d["status"] == "failed" and "is not one of this conversation's" in d["error"]


def test_images_are_coached_on_their_caption_or_on_the_ai_description(system, gateway, ai):
    """ai.vision off (the default): an image is coached on its caption, with no image sent to the
    AI. On (a reload): the file goes to chat completions as an image_url part (a data URL), and
    the description, with the caption, is what is coached."""
    from test_coaching import reload

    def image(msg_id, caption, customer):
        gateway.add_media(msg_id, PNG, "image/png")
        p = evolution_media(msg_id, "imageMessage", {"mimetype": "image/png", "caption": caption}, customer=customer)
        assert system.evolution(p).status == 200
        wait_for(lambda: system.sql(f"select 1 from messages where provider_id = '{msg_id}' and hint_id is not null"),
                 what=f"the hint of {msg_id}")

    def vision_calls():
        return [c for c in ai.calls()["calls"] if isinstance(c["body"], dict) and any(
            isinstance(m.get("content"), list) for m in c["body"].get("messages", []))]

    image("IMG-VIS-OFF", "o modem está assim desde cedo", "5511977770050")
    assert not vision_calls()
    assert [c for c in ai.calls()["calls"] if c.get("user") == "o modem está assim desde cedo"]
    reload(system, **{r"vision = false;": "vision = true;"})
    try:
        ai.control(description="Roteador com a luz de internet vermelha piscando; a luz de energia está verde.")
        image("IMG-VIS-ON", "olha como está", "5511977770051")
        calls = vision_calls()
        assert len(calls) == 1, calls
        body = calls[0]["body"]
        parts = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
        urls = [p["image_url"]["url"] for p in parts if p.get("type") == "image_url"]
        assert urls == ["data:image/png;base64," + base64.b64encode(PNG).decode()]
        assert [p["text"] for p in parts if p.get("type") == "text"] == ["Legenda do cliente: olha como está"]
        assert body["model"] == calls[0]["model"] and body["messages"][0]["role"] == "system"
        coached = [c for c in ai.calls()["calls"] if (c.get("user") or "").startswith("[imagem] Roteador com a luz")]
        assert coached and "(legenda do cliente: olha como está)" in coached[-1]["user"], \
            [c.get("user") for c in ai.calls()["calls"][-4:]]
        hint = system.sql("select h.intent from hints h join messages m on m.hint_id = h.id "
                          "where m.provider_id = 'IMG-VIS-ON'")
        assert hint == [["outage"]], hint  # read from the description: the caption alone says nothing
    finally:
        reload(system)
