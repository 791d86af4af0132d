"""A 10 MB document and thousands of rapid edits over the real stdio server.

The test plays the editor: it keeps its own copy of the document (a list of lines)
and sends each edit as VS Code would (UTF-16 positions, one didChange per
keystroke, no waiting). What the server holds is read back two ways a user sees:
the "completions are off" message names the document's length, and once the
document is cut below that limit, the prompt the model receives must hold the
edited text before the cursor exactly.
"""

from __future__ import annotations

import random
import re
import time

from lsprotocol import types
from pytest_lsp import LanguageClient

from tests.e2e.conftest import StartServer, inline, open_document, texts
from tests.support.scripted_model import ScriptedModel

URI = "file:///work/project/big.txt"
PIECES = [
    "a",
    "b",
    " ",
    "=",
    "é",
    "😀",
    "\N{MATHEMATICAL DOUBLE-STRUCK CAPITAL A}",
    "🎉",
]  # astral ones are 2 UTF-16 units
HOT_LINES = 30


def units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class Editor:
    """The client's copy of the document (lines without their \\n) and its edits."""

    def __init__(self, client: LanguageClient, lines: list[str]) -> None:
        self.client = client
        self.lines = lines
        self.version = 1

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def position(self, line: int, index: int) -> types.Position:
        return types.Position(line=line, character=units(self.lines[line][:index]))

    def send(self, start: types.Position, end: types.Position, text: str) -> None:
        self.version += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=self.version),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(start=start, end=end), text=text
                    )
                ],
            )
        )

    def type(self, line: int, index: int, text: str) -> None:
        here = self.position(line, index)
        self.send(here, here, text)
        head, tail = self.lines[line][:index], self.lines[line][index:]
        self.lines[line : line + 1] = (head + text + tail).split("\n")

    def backspace(self, line: int, index: int) -> None:
        """Delete the character before (line, index), or the line end before the line."""
        if index:
            self.send(self.position(line, index - 1), self.position(line, index), "")
            current = self.lines[line]
            self.lines[line] = current[: index - 1] + current[index:]
        else:
            self.send(
                self.position(line - 1, len(self.lines[line - 1])), self.position(line, 0), ""
            )
            self.lines[line - 1 : line + 1] = [self.lines[line - 1] + self.lines[line]]

    def delete_lines(self, first: int, last: int) -> None:
        """Delete lines first..last-1 with their line ends."""
        if last < len(self.lines):
            self.send(self.position(first, 0), self.position(last, 0), "")
        else:  # through the end of the document: the line end before goes too
            end = self.position(len(self.lines) - 1, len(self.lines[-1]))
            self.send(self.position(first - 1, len(self.lines[first - 1])), end, "")
        del self.lines[first:last]


def big_document() -> list[str]:
    lines = []
    for number in range(150_000):  # about 10 MB
        mark = "é" if number % 7 == 0 else "😀" if number % 101 == 0 else "x"
        lines.append(f"value_{number:06} = compute({number}, alpha, beta)  # {mark} note text")
    return lines


def edit_like_a_person(editor: Editor, hot: int, count: int, seed: int) -> tuple[int, int]:
    """`count` edits, most in the HOT_LINES lines from `hot` on, some above them (which
    move them down) and some far below; returns where the hot lines are now."""
    rng = random.Random(seed)
    end = hot + HOT_LINES
    for number in range(count):
        roll = rng.random()
        if roll < 0.08:  # a new line near the top: everything below moves down
            editor.type(rng.randrange(50), 0, f"# added {number} 🎉\n")
            hot, end = hot + 1, end + 1
        elif roll < 0.12:  # an edit far below
            editor.type(len(editor.lines) - rng.randrange(1, 1000), 3, "z")
        elif roll < 0.15:  # a line split in the hot lines
            line = rng.randrange(hot, end)
            editor.type(line, rng.randrange(len(editor.lines[line]) + 1), "\n")
            end += 1
        elif roll < 0.18 and end - hot > HOT_LINES // 2:  # two hot lines joined
            editor.backspace(rng.randrange(hot + 1, end), 0)
            end -= 1
        elif roll < 0.35 and editor.lines[line := rng.randrange(hot, end)]:
            editor.backspace(line, rng.randrange(1, len(editor.lines[line]) + 1))
        else:
            line = rng.randrange(hot, end)
            index = rng.randrange(len(editor.lines[line]) + 1)
            editor.type(line, index, rng.choice(PIECES))
    return hot, end


async def test_a_10_mb_document_edited_thousands_of_times_matches_the_client(
    start_server: StartServer, scripted_model: ScriptedModel
) -> None:
    client = await start_server(ZI_COMPLETION__PREFIX_TOKENS="20000")
    editor = Editor(client, big_document())
    started = time.perf_counter()
    open_document(client, URI, editor.text, language="plaintext")
    hot, end = edit_like_a_person(editor, 75_000, 3_000, seed=9)
    sent = time.perf_counter() - started
    # The server handles messages in order: this answer comes after every edit.
    await inline(client, URI, hot, 0, invoked=True)
    elapsed = time.perf_counter() - started
    print(
        f"\n10 MB document: open + {editor.version - 1} edits sent in {sent:.2f} s, "
        f"all handled {elapsed:.2f} s after the open"
    )

    declined = [m.message for m in client.log_messages if "completions are off" in m.message]
    assert declined, "a document over the limit gets no completions"
    assert f"has {len(editor.text):,} characters" in declined[-1]

    # Cut the document to the hot lines, then ask for a completion below them.
    editor.delete_lines(end, len(editor.lines))
    editor.delete_lines(0, hot)
    editor.type(len(editor.lines) - 1, len(editor.lines[-1]), "\ndef f(a, b):\n    ")
    line = len(editor.lines) - 1
    await inline(client, URI, line, units(editor.lines[line]), invoked=True)

    prompt = scripted_model.requests[-1]["prompt"]
    before_cursor = re.split(r"<\|fim_suffix\|>", prompt)[0]
    assert before_cursor.endswith(f"Path: /work/project/big.txt\n{editor.text}")
    assert any(
        "😀" in line or "\N{MATHEMATICAL DOUBLE-STRUCK CAPITAL A}" in line for line in editor.lines
    )  # astral chars in it


async def test_a_uri_with_escaped_characters_is_the_same_open_document(
    start_server: StartServer, scripted_model: ScriptedModel
) -> None:
    # pygls keys open documents by the unquoted URI; the features must find them by
    # the URI as the client spells it (a space, non-ASCII: VS Code escapes both).
    scripted_model.reply_with("return a + b")
    client = await start_server()
    uri = "file:///work/project/my%20calc%C3%A9.py"
    open_document(client, uri, "def add(a, b):\n    \n")
    assert texts(await inline(client, uri, 1, 4, invoked=True)) == ["return a + b"]
