"""Operations on a real system: the merged /metrics with traffic flowing (Prometheus text,
the families ops rely on), alert rules and dashboards that only query metrics the code
exports, status, dead letters (list, show, replay), retention on back-dated rows (archive,
then drop exactly the old partitions), the deployment files, and SIGHUP log levels."""
import configparser
import csv
import glob
import gzip
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from harness import BIN, ROOT, System, fixture, http, wait_for, serve
from test_foundation import evolution_text

try:
    from fakeai import FakeAI
except ImportError:  # the AI families are then checked only as far as the code declares them
    FakeAI = None

AI = FakeAI().start() if FakeAI else None
PROMTOOL = shutil.which("promtool")


@pytest.fixture(scope="module")
def system():
    extra = {r"interval_s = 3600;": "interval_s = 86400;"}  # retention: once at start, then by hand
    if AI:
        extra.update({r'provider = "rules";': 'provider = "openai";',
                      r'base_url = "";': f'base_url = "{AI.base_url}";'})
    s = System(name="ops", extra=extra)
    yield from serve(s)


def count(system, sql):
    return int(system.sql(sql)[0][0])


def kcat_produce(system, topic, key, payload):
    subprocess.run(["kcat", "-b", f"127.0.0.1:{system.ports['kafka']}", "-P", "-t", topic, "-k", key],
                   input=payload, text=True, check=True, timeout=30)


def canonical(provider_id, received_at, text="minha internet caiu desde ontem", customer="5511900007777"):
    """A canonical inbound event, as the ingress produces it."""
    key = f"evolution:demo:{customer}"
    return key, json.dumps({"v": 1, "type": "message", "company": 1, "channel": "evolution:demo", "domain": "suporte",
                            "conversation": key, "customer": customer, "provider_id": provider_id, "from_me": False,
                            "kind": "text", "text": text, "sender_name": "Ops", "sent_at": None,
                            "received_at": received_at})


# --- metric names the code exports ------------------------------------------------------

def code_metric_names():
    """Every metric family the C code declares: metrics_family("...") calls and families
    written by hand (the supervisor's own, "# TYPE name type" in C strings)."""
    names = set()
    for path in glob.glob(os.path.join(ROOT, "*", "*.c")):
        if "/test/" in path:
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        names.update(re.findall(r'metrics_family\(\s*"(atende_[a-z0-9_]+)"', text))
        names.update(re.findall(r'# TYPE (atende_[a-z0-9_]+) ', text))
        names.update(re.findall(r'\{(?:\d+, )?"(atende_[a-z0-9_]+)", "', text))  # rows of a table of families
    return names


def base_name(name):
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in code_metric_names():
            return name[: -len(suffix)]
    return name


def exprs_metric_names(expr):
    return {base_name(n) for n in re.findall(r"\b(atende_[a-z0-9_]+)", expr)}


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\})? '
                    r'(-?[0-9.eE+-]+|NaN|[+-]Inf)( -?[0-9]+)?$')


def parse_prometheus(text):
    """Strict parse of the text exposition format: {family: type} and [(name, labels, value)]."""
    types, samples = {}, []
    for line in text.splitlines():
        if not line or line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert name not in types, f"TYPE of {name} twice"
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            types[name] = kind
            continue
        assert not line.startswith("#"), line
        m = SAMPLE.match(line)
        assert m, f"not Prometheus text: {line!r}"
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        samples.append((m.group(1), labels, float(m.group(4))))
    return types, samples


# --- tests ---------------------------------------------------------------------------------

