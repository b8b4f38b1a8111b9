"""The first make on a machine without the -dev packages (issue 13): `make run`, `make test`
and `make bench` install them and link in one go, and a plain `make all` stops before compiling
with a message that names the missing pkg-config modules. Runs on a copy of the tree in which a
fake pkg-config fails until a fake deps script (DEPS_SCRIPT) has "installed" the packages."""
import glob
import os
import shutil
import subprocess

import pytest

from harness import ROOT

PKGS = "libevent libpq rdkafka libcurl libcjson libconfig libcrypto libcrypt"
BINS = ["atende", "atende-ingress", "atende-worker", "atende-notifier"]


class Tree:
    """A copy of the work tree (committed and uncommitted files, no build/ or bin/) with a fake
    pkg-config first on PATH and a fake deps script; both log their calls to calls.log."""

    def __init__(self, base):
        self.dir = str(base / "atende")
        files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                               cwd=ROOT, check=True, stdout=subprocess.PIPE).stdout.decode().split("\0")
        for name in filter(None, files):
            src = os.path.join(ROOT, name)
            # deleted in the work tree but still in the index; the browser test's npm install
            if not os.path.isfile(src) or "node_modules" in name.split("/"):
                continue
            os.makedirs(os.path.dirname(os.path.join(self.dir, name)), exist_ok=True)
            shutil.copy2(src, os.path.join(self.dir, name))
        assert not os.path.exists(os.path.join(self.dir, "build"))
        assert not os.path.exists(os.path.join(self.dir, "bin"))

        real = shutil.which("pkg-config")
        assert real, "pkg-config is not installed (deploy/deps.sh installs it)"
        self.stamp = str(base / "installed")
        self.log = str(base / "calls.log")
        fake_bin = base / "fakebin"
        fake_bin.mkdir()
        script = fake_bin / "pkg-config"
        script.write_text(f"""#!/bin/sh
if [ -e '{self.stamp}' ]; then
	echo "pkg-config installed $*" >> '{self.log}'
	exec '{real}' "$@"
fi
echo "pkg-config missing $*" >> '{self.log}'
exit 1
""")
        script.chmod(0o755)
        self.deps = str(base / "fake-deps.sh")
        with open(self.deps, "w") as f:
            f.write(f"echo \"deps $*\" >> '{self.log}'\ntouch '{self.stamp}'\n")

        # Not the caller's make (make test runs this suite): no jobserver or level of its own.
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "PKG_CONFIG")}
        self.env["PATH"] = f"{fake_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}"
        # the packages' install path is under test, not the broker's patched library (its own
        # 60-85 s build, once per goal here; test_broker_library covers it)
        self.env["RDKAFKA_MOCK"] = "0"

    def make(self, *args):
        proc = subprocess.run(["make", "-j2", f"DEPS_SCRIPT={self.deps}", *args], cwd=self.dir,
                              env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=900)
        return proc.returncode, proc.stdout

    def calls(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return f.read().splitlines()

    def stub(self, path, text):
        with open(os.path.join(self.dir, path), "w") as f:
            f.write(text)


@pytest.fixture
def tree(tmp_path):
    return Tree(tmp_path)


def test_plain_make_without_packages_stops_before_compiling(tree):
    rc, out = tree.make("all")
    assert rc != 0, out
    assert f"no pkg-config data for {PKGS}" in out, out
    assert "make deps" in out, out
    assert "undefined reference" not in out
    assert not os.path.exists(os.path.join(tree.dir, "build")), "compiled before stopping"
    calls = tree.calls()
    assert any(c.startswith("pkg-config missing") for c in calls), calls
    assert not any(c.startswith("deps") for c in calls), calls


# Each goal's own recipe after the build is replaced by a stub, except run's, which gets
# `--help` so that bin/atende runs and exits at once.
@pytest.mark.parametrize("goal,deps_arg,args,expect", [
    ("run", "", ["CONFIG=deploy/atende.conf --help"], "usage: atende run -c FILE"),
    ("test", "test", [], "stub run.py"),
    ("bench", "test", [], "stub bench_corpus.py"),
], ids=["run", "test", "bench"])
def test_first_make_installs_then_builds_in_one_go(tree, goal, deps_arg, args, expect):
    tree.stub("test/run.py", "print('stub run.py')\n")
    tree.stub("test/bench.sh", "echo stub bench.sh\n")
    # every benchmark script the bench goal runs (only the build is under test here)
    for script in glob.glob(os.path.join(ROOT, "test", "bench_*.py")):
        name = os.path.basename(script)
        tree.stub(f"test/{name}", f"print('stub {name}')\n")
    assert tree.make("all")[0] != 0  # the packages are "missing" until the deps script runs

    rc, out = tree.make(goal, *args)
    assert rc == 0, out[-4000:]
    assert expect in out, out[-4000:]
    calls = tree.calls()
    assert [c.strip() for c in calls].count(f"deps {deps_arg}".strip()) == 1, calls
    # the build read the fake pkg-config, so the flags came from it once "installed"
    assert any(c.startswith("pkg-config installed") for c in calls), calls
    for name in BINS:
        assert os.access(os.path.join(tree.dir, "bin", name), os.X_OK), f"bin/{name} missing\n{out[-4000:]}"
    if goal != "run":
        assert os.listdir(os.path.join(tree.dir, "build", "test")), "unit test binaries missing"
    help_ = subprocess.run([os.path.join(tree.dir, "bin", "atende"), "--help"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
    assert help_.returncode == 0 and "verbs:" in help_.stdout, help_.stdout
