"""The end-to-end checker of `make chaos` (issue 18, "Prove it").

From what the load generator wrote (`atende bench --ids FILE --events FILE`: every message it
posted with its HTTP outcome, and every message/hint event and reset its company:C watcher got),
the database (`messages`, `hints`, `outbound_requests`, read through `atende psql`) and what the
fake gateway was sent (a JSON file of the replies the chaos consoles had acknowledged and of the
sends the gateway answered 2xx), it counts:

- lost: acknowledged (HTTP 200) but not stored;
- duplicated: a message stored twice, a message covered by two hints, a reply the gateway
  accepted twice (2xx for the same text more than once);
- unhinted: a stored customer message whose coaching decision never came (no hint_id and no
  messages.coaching outcome), once the system has drained;
- missed_events: a stored message of the watched company whose `message` event the watcher never
  received, although it was connected (resuming with since/epoch after each drop). A missing event
  whose message was stored between a drop of the watcher and the `reset` frame that answered its
  resume (2 s either side) is counted as "reset" instead: the notifier could not resume, and a
  console reloads then (INTERFACE.md);
- replies_lost: a reply the notifier acknowledged that no worker ever claimed (no outbound_requests
  row) or that is still 'sending' after the drain.

Prints one JSON report on stdout; exit 1 when any of lost, duplicated, unhinted, missed_events or
replies_lost is non-zero, 0 otherwise.

usage: check.py -c CONF --ids FILE --events FILE [--replies FILE] [--faults FILE]
"""
import argparse
import collections
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = 5


def sql(conf, query):
    """Rows of a query through `atende psql` (the ops path), as lists of strings."""
    r = subprocess.run([os.path.join(ROOT, "bin", "atende"), "psql", "-c", conf, "--", "-X", "-A", "-t", "-F", "\t",
                        "-c", query], cwd=os.path.dirname(os.path.abspath(conf)), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"atende psql failed ({r.returncode}): {r.stderr.strip()}")
    return [line.split("\t") for line in r.stdout.splitlines() if line]


def read_ids(path):
    """{provider id: (acked, status)} and the run's id prefix."""
    out = {}
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 3:
                out[parts[0]] = (parts[1] == "1", int(parts[2]))
    prefix = ""
    if out:
        first = next(iter(out))
        prefix = first[:first.index("-") + 1]
    return out, prefix


def read_events(path):
    """Message event ids (Counter), hint ids (Counter), drops [(t)], resets [(t, frame)], end time."""
    msgs, hints = collections.Counter(), collections.Counter()
    drops, resets, end = [], [], None
    with open(path) as f:
        for line in f:
            kind, _, rest = line.rstrip("\n").partition("\t")
            if kind == "message":
                msgs[rest] += 1
            elif kind == "hint":
                hints[rest] += 1
            elif kind == "drop":
                drops.append(float(rest.split("\t")[0]))
            elif kind == "reset":
                t, _, frame = rest.partition("\t")
                resets.append((float(t), frame))
            elif kind == "end":
                end = float(rest)
    return msgs, hints, drops, resets, end


def reset_windows(drops, resets, slack=2.0):
    """[(from, to)]: from the last drop before each reset (minus slack) to the reset (plus slack)."""
    out = []
    for t, _ in resets:
        before = [d for d in drops if d <= t]
        out.append(((before[-1] if before else t) - slack, t + slack))
    return out


