"""A byte-level LSP client for tests that must send what no well-behaved client would.

`RawServer` starts ``python -m server serve`` (stdio) with the given environment;
`send(bytes)` writes anything, `frame(obj)` frames a JSON value; a reader thread
splits stdout into frames, and `stdout_problems` lists any byte that is not a
well-formed JSON-RPC frame. `reply(id)` waits for the answer to a request.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": "init",
    "method": "initialize",
    "params": {"processId": None, "rootUri": None, "capabilities": {}},
}


def frame(value: Any, *, raw: bytes | None = None) -> bytes:
    body = raw if raw is not None else json.dumps(value).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class RawServer:
    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.log = log
        self._stderr = log.open("wb")
        self.proc = subprocess.Popen(
            self.command(*args),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
        )
        self.messages: list[dict[str, Any]] = []
        self.stdout_problems: list[str] = []
        self._arrived = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "server", "serve", *args]

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send_json(self, value: Any) -> None:
        self.send(frame(value))

    def initialize(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        message = dict(INITIALIZE)
        if params is not None:
            message["params"] = params
        self.send_json(message)
        answer = self.reply("init")
        self.send_json({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        return answer

    def request(self, msg_id: int | str, method: str, params: Any = None) -> dict[str, Any]:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send_json(message)
        return self.reply(msg_id)

    def reply(self, msg_id: Any, timeout: float = 30) -> dict[str, Any]:
        """The server's answer to request `msg_id` (a response carries no method)."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for message in self.messages:
                    if message.get("id") == msg_id and "method" not in message:
                        return message
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no reply to {msg_id!r}; log:\n{self.log_text()[-3000:]}")
                self._arrived.wait(min(left, 0.5))

    def wait_for_request(self, method: str, timeout: float = 30) -> dict[str, Any]:
        """The first request the server sent the client with `method`."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for message in self.messages:
                    if message.get("method") == method and "id" in message:
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"the server never asked {method}")
                self._arrived.wait(min(left, 0.5))

    def replies(self) -> list[dict[str, Any]]:
        with self._arrived:
            return [m for m in self.messages if "method" not in m]

    def wait_exit(self, timeout: float = 30) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(10)
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._stderr.close()

    def log_text(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.log.read_text(encoding="utf-8", errors="replace")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        buffer = b""
        while chunk := self.proc.stdout.read1(1 << 16):
            buffer += chunk
            while True:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    break
                headers = buffer[:end].decode("ascii", "replace").split("\r\n")
                lengths = [
                    h.split(":", 1)[1] for h in headers if h.lower().startswith("content-length:")
                ]
                if len(lengths) != 1 or not all(":" in h for h in headers):
                    self.stdout_problems.append(f"bad headers {headers!r}")
                    return
                length = int(lengths[0])
                if len(buffer) < end + 4 + length:
                    break
                body, buffer = buffer[end + 4 : end + 4 + length], buffer[end + 4 + length :]
                try:
                    message = json.loads(body)
                except ValueError:
                    self.stdout_problems.append(f"not JSON: {body[:200]!r}")
                    continue
                if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
                    self.stdout_problems.append(f"not JSON-RPC: {body[:200]!r}")
                with self._arrived:
                    self.messages.append(message)
                    self._arrived.notify_all()
        if buffer:
            self.stdout_problems.append(f"{len(buffer)} trailing bytes: {buffer[:200]!r}")
        with self._arrived:
            self._arrived.notify_all()