def test_retention_runs_on_schedule_at_start(system):
    """The supervisor runs `atende retention` at start: this week's partitions and the ones ahead exist."""
    # "retention pid" alone also matches the run's own "proc=retention pid=N" lines, logged
    # before the supervisor has reaped it: wait for the supervisor's verdict
    wait_for(lambda: re.search(r"retention pid \d+ (done|failed)", system.log_text()),
             what="the scheduled retention run")
    assert re.search(r"retention pid \d+ done", system.log_text()), system.tail()
    own = http("GET", system.url("metrics", "/metrics")).body.decode()
    assert 'atende_retention_runs_total{result="ok"} 1' in own
    assert not re.search(r"atende_retention_last_success_seconds 0\n", own)
    ahead = count(system, "select count(*) from atende_partitions(0) where attached and tbl = 'messages' "
                          "and week_start > now()")
    assert ahead >= 4


def test_metrics_are_prometheus_text_with_the_families(system):
    console = system.ws(system.token(1, 1))
    console.subscribe("company:1")
    for i in range(5):
        assert system.evolution(evolution_text(f"OPS-M{i}", "minha fatura veio com valor errado, pode verificar?",
                                               customer=f"55119000010{i}")).status == 200
    assert system.post("/webhooks/evolution", b"nope", {"apikey": "demo-evolution-key"}).status == 400
    console.wait(lambda f: f["type"] == "hint" and f["data"]["message_id"] == "OPS-M4", timeout=60)
    console.close()
    declared = code_metric_names()
    required = {"atende_process_up", "atende_process_restarts_total", "atende_broker_epoch",
                "atende_ingress_requests_total", "atende_ingress_request_seconds", "atende_ingress_produce_seconds",
                "atende_ingress_connections", "atende_ingress_refused_total", "atende_worker_messages_total",
                "atende_worker_consumer_lag", "atende_worker_batch_size", "atende_worker_db_seconds",
                "atende_worker_hints_total", "atende_worker_hint_seconds", "atende_worker_dead_letters_total"}
    # AI, cache, limits and the notifier's families: as far as the code declares them (in its registry)
    wanted = {"atende_worker_ai_calls_total", "atende_worker_ai_tokens_total", "atende_worker_ai_cost_usd_total",
              "atende_worker_ai_breaker_state", "atende_worker_ai_in_flight", "atende_worker_cache_lookups_total",
              "atende_worker_limit_refusals_total", "atende_notifier_connections", "atende_notifier_deliveries_total",
              "atende_notifier_slow_consumer_cuts_total"}
    in_registry = set()
    for path in glob.glob(os.path.join(ROOT, "*", "*.c")):
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
            in_registry.update(re.findall(r'metrics_family\(\s*"(atende_[a-z0-9_]+)"', text))
            in_registry.update(re.findall(r'\{"(atende_[a-z0-9_]+)", "', text))
    if not AI:
        in_registry = {n for n in in_registry if not n.startswith("atende_worker_ai_")}
    required |= wanted & in_registry
    assert required <= declared | {"atende_process_up"}

    def scrape():
        text = http("GET", system.url("metrics", "/metrics")).body.decode()
        types, samples = parse_prometheus(text)
        names = {n for n, _, _ in samples}
        missing = [f for f in required if f not in types]
        ok = not missing and 'atende_ingress_requests_total' in names and \
            any(n == "atende_worker_hint_seconds_count" and v > 0 for n, _, v in samples)
        if AI and "atende_worker_ai_calls_total" in required:
            ok = ok and any(n == "atende_worker_ai_calls_total" and "model" in l for n, l, _ in samples)
        return (text, types, samples) if ok else None

    text, types, samples = wait_for(scrape, timeout=30, what="every family in the merged /metrics")
    for name, labels, _ in samples:
        if name.startswith("atende_") and not name.startswith(("atende_broker_epoch", "atende_retention_")):
            assert "process" in labels and "index" in labels, (name, labels)
    assert types["atende_worker_hint_seconds"] == "histogram"
    assert any(n == "atende_worker_hint_seconds_bucket" and l.get("le") == "+Inf" for n, l, _ in samples)
    assert any(n == "atende_ingress_requests_total" and l.get("status") == "400" for n, l, _ in samples)
    if PROMTOOL:
        r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=30)
        assert "error while linting" not in r.stdout and "text format parsing error" not in r.stdout, r.stdout


