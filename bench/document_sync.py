"""Incremental edits per second on a 10 MB document: pygls' TextDocument against
``server.lsp.text_sync.SyncedDocument``, and ours through the real protocol path.

    uv run python -m bench.document_sync [--quick] [--mb 10]

Each edit types one character (an emoji every tenth) at a cursor that moves down
the document, the way a person edits a large file; the per-edit times' median is
reported as edits per second. pygls re-splits and rebuilds the whole document on
every change, so it gets only a few edits.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

from lsprotocol import types
from pygls.workspace.position_codec import PositionCodec
from pygls.workspace.text_document import TextDocument

from bench.stats import summary
from server.lsp.server import create_server
from server.lsp.text_sync import SyncedDocument
from server.settings import Settings

URI = "file:///work/project/big.py"
LINE = "    total = compute(alpha, beta, gamma)  # x = 1 + 2 * 3 -- some words é\n"


def document(megabytes: float) -> str:
    return LINE * int(megabytes * 1_000_000 / len(LINE))


def keystrokes(lines: int, count: int, seed: int = 7) -> list[tuple[int, int, str]]:
    rng = random.Random(seed)
    line = rng.randrange(lines)
    out = []
    for number in range(count):
        if number % 50 == 0:
            line = rng.randrange(lines)  # jump elsewhere now and then
        out.append((line, rng.randrange(40), "😀" if number % 10 == 0 else "x"))
    return out


def change(line: int, character: int, text: str) -> types.TextDocumentContentChangePartial:
    here = types.Position(line=line, character=character)
    return types.TextDocumentContentChangePartial(
        range=types.Range(start=here, end=here), text=text
    )


def time_each(
    edits: list[tuple[int, int, str]], apply: Callable[[int, int, str], None]
) -> list[float]:
    samples = []
    for line, character, text in edits:
        started = time.perf_counter()
        apply(line, character, text)
        samples.append(time.perf_counter() - started)
    return samples


def bench_pygls(text: str, edits: list[tuple[int, int, str]]) -> list[float]:
    doc = TextDocument(URI, text, version=1, position_codec=PositionCodec("utf-16"))
    return time_each(edits, lambda line, col, typed: doc.apply_change(change(line, col, typed)))


def bench_synced(text: str, edits: list[tuple[int, int, str]]) -> list[float]:
    doc = SyncedDocument(URI, text, 1, "python", "utf-16")
    return time_each(edits, lambda line, col, typed: doc.apply_change(change(line, col, typed)))


def bench_protocol(text: str, edits: list[tuple[int, int, str]]) -> list[float]:
    """didChange as the stdio loop hands it over: parsing, pygls' dispatch, our handler."""
    server = create_server(Settings(history={"enabled": False}))
    protocol = server.protocol

    class Sink:
        def write(self, data: bytes) -> None:
            pass

        def close(self) -> None:
            pass

    protocol.set_writer(Sink())

    def send(method: str, params: dict[str, Any], msg_id: int | None = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
        if msg_id is not None:
            message["id"] = msg_id
        protocol.handle_message(protocol.structure_message(message))

    async def run() -> list[float]:
        send("initialize", {"capabilities": {}}, 1)
        doc = {"uri": URI, "languageId": "python", "version": 1, "text": text}
        send("textDocument/didOpen", {"textDocument": doc})
        versions = iter(range(2, len(edits) + 2))

        def apply(line: int, character: int, typed: str) -> None:
            here = {"line": line, "character": character}
            send(
                "textDocument/didChange",
                {
                    "textDocument": {"uri": URI, "version": next(versions)},
                    "contentChanges": [{"range": {"start": here, "end": here}, "text": typed}],
                },
            )

        samples = time_each(edits, apply)
        final = server.workspace.text_documents[URI]._source
        assert final is not None and len(final) == len(text) + len(edits)
        return samples

    return asyncio.run(run())


def report(name: str, samples: list[float]) -> None:
    stats = summary(samples)
    print(
        f"| {name} | {stats['n']} | {stats['median'] * 1000:.3f} | {1 / stats['median']:,.0f} "
        f"| {stats['p99'] * 1000:.3f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer edits")
    parser.add_argument("--mb", type=float, default=10.0, help="document size in MB")
    args = parser.parse_args()
    text = document(args.mb)
    lines = text.count("\n")
    ours = 1_000 if args.quick else 5_000
    print(f"document: {len(text):,} characters, {lines:,} lines")
    print("| edit path | edits | median ms | edits/s (median) | p99 ms |")
    print("|---|---|---|---|---|")
    report(
        "pygls TextDocument (before)", bench_pygls(text, keystrokes(lines, 5 if args.quick else 20))
    )
    report("SyncedDocument (after)", bench_synced(text, keystrokes(lines, ours)))
    report("didChange through the protocol (after)", bench_protocol(text, keystrokes(lines, ours)))


if __name__ == "__main__":
    main()
