import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from fakegateway import FakeGateway  # noqa: E402
from harness import System, serve  # noqa: E402


@pytest.fixture(scope="module")
def system(request):
    """One running system per test module (start-up costs an initdb)."""
    yield from serve(System(name=request.module.__name__.split(".")[-1]))


@pytest.fixture(scope="module")
def gateway():
    """A fake WhatsApp gateway (fakegateway.py) for the module's replies and bot messages."""
    gw = FakeGateway().start()
    yield gw
    gw.stop()

