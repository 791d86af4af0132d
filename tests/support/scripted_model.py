"""A scripted OpenAI-compatible model server that stands in for vLLM.

End-to-end tests and benchmarks use it where only the *content* of the model's
answers matters. It is a real HTTP/1.1 server on a real loopback socket, built on
asyncio streams from the standard library, and it copies the shapes of vLLM 0.x's
OpenAI server:

- ``GET /v1/models``, ``GET /health``, ``GET /version``
- ``POST /tokenize`` (at the root, not under /v1), with a deterministic fake tokenizer
  in which every special token of ``vocab`` is one token and the rest of the text is
  split about one token per 4 characters
- ``POST /v1/completions``, streaming (SSE, ``data: [DONE]``) or not; ``stop`` and
  ``max_tokens`` are applied like vLLM applies them, ``suffix`` is refused with 400,
  an unknown ``model`` gets 404, a prompt plus ``max_tokens`` longer than the context
  gets 400, and, as in vLLM, ``max_tokens`` defaults to 16 when the request has none.
- ``POST /v1/chat/completions``, streaming (``chat.completion.chunk`` events: a first
  ``delta.role`` chunk, ``delta.content`` chunks, the finish reason on the last one,
  a usage chunk with ``stream_options.include_usage``) or not; the same validation
  and shaping, the prompt being the messages rendered by :func:`chat_prompt`;
  ``max_tokens`` (or ``max_completion_tokens``) defaults to the rest of the window.

What the "model" answers is scripted with :class:`Reply` objects: ``reply_with()``
sets the default (a Reply, a string or a callable of the request body) and
``queue()`` adds one-shot replies that are used first, in order. Chat completions
have their own: ``chat_reply_with()`` and ``queue_chat()``, the default answer being
:data:`DEFAULT_CHAT_TEXT`; their requests are in ``chat_requests``.

Faults, for robustness tests: a Reply's ``status`` (with ``headers`` such as
``Retry-After``), ``delay_s``, ``hang``, ``broken_json`` and ``drop_after`` (break
the stream off after N chunks); ``fail(path, *replies)`` for one-shot faults of
any path (``/v1/models``, ``/tokenize``, ``/health``); ``outage = Reply(status=503)``
answers every request alike (a server loading or overloaded); ``stop()`` then
``start()`` restarts on the same port (connections refused in between). ``hits``
counts the requests received per path, faults included.

It runs in a background thread of the test process (``ScriptedModel().start()`` or
``with ScriptedModel() as model:``) or as a subprocess::

    python -m tests.support.scripted_model --port 0 [--script FILE]
        [--oracle-source FILE --latency 0.05] [--model-name NAME]

which prints its base URL (``http://127.0.0.1:PORT/v1``) on stdout once listening and
serves until SIGTERM/SIGINT. The script file is JSON: a list of replies (queued), or
an object with optional keys ``model_name``, ``vocab`` (list of special tokens),
``queue`` (list of replies), ``default`` (a reply), ``chat`` (list of chat replies,
queued), ``chat_default`` (a reply) and ``oracle`` (``{"source_file": PATH,
"latency_s": 0.05}``); a reply is a string (its text) or an object with the fields
of :class:`Reply`. Cancellations (the client closed the stream), completed and
dropped responses are counted for both endpoints alike.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
import sys
import threading
import time
import uuid
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from http import HTTPStatus
from pathlib import Path
from typing import Any, TypeGuard

__all__ = [
    "CODELLAMA_VOCAB",
    "DEEPSEEK_CODER_VOCAB",
    "DEFAULT_CHAT_TEXT",
    "QWEN_FIM_VOCAB",
    "STARCODER_FIM_VOCAB",
    "Reply",
    "ScriptedModel",
    "chat_prompt",
    "count_tokens",
    "oracle_reply",
    "tokenize",
]

QWEN_FIM_VOCAB: frozenset[str] = frozenset(
    {
        "<|fim_prefix|>",
        "<|fim_suffix|>",
        "<|fim_middle|>",
        "<|fim_pad|>",
        "<|repo_name|>",
        "<|file_sep|>",
        "<|endoftext|>",
    }
)
STARCODER_FIM_VOCAB: frozenset[str] = frozenset(
    {
        "<fim_prefix>",
        "<fim_suffix>",
        "<fim_middle>",
        "<fim_pad>",
        "<repo_name>",
        "<file_sep>",
        "<filename>",
        "<|endoftext|>",
    }
)
CODELLAMA_VOCAB: frozenset[str] = frozenset({"<PRE>", "<SUF>", "<MID>", "<EOT>", "<s>", "</s>"})
DEEPSEEK_CODER_VOCAB: frozenset[str] = frozenset(
    {
        "<\uff5cfim\u2581begin\uff5c>",
        "<\uff5cfim\u2581hole\uff5c>",
        "<\uff5cfim\u2581end\uff5c>",
        "<\uff5cbegin\u2581of\u2581sentence\uff5c>",
        "<\uff5cend\u2581of\u2581sentence\uff5c>",
    }
)

MAX_MODEL_LEN = 4096
MAX_STOP_SEQUENCES = 4
DEFAULT_MAX_TOKENS = 16  # vLLM's default for /v1/completions when max_tokens is absent
DEFAULT_CHAT_TEXT = "```python\npass\n```"  # the chat answer when none is scripted
SPECIAL_TOKEN_BASE_ID = 151_000
_PIECE_RE = re.compile(r"\w{1,4}|\s+|[^\w\s]")


# --------------------------------------------------------------------------- replies


@dataclass
class Reply:
    """One scripted answer of the model."""

    text: str = ""  # streamed back as completion text
    chunks: list[str] | None = None  # explicit chunking; default: ~3-char chunks of text
    delay_s: float = 0.0  # before the first chunk (time to first token)
    chunk_delay_s: float = 0.0  # between chunks
    status: int = 200  # e.g. 500 -> JSON error body like vLLM's; `text` is then the message
    broken_json: bool = False  # send a malformed `data:` line mid-stream
    hang: bool = False  # send headers then nothing until the client goes away
    headers: dict[str, str] = field(default_factory=dict)  # extra, e.g. {"Retry-After": "2"}
    # Streams: close the connection abruptly after this many text chunks, like a crash.
    drop_after: int | None = None
    finish_reason: str = "stop"  # when the text ends without hitting stop/max_tokens

    def pieces(self) -> list[str]:
        if self.chunks is not None:
            return [c for c in self.chunks if c]
        return [self.text[i : i + 3] for i in range(0, len(self.text), 3)]

    @classmethod
    def from_json(cls, data: Any) -> Reply:
        if isinstance(data, str):
            return cls(text=data)
        if not isinstance(data, dict):
            raise ValueError(f"a reply is a string or an object, not {data!r}")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown reply fields: {sorted(unknown)}")
        return cls(**data)


ReplyFn = Callable[[dict[str, Any]], "Reply | str"]


def _as_default(value: Reply | str | ReplyFn, method: str) -> Reply | ReplyFn:
    if isinstance(value, Reply | str):
        return _as_reply(value)
    if callable(value):
        return value
    raise TypeError(f"{method} takes a Reply, a str or a callable")


def _as_reply(value: Reply | str) -> Reply:
    if isinstance(value, Reply):
        return value
    if isinstance(value, str):
        return Reply(text=value)
    raise TypeError(f"expected a Reply or a str, got {type(value).__name__}")


# ------------------------------------------------------------------------ tokenizer


def _special_pattern(vocab: Iterable[str]) -> re.Pattern[str] | None:
    specials = sorted(set(vocab), key=lambda s: (-len(s), s))
    if not specials:
        return None
    return re.compile("|".join(re.escape(s) for s in specials))


def _token_spans(text: str, vocab: frozenset[str]) -> list[tuple[int, int, str]]:
    """(start, end, piece) of each token of `text`: specials whole, the rest by _PIECE_RE."""
    spans: list[tuple[int, int, str]] = []
    pattern = _special_pattern(vocab)
    pos = 0
    matches = list(pattern.finditer(text)) if pattern else []
    for m in [*matches, None]:
        end = m.start() if m else len(text)
        for p in _PIECE_RE.finditer(text, pos, end):
            spans.append((p.start(), p.end(), p.group()))
        if m:
            spans.append((m.start(), m.end(), m.group()))
            pos = m.end()
    return spans


def tokenize(text: str, vocab: Iterable[str] = QWEN_FIM_VOCAB) -> list[int]:
    """Deterministic fake token ids: specials get fixed ids above 151000, pieces a hash."""
    vocab = frozenset(vocab)
    special_ids = {s: SPECIAL_TOKEN_BASE_ID + i for i, s in enumerate(sorted(vocab))}
    ids = []
    for _start, _end, piece in _token_spans(text, vocab):
        if piece in special_ids:
            ids.append(special_ids[piece])
        else:
            ids.append(zlib.crc32(piece.encode()) % 150_000)
    return ids


def count_tokens(text: str, vocab: Iterable[str] = QWEN_FIM_VOCAB) -> int:
    """How many tokens the scripted model's /tokenize counts in `text`."""
    return len(_token_spans(text, frozenset(vocab)))


