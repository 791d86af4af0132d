"""The MCP servers file: which servers reviews and code actions may draw context from.

One declarative file (TOML, or YAML), like the model registry, lists servers by name
under ``servers``. A server is either started here (``command``, ``args``, ``env``,
``cwd``: stdio) or reached (``url``, ``headers``: streamable HTTP). ``resources`` are
URI glob patterns drawn as context; ``tools`` names the only tools ever called, each
with fixed arguments whose strings may hold the placeholders {symbol} {language}
{path} {problem} (filled from a ContextRequest: never document text).

Validation happens here, once, with messages naming the file, the server and the
field. ``env:NAME`` values (env, headers) are read from our environment at load, so
secrets stay out of the file. No ``mcp`` SDK import: the language server reads this
file without paying for it.
"""

from __future__ import annotations

import os
import re
import shlex
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from inference.table_file import TableFile
from server.context.types import ContextRequest

#: What a tool argument template may name, and the ContextRequest field each comes from.
PLACEHOLDERS: dict[str, str] = {
    "symbol": "symbol",
    "language": "language_id",
    "path": "path",
    "problem": "problem",
}
ENV_PREFIX = "env:"
_SERVER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Use = Literal["review", "actions"]


def _every_use() -> list[Use]:
    return ["review", "actions"]


class McpConfigError(ValueError):
    """The servers file is unreadable or invalid; the message names file, server and field."""


SERVERS_FILE = TableFile(
    kind="MCP servers file", article="an", table="servers", entry="server", error=McpConfigError
)


class ToolUse(BaseModel):
    """How one allowed tool is called: fixed arguments, in some features."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    arguments: dict[str, Any] = Field(
        default_factory=dict,
        description="Arguments sent as given; strings may hold {symbol} {language} {path} "
        "{problem}; write {{ and }} for literal braces.",
    )
    use_in: list[Use] = Field(
        default_factory=_every_use,
        min_length=1,
        description="Which features call the tool.",
    )

    @field_validator("arguments")
    @classmethod
    def _known_placeholders(cls, value: dict[str, Any]) -> dict[str, Any]:
        for text in strings_in(value):
            _check_template(text)
        return value


class ServerSpec(BaseModel):
    """One server of the file; ``name`` is its table key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    command: str | None = Field(default=None, description="Program started here (stdio).")
    url: str | None = Field(default=None, description="Streamable HTTP endpoint of a server.")
    args: list[str] = Field(default_factory=list)
    # repr=False: resolved values may be secrets, and specs end up in logs.
    env: dict[str, str] = Field(
        default_factory=dict,
        repr=False,
        description="Extra environment; values `env:NAME` read ours.",
    )
    cwd: Path | None = Field(default=None, description="Working directory of the command.")
    headers: dict[str, str] = Field(
        default_factory=dict, repr=False, description="HTTP headers; values `env:NAME` read ours."
    )
    timeout_s: float = Field(default=5.0, gt=0, le=120, description="Limit of every request.")
    resources: list[str] = Field(
        default_factory=list, description="fnmatch patterns of resource URIs drawn as context."
    )
    tools: dict[str, ToolUse] = Field(
        default_factory=dict, description="The only tools ever called, by name."
    )

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not _SERVER_NAME.fullmatch(value):
            raise ValueError(
                f"server name {value!r}: use letters, digits, '_', '.' or '-' "
                "(it is typed in `zi-coder mcp trust NAME`)"
            )
        return value

    @field_validator("resources")
    @classmethod
    def _nonempty_patterns(cls, value: list[str]) -> list[str]:
        if any(not pattern.strip() for pattern in value):
            raise ValueError("an empty pattern matches nothing; remove it")
        return value

    @model_validator(mode="after")
    def _command_xor_url(self) -> ServerSpec:
        if (self.command is None) == (self.url is None):
            raise ValueError("set exactly one of `command` (started here) or `url` (reached)")
        if self.url is not None:
            if not self.url.startswith(("http://", "https://")):
                from server.history.repository import safe_endpoint  # on this error only

                shown = safe_endpoint(self.url)  # the file may hold credentials in it
                raise ValueError(f"url must start with http:// or https://, got {shown!r}")
            misplaced = [key for key in ("args", "env", "cwd") if key in self.model_fields_set]
            if misplaced:
                raise ValueError(f"{', '.join(misplaced)}: only for a `command` server")
        elif "headers" in self.model_fields_set:
            raise ValueError("headers: only for a `url` server")
        return self

    @property
    def transport(self) -> Literal["stdio", "http"]:
        return "stdio" if self.command is not None else "http"


