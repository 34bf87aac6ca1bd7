"""Fixtures for the service tests: async backend, bundles, and real server subprocesses."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