def chat_prompt(messages: list[dict[str, Any]]) -> str:
    """The prompt chat `messages` make (a ChatML-like template, ready for the answer).

    ``count_tokens(chat_prompt(messages))`` is a chat request's ``prompt_tokens``.
    """
    turns = [
        f"<|im_start|>{m['role']}\n{_content_text(m.get('content'))}<|im_end|>\n" for m in messages
    ]
    return "".join(turns) + "<|im_start|>assistant\n"


def _content_text(content: Any) -> str:
    """A message's text: a string, or the text parts of a list (OpenAI's content parts)."""
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def _valid_messages(messages: Any) -> TypeGuard[list[dict[str, Any]]]:
    return (
        isinstance(messages, list)
        and bool(messages)
        and all(
            isinstance(m, dict)
            and isinstance(m.get("role"), str)
            and (m.get("content") is None or isinstance(m.get("content"), str | list))
            for m in messages
        )
    )


# --------------------------------------------------------------------------- oracle


def oracle_reply(
    source_text: str,
    latency_s: float,
    *,
    prefix_token: str = "<|fim_prefix|>",
    suffix_token: str = "<|fim_suffix|>",
    middle_token: str = "<|fim_middle|>",
    max_tail: int = 300,
) -> Callable[[dict[str, Any]], Reply]:
    """A reply function playing a perfect model of the known file `source_text`.

    It takes the FIM prefix from the prompt (after the last `prefix_token`, up to the
    next suffix or middle token), finds where the longest tail of it (up to `max_tail`
    characters) occurs in `source_text` (first occurrence), and answers with the rest
    of that line; at a line end it answers the next line, newline included.
    """

    def reply(request: dict[str, Any]) -> Reply:
        prompt = request.get("prompt", "")
        if isinstance(prompt, list):
            prompt = prompt[0] if prompt and isinstance(prompt[0], str) else ""
        prefix = _fim_prefix(prompt, prefix_token, (suffix_token, middle_token))
        pos = _continuation_point(source_text, prefix, max_tail)
        return Reply(text=_rest_of_line(source_text, pos), delay_s=latency_s)

    return reply


