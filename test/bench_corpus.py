#!/usr/bin/python3
"""make bench, coaching part: the 2,000 labelled corpus messages (test/fixtures/corpus.jsonl)
through a fresh system on the seed defaults of deploy/atende.conf (per-agent interval,
similarity cache, min length), with the AI answered by the fake server after
$BENCH_CORPUS_AI_MS (default 1500) ms. Prints one JSON line: AI calls per 1,000 messages,
cache hit rate, cost, hints by source, refusals, and intent agreement with the labels.

BENCH_CORPUS_SET=test/fixtures/heldout/heldout.jsonl runs the WhatsApp-style held-out set
instead (rows without a domain arrive on the "suporte" channel, each in its own
conversation; agreement counts all six intents, "other" included), and BENCH_CORPUS_ROUTE=1
turns ai.route_confident on: confident short messages get the rules' hint, no AI call;
BENCH_CORPUS_AGENT_INTERVAL overrides limits.agent_interval_s (seed: 10). BENCH_CORPUS_EMBED=1
turns the semantic cache on (ai.embeddings_model, the fake AI's /embeddings) at
ai.embeddings_threshold BENCH_CORPUS_EMBED_THRESHOLD (seed 0.9): the line then also gives the
embedding calls (total and per 1,000 messages) and the semantic lookups by result.

BENCH_CORPUS_AI=labels makes the fake AI a model that is right: asked about a text of the set,
it answers with that row's labelled intent and critical flag (fakeai.label_answer), and with
BENCH_CORPUS_AI_ERROR=E (e.g. 0.05) a share E of the texts, picked by hash, get a wrong
intent, a model's mistakes. The agreement then measures what atende's routing and cache keep
or lose of the model's accuracy, not the keyword guesses of the default fake (keywords mode,
the one the tests use). The line gives agreement overall, by source (routed, cache, ai,
fallback), by labelled intent, and by source within each intent."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "integration"))
from fakeai import FakeAI  # noqa: E402
from harness import FIXTURES, System, http, wait_for  # noqa: E402

RATE = float(os.environ.get("BENCH_CORPUS_RATE", "100"))
SET = os.environ.get("BENCH_CORPUS_SET", "")
ROUTE = os.environ.get("BENCH_CORPUS_ROUTE", "0") == "1"
EMBED = os.environ.get("BENCH_CORPUS_EMBED", "0") == "1"
EMBED_THRESHOLD = float(os.environ.get("BENCH_CORPUS_EMBED_THRESHOLD", "0.9"))
AI_MODE = os.environ.get("BENCH_CORPUS_AI", "keywords")
AI_ERROR = float(os.environ.get("BENCH_CORPUS_AI_ERROR", "0"))


def worker_metric(s, name):
    """{label text: value} of a metric summed over the workers."""
    text = http("GET", s.url("metrics", "/metrics")).body.decode()
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels = ",".join(x for x in line[len(name) + 1:line.index("}")].split(",") if not x.startswith("process="))
            out[labels] = out.get(labels, 0) + float(line.rsplit(" ", 1)[1])
    return out


def main():
    if AI_MODE not in ("keywords", "labels"):
        sys.exit("BENCH_CORPUS_AI must be keywords or labels")
    rows = [json.loads(l) for l in open(SET or os.path.join(FIXTURES, "corpus.jsonl"))]
    labels = {r["text"]: (r["intent"], r.get("critical", False)) for r in rows} if AI_MODE == "labels" else None
    ai = FakeAI(latency_ms=int(os.environ.get("BENCH_CORPUS_AI_MS", "1500")), labels=labels,
                label_error=AI_ERROR).start()
    extra_route = {r"route_confident = false;": "route_confident = true;"} if ROUTE else {}
    extra_embed = {r'embeddings_model = "";': 'embeddings_model = "text-embedding-3-small";',
                   r"embeddings_threshold = 0\.9;": f"embeddings_threshold = {EMBED_THRESHOLD};"} if EMBED else {}
    s = System(name="corpus", extra={
        **extra_route, **extra_embed,
        r'provider = "rules";': 'provider = "openai";',
        r'base_url = "";': f'base_url = "{ai.base_url}";',
        # the seed default, kept on purpose; BENCH_CORPUS_AGENT_INTERVAL=0 measures every message
        r"agent_interval_s = 10;": f"agent_interval_s = {int(os.environ.get('BENCH_CORPUS_AGENT_INTERVAL', '10'))};",
        r"companies = \(\n  \{ id = 1; name = \"Demo Telecom\"; agents = \[1, 5\]; \}":
            'companies = (\n  { id = 1; name = "Demo Telecom"; agents = [1, 100]; }',
        r"channels = \(\n": "channels = (\n" + "".join(
            f'  {{ type = "evolution"; instance = "{d}"; key = "k"; company = 1; domain = "{d}"; }},\n'
            for d in ("financeiro", "comercial", "suporte", "ouvidoria", "cancelamento")),
    })
    try:
        s.start()
        for i, r in enumerate(rows):
            r.setdefault("domain", "suporte")
            r.setdefault("conversation", f"55119{i:06d}")
        labels = ("billing", "sales", "outage", "complaint", "cancel") + (("other",) if SET else ())
        t0 = time.monotonic()
        for i, r in enumerate(rows):
            due = t0 + i / RATE
            while time.monotonic() < due:
                time.sleep(0.0005)  # pacing the load generator itself, not a wait for the system
            body = {"event": "messages.upsert", "instance": r["domain"], "apikey": "k",
                    "data": {"key": {"remoteJid": f"{r['conversation']}@s.whatsapp.net", "fromMe": False,
                                     "id": f"CORPUS-{i}"}, "pushName": "Cliente",
                             "message": {"conversation": r["text"]}, "messageType": "conversation",
                             "messageTimestamp": int(time.time())}}
            assert s.evolution(body, key="k").status == 200
        n = len(rows)
        wait_for(lambda: int(s.sql("select count(*) from messages where provider_id like 'CORPUS-%' and "
                                   "(coaching is not null or hint_id is not null)")[0][0]) >= n, timeout=300,
                 what="every corpus message decided")
        by_source = dict((k, int(v)) for k, v in s.sql("select source, count(*) from hints group by 1"))
        coaching = dict((k, int(v)) for k, v in s.sql(
            "select split_part(coalesce(coaching, 'none'), ':', 1) || ':' || split_part(coalesce(coaching, ''), ':', 2), "
            "count(*) from messages group by 1"))
        cost = float(s.sql("select coalesce(sum(cost_usd), 0) from hints")[0][0])
        labelled = {f"CORPUS-{i}": r for i, r in enumerate(rows)}
        agree = total = 0
        by_src, by_intent, by_src_intent = {}, {}, {}
        for pid, intent, source, routed in s.sql(
                "select m.provider_id, h.intent, h.source, h.routed::text from messages m join hints h on "
                "h.id = m.hint_id where m.provider_id like 'CORPUS-%' and m.coaching = 'hinted'"):
            label = labelled[pid]["intent"]
            if label in labels:
                total += 1
                agree += label == intent
                key = "routed" if routed == "true" else source
                for d, k in ((by_src, key), (by_intent, label), (by_src_intent.setdefault(label, {}), key)):
                    a, t = d.get(k, (0, 0))
                    d[k] = (a + (label == intent), t + 1)
        calls = ai.calls()["count"]
        embeddings = ai.calls()["embeddings"]
        semantic = {}
        for k, v in worker_metric(s, "atende_worker_semantic_lookups_total").items():
            result = k.split('result="', 1)[1].split('"', 1)[0]
            semantic[result] = semantic.get(result, 0) + int(v)
        analyses = by_source.get("ai", 0) + by_source.get("cache", 0) + by_source.get("fallback", 0)
        print(json.dumps({
            "bench": "corpus", "messages": n, "rate": RATE, "seconds": round(time.monotonic() - t0, 1),
            "ai_calls": calls, "ai_calls_per_1000": round(calls * 1000 / n, 1),
            "cache_hit_rate": round(by_source.get("cache", 0) / analyses, 3) if analyses else None,
            "cost_usd": round(cost, 6), "cost_usd_per_1000": round(cost * 1000 / n, 6),
            "hints_by_source": by_source, "coaching_outcomes": coaching,
            "intent_agreement": round(agree / total, 3) if total else None,
            "set": os.path.basename(SET) if SET else "corpus.jsonl", "route_confident": ROUTE,
            "embeddings": EMBED and {"threshold": EMBED_THRESHOLD, "calls": embeddings,
                                     "calls_per_1000": round(embeddings * 1000 / n, 1), "lookups": semantic},
            "ai": {"mode": AI_MODE, "error": AI_ERROR, "answers": ai.calls()["answers"]},
            "agreement_by_source": {k: [a, t] for k, (a, t) in sorted(by_src.items())},
            "agreement_by_intent": {k: [a, t] for k, (a, t) in sorted(by_intent.items())},
            "agreement_by_intent_source": {i: {k: [a, t] for k, (a, t) in sorted(d.items())}
                                           for i, d in sorted(by_src_intent.items())}}))
    finally:
        s.destroy()
        ai.stop()


if __name__ == "__main__":
    main()
