"""Asking a ContextSource for a heavy job's context, and naming what the job is about.

A source promises to answer within its own deadline and never to raise; ``gather``
does not rely on either, so a buggy source costs an action at most a short grace
beyond the deadline and never the action itself. ``symbol_at`` picks the
identifier a configured MCP tool may be asked about (its ``{symbol}`` argument),
``workspace_path`` the file's name (``{path}``, and the path the prompt shows), the
same for reviews and code actions; ``with_context`` adds the items to a job.

Secrets cross neither way: the diagnostic message a source is asked about is redacted
before a configured MCP server sees it, and the items it returns are redacted before a
prompt holds them (a docs server may well quote a config file).
"""

from __future__ import annotations

import ast
import asyncio
import logging
import re
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from server.context.types import ContextItem, ContextRequest, ContextSource

log = logging.getLogger(__name__)

GRACE_S = 1.0  # beyond the source's own deadline, before the caller stops waiting
# An identifier quoted in a diagnostic: `name`, 'name' or "name" (ruff, mypy, pyright, tsc).
_QUOTED = re.compile(r"""[`'"]([A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*)[`'"]""")


async def gather(
    source: ContextSource, request: ContextRequest, *, deadline_s: float
) -> list[ContextItem]:
    """The source's items for `request`, redacted; [] when it fails or overruns `deadline_s`."""
    from server.redact import redact

    request = replace(request, problem=redact(request.problem), symbol=redact(request.symbol))
    try:
        async with asyncio.timeout(deadline_s + GRACE_S):
            items = await source.context_for(request)
        return [replace(item, text=redact(item.text)) for item in items]
    except TimeoutError:
        log.warning(
            "context for %s: no answer within %.1f s, going on without", request.path, deadline_s
        )
    except Exception:
        log.exception("context for %s failed, going on without", request.path)
    return []


def symbol_at(language_id: str, text: str, line: int, problem: str = "") -> str:
    """The identifier a job about 0-based `line` is about: the name quoted in `problem`
    if any, else (Python) the innermost definition around the line, else ""."""
    quoted = _QUOTED.search(problem)
    if quoted is not None:
        return quoted.group(1)
    if language_id != "python":
        return ""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return ""
    best: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | None = None
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
        last = (node.end_lineno or node.lineno) - 1
        if first <= line <= last and (best is None or node.lineno >= best.lineno):
            best = node
    return best.name if best is not None else ""


def workspace_path(path: Path | None, uri: str, folders: Iterable[Path]) -> str:
    """How a job names its file: relative to the workspace folder holding it (as the
    editor shows it), else its bare name (nothing of the machine's layout), else the
    URI (not a local file)."""
    if path is None:
        return uri
    if path.is_absolute():  # relative: what it means would depend on the server's cwd
        try:
            resolved = path.resolve()
            for folder in folders:
                root = folder.resolve()
                if resolved.is_relative_to(root):  # by components: /ws2 is not in /ws
                    return resolved.relative_to(root).as_posix()
        except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL in the name
            pass
    return path.name


def with_context(
    kwargs: dict[str, Any], items: list[ContextItem], *, max_context_chars: int
) -> dict[str, Any]:
    """A job's `kwargs` with `items` and their cap; without items, `kwargs` as they are,
    so a worker from before MCP context still takes the job."""
    if not items:
        return kwargs
    options = {**kwargs["options"], "max_context_chars": max_context_chars}
    return {**kwargs, "options": options, "context": [item.as_job_arg() for item in items]}