def _fim_prefix(prompt: str, prefix_token: str, end_tokens: tuple[str, ...]) -> str:
    start = prompt.rfind(prefix_token)
    if start < 0:
        return prompt
    start += len(prefix_token)
    ends = [i for t in end_tokens if (i := prompt.find(t, start)) >= 0]
    return prompt[start : min(ends)] if ends else prompt[start:]


def _continuation_point(source: str, prefix: str, max_tail: int) -> int:
    """End in `source` of the first occurrence of the longest tail of `prefix` found there."""
    # Every shorter tail of a tail that occurs also occurs: binary search on the length.
    lo, hi = 0, min(max_tail, len(prefix))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if prefix[len(prefix) - mid :] in source:
            lo = mid
        else:
            hi = mid - 1
    if lo == 0:
        return 0
    tail = prefix[len(prefix) - lo :]
    return source.find(tail) + lo


def _rest_of_line(source: str, pos: int) -> str:
    if pos >= len(source):
        return ""
    # At a line end, the answer is the next line, its newline included.
    end = source.find("\n", pos + 1 if source[pos] == "\n" else pos)
    return source[pos:] if end < 0 else source[pos:end]


# -------------------------------------------------------------------- HTTP plumbing


class _Disconnected(Exception):
    """The client went away."""


class _Dropped(_Disconnected):
    """The server broke the connection on purpose (Reply.drop_after)."""


