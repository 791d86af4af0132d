"""Seeded LSP traffic for the fuzzer: well-formed messages for every method the server
registers, and mutations of them from the params down to the bytes of the frame.

`MessageGenerator.next()` returns an `Outgoing`: the bytes to write (in one or more
chunks), what kind of message it is, and the id whose answer the server owes, if
any. A message owes an answer when its frame is intact and its body parses to an
object with an LSP id (an int32 or a string) that is not a response: whatever the
method or params, JSON-RPC says such a request gets a response with its id. Framing
mutations are followed by a resynchronising blank header block, so a server that
skips bad bytes can find the next frame.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from typing import Any

INT32 = 2**31
NOT_FUZZED = frozenset({"exit", "shutdown"})  # they end the session: the final check needs it
TEXTS = (
    "def add(a, b):\n    return a + b\n",
    "import os\n\n\nclass A:\n    def f(self):\n        pass\n",
    "x = '😀é中'\r\ny = 2\r\n",
    "",
    "\n\n\t\n",
    "s = '''\n\U0001f600\U0001f600\n'''\nprint(s)\n",
)
SNIPPETS = ("x", "\n", "    ", "return 1\n", "😀", "é", "\r\n", "'''", "def g():\n", "")
BAD_URIS = (
    "",
    "not a uri",
    "file://",
    "file:///%%%zz",
    "http://example.invalid/x.py",
    "untitled:Untitled-1",
    "file:///" + "a" * 5000,
    "file:///tmp/../../etc/hostname",
    "file:///nonexistent/\u0000.py",
    "\ud800",
)
WEIRD: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    -INT32 - 1,
    INT32,
    2**53 + 1,
    2**64,
    10**30,
    1.5,
    -0.0,
    1e308,
    "",
    "x",
    "\u0000",
    "\ud800",
    "😀" * 3,
    "a" * 100_000,
    [],
    {},
    [None],
    {"": None},
    {"line": -1, "character": INT32},
)
NUMBERS = (-1, -INT32, INT32 - 1, INT32, 2**63, 10**6, 1.5, 0)
SERVER_NAME_PARTS = ("zi/fuzzUnknown", "textDocument/noSuchThing", "workspace/fuzz", "fuzz")


@dataclass
class Outgoing:
    chunks: list[bytes]  # written in order, with a short pause between (a slow writer)
    kind: str  # "valid:<method>", "params:<op>", "envelope:<op>", "body:<op>", "frame:<op>"
    expect_id: int | str | None = None  # the id the server must answer
    method: str = ""


@dataclass
class Doc:
    uri: str
    text: str = ""
    version: int = 0
    open: bool = False


@dataclass
class MessageGenerator:
    rng: random.Random
    docs: list[Doc] = field(default_factory=list)
    completion_ids: list[str] = field(default_factory=list)  # seen in answers
    action_data: list[Any] = field(default_factory=list)  # codeAction `data` seen in answers
    recent_ids: list[int | str] = field(default_factory=list)
    label: str = "valid"  # of the last message from valid()
    _next_id: int = 1000

    def __post_init__(self) -> None:
        self.docs = [Doc(uri=f"file:///fuzz/project/m{i}.py") for i in range(6)]

    # ------------------------------------------------------------------ envelopes

    def new_id(self) -> int | str:
        self._next_id += 1
        new: int | str = self._next_id if self.rng.random() < 0.8 else f"fz-{self._next_id}"
        self.recent_ids = [*self.recent_ids[-19:], new]
        return new

    def request(self, method: str, params: Any) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": self.new_id(), "method": method, "params": params}

    @staticmethod
    def notification(method: str, params: Any) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "method": method, "params": params}

    # ------------------------------------------------------------ valid messages

    def valid(self) -> dict[str, Any]:
        builders = (
            (6, self._did_open),
            (10, self._did_change),
            (2, self._did_save),
            (2, self._did_close),
            (8, self._inline_completion),
            (4, self._completion),
            (4, self._code_action),
            (1, self._resolve),
            (2, self._execute_command),
            (3, self._diagnostic),
            (3, self._zi_notification),
            (1, self._explain),
            (2, self._cancel),
            (1, self._set_trace),
            (1, self._progress_cancel),
            (1, self._configuration),
            (1, self._workspace_folders),
            (2, self._unknown),
        )
        self.label = "valid"  # `_unknown` makes it "unknown": errors are right answers then
        total = sum(w for w, _ in builders)
        pick = self.rng.uniform(0, total)
        for weight, build in builders:
            pick -= weight
            if pick <= 0:
                return build()
        return builders[-1][1]()

    def _doc(self, opened: bool | None = None) -> Doc:
        pool = [d for d in self.docs if opened is None or d.open == opened] or self.docs
        return self.rng.choice(pool)

    def _position(self, doc: Doc) -> dict[str, int]:
        index = self.rng.randint(0, len(doc.text))
        if index and doc.text[index - 1] == "\r":
            index -= 1  # between \r and \n is no position
        line = doc.text.count("\n", 0, index)
        segment = doc.text[doc.text.rfind("\n", 0, index) + 1 : index]
        return {"line": line, "character": len(segment.encode("utf-16-le")) // 2}

    def _range(self, doc: Doc) -> dict[str, Any]:
        a, b = self._position(doc), self._position(doc)
        first, last = sorted((a, b), key=lambda p: (p["line"], p["character"]))
        return {"start": first, "end": last}

    def _did_open(self) -> dict[str, Any]:
        doc = self._doc(opened=False)
        doc.text, doc.version, doc.open = self.rng.choice(TEXTS), doc.version + 1, True
        item = {"uri": doc.uri, "languageId": "python", "version": doc.version, "text": doc.text}
        return self.notification("textDocument/didOpen", {"textDocument": item})

    def _did_change(self) -> dict[str, Any]:
        doc = self._doc(opened=True)
        doc.version += 1
        if self.rng.random() < 0.15:
            doc.text = self.rng.choice(TEXTS)
            change: dict[str, Any] = {"text": doc.text}
        else:
            start, end = sorted(self.rng.randint(0, len(doc.text)) for _ in range(2))
            while start and doc.text[start - 1] == "\r":
                start -= 1
            while end and doc.text[end - 1] == "\r":
                end -= 1
            new = self.rng.choice(SNIPPETS)
            change = {"range": self._offsets_range(doc.text, start, end), "text": new}
            doc.text = doc.text[:start] + new + doc.text[end:]
        params = {"textDocument": {"uri": doc.uri, "version": doc.version}}
        return self.notification("textDocument/didChange", {**params, "contentChanges": [change]})

    @staticmethod
    def _offsets_range(text: str, start: int, end: int) -> dict[str, Any]:
        def at(index: int) -> dict[str, int]:
            segment = text[text.rfind("\n", 0, index) + 1 : index]
            return {
                "line": text.count("\n", 0, index),
                "character": len(segment.encode("utf-16-le")) // 2,
            }

        return {"start": at(start), "end": at(end)}

    def _did_save(self) -> dict[str, Any]:
        doc = self._doc(opened=True)
        return self.notification("textDocument/didSave", {"textDocument": {"uri": doc.uri}})

    def _did_close(self) -> dict[str, Any]:
        doc = self._doc(opened=True)
        doc.open = False
        return self.notification("textDocument/didClose", {"textDocument": {"uri": doc.uri}})

    def _inline_completion(self) -> dict[str, Any]:
        doc = self._doc()
        params = {
            "textDocument": {"uri": doc.uri},
            "position": self._position(doc),
            "context": {"triggerKind": self.rng.choice((1, 2))},
        }
        return self.request("textDocument/inlineCompletion", params)

    def _completion(self) -> dict[str, Any]:
        doc = self._doc()
        params = {
            "textDocument": {"uri": doc.uri},
            "position": self._position(doc),
            "context": {"triggerKind": self.rng.choice((1, 2, 3))},
        }
        return self.request("textDocument/completion", params)

    def _code_action(self) -> dict[str, Any]:
        doc = self._doc()
        diagnostic = {"range": self._range(doc), "message": "fuzz finding", "source": "zi-review"}
        context: dict[str, Any] = {"diagnostics": [diagnostic] if self.rng.random() < 0.5 else []}
        if self.rng.random() < 0.3:
            context["only"] = [self.rng.choice(("quickfix", "refactor", "refactor.rewrite.zi"))]
        params = {"textDocument": {"uri": doc.uri}, "range": self._range(doc), "context": context}
        return self.request("textDocument/codeAction", params)

    def _resolve(self) -> dict[str, Any]:
        if self.action_data:  # a copy: mutations edit the message in place
            data = copy.deepcopy(self.rng.choice(self.action_data))
        else:  # shaped as offered, for a document as the fuzzer holds it
            doc = self._doc()
            data = {"zi": "improve", "uri": doc.uri, "version": doc.version, "start": 0, "end": 1}
        return self.request("codeAction/resolve", {"title": "Fuzz", "data": data})

    def _execute_command(self) -> dict[str, Any]:
        ids = self.completion_ids or ["no-such-completion"]
        params = {"command": "zi.acceptCompletion", "arguments": [self.rng.choice(ids)]}
        return self.request("workspace/executeCommand", params)

    def _diagnostic(self) -> dict[str, Any]:
        params: dict[str, Any] = {"textDocument": {"uri": self._doc().uri}}
        if self.rng.random() < 0.3:
            params["previousResultId"] = "fuzz"
        return self.request("textDocument/diagnostic", params)

    def _zi_notification(self) -> dict[str, Any]:
        cid = self.rng.choice(self.completion_ids or ["no-such-completion"])
        if self.rng.random() < 0.5:
            return self.notification("zi/didShowCompletion", {"id": cid})
        params = {"id": cid, "acceptedLength": self.rng.randint(0, 20)}
        return self.notification("zi/didPartiallyAcceptCompletion", params)

    def _explain(self) -> dict[str, Any]:
        doc = self._doc()
        return self.request(
            "zi/explain", {"textDocument": {"uri": doc.uri}, "range": self._range(doc)}
        )

    def _cancel(self) -> dict[str, Any]:
        target = self.rng.choice(self.recent_ids) if self.recent_ids else 1
        return self.notification("$/cancelRequest", {"id": target})

    def _set_trace(self) -> dict[str, Any]:
        return self.notification("$/setTrace", {"value": self.rng.choice(("off", "messages"))})

    def _progress_cancel(self) -> dict[str, Any]:
        return self.notification("window/workDoneProgress/cancel", {"token": "zi-fuzz"})

    def _configuration(self) -> dict[str, Any]:
        settings: Any = self.rng.choice(
            ({"zi": {}}, {"zi": {"inference": {"fim_template": "nope"}}}, None, {})
        )
        return self.notification("workspace/didChangeConfiguration", {"settings": settings})

    def _workspace_folders(self) -> dict[str, Any]:
        folder = {"uri": "file:///fuzz/project", "name": "project"}
        added, removed = ([folder], []) if self.rng.random() < 0.5 else ([], [folder])
        event = {"event": {"added": added, "removed": removed}}
        return self.notification("workspace/didChangeWorkspaceFolders", event)

    def _unknown(self) -> dict[str, Any]:
        self.label = "unknown"
        if self.rng.random() < 0.2:
            return self.request("workspace/executeCommand", {"command": "zi.noSuch"})
        name = self.rng.choice(SERVER_NAME_PARTS)
        if self.rng.random() < 0.5:
            return self.notification("$/" + name.replace("/", ""), {"x": 1})
        return self.request(name, {})
