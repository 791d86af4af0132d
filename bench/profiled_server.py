"""The real server with per-stage timers wrapped around it, for attribution only.

``python -m bench.profiled_server`` wraps (from the outside, nothing in server/ is
changed) the pipeline's stages and pygls' read/dispatch/send steps with timers,
then runs ``zi-coder serve``. Each ``textDocument/inlineCompletion`` appends one
JSON line of milliseconds per stage to ``ZI_BENCH_PROFILE`` when its answer has
been written. Timers cost a few microseconds each, so the totals here run a
little above an unwrapped server's; use them for where time goes, not for targets.

Stages nest (``context_build`` contains ``budget_prefix`` and ``snippets``;
``postprocess`` contains ``parse_check``, which contains two ``ts_parse``).
"""

from __future__ import annotations

import contextvars
import functools
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

_record: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar(
    "bench_record", default=None
)
_by_msg: dict[Any, dict[str, float]] = {}
_io: dict[str, float] = {}  # perf_counter stamps of the latest read steps
_out = open(os.environ["ZI_BENCH_PROFILE"], "a", buffering=1, encoding="utf-8")  # noqa: SIM115


def _add(name: str, seconds: float) -> None:
    rec = _record.get()
    if rec is not None:
        rec[name] = rec.get(name, 0.0) + seconds * 1000


def _sync(owner: Any, attr: str, name: str) -> None:
    original = getattr(owner, attr)

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            _add(name, time.perf_counter() - started)

    setattr(owner, attr, timed)


def _async(owner: Any, attr: str, name: str) -> None:
    original = getattr(owner, attr)

    @functools.wraps(original)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await original(*args, **kwargs)
        finally:
            _add(name, time.perf_counter() - started)

    setattr(owner, attr, timed)


def _install_gc_timer() -> None:
    """Collector pauses inside a request, as stages `gc` (all) and `gc_full` (gen 2)."""
    import gc

    started: list[float] = []

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            seconds = time.perf_counter() - started.pop()
            _add("gc", seconds)
            if info.get("generation") == 2:
                _add("gc_full", seconds)

    gc.callbacks.append(callback)


def _install() -> None:
    _install_gc_timer()
    import pygls.io_ as pygls_io
    from pygls.protocol.json_rpc import JsonRPCProtocol

    from inference.fim import FimTemplate
    from server.cache import MemoryCache
    from server.completion import context, gate, model_call, postprocess, service
    from server.completion.backend import ModelBackend
    from server.completion.snippets import SnippetIndex
    from server.completion.typeahead import TypeAheadCache
    from server.history.writer import HistoryWriter
    from server.lsp.features import completion as lsp_completion
    from server.syntax import Syntax

    # -- pipeline stages --------------------------------------------------------
    _sync(lsp_completion, "_request", "lsp_to_domain")
    _sync(gate, "allows", "gate")
    _sync(TypeAheadCache, "lookup", "typeahead_lookup")
    _sync(TypeAheadCache, "remember", "typeahead_remember")
    _async(ModelBackend, "info", "backend_info")
    _sync(gate, "decide_mode", "decide_mode")
    _sync(context.ContextBuilder, "build", "context_build")
    _sync(context, "budget_prefix", "budget_prefix")
    _sync(context, "budget_suffix", "budget_suffix")
    _sync(SnippetIndex, "best", "snippets")
    _sync(FimTemplate, "render", "render")
    _sync(service, "_cache_key", "cache_key")
    _async(MemoryCache, "get", "cache_get")
    _async(MemoryCache, "set", "cache_set")
    _sync(gate, "parse_window", "parse_window")
    _sync(model_call, "header_indent", "header_indent")
    _sync(postprocess, "clean", "postprocess")
    _sync(postprocess, "adds_parse_errors", "parse_check")
    _sync(Syntax, "parse", "ts_parse")
    _sync(service.CompletionService, "_record", "record")
    _sync(HistoryWriter, "completion_generated", "history_put")

    original_stream = ModelBackend.stream

    async def stream(self: Any, request: Any, meta: Any = None) -> AsyncIterator[str]:
        started = time.perf_counter()
        rec = _record.get()
        if rec is not None:
            rec["_stream_started"] = started
        first = True
        try:
            async for piece in original_stream(self, request, meta):
                if first:
                    _add("model_first_piece", time.perf_counter() - started)
                    first = False
                yield piece
        finally:
            ended = time.perf_counter()
            _add("model_stream", ended - started)
            if rec is not None:
                rec["_stream_ended"] = ended

    ModelBackend.stream = stream  # type: ignore[method-assign]

    # -- the handler as pygls runs it -------------------------------------------
    handler = lsp_completion.inline_completion

    @functools.wraps(handler)
    async def inline_completion(ls: Any, params: Any) -> Any:
        rec: dict[str, float] = {}
        _record.set(rec)
        msg_id = ls.protocol.msg_id
        started = time.perf_counter()
        dispatched = _by_msg.get(msg_id, {}).get("_dispatched")
        if dispatched is not None:
            rec["task_start_wait"] = (started - dispatched) * 1000
        try:
            return await handler(ls, params)
        finally:
            done = time.perf_counter()
            rec["handler"] = (done - started) * 1000
            if "_stream_started" in rec and "_stream_ended" in rec:
                rec["handler_before_model"] = (rec.pop("_stream_started") - started) * 1000
                rec["handler_after_model"] = (done - rec.pop("_stream_ended")) * 1000
            rec["_handler_done"] = done
            _by_msg[msg_id] = {**_by_msg.get(msg_id, {}), **rec}

    lsp_completion.inline_completion = inline_completion

    class _Json:
        dumps = staticmethod(json.dumps)

        @staticmethod
        def loads(*args: Any, **kwargs: Any) -> Any:
            _io["loads_start"] = time.perf_counter()
            out = json.loads(*args, **kwargs)
            _io["loads_done"] = time.perf_counter()
            return out

    pygls_io.json = _Json  # type: ignore[attr-defined,assignment]

    handle_message = JsonRPCProtocol.handle_message

    def timed_handle_message(self: Any, message: Any) -> Any:
        if getattr(message, "method", None) == "textDocument/inlineCompletion":
            now = time.perf_counter()
            loads_start = _io.get("loads_start", now)
            _by_msg[message.id] = {
                "decode": (_io.get("loads_done", now) - loads_start) * 1000,
                "_dispatched": now,
            }
        return handle_message(self, message)

    JsonRPCProtocol.handle_message = timed_handle_message  # type: ignore[method-assign]

    send_result = JsonRPCProtocol._send_handler_result

    def timed_send_result(self: Any, future: Any, *, msg_id: Any) -> Any:
        rec = _by_msg.pop(msg_id, None)
        started = time.perf_counter()
        try:
            return send_result(self, future, msg_id=msg_id)
        finally:
            if rec is not None and "handler" in rec:
                rec["callback_wait"] = (started - rec.pop("_handler_done")) * 1000
                rec["encode_send"] = (time.perf_counter() - started) * 1000
                rec.pop("_dispatched", None)
                _out.write(json.dumps(rec) + "\n")

    JsonRPCProtocol._send_handler_result = timed_send_result  # type: ignore[method-assign]


def main() -> int:
    _install()
    from server.cli import main as cli_main

    return cli_main(["serve"])


if __name__ == "__main__":
    sys.exit(main())
