import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from harness import System  # noqa: E402


@pytest.fixture(scope="module")
def system(request):
    """One running system per test module (start-up costs an initdb)."""
    s = System(name=request.module.__name__.split(".")[-1])
    try:
        s.start()
    except Exception:
        print(s.tail(200))
        s.destroy()
        raise
    yield s
    if s.proc and s.proc.poll() is None:
        rc = s.stop()
        if rc != 0:
            print(s.tail(100))
    s.destroy()
