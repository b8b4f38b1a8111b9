"""Hints worth their cost (issue 20), against the fake OpenAI-compatible server: odd AI
answers degrade instead of being retried (an unknown intent becomes "other", a missing
critical flag false, a long hint is cut; only an answer without a hint is retried), and
confident, short, non-critical messages are routed to the rules without an AI call
(ai.route_confident), the similarity cache compares texts with names, numbers, amounts and
dates taken out and refuses a hit whose intent the rules do not share, and a share of cache
and routed hints is checked by the AI in the background (ai.shadow_share)."""
import json
import os
import signal
import time

import pytest

from fakeai import FakeAI
from harness import System, http, serve, wait_for
from test_foundation import evolution_text

AI = FakeAI().start()


@pytest.fixture(scope="module")
def system():
    s = System(name="hints", extra={
        r'provider = "rules";': 'provider = "openai";',
        r'base_url = "";': f'base_url = "{AI.base_url}";',
        r"retry_base_ms = 2000;": "retry_base_ms = 100;",
        r"agent_interval_s = 10;": "agent_interval_s = 0;",
        r"max_wait_ms = 1500;": "max_wait_ms = 200;",
    })
    yield from serve(s)


@pytest.fixture(autouse=True)
def fresh_ai():
    AI.reset()
    yield


def hint_of(system, provider_id):
    rows = system.sql("select h.source, h.intent, h.critical::text, h.text from hints h "
                      f"join messages m on m.hint_id = h.id where m.provider_id = '{provider_id}'")
    return tuple(rows[0]) if rows else None


def customer():
    return f"55118{time.monotonic_ns() % 1000000:06d}"


def metric(system, name, labels):
    text = http("GET", system.url("metrics", "/metrics")).body.decode()
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
               if l.startswith(name + "{") and all(x in l for x in labels))


def test_unknown_intent_is_other_after_one_call(system):
    AI.control(mode="odd_intent")
    console = system.ws(system.token(1, 1))
    console.subscribe("company:1")
    assert system.evolution(evolution_text("ODD-1", "minha internet está muito lenta hoje à noite",
                                           customer=customer())).status == 200
    hint = console.wait(lambda f: f["type"] == "hint" and f["data"]["message_id"] == "ODD-1")
    assert hint["data"]["source"] == "ai" and hint["data"]["intent"] == "other"
    assert hint_of(system, "ODD-1")[:2] == ("ai", "other")
    assert AI.calls()["count"] == 1  # not retried
    wait_for(lambda: metric(system, "atende_worker_ai_answers_repaired_total", ['what="intent"']) >= 1,
             what="the repaired-answers metric")
    assert metric(system, "atende_worker_ai_calls_total", ['status="garbage"']) == 0
    console.close()


def test_missing_critical_is_false_and_long_hint_is_cut(system):
    AI.control(mode="no_critical", times=1)
    assert system.evolution(evolution_text("ODD-2", "quero a segunda via do boleto de março",
                                           customer=customer())).status == 200
    wait_for(lambda: hint_of(system, "ODD-2"), what="the hint without critical")
    assert hint_of(system, "ODD-2")[:3] == ("ai", "billing", "false")
    AI.control(mode="long_hint", times=1)
    assert system.evolution(evolution_text("ODD-3", "quero a segunda via da fatura de abril por favor",
                                           customer=customer())).status == 200
    wait_for(lambda: hint_of(system, "ODD-3"), what="the long hint")
    source, intent, _, text = hint_of(system, "ODD-3")
    assert (source, intent) == ("ai", "billing")
    assert len(text.encode()) < 1024 and text.endswith("…")
    assert AI.calls()["count"] == 2


def test_answer_without_hint_is_retried(system):
    AI.control(mode="no_hint", times=1)
    assert system.evolution(evolution_text("ODD-4", "quero cancelar o plano de internet hoje",
                                           customer=customer())).status == 200
    wait_for(lambda: hint_of(system, "ODD-4"), what="the hint after the retry")
    assert hint_of(system, "ODD-4")[:2] == ("ai", "cancel")
    calls = AI.calls()["calls"]
    assert [c["mode"] for c in calls] == ["no_hint", "ok"]
    assert calls[1]["t"] - calls[0]["t"] >= 0.09  # the backoff (retry_base_ms = 100) kept


