"""The coaching pipeline against a fake OpenAI-compatible server: AI hints with their
cost recorded, the similarity cache, the smart buffer, 429 pauses, the circuit breaker and
its fallback, limits shared by two workers, the typing filter, per-company overrides, and a
worker killed with analyses in flight."""
import json
import os
import signal
import subprocess
import time

import pytest

from fakeai import FakeAI
from harness import System, serve, wait_for
from test_foundation import evolution_text

AI = FakeAI().start()


@pytest.fixture(scope="module")
def system():
    s = System(name="coaching", extra={
        r'provider = "rules";': 'provider = "openai";',
        r'base_url = "";': f'base_url = "{AI.base_url}";',
        r"retry_base_ms = 2000;": "retry_base_ms = 100;",
        r"max_retries = 3;": "max_retries = 1;",
        r"(?m)^  timeout_ms = 10000;( +# \(reload\) per call)": r"  timeout_ms = 1000;\1",
        r"deadline_ms = 60000;": "deadline_ms = 10000;",
        r"breaker_min_calls = 10;( +# \.\.\. once it holds at least this many calls)": r"breaker_min_calls = 4;\1",
        r"breaker_open_s = 30;( +# open this long, then one probe call)": r"breaker_open_s = 2;\1",
        r"max_wait_ms = 1500;": "max_wait_ms = 400;",
        r"companies = \(\n": 'companies = (\n  { id = 2; name = "Solo"; agents = [50, 50]; },\n',
        r"channels = \(\n": 'channels = (\n  { type = "evolution"; instance = "solo"; key = "solo-key"; company = 2; '
                            'domain = "financeiro"; },\n',
    })
    yield from serve(s)


@pytest.fixture(autouse=True)
def fresh_ai():
    AI.reset()
    yield


def post_solo(system, msg_id, text, customer):
    """A message to company 2, whose only agent is 50."""
    return system.evolution(dict(evolution_text(msg_id, text, customer=customer, instance="solo"), apikey="solo-key"),
                            key="solo-key")


def hint_of(system, provider_id):
    rows = system.sql("select h.source, coalesce(h.model, ''), h.tokens_in, h.cost_usd, h.latency_ms, "
                      "coalesce(h.limited_by, ''), array_to_string(h.provider_ids, ',') from hints h "
                      f"join messages m on m.hint_id = h.id where m.provider_id = '{provider_id}'")
    return rows[0] if rows else None


def coaching_of(system, provider_id):
    rows = system.sql(f"select coalesce(coaching, '') from messages where provider_id = '{provider_id}'")
    return rows[0][0] if rows else None


def reload(system, **changes):
    before = system.log_text().count("reload: applied")
    system.write_config(**changes)
    os.kill(system.proc.pid, signal.SIGHUP)
    wait_for(lambda: system.log_text().count("reload: applied") >= before + 3, what="the workers and notifier to reload")


def ai_call_seconds(system):
    """atende_worker_ai_call_seconds over every worker: (calls, calls within 0.5 s, seconds)."""
    text = __import__("harness").http("GET", system.url("metrics", "/metrics")).body.decode()
    def total(prefix, suffix=""):
        return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
                   if l.startswith("atende_worker_ai_call_seconds" + prefix) and l.split(" ")[0].endswith(suffix))
    return total("_count{"), total("_bucket{", 'le="0.5"}'), total("_sum{")


def test_ai_hint_records_model_tokens_cost_latency(system):
    console = system.ws(system.token(1, 1))
    console.subscribe("company:1")
    assert system.evolution(evolution_text("AI-1", "quero parcelar a fatura atrasada de março", customer="5511800000001")).status == 200
    hint = console.wait(lambda f: f["type"] == "hint" and f["data"]["message_id"] == "AI-1")
    assert hint["data"]["source"] == "ai" and hint["data"]["intent"] == "billing" and hint["data"]["from_cache"] is False
    source, model, tokens_in, cost, latency, limited, pids = hint_of(system, "AI-1")
    assert (source, model, pids, limited) == ("ai", "gpt-4o-mini", "AI-1", "")
    assert int(tokens_in) > 0 and float(cost) > 0 and int(latency) >= 0
    calls = AI.calls()
    assert calls["count"] == 1 and "fatura atrasada" in calls["calls"][0]["user"]
    console.close()