class _Conn:
    """One client connection: a read buffer shared by the parser and the EOF watcher."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buf = bytearray()
        self.eof = False
        self.gone = asyncio.Event()
        self.on_last_write: Callable[[], None] | None = None
        self.last_write_started = False

    async def _fill(self) -> None:
        try:
            data = await self.reader.read(65536)
        except (ConnectionError, OSError):
            data = b""
        if not data:
            self.eof = True
            self.gone.set()
            raise _Disconnected
        self.buf += data

    async def read_request(self) -> tuple[str, str, dict[str, str], bytes] | None:
        """Next request, or None when the client closed the connection between requests."""
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > 1 << 20:
                raise ValueError("request head too large")
            try:
                await self._fill()
            except _Disconnected:
                return None
        head_end = self.buf.index(b"\r\n\r\n")
        head = bytes(self.buf[:head_end]).decode("latin-1")
        del self.buf[: head_end + 4]
        request_line, *header_lines = head.split("\r\n")
        method, target, _version = request_line.split(" ", 2)
        headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._read_chunked()
        else:
            length = int(headers.get("content-length", "0") or 0)
            while len(self.buf) < length:
                await self._fill()
            body = bytes(self.buf[:length])
            del self.buf[:length]
        return method.upper(), target, headers, body

    async def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            while b"\r\n" not in self.buf:
                await self._fill()
            line_end = self.buf.index(b"\r\n")
            size = int(bytes(self.buf[:line_end]).split(b";")[0], 16)
            del self.buf[: line_end + 2]
            if size == 0:
                while b"\r\n" not in self.buf:
                    await self._fill()
                # skip trailers up to the empty line
                while not self.buf.startswith(b"\r\n"):
                    while b"\r\n" not in self.buf:
                        await self._fill()
                    del self.buf[: self.buf.index(b"\r\n") + 2]
                    while b"\r\n" not in self.buf:
                        await self._fill()
                del self.buf[:2]
                return bytes(body)
            while len(self.buf) < size + 2:
                await self._fill()
            body += self.buf[:size]
            del self.buf[: size + 2]

    async def watch_eof(self) -> None:
        """Runs while a response is produced: notices the client going away."""
        with contextlib.suppress(_Disconnected):
            while True:
                await self._fill()

    async def write(self, data: bytes, *, last: bool = False) -> None:
        if self.gone.is_set():
            raise _Disconnected
        if last and self.on_last_write is not None:
            self.last_write_started = True
            self.on_last_write()
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            self.gone.set()
            raise _Disconnected from exc

    def drop(self) -> None:
        """Close the connection at once, mid-response, as a crashing server would."""
        self.gone.set()
        self.writer.transport.abort()
        raise _Dropped

    async def pause(self, seconds: float) -> None:
        """Sleep, but wake up (raising) as soon as the client goes away."""
        if self.gone.is_set():
            raise _Disconnected
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.gone.wait(), seconds)
        if self.gone.is_set():
            raise _Disconnected


def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
    phrase = _phrase(status) or "Status"
    lines = [
        f"HTTP/1.1 {status} {phrase}",
        "server: scripted-model",
        *(f"{k}: {v}" for k, v in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _phrase(status: int) -> str | None:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return None


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


_ERROR_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    404: "NotFoundError",
    429: "RateLimitError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}


def _error_body(status: int, message: str) -> dict[str, Any]:
    if status in _ERROR_TYPES:
        err_type = _ERROR_TYPES[status]
    elif phrase := _phrase(status):
        err_type = re.sub(r"[^A-Za-z]", "", phrase) + "Error"
    else:
        err_type = "Error"
    return {"object": "error", "message": message, "type": err_type, "param": None, "code": status}


# ------------------------------------------------------------------------ the model


class ScriptedModel:
    """A vLLM look-alike HTTP server whose answers are scripted with Reply objects."""

    def __init__(
        self,
        model_name: str = "scripted-coder",
        vocab: set[str] | frozenset[str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_model_len: int = MAX_MODEL_LEN,
    ) -> None:
        self.model_name = model_name
        self.vocab: frozenset[str] = frozenset(QWEN_FIM_VOCAB if vocab is None else vocab)
        self.host = host
        self.port = port
        self.max_model_len = max_model_len
        self.url = ""
        # Status of GET /health; set to 503 to play an engine that is still loading.
        self.health_status = 200
        self.requests: list[dict[str, Any]] = []
        self.chat_requests: list[dict[str, Any]] = []
        self.tokenize_requests: list[dict[str, Any]] = []
        self.cancelled = 0
        self.dropped = 0  # streams broken off on purpose (Reply.drop_after)
        # Requests received per path, every route and outcome included.
        self.hits: Counter[str] = Counter()
        # Fault knobs: one-shot replies for a path (`fail`), and an outage that answers
        # every request (`outage = Reply(status=503)`: a server loading or overloaded).
        self.outage: Reply | None = None
        self._faults: dict[str, deque[Reply]] = {}
        self.completed = 0  # completion responses sent in full
        # Exceptions raised by reply functions (answered as HTTP 500 meanwhile).
        self.errors: list[BaseException] = []
        self._default: Reply | ReplyFn = Reply()
        self._queue: deque[Reply] = deque()
        self._chat_default: Reply | ReplyFn = Reply(text=DEFAULT_CHAT_TEXT)
        self._chat_queue: deque[Reply] = deque()
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._created = int(time.time())

    # ---------------------------------------------------------------- scripting

    def reply_with(self, fn_or_reply: Reply | str | ReplyFn) -> None:
        """The answer to every request: a Reply, a text, or callable(request_json) -> Reply."""
        default = _as_default(fn_or_reply, "reply_with")
        with self._cond:
            self._default = default

    def queue(self, *replies: Reply | str) -> None:
        """One-shot replies, consumed in order by the next requests before the default."""
        with self._cond:
            self._queue.extend(_as_reply(r) for r in replies)

    def chat_reply_with(self, fn_or_reply: Reply | str | ReplyFn) -> None:
        """reply_with() for /v1/chat/completions; a callable gets the body (`messages`...)."""
        default = _as_default(fn_or_reply, "chat_reply_with")
        with self._cond:
            self._chat_default = default

    def queue_chat(self, *replies: Reply | str) -> None:
        """queue() for /v1/chat/completions."""
        with self._cond:
            self._chat_queue.extend(_as_reply(r) for r in replies)

    def fail(self, path: str, *replies: Reply | str) -> None:
        """One-shot replies for `path` (e.g. "/v1/models", "/tokenize", "/health"), used
        before the normal answer: an error status (with `headers`, after `delay_s`), a
        `hang`, or a status 200 with `delay_s` to play a slow server."""
        with self._cond:
            self._faults.setdefault(path, deque()).extend(_as_reply(r) for r in replies)

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> None:
        """Block until `n` /v1/completions requests have been received."""
        self._wait(lambda: len(self.requests) >= n, timeout, f"{n} completion requests")

    def wait_for_chat_requests(self, n: int, timeout: float = 5.0) -> None:
        """Block until `n` /v1/chat/completions requests have been received."""
        self._wait(lambda: len(self.chat_requests) >= n, timeout, f"{n} chat requests")

    def wait_for_cancelled(self, n: int, timeout: float = 5.0) -> None:
        """Block until `n` responses have been abandoned by their client."""
        self._wait(lambda: self.cancelled >= n, timeout, f"{n} cancelled streams")

    def _wait(self, pred: Callable[[], bool], timeout: float, what: str) -> None:
        with self._cond:
            if not self._cond.wait_for(pred, timeout):
                raise TimeoutError(
                    f"timed out after {timeout}s waiting for {what}: have "
                    f"{len(self.requests)} requests, {self.cancelled} cancelled"
                )

    def _next_reply(self, body: dict[str, Any], *, chat: bool = False) -> Reply:
        with self._cond:
            queue = self._chat_queue if chat else self._queue
            if queue:
                return queue.popleft()
            default = self._chat_default if chat else self._default
        if isinstance(default, Reply):
            return default
        try:
            return _as_reply(default(body))
        except Exception as exc:
            with self._cond:
                self.errors.append(exc)
            return Reply(status=500, text=f"reply function failed: {exc!r}")

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(
                        self._handle, self.host, self.port, backlog=1024, limit=1 << 20
                    )
                )
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            self.port = self._server.sockets[0].getsockname()[1]
            self.url = f"http://{self.host}:{self.port}/v1"
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._shutdown())
                loop.close()

        self._thread = threading.Thread(target=run, name="scripted-model", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]

    def stop(self) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._thread = None
        self._loop = None

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    def __enter__(self) -> ScriptedModel:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def server_root(self) -> str:
        """The URL without /v1, where vLLM serves /tokenize and /health."""
        return self.url.removesuffix("/v1")

    # ---------------------------------------------------------------- HTTP

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = _Conn(reader, writer)
        try:
            while True:
                try:
                    request = await conn.read_request()
                except (ValueError, UnicodeDecodeError):
                    await conn.write(_head(400, [("content-length", "0"), ("connection", "close")]))
                    return
                if request is None:
                    return
                method, target, headers, body = request
                watcher = asyncio.create_task(conn.watch_eof())
                try:
                    keep_open = await self._route(conn, method, target, body)
                finally:
                    watcher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watcher
                if not keep_open or headers.get("connection", "").lower() == "close":
                    return
                if conn.eof:
                    return
        except (_Disconnected, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _send_json(
        self, conn: _Conn, status: int, obj: Any, headers: dict[str, str] | None = None
    ) -> bool:
        payload = _json_bytes(obj)
        head = _head(
            status,
            [
                ("content-type", "application/json"),
                ("content-length", str(len(payload))),
                *(headers or {}).items(),
            ],
        )
        await conn.write(head + payload, last=True)
        return True

    async def _fault(self, conn: _Conn, path: str) -> bool:
        """Play the outage or a queued fault for `path`; True when it answered."""
        with self._cond:
            self.hits[path] += 1
            self._cond.notify_all()
            queued = self._faults.get(path)
            reply = queued.popleft() if queued else self.outage
        if reply is None:
            return False
        if reply.hang:
            await conn.gone.wait()
            raise _Disconnected
        if reply.status == 200:
            await conn.pause(reply.delay_s)
            return False
        await self._error_reply(conn, reply)
        return True

    async def _route(self, conn: _Conn, method: str, target: str, body: bytes) -> bool:
        path = target.split("?", 1)[0].rstrip("/") or "/"
        routes: dict[str, tuple[str, Any]] = {
            "/v1/models": ("GET", self._models),
            "/health": ("GET", self._health),
            "/version": ("GET", self._version),
            "/tokenize": ("POST", self._tokenize),
            "/v1/completions": ("POST", self._completions),
            "/v1/chat/completions": ("POST", self._chat_completions),
        }
        if await self._fault(conn, path):
            return True
        if path not in routes:
            return await self._send_json(conn, 404, {"detail": "Not Found"})
        want, handler = routes[path]
        if method != want:
            return await self._send_json(conn, 405, {"detail": "Method Not Allowed"})
        if want == "GET":
            return bool(await handler(conn))
        try:
            data = json.loads(body or b"null")
        except ValueError as exc:
            return await self._send_json(conn, 400, _error_body(400, f"invalid JSON: {exc}"))
        if not isinstance(data, dict):
            return await self._send_json(conn, 400, _error_body(400, "body must be an object"))
        return bool(await handler(conn, data))

    async def _models(self, conn: _Conn) -> bool:
        card = {
            "id": self.model_name,
            "object": "model",
            "created": self._created,
            "owned_by": "vllm",
            "root": self.model_name,
            "parent": None,
            "max_model_len": self.max_model_len,
            "permission": [],
        }
        return await self._send_json(conn, 200, {"object": "list", "data": [card]})

    async def _health(self, conn: _Conn) -> bool:
        await conn.write(_head(self.health_status, [("content-length", "0")]))
        return True

    async def _version(self, conn: _Conn) -> bool:
        return await self._send_json(conn, 200, {"version": "0.0.0+scripted"})

    def _check_model(self, data: dict[str, Any]) -> dict[str, Any] | None:
        model = data.get("model")
        if model is not None and model != self.model_name:
            err = _error_body(404, f"The model `{model}` does not exist.")
            err["param"] = "model"
            return err
        return None

    async def _tokenize(self, conn: _Conn, data: dict[str, Any]) -> bool:
        with self._cond:
            self.tokenize_requests.append(data)
            self._cond.notify_all()
        if err := self._check_model(data):
            return await self._send_json(conn, 404, err)
        prompt = data.get("prompt")
        if not isinstance(prompt, str):
            return await self._send_json(conn, 400, _error_body(400, "prompt must be a string"))
        tokens = tokenize(prompt, self.vocab)
        return await self._send_json(
            conn,
            200,
            {"count": len(tokens), "max_model_len": self.max_model_len, "tokens": tokens},
        )

    def _prompt_tokens(self, prompt: Any) -> int | None:
        if isinstance(prompt, str):
            return count_tokens(prompt, self.vocab)
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            return count_tokens(prompt[0], self.vocab)
        if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
            return len(prompt)
        return None

    def _request_prompt_tokens(self, data: dict[str, Any], *, chat: bool) -> int | None:
        """Tokens of the request's prompt (a chat's rendered messages); None if invalid."""
        if not chat:
            return self._prompt_tokens(data.get("prompt"))
        messages = data.get("messages")
        if not _valid_messages(messages):
            return None
        return count_tokens(chat_prompt(messages), self.vocab)

    @staticmethod
    def _max_tokens(data: dict[str, Any], *, chat: bool) -> Any:
        """The requested max_tokens; None: up to the context window (vLLM's chat default)."""
        if not chat:
            return data.get("max_tokens", DEFAULT_MAX_TOKENS)
        value = data.get("max_completion_tokens")
        return data.get("max_tokens") if value is None else value

    def _validate(
        self, data: dict[str, Any], *, chat: bool = False
    ) -> tuple[int, dict[str, Any]] | None:
        if not chat and data.get("suffix") is not None:
            return 400, _error_body(400, "suffix is not currently supported")
        if err := self._check_model(data):
            return 404, err
        prompt_tokens = self._request_prompt_tokens(data, chat=chat)
        if prompt_tokens is None:
            if chat:
                return 400, _error_body(
                    400, "messages must be a non-empty list of {role, content} objects"
                )
            return 400, _error_body(400, "prompt must be a string or a list of token ids")
        max_tokens = self._max_tokens(data, chat=chat)
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 0):
            return 400, _error_body(400, "max_tokens must be a non-negative integer")
        stop = data.get("stop")
        if stop is not None and not isinstance(stop, str | list):
            return 400, _error_body(400, "stop must be a string or a list of strings")
        if isinstance(stop, list) and len(stop) > MAX_STOP_SEQUENCES:
            # vLLM (like the OpenAI API) validates `stop` as at most 4 strings.
            return 400, _error_body(
                400,
                f"stop: List should have at most {MAX_STOP_SEQUENCES} items after "
                f"validation, not {len(stop)}",
            )
        limit = self.max_model_len
        if max_tokens is None and prompt_tokens >= limit:
            msg = (
                f"This model's maximum context length is {limit} tokens. However, you "
                f"requested {prompt_tokens} tokens in the messages, "
                "Please reduce the length of the messages."
            )
            return 400, _error_body(400, msg)
        if max_tokens is not None and prompt_tokens + max_tokens > limit:
            msg = (
                f"This model's maximum context length is {limit} tokens. However, you "
                f"requested {prompt_tokens + max_tokens} tokens ({prompt_tokens} in the "
                f"messages, {max_tokens} in the completion). Please reduce the length of "
                "the messages or completion."
            )
            return 400, _error_body(400, msg)
        return None

    def _shape(
        self, data: dict[str, Any], reply: Reply, *, chat: bool
    ) -> tuple[int, str, str | None]:
        """(length of text sent, finish_reason, stop_reason) after stop and max_tokens."""
        text = "".join(reply.pieces())
        prompt_tokens = self._request_prompt_tokens(data, chat=chat) or 0
        max_tokens = self._max_tokens(data, chat=chat)
        if max_tokens is None:
            max_tokens = self.max_model_len - prompt_tokens
        spans = _token_spans(text, self.vocab)
        length_cut = spans[max_tokens - 1][1] if len(spans) > max_tokens > 0 else None
        if max_tokens == 0:
            length_cut = 0
        stops = data.get("stop") or []
        if isinstance(stops, str):
            stops = [stops]
        best: tuple[int, str] | None = None
        for s in stops:
            if not s:
                continue
            i = text.find(s)
            if i >= 0 and (best is None or i < best[0]):
                best = (i, s)
        # vLLM checks stop strings as tokens arrive: a stop completed within the allowed
        # tokens wins over the length limit.
        if best is not None and (length_cut is None or best[0] + len(best[1]) <= length_cut):
            end = best[0] + (len(best[1]) if data.get("include_stop_str_in_output") else 0)
            return end, "stop", best[1]
        if length_cut is not None:
            return length_cut, "length", None
        return len(text), reply.finish_reason, None

    async def _completions(self, conn: _Conn, data: dict[str, Any]) -> bool:
        return await self._generate(conn, data, chat=False)

    async def _chat_completions(self, conn: _Conn, data: dict[str, Any]) -> bool:
        return await self._generate(conn, data, chat=True)

    async def _generate(self, conn: _Conn, data: dict[str, Any], *, chat: bool) -> bool:
        """POST /v1/completions or /v1/chat/completions: the same faults, counts, shaping."""
        with self._cond:
            (self.chat_requests if chat else self.requests).append(data)
            self._cond.notify_all()
        if invalid := self._validate(data, chat=chat):
            return await self._send_json(conn, *invalid)
        reply = self._next_reply(data, chat=chat)
        # `completed` is counted just before the last bytes go out, so that a client that
        # has read a whole response always finds it counted; undone if that write fails.
        conn.on_last_write = self._count_completed
        conn.last_write_started = False
        try:
            if data.get("stream"):
                await self._stream(conn, data, reply, chat=chat)
            else:
                await self._complete(conn, data, reply, chat=chat)
        except _Dropped:
            with self._cond:
                self.dropped += 1
                self._cond.notify_all()
            return False
        except _Disconnected:
            with self._cond:
                if conn.last_write_started:  # counted, but the last write failed
                    self.completed -= 1
                self.cancelled += 1
                self._cond.notify_all()
            return False
        finally:
            conn.on_last_write = None
        return True

    def _count_completed(self) -> None:
        with self._cond:
            self.completed += 1
            self._cond.notify_all()

    def _base(self, cid: str, obj: str = "text_completion") -> dict[str, Any]:
        return {"id": cid, "object": obj, "created": int(time.time()), "model": self.model_name}

    def _usage(self, data: dict[str, Any], text: str, *, chat: bool) -> dict[str, Any]:
        p = self._request_prompt_tokens(data, chat=chat) or 0
        c = count_tokens(text, self.vocab)
        return {"prompt_tokens": p, "total_tokens": p + c, "completion_tokens": c}

    async def _error_reply(self, conn: _Conn, reply: Reply) -> None:
        await conn.pause(reply.delay_s)
        status = reply.status
        message = reply.text or _phrase(status) or "error"
        await self._send_json(conn, status, _error_body(status, message), reply.headers)

    async def _complete(
        self, conn: _Conn, data: dict[str, Any], reply: Reply, *, chat: bool
    ) -> None:
        if reply.status != 200:
            await self._error_reply(conn, reply)
            return
        if reply.hang:
            await conn.gone.wait()
            raise _Disconnected
        await conn.pause(reply.delay_s)
        pieces = reply.pieces()
        if len(pieces) > 1:
            await conn.pause(reply.chunk_delay_s * (len(pieces) - 1))
        cut, finish, stop_reason = self._shape(data, reply, chat=chat)
        text = "".join(pieces)[:cut]
        obj = "chat.completion" if chat else "text_completion"
        if reply.broken_json:
            payload = b'{"id":"cmpl-broken","object":"text_completion","choices":[{"text":'
            if chat:
                payload = b'{"id":"chatcmpl-broken","object":"chat.completion","choices":[{"'
            head = _head(
                200,
                [("content-type", "application/json"), ("content-length", str(len(payload)))],
            )
            await conn.write(head + payload, last=True)
            return
        body = self._base(f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}", obj)
        choice: dict[str, Any] = {"index": 0}
        if chat:
            choice["message"] = {"role": "assistant", "content": text, "tool_calls": []}
        else:
            choice["text"] = text
        choice.update(logprobs=None, finish_reason=finish, stop_reason=stop_reason)
        if not chat:
            choice["prompt_logprobs"] = None
        body["choices"] = [choice]
        body["usage"] = self._usage(data, text, chat=chat)
        await self._send_json(conn, 200, body)

    async def _stream(self, conn: _Conn, data: dict[str, Any], reply: Reply, *, chat: bool) -> None:
        if reply.status != 200:
            await self._error_reply(conn, reply)
            return
        await conn.write(
            _head(
                200,
                [
                    ("content-type", "text/event-stream; charset=utf-8"),
                    ("transfer-encoding", "chunked"),
                ],
            )
        )

        async def event(payload: bytes) -> None:
            frame = b"data: " + payload + b"\n\n"
            await conn.write(b"%x\r\n%s\r\n" % (len(frame), frame))

        if reply.hang:
            await conn.gone.wait()
            raise _Disconnected
        cid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        obj = "chat.completion.chunk" if chat else "text_completion"
        cut, finish, stop_reason = self._shape(data, reply, chat=chat)
        # Re-chunk the reply's pieces so that exactly `cut` characters go out.
        out: list[str] = []
        sent = 0
        for piece in reply.pieces():
            if sent >= cut:
                break
            piece = piece[: cut - sent]
            out.append(piece)
            sent += len(piece)
        broken_at = len(out) // 2 if reply.broken_json else -1
        include_usage = bool((data.get("stream_options") or {}).get("include_usage"))

        def chunk(
            delta: str | dict[str, str], finish_reason: str | None, stop: str | None
        ) -> bytes:
            body = self._base(cid, obj)
            choice: dict[str, Any] = {"index": 0}
            if chat:
                choice["delta"] = {"content": delta} if isinstance(delta, str) else delta
            else:
                choice["text"] = delta
            choice.update(logprobs=None, finish_reason=finish_reason, stop_reason=stop)
            body["choices"] = [choice]
            if include_usage:
                body["usage"] = None
            return _json_bytes(body)

        broken = b'{"id":"%s","object":"%s","choi' % (cid.encode(), obj.encode())
        await conn.pause(reply.delay_s)
        if chat:  # vLLM's first chat chunk names the role
            await event(chunk({"role": "assistant", "content": ""}, None, None))
        for i, piece in enumerate(out):
            if i == broken_at:
                await event(broken)
            if i > 0:
                await conn.pause(reply.chunk_delay_s)
            if reply.drop_after is not None and i >= reply.drop_after:
                conn.drop()
            # vLLM's chat chunks carry the finish reason with the last text.
            last = chat and i == len(out) - 1
            await event(chunk(piece, finish if last else None, stop_reason if last else None))
        if broken_at >= 0 and not out:
            await event(broken)
        if not (chat and out):
            await event(chunk("", finish, stop_reason))
        if include_usage:
            final = self._base(cid, obj)
            final["choices"] = []
            final["usage"] = self._usage(data, "".join(out), chat=chat)
            await event(_json_bytes(final))
        done = b"data: [DONE]\n\n"
        await conn.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done), last=True)


