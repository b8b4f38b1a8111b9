"""Streamed hints (ai.stream) against the fake OpenAI-compatible server streaming its answer
over 1.5 s: the hint reaches a WebSocket console as several partial events (one hint id,
growing text) before the stored one, which is stored once and priced from the stream's usage
chunk; a stream broken midway ends with a stored hint (a retry, or the rules' fallback) under
the same id; a server that ignores "stream" still gives the hint; a partial hint whose hint is
refused at storage is withdrawn; the first-token latency is exported."""
import os
import signal

import pytest

from fakeai import FakeAI
from harness import System, http, serve, wait_for
from test_foundation import evolution_text

INTENTS = ("billing", "sales", "outage", "complaint", "cancel", "other")

AI = FakeAI().start()
STREAM_MS = 1500


@pytest.fixture(scope="module")
def system():
    s = System(name="streaming", extra={
        r'provider = "rules";': 'provider = "openai";',
        r'base_url = "";': f'base_url = "{AI.base_url}";',
        r"(?m)^  stream = false;": "  stream = true;",  # off in the sample config (and so in the other modules)
        r"retry_base_ms = 2000;": "retry_base_ms = 100;",
        r"max_retries = 3;": "max_retries = 1;",
        r"deadline_ms = 60000;": "deadline_ms = 20000;",
        r"companies = \(\n": 'companies = (\n  { id = 2; name = "Solo"; agents = [50, 50]; },\n',
        r"channels = \(\n": 'channels = (\n  { type = "evolution"; instance = "solo"; key = "solo-key"; company = 2; '
                            'domain = "financeiro"; },\n',
    })
    yield from serve(s)


@pytest.fixture(autouse=True)
def fresh_ai():
    AI.reset()
    AI.control(stream_ms=STREAM_MS)
    yield


def hint_events(console, message_id, timeout=30):
    """Every hint event of message_id up to and including the stored one (no partial member)."""
    console.wait(lambda f: f["type"] == "hint" and f["data"]["message_id"] == message_id
                 and not f["data"].get("partial"), timeout=timeout)
    return [f["data"] for f in console.events("hint", "company:1") if f["data"]["message_id"] == message_id]


def stored(system, provider_id):
    """(hint id, source, tokens_in, tokens_out, cost_usd) of the hint stored for a message, and
    how many hint rows carry that id."""
    rows = system.sql("select h.id, h.source, h.tokens_in, h.tokens_out, h.cost_usd, "
                      "(select count(*) from hints x where x.id = h.id) from hints h "
                      f"join messages m on m.hint_id = h.id where m.provider_id = '{provider_id}'")
    return rows[0] if rows else None


def check_partials(events):
    """The partial events before the final one: one hint id, text growing as a prefix of the next."""
    *partials, final = events
    assert "partial" not in final and all(e["partial"] is True for e in partials), events
    assert {e["hint_id"] for e in events} == {final["hint_id"]}, events
    for a, b in zip(partials, partials[1:]):
        assert b["text"].startswith(a["text"]) and len(b["text"]) > len(a["text"]), (a["text"], b["text"])
    return partials, final


def test_streamed_hint_reaches_console_in_partials_then_stored_once(system):
    console = system.ws(system.token(1, 1))
    console.subscribe("company:1")
    assert system.evolution(evolution_text("STREAM-1", "minha fatura veio com uma cobrança que eu não reconheço",
                                           customer="5511810000001")).status == 200
    partials, final = check_partials(hint_events(console, "STREAM-1"))
    assert len(partials) >= 3, [p["text"] for p in partials]
    assert final["source"] == "ai" and final["intent"] == "billing"
    assert final["text"].startswith(partials[-1]["text"])
    # INTERFACE.md's hint fields hold in a partial too: an intent of the six, a time
    assert all(p["source"] == "ai" and p["created_at"] and p["intent"] in INTENTS for p in partials)
    # the stored hint: once, under the id the partials carried, priced from the usage chunk
    hid, source, tokens_in, tokens_out, cost, copies = stored(system, "STREAM-1")
    assert (int(hid), source, int(copies)) == (final["hint_id"], "ai", 1)
    call = AI.calls()["calls"][0]
    assert call["body"]["stream"] is True and call["body"]["stream_options"] == {"include_usage": True}
    assert call["stream"] is True
    usage = AI._completion(call["body"])["usage"]
    assert (int(tokens_in), int(tokens_out)) == (usage["prompt_tokens"], usage["completion_tokens"])
    # the default prices of the tier the call went to, micro-USD per 1M tokens (in, out)
    price_in, price_out = {"gpt-4o-mini": (150000, 600000), "gpt-4o": (2500000, 10000000)}[call["model"]]
    want = (usage["prompt_tokens"] * price_in + usage["completion_tokens"] * price_out) / 1e12
    assert abs(float(cost) - want) < 1e-6  # the column keeps 6 decimals
    console.close()


