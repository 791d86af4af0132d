"""Python linters for the static diagnostics: ruff when installed, else pyflakes.

ruff runs as a subprocess on the document's text (stdin), from the file's
directory so the user's own ruff configuration applies; it is fast, and it is
what most projects already run. pyflakes is a dependency and runs in process, so
the server always has *some* checker; it is also the fallback when ruff fails.

Both report lines and columns their own way (ruff: 1-based rows and characters;
pyflakes: 1-based lines and 0-based *utf-8 byte* columns, from ``ast``); the
helpers here turn them into code-point columns on lines as LSP numbers them.
Text with lone surrogates (undecodable bytes) is checked with each one replaced
by ``?``: one code point for one, so every column still lines up.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import subprocess
from typing import Any

from server.diagnostics.types import Diagnostic, Severity

log = logging.getLogger(__name__)

LINTERS = ("auto", "ruff", "pyflakes", "off")
RUFF_TIMEOUT_S = 10.0

_UNDEFINED = {"F821", "F822", "F823", "UndefinedName", "UndefinedExport", "UndefinedLocal"}
_UNNECESSARY = {"F401", "F841", "F842", "UnusedImport", "UnusedVariable", "UnusedAnnotation"}
# ruff >= 0.12 reports syntax errors as "invalid-syntax", older ones with no code or E999.
_SYNTAX_CODES = {None, "invalid-syntax", "E999", "SyntaxError"}
_CONTINUATION = bytes(range(0x80, 0xC0))
_ENDING = re.compile(r"\r\n|\r|\n")
_NAME = re.compile(r"[\w.]+(?: as \w+)?")


class _RuffFailed(Exception):
    pass


def line_texts(text: str) -> list[str]:
    """The document's lines without their endings, as LSP numbers them.

    A text ending in a line break (or empty) has a last, empty line: a client can
    put the cursor there, and tools report end-of-file positions on it. (Not
    ``str.splitlines``: it also splits at form feeds, U+2028 and others.)
    """
    return _ENDING.split(text)


def char_col(line: str, byte_col: int) -> int:
    """The code-point column of utf-8 byte offset `byte_col` in `line` (clamped)."""
    if line.isascii():
        return max(0, min(byte_col, len(line)))
    prefix = line.encode("utf-8", "surrogatepass")[: max(byte_col, 0)]
    return len(prefix.translate(None, _CONTINUATION))  # count the bytes that start a character


def widen(line: str, col: int) -> tuple[int, int]:
    """A range at least one character wide at `col`, where the line has one."""
    col = max(0, min(col, len(line)))
    if col < len(line):
        return col, col + 1
    return (col - 1, col) if col > 0 else (col, col)


def is_syntax_error(diagnostic: Diagnostic) -> bool:
    """Whether a linter's diagnostic is its parser's syntax error."""
    return diagnostic.source in ("ruff", "pyflakes") and diagnostic.code in _SYNTAX_CODES


def lint_python(
    text: str,
    *,
    path: str | None,
    linter: str = "auto",
    cwd: str | None = None,
    ruff: str | None = None,
) -> list[Diagnostic]:
    """The linter's diagnostics for `text`; `ruff` overrides the discovered binary."""
    if linter == "off":
        return []
    if linter not in LINTERS:
        log.warning("unknown python linter %r; using auto", linter)
    clean, data = _sanitized(text)
    lines = line_texts(clean)
    binary = None if linter == "pyflakes" else ruff or find_ruff()
    if binary is None and linter == "ruff":
        log.warning("ruff is not installed; using pyflakes")
    elif binary is not None:
        try:
            return _run_ruff(binary, data, lines, path=path, cwd=cwd)
        except _RuffFailed as exc:
            log.warning("ruff failed (%s); using pyflakes", exc)
    return _run_pyflakes(clean, lines, path=path)


@functools.cache
def find_ruff() -> str | None:
    """The ruff binary: the `ruff` package's, else one on PATH (looked up once)."""
    try:
        from ruff import find_ruff_bin  # type: ignore[import-untyped]

        return str(find_ruff_bin())
    except (ImportError, FileNotFoundError):
        return shutil.which("ruff")


def _sanitized(text: str) -> tuple[str, bytes]:
    try:
        return text, text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: the utf-8 encoder's "replace" writes "?"
        data = text.encode("utf-8", "replace")
        return data.decode("utf-8"), data


def _clamped(lines: list[str], line: int, col: int) -> tuple[int, int]:
    if line >= len(lines):
        return len(lines) - 1, len(lines[-1])
    line = max(line, 0)
    return line, max(0, min(col, len(lines[line])))


