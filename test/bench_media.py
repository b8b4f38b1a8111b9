#!/usr/bin/python3
"""make bench, media part: voice notes at $BENCH_MEDIA_RATE (100) msg/s for $BENCH_MEDIA_SECONDS (30) s,
each $BENCH_MEDIA_AUDIO_S (20) s of Ogg Opus audio (~16 kbit/s, its own bytes: no two are alike, so
nothing is deduplicated), fetched by the workers from a fake Evolution gateway
(getBase64FromMediaMessage), one customer each (inline base64 would put ~56 KB per message on the
broker: the embedded one keeps ~5 MiB per partition and the ingress refuses with backpressure
long before 100 msg/s of that); the fake AI transcribes
after $BENCH_MEDIA_TRANSCRIBE_MS (2000) ms and analyses at once; two workers. A console subscribed to
company:1 times, per voice note, the `message` update carrying its transcript and its `hint`, from
the webhook's 200. Prints p50/p99 of both, disk bytes per message (files and the media table) and
the workers' peak memory (VmHWM) as one JSON line, appended to build/bench-results.jsonl."""
import base64
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "integration"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "media"))
from fakeai import FakeAI  # noqa: E402
from fakegateway import FakeGateway  # noqa: E402
from harness import ROOT, System, wait_for  # noqa: E402
import make as media_fixtures  # noqa: E402

RATE = int(os.environ.get("BENCH_MEDIA_RATE", "100"))
SECONDS = int(os.environ.get("BENCH_MEDIA_SECONDS", "30"))
AUDIO_S = float(os.environ.get("BENCH_MEDIA_AUDIO_S", "20"))
TRANSCRIBE_MS = int(os.environ.get("BENCH_MEDIA_TRANSCRIBE_MS", "2000"))
RESULTS = os.path.join(ROOT, "build", "bench-results.jsonl")


_AUDIO_PAGES = {}


def voice(seconds, rng):
    """Ogg Opus of 20 ms frames of 40 bytes each (~16 kbit/s). The audio pages are made once per
    length (Python's CRC is slow); each note's comment page holds random bytes, so no two files
    are alike and nothing is deduplicated."""
    serial, preskip = 0x5eed, 312
    head = b"OpusHead" + bytes([1, 1]) + preskip.to_bytes(2, "little") + (48000).to_bytes(4, "little") + bytes(3)
    vendor = b"atende-bench-" + rng.randbytes(16).hex().encode()
    tags = b"OpusTags" + len(vendor).to_bytes(4, "little") + vendor + bytes(4)
    if seconds not in _AUDIO_PAGES:
        frames, done, seq, pages = int(seconds / 0.02), 0, 2, b""
        while done < frames:
            n = min(50, frames - done)
            done += n
            pages += media_fixtures.ogg_page([b"\xf8" + rng.randbytes(39) for _ in range(n)], preskip + done * 960,
                                             serial, seq, 4 if done == frames else 0)
            seq += 1
        _AUDIO_PAGES[seconds] = pages
    return (media_fixtures.ogg_page([head], 0, serial, 0, 2) + media_fixtures.ogg_page([tags], 0, serial, 1, 0) +
            _AUDIO_PAGES[seconds])


def pct(xs, p):
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(len(xs) * p))], 3) if xs else None


