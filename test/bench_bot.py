#!/usr/bin/python3
"""Bot mode under load: a system on deploy/atende.conf (free ports, a temporary data_dir) with
the bot on for the demo company's suporte domain, the fake AI answering after
BENCH_AI_LATENCY_MS (1500) and a fake Evolution gateway answering after BENCH_GATEWAY_MS
(200); `atende bench` posts BENCH_RATE (500) msg/s for BENCH_SECONDS (20) from 5,000
customers. Once the bot has caught up it prints one JSON line: bot answers and hand-offs,
first-response time (customer message accepted by the ingress -> the bot's answer accepted
by the gateway and stored) p50/p90/p99/max over every answer and over each conversation's
first one, and gateway sends/s (over the span of the sends). Run: /usr/bin/python3 test/bench_bot.py"""
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "integration"))
from fakeai import FakeAI  # noqa: E402
from fakegateway import FakeGateway  # noqa: E402
from harness import System  # noqa: E402

RATE = int(os.environ.get("BENCH_RATE", "500"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "20"))
AI_MS = int(os.environ.get("BENCH_AI_LATENCY_MS", "1500"))
GW_MS = int(os.environ.get("BENCH_GATEWAY_MS", "200"))


def pct(xs, p):
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(p / 100 * len(xs)))], 3) if xs else None


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # the finally below stops the system
    ai = FakeAI(latency_ms=AI_MS).start()
    gw = FakeGateway(latency=GW_MS / 1000).start()
    s = System(name="bench-bot", extra={
        r'url = "http://127.0.0.1:8090";': f'url = "{gw.url}";',
        r'provider = "rules";': 'provider = "openai";',
        r'base_url = "";': f'base_url = "{ai.base_url}";',
        r'agents = \[1, 5\]; \}': 'agents = [1, 100]; bot_domains = ["suporte"]; }',
        r"max_in_flight = 1000;": "max_in_flight = 5000;",
    })
    try:
        s.start()
        t0 = time.time()
        out = s.cli("bench", "--rate", str(RATE), "--seconds", str(SECONDS), "--company", "1", "--drain", "5",
                    check=False).stdout.strip().splitlines()
        load = json.loads(out[-1]) if out else {}
        posted = int(s.sql("select count(*) from messages where not from_me")[0][0])

        def progress():
            return s.sql("select (select count(*) from bot_turns), (select count(*) from outbound_requests "
                         "where by = 'bot' and published_at is not null), (select count(*) from messages)")[0]
        # settled: nothing moves for 6 s (messages of handed-off conversations get no bot_turns row)
        last, still = None, 0
        deadline = time.time() + 600
        while still < 3 and time.time() < deadline:
            time.sleep(2)
            now = progress()
            still = still + 1 if now == last else 0
            last = now
        rows = s.sql("select extract(epoch from b.received_at - c.received_at), c.conversation_id, "
                     "extract(epoch from b.received_at) from bot_turns t "
                     "join messages c on c.id = t.message_id "
                     "join outbound_requests o on o.request_id = t.request_id "
                     "join messages b on b.id = o.message_id where t.decision = 'answer'")
        lat = [float(r[0]) for r in rows]
        first = {}
        for r in rows:
            first[r[1]] = min(first.get(r[1], 1e9), float(r[0]))
        sent_at = sorted(float(r[2]) for r in rows)
        stages = s.sql("select extract(epoch from t.created_at - c.received_at), "
                       "extract(epoch from o.created_at - t.created_at), extract(epoch from b.received_at - o.created_at) "
                       "from bot_turns t join messages c on c.id = t.message_id "
                       "join outbound_requests o on o.request_id = t.request_id "
                       "join messages b on b.id = o.message_id where t.decision = 'answer'")
        handoffs = dict(s.sql("select reason, count(*) from bot_turns where decision = 'handoff' group by 1"))
        span = (sent_at[-1] - sent_at[0]) if len(sent_at) > 1 else 0
        print(json.dumps({
            "run": "bot", "rate": RATE, "seconds": SECONDS, "ai_latency_ms": AI_MS, "gateway_ms": GW_MS,
            "posted": posted, "acked": load.get("acked"), "bot_answers": len(lat),
            "handoffs": {k: int(v) for k, v in handoffs.items()},
            "gateway_sends": len(gw.sent()), "sends_per_s": round(len(sent_at) / span, 1) if span else None,
            "first_response_s": {"p50": pct(lat, 50), "p90": pct(lat, 90), "p99": pct(lat, 99), "max": pct(lat, 100)},
            "conversation_first_response_s": {"p50": pct(list(first.values()), 50),
                                              "p99": pct(list(first.values()), 99)},
            "stages_p50_p99_s": {name: [pct([float(r[i]) for r in stages], 50), pct([float(r[i]) for r in stages], 99)]
                                 for i, name in enumerate(["decided", "answer_to_claim", "claim_to_stored"])},
            "wall_s": round(time.time() - t0, 1), "ai_calls": ai.calls()["count"]}))
    finally:
        s.destroy()
        gw.stop()
        ai.stop()


if __name__ == "__main__":
    main()
