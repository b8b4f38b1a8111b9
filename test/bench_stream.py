#!/usr/bin/python3
"""Streamed hints (ai.stream), end to end: the WhatsApp-style held-out set
(test/fixtures/heldout/heldout.jsonl, each message in its own conversation) at
$BENCH_STREAM_RATE msg/s (default 20) through a fresh system whose AI is the fake server
streaming every answer over $BENCH_STREAM_MS ms (default 1500; first delta after
$BENCH_STREAM_TTFT_MS, default 0), with the cache off so every message is a streamed call.
A WebSocket console on company:1 stamps each hint event as it arrives. Prints one JSON line:
per message, post -> first partial hint at the console ("first_hint", what the agent sees
first) and post -> stored hint at the console ("full_hint"), p50/p99 in ms; partial events per
hint; the worker's own first-token histogram (atende_worker_ai_first_token_seconds: call start
-> first content) as count and mean.

BENCH_STREAM=0 runs the same with ai.stream off and the fake answering whole after
BENCH_STREAM_MS: the full hint without streaming, for comparison."""
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "integration"))
from fakeai import FakeAI  # noqa: E402
from harness import FIXTURES, System, http, wait_for  # noqa: E402

RATE = float(os.environ.get("BENCH_STREAM_RATE", "20"))
STREAM_MS = int(os.environ.get("BENCH_STREAM_MS", "1500"))
TTFT_MS = int(os.environ.get("BENCH_STREAM_TTFT_MS", "0"))
STREAM = os.environ.get("BENCH_STREAM", "1") != "0"


def pct(values, p):
    v = sorted(values)
    return round(v[min(len(v) - 1, int(p / 100.0 * len(v)))], 1) if v else None


def main():
    ai = FakeAI(latency_ms=TTFT_MS if STREAM else TTFT_MS + STREAM_MS).start()
    ai.control(stream_ms=STREAM_MS)
    s = System(name="stream-bench", extra={
        r'provider = "rules";': 'provider = "openai";',
        r'base_url = "";': f'base_url = "{ai.base_url}";',
        r"(?m)^  stream = false;": f"  stream = {'true' if STREAM else 'false'};",
        r"(cache: \{\n  enabled = )true;": r"\1false;",
    })
    try:
        s.start()
        rows = [json.loads(l) for l in open(os.path.join(FIXTURES, "heldout", "heldout.jsonl"))]
        console = s.ws(s.token(1, 1), timeout=30)
        console.subscribe("company:1")
        seen = {}  # message id -> [first partial at, final at, partials]
        done = threading.Event()

        def read():
            while not done.is_set():
                try:
                    f = console.recv_one(1)
                except Exception:  # noqa: BLE001 - timeouts while idle, the socket closed at the end
                    continue
                if f.get("type") != "hint":
                    continue
                at, d = time.monotonic(), f["data"]
                e = seen.setdefault(d["message_id"], [None, None, 0])
                if d.get("partial"):
                    e[2] += 1
                    if e[0] is None:
                        e[0] = at
                elif e[1] is None:
                    e[1] = at
                console.frames.clear()
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        posted = {}
        t0 = time.monotonic()
        for i, r in enumerate(rows):
            due = t0 + i / RATE
            while time.monotonic() < due:
                time.sleep(0.0005)  # pacing the load generator itself, not a wait for the system
            mid = f"STREAM-{i}"
            body = {"event": "messages.upsert", "instance": "demo", "apikey": "demo-evolution-key",
                    "data": {"key": {"remoteJid": f"55117{i:07d}@s.whatsapp.net", "fromMe": False, "id": mid},
                             "pushName": "Cliente", "message": {"conversation": r["text"]},
                             "messageType": "conversation", "messageTimestamp": int(time.time())}}
            posted[mid] = time.monotonic()
            assert s.evolution(body).status == 200
        hinted = lambda: int(s.sql("select count(*) from messages where provider_id like 'STREAM-%' and hint_id is not null")[0][0])
        wait_for(lambda: int(s.sql("select count(*) from messages where provider_id like 'STREAM-%' and "
                                   "(coaching is not null or hint_id is not null)")[0][0]) >= len(rows),
                 timeout=300, what="every message decided")
        n_hinted = hinted()
        wait_for(lambda: sum(1 for m in posted if seen.get(m, [0, None])[1] is not None) >= n_hinted, timeout=60,
                 what="every stored hint at the console")
        done.set()
        reader.join(timeout=5)
        first = [(seen[m][0] - t) * 1000 for m, t in posted.items() if m in seen and seen[m][0] is not None]
        full = [(seen[m][1] - t) * 1000 for m, t in posted.items() if m in seen and seen[m][1] is not None]
        partials = [seen[m][2] for m in posted if m in seen and seen[m][1] is not None]
        metrics = http("GET", s.url("metrics", "/metrics")).body.decode()
        def total(name):
            return sum(float(l.rsplit(" ", 1)[1]) for l in metrics.splitlines() if l.startswith(name + "{"))
        ft_count, ft_sum = total("atende_worker_ai_first_token_seconds_count"), total("atende_worker_ai_first_token_seconds_sum")
        print(json.dumps({
            "bench": "stream_hints", "stream": STREAM, "messages": len(rows), "rate": RATE, "stream_ms": STREAM_MS,
            "ttft_ms": TTFT_MS, "hints": n_hinted, "ai_calls": ai.calls()["count"],
            "first_hint_ms": {"p50": pct(first, 50), "p99": pct(first, 99), "n": len(first)},
            "full_hint_ms": {"p50": pct(full, 50), "p99": pct(full, 99), "n": len(full)},
            "partials_per_hint": {"p50": pct(partials, 50), "max": max(partials) if partials else None},
            "worker_first_token_s": {"count": int(ft_count), "mean": round(ft_sum / ft_count, 4) if ft_count else None},
        }), flush=True)
        console.close()
    finally:
        s.stop()
        s.destroy()
        ai.stop()


if __name__ == "__main__":
    main()