def test_near_duplicate_in_another_conversation_is_answered_from_the_cache(system):
    assert system.evolution(evolution_text("CACHE-1", "o roteador está piscando luz vermelha desde cedo",
                                           customer="5511800000011")).status == 200
    wait_for(lambda: hint_of(system, "CACHE-1"), what="the first hint")
    assert hint_of(system, "CACHE-1")[0] == "ai"
    console = system.ws(system.token(1, 1))
    console.subscribe("company:1")
    assert system.evolution(evolution_text("CACHE-2", "O roteador está piscando a luz vermelha desde cedo!",
                                           customer="5511800000012")).status == 200
    hint = console.wait(lambda f: f["type"] == "hint" and f["data"]["message_id"] == "CACHE-2")
    assert hint["data"]["source"] == "cache" and hint["data"]["from_cache"] is True
    assert AI.calls()["count"] == 1  # only the first message reached the AI
    metrics = wait_for(lambda: (lambda t: t if 'atende_worker_cache_lookups_total{process="worker"' in t and
                                'result="hit"' in t else None)(
        __import__("harness").http("GET", system.url("metrics", "/metrics")).body.decode()), what="cache metrics")
    assert "atende_worker_ai_calls_total" in metrics
    console.close()


def test_smart_buffer_groups_quick_messages_into_one_call(system):
    calls_before, fast_before, seconds_before = ai_call_seconds(system)
    AI.control(latency_ms=800)
    customer = "5511800000021"
    console = system.ws(system.token(1, 1))
    console.subscribe("company:1")
    assert system.evolution(evolution_text("BUF-1", "minha internet caiu desde ontem", customer=customer)).status == 200
    wait_for(lambda: AI.calls()["count"] == 1, what="the first analysis to be in flight")
    for i, text in ((2, "já reiniciei o roteador duas vezes"), (3, "a luz continua vermelha"),
                    (4, "preciso trabalhar hoje, é urgente")):
        assert system.evolution(evolution_text(f"BUF-{i}", text, customer=customer)).status == 200
    grouped = console.wait(lambda f: f["type"] == "hint" and "BUF-4" in f["data"]["message_ids"], timeout=30)
    assert grouped["data"]["message_ids"] == ["BUF-2", "BUF-3", "BUF-4"]
    assert grouped["data"]["message_id"] == "BUF-4"
    calls = AI.calls()
    assert calls["count"] == 2  # one for BUF-1, one for the three grouped
    assert all(t in calls["calls"][1]["user"] for t in ("duas vezes", "continua vermelha", "urgente"))
    body = calls["calls"][1]["body"]
    sent = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    assert "internet caiu" in sent  # the history window travels with it
    assert [coaching_of(system, f"BUF-{i}") for i in (2, 3, 4)] == ["covered", "covered", "hinted"]
    console.close()
    # both calls, each at least the 800 ms the provider took, in the call-duration histogram
    # (a call the previous test left in flight may land in it too, on a loaded machine)
    wait_for(lambda: ai_call_seconds(system)[0] >= calls_before + 2, what="the calls in the merged metrics")
    calls, fast, seconds = ai_call_seconds(system)
    assert fast - fast_before <= calls - calls_before - 2 and seconds - seconds_before >= 1.6


def test_429_pauses_the_provider_then_the_ai_answers(system):
    AI.control(mode="429", retry_after=1, times=1)
    t0 = time.monotonic()
    assert system.evolution(evolution_text("RL-1", "tem multa se eu cancelar agora?", customer="5511800000031")).status == 200
    wait_for(lambda: hint_of(system, "RL-1"), what="the hint after the 429")
    assert hint_of(system, "RL-1")[0] == "ai"
    calls = AI.calls()["calls"]
    assert [c["status"] for c in calls] == [429, 200]
    assert calls[1]["t"] - calls[0]["t"] >= 0.95  # Retry-After: 1 honoured
    assert time.monotonic() - t0 >= 0.95


