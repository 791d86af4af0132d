"""Pytest plugin with the shared test fixtures (loaded from tests/conftest.py).

- `scripted_model`: a started ScriptedModel (vLLM look-alike) on a loopback port,
  stopped after the test.
- `redis_server`: a started RedisServer (valkey/redis-server) on a loopback port,
  stopped after the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.redis_server import RedisServer
from tests.support.scripted_model import ScriptedModel


@pytest.fixture
def scripted_model() -> Iterator[ScriptedModel]:
    model = ScriptedModel()
    model.start()
    try:
        yield model
    finally:
        model.stop()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