def reload(system, **changes):
    before = system.log_text().count("reload: applied")
    system.write_config(**changes)
    os.kill(system.proc.pid, signal.SIGHUP)
    wait_for(lambda: system.log_text().count("reload: applied") >= before + 3, what="the workers and notifier to reload")


def test_confident_short_message_is_routed_to_the_rules(system):
    reload(system, **{r"route_confident = false;": "route_confident = true;"})
    try:
        console = system.ws(system.token(1, 1))
        console.subscribe("company:1")
        assert system.evolution(evolution_text("ROUTE-1", "quero cancelar minha internet",
                                               customer=customer())).status == 200
        hint = console.wait(lambda f: f["type"] == "hint" and f["data"]["message_id"] == "ROUTE-1")
        assert hint["data"]["source"] == "rules" and hint["data"]["routed"] is True
        assert hint["data"]["intent"] == "cancel" and hint["data"]["critical"] is False
        assert system.sql("select h.source, h.routed::text from hints h join messages m on m.hint_id = h.id "
                          "where m.provider_id = 'ROUTE-1'")[0] == ["rules", "true"]
        assert AI.calls()["count"] == 0  # no AI call
        wait_for(lambda: metric(system, "atende_worker_hints_routed_total", ['intent="cancel"']) >= 1,
                 what="the routed-hints metric")

        # critical, long or unsure: the AI answers, as before
        texts = {
            "ROUTE-2": "urgente, estou sem internet desde ontem",  # critical
            "ROUTE-3": "boa tarde, tudo bem? entao, desde a chuva de ontem a internet nao volta aqui em casa, "
                       "o roteador fica so com a luz laranja piscando e eu preciso trabalhar amanha cedo, "
                       "ja tirei da tomada duas vezes",  # long
            "ROUTE-4": "preciso falar sobre o meu endereço",  # the rules are not sure
        }
        for mid, text in texts.items():
            assert system.evolution(evolution_text(mid, text, customer=customer())).status == 200
        for mid in texts:
            wait_for(lambda: hint_of(system, mid), what=f"the hint of {mid}")
            assert hint_of(system, mid)[0] == "ai", mid
        assert AI.calls()["count"] == 3
        assert {r[0] for r in system.sql("select h.routed::text from hints h join messages m on m.hint_id = h.id "
                                         "where m.provider_id like 'ROUTE-_' and m.provider_id <> 'ROUTE-1'")} == {"false"}
        console.close()
    finally:
        reload(system)


def test_cache_hit_across_names_amounts_and_dates(system):
    assert system.evolution(evolution_text("CKEY-1", "bom dia, meu nome é Carla, preciso da segunda via da "
                                           "fatura de março, o valor era R$ 189,90", customer=customer())).status == 200
    wait_for(lambda: hint_of(system, "CKEY-1"), what="the first hint")
    assert hint_of(system, "CKEY-1")[:2] == ("ai", "billing")
    assert system.evolution(evolution_text("CKEY-2", "oi, aqui é o Pedro, preciso da segunda via da fatura de "
                                           "abril, o valor era R$ 212,00", customer=customer())).status == 200
    wait_for(lambda: hint_of(system, "CKEY-2"), what="the second hint")
    assert hint_of(system, "CKEY-2")[:2] == ("cache", "billing")
    assert AI.calls()["count"] == 1


