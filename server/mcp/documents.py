"""The file a tool works on: its text given by the agent, or read under the server's
directory, as the snapshot the editor path's services take."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from mcp.server.mcpserver.exceptions import ToolError

from server.actions.types import Snapshot
from server.languages import language_of


def name_of(path: str | None) -> PurePosixPath:
    return PurePosixPath(path or "untitled")


def uri_of(name: PurePosixPath) -> str:
    """The history's name for a file an agent sent (not a file URI: it may not exist)."""
    return f"mcp:///{name.as_posix().lstrip('/')}"


def read_under(root: Path, name: PurePosixPath) -> str:
    """The text of `name` if it is under `root` (an agent must not read ~/.ssh)."""
    target = file_under(root, name)
    try:
        return target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ToolError(f"cannot read {name}: {exc}") from exc


def file_under(root: Path, name: PurePosixPath) -> Path:
    """`name` resolved against `root`; ToolError when that leaves `root`."""
    base = root.resolve()
    target = (base / name).resolve()
    if not target.is_relative_to(base):
        raise ToolError(f"{name} is outside {base}, the directory the server runs in")
    return target


def snapshot_of(
    root: Path, *, content: str | None, path: str | None, language: str | None
) -> Snapshot:
    """The file as the tool got it: `content`, else `path`'s text (read under `root`).
    Its path on disk only when under `root`: the services may read beside it."""
    if content is None and path is None:
        raise ToolError("give the file's content, or its path")
    name = name_of(path)
    if content is None:
        content = read_under(root, name)
    try:
        on_disk: Path | None = file_under(root, name) if path is not None else None
    except ToolError:
        on_disk = None  # a name for the language and the prompt, nothing to read
    return Snapshot(
        uri=uri_of(name),
        path=on_disk,
        language_id=language or language_of(name),
        version=None,
        text=content,
    )
