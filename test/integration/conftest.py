import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from harness import System, serve  # noqa: E402


@pytest.fixture(scope="module")
def system(request):
    """One running system per test module (start-up costs an initdb)."""
    yield from serve(System(name=request.module.__name__.split(".")[-1]))
