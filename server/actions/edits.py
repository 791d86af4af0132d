"""Whole-line edits, carried across the user's typing, and where they may be written.

An action's edit is computed from the document as it was when the user asked; the
user may have typed since. ``rebase`` maps the edit onto the current text with a
line diff: edits above the region shift it, edits below leave it alone, and an
edit that touches the region (or inserts inside it) is a conflict, because then
the model rewrote code that no longer exists.

Lines are split the way LSP counts them (``\\n``, ``\\r\\n``, ``\\r``), not the way
``str.splitlines`` does: that also splits at form feeds, ``\\x1c``-``\\x1e``,
``\\x85`` and U+2028/U+2029, which would number lines differently from the client.

The path helpers decide where generated tests go, and refuse anything that would
land outside the workspace folders (``..``, symlinks, /ws vs /ws2).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_ENDING = re.compile(r"(?:\r\n|\r|\n)\Z")


@dataclass(frozen=True)
class LineEdit:
    """Replace whole lines [start, end) (0-based) of a document."""

    uri: str
    version: int | None
    start: int
    end: int
    old_lines: tuple[str, ...]  # the lines replaced, as in the base text (with line endings)
    new_text: str  # replacement, ends with a newline unless at EOF without one


class EditConflict(Exception):
    """The edit cannot be applied to the document as it is now; the message says why."""


def split_lines(text: str) -> list[str]:
    """The document's lines as LSP numbers them, each with its line ending."""
    return _LINE.findall(text)


def apply_line_edit(text: str, edit: LineEdit) -> str:
    """`text` with the edit applied, as a client applies the equivalent TextEdit."""
    lines = split_lines(text)
    if not 0 <= edit.start <= edit.end <= len(lines):
        raise EditConflict("the edit's lines are outside the document")
    if tuple(lines[edit.start : edit.end]) != edit.old_lines:
        raise EditConflict("the lines to replace are not the ones the edit was made for")
    return "".join(lines[: edit.start]) + edit.new_text + "".join(lines[edit.end :])


def rebase(
    edit: LineEdit, base_text: str, current_text: str, current_version: int | None
) -> LineEdit:
    """The same edit on `current_text`, which `base_text` (the edit's base) became.

    Raises EditConflict when the region was edited, something was inserted inside
    it, or its lines are no longer the ones the edit replaces.
    """
    base = split_lines(base_text)
    if edit.end > len(base) or tuple(base[edit.start : edit.end]) != edit.old_lines:
        raise EditConflict("the edit does not match the text it was computed from; ask again")
    current = split_lines(current_text)
    start = _moved(edit.start, edit.end, base, current)
    end = start + (edit.end - edit.start)
    region = current[start:end]
    if [_content(line) for line in region] != [_content(line) for line in edit.old_lines]:
        raise EditConflict(f"{_where(edit)} changed while Zi was working on them; ask again")
    new_text = _fit_ending(edit, base, current, start, region)
    return dataclasses.replace(
        edit,
        version=current_version,
        start=start,
        end=end,
        old_lines=tuple(region),
        new_text=new_text,
    )


def _moved(start: int, end: int, base: list[str], current: list[str]) -> int:
    """Where line `start` of `base` is in `current`; EditConflict if [start, end) was edited."""
    a = [_content(line) for line in base]
    b = [_content(line) for line in current]
    # Diff only the changed middle: typing changes a few lines of a long file.
    prefix = 0
    while prefix < min(len(a), len(b)) and a[prefix] == b[prefix]:
        prefix += 1
    suffix = 0
    while suffix < min(len(a), len(b)) - prefix and a[-1 - suffix] == b[-1 - suffix]:
        suffix += 1
    matcher = SequenceMatcher(None, a[prefix : len(a) - suffix], b[prefix : len(b) - suffix], False)
    shift = 0
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        i1, i2 = i1 + prefix, i2 + prefix
        # Changed lines overlapping the region, lines inserted between two of its
        # lines (i1 == i2 strictly inside), or for an insertion point: lines spanning it.
        # Lines inserted right above the region shift it; right below, leave it.
        if i1 < end and i2 > start:
            raise EditConflict(
                f"{_where_lines(start, end)} changed while Zi was working on them; ask again"
            )
        if i2 <= start:
            shift += (j2 - j1) - (i2 - i1)
    return start + shift


