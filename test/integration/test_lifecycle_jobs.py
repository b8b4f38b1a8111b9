"""Lifecycle jobs with shortened timers (follow-ups after 2 s and 4 s of the customer's
silence, auto-resolve after 6 s): each is sent or applied once through the outbound path
and reaches the fake gateway once; nothing is sent to a customer who answered; after a
resolve the NPS survey goes out, a score answer is stored without reopening, anything else
reopens; two workers (and two concurrent callers of atende_lifecycle_due) never take the
same job."""
import json
import os
import signal
import subprocess
import time

import pytest

from harness import BIN, System, http, serve, wait_for
from test_foundation import evolution_text

F1, F2, RESOLVE = 2, 4, 6
F1_TEXT = "Olá! Ainda está por aí? Se precisar de mais alguma coisa, é só responder."
F2_TEXT = ("Como não tivemos resposta, vamos encerrar este atendimento em breve. "
           "Se ainda precisar de ajuda, é só responder.")
NPS_TEXT = ("Seu atendimento foi encerrado. De 0 a 10, quanto você recomendaria nosso atendimento? "
            "Responda só com o número.")


@pytest.fixture(scope="module")
def system(gateway):
    s = System(name="test_lifecycle_jobs", extra={
        r'url = "http://127.0.0.1:8090";': f'url = "{gateway.url}";',
        r'tick_ms = 1000;': 'tick_ms = 200;',
        r'followup1_after_s = 600;': f'followup1_after_s = {F1};',
        r'followup2_after_s = 1200;': f'followup2_after_s = {F2};',
        r'auto_resolve_after_s = 7200;': f'auto_resolve_after_s = {RESOLVE};',
        r'survey = "off";': 'survey = "nps";',  # off in deploy/atende.conf
        r'business_interval_s = 30;': 'business_interval_s = 1;',
        # company 3: one conversation, for the business figures (test_business_figures_...)
        r"companies = \(\n": 'companies = (\n  { id = 3; name = "Business Co"; agents = [70, 70]; },\n',
        r"channels = \(\n": f'channels = (\n  {{ type = "evolution"; instance = "biz"; key = "biz-key"; company = 3; '
                            f'domain = "suporte"; url = "{gateway.url}"; }},\n',
    })
    yield from serve(s)


def scalar(system, sql):
    rows = system.sql(sql)
    return rows[0][0] if rows else None


def to(gateway, customer, text):
    """What the gateway got for this customer with this text."""
    return [r for r in gateway.sent(text) if r["body"].get("number") == customer]


def customer_says(system, customer, text):
    mid = f"IN-{customer}-{time.time_ns()}"
    assert system.evolution(evolution_text(mid, text, customer=customer)).status == 200
    return mid


def agent_says(system, customer, text="Já verifiquei sua conexão, pode testar agora?"):
    """An agent's message typed on the phone (Evolution echoes it, fromMe): our last word."""
    mid = f"OUT-{customer}-{time.time_ns()}"
    assert system.evolution(evolution_text(mid, text, customer=customer, from_me=True)).status == 200
    return mid


def conversation(system, customer):
    wait_for(lambda: scalar(system, f"select count(*) from conversations where customer = '{customer}'") == "1",
             30, f"the conversation of {customer}")
    return int(scalar(system, f"select id from conversations where customer = '{customer}'"))


def stored(system, mid):
    wait_for(lambda: scalar(system, f"select count(*) from messages where provider_id = '{mid}'") == "1", 30,
             f"message {mid} stored")


def status(system, conv):
    return scalar(system, f"select status from conversations where id = {conv}")


def jobs(system, conv, kind=None):
    extra = f" and kind = '{kind}'" if kind else ""
    return int(scalar(system, f"select count(*) from conversation_jobs where conversation_id = {conv}{extra}"))


