"""Document sync against a reference model of the client's edits (hypothesis).

The real server (``create_server``) is driven in process through its protocol
object, message by message, exactly as the stdio loop would feed it; after every
didChange the text its features read must equal what the client holds.

What the client holds is :class:`ClientText`: a Python str edited by LSP's rules,
written here as plainly as possible. Line ends are ``\\n``, ``\\r\\n`` and ``\\r``
only; a character past the end of its line means the line's end; a line past the
end means the document's end; a position inside a character (the second half of a
surrogate pair, a UTF-8 continuation byte) means that character's start, as VS
Code's text model validates positions; a range given end-first is turned around.
Changes apply in arrival order whatever their version numbers say.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.lsp.server import ZiLanguageServer, create_server
from server.settings import Settings

ENCODINGS = ["utf-8", "utf-16", "utf-32"]
# ASCII, all three line ends, non-BMP (surrogate pairs in UTF-16, 4 bytes in UTF-8),
# 2- and 3-byte characters, a combining mark, a ZWJ, and characters that
# str.splitlines (but not LSP) treats as line breaks.
PIECES = [
    "a", "Z", " ", "\t", "\n", "\r\n", "\r", "é", "€", "中", "😀", "🎉",
    "\N{MATHEMATICAL DOUBLE-STRUCK CAPITAL A}", "e\u0301", "\u200d",
    "\x0c", "\x1c", "\x85", "\u2028",
]  # fmt: skip
_LINE_END = re.compile(r"\r\n|\r|\n")
_UNIT_BYTES = {"utf-8": 1, "utf-16": 2, "utf-32": 4}


def units(ch: str, encoding: str) -> int:
    codec = {"utf-8": "utf-8", "utf-16": "utf-16-le", "utf-32": "utf-32-le"}[encoding]
    return len(ch.encode(codec)) // _UNIT_BYTES[encoding]


class ClientText:
    """The client's copy of the document."""

    def __init__(self, text: str, encoding: str) -> None:
        self.text = text
        self.encoding = encoding

    def lines(self) -> list[str]:
        """Line contents, without their line ends."""
        return _LINE_END.split(self.text)

    def offset(self, line: int, character: int) -> int:
        starts = [0] + [m.end() for m in _LINE_END.finditer(self.text)]
        if line >= len(starts):
            return len(self.text)
        index = starts[line]
        end = index + len(self.lines()[line])
        used = 0
        while index < end and used + units(self.text[index], self.encoding) <= character:
            used += units(self.text[index], self.encoding)
            index += 1
        return index

    def apply(self, change: dict[str, Any]) -> None:
        if "range" not in change:
            self.text = change["text"]
            return
        start, end = change["range"]["start"], change["range"]["end"]
        a = self.offset(start["line"], start["character"])
        b = self.offset(end["line"], end["character"])
        a, b = min(a, b), max(a, b)
        self.text = self.text[:a] + change["text"] + self.text[b:]


class InProcessServer:
    """The real server, fed JSON-RPC messages one at a time through its protocol."""

    def __init__(self, encoding: str) -> None:
        self.server: ZiLanguageServer = create_server(Settings(history={"enabled": False}))
        self.sent: list[bytes] = []
        self.server.protocol.set_writer(self)
        self.request("initialize", {"capabilities": {"general": {"positionEncodings": [encoding]}}})
        assert str(self.server.workspace.position_encoding) == encoding

    def write(self, data: bytes) -> None:  # the protocol's writer
        self.sent.append(data)

    def close(self) -> None:
        pass

    def request(self, method: str, params: Any) -> None:
        self.send({"jsonrpc": "2.0", "id": len(self.sent) + 1, "method": method, "params": params})

    def notify(self, method: str, params: Any) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def send(self, message: dict[str, Any]) -> None:
        protocol = self.server.protocol
        protocol.handle_message(protocol.structure_message(message))

    def text(self, uri: str) -> str:
        document = self.server.workspace.text_documents[uri]
        return document._source or ""  # what every feature reads

    def version(self, uri: str) -> int | None:
        return self.server.workspace.text_documents[uri].version

    async def errors(self) -> list[str]:
        """Error replies and logged internal errors so far (their callbacks run on the loop)."""
        await asyncio.sleep(0)
        return [m.decode() for m in self.sent if b"internal error" in m or b'"error"' in m]


def text_strategy(max_pieces: int = 30) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(PIECES), max_size=max_pieces).map("".join)


@st.composite
def position(draw: st.DrawFn, client: ClientText) -> dict[str, int]:
    lines = client.lines()
    line = draw(st.integers(0, len(lines) + 1))  # sometimes past the end
    width = sum(units(ch, client.encoding) for ch in lines[line]) if line < len(lines) else 3
    return {"line": line, "character": draw(st.integers(0, width + 2))}