def _fit_ending(
    edit: LineEdit, base: list[str], current: list[str], start: int, region: list[str]
) -> str:
    """`new_text` adjusted for a region whose last line gained or lost its line ending.

    That happens at the end of a document without a trailing newline: the user
    added lines below the region (its last line now ends with a newline, the
    replacement must too) or removed them (the other way round).
    """
    text = edit.new_text
    if not text:
        return text
    if edit.old_lines:
        was, now = _ending(edit.old_lines[-1]), _ending(region[-1])
        if was == now or not text.endswith(was):
            return text
        return text[: len(text) - len(was)] + now
    # An insertion at the end of a document whose last line has no line ending
    # needs one in front of it, or it would join that line.
    needed_before = _joins_last_line(base, edit.start)
    needed_now = _joins_last_line(current, start)
    newline = next((_ending(line) for line in current if _ending(line)), "\n")
    if needed_now and not needed_before:
        return newline + text
    if needed_before and not needed_now and text.startswith(("\r\n", "\n", "\r")):
        return text[2:] if text.startswith("\r\n") else text[1:]
    return text


def _joins_last_line(lines: list[str], at: int) -> bool:
    return at == len(lines) and bool(lines) and not _ending(lines[-1])


def _content(line: str) -> str:
    return line.rstrip("\r\n")


def _ending(line: str) -> str:
    found = _ENDING.search(line)
    return found.group() if found else ""


def _where(edit: LineEdit) -> str:
    return _where_lines(edit.start, edit.end)


def _where_lines(start: int, end: int) -> str:
    if end - start > 1:
        return f"lines {start + 1}-{end}"
    if end - start == 1:
        return f"line {start + 1}"
    return f"the text around line {start + 1}"


# -- where files may go -----------------------------------------------------------------


def inside_workspace(path: Path, folders: Sequence[Path]) -> bool:
    """Whether `path`, with symlinks and ".." resolved, is inside one of `folders`.

    Relative paths are refused: what they mean depends on the server's cwd.
    """
    resolved = _resolved(path)
    if resolved is None:
        return False
    for folder in folders:
        root = _resolved(folder)
        if root is not None and resolved.is_relative_to(root):  # by components: /ws2 is not in /ws
            return True
    return False


def test_file_for(module: Path, folders: Sequence[Path]) -> Path:
    """Where tests for `module` go: <root>/tests/test_<stem>.py, else next to the module.

    root is the (innermost) workspace folder holding the module; a package's
    ``__init__.py`` is tested in test_<package>.py. Paths are resolved.
    Raises ValueError when the module is outside every folder.
    """
    resolved = _resolved(module)
    roots = [r for r in map(_resolved, folders) if r is not None]
    holding = [r for r in roots if resolved is not None and resolved.is_relative_to(r)]
    if resolved is None or not holding:
        raise ValueError(f"{module} is not inside a workspace folder")
    root = max(holding, key=lambda r: len(r.parts))
    stem = resolved.parent.name if resolved.stem == "__init__" else resolved.stem
    name = f"test_{stem}.py"
    tests = root / "tests"
    return tests / name if tests.is_dir() else resolved.parent / name


def module_name(module: Path, root: Path) -> str:
    """The import name of `module` under `root`: "pkg.mod" for root/pkg/mod.py.

    A src/ layout's leading "src" is not part of the name; a package's
    ``__init__.py`` is the package. Raises ValueError when module is not under root.
    """
    try:
        parts = list(module.relative_to(root).with_suffix("").parts)
    except ValueError:
        parts = list(module.resolve().relative_to(root.resolve()).with_suffix("").parts)
    if len(parts) > 1 and parts[0] == "src":
        parts = parts[1:]
    if len(parts) > 1 and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolved(path: Path) -> Path | None:
    if not path.is_absolute():
        return None
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError):  # symlink loop, NUL in the name
        return None
