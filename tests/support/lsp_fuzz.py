"""A seeded LSP fuzzer against the real server subprocess over stdio.

`FuzzSession(env, stderr_path, seed)` starts ``python -m server serve``, sends a
well-formed ``initialize``/``initialized``, then `fuzz(seconds)` writes random and
mutated messages (tests/support/lsp_fuzz_messages.py and lsp_fuzz_mutations.py)
as fast as the server reads them, with at most `MAX_OUTSTANDING` requests waiting
for an answer. A reader thread drains stdout and checks that every byte of it is
a well-formed JSON-RPC frame; it matches answers to the ids the server owes, counts
them by error code (0: a result), and queues the server's own requests, which the
writer answers between messages. `request()` and `notify()` are for the
well-formed traffic after the fuzzing; `report()` sums everything up.
"""

from __future__ import annotations

import io
import json
import queue
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import server_log
from tests.support.lsp_frames import next_frame, shape_problem
from tests.support.lsp_fuzz_messages import MessageGenerator, Outgoing
from tests.support.lsp_fuzz_mutations import encode, frame, next_outgoing

MAX_OUTSTANDING = 64  # requests in flight before the writer waits (a busy editor's worth)
GIVE_UP_S = 5.0  # a request unanswered this long no longer holds the writer back
CLIENT_CAPABILITIES = {
    "general": {"positionEncodings": ["utf-16"]},
    "window": {"workDoneProgress": True},
    "workspace": {
        "configuration": True,
        "workspaceFolders": True,
        "diagnostics": {"refreshSupport": True},
    },
    "textDocument": {
        "diagnostic": {},
        "inlineCompletion": {},
        "synchronization": {"didSave": True},
    },
}
COMPLETION_BODY = "def add(a, b):\n    \n"
PROTOCOL_ERRORS = (-32700, -32600, -32602, -32603)  # never right for a well-formed request


@dataclass
class Pending:
    kind: str
    method: str
    sent_at: float


@dataclass
class Tally:
    """What came back; written by the reader thread under `FuzzSession.lock`."""

    by_code: Counter[int] = field(default_factory=Counter)  # owed answers; 0 = result
    unmatched_by_code: Counter[int] = field(default_factory=Counter)  # id null or not owed
    duplicates: list[str] = field(default_factory=list)
    internal_errors: list[str] = field(default_factory=list)  # -32603: "kind: message"
    tracebacks_to_client: list[str] = field(default_factory=list)
    errors_on_valid: Counter[str] = field(default_factory=Counter)  # "method code"
    stdout_junk: list[str] = field(default_factory=list)
    notifications: Counter[str] = field(default_factory=Counter)
    server_requests: int = 0