def test_a_near_duplicate_is_found_in_the_workers_memory(system):
    """cache.memory_entries: the worker that cached a hint finds the next similar text in its
    memory, with no admission asked of PostgreSQL."""
    who = customer()  # one customer: one partition, so the worker that cached the first hint
    assert system.evolution(evolution_text("MEM-1", "o roteador está piscando luz vermelha desde cedo",
                                           customer=who)).status == 200
    wait_for(lambda: hint_of(system, "MEM-1"), what="the first hint")
    assert hint_of(system, "MEM-1")[0] == "ai"
    wait_for(lambda: metric(system, "atende_worker_cache_memory_entries", []) >= 1, what="the hint in memory")
    hits = metric(system, "atende_worker_cache_memory_lookups_total", ['result="hit"'])
    assert system.evolution(evolution_text("MEM-2", "O roteador está piscando a luz vermelha desde cedo!",
                                           customer=who)).status == 200
    wait_for(lambda: hint_of(system, "MEM-2"), what="the second hint")
    assert hint_of(system, "MEM-2")[0] == "cache"
    assert AI.calls()["count"] == 1
    # (at least: a hit of an earlier test may reach the exported metrics only now)
    wait_for(lambda: metric(system, "atende_worker_cache_memory_lookups_total", ['result="hit"']) >= hits + 1,
             what="the hit counted as the memory's")


def test_a_cache_hit_in_memory_is_stored_with_its_message(system):
    """schema/026: with the AI, a lone customer message to a conversation with its agent,
    whose near duplicate the worker holds in memory, is stored with the cache's hint in its own
    transaction (no finish, no AI call); the console gets it as a cache hint."""
    from test_agents import add, online
    assert add(system, 61, "cleo", domains="suporte", max_open=50).returncode == 0
    online(system, 61)
    who = customer()
    assert system.evolution(evolution_text("CW-1", "o roteador esta piscando luz vermelha desde ontem a noite",
                                           customer=who)).status == 200
    wait_for(lambda: hint_of(system, "CW-1"), what="the first hint")
    assert hint_of(system, "CW-1")[0] == "ai"
    system.sql("update conversations c set agent_id = 61, status = 'open', waiting_since = null from messages m "
               "where m.conversation_id = c.id and m.provider_id = 'CW-1'")
    wait_for(lambda: metric(system, "atende_worker_cache_memory_entries", []) >= 1, what="the hint in memory")
    console = system.ws(system.token(61, 1))
    try:
        console.subscribe("company:1")
        assert system.evolution(evolution_text("CW-2", "O roteador está piscando a luz vermelha desde ontem à noite!",
                                               customer=who)).status == 200
        hint = console.wait(lambda f: f["type"] == "hint" and f["data"]["message_id"] == "CW-2")
    finally:
        console.close()
    assert hint["data"]["source"] == "cache" and hint["data"]["from_cache"] is True
    row = system.sql("select h.id, h.source, h.with_message::text, k.xmin = h.xmin and m.xmin = h.xmin, m.coaching "
                     "from hints h join messages m on m.id = h.message_id "
                     "join message_keys k on k.channel = m.channel and k.provider_id = m.provider_id "
                     "where m.provider_id = 'CW-2'")
    assert row == [[str(hint["data"]["hint_id"]), "cache", "true", "t", "hinted"]]
    assert hint_of(system, "CW-2")[1:3] == hint_of(system, "CW-1")[1:3]
    assert AI.calls()["count"] == 1


def test_postgresql_skips_the_similar_lookup_the_worker_made(system):
    """schema/025: with "similar_searched" (the worker found no similar text in a fresh copy)
    PostgreSQL only looks for the same text; without it, for a similar one too."""
    who = customer()
    assert system.evolution(evolution_text("SIM-1", "ok", customer=who, from_me=True)).status == 200
    wait_for(lambda: system.sql("select id from messages where provider_id = 'SIM-1'"),
             what="the agent's message (never coached: its hint_id and coaching stay empty)")
    mid, at = system.sql("select id, to_char(received_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
                         "from messages where provider_id = 'SIM-1'")[0]
    system.sql("insert into hint_cache (company_id, domain, norm, hint_id, intent, critical, text) values "
               "(1, 'suporte', 'modem reinicia sozinho toda noite sem parar', 0, 'outage', false, 'similar')")

    def admit(norm, searched):
        cache = {"threshold": 0.85, "ttl_s": 3600}
        if searched:
            cache["similar_searched"] = True
        req = [{"ids": [int(mid)], "received_at": [at], "company": 1, "domain": "suporte", "norm": norm,
                "cache": cache, "limits": {"per_minute": 0, "cost_hour": 0, "cost_day": 0, "pending": 0},
                "reserve_usd": 0, "agent": None, "agent_interval_s": 0, "deadline_s": 90}]
        out = json.loads(system.sql(f"select atende_coach_admit('{json.dumps(req)}'::jsonb)")[0][0])[0]
        return out["decision"], out.get("hint", {}).get("text")

    similar = "modem reinicia sozinho toda noite sem parar hoje"
    assert admit(similar, False) == ("cache", "similar")  # 020's lookup
    assert admit(similar, True)[0] == "ai"  # the worker looked for similar texts already
    assert admit("modem reinicia sozinho toda noite sem parar", True) == ("cache", "similar")  # the same text
    system.sql("delete from hint_cache where text = 'similar'")