def test_alert_rules_pass_promtool_and_use_existing_metrics():
    path = os.path.join(ROOT, "deploy", "prometheus", "alerts.yml")
    with open(path) as f:
        text = f.read()
    exprs = re.findall(r"expr: \|\n((?:\s{12}.*\n)+)|expr: (.+)", text)
    exprs = [a or b for a, b in exprs]
    assert len(exprs) >= 15
    declared = code_metric_names()
    used = set().union(*(exprs_metric_names(e) for e in exprs))
    assert not used - declared, f"alerts query metrics the code does not export: {sorted(used - declared)}"
    for topic in ("lag", "Latency", "Failure", "RateLimited", "Cost", "DBSlow", "Connection", "DLQ", "RestartLoop"):
        assert topic in text, topic
    if not PROMTOOL:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    r = subprocess.run([PROMTOOL, "check", "rules", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=60)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout


def test_dashboards_import_and_query_what_exists(system):
    declared = code_metric_names()
    files = sorted(glob.glob(os.path.join(ROOT, "deploy", "grafana", "*.json")))
    names = {os.path.basename(f) for f in files}
    assert {"queue-health.json", "database.json", "ai.json", "conversations.json", "realtime.json"} <= names
    uids = set()
    for path in files:
        with open(path) as f:
            dash = json.load(f)
        assert dash["title"] and dash["uid"] not in uids and dash["panels"], path
        uids.add(dash["uid"])
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids)), path
        for inp in dash.get("__inputs", []):
            assert inp["type"] == "datasource" and "${%s}" % inp["name"] in json.dumps(dash), (path, inp)
        for panel in dash["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["targets"] and panel["gridPos"]["w"] <= 24, (path, panel["title"])
            for t in panel["targets"]:
                if "expr" in t:
                    missing = exprs_metric_names(t["expr"]) - declared
                    assert exprs_metric_names(t["expr"]), (path, panel["title"])
                    assert not missing, f"{os.path.basename(path)} / {panel['title']}: no such metric {missing}"
                else:
                    # SQL panels run against the real schema (Grafana's time macro replaced)
                    sql = re.sub(r"\$__timeFilter\(([^)]+)\)", r"\1 > now() - interval '7 days'", t["rawSql"])
                    assert "$__" not in sql, sql
                    system.sql(sql.replace("\n", " "))


def test_status_shows_processes_rates_lag_dlq_and_limits(system):
    for i in range(3):
        system.evolution(evolution_text(f"OPS-S{i}", "quero saber os planos de 300 mega", customer=f"55119000020{i}"))
    r = system.cli("status", "--json", "--interval", "0.5", check=False)
    status = json.loads(r.stdout)
    assert r.returncode == 0, r.stderr
    roles = {(p["role"], p["index"]) for p in status["processes"]}
    assert {("ingress", 0), ("worker", 0), ("worker", 1), ("notifier", 0), ("postgres", 0), ("broker", 0)} <= roles
    for p in status["processes"]:
        assert {"role", "index", "pid", "up", "restarts"} <= set(p) and p["up"] is True
    ingress = [p for p in status["processes"] if p["role"] == "ingress"][0]
    assert "atende_ingress_requests_total" in ingress["rates"]
    assert isinstance(status["lag"]["total"], (int, float)) and status["lag"]["total"] >= 0
    assert isinstance(status["dlq_pending"], int)
    assert status["limits"]["ingress_connections"]["max"] == 10000
    assert status["limits"]["partition_backlog_bytes"]["max"] == 3145728
    assert 0.4 < status["interval_s"] < 2
    human = system.cli("status", "--interval", "0.2").stdout
    for word in ("PROCESS", "RESTARTS", "worker", "lag", "dlq", "limits"):
        assert word in human, human


def test_dlq_list_show_and_replay(system):
    """A message whose week has no partition (three years ahead) fails its retries and is
    dead-lettered; once the partition exists, a replay stores it, once."""
    future = time.strftime("%Y-%m-%dT12:00:00Z", time.gmtime(time.time() + 3 * 365 * 86400))
    key, payload = canonical("OPS-FUTURE-1", future)
    kcat_produce(system, "atende.inbound.suporte", key, payload)
    wait_for(lambda: system.sql("select id from dlq where provider_id = 'OPS-FUTURE-1'"), timeout=30,
             what="the dead letter")
    dlq_id = int(system.sql("select id from dlq where provider_id = 'OPS-FUTURE-1'")[0][0])
    pending = json.loads(system.cli("dlq", "list", "--json").stdout)
    row = [d for d in pending if d["id"] == dlq_id][0]
    assert row["topic"] == "atende.inbound.suporte" and row["replayed_at"] is None and "partition" in row["error"]
    assert str(dlq_id) in system.cli("dlq", "list").stdout
    shown = json.loads(system.cli("dlq", "show", str(dlq_id), "--json").stdout)
    assert json.loads(shown["payload"])["provider_id"] == "OPS-FUTURE-1" and shown["key"] == key
    assert "payload" in system.cli("dlq", "show", str(dlq_id)).stdout
    assert system.cli("dlq", "show", "999999", check=False).returncode == 1

    system.sql(f"select count(*) from atende_create_partitions(0, '{future}')")
    out = system.cli("dlq", "replay", str(dlq_id)).stdout
    assert f"replayed {dlq_id}" in out
    wait_for(lambda: count(system, "select count(*) from messages where provider_id = 'OPS-FUTURE-1'") == 1,
             what="the replayed message to be stored")
    assert dlq_id not in [d["id"] for d in json.loads(system.cli("dlq", "list", "--json").stdout)]
    everything = json.loads(system.cli("dlq", "list", "--all", "--json").stdout)
    assert [d for d in everything if d["id"] == dlq_id][0]["replayed_at"]
    # replaying again is harmless: storage is idempotent
    assert json.loads(system.cli("dlq", "replay", str(dlq_id), "--json").stdout)[0]["replayed"] is True
    marker_key, marker = canonical("OPS-FUTURE-MARK", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    kcat_produce(system, "atende.inbound.suporte", marker_key, marker)
    wait_for(lambda: count(system, "select count(*) from messages where provider_id = 'OPS-FUTURE-MARK'") == 1,
             what="a message after the second replay")
    assert count(system, "select count(*) from messages where provider_id = 'OPS-FUTURE-1'") == 1
    assert "0 replayed, 0 failed" in system.cli("dlq", "replay", "--all").stdout
    assert system.cli("dlq", "replay", check=False).returncode == 2


def test_retention_archives_and_drops_exactly_the_old_partitions(system):
    old = time.time() - 120 * 86400
    old_ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(old))
    system.sql("select count(*) from atende_create_partitions(0, now() - interval '130 days')")
    batch = json.dumps([{"company": 1, "channel": "evolution:demo", "customer": "5511900030000", "domain": "suporte",
                         "provider_id": f"OPS-OLD-{i}", "from_me": False, "text": f"mensagem antiga {i}, com \"aspas\"\n"
                         "e quebra de linha", "received_at": old_ts} for i in range(3)])
    system.sql(f"select count(*) from atende_ingest('{batch}'::jsonb)")
    system.sql("insert into hints (message_id, message_ids, conversation_id, company_id, domain, intent, text, source, "
               f"created_at) select id, array[id], conversation_id, 1, 'suporte', 'other', 'dica antiga', 'rules', "
               f"'{old_ts}' from messages where provider_id in ('OPS-OLD-0', 'OPS-OLD-1')")
    # a voice note's media row goes with its message's week (schema/013)
    system.sql("insert into media (company_id, message_id, conversation_id, received_at, kind, status, error) "
               "select 1, id, conversation_id, received_at, 'audio', 'failed', 'test' from messages "
               "where provider_id = 'OPS-OLD-0' returning id")
    before = {tuple(r) for r in system.sql("select tbl, part, expired from atende_partitions(90)")}
    expired = {(t, p) for t, p, e in before if e == "t"}
    kept = {(t, p) for t, p, e in before if e == "f"}
    old_week = system.sql(f"select to_char(atende_week_start('{old_ts}') at time zone 'UTC', 'IYYY\"w\"IW')")[0][0]
    assert ("messages", f"messages_{old_week}") in expired and ("hints", f"hints_{old_week}") in expired
    assert ("media", f"media_{old_week}") in expired
    recent = count(system, "select count(*) from messages where received_at > now() - interval '90 days'")
    recent_hints = count(system, "select count(*) from hints where created_at > now() - interval '90 days'")

    dry = json.loads(system.cli("retention", "--dry-run", "--json").stdout)
    assert {(a["table"], a["partition"]) for a in dry["archived"]} == expired
    assert not any(a["dropped"] for a in dry["archived"])
    assert count(system, "select count(*) from messages where provider_id like 'OPS-OLD-%'") == 3

    r = system.cli("retention", "--json")
    report = json.loads(r.stdout)
    assert report["ok"] and report["errors"] == []
    archived = {(a["table"], a["partition"]): a for a in report["archived"]}
    assert set(archived) == expired and all(a["dropped"] for a in archived.values())
    archive_dir = os.path.join(system.dir, "var", "archive")
    assert report["archive_dir"] == archive_dir
    for (tbl, part), a in archived.items():
        week = part.rsplit("_", 1)[1]
        assert a["file"] == os.path.join(archive_dir, f"{tbl}-{week}.csv.gz")
        with gzip.open(a["file"], "rt", newline="") as f:
            rows = list(csv.reader(f))
        assert rows[0][:2] == ["id", "conversation_id"] if tbl == "messages" else rows[0][0] == "id"
        expect = {"messages": 3, "hints": 2, "media": 1}[tbl] if week == old_week else 0
        assert len(rows) - 1 == a["rows"] == expect, (part, rows)
        if tbl == "messages" and expect:
            texts = sorted(r[rows[0].index("text")] for r in rows[1:])
            assert texts[0] == 'mensagem antiga 0, com "aspas"\ne quebra de linha'
    assert not glob.glob(os.path.join(archive_dir, "*.part"))
    after = {(t, p) for t, p, _ in (tuple(r) for r in system.sql("select tbl, part, expired from atende_partitions(90)"))}
    assert after == kept
    assert count(system, "select count(*) from messages where provider_id like 'OPS-OLD-%'") == 0
    assert count(system, "select count(*) from messages where received_at > now() - interval '90 days'") == recent
    assert count(system, "select count(*) from hints where created_at > now() - interval '90 days'") == recent_hints
    # the old messages' ids are forgotten after retention.dedup_days
    assert count(system, "select count(*) from message_keys where provider_id like 'OPS-OLD-%'") == 0
    assert report["keys_pruned"] >= 3
    again = json.loads(system.cli("retention", "--json").stdout)
    assert again["ok"] and again["archived"] == [] and again["created"] == []
    assert "partitions, newest week" in system.cli("retention").stdout


def test_retention_prunes_finished_console_requests_after_dedup_days(system):
    """outbound_requests only answers redeliveries: finished ones go with the gateway ids, unfinished stay."""
    rows = {"OPS-OUT-OLD-DONE": ("40 days", True), "OPS-OUT-OLD-OPEN": ("40 days", False),
            "OPS-OUT-NEW-DONE": ("1 day", True)}
    for rid, (age, done) in rows.items():
        published = f"now() - interval '{age}'" if done else "null"
        system.sql("insert into outbound_requests (request_id, kind, company_id, conversation_id, status, owner, "
                   "lease_until, request, created_at, published_at) values "
                   f"('{rid}', 'reply', 1, 1, 'sent', 'test', now(), '{{}}', now() - interval '{age}', {published})")
    report = json.loads(system.cli("retention", "--json").stdout)
    assert report["ok"] and report["outbound_pruned"] >= 1, report
    left = {r[0] for r in system.sql("select request_id from outbound_requests where request_id like 'OPS-OUT-%'")}
    assert left == {"OPS-OUT-OLD-OPEN", "OPS-OUT-NEW-DONE"}


def test_exactly_once_storage_after_retention(system):
    """The same gateway message twice, past the ingress's memory (straight to Kafka): one row."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    key, payload = canonical("OPS-TWICE-1", now, customer="5511900040000")
    kcat_produce(system, "atende.inbound.suporte", key, payload)
    kcat_produce(system, "atende.inbound.suporte", key, payload)
    marker_key, marker = canonical("OPS-TWICE-MARK", now, customer="5511900040000")
    kcat_produce(system, "atende.inbound.suporte", marker_key, marker)
    wait_for(lambda: count(system, "select count(*) from messages where provider_id = 'OPS-TWICE-MARK'") == 1,
             what="the marker after the duplicates")
    assert count(system, "select count(*) from messages where provider_id = 'OPS-TWICE-1'") == 1
    assert count(system, "select count(*) from message_keys where provider_id = 'OPS-TWICE-1'") == 1
    r = system.evolution(fixture("evolution-messages-upsert-text.json"))
    again = system.evolution(fixture("evolution-messages-upsert-text.json"))
    assert r.status == 200 and again.json() == {"accepted": 0, "duplicates": 1}
    wait_for(lambda: count(system, "select count(*) from messages where provider_id = '3EB0C767D26A1D2A5A3A'") == 1,
             what="the sample to be stored")


def test_sighup_changes_the_log_level(system):
    def bad_request():
        with socket.create_connection(("127.0.0.1", system.ports["ingress"]), timeout=5) as s:
            s.sendall(b"BREW /coffee HTCPCP/1.0\r\n\r\n")
            s.recv(4096)

    bad_request()
    time.sleep(0.3)
    assert "level=debug" not in system.log_text()
    system.write_config(**{r'level = "info";': 'level = "debug";'})
    os.kill(system.proc.pid, signal.SIGHUP)
    try:
        wait_for(lambda: system.log_text().count("reload: configuration applied") >= 1, what="the reload")
        wait_for(lambda: (bad_request(), "level=debug proc=ingress" in system.log_text())[1], timeout=15,
                 interval=0.3, what="a debug line from the ingress")
    finally:
        system.write_config()
        os.kill(system.proc.pid, signal.SIGHUP)


def test_verbs_have_help_and_the_production_sample_is_valid():
    atende = os.path.join(BIN, "atende")
    top = subprocess.run([atende, "--help"], stdout=subprocess.PIPE, text=True).stdout
    for verb in ("status", "topics", "dlq", "token", "migrate", "check-config", "retention", "agent"):
        assert verb in top
        r = subprocess.run([atende, verb, "--help"], stdout=subprocess.PIPE, text=True)
        assert r.returncode == 0 and r.stdout.startswith(f"usage: atende {verb}"), (verb, r.stdout)
    for conf in ("atende.conf", "bench.conf"):
        r = subprocess.run([atende, "check-config", "-c", os.path.join("deploy", conf)], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert r.returncode == 0, (conf, r.stderr)
    with open(os.path.join(ROOT, "deploy", "atende.production.conf")) as f:
        prod = f.read()
    # the production sample's placeholders are refused, each named by file:line ...
    r = subprocess.run([atende, "check-config", "-c", "deploy/atende.production.conf"], cwd=ROOT,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert r.returncode != 0
    lines = prod.splitlines()
    for key in ("token_secret", "api_key", "key", "app_secret", "verify_token", "access_token"):
        line = next(i + 1 for i, l in enumerate(lines) if re.search(rf'\b{key} = "(sk-)?change-me', l))
        assert re.search(rf'deploy/atende.production.conf:{line}: .*{key}.* the sample.s placeholder', r.stderr), (key, r.stderr)
    # ... and once real secrets are set, the sample is valid
    real = re.sub(r'"(sk-)?change-me[^"]*"', lambda m: '"' + "s3cr3t-" + str(abs(hash(m.group(0))))[:12] + '"', prod)
    with tempfile.NamedTemporaryFile("w", suffix=".conf", dir=os.path.join(ROOT, "deploy"), delete=False) as f:
        f.write(real)
    try:
        r = subprocess.run([atende, "check-config", "-c", f.name], cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        assert r.returncode == 0, r.stderr
    finally:
        os.unlink(f.name)
    assert re.search(r'brokers = "[^"]+";', prod) and re.search(r'conninfo = "[^"]+";', prod)
    assert "PgBouncer" in prod and "transaction" in prod


def test_empty_credentials_are_refused(tmp_path):
    """An empty key, app_secret or verify_token would let anyone in: refused with file:line."""
    with open(os.path.join(ROOT, "deploy", "atende.conf")) as f:
        text = f.read()
    text = text.replace('key = "demo-evolution-key"', 'key = ""').replace('app_secret = "demo-app-secret"', 'app_secret = ""')
    text = text.replace('verify_token = "demo-verify-token"', 'verify_token = ""')
    conf = tmp_path / "empty.conf"
    conf.write_text(text)
    lines = text.splitlines()
    for verb in ("check-config", "run"):
        r = subprocess.run([os.path.join(BIN, "atende"), verb, "-c", str(conf)], cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=60)
        assert r.returncode != 0
        marks = {"key": 'instance = "demo"; key = ""', "app_secret": 'app_secret = ""',
                 "verify_token": 'verify_token = ""'}
        for key, mark in marks.items():
            line = next(i + 1 for i, l in enumerate(lines) if mark in l)
            assert f'{conf}:{line}: channels: "{key}" is empty' in r.stderr, (verb, key, r.stderr)


def test_kafka_properties_reach_librdkafka_checked_at_load(tmp_path):
    """TLS and SASL settings pass through to librdkafka as they are; librdkafka checks each at
    load, so a typo is a file:line error, not a client that fails at 3 a.m."""
    with open(os.path.join(ROOT, "deploy", "atende.conf")) as f:
        base = f.read()
    def check(brokers, props):
        text = base.replace('brokers = "";', f'brokers = "{brokers}";')
        text = text.replace('properties = "";', f'properties = "{props}";')
        conf = tmp_path / "kafka.conf"
        conf.write_text(text)
        line = next(i + 1 for i, l in enumerate(text.splitlines()) if l.strip().startswith("properties = "))
        r = subprocess.run([os.path.join(BIN, "atende"), "check-config", "-c", str(conf)], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
        return r, f"{conf}:{line}: "

    good = ("security.protocol=SASL_SSL; sasl.mechanism=SCRAM-SHA-512; sasl.username=atende; "
            "sasl.password=s3cr3t; ssl.ca.location=/etc/ssl/certs/ca-certificates.crt")
    r, _ = check("k1:9092", good)
    assert r.returncode == 0, r.stderr
    r, at = check("k1:9092", "security.protocol=SASL_SSL; sasl.mechanizm=PLAIN")
    assert r.returncode != 0 and at + "kafka.properties: " in r.stderr and "sasl.mechanizm" in r.stderr, r.stderr
    r, at = check("k1:9092", "security.protocol=carrier-pigeon")
    assert r.returncode != 0 and at in r.stderr and "security.protocol" in r.stderr, r.stderr
    r, at = check("k1:9092", "just-a-word")
    assert r.returncode != 0 and at + 'kafka.properties: "just-a-word" is not key=value' in r.stderr, r.stderr
    r, at = check("", good)
    assert r.returncode != 0 and at + "kafka.properties needs kafka.brokers" in r.stderr, r.stderr


def test_supervisord_and_systemd_units_run_atende_in_the_foreground():
    ini = configparser.ConfigParser(inline_comment_prefixes=(";",))
    ini.read(os.path.join(ROOT, "deploy", "supervisord.conf"))
    prog = ini["program:atende"]
    assert re.search(r"bin/atende run -c \S+", prog["command"])
    # a service manager must wait longer than the whole drain, or its SIGKILL cuts it short
    with open(os.path.join(ROOT, "deploy", "atende.production.conf")) as f:
        drain = int(re.search(r"shutdown_timeout_s = (\d+);", f.read()).group(1))
    assert prog["stopsignal"] == "TERM" and int(prog["stopwaitsecs"]) >= drain + 5
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(os.path.join(ROOT, "deploy", "atende.service"))
    svc = unit["Service"]
    assert svc["Type"] == "simple" and re.search(r"bin/atende run -c \S+", svc["ExecStart"])
    assert "HUP" in svc["ExecReload"] and svc["KillMode"] == "mixed"
    assert int(svc["TimeoutStopSec"]) >= drain + 5
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_roles_run_a_subset_of_the_processes():
    """Scaling out: a machine with supervisor.roles = "worker notifier" runs no ingress."""
    s = System(name="ops-roles", extra={r'roles = "ingress worker notifier";': 'roles = "worker notifier";'})

    def metrics_up():
        try:
            return http("GET", s.url("metrics", "/healthz"), timeout=2).status == 200
        except OSError:
            return False

    try:
        s.log = open(s.log_path, "ab")
        s.proc = subprocess.Popen([os.path.join(BIN, "atende"), "run", "-c", s.conf], cwd=s.dir, stdout=s.log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: metrics_up() or s.proc.poll() is not None, 90, "the supervisor to be healthy")
        assert s.proc.poll() is None, s.tail()
        status = json.loads(s.cli("status", "--json", "--interval", "0.1").stdout)
        assert sorted(p["role"] for p in status["processes"]) == ["broker", "notifier", "postgres", "worker", "worker"]
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", s.ports["ingress"]), timeout=1).close()
        assert "atende running (worker notifier)" in s.log_text()
        assert s.stop() == 0 and s.leftover_processes() == []
    finally:
        s.destroy()


def test_batch_wait_stores_a_slow_burst_in_one_transaction(system):
    """workers.batch_wait_ms (reload): a batch waits that long from its first message, so three
    messages the ingress received 150 ms apart are stored by one statement (one transaction:
    one xmin), where at once (0) or after the default 100 ms each would have been a batch of its
    own on an idle worker."""
    reloads = system.log_text().count("reload: configuration applied")
    system.write_config(**{r"batch_wait_ms = 100;": "batch_wait_ms = 1000;"})
    os.kill(system.proc.pid, signal.SIGHUP)
    try:
        wait_for(lambda: system.log_text().count("reload: configuration applied") > reloads, what="the reload")
        ids = [f"OPS-WAIT-{k}" for k in range(3)]
        for k, provider_id in enumerate(ids):
            if k:
                time.sleep(0.15)  # the customer types the next one (the scenario, not a wait for a condition)
            assert system.evolution(evolution_text(provider_id, f"mensagem {k} de uma rajada lenta",
                                                   customer="5511900006161")).status == 200
        listed = "', '".join(ids)
        wait_for(lambda: count(system, f"select count(*) from messages where provider_id in ('{listed}')") == 3,
                 what="the three messages stored")
        rows = system.sql(f"select count(distinct xmin::text), extract(epoch from max(received_at) - min(received_at)) "
                          f"from messages where provider_id in ('{listed}')")
        assert rows[0][0] == "1" and float(rows[0][1]) >= 0.3, rows
    finally:
        system.write_config()
        os.kill(system.proc.pid, signal.SIGHUP)
        wait_for(lambda: system.log_text().count("reload: configuration applied") > reloads + 1, what="the reload back")
