#!/usr/bin/python3
"""Runs the libFuzzer targets built by `make fuzz-build` (build/fuzz/fuzz_*), each for a bounded
time, starting from its kept corpus test/fuzz/corpus/<target>/ (every file in it is run first,
so a crash once found and kept there is a regression test). New inputs go to
build/fuzz/corpus/<target>/, crashes to build/fuzz/crashes/. Prints per target its executions,
coverage (libFuzzer's cov: edges, ft: features) and exec/s, and ends with "N passed, N failed"
(one per target). Also writes build/fuzz/results.json.

  test/fuzz/run.py --seconds 60          what `make fuzz` runs (FUZZ_SECONDS)
  test/fuzz/run.py --smoke               what `make test` runs: FUZZ_SMOKE_SECONDS (30) per target,
                                         two at a time (--jobs)
  test/fuzz/run.py --seconds 5 fuzz_token   only the targets named
"""
import argparse
import base64
import concurrent.futures
import glob
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.chdir(ROOT)

ap = argparse.ArgumentParser()
ap.add_argument("--seconds", type=int, default=60)
ap.add_argument("--smoke", action="store_true")
ap.add_argument("--jobs", type=int, default=2, help="targets run at once (2: one per core here)")
ap.add_argument("targets", nargs="*")
args = ap.parse_args()
seconds = int(os.environ.get("FUZZ_SMOKE_SECONDS", "30")) if args.smoke else args.seconds

bins = sorted(b for b in glob.glob("build/fuzz/fuzz_*") if os.access(b, os.X_OK) and not b.endswith(".d"))
if args.targets:
    bins = [b for b in bins if os.path.basename(b) in args.targets]
if not bins:
    print("fuzz: no targets built (make fuzz-build)")
    print("0 passed, 1 failed")
    sys.exit(1)

# The targets' own sanitizer settings, whatever the caller's (make test SANITIZE=1 sends the
# programs' reports to files: a fuzz target's belong on its output, where this reads them).
env = {k: v for k, v in os.environ.items() if k not in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")}
env["ASAN_OPTIONS"] = "abort_on_error=0:detect_leaks=1"
env["LSAN_OPTIONS"] = "suppressions=" + os.path.join(ROOT, "test/sanitize.supp") + ":print_suppressions=0"
env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"

STAT = re.compile(r"#(\d+)\s+\S+\s+cov: (\d+) ft: (\d+) corp: (\d+)/\S+.*?exec/s: (\d+)")
os.makedirs("build/fuzz/crashes", exist_ok=True)


def fuzz_one(b):
    """Runs one target; returns its result row and, when it failed, the report to print."""
    name = os.path.basename(b)
    work = os.path.join("build/fuzz/corpus", name)
    kept = os.path.join("test/fuzz/corpus", name)
    os.makedirs(work, exist_ok=True)
    cmd = [b, f"-max_total_time={seconds}", "-timeout=10", "-rss_limit_mb=2048", "-print_final_stats=1",
           f"-artifact_prefix=build/fuzz/crashes/{name}-", work]
    if os.path.isdir(kept):
        cmd.append(kept)
    started = time.time()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                          errors="replace", timeout=seconds + 300)
    out = proc.stdout
    stats = STAT.findall(out)
    execs = re.search(r"stat::number_of_executed_units:\s*(\d+)", out)
    execs = int(execs.group(1)) if execs else (int(stats[-1][0]) if stats else 0)
    last = stats[-1] if stats else ("0", "0", "0", "0", "0")
    r = {"target": name, "seconds": seconds, "execs": execs, "cov": int(last[1]), "ft": int(last[2]),
         "corpus": int(last[3]), "exec_per_s": int(last[4]), "exit": proc.returncode}
    report = ""
    if proc.returncode != 0:
        # from the sanitizer's or libFuzzer's first line of trouble on, and the input that did it
        # (a CI machine's build/ is gone afterwards: the bytes must be in the log to be kept)
        m = re.search(r"^(==\d+==|.*runtime error:|.*deadly signal|.*ALARM|.*Test unit written).*", out, re.M)
        report = (out[m.start():][-6000:] if m else out[-6000:]) + "\n"
        for artifact in glob.glob(f"build/fuzz/crashes/{name}-*"):
            if os.path.getmtime(artifact) < started:
                continue
            with open(artifact, "rb") as f:
                report += f"{artifact} (base64): {base64.b64encode(f.read()[:4096]).decode()}\n"
    return r, report


# Two targets at a time by default: each libFuzzer run is one process on one core, and the
# smoke in `make test` then takes half the wall time for the same executions.
passed = failed = 0
results = []
with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
    for r, report in pool.map(fuzz_one, bins):
        results.append(r)
        ok = r["exit"] == 0
        print(f"fuzz {r['target']}: {'ok' if ok else 'FAILED'} {r['execs']} execs in {seconds} s, cov {r['cov']}, "
              f"ft {r['ft']}, corpus {r['corpus']}, {r['exec_per_s']} exec/s", flush=True)
        if ok:
            passed += 1
        else:
            failed += 1
            sys.stdout.write(report)

with open("build/fuzz/results.json", "w") as f:
    json.dump(results, f, indent=1)
print(f"fuzz: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
