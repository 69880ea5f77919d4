"""Shared test configuration: anyio on asyncio, and the repository root on sys.path."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
