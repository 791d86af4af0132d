"""The file a tool works on: its text given by the agent, or read under the server's
directory, as the snapshot the editor path's services take.

A file the context rules exclude (``.env``, keys, credential files, what .gitignore
ignores: ``server.context.ignore``) is refused, read or sent: it is never put in a prompt.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from mcp.server.mcpserver.exceptions import ToolError

from server.actions.types import Snapshot
from server.context.ignore import ContextRules, rules_for
from server.languages import language_of

# The most text a tool takes, sent or read; and the most bytes that many characters
# take in UTF-8, so a larger file is refused before it is read.
MAX_FILE_CHARS = 2_000_000
BYTES_PER_CHAR = 4


def name_of(path: str | None) -> PurePosixPath:
    return PurePosixPath(path or "untitled")


def uri_of(name: PurePosixPath) -> str:
    """The history's name for a file an agent sent (not a file URI: it may not exist)."""
    return f"mcp:///{name.as_posix().lstrip('/')}"


def read_under(
    root: Path,
    name: PurePosixPath,
    *,
    max_chars: int = MAX_FILE_CHARS,
    rules: ContextRules | None = None,
) -> str:
    """The text of `name` (line endings as on disk) if it is under `root` (an agent
    must not read ~/.ssh), not excluded by `rules` (default: the built-in ones and
    .gitignore), a regular file and at most `max_chars` characters long.
    Never reads more than that can take: a log of gigabytes stays on disk."""
    target = file_under(root, name)
    refuse_excluded(root, name, target, rules)
    max_bytes = max_chars * BYTES_PER_CHAR
    try:
        # Non-blocking: opening a FIFO would wait for a writer; a regular file ignores it.
        fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK)
        try:
            found = os.fstat(fd)
            if not stat.S_ISREG(found.st_mode):
                raise ToolError(f"{name} is not a regular file")
            if found.st_size > max_bytes:
                raise ToolError(_too_long(name, f"{found.st_size:,} bytes", max_chars))
            with open(fd, "rb", closefd=False) as file:
                data = file.read(max_bytes + 1)  # it may have grown since
        finally:
            os.close(fd)
        if len(data) > max_bytes:
            raise ToolError(_too_long(name, f"more than {max_bytes:,} bytes", max_chars))
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ToolError(f"cannot read {name}: {exc}") from exc
    if len(text) > max_chars:
        raise ToolError(_too_long(name, f"{len(text):,} characters", max_chars))
    return text


def _too_long(name: PurePosixPath, size: str, max_chars: int) -> str:
    return f"{name} has {size}: this tool takes files of at most {max_chars:,} characters"


def refuse_excluded(
    root: Path, name: PurePosixPath, target: Path, rules: ContextRules | None
) -> None:
    """ToolError if the rules exclude the file, by the name the agent gave or by what it
    resolves to (a link named `notes.txt` to `.env` is `.env`)."""
    rules = rules if rules is not None else rules_for()
    if rules.excludes(target) or rules.excludes(root.resolve() / name):
        raise ToolError(
            f"{name} is excluded from AI context (a secrets or key file, ignored by "
            ".gitignore, or by the context.ignore setting)"
        )


def file_under(root: Path, name: PurePosixPath) -> Path:
    """`name` resolved against `root`; ToolError when that leaves `root`."""
    base = root.resolve()
    target = (base / name).resolve()
    if not target.is_relative_to(base):
        raise ToolError(f"{name} is outside {base}, the directory the server runs in")
    return target


def snapshot_of(
    root: Path,
    *,
    content: str | None,
    path: str | None,
    language: str | None,
    rules: ContextRules | None = None,
) -> Snapshot:
    """The file as the tool got it: `content`, else `path`'s text (read under `root`).
    Its path on disk only when under `root`: the services may read beside it. A path
    the rules exclude is refused even with its content: no AI works on such a file."""
    if content is None and path is None:
        raise ToolError("give the file's content, or its path")
    name = name_of(path)
    if content is None:
        content = read_under(root, name, rules=rules)
    try:
        on_disk: Path | None = file_under(root, name) if path is not None else None
    except ToolError:
        on_disk = None  # a name for the language and the prompt, nothing to read
    if path is not None:
        refuse_excluded(root, name, on_disk or root.resolve() / name, rules)
    return Snapshot(
        uri=uri_of(name),
        path=on_disk,
        language_id=language or language_of(name),
        version=None,
        text=content,
    )