def test_followups_then_auto_resolve_then_survey_answered_without_reopening(system, gateway):
    cust = "5511966660001"
    c = system.ws(system.token(1, 1))
    assert c.subscribe("company:1")["type"] == "ack"
    stored(system, customer_says(system, cust, "minha internet está caindo toda hora"))
    conv = conversation(system, cust)
    stored(system, agent_says(system, cust))

    wait_for(lambda: to(gateway, cust, F1_TEXT), 20, "follow-up 1")
    wait_for(lambda: to(gateway, cust, F2_TEXT), 20, "follow-up 2")
    resolved = c.wait(lambda f: f["type"] == "conversation" and f["data"]["conversation_id"] == conv
                      and f["data"]["status"] == "resolved", 30)
    d = resolved["data"]
    assert d["by"] == "system" and d["reason"] == "inactivity" and d["changed"] is True
    assert status(system, conv) == "resolved"
    assert system.sql(f"select by, from_status from conversation_events where conversation_id = {conv} "
                      f"and kind = 'status' and status = 'resolved'") == [["system", "open"]]
    # the survey question follows the resolve
    wait_for(lambda: to(gateway, cust, NPS_TEXT), 20, "the survey question")
    wait_for(lambda: scalar(system, f"select survey_kind from conversations where id = {conv}") == "nps", 20,
             "the conversation awaiting the answer")
    # every job once, each message stored once as the bot's, the resolve as the system's
    assert len(to(gateway, cust, F1_TEXT)) == 1 and len(to(gateway, cust, F2_TEXT)) == 1
    assert len(to(gateway, cust, NPS_TEXT)) == 1
    assert system.sql(f"select kind from conversation_jobs where conversation_id = {conv} order by id") == \
        [["followup1"], ["followup2"], ["auto_resolve"], ["survey"]]
    assert system.sql(f"select by, status from outbound_requests where conversation_id = {conv} "
                      f"and request_id like 'lifecycle:%' order by created_at") == \
        [["bot", "sent"], ["bot", "sent"], ["system", "resolved"], ["bot", "sent"]]
    # agents see them in the history as the bot's
    msgs = http("GET", system.url("notifier", f"/v1/conversations/{conv}/messages?limit=50"), None,
                {"Authorization": f"Bearer {system.token(1, 1)}"}).json()["messages"]
    assert [m["by"] for m in msgs if m["text"] in (F1_TEXT, F2_TEXT, NPS_TEXT)] == ["bot", "bot", "bot"]
    # the follow-ups did not restart the silence: nothing more is due for this conversation
    assert scalar(system, f"select lc_next_at is null from conversations where id = {conv}") == "t"

    answer = customer_says(system, cust, "nota 9")
    ev = c.wait(lambda f: f["type"] == "survey" and f["data"]["conversation_id"] == conv, 30)
    assert ev["data"]["score"] == 9 and ev["data"]["kind"] == "nps" and ev["data"]["text"] == "nota 9"
    assert system.sql(f"select kind, score, raw_text from surveys where conversation_id = {conv}") == \
        [["nps", "9", "nota 9"]]
    assert status(system, conv) == "resolved"
    assert scalar(system, f"select hint_id is null from messages where provider_id = '{answer}'") == "t"
    # the answer is the customer's next message only: a second one reopens as usual
    customer_says(system, cust, "obrigado, até mais")
    wait_for(lambda: status(system, conv) == "open", 30, "the conversation reopened")
    assert int(scalar(system, f"select count(*) from surveys where conversation_id = {conv}")) == 1
    assert not [f for f in c.frames if f["type"] == "conversation" and f["data"]["conversation_id"] == conv
                and f["data"]["status"] == "open" and f["data"].get("by") == "customer"
                and c.frames.index(f) < c.frames.index(ev)]
    c.close()


def test_no_follow_up_when_the_customer_answered(system, gateway):
    quiet, talks = "5511966660002", "5511966660003"
    # posted back to back, well within the first follow-up's 2 s: one customer answers us
    mids = [customer_says(system, talks, "preciso de ajuda com a fatura"), agent_says(system, talks),
            customer_says(system, talks, "ok, testei e funcionou"),
            customer_says(system, quiet, "preciso de ajuda com a fatura"), agent_says(system, quiet)]
    for mid in mids:
        stored(system, mid)
    conv = conversation(system, talks)
    # the quiet one got both follow-ups: the one who answered got nothing in the same time
    wait_for(lambda: to(gateway, quiet, F2_TEXT), 30, "follow-up 2 of the quiet customer")
    assert not to(gateway, talks, F1_TEXT) and not to(gateway, talks, F2_TEXT)
    assert jobs(system, conv) == 0
    assert status(system, conv) == "open"