@st.composite
def change(draw: st.DrawFn, client: ClientText) -> dict[str, Any]:
    if draw(st.integers(0, 9)) == 0:
        return {"text": draw(text_strategy())}  # the whole document
    start, end = draw(position(client)), draw(position(client))
    if draw(st.integers(0, 9)) > 0:  # now and then end-first
        start, end = sorted([start, end], key=lambda p: (p["line"], p["character"]))
    return {"range": {"start": start, "end": end}, "text": draw(text_strategy(6))}


class Servers:
    """One initialized server per encoding, on one event loop, shared by the examples
    (each example opens its own document): building a server per example would
    take most of the test's time."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()  # handlers may schedule work on it
        self._by_encoding: dict[str, InProcessServer] = {}

    def run(self, encoding: str, scenario: Callable[[InProcessServer], Awaitable[None]]) -> None:
        async def fresh() -> None:
            server = self._by_encoding.get(encoding)
            if server is None:
                server = self._by_encoding[encoding] = InProcessServer(encoding)
            server.sent.clear()
            await scenario(server)

        self.loop.run_until_complete(fresh())


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    shared = Servers()
    yield shared
    shared.loop.close()


def new_uri() -> str:
    return f"file:///work/project/notes-{next(_DOCUMENT_NUMBERS)}.txt"


_DOCUMENT_NUMBERS = itertools.count()


@settings(max_examples=200, deadline=None)
@given(
    encoding=st.sampled_from(ENCODINGS),
    opening=text_strategy(),
    data=st.data(),
)
def test_the_server_text_always_equals_the_client_text(
    servers: Servers, encoding: str, opening: str, data: st.DataObject
) -> None:
    uri = new_uri()

    async def scenario(server: InProcessServer) -> None:
        client = ClientText(opening, encoding)
        doc = {"uri": uri, "languageId": "plaintext", "version": 1, "text": opening}
        server.notify("textDocument/didOpen", {"textDocument": doc})
        version = 1
        for _ in range(data.draw(st.integers(1, 12), label="messages")):
            # Versions mostly go up by one, but also repeat, skip and go backwards.
            version += data.draw(st.sampled_from([1, 1, 1, 2, 0, -1, -3]), label="step")
            changes = []
            for _ in range(data.draw(st.integers(1, 3), label="changes")):
                changes.append(data.draw(change(client), label="change"))
                client.apply(changes[-1])
            server.notify(
                "textDocument/didChange",
                {"textDocument": {"uri": uri, "version": version}, "contentChanges": changes},
            )
            assert server.text(uri) == client.text
            assert server.version(uri) == version  # the last one the client sent
        server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
        assert await server.errors() == []

    servers.run(encoding, scenario)


@settings(max_examples=5, deadline=None)
@given(encoding=st.sampled_from(ENCODINGS), seed=st.integers(0, 2**32 - 1))
def test_thousands_of_rapid_keystrokes_keep_the_text(
    servers: Servers, encoding: str, seed: int
) -> None:
    """Typing and deleting one piece at a time near a cursor that wanders, in one
    message each, as an editor sends them while someone types."""
    rng = random.Random(seed)
    uri = new_uri()

    async def scenario(server: InProcessServer) -> None:
        client = ClientText("", encoding)
        server.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "plaintext", "version": 1, "text": ""}},
        )
        for version in range(2, 2_002):
            lines = client.lines()
            line = rng.randrange(len(lines))
            width = sum(units(ch, encoding) for ch in lines[line])
            start = {"line": line, "character": rng.randint(0, width)}
            end = dict(start)
            if rng.random() < 0.3:  # a backspace (maybe over a line end or half a pair)
                if start["character"]:
                    start["character"] -= 1
                elif line:
                    start = {"line": line - 1, "character": 10**6}
            text = "" if rng.random() < 0.3 else rng.choice(PIECES)
            edit = {"range": {"start": start, "end": end}, "text": text}
            client.apply(edit)
            server.notify(
                "textDocument/didChange",
                {"textDocument": {"uri": uri, "version": version}, "contentChanges": [edit]},
            )
        assert server.text(uri) == client.text
        server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
        assert await server.errors() == []

    servers.run(encoding, scenario)


def test_a_change_to_a_document_that_is_not_open_is_ignored(servers: Servers) -> None:
    uri = new_uri()

    async def scenario(server: InProcessServer) -> None:
        start = {"line": 0, "character": 0}
        change = {"range": {"start": start, "end": start}, "text": "x"}
        server.notify(
            "textDocument/didChange",
            {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [change]},
        )
        assert await server.errors() == []  # a log line, not "internal error" to the user
        doc = {"uri": uri, "languageId": "plaintext", "version": 3, "text": "ab"}
        server.notify("textDocument/didOpen", {"textDocument": doc})
        server.notify(
            "textDocument/didChange",
            {"textDocument": {"uri": uri, "version": 4}, "contentChanges": [change]},
        )
        assert server.text(uri) == "xab"

    servers.run("utf-16", scenario)