def test_retention_prunes_cached_hints_past_their_ttl(system):
    system.sql("insert into hint_cache (company_id, domain, norm, hint_id, intent, critical, text, created_at) values "
               "(1, 'suporte', 'texto antigo de teste', 0, 'other', false, 'x', now() - interval '2 hours'), "
               "(1, 'suporte', 'texto recente de teste', 0, 'other', false, 'y', now() - interval '30 minutes')")
    report = json.loads(system.cli("retention", "--json").stdout)
    assert report["cached_hints_pruned"] >= 1  # cache.ttl_s = 3600
    assert system.sql("select norm from hint_cache where norm like 'texto % de teste'") == [["texto recente de teste"]]


def test_cache_hit_with_another_intent_is_refused(system):
    AI.control(mode="odd_intent", times=1)  # the first answer says "technical": cached as other
    assert system.evolution(evolution_text("CKEY-3", "a fatura de maio veio com o valor errado de novo",
                                           customer=customer())).status == 200
    wait_for(lambda: hint_of(system, "CKEY-3"), what="the first hint")
    assert hint_of(system, "CKEY-3")[:2] == ("ai", "other")
    assert system.evolution(evolution_text("CKEY-4", "a fatura de junho veio com o valor errado de novo",
                                           customer=customer())).status == 200
    wait_for(lambda: hint_of(system, "CKEY-4"), what="the second hint")
    # the same words, but the rules read billing where the cached hint says other: the AI answers
    assert hint_of(system, "CKEY-4")[:2] == ("ai", "billing")
    assert AI.calls()["count"] == 2
    wait_for(lambda: metric(system, "atende_worker_cache_lookups_total", ['result="refused"']) >= 1,
             what="the refused-hit metric")


def test_shadow_checks_measure_routed_hints(system):
    reload(system, **{r"route_confident = false;": "route_confident = true;",
                      r"shadow_share = 0\.0;": "shadow_share = 1.0;"})
    try:
        assert system.evolution(evolution_text("SHADOW-1", "quero cancelar minha internet agora",
                                               customer=customer())).status == 200
        wait_for(lambda: hint_of(system, "SHADOW-1"), what="the routed hint")
        assert hint_of(system, "SHADOW-1")[:2] == ("rules", "cancel")
        # the hint did not wait for it, but the AI was asked in the background and agreed
        wait_for(lambda: metric(system, "atende_worker_shadow_checks_total",
                                ['kind="routed"', 'result="agree"']) >= 1, what="an agreeing shadow check")
        assert AI.calls()["count"] == 1 and "cancelar" in AI.calls()["calls"][0]["user"]
        AI.control(mode="odd_intent")  # the AI now says "technical" (other): a disagreement
        assert system.evolution(evolution_text("SHADOW-2", "quero a segunda via do boleto",
                                               customer=customer())).status == 200
        wait_for(lambda: metric(system, "atende_worker_shadow_checks_total",
                                ['kind="routed"', 'result="disagree"']) >= 1, what="a disagreeing shadow check")
        assert hint_of(system, "SHADOW-2")[:2] == ("rules", "billing")  # the hint stays the rules'
        assert AI.calls()["count"] == 2
    finally:
        reload(system)