def check(conf, ids_path, events_path, replies_path=None, faults_path=None):
    ids, prefix = read_ids(ids_path)
    acked = {i for i, (ok, _) in ids.items() if ok}
    statuses = collections.Counter(str(s) for _, s in ids.values())
    msgs, hint_events, drops, resets, end = read_events(events_path)
    like = prefix.replace("_", r"\_").replace("%", r"\%") + "%"

    stored = {}
    for pid, n, hinted, decided, created in sql(conf, (
            "select provider_id, count(*), count(hint_id), count(coaching), "
            "extract(epoch from max(created_at)) from messages "
            f"where provider_id like '{like}' and not from_me group by provider_id")):
        stored[pid] = (int(n), int(hinted), int(decided), float(created))
    lost = sorted(acked - stored.keys())
    dup_stored = sorted(p for p, v in stored.items() if v[0] > 1)
    unhinted = sorted(p for p, v in stored.items() if v[1] == 0 and v[2] == 0)
    coaching = collections.Counter(r[0] for r in sql(conf, (
        "select coalesce(split_part(coaching, ':', 1), 'null') from messages "
        f"where provider_id like '{like}' and not from_me")))
    dup_hinted = [r[0] for r in sql(conf, (
        "select m.provider_id from hints h cross join unnest(h.message_ids) x(id) "
        "join messages m on m.id = x.id "
        f"where m.provider_id like '{like}' group by m.provider_id having count(distinct h.id) > 1"))]

    # events: what the watcher should have got, i.e. messages stored while it was there
    windows = reset_windows(drops, resets)
    missed, by_reset, after_end = [], [], 0
    for pid, (_, _, _, created) in stored.items():
        if msgs[pid]:
            continue
        if end is not None and created > end - 1.0:
            after_end += 1  # stored (nearly) after the watcher left: nothing to receive
        elif any(a <= created <= b for a, b in windows):
            by_reset.append(pid)
        else:
            missed.append(pid)
    dup_events = sorted(p for p, n in msgs.items() if n > 1 and p.startswith(prefix))
    dup_hint_events = sorted(p for p, n in hint_events.items() if n > 1 and p.startswith(prefix))

    replies = {}
    dup_replies, replies_lost = [], []
    if replies_path:
        with open(replies_path) as f:
            rep = json.load(f)
        accepted = collections.Counter(rep.get("gateway_2xx_texts", []))
        dup_replies = sorted(t for t, n in accepted.items() if n > 1)
        rows = {r[0]: (r[1], int(r[2])) for r in sql(conf, "select request_id, status, attempts from outbound_requests")}
        status = collections.Counter()
        for req in rep.get("acked", []):
            row = rows.get(req["request_id"])
            if row is None or row[0] == "sending":
                replies_lost.append(req["request_id"])
            status[row[0] if row else "no row"] += 1
        texts_acked = {r["text"] for r in rep.get("acked", [])}
        replies = {"asked": rep.get("asked", 0), "acked_by_notifier": len(rep.get("acked", [])),
                   "refused_by_notifier": rep.get("refused", 0),
                   "by_status": dict(status), "gateway_posts": rep.get("gateway_posts", 0),
                   "gateway_2xx": sum(accepted.values()),
                   "gateway_2xx_unknown_text": len([t for t in accepted if t not in texts_acked])}

    report = {
        "prefix": prefix,
        "posted": len(ids), "acked": len(acked), "by_status": dict(statuses),
        "stored": len(stored), "stored_not_acked": len(stored.keys() - acked),
        "coaching": dict(coaching),
        "lost": len(lost),
        "duplicated": {"stored": len(dup_stored), "hinted": len(dup_hinted), "replies": len(dup_replies)},
        "unhinted": len(unhinted),
        "missed_events": len(missed),
        "reset": {"frames": len(resets), "messages": len(by_reset), "drops": len(drops)},
        "events": {"message_ids": len(msgs), "duplicate_message_events": len(dup_events),
                   "duplicate_hint_events": len(dup_hint_events), "stored_after_watcher_left": after_end},
        "replies": replies, "replies_lost": len(replies_lost),
        "examples": {k: v[:EXAMPLES] for k, v in (
            ("lost", lost), ("duplicated_stored", dup_stored), ("duplicated_hinted", dup_hinted),
            ("duplicated_replies", dup_replies), ("unhinted", unhinted), ("missed_events", missed),
            ("reset", by_reset), ("replies_lost", replies_lost),
            ("resets", [f for _, f in resets])) if v},
    }
    if faults_path and os.path.exists(faults_path):
        with open(faults_path) as f:
            report["faults"] = json.load(f)
    failures = (report["lost"] + sum(report["duplicated"].values()) + report["unhinted"] + report["missed_events"] +
                report["replies_lost"])
    report["pass"] = failures == 0
    return report


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-c", dest="conf", required=True)
    ap.add_argument("--ids", required=True)
    ap.add_argument("--events", required=True)
    ap.add_argument("--replies")
    ap.add_argument("--faults")
    a = ap.parse_args()
    report = check(a.conf, a.ids, a.events, a.replies, a.faults)
    print(json.dumps(report, indent=1, ensure_ascii=False))
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
