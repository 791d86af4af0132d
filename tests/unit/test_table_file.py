"""The model registry and the MCP servers file read through one loader
(inference/table_file.py): files that used to escape it with a raw exception
(TypeError, UnicodeDecodeError) or a message over several lines."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from inference.registry import RegistryError, load_registry
from server.mcp.client.config import McpConfigError, load_servers

LOADERS: list[Any] = [
    pytest.param(load_registry, RegistryError, "models", id="registry"),
    pytest.param(load_servers, McpConfigError, "servers", id="servers"),
]
# (file name, its bytes with {table} for the top-level key, how the message goes on
# after "PATH: ")
FILES = [
    pytest.param(
        "latin1.toml",
        '[{table}.a]\ncommand = "caf\xe9"\n'.encode("latin-1"),
        "not UTF-8 text (invalid continuation byte)",
        id="not-utf8",
    ),
    pytest.param(
        "numbered.yaml",
        b"1: one\n{table}: {{}}\n",
        "unknown top-level key(s) 1; expected `{table}`",
        id="number-key",
    ),
    pytest.param(
        "broken.yaml",
        b"{table}:\n  a: [unclosed\n",
        "invalid YAML: while parsing",
        id="yaml-one-line",
    ),
]


@pytest.mark.parametrize(("load", "error", "table"), LOADERS)
@pytest.mark.parametrize(("name", "content", "message"), FILES)
def test_a_bad_file_is_one_line_naming_it(
    tmp_path: Path,
    load: Callable[[Path], object],
    error: type[Exception],
    table: str,
    name: str,
    content: bytes,
    message: str,
) -> None:
    path = tmp_path / name
    path.write_bytes(content.decode("latin-1").format(table=table).encode("latin-1"))

    with pytest.raises(error) as caught:
        load(path)

    said = str(caught.value)
    assert said.startswith(f"{path}: {message.format(table=table)}")
    assert "\n" not in said
