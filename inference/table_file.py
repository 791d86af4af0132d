"""Declarative files of named tables: the model registry and the MCP servers file.

Both are TOML (or YAML) with one top-level table (``models``, ``servers``) whose
keys name the entries and whose values are tables of settings, validated by a
pydantic model. Reading, the shape checks and the messages live here once, so the
two files fail alike: every message names the file, then the entry, then the field.

It lives in ``inference/`` because the registry does and ``inference`` never imports
``server``; the servers file (server/mcp/client/config.py) imports it from here.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

Entry = TypeVar("Entry", bound=BaseModel)
SUFFIXES = (".toml", ".yaml", ".yml")


@dataclass(frozen=True)
class TableFile:
    """One kind of file: the words of its messages and the error it raises."""

    #: As in "cannot read model registry PATH".
    kind: str
    #: "a" or "an", as in "PATH: a model registry must be a .toml, .yaml or .yml file".
    article: str
    #: The top-level key, as in [models.NAME].
    table: str
    #: What one entry is, as in "PATH: model 'NAME': ...".
    entry: str
    error: type[ValueError]

    def where(self, path: Path, name: str) -> str:
        return f"{path}: {self.entry} {name!r}"

    def read_tables(self, path: Path) -> dict[str, Any]:
        """The entries' tables, by name, in file order; each still to be validated."""
        data = self._parse(path)
        if not isinstance(data, dict):
            raise self.error(f"{path}: expected a mapping with a `{self.table}` table at the top")
        # str(): YAML keys may be numbers, which neither sort with strings nor join.
        unknown = sorted(str(key) for key in data if key != self.table)
        if unknown:
            raise self.error(
                f"{path}: unknown top-level key(s) {', '.join(unknown)}; expected `{self.table}`"
            )
        tables = data.get(self.table)
        if not isinstance(tables, dict) or not tables:
            raise self.error(f"{path}: no {self.table} (add a [{self.table}.NAME] table)")
        return {str(name): table for name, table in tables.items()}

    def validate(
        self,
        model: type[Entry],
        path: Path,
        name: str,
        table: Any,
        *,
        adjust: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> Entry:
        """``table`` as a ``model`` named ``name`` (its key: a ``name`` field is refused).

        ``adjust`` rewrites the settings before validation (say, a path made relative
        to the file)."""
        where = self.where(path, name)
        if not isinstance(table, dict):
            raise self.error(f"{where}: expected a table of settings, got {type(table).__name__}")
        if "name" in table:
            raise self.error(f"{where}: `name` is the table key; remove the `name` field")
        settings = adjust(dict(table)) if adjust is not None else table
        try:
            return model.model_validate({**settings, "name": name})
        except ValidationError as exc:
            problems = "; ".join(describe(error) for error in exc.errors())
            raise self.error(f"{where}: {problems}") from None

    def _parse(self, path: Path) -> Any:
        suffix = path.suffix.lower()
        if suffix not in SUFFIXES:
            raise self.error(
                f"{path}: {self.article} {self.kind} must be a .toml, .yaml or .yml file"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise self.error(f"cannot read {self.kind} {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise self.error(f"{path}: not UTF-8 text ({exc.reason})") from None
        if suffix == ".toml":
            try:
                return tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise self.error(f"{path}: invalid TOML: {exc}") from None
        import yaml  # only YAML files pay for the import

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            # One line: the message ends up in a log line or an editor notification.
            raise self.error(f"{path}: invalid YAML: {' '.join(str(exc).split())}") from None


def describe(error: Any) -> str:
    """One pydantic error as ``field.path: message``, in the file's words."""
    location = ".".join(str(part) for part in error.get("loc", ()))
    message = str(error.get("msg", "invalid"))
    message = message.removeprefix("Value error, ")
    if error.get("type") == "extra_forbidden":
        message = "unknown setting"
    return f"{location}: {message}" if location else message