def test_stream_cut_midway_is_retried_under_the_same_hint_id(system):
    console = system.ws(system.token(1, 1))
    console.subscribe("company:1")
    AI.control(mode="cut", times=1)
    assert system.evolution(evolution_text("CUT-1", "a internet caiu de novo e o roteador está piscando",
                                           customer="5511810000002")).status == 200
    events = hint_events(console, "CUT-1")
    *partials, final = events
    assert partials and all(e["partial"] is True for e in partials)
    assert {e["hint_id"] for e in events} == {final["hint_id"]} and "partial" not in final
    assert final["source"] == "ai" and final["intent"] == "outage"
    hid, source, _, _, _, copies = stored(system, "CUT-1")
    assert (int(hid), source, int(copies)) == (final["hint_id"], "ai", 1)
    assert [c["mode"] for c in AI.calls()["calls"]] == ["cut", "ok"]
    console.close()


def test_stream_cut_every_time_ends_with_the_fallback_under_the_same_hint_id(system):
    console = system.ws(system.token(1, 1))
    console.subscribe("company:1")
    AI.control(mode="cut")
    assert system.evolution(evolution_text("CUT-2", "quero cancelar o plano, vou para outra operadora",
                                           customer="5511810000003")).status == 200
    events = hint_events(console, "CUT-2")
    *partials, final = events
    assert partials and {e["hint_id"] for e in events} == {final["hint_id"]}
    assert final["source"] == "fallback" and "partial" not in final
    hid, source, _, _, _, copies = stored(system, "CUT-2")
    assert (int(hid), source, int(copies)) == (final["hint_id"], "fallback", 1)
    assert AI.calls()["count"] == 2  # the call and its one retry
    console.close()


def test_server_ignoring_stream_answers_plain_json(system):
    console = system.ws(system.token(1, 1))
    console.subscribe("company:1")
    AI.control(ignore_stream=True)
    assert system.evolution(evolution_text("PLAIN-1", "vocês têm plano de 500 mega com instalação grátis?",
                                           customer="5511810000004")).status == 200
    events = hint_events(console, "PLAIN-1")
    assert len(events) == 1 and "partial" not in events[0] and events[0]["source"] == "ai"
    call = AI.calls()["calls"][0]
    assert call["stream"] is False and call["body"]["stream"] is True
    _, source, tokens_in, _, _, _ = stored(system, "PLAIN-1")
    assert source == "ai" and int(tokens_in) == AI._completion(call["body"])["usage"]["prompt_tokens"]
    console.close()


def test_first_token_latency_is_exported(system):
    AI.control(latency_ms=400)
    console = system.ws(system.token(1, 1))
    console.subscribe("company:1")
    assert system.evolution(evolution_text("FIRST-1", "paguei o boleto ontem e ainda aparece em aberto no app",
                                           customer="5511810000005")).status == 200
    hint_events(console, "FIRST-1")
    text = http("GET", system.url("metrics", "/metrics")).body.decode()
    series = [l for l in text.splitlines() if l.startswith("atende_worker_ai_first_token_seconds")]
    count = sum(float(l.rsplit(" ", 1)[1]) for l in series if l.startswith("atende_worker_ai_first_token_seconds_count{"))
    total = sum(float(l.rsplit(" ", 1)[1]) for l in series if l.startswith("atende_worker_ai_first_token_seconds_sum{"))
    fast = sum(float(l.rsplit(" ", 1)[1]) for l in series
               if l.startswith("atende_worker_ai_first_token_seconds_bucket{") and 'le="0.25"' in l)
    assert count >= 1 and 'model="gpt' in series[0], series
    # this call waited 0.4 s for its first delta (the earlier ones started streaming at once)
    assert fast <= count - 1 and total >= 0.4, (count, fast, total)
    console.close()


def test_partial_hint_refused_at_storage_is_withdrawn(system):
    """Two customers of the solo agent at once with a 60 s agent interval: both are admitted
    (no hint yet), both stream; the second to be stored is refused and its partials withdrawn."""
    before = system.log_text().count("reload: applied")
    system.write_config(**{r"agent_interval_s = 10;": "agent_interval_s = 60;"})
    os.kill(system.proc.pid, signal.SIGHUP)
    wait_for(lambda: system.log_text().count("reload: applied") >= before + 3, what="the reload")
    console = system.ws(system.token(50, 2))
    console.subscribe("company:2")
    for i, text in enumerate(["a fatura deste mês veio em dobro", "fui cobrado duas vezes no cartão"]):
        body = dict(evolution_text(f"SOLO-{i}", text, customer=f"55118200000{i}", instance="solo"), apikey="solo-key")
        assert system.evolution(body, key="solo-key").status == 200
    ended = lambda mid: lambda f: f["type"] == "hint" and f["data"]["message_id"] == mid and \
        (not f["data"].get("partial") or f["data"].get("withdrawn"))
    outcomes = {}
    for mid in ("SOLO-0", "SOLO-1"):
        last = console.wait(ended(mid), timeout=30)["data"]
        events = [f["data"] for f in console.events("hint") if f["data"]["message_id"] == mid]
        assert events[0]["partial"] is True and {e["hint_id"] for e in events} == {last["hint_id"]}
        outcomes[mid] = "withdrawn" if last.get("withdrawn") else "stored"
        if last.get("withdrawn"):
            assert last["text"] == "" and last["partial"] is True
            assert system.sql(f"select count(*) from hints where id = {last['hint_id']}") == [["0"]]
    assert sorted(outcomes.values()) == ["stored", "withdrawn"], outcomes
    coaching = system.sql("select coaching from messages where provider_id in ('SOLO-0', 'SOLO-1') order by 1")
    assert coaching == [["hinted"], ["refused:agent_interval"]]
    console.close()
