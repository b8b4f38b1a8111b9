#!/usr/bin/python3
"""Runs every C unit test binary, a short smoke of each libFuzzer target (test/fuzz/run.py
--smoke: FUZZ_SMOKE_SECONDS each, 30 by default, two targets at a time, 0 skips it; one result
per target), then the integration suite (pytest; TEST_MODULES="test/integration/test_a.py ..."
runs only those), and ends with one line "N passed, N failed" summing them all, ", N skipped"
added when pytest skipped any (a skipped test is neither, and would otherwise vanish from the
total). The C unit tests have no skip. Just above that line, every failure is named again (a CI
log is often read from its tail). Exit status 1 when anything failed.

With SANITIZE=1 (make test SANITIZE=1, which builds everything with ASan + UBSan) every
sanitizer report of every process, the programs the integration tests start included, goes to
build/san/logs/; each report file there at the end counts as one failure and is printed."""
import glob
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.chdir(ROOT)
passed = failed = skipped = 0
failures = []  # one line per failure, printed again just above the summary (a CI log shows its tail)

SANITIZE = os.environ.get("SANITIZE") == "1"
SAN_LOGS = os.path.join(ROOT, "build", "san", "logs")
if SANITIZE:
    os.makedirs(SAN_LOGS, exist_ok=True)
    for old in glob.glob(os.path.join(SAN_LOGS, "*")):
        os.unlink(old)
    # Inherited by every child: reports go to files (a child's stderr may be a log nobody
    # reads), the first one ends the process, LeakSanitizer with test/sanitize.supp.
    # A small quarantine (ASan keeps freed memory there to catch use after free; 256 MiB by
    # default): the tests that bound a process's RSS would otherwise measure ASan, not us.
    os.environ["ASAN_OPTIONS"] = f"halt_on_error=1:detect_leaks=1:quarantine_size_mb=1:log_path={SAN_LOGS}/asan"
    os.environ["UBSAN_OPTIONS"] = f"halt_on_error=1:print_stacktrace=1:log_path={SAN_LOGS}/ubsan"
    os.environ["LSAN_OPTIONS"] = f"suppressions={ROOT}/test/sanitize.supp:print_suppressions=0"

for binary in sorted(glob.glob("build/test/test_*")):
    if not os.access(binary, os.X_OK) or binary.endswith(".d"):
        continue
    proc = subprocess.run([binary], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sys.stdout.write(proc.stdout)
    m = re.search(r"(\d+) passed, (\d+) failed", proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "")
    if m and proc.returncode in (0, 1):
        passed += int(m.group(1))
        failed += int(m.group(2))
        failures += [line.strip() for line in proc.stdout.splitlines() if line.startswith("  FAIL ")]
    else:
        failures.append(f"unit {binary}: crashed or printed no summary (exit {proc.returncode})")
        print(failures[-1])
        failed += 1

if os.environ.get("FUZZ_SMOKE_SECONDS", "30") != "0":
    build = subprocess.run(["make", "-s", "-j2", "fuzz-build"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    proc = subprocess.run([sys.executable, "test/fuzz/run.py", "--smoke"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) if build.returncode == 0 else build
    sys.stdout.write(proc.stdout)
    m = re.search(r"fuzz: (\d+) passed, (\d+) failed", proc.stdout)
    if m and build.returncode == 0:
        passed += int(m.group(1))
        failed += int(m.group(2))
        failures += [line.strip() for line in proc.stdout.splitlines() if re.match(r"fuzz \S+: FAILED", line)]
    else:
        failures.append(f"fuzz: the targets did not build or run (exit {proc.returncode})")
        print(failures[-1])
        failed += 1

junit = os.path.join(ROOT, "build", "pytest.xml")
modules = os.environ.get("TEST_MODULES", "").split() or ["test/integration"]
args = [sys.executable, "-m", "pytest", *modules, "-p", "no:cacheprovider", "-v",
        f"--junitxml={junit}"] + sys.argv[1:]
rc = subprocess.run(args).returncode
try:
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    total = int(suite.get("tests", 0))
    bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    skipped = int(suite.get("skipped", 0))
    passed += total - bad - skipped
    failed += bad
    for case in suite.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failures.append(f"integration {case.get('classname')}::{case.get('name')}")
except (OSError, ET.ParseError, AttributeError):
    failures.append(f"integration: pytest produced no report (exit {rc})")
    print(failures[-1])
    failed += 1

if SANITIZE:
    for report in sorted(glob.glob(os.path.join(SAN_LOGS, "*"))):
        print(f"sanitizer report {report}:")
        with open(report, errors="replace") as f:
            sys.stdout.write(f.read()[-8000:])
        failures.append(f"sanitizer report {report}")
        failed += 1

if failures:
    print("failed:")
    for line in failures:
        print(f"  {line}")
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
sys.exit(1 if failed else 0)
