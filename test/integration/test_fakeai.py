"""Self-test of the fake AI server (fakeai.py) the other integration tests rely on: every
mode, latency, the "times" switch-back, the control, calls and reset endpoints, and the
command-line program. No atende process is started here."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from fakeai import FakeAI, classify, label_answer  # noqa: E402
from harness import free_port  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def post(url, obj, timeout=5):
    """(status, headers, body bytes) of a JSON POST; HTTP errors are returned, not raised."""
    req = urllib.request.Request(url, data=json.dumps(obj).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": "Bearer k"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def chat(fake, text, model="gpt-4o-mini", timeout=5):
    body = {"model": model, "messages": [
        {"role": "system", "content": "Responda SOMENTE com um objeto JSON"},
        {"role": "user", "content": "Histórico recente da conversa (mais antigo primeiro):\nCliente: oi\n\n"
                                    "Mensagens novas do cliente:\n" + text}]}
    return post(fake.base_url + "/chat/completions", body, timeout)


@pytest.fixture
def fake():
    f = FakeAI().start()
    yield f
    f.stop()


def test_ok_answers_a_completion_derived_from_keywords(fake):
    status, _, body = chat(fake, "minha fatura veio com valor errado")
    assert status == 200
    resp = json.loads(body)
    content = json.loads(resp["choices"][0]["message"]["content"])
    assert content["intent"] == "billing" and content["critical"] is False and content["hint"]
    assert resp["usage"]["prompt_tokens"] > 0 and resp["usage"]["completion_tokens"] > 0
    # the history ("oi") is not what is classified: only the new messages
    status, _, body = chat(fake, "vou no procon, ninguém resolve meu problema", model="gpt-4o")
    content = json.loads(json.loads(body)["choices"][0]["message"]["content"])
    assert content["intent"] == "complaint" and content["critical"] is True
    calls = get(f"http://127.0.0.1:{fake.port}/calls")
    assert calls["count"] == 2
    assert calls["models"] == ["gpt-4o-mini", "gpt-4o"]
    assert calls["by_model"] == {"gpt-4o-mini": 1, "gpt-4o": 1}
    assert calls["calls"][0]["user"] == "minha fatura veio com valor errado"
    assert calls["calls"][0]["body"]["messages"][0]["role"] == "system"
    assert calls["calls"][1]["status"] == 200


def test_labelled_mode_answers_the_label_and_errs_by_hash():
    texts = [f"mensagem {i} sobre a fatura" for i in range(400)]
    labels = {t: ("outage", i % 7 == 0) for i, t in enumerate(texts)}  # keywords would say billing
    f = FakeAI(labels=labels).start()
    try:
        content = json.loads(json.loads(chat(f, texts[7])[2])["choices"][0]["message"]["content"])
        assert content["intent"] == "outage" and content["critical"] is True and content["hint"]
        # several new messages: the last labelled line decides; an unlabelled text: the keywords
        content = json.loads(json.loads(chat(f, "oi\n" + texts[1])[2])["choices"][0]["message"]["content"])
        assert content["intent"] == "outage" and content["critical"] is False
        content = json.loads(json.loads(chat(f, "minha fatura veio errada")[2])["choices"][0]["message"]["content"])
        assert content["intent"] == "billing"
        assert get(f"http://127.0.0.1:{f.port}/calls")["answers"] == {"labelled": 2, "wrong": 0, "keywords": 1}
    finally:
        f.stop()
    # label_error: about that share wrong, always the same texts, never the label's intent
    wrong = [t for t in texts if label_answer(t, labels, 0.1)[2]]
    assert 20 <= len(wrong) <= 60
    assert wrong == [t for t in texts if label_answer(t, labels, 0.1)[2]]
    assert all(label_answer(t, labels, 0.1)[0] != "outage" for t in wrong)
    assert not any(label_answer(t, labels, 0)[2] for t in texts)


def test_keyword_classifier():
    assert classify("quero cancelar meu plano") == ("cancel", False)
    assert classify("estou sem internet desde ontem, é urgente") == ("outage", True)
    assert classify("quais planos de 500 mega vocês têm?") == ("sales", False)
    assert classify("bom dia") == ("other", False)


def test_429_carries_retry_after(fake):
    state = post(f"http://127.0.0.1:{fake.port}/control", {"mode": "429", "retry_after": 2})
    assert state[0] == 200 and json.loads(state[2])["mode"] == "429"
    status, headers, _ = chat(fake, "minha internet caiu")
    assert status == 429
    assert headers.get("Retry-After") == "2"


def test_500_and_garbage(fake):
    fake.control(mode="500")
    status, _, body = chat(fake, "minha internet caiu")
    assert status == 500 and "error" in json.loads(body)
    fake.control(mode="garbage")
    status, _, body = chat(fake, "minha internet caiu")
    assert status == 200
    with pytest.raises(ValueError):
        json.loads(body)
    assert [c["mode"] for c in fake.calls()["calls"]] == ["500", "garbage"]


def test_hang_outlasts_the_client_and_stop_releases_it():
    f = FakeAI().start()
    f.control(mode="hang")
    t0 = time.monotonic()
    with pytest.raises((socket.timeout, TimeoutError, urllib.error.URLError)):
        chat(f, "alô", timeout=0.5)
    assert time.monotonic() - t0 < 3
    assert f.calls()["count"] == 1
    t0 = time.monotonic()
    f.stop()
    assert time.monotonic() - t0 < 3


def test_latency_and_times_switch_back(fake):
    fake.control(latency_ms=300)
    t0 = time.monotonic()
    assert chat(fake, "oi")[0] == 200
    assert time.monotonic() - t0 >= 0.3
    post(f"http://127.0.0.1:{fake.port}/control", {"mode": "500", "times": 2, "latency_ms": 0})
    assert [chat(fake, "oi")[0] for _ in range(3)] == [500, 500, 200]
    assert get(f"http://127.0.0.1:{fake.port}/control")["mode"] == "ok"


def test_control_validation_and_reset(fake):
    assert post(f"http://127.0.0.1:{fake.port}/control", {"mode": "banana"})[0] == 400
    assert post(f"http://127.0.0.1:{fake.port}/v1/chat/completions", {"model": "x"})[0] == 400
    chat(fake, "oi")
    fake.control(mode="500", latency_ms=10)
    assert post(f"http://127.0.0.1:{fake.port}/reset", {})[0] == 200
    assert fake.calls()["count"] == 0
    assert fake.state()["mode"] == "ok" and fake.state()["latency_ms"] == 0


def test_many_concurrent_calls_with_latency(fake):
    import concurrent.futures
    fake.control(latency_ms=300)
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as ex:
        statuses = list(ex.map(lambda i: chat(fake, f"fatura {i}")[0], range(50)))
    assert statuses == [200] * 50
    assert time.monotonic() - t0 < 5  # answered in parallel, not 15 s in a row
    assert fake.calls()["count"] == 50


def test_command_line_program():
    port = free_port()
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "fakeai.py"), "--port", str(port), "--mode", "500"],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/v1" in line
        assert get(f"http://127.0.0.1:{port}/healthz") == {"ok": True}
        assert get(f"http://127.0.0.1:{port}/control")["mode"] == "500"
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0


def test_embeddings_are_deterministic_and_counted_apart(fake):
    url = fake.base_url + "/embeddings"
    status, _, raw = post(url, {"model": "text-embedding-3-small", "input": "preciso da segunda via do boleto"})
    assert status == 200
    body = json.loads(raw)
    vec = body["data"][0]["embedding"]
    assert len(vec) == 256 and abs(sum(x * x for x in vec) - 1) < 1e-3
    assert body["usage"]["prompt_tokens"] > 0
    again = json.loads(post(url, {"model": "m", "input": "preciso da segunda via do boleto"})[2])["data"][0]["embedding"]
    assert again == vec
    near = json.loads(post(url, {"model": "m", "input": "me manda a 2a via da fatura"})[2])["data"][0]["embedding"]
    far = json.loads(post(url, {"model": "m", "input": "quero cancelar meu plano"})[2])["data"][0]["embedding"]
    cos = lambda a, b: sum(x * y for x, y in zip(a, b))
    assert cos(vec, near) > 0.9 and cos(vec, far) < 0.3
    assert post(url, {"model": "m", "input": ["a list"]})[0] == 400
    fake.control(embeddings_mode="500")
    assert post(url, {"model": "m", "input": "oi"})[0] == 500
    assert chat(fake, "minha fatura veio errada")[0] == 200  # the chat mode is its own
    calls = get(fake.base_url.rsplit("/v1", 1)[0] + "/calls")
    assert calls["count"] == 1 and calls["embeddings"] == 5
    assert calls["embedding_inputs"][-1] == "oi"
    with pytest.raises(ValueError):
        fake.control(embeddings_mode="odd")


def sse_content(body):
    """The content of a chat-completions event stream, its pieces joined, and its usage."""
    content, usage, done = "", None, False
    for line in body.decode().split("\n"):
        if not line.startswith("data: "):
            continue
        if line == "data: [DONE]":
            done = True
            continue
        event = json.loads(line[6:])
        for choice in event["choices"]:
            content += choice["delta"].get("content", "")
        usage = event.get("usage") or usage
    assert done
    return content, usage


def test_the_benchmarks_lean_fake_ai_answers_as_this_one():
    """test/fakeai_lean.c (the AI benchmarks' server, test/bench_pg.py) gives fakeai.py's "ok"
    answer to every corpus text, plain and streamed, after its latency; anything but
    .../chat/completions is 404."""
    lean_port = free_port()
    lean = subprocess.Popen([os.path.join(HERE, "..", "..", "build", "test", "fakeai_lean"), "--port", str(lean_port),
                             "--latency-ms", "200"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    fake = FakeAI().start()
    try:
        lean_url = f"http://127.0.0.1:{lean_port}/v1/chat/completions"
        deadline = time.monotonic() + 10
        while True:  # listening once a connection is taken
            try:
                socket.create_connection(("127.0.0.1", lean_port), timeout=1).close()
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline and lean.poll() is None, lean.stderr.read()
                time.sleep(0.05)
        with open(os.path.join(HERE, "..", "fixtures", "corpus.jsonl")) as f:
            texts = [json.loads(line)["text"] for line in f][:300]
        texts += ["VOU NO PROCON", "a internet caiu, é urgente", ""]

        def compare(text):
            body = {"model": "gpt-4o-mini", "messages": [
                {"role": "system", "content": "Responda SOMENTE com um objeto JSON"},
                {"role": "user", "content": "Cliente: oi\n\nMensagens novas do cliente:\n" + text}]}
            want = json.loads(json.loads(post(fake.base_url + "/chat/completions", body)[2])["choices"][0]["message"]["content"])
            status, _, got = post(lean_url, body)
            assert status == 200, text
            assert json.loads(json.loads(got)["choices"][0]["message"]["content"]) == want, text
            return body, want

        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(32) as pool:  # the lean server answers them all on one loop
            body, want = list(pool.map(compare, texts))[-2]
        t0 = time.monotonic()
        status, headers, got = post(lean_url, dict(body, stream=True, stream_options={"include_usage": True}))
        assert time.monotonic() - t0 >= 0.2
        assert status == 200 and headers["Content-Type"] == "text/event-stream"
        content, usage = sse_content(got)
        assert json.loads(content) == want and usage["completion_tokens"] > 0
        assert post(f"http://127.0.0.1:{lean_port}/v1/embeddings", {})[0] == 404
    finally:
        fake.stop()
        lean.terminate()
        assert lean.wait(timeout=10) == 0
