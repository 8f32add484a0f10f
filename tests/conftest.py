"""Fixtures for every test. Importable helpers are in tests/support.py (`import support`): a conftest is
not importable under --import-mode=importlib."""

from __future__ import annotations

import pytest
from support import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock standing at 1,000,000 s until the test moves it."""
    return FakeClock()