# ----------------------------------------------------------------------- standalone


@dataclass
class _Script:
    """What a script file says the model answers."""

    queued: list[Reply] = field(default_factory=list)
    default: Reply | ReplyFn | None = None
    chat_queued: list[Reply] = field(default_factory=list)
    chat_default: Reply | None = None

    def apply(self, model: ScriptedModel) -> None:
        if self.default is not None:
            model.reply_with(self.default)
        model.queue(*self.queued)
        if self.chat_default is not None:
            model.chat_reply_with(self.chat_default)
        model.queue_chat(*self.chat_queued)


def _load_script(model_args: dict[str, Any], path: Path) -> _Script:
    script = json.loads(path.read_text())
    if isinstance(script, list):
        return _Script(queued=[Reply.from_json(r) for r in script])
    if not isinstance(script, dict):
        raise ValueError("a script is a JSON list of replies or an object")
    if "model_name" in script:
        model_args["model_name"] = script["model_name"]
    if "vocab" in script:
        model_args["vocab"] = set(script["vocab"])
    loaded = _Script(
        queued=[Reply.from_json(r) for r in script.get("queue", [])],
        chat_queued=[Reply.from_json(r) for r in script.get("chat", [])],
    )
    if "default" in script:
        loaded.default = Reply.from_json(script["default"])
    if "chat_default" in script:
        loaded.chat_default = Reply.from_json(script["chat_default"])
    if "oracle" in script:
        oracle = script["oracle"]
        source = (path.parent / oracle["source_file"]).read_text()
        loaded.default = oracle_reply(source, float(oracle.get("latency_s", 0.0)))
    return loaded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--model-name", default=None)
    parser.add_argument("--script", type=Path, help="JSON script of replies")
    parser.add_argument("--oracle-source", type=Path, help="answer as a perfect model of FILE")
    parser.add_argument("--latency", type=float, default=0.0, help="oracle time to first token")
    args = parser.parse_args(argv)

    model_args: dict[str, Any] = {}
    script = _Script()
    if args.script:
        script = _load_script(model_args, args.script)
    if args.model_name:
        model_args["model_name"] = args.model_name
    if args.oracle_source:
        script.default = oracle_reply(args.oracle_source.read_text(), args.latency)

    model = ScriptedModel(**model_args, host=args.host, port=args.port)
    script.apply(model)

    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    model.start()
    print(model.url, flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        model.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