def test_errors_open_the_breaker_and_hints_fall_back_to_rules(system):
    AI.control(mode="500")
    ids = []
    for i in range(8):  # two workers, each with its own breaker: enough calls to open both
        mid = f"BRK-{i}"
        ids.append(mid)
        assert system.evolution(evolution_text(mid, f"estou sem sinal nenhum aqui em casa há {i + 2} dias",
                                               customer=f"55118000004{i:02d}")).status == 200
    wait_for(lambda: all(hint_of(system, m) for m in ids), what="fallback hints for every message")
    assert {hint_of(system, m)[0] for m in ids} == {"fallback"}
    calls = AI.calls()["count"]
    assert calls < 2 * len(ids)  # an open breaker answered some without calling
    metrics = __import__("harness").http("GET", system.url("metrics", "/metrics")).body.decode()
    assert "atende_worker_ai_breaker_opens_total" in metrics
    # the AI recovers; after breaker_open_s a probe succeeds and AI hints are back
    AI.control(mode="ok")

    def ai_again():
        mid = f"BRK-ok-{time.monotonic_ns()}"
        system.evolution(evolution_text(mid, "quero saber os planos de 600 mega para empresa",
                                        customer=f"5511800000{time.monotonic_ns() % 100000:05d}"))
        return wait_for(lambda: hint_of(system, mid), what=mid)[0] == "ai"

    wait_for(ai_again, timeout=30, what="the breaker to close again")


def test_timeouts_fall_back(system):
    AI.control(mode="hang")
    assert system.evolution(evolution_text("HANG-1", "fui cobrado duas vezes este mês na fatura",
                                           customer="5511800000051")).status == 200
    wait_for(lambda: hint_of(system, "HANG-1"), what="the fallback after timeouts")
    assert hint_of(system, "HANG-1")[0] == "fallback"
    AI.control(mode="ok")


def test_agent_interval_is_shared_by_both_workers(system):
    reload(system, **{r"agent_interval_s = 10;": "agent_interval_s = 60;"})
    try:
        # company 2 has one agent: every conversation is assigned to agent 50; the
        # customers differ, so the messages spread over partitions and both workers
        ids = [f"IV-{i}" for i in range(8)]
        for i, mid in enumerate(ids):
            assert post_solo(system, mid, "preciso da segunda via do boleto de outubro", f"55219000000{i:02d}").status == 200
        wait_for(lambda: all(coaching_of(system, m) for m in ids), what="every message decided")
        outcomes = sorted(coaching_of(system, m) for m in ids)
        assert outcomes.count("hinted") == 1 and outcomes.count("refused:agent_interval") == 7, outcomes
        parts = system.sql("select count(distinct (m.conversation_id)) from messages m where m.provider_id like 'IV-%'")
        assert int(parts[0][0]) == 8
    finally:
        reload(system)


def test_cost_cap_is_never_exceeded_by_two_workers(system):
    cap = 0.02  # a few reservations' worth: the rest must fall back to rules (limited_by)
    # slow calls keep both workers' reservations in flight together; the per-call timeout
    # is raised well above the latency so that a loaded machine cannot turn them into
    # timeouts (which would leave no AI hint to check the spending of)
    AI.control(latency_ms=800)
    # the hour's window also holds what the module's earlier tests spent: start it empty
    wait_for(lambda: system.sql("select count(*) from ai_pending") == [["0"]], what="earlier reservations settled")
    system.sql("delete from ai_budget")
    reload(system, **{r"cost_per_hour_usd = 0.0;": f"cost_per_hour_usd = {cap};",
                      r"(?m)^  timeout_ms = 10000;( +# \(reload\) per call)": r"  timeout_ms = 8000;\1"})
    try:
        ids = [f"COST-{i}" for i in range(16)]
        for i, mid in enumerate(ids):
            assert system.evolution(evolution_text(mid, f"internet muito lenta hoje, não passa de {100 + i * 37} mega",
                                                   customer=f"55118000006{i:02d}")).status == 200
        wait_for(lambda: all(hint_of(system, m) for m in ids), what="hints for every message")
        sources = [hint_of(system, m) for m in ids]
        ai = [h for h in sources if h[0] == "ai"]
        limited = [h for h in sources if h[5] == "cost_hour"]
        assert ai and limited and all(h[0] == "rules" for h in limited), sources
        spent = system.sql("select coalesce(max(cost_usd), 0) from ai_budget where kind = 'hour'")[0][0]
        assert float(spent) <= cap
        assert sum(float(h[3]) for h in ai) <= cap
        assert system.sql("select count(*) from ai_pending") == [["0"]]  # every reservation settled
    finally:
        AI.control(latency_ms=0)
        reload(system)


