#!/usr/bin/python3
"""Runs every C unit test under valgrind memcheck (what `make valgrind` runs, after building
them without sanitizers): any memory error or definite leak (memcheck's exit 99), or a crash,
fails. A test's own CHECK failing under valgrind is printed but not counted: a few assert timing
(600 AI calls in flight within a deadline) or the process itself (its name in /proc, file limits),
which valgrind changes; they run for real in `make test`. Ends with "N passed, N failed", one per
test binary."""
import glob
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.chdir(ROOT)
with open("build/flavour") as f:
    if f.read().strip() != "plain":
        sys.exit("valgrind: build/test holds sanitized binaries (valgrind cannot run ASan); run `make valgrind`")

passed = failed = 0
for binary in sorted(glob.glob("build/test/test_*")):
    if not os.access(binary, os.X_OK) or binary.endswith(".d"):
        continue
    cmd = ["valgrind", "--tool=memcheck", "--error-exitcode=99", "--leak-check=full",
           "--show-leak-kinds=definite", "--errors-for-leak-kinds=definite", "--track-origins=yes",
           "--trace-children=no", "--child-silent-after-fork=yes", "-q", binary]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    ok = proc.returncode in (0, 1) and not re.search(r"^==\d+==", proc.stdout, re.M)  # memcheck's own lines
    print(f"valgrind {binary}: {'clean' if ok else f'FAILED (exit {proc.returncode})'}  [{last}]", flush=True)
    if ok:
        passed += 1
        if proc.returncode == 1:  # clean memory, but checks that do not hold under valgrind
            print("  checks failing under valgrind (not memory errors):")
            sys.stdout.write("".join(f"    {l}\n" for l in proc.stdout.splitlines() if l.lstrip().startswith("FAIL")))
    else:
        failed += 1
        sys.stdout.write(proc.stdout[-8000:])
print(f"valgrind: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
