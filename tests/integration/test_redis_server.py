"""The test Redis (valkey/redis-server) does what the tests rely on."""

from __future__ import annotations

import os

import pytest
import redis

from tests.support.redis_server import RedisServer, find_server_binary


def test_binary_is_found_and_executable() -> None:
    binary = find_server_binary()
    assert os.path.isfile(binary)
    assert os.access(binary, os.X_OK)
    assert os.path.basename(binary) in ("redis-server", "valkey-server")


def test_ping_and_url(redis_server: RedisServer) -> None:
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert client.ping() is True
        client.set("k", "v")
        assert client.get("k") == b"v"
    finally:
        client.close()


def test_restart_keeps_the_port_and_loses_the_data(redis_server: RedisServer) -> None:
    port = redis_server.port
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.set("k", "v")
        redis_server.restart()
        assert redis_server.port == port
        assert redis_server.url.endswith(f":{port}/0")
        # redis-py reconnects on the next command after a lost connection.
        assert client.ping() is True
        assert client.get("k") is None  # no persistence: a restart is a fresh Redis
    finally:
        client.close()


def test_kill_makes_connections_fail(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(
        redis_server.url, socket_connect_timeout=1, socket_timeout=1, retry_on_timeout=False
    )
    try:
        assert client.ping() is True
        redis_server.kill()
        assert not redis_server.running
        with pytest.raises(redis.exceptions.ConnectionError):
            client.ping()
        with pytest.raises(redis.exceptions.ConnectionError):
            redis.Redis.from_url(redis_server.url, socket_connect_timeout=1).ping()
        # And it can come back on the same port.
        redis_server.restart()
        assert client.ping() is True
    finally:
        client.close()


def test_context_manager_and_stop() -> None:
    with RedisServer() as server:
        assert server.ping()
        port = server.port
    assert not server.running
    assert not RedisServer(port=port, binary=server.binary).ping()