class FuzzSession:
    def __init__(
        self,
        env: dict[str, str],
        stderr_path: Path,
        seed: int,
        workspace: Path,
        cwd: Path | None = None,  # where `python -m server` is imported from
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.gen = MessageGenerator(self.rng)
        self.stderr_path = stderr_path
        self.lock = threading.Lock()
        self.pending: dict[str, Pending] = {}
        self.answers: dict[str, dict[str, Any]] = {}  # well-formed requests of `request()`
        self.answered: set[str] = set()
        self.tally = Tally()
        self.sent: Counter[str] = Counter()
        self.fuzz_seconds = 0.0
        self.broken_pipe = False
        self._server_requests: queue.Queue[dict[str, Any]] = queue.Queue()
        with stderr_path.open("ab") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "server", "serve"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
                cwd=cwd,
            )
        self._reader = threading.Thread(target=self._read_stdout, name="fuzz-stdout", daemon=True)
        self._reader.start()
        init = {
            "processId": None,
            "rootUri": workspace.as_uri(),
            "workspaceFolders": [{"uri": workspace.as_uri(), "name": workspace.name}],
            "capabilities": CLIENT_CAPABILITIES,
        }
        self.initialize_result = self.request("initialize", init, timeout=60)
        self.notify("initialized", {})
        # fast start answers initialize while the server is still importing: wait for it.
        ready = {"textDocument": {"uri": workspace.as_uri() + "/none.py"}}
        self.request("textDocument/diagnostic", ready, timeout=60)

    # ------------------------------------------------------------------ writing

    def alive(self) -> bool:
        return self.proc.poll() is None and not self.broken_pipe

    def _write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            self.broken_pipe = True

    def notify(self, method: str, params: Any) -> None:
        self._write(frame(encode({"jsonrpc": "2.0", "method": method, "params": params})))

    def request(self, method: str, params: Any, timeout: float = 30) -> dict[str, Any] | None:
        """Send a well-formed request and wait for its answer (None: none came)."""
        message = self.gen.request(method, params)
        key = json.dumps(message["id"])
        with self.lock:
            self.answers[key] = {}
        self._write(frame(encode(message)))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            self._answer_server_requests()
            with self.lock:
                if self.answers[key]:
                    return self.answers.pop(key)
            time.sleep(0.01)
        return None

    def _send(self, out: Outgoing) -> None:
        if out.expect_id is not None:
            with self.lock:
                self.pending[json.dumps(out.expect_id)] = Pending(
                    out.kind, out.method, time.monotonic()
                )
        for i, chunk in enumerate(out.chunks):
            if i:
                time.sleep(self.rng.uniform(0.002, 0.03))
            self._write(chunk)
        self.sent[out.kind] += 1

    def _answer_server_requests(self) -> None:
        while True:
            try:
                request = self._server_requests.get_nowait()
            except queue.Empty:
                return
            result: Any = [{}] if request.get("method") == "workspace/configuration" else None
            self._write(frame(encode({"jsonrpc": "2.0", "id": request["id"], "result": result})))

    def fuzz(self, seconds: float) -> None:
        """Random and mutated traffic for `seconds` (or until the server dies)."""
        started = time.monotonic()
        while time.monotonic() - started < seconds and self.alive():
            self._answer_server_requests()
            self._wait_for_room()
            self._send(next_outgoing(self.gen))
        self.fuzz_seconds += time.monotonic() - started

    def _wait_for_room(self) -> None:
        while self._in_flight() >= MAX_OUTSTANDING and self.alive():
            self._answer_server_requests()
            time.sleep(0.002)

    def _in_flight(self) -> int:
        """Requests sent in the last `GIVE_UP_S` and not answered yet (older ones are lost:
        they count as unanswered at the end, and do not slow the fuzzing down)."""
        since = time.monotonic() - GIVE_UP_S
        with self.lock:
            return sum(1 for p in self.pending.values() if p.sent_at > since)

    def settle(self, timeout: float) -> None:
        """Wait (answering the server) until every owed answer came, or `timeout`."""
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline and self.alive():
            self._answer_server_requests()
            time.sleep(0.02)

    def close(self, timeout: float = 30) -> int | None:
        """shutdown, exit; the exit code (None: still running, then killed)."""
        if self.alive():
            self.request("shutdown", None, timeout=timeout)
            self.notify("exit", None)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        self._reader.join(timeout=5)
        return code

    # ------------------------------------------------------------------ reading

    def _read_stdout(self) -> None:
        buffer = b""
        stdout = self.proc.stdout
        assert isinstance(stdout, io.BufferedReader)  # read1: what is there, without waiting
        while chunk := stdout.read1(1 << 16):
            buffer += chunk
            while True:
                message, buffer, problem = next_frame(buffer)
                if problem:
                    with self.lock:
                        self.tally.stdout_junk.append(problem)
                    return  # the stream cannot be trusted past junk
                if message is None:
                    break
                self._received(message)

    def _received(self, message: dict[str, Any]) -> None:
        if problem := shape_problem(message):
            with self.lock:
                self.tally.stdout_junk.append(f"{problem}: {json.dumps(message)[:200]}")
            return
        if "method" in message:
            with self.lock:
                if "id" in message:
                    self.tally.server_requests += 1
                    self._server_requests.put(message)
                else:
                    self.tally.notifications[message["method"]] += 1
            return
        key = json.dumps(message["id"])
        error = message.get("error")
        code = int(error["code"]) if error else 0
        with self.lock:
            if key in self.answers and not self.answers[key]:
                self.answers[key] = message  # a well-formed request of `request()`
                self._learn(message.get("result"))
                return
            pending = self.pending.pop(key, None)
            if pending is None:
                if key in self.answered:
                    self.tally.duplicates.append(key)
                else:
                    self.tally.unmatched_by_code[code] += 1
                return
            self.answered.add(key)
            self.tally.by_code[code] += 1
            if error:
                self._error(pending, error)
            else:
                self._learn(message.get("result"))

    def _error(self, pending: Pending, error: dict[str, Any]) -> None:
        text = json.dumps(error)
        if error["code"] == -32603:
            self.tally.internal_errors.append(f"{pending.kind}: {str(error['message'])[:200]}")
        if "Traceback" in text:
            self.tally.tracebacks_to_client.append(f"{pending.kind}: {text[:200]}")
        if pending.kind.startswith("valid:") and error["code"] in PROTOCOL_ERRORS:
            self.tally.errors_on_valid[f"{pending.method} {error['code']}"] += 1

    def _learn(self, result: Any) -> None:
        """Completion ids and code-action data to use in later messages."""
        items = result.get("items") if isinstance(result, dict) else None
        for item in items or []:
            args = ((item or {}).get("command") or {}).get("arguments") or []
            if args and isinstance(args[0], str):
                self.gen.completion_ids = [*self.gen.completion_ids[-19:], args[0]]
        if isinstance(result, list):
            for action in result:
                if isinstance(action, dict) and "data" in action:
                    self.gen.action_data = [*self.gen.action_data[-9:], action["data"]]

    def completes(self, uri: str, timeout: float = 30) -> str | None:
        """After the fuzzing: settings back to the defaults, a fresh document, an invoked
        inline completion at the end of `def add(a, b):\n    `; the suggestion's text."""
        self.notify("workspace/didChangeConfiguration", {"settings": {"zi": {}}})
        item = {"uri": uri, "languageId": "python", "version": 1, "text": COMPLETION_BODY}
        self.notify("textDocument/didOpen", {"textDocument": item})
        params = {
            "textDocument": {"uri": uri},
            "position": {"line": 1, "character": 4},
            "context": {"triggerKind": 1},
        }
        answer = self.request("textDocument/inlineCompletion", params, timeout=timeout)
        result = (answer or {}).get("result")
        items = result.get("items") if isinstance(result, dict) else None
        return str(items[0].get("insertText")) if items else None

    # ------------------------------------------------------------------ results

    def stderr_crashes(self) -> list[str]:
        """Crashes on bad input in the server's log (`server_log.crashes`)."""
        return server_log.crashes(self.stderr_path.read_text(errors="replace"))

    def report(self) -> dict[str, Any]:
        with self.lock:
            unanswered = Counter(p.kind for p in self.pending.values())
            tally = self.tally
            total = sum(self.sent.values())
            return {
                "seed": self.seed,
                "messages_sent": total,
                "fuzz_seconds": round(self.fuzz_seconds, 1),
                "messages_per_second": round(total / max(self.fuzz_seconds, 1e-9), 1),
                "sent_by_kind": dict(sorted(self.sent.items())),
                "answers_by_code": {str(k): v for k, v in sorted(tally.by_code.items())},
                "unmatched_answers_by_code": {
                    str(k): v for k, v in sorted(tally.unmatched_by_code.items())
                },
                "unanswered": sum(unanswered.values()),
                "unanswered_by_kind": dict(sorted(unanswered.items())),
                "duplicate_answers": len(tally.duplicates),
                "internal_errors": sorted(set(tally.internal_errors)),
                "tracebacks_to_client": len(tally.tracebacks_to_client),
                "protocol_errors_on_valid_requests": dict(tally.errors_on_valid),
                "stdout_junk": tally.stdout_junk[:5],
                "server_requests_answered": tally.server_requests,
                "notifications": dict(tally.notifications),
            }
