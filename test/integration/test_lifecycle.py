"""Start, stop and restart: a clean drain leaves nothing behind and var/ is reusable;
bad configs are refused with file:line."""
import os
import subprocess

from harness import BIN, System, fixture, wait_for


def test_sigterm_stops_everything_and_var_is_reusable():
    s = System(name="lifecycle")
    try:
        s.start()
        assert s.evolution(fixture("evolution-messages-upsert-text.json")).json() == {"accepted": 1, "duplicates": 0}
        wait_for(lambda: s.sql("select count(*) from hints")[0][0] == "1", what="the hint")
        assert s.stop() == 0
        assert s.leftover_processes() == []
        log = s.log_text()
        for line in ("stopped", "draining"):
            assert line in log
        # a second start on the same data_dir: initdb is skipped, data is still there
        s.start()
        assert s.sql("select count(*) from messages") == [["1"]]
        r = s.evolution(fixture("evolution-messages-upsert-extended.json"))
        assert r.json() == {"accepted": 1, "duplicates": 0}
        wait_for(lambda: s.sql("select count(*) from hints")[0][0] == "2", what="the second hint")
        assert s.stop() == 0
        assert s.leftover_processes() == []
        assert s.log_text().count("initdb: creating") == 1
    finally:
        s.destroy()


def test_bad_config_is_refused_with_file_and_line(tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text('auth: { token_secret = "0123456789abcdef"; };\nworkers: { count = "two"; };\nnope = 1;\n'
                   'ingress: { max_body_bytes = 5; };\n')
    for verb in ("check-config", "run"):
        r = subprocess.run([os.path.join(BIN, "atende"), verb, "-c", str(bad)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=30)
        assert r.returncode != 0
        assert f"{bad}:2: workers.count: expected an integer" in r.stderr
        assert f'{bad}:3: unknown key "nope"' in r.stderr
        assert f"{bad}:4: ingress.max_body_bytes: 5 is out of range" in r.stderr
    ok = subprocess.run([os.path.join(BIN, "atende"), "check-config", "-c", "deploy/atende.conf"],
                        cwd=os.path.dirname(BIN), stdout=subprocess.PIPE, text=True)
    assert ok.returncode == 0


def test_cli_help_and_token():
    r = subprocess.run([os.path.join(BIN, "atende"), "--help"], stdout=subprocess.PIPE, text=True)
    for verb in ("run", "token", "status", "migrate", "check-config", "psql"):
        assert verb in r.stdout
    bad = subprocess.run([os.path.join(BIN, "atende"), "token", "-c", "deploy/atende.conf", "--agent", "x",
                          "--company", "1"], cwd=os.path.dirname(BIN), stderr=subprocess.PIPE, text=True)
    assert bad.returncode != 0 and "--agent" in bad.stderr