def identity(spec: ServerSpec) -> str:
    """What the server *is*, for tool pins: the command line, or the URL without
    credentials, query or fragment (a rotated token must not look like a new server)."""
    if spec.command is not None:
        return shlex.join([spec.command, *spec.args])
    assert spec.url is not None  # the validator makes one of them set
    parts = urlsplit(spec.url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def placeholder_values(request: ContextRequest) -> dict[str, str]:
    return {name: str(getattr(request, field)) for name, field in PLACEHOLDERS.items()}


def render_arguments(arguments: dict[str, Any], request: ContextRequest) -> dict[str, Any]:
    """``arguments`` with every string's placeholders filled from ``request``
    (nested lists and tables too); other values as they are."""
    values = placeholder_values(request)

    def render(value: Any) -> Any:
        if isinstance(value, str):
            return value.format_map(values)  # validated at load: plain known names only
        if isinstance(value, list):
            return [render(item) for item in value]
        if isinstance(value, dict):
            return {key: render(item) for key, item in value.items()}
        return value

    return {key: render(value) for key, value in arguments.items()}


def load_servers(path: Path, *, environ: Mapping[str, str] | None = None) -> list[ServerSpec]:
    """Read and validate a servers file (``.toml``, ``.yaml`` or ``.yml``), in file order.

    ``environ`` (default: ours) supplies ``env:NAME`` values. Raises McpConfigError.
    """
    path = path.expanduser()
    tables = SERVERS_FILE.read_tables(path)
    source = os.environ if environ is None else environ
    return [_spec(path, name, table, source) for name, table in tables.items()]


def _spec(path: Path, name: str, table: Any, environ: Mapping[str, str]) -> ServerSpec:
    spec = SERVERS_FILE.validate(ServerSpec, path, name, table)
    where = SERVERS_FILE.where(path, name)
    # Relative to the file, so a checked-in servers file works from any directory.
    base = path.parent.resolve()
    update: dict[str, Any] = {
        "env": _resolve_refs(where, "env", spec.env, environ),
        "headers": _resolve_refs(where, "headers", spec.headers, environ),
    }
    if spec.cwd is not None:
        update["cwd"] = base / spec.cwd.expanduser()
    if spec.command is not None:
        command = os.path.expanduser(spec.command)
        # A bare name ("uvx") is looked up on PATH; one with a slash is a path.
        if "/" in command and not os.path.isabs(command):
            command = str(base / command)
        update["command"] = command
    return spec.model_copy(update=update)


def _resolve_refs(
    where: str, field: str, values: dict[str, str], environ: Mapping[str, str]
) -> dict[str, str]:
    resolved: dict[str, str] = {}
    for key, value in values.items():
        if not value.startswith(ENV_PREFIX):
            resolved[key] = value
            continue
        variable = value.removeprefix(ENV_PREFIX)
        if not _ENV_NAME.fullmatch(variable):
            raise McpConfigError(
                f"{where}: {field}.{key}: {value!r} is not `env:NAME` with a variable name"
            )
        if variable not in environ:
            raise McpConfigError(
                f"{where}: {field}.{key}: environment variable {variable} is not set"
            )
        resolved[key] = environ[variable]
    return resolved


def strings_in(value: Any) -> list[str]:
    """Every string in `value`, however deep in lists and tables (tool arguments)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in strings_in(item)]
    if isinstance(value, dict):
        return [text for item in value.values() for text in strings_in(item)]
    return []


def _check_template(text: str) -> None:
    known = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
    try:
        fields = list(string.Formatter().parse(text))
    except ValueError:
        raise ValueError(
            f"{text!r}: unbalanced brace; write {{{{ or }}}} for a literal brace"
        ) from None
    for _literal, field, spec, conversion in fields:
        if field is None:
            continue
        if field not in PLACEHOLDERS or spec or conversion:
            shown = "{" + field + (f"!{conversion}" if conversion else "")
            shown += (f":{spec}" if spec else "") + "}"
            raise ValueError(f"{text!r}: unknown placeholder {shown}; use {known}")
