"""A TCP gate in front of a real server (PostgreSQL here), to play outages for real.

Closed, it refuses new connections and cuts the open ones, as a database that went
down does; opened again, it forwards to the server. The tests' server keeps running
all along, so whatever was written before the outage is still there after it.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class Gate:
    """A TCP port forwarding to `target`; closed, it refuses connections and cuts open ones."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._connections: list[socket.socket] = []

    def open(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))
        listener.settimeout(0.05)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    for end in (source, sink):
        with contextlib.suppress(OSError):
            end.shutdown(socket.SHUT_RDWR)


def gate_for(url: str) -> Gate:
    """A gate (closed) in front of the server of the database URL `url`."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return Gate((parsed.host or "127.0.0.1", parsed.port or 5432))


def behind(gate: Gate, url: str) -> str:
    """`url` reaching its database through `gate` (the password kept)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(port=gate.port).render_as_string(hide_password=False)
