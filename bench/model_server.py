"""The scripted model as a benchmark subprocess, steered over its stdin/stdout.

``python -m bench.model_server`` starts ``tests.support.scripted_model.ScriptedModel``
on a free loopback port (in its own process, so it shares neither the benchmark's
GIL nor the server's), prints the base URL, then answers one JSON command per
stdin line with one JSON line on stdout:

- ``{"cmd": "fixed", "text": T, "delay_s": D}``: every completion answers T after D s
- ``{"cmd": "oracle", "source_file": PATH, "latency_s": D}``: a perfect model of PATH
- ``{"cmd": "counts"}``: completion/tokenize requests received, streams cancelled
- ``{"cmd": "requests", "since": N}``: bodies of completion requests N, N+1, ...
- ``{"cmd": "chat_fixed", "text": T, "delay_s": D}``: every chat completion answers T
- ``{"cmd": "chat_requests", "since": N}``: bodies of chat requests N, N+1, ... and
  how many there are in all (``count``)
- ``{"cmd": "max_model_len", "tokens": N}``: the context window (default 4096)

The standalone ``python -m tests.support.scripted_model`` cannot report what it
received, which the overhead measurement needs (the exact prompt the server sent).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.support.scripted_model import Reply, ScriptedModel, oracle_reply


def handle(model: ScriptedModel, command: dict[str, Any]) -> dict[str, Any]:
    cmd = command.get("cmd")
    if cmd == "fixed":
        model.reply_with(Reply(text=command["text"], delay_s=float(command["delay_s"])))
        return {"ok": True}
    if cmd == "chat_fixed":
        model.chat_reply_with(Reply(text=command["text"], delay_s=float(command["delay_s"])))
        return {"ok": True}
    if cmd == "max_model_len":
        model.max_model_len = int(command["tokens"])
        return {"ok": True}
    if cmd == "oracle":
        source = Path(command["source_file"]).read_text(encoding="utf-8")
        model.reply_with(oracle_reply(source, float(command["latency_s"])))
        return {"ok": True}
    with model._cond:  # the model's loop thread appends under this lock
        if cmd == "counts":
            return {
                "ok": True,
                "completions": len(model.requests),
                "tokenize": len(model.tokenize_requests),
                "cancelled": model.cancelled,
                "completed": model.completed,
                "errors": len(model.errors),
            }
        if cmd == "requests":
            return {"ok": True, "requests": model.requests[int(command.get("since", 0)) :]}
        if cmd == "chat_requests":
            bodies = model.chat_requests[int(command.get("since", 0)) :]
            return {"ok": True, "requests": bodies, "count": len(model.chat_requests)}
    return {"ok": False, "error": f"unknown command {cmd!r}"}


def main() -> int:
    model = ScriptedModel()
    model.start()
    out = sys.stdout
    out.write(model.url + "\n")
    out.flush()
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                reply = handle(model, json.loads(line))
            except Exception as exc:  # report, keep serving
                reply = {"ok": False, "error": repr(exc)}
            out.write(json.dumps(reply) + "\n")
            out.flush()
    finally:
        model.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
