"""The embedded broker is in memory: when it dies, the supervisor starts a new one,
restarts the pipeline against it and bumps the epoch, so consoles that resume with the
old epoch are told to reset, and new messages flow again."""
import json
import os
import signal

from harness import BIN, wait_for
from test_foundation import evolution_text


def processes(system):
    return json.loads(system.cli("status", "--json", check=False).stdout or "{}")


def test_broker_restart_restarts_the_pipeline_with_a_new_epoch(system):
    console = system.ws(system.token(1, 1))
    epoch = console.subscribe("company:1")["epoch"]
    assert system.evolution(evolution_text("BEFORE-1", "quero parcelar a fatura atrasada")).status == 200
    before = console.wait(lambda f: f["type"] == "hint" and f["data"]["message_id"] == "BEFORE-1")
    console.close()

    status = processes(system)
    broker = [p for p in status["processes"] if p["role"] == "broker"][0]
    old_pids = {p["role"] + str(p["index"]): p["pid"] for p in status["processes"]}
    os.kill(broker["pid"], signal.SIGKILL)

    def pipeline_renewed():
        s = processes(system)
        if not s.get("ok") or s.get("epoch") == status["epoch"]:
            return False
        now = {p["role"] + str(p["index"]): p["pid"] for p in s["processes"]}
        return all(now[k] != old_pids[k] for k in ("broker0", "ingress0", "worker0", "worker1", "notifier0"))

    wait_for(pipeline_renewed, timeout=60, what="a new broker and a restarted pipeline")
    wait_for(system.healthy, timeout=60, what="the system to be healthy again")

    stale = system.ws(system.token(1, 1))
    ack = stale.subscribe("company:1", since=before["seq"], epoch=epoch)
    assert ack["epoch"] != epoch
    reset = stale.wait(lambda f: f["type"] == "reset")
    assert reset["channel"] == "company:1"
    assert system.evolution(evolution_text("AFTER-1", "quero cancelar meu contrato")).status == 200
    stale.wait(lambda f: f["type"] == "hint" and f["data"]["message_id"] == "AFTER-1", timeout=30)
    # what was stored before the broker died is still in PostgreSQL, once
    assert system.sql("select count(*) from messages where provider_id in ('BEFORE-1','AFTER-1')") == [["2"]]
    assert "embedded broker restarted" in system.log_text()
    # the new broker is started like the first: on the patched librdkafka when it is built
    patched = os.path.exists(os.path.join(BIN, "rdkafka-mock", "librdkafka.so.1"))
    assert processes(system)["broker_library"] == ("patched" if patched else "stock")
    stale.close()


def test_topics_lists_the_domains(system):
    out = system.cli("topics").stdout
    for d in ("financeiro", "comercial", "suporte", "ouvidoria", "cancelamento"):
        assert f"atende.inbound.{d}" in out
    topics = {t["topic"]: t for t in json.loads(system.cli("topics", "--json").stdout)}
    assert topics["atende.events"]["partitions"] == 4 and topics["atende.dlq"]["exists"] and topics["atende.typing"]["exists"]
    suporte = topics["atende.inbound.suporte"]["partition_offsets"]
    assert sum(p["high"] for p in suporte) >= 1  # AFTER-1 went through this topic
    assert all(p["lag"] >= 0 for p in suporte)