def test_typing_agent_gets_no_hint(system):
    assert post_solo(system, "TYP-1", "quero parcelar a fatura atrasada", "5521911110000").status == 200
    wait_for(lambda: coaching_of(system, "TYP-1"), what="the first message")
    conv, agent = system.sql("select conversation_id, c.agent_id from messages m join conversations c "
                             "on c.id = m.conversation_id where provider_id = 'TYP-1'")[0]
    typing = {"type": "typing", "company_id": 2, "conversation_id": int(conv), "agent_id": int(agent),
              "data": {"conversation_id": int(conv), "agent_id": int(agent), "state": "start"}}
    # as the notifier publishes it for the workers: on atende.typing (and on atende.events, which
    # the workers no longer read)
    subprocess.run(["kcat", "-b", f"127.0.0.1:{system.ports['kafka']}", "-P", "-t", "atende.typing", "-p", "0",
                    "-H", "type=typing"], input=json.dumps(typing), text=True, check=True, timeout=30)

    def skipped():
        mid = f"TYP-{time.monotonic_ns()}"
        post_solo(system, mid, "o valor da fatura veio errado de novo", "5521911110000")
        return wait_for(lambda: coaching_of(system, mid), what=mid) == "skipped:agent_typing"

    wait_for(skipped, what="a message skipped while its agent types")


def test_company_override_of_min_length(system):
    system.sql("update companies set min_message_length = 60 where id = 2")
    reload(system)
    try:
        assert post_solo(system, "MIN-1", "quero a segunda via do boleto", "5521922220000").status == 200
        wait_for(lambda: coaching_of(system, "MIN-1"), what="the decision")
        assert coaching_of(system, "MIN-1") == "skipped:short"
        # company 1 keeps the config's 10 characters
        assert system.evolution(evolution_text("MIN-2", "quero a segunda via do boleto", customer="5511800000071")).status == 200
        wait_for(lambda: hint_of(system, "MIN-2"), what="company 1's hint")
    finally:
        system.sql("update companies set min_message_length = null where id = 2")
        reload(system)


def test_worker_killed_with_analyses_in_flight(system):
    AI.control(latency_ms=3000)
    ids = [f"KILL-{i}" for i in range(10)]
    for i, mid in enumerate(ids):
        assert system.evolution(evolution_text(mid, f"já liguei {i + 3} vezes e ninguém resolve meu problema",
                                               customer=f"55118000008{i:02d}")).status == 200
    wait_for(lambda: AI.calls()["count"] >= 4, what="analyses in flight")
    status = json.loads(system.cli("status", "--json").stdout)
    victim = [p for p in status["processes"] if p["role"] == "worker" and p["index"] == 0][0]
    os.kill(victim["pid"], signal.SIGKILL)
    AI.control(latency_ms=0)
    wait_for(lambda: all(hint_of(system, m) for m in ids), timeout=60, what="every message hinted after the restart")
    for mid in ids:  # exactly one hint covers each message
        n = system.sql("select count(*) from hints where '" + mid + "' = any(provider_ids)")[0][0]
        assert n == "1", (mid, n)
