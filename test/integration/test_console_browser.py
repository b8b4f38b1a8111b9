"""The agent console in a real headless Chromium (Debian's chromium, driven by playwright-core
from npm): test/browser/console.test.js logs two agents in, gets a hint live, replies, sees the
colleague typing, goes offline and comes back without losing an event, and a third console behind a
proxy that refuses WebSocket works over long-poll. Screenshots are kept in
build/console.png and build/console-offline.png."""
import json
import os
import shutil
import subprocess

from harness import ROOT

BROWSER_DIR = os.path.join(ROOT, "test", "browser")
CHROMIUM = "/usr/bin/chromium"
SHOT = os.path.join(ROOT, "build", "console.png")


def ensure_browser_tools():
    """Fails (never skips) with what to install when a tool is missing; installs playwright-core."""
    node = shutil.which("node")
    assert node, "node is not installed: apt-get install nodejs npm (needed for the console browser test)"
    assert os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is missing: apt-get install chromium (deploy/deps.sh)"
    if not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")):
        npm = shutil.which("npm")
        assert npm, "npm is not installed: apt-get install npm (to fetch playwright-core)"
        r = subprocess.run([npm, "install", "--prefix", BROWSER_DIR, "--no-audit", "--no-fund"], cwd=BROWSER_DIR,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
        assert r.returncode == 0, f"npm install of playwright-core failed:\n{r.stdout}"
    return node


def test_console_in_headless_chromium(system):
    node = ensure_browser_tools()
    os.makedirs(os.path.dirname(SHOT), exist_ok=True)
    for stale in (SHOT, SHOT.replace(".png", "-offline.png"), SHOT.replace(".png", "-failure.png")):
        if os.path.exists(stale):
            os.remove(stale)
    env = dict(os.environ,
               ATENDE_NOTIFIER=system.url("notifier", ""), ATENDE_INGRESS=system.url("ingress", ""),
               ATENDE_TOKEN_A=system.token(1, 1), ATENDE_TOKEN_B=system.token(2, 1), ATENDE_TOKEN_C=system.token(3, 1),
               ATENDE_SCREENSHOT=SHOT, ATENDE_RUN=str(os.getpid()))
    r = subprocess.run([node, os.path.join(BROWSER_DIR, "console.test.js")], cwd=ROOT, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=180)
    print(r.stderr)
    assert r.returncode == 0, f"console.test.js failed (exit {r.returncode}):\n{r.stderr[-4000:]}"
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["ok"] and result["hint"] and result["intent"] == "outage"
    for shot in result["screenshots"]:
        with open(shot, "rb") as f:
            head = f.read(8)
        assert head == b"\x89PNG\r\n\x1a\n" and os.path.getsize(shot) > 20000, shot
    # both messages sent while the console was offline are in its timeline, once, after the reply
    timeline = result["timeline"]
    assert timeline[-2:] == result["missed"] and "reply" in timeline
    # the reply went to atende.outbound for a worker to send
    out = subprocess.run(["kcat", "-b", f"127.0.0.1:{system.ports['kafka']}", "-C", "-t", "atende.outbound",
                          "-o", "beginning", "-e", "-q", "-f", "%s\n"], stdout=subprocess.PIPE, text=True,
                         timeout=30).stdout
    replies = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    mine = [m for m in replies if m.get("type") == "reply" and m.get("text") == result["reply"]]
    assert len(mine) == 1 and mine[0]["agent_id"] == 1 and mine[0]["company_id"] == 1
    polled = [m for m in replies if m.get("type") == "reply" and m.get("text") == result["pollReply"]]
    assert len(polled) == 1 and polled[0]["agent_id"] == 3  # sent over POST /op by the long-poll console