def _run_ruff(
    binary: str, data: bytes, lines: list[str], *, path: str | None, cwd: str | None
) -> list[Diagnostic]:
    path = os.path.abspath(path) if path else None  # ruff finds its config from it
    if cwd is None and path and os.path.isdir(os.path.dirname(path)):
        cwd = os.path.dirname(path)
    command = [binary, "check", "--output-format=json", "--no-cache", "--exit-zero"]
    command += ["--stdin-filename", path or "untitled.py", "-"]
    try:
        done = subprocess.run(
            command, input=data, capture_output=True, timeout=RUFF_TIMEOUT_S, cwd=cwd, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise _RuffFailed(f"no answer in {RUFF_TIMEOUT_S:g} s") from exc
    except (OSError, subprocess.SubprocessError) as exc:
        raise _RuffFailed(str(exc) or type(exc).__name__) from exc
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
        raise _RuffFailed(f"exit status {done.returncode}: {' '.join(tail)}")
    try:
        return [_from_ruff(item, lines) for item in json.loads(done.stdout)]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise _RuffFailed(f"unexpected output: {exc!r}") from exc


def _from_ruff(item: dict[str, Any], lines: list[str]) -> Diagnostic:
    code = item["code"]
    start, end = item["location"], item["end_location"]
    start_line, start_col = _clamped(lines, int(start["row"]) - 1, int(start["column"]) - 1)
    end_line, end_col = _clamped(lines, int(end["row"]) - 1, int(end["column"]) - 1)
    if (end_line, end_col) < (start_line, start_col):
        end_line, end_col = start_line, start_col
    error = code in _UNDEFINED or code in _SYNTAX_CODES
    return Diagnostic(
        start_line,
        start_col,
        end_line,
        end_col,
        Severity.ERROR if error else Severity.WARNING,
        str(item["message"]),
        "ruff",
        code=None if code is None else str(code),
        unnecessary=code in _UNNECESSARY,
    )


class _Reporter:
    """pyflakes' reporter interface, collecting instead of printing."""

    def __init__(self) -> None:
        self.flakes: list[Any] = []
        self.syntax: tuple[str, int | None, int | None] | None = None

    def flake(self, message: Any) -> None:
        self.flakes.append(message)

    def syntaxError(
        self, _filename: str, msg: str, lineno: int | None, offset: int | None, _text: Any
    ) -> None:
        self.syntax = (msg, lineno, offset)

    def unexpectedError(self, filename: str, msg: str) -> None:
        log.debug("pyflakes could not check %s: %s", filename, msg)


def _run_pyflakes(text: str, lines: list[str], *, path: str | None) -> list[Diagnostic]:
    from pyflakes import api  # type: ignore[import-untyped]  # imported on first use: ~20 ms

    reporter = _Reporter()
    try:
        api.check(text, path or "untitled.py", reporter)
    except Exception as exc:  # a checker bug must not cost the user the other diagnostics
        log.warning("pyflakes failed: %r", exc)
        return []
    found = [_from_flake(message, lines) for message in reporter.flakes]
    if reporter.syntax is not None:
        msg, lineno, offset = reporter.syntax
        line, col = _clamped(lines, (lineno or 1) - 1, (offset or 1) - 1)
        start, end = widen(lines[line], col)
        found.append(
            Diagnostic(line, start, line, end, Severity.ERROR, msg, "pyflakes", code="SyntaxError")
        )
    return found


def _from_flake(message: Any, lines: list[str]) -> Diagnostic:
    code = type(message).__name__
    line, _ = _clamped(lines, int(message.lineno) - 1, 0)
    content = lines[line]
    start = char_col(content, int(message.col))
    args = message.message_args
    span = _name_span(content, start, args[0]) if args and isinstance(args[0], str) else None
    start, end = span or (start, len(content))
    return Diagnostic(
        line,
        start,
        line,
        end,
        Severity.ERROR if code in _UNDEFINED else Severity.WARNING,
        str(message.message % args),
        "pyflakes",
        code=code,
        unnecessary=code in _UNNECESSARY,
    )


def _name_span(line: str, start: int, name: str) -> tuple[int, int] | None:
    """Where `name` (an identifier, dotted name or "a.b as c") is on the line from `start`."""
    if not _NAME.fullmatch(name):
        return None
    alias = name.rpartition(" as ")[2]
    for candidate in dict.fromkeys((name, alias, alias.rpartition(".")[2])):
        found = re.compile(rf"(?<![\w.]){re.escape(candidate)}(?!\w)").search(line, start)
        if found:
            return found.span()
    return None