def test_a_reply_that_is_not_a_score_reopens(system, gateway):
    cust = "5511966660004"
    stored(system, customer_says(system, cust, "quero cancelar meu plano"))
    conv = conversation(system, cust)
    agent = int(scalar(system, f"select agent_id from conversations where id = {conv}"))
    c = system.ws(system.token(agent, 1))
    ack = c.request(op="resolve", conversation=conv)
    assert ack["type"] == "ack", ack
    wait_for(lambda: to(gateway, cust, NPS_TEXT), 30, "the survey after an agent's resolve")
    wait_for(lambda: scalar(system, f"select survey_kind from conversations where id = {conv}") == "nps", 20,
             "the conversation awaiting the answer")
    customer_says(system, cust, "minha internet caiu de novo")
    wait_for(lambda: status(system, conv) == "open", 30, "the conversation reopened")
    assert int(scalar(system, f"select count(*) from surveys where conversation_id = {conv}")) == 0
    assert scalar(system, f"select survey_kind is null from conversations where id = {conv}") == "t"
    c.close()


CSAT_TEXT = "Seu atendimento foi encerrado. De 1 a 5, como você avalia este atendimento? Responda só com o número."


def test_per_company_csat_and_out_of_range_answers(system, gateway):
    system.sql("update companies set survey = 'csat' where id = 1")
    try:
        first, second = "5511966660005", "5511966660006"
        convs = {}
        for cust in (first, second):
            stored(system, customer_says(system, cust, "a fatura veio errada este mês"))
            convs[cust] = conversation(system, cust)
            agent = int(scalar(system, f"select agent_id from conversations where id = {convs[cust]}"))
            c = system.ws(system.token(agent, 1))
            assert c.request(op="resolve", conversation=convs[cust])["type"] == "ack"
            c.close()
        for cust in (first, second):
            wait_for(lambda: to(gateway, cust, CSAT_TEXT), 30, "the CSAT question")
            wait_for(lambda: scalar(system, f"select survey_kind from conversations where id = {convs[cust]}")
                     == "csat", 20, "the conversation awaiting a CSAT answer")
        assert not to(gateway, first, NPS_TEXT)
        customer_says(system, first, "⭐⭐⭐⭐⭐")
        customer_says(system, second, "9")  # no CSAT score: a message like any other
        wait_for(lambda: scalar(system, f"select count(*) from surveys where conversation_id = {convs[first]}")
                 == "1", 30, "the CSAT answer stored")
        assert system.sql(f"select kind, score from surveys where conversation_id = {convs[first]}") == \
            [["csat", "5"]]
        wait_for(lambda: status(system, convs[second]) == "open", 30, "the out-of-range answer reopening")
        assert status(system, convs[first]) == "resolved"
        assert scalar(system, f"select count(*) from surveys where conversation_id = {convs[second]}") == "0"
    finally:
        system.sql("update companies set survey = null where id = 1")


def test_thirty_silences_at_once_two_workers_each_follow_up_once(system, gateway):
    assert system.workers == 2
    customers = [f"55119777{i:05d}" for i in range(30)]
    for cust in customers:
        customer_says(system, cust, "bom dia, estou sem sinal")
    convs = [conversation(system, cust) for cust in customers]
    for cust in customers:
        agent_says(system, cust, "Pode reiniciar o modem e me dizer se voltou?")
    wait_for(lambda: int(scalar(system, "select count(*) from conversations where lc_anchor_at is not null "
                                        f"and id in ({','.join(map(str, convs))})")) == 30, 30, "30 silences")
    wait_for(lambda: all(to(gateway, cust, F1_TEXT) for cust in customers), 30, "30 first follow-ups")
    wait_for(lambda: all(to(gateway, cust, F2_TEXT) for cust in customers), 30, "30 second follow-ups")
    for cust in customers:
        assert len(to(gateway, cust, F1_TEXT)) == 1, cust
        assert len(to(gateway, cust, F2_TEXT)) == 1, cust
    ids = ",".join(map(str, convs))
    assert system.sql(f"select kind, count(*), count(distinct conversation_id) from conversation_jobs "
                      f"where conversation_id in ({ids}) and kind like 'followup%' group by kind order by kind") == \
        [["followup1", "30", "30"], ["followup2", "30", "30"]]
    # every job was published, and sent once (the outbound claim saw each request_id once)
    assert scalar(system, f"select count(*) from conversation_jobs where conversation_id in ({ids}) "
                          f"and kind like 'followup%' and published_at is null") == "0"


