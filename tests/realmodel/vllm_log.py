"""Reading a vLLM server's request log, to assert what reached the engine.

Why: the language server's prompt, stop strings and cancellation are only proven
end to end by what vLLM itself saw. Started with ``--enable-log-requests`` and
the request-logger config of ``tests.support.vllm_server.request_logging_env``,
vLLM 0.32 writes, per request::

    DEBUG [...request_logger] Request ID JSON body: {...}
    DEBUG [...request_logger] Request cmpl-ID-0 details: prompt: '...', prompt_token_ids: [...]
    INFO [...request_logger] Received request cmpl-ID-0: params: SamplingParams(...stop=[...])
    INFO [vllm.v1.engine.async_llm] Added request cmpl-ID-0-SUFFIX.
    INFO [vllm.v1.engine.async_llm] Request cmpl-ID-0 aborted.      (the client went away)

Tests share one server per session, so each test takes a `mark()` (the log's
size) before acting and reads only what was written after it.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_BODY = re.compile(r"Request (\S+) JSON body: (\{.*\})$", re.MULTILINE)
_DETAILS = re.compile(
    r"Request cmpl-(\S+?)-\d+ details: prompt: .*, prompt_token_ids: \[([\d, ]*)\]", re.MULTILINE
)
_PARAMS = re.compile(
    r"Received request cmpl-(\S+?)-\d+: params: (SamplingParams\(.*)$", re.MULTILINE
)
_ADDED = re.compile(r"Added request cmpl-(\S+?)-\d+-", re.MULTILINE)
_ABORTED = re.compile(r"Request cmpl-(\S+?)-\d+ aborted\.", re.MULTILINE)


@dataclass(frozen=True)
class CompletionSeen:
    """One /v1/completions request as vLLM logged it."""

    request_id: str
    body: dict[str, Any]
    prompt_token_ids: tuple[int, ...]
    sampling_params: str


class VllmLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        """A position; later reads see only what was logged after it."""
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def since(self, mark: int) -> str:
        with self.path.open("rb") as f:
            f.seek(mark)
            return f.read().decode("utf-8", errors="replace")

    def completions(self, mark: int) -> list[CompletionSeen]:
        """Completion requests (not /tokenize ones) logged after `mark`, in order."""
        text = self.since(mark)
        token_ids = {m[1]: _ints(m[2]) for m in _DETAILS.finditer(text)}
        params = {m[1]: m[2] for m in _PARAMS.finditer(text)}
        seen = []
        for match in _BODY.finditer(text):
            body = json.loads(match[2])
            if "max_tokens" not in body:  # /tokenize bodies carry only model and prompt
                continue
            rid = match[1]
            seen.append(CompletionSeen(rid, body, token_ids.get(rid, ()), params.get(rid, "")))
        return seen

    def wait_for_completion(self, mark: int, timeout_s: float = 10.0) -> CompletionSeen:
        """The first completion request after `mark`, once vLLM has logged all of it."""
        deadline = time.monotonic() + timeout_s
        while True:
            seen = [c for c in self.completions(mark) if c.prompt_token_ids and c.sampling_params]
            if seen:
                return seen[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"no completion request logged; {self._tail(mark)}")
            time.sleep(0.05)

    def wait_for(self, pattern: str, mark: int, timeout_s: float = 10.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        compiled = re.compile(pattern, re.MULTILINE)
        while True:
            found = compiled.search(self.since(mark))
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not logged; {self._tail(mark)}")
            time.sleep(0.05)

    def _tail(self, mark: int, chars: int = 4000) -> str:
        text = self.since(mark)
        return f"{self.path} since mark {mark} ends with:\n{text[-chars:]}"

    def started(self, request_id: str, mark: int) -> bool:
        return any(m[1] == request_id for m in _ADDED.finditer(self.since(mark)))

    def aborted(self, request_id: str, mark: int) -> bool:
        return any(m[1] == request_id for m in _ABORTED.finditer(self.since(mark)))


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())