def main():
    ai = FakeAI().start()
    ai.control(transcript="minha internet caiu de novo e o roteador está piscando vermelho, preciso de ajuda urgente",
               transcription_latency_ms=TRANSCRIBE_MS)
    gw = FakeGateway().start()
    s = System(name="bench_media", workers=2, extra={
        r'url = "http://127.0.0.1:8090";': f'url = "{gw.url}";',
        r'provider = "rules";': 'provider = "openai";',
        r'base_url = "";': f'base_url = "{ai.base_url}";',
        r"max_wait_ms = 1500;": "max_wait_ms = 0;",
    })
    s.start()
    try:
        rng = random.Random(17)
        n = RATE * SECONDS
        notes = [voice(AUDIO_S, rng) for _ in range(n)]
        for i, note in enumerate(notes):
            gw.add_media(f"BENCH-VOICE-{i}", note, "audio/ogg; codecs=opus")
        posted, transcribed, hinted = {}, {}, {}
        c = s.ws(s.token(1, 1))
        assert c.subscribe("company:1")["type"] == "ack"
        stop = threading.Event()

        def listen():
            while not stop.is_set():
                try:
                    f = c.recv_one(1)
                except Exception:
                    continue
                now = time.time()
                d = f.get("data") or {}
                if f.get("type") == "message" and d.get("transcript"):
                    transcribed.setdefault(d.get("message_id"), now)
                elif f.get("type") == "hint":
                    for mid in d.get("message_ids", []):
                        hinted.setdefault(mid, now)
                c.frames.clear()

        t = threading.Thread(target=listen, daemon=True)
        t.start()
        # warm-up: both workers assigned (the group settles a few seconds after start) and every
        # path taken once; these voice notes are not measured
        wait_for(lambda: s.log_text().count("assigned") >= 2, 60, "both workers assigned", interval=0.2)
        warm = [voice(1.0, rng) for _ in range(8)]
        for i, w in enumerate(warm):
            r = s.evolution({"event": "messages.upsert", "instance": "demo", "data": {
                "key": {"remoteJid": f"55118{i:08d}@s.whatsapp.net", "fromMe": False, "id": f"BENCH-WARM-{i}"},
                "pushName": "Aquecimento", "messageType": "audioMessage", "messageTimestamp": int(time.time()),
                "message": {"audioMessage": {"mimetype": "audio/ogg"}, "base64": base64.b64encode(w).decode()}}})
            assert r.status == 200, r.body
        wait_for(lambda: all(f"BENCH-WARM-{i}" in hinted for i in range(8)), 60, "the warm-up hinted", interval=0.2)
        t0 = time.time()

        def post(i):
            mid = f"BENCH-VOICE-{i}"
            payload = {"event": "messages.upsert", "instance": "demo", "data": {
                "key": {"remoteJid": f"55119{i:08d}@s.whatsapp.net", "fromMe": False, "id": mid},
                "pushName": f"Cliente {i}", "messageType": "audioMessage", "messageTimestamp": int(time.time()),
                "message": {"audioMessage": {"mimetype": "audio/ogg; codecs=opus", "seconds": int(AUDIO_S), "ptt": True,
                                             "fileLength": str(len(notes[i]))}}}}
            r = s.evolution(payload)
            if r.status != 200:
                errors.append(r.body)
                return
            posted[mid] = time.time()

        errors = []
        sem = threading.Semaphore(16)
        threads = []
        for i in range(n):
            due = t0 + i / RATE
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)  # the load generator's pacing, not a wait for a condition
            sem.acquire()
            th = threading.Thread(target=lambda i=i: (post(i), sem.release()))
            th.start()
            threads.append(th)
        for th in threads:
            th.join()
        sent_s = time.time() - t0
        assert not errors, f"{len(errors)} webhooks refused, e.g. {errors[0]!r}"
        wait_for(lambda: len(transcribed) >= n and len(hinted) >= n, 300, "every voice note transcribed and hinted",
                 interval=0.5)
        stop.set()
        t.join(3)
        lat_t = [transcribed[m] - posted[m] for m in posted if m in transcribed]
        lat_h = [hinted[m] - posted[m] for m in posted if m in hinted]
        media_dir = os.path.join(s.dir, "var", "media")
        shas = [r[0] for r in s.sql("select md.sha256 from media md join messages m on m.id = md.message_id "
                                    "and m.received_at = md.received_at where m.provider_id like 'BENCH-VOICE-%'")]
        paths = [os.path.join(media_dir, h[:2], h) for h in shas]
        file_bytes = sum(os.path.getsize(p) for p in paths)
        disk_bytes = sum(os.stat(p).st_blocks * 512 for p in paths)
        s.sql("checkpoint")
        table_bytes = int(s.sql("select coalesce(sum(pg_total_relation_size(c.oid)), 0) from pg_inherits i "
                                "join pg_class c on c.oid = i.inhrelid where i.inhparent = 'media'::regclass")[0][0])
        stored = len(shas)
        st = s.sql("select percentile_cont(0.5) within group (order by extract(epoch from md.stored_at - m.received_at)), "
                   "percentile_cont(0.99) within group (order by extract(epoch from md.stored_at - m.received_at)) "
                   "from media md join messages m on m.id = md.message_id and m.received_at = md.received_at "
                   "where m.provider_id like 'BENCH-VOICE-%'")[0]
        hwm = []
        for i in range(2):
            with open(f"/proc/{s.pid('worker', i)}/status") as f:
                hwm += [int(l.split()[1]) for l in f if l.startswith("VmHWM")]
        out = {"bench": "media", "voice_notes": n, "rate": RATE, "sent_s": round(sent_s, 1), "audio_s": AUDIO_S,
               "fake_transcription_ms": TRANSCRIBE_MS, "stored": stored,
               "stored_p50_s": round(float(st[0]), 3), "stored_p99_s": round(float(st[1]), 3),
               "transcribed_p50_s": pct(lat_t, 0.5), "transcribed_p99_s": pct(lat_t, 0.99),
               "hinted_p50_s": pct(lat_h, 0.5), "hinted_p99_s": pct(lat_h, 0.99),
               "file_bytes_per_message": round(file_bytes / max(1, n)),
               "disk_bytes_per_message": round(disk_bytes / max(1, n)),
               "media_table_bytes_per_message": round(table_bytes / max(1, n)),
               "worker_vmhwm_mb": [round(k / 1024, 1) for k in hwm],
               "transcriptions": sum(1 for x in ai.calls()["calls"] if x["body"].get("kind") == "transcription")}
        line = json.dumps(out)
        print(line)
        os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
        with open(RESULTS, "a") as f:
            f.write(line + "\n")
        assert stored == n and len(lat_t) == n and len(lat_h) == n, out
    finally:
        s.stop()
        s.destroy()
        ai.stop()
        gw.stop()


if __name__ == "__main__":
    main()