def psql_async(system, *statements):
    args = [os.path.join(BIN, "atende"), "psql", "-c", system.conf, "--", "-X", "-A", "-t", "-q"]
    for s in statements:
        args += ["-c", s]
    return subprocess.Popen(args, cwd=system.dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def reload(system, **changes):
    before = system.log_text().count("reload: applied")
    system.write_config(**changes)
    os.kill(system.proc.pid, signal.SIGHUP)
    wait_for(lambda: system.log_text().count("reload: applied") >= before + 3, what="the workers and notifier to reload")


def test_concurrent_callers_of_the_due_function_get_disjoint_jobs(system):
    # what earlier tests left due is done (auto-resolves, surveys), and every job published
    wait_for(lambda: scalar(system, "select count(*) from conversations where lc_next_at is not null") == "0"
             and scalar(system, "select count(*) from conversation_jobs where published_at is null") == "0", 60,
             "the earlier conversations' jobs to be done")
    # the workers' ticks off (a reload), so that only the two transactions below take jobs
    off = {r'(lifecycle: \{[^\n]*\n  enabled = )true;': r'\1false;'}
    reload(system, **off)
    try:
        # a conversation of an earlier test can fall due between the wait above and the reload
        # (a delivery or a resolve sets its next time): with the ticks off it would stay due and
        # come first in the transactions' batches, so the earlier ones' schedules are cleared
        wait_for(lambda: scalar(system, "select count(*) from conversation_jobs where published_at is null") == "0",
                 30, "the jobs the workers took before the reload to be published")
        system.sql("update conversations set lc_next_at = null where lc_next_at is not null")
        # 120 silences 1 h old (auto-resolve due) on the api channel; the first transaction
        # holds the locks of what it took while the second asks
        system.sql("insert into conversations (company_id, channel, customer, domain, lc_anchor_at, lc_next_at) "
                   "select 1, 'api:site', 'due-' || g, 'comercial', now() - interval '1 hour', now() "
                   "from generate_series(1, 120) g")
        settings = ('{"followup_after_s":[2,4],"followup_texts":["a","b"],"auto_resolve_after_s":6,'
                    '"survey":"off","survey_texts":{},"survey_window_s":60}')
        take = f"select job_conversation from atende_lifecycle_due('{settings}', 'test-%s', 60000, 70)"
        a = psql_async(system, "begin", take % "a", "select pg_sleep(3)", "commit")
        wait_for(lambda: scalar(system, "select count(*) from pg_stat_activity where query like '%pg_sleep(3)%' "
                                        "and state = 'active' and pid <> pg_backend_pid()") == "1", 30,
                 "the first transaction holding its jobs")
        b = psql_async(system, "begin", take % "b", "commit")
        out_a, err_a = a.communicate(timeout=60)
        out_b, err_b = b.communicate(timeout=60)
        assert a.returncode == 0 and b.returncode == 0, (err_a, err_b)
        rows_a = [int(x) for x in out_a.split() if x.isdigit()]
        rows_b = [int(x) for x in out_b.split() if x.isdigit()]
        # the first took its 70; the second, asking meanwhile, the 50 left: none of the same
        assert len(rows_a) == 70 and len(rows_b) == 50 and not set(rows_a) & set(rows_b), \
            (out_a, err_a, out_b, err_b, system.sql("select owner, count(*) from conversation_jobs group by owner"))
        assert system.sql("select owner, count(*), count(distinct conversation_id) from conversation_jobs j "
                          "join conversations c on c.id = j.conversation_id where c.customer like 'due-%' "
                          "group by owner order by owner") == [["test-a", "70", "70"], ["test-b", "50", "50"]]
    finally:
        reload(system)


def metric_sum(system, name, *label_parts):
    """The sum over processes of a labelled series on the supervisor's /metrics."""
    total = 0.0
    for line in http("GET", system.url("metrics", "/metrics")).body.decode().splitlines():
        if line.startswith(name + "{") and all(p in line for p in label_parts):
            total += float(line.split()[-1])
    return total


def test_a_job_whose_worker_died_before_publishing_runs_once(system, gateway):
    off = {r'(lifecycle: \{[^\n]*\n  enabled = )true;': r'\1false;'}
    cust = "5511966660007"
    retaken = metric_sum(system, "atende_worker_lifecycle_jobs_total", 'kind="followup1"', 'result="retaken"')
    reload(system, **off)
    try:
        stored(system, customer_says(system, cust, "o boleto não chegou"))
        conv = conversation(system, cust)
        stored(system, agent_says(system, cust))
        wait_for(lambda: scalar(system, f"select lc_next_at <= now() from conversations where id = {conv}") == "t",
                 20, "follow-up 1 due")
        # a worker takes the job and dies before its request reaches the broker (lease 200 ms)
        settings = json.dumps({"followup_after_s": [F1, F2], "followup_texts": [F1_TEXT, F2_TEXT],
                               "auto_resolve_after_s": RESOLVE, "survey": "nps", "survey_texts": {},
                               "survey_window_s": 60}).replace("'", "''")
        assert system.sql(f"select job_kind, job_fresh from atende_lifecycle_due('{settings}', 'dead-worker', 200, 10) "
                          f"where job_conversation = {conv}") == [["followup1", "t"]]
    finally:
        reload(system)
    wait_for(lambda: to(gateway, cust, F1_TEXT), 30, "the follow-up sent by another worker")
    wait_for(lambda: metric_sum(system, "atende_worker_lifecycle_jobs_total", 'kind="followup1"',
                                'result="retaken"') >= retaken + 1, 10, "the job counted as retaken")
    row = system.sql(f"select owner <> 'dead-worker', published_at is not null, request->>'request_id' "
                     f"from conversation_jobs where conversation_id = {conv} and kind = 'followup1'")
    assert row[0][:2] == ["t", "t"]
    # the same request delivered again (a redelivery): answered as done, not sent twice
    request = json.loads(scalar(system, f"select request from conversation_jobs where conversation_id = {conv} "
                                        f"and kind = 'followup1'"))
    subprocess.run(["kcat", "-b", f"127.0.0.1:{system.ports['kafka']}", "-P", "-t", "atende.outbound", "-k", str(conv),
                    "-H", "type=reply", "-H", "company=1"], input=json.dumps(request), text=True, check=True,
                   timeout=30)
    agent = int(scalar(system, f"select agent_id from conversations where id = {conv}"))
    c = system.ws(system.token(agent, 1))
    assert c.subscribe(f"conversation:{conv}")["type"] == "ack"
    ack = c.request(op="reply", conversation=conv, text="Conseguiu ver o boleto?")
    assert ack["type"] == "ack", ack
    # requests of a conversation are handled in order: once this reply is out, the duplicate was handled
    c.wait(lambda f: f["type"] == "message" and f["data"].get("request_id") == ack["request_id"], 30)
    c.close()
    assert len(to(gateway, cust, F1_TEXT)) == 1
    assert scalar(system, f"select count(*) from outbound_requests where request_id = '{row[0][2]}'") == "1"


def test_retention_prunes_published_jobs_after_dedup_days(system):
    for conv, age, done in ((900001, "40 days", True), (900002, "40 days", False), (900003, "1 day", True)):
        published = f"now() - interval '{age}'" if done else "null"
        system.sql("insert into conversation_jobs (conversation_id, company_id, kind, cycle, request, owner, "
                   f"lease_until, created_at, published_at) values ({conv}, 1, 'followup1', 0, '{{}}', 'test', "
                   f"now() + interval '1 hour', now() - interval '{age}', {published})")
    report = json.loads(system.cli("retention", "--json").stdout)
    assert report["ok"] and report["jobs_pruned"] == 1, report
    left = {r[0] for r in system.sql("select conversation_id from conversation_jobs where conversation_id > 900000")}
    assert left == {"900002", "900003"}
    system.sql("delete from conversation_jobs where conversation_id > 900000")


def test_business_figures_of_one_conversation(system, gateway):
    """atende_business (schema/012), `atende status` and the notifier's gauges agree with the
    timestamps of one conversation of company 3: answered by its agent, resolved, surveyed."""
    cust = "5511966669999"
    body = dict(evolution_text(f"BIZ-{time.time_ns()}", "boa tarde, meu boleto veio em dobro", customer=cust,
                               instance="biz"), apikey="biz-key")
    agent = system.ws(system.token(70, 3))
    assert agent.subscribe("agent:70")["type"] == "ack"  # before the message: its event is live only
    assert system.evolution(body, key="biz-key").status == 200
    agent.wait(lambda f: f["type"] == "message" and f["data"]["customer"] == cust)
    conv = conversation(system, cust)
    assert agent.request(op="reply", conversation=conv, text="Oi! Já estou vendo o seu boleto.")["type"] == "ack"
    wait_for(lambda: scalar(system, f"select count(*) from messages where conversation_id = {conv} and from_me") == "1",
             30, "the reply stored")
    assert agent.request(op="resolve", conversation=conv)["type"] == "ack"
    wait_for(lambda: to(gateway, cust, NPS_TEXT), 30, "the survey question")
    wait_for(lambda: scalar(system, f"select survey_kind from conversations where id = {conv}") == "nps", 20,
             "the conversation awaiting the answer")
    customer_says_biz = dict(evolution_text(f"BIZ-{time.time_ns()}", "nota 8", customer=cust, instance="biz"),
                             apikey="biz-key")
    assert system.evolution(customer_says_biz, key="biz-key").status == 200
    wait_for(lambda: scalar(system, f"select count(*) from surveys where conversation_id = {conv}") == "1", 30,
             "the survey answer")
    # what the figures must be, from the rows themselves
    first, resolution = [float(v) for v in system.sql(
        "select extract(epoch from (select min(received_at) from messages where conversation_id = c.id and from_me) "
        "- c.created_at), extract(epoch from (select max(at) from conversation_events where conversation_id = c.id "
        f"and kind = 'status' and status = 'resolved') - c.created_at) from conversations c where c.id = {conv}")[0]]
    assert 0 < first < resolution
    status = json.loads(system.cli("status", "--json", "--interval", "0.2").stdout)
    biz = [b for b in status["business"] if b["company_id"] == 3][0]
    assert (biz["conversations"], biz["responded"], biz["unanswered"], biz["resolved"]) == (1, 1, 0, 1), biz
    assert abs(biz["first_response_p50_s"] - first) < 0.01 and abs(biz["first_response_p95_s"] - first) < 0.01, biz
    assert abs(biz["resolution_p50_s"] - resolution) < 0.01, biz
    assert (biz["resolved_by_bot"], biz["automation_ratio"], biz["transferred"]) == (0, 0, 0), biz
    assert (biz["nps_answers"], biz["nps_avg"], biz["csat_answers"], biz["csat_avg"]) == (1, 8, 0, None), biz
    human = system.cli("status", "--interval", "0.2").stdout
    assert "last hour" in human and "1ST RESP" in human, human

    def gauge(name, labels):
        want = f'{name}{{process="notifier",index="0",company="3"{labels}}} '
        for line in http("GET", system.url("metrics", "/metrics")).body.decode().splitlines():
            if line.startswith(want):
                return float(line.split()[-1])
        return None
    wait_for(lambda: gauge("atende_business_survey_score", ',kind="nps"') == 8, 20, "the survey gauge")
    assert abs(gauge("atende_business_first_response_seconds", ',quantile="0.5"') - first) < 0.01
    assert gauge("atende_business_resolved", "") == 1 and gauge("atende_business_automation_ratio", "") == 0
    agent.close()

