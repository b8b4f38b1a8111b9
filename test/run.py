#!/usr/bin/python3
"""Runs every C unit test binary, then the integration suite (pytest), and ends with
one line "N passed, N failed" summing both, ", N skipped" added when pytest skipped any (a
skipped test is neither, and would otherwise vanish from the total). The C unit tests have no
skip. Exit status 1 when anything failed."""
import glob
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.chdir(ROOT)
passed = failed = skipped = 0

for binary in sorted(glob.glob("build/test/test_*")):
    if not os.access(binary, os.X_OK) or binary.endswith(".d"):
        continue
    proc = subprocess.run([binary], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sys.stdout.write(proc.stdout)
    m = re.search(r"(\d+) passed, (\d+) failed", proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "")
    if m and proc.returncode in (0, 1):
        passed += int(m.group(1))
        failed += int(m.group(2))
    else:
        print(f"unit {binary}: crashed or printed no summary (exit {proc.returncode})")
        failed += 1

junit = os.path.join(ROOT, "build", "pytest.xml")
args = [sys.executable, "-m", "pytest", "test/integration", "-p", "no:cacheprovider", "-v",
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
except (OSError, ET.ParseError, AttributeError):
    print(f"integration: pytest produced no report (exit {rc})")
    failed += 1

print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
sys.exit(1 if failed else 0)
