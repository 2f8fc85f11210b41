"""Fixtures of the search tests (their helpers live in tests/helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import SEARCH_DOMAINS


@pytest.fixture(scope="session")
def domains_dir() -> Path:
    return SEARCH_DOMAINS
