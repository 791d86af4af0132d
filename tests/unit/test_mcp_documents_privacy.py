"""An agent cannot have the MCP tools read, or work on, a file the context rules exclude."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest
from mcp.server.mcpserver.exceptions import ToolError

from server.context.ignore import ContextRules
from server.mcp.documents import read_under, snapshot_of


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".gitignore").write_text("local.py\n")
    for name in (".env", "id_ed25519", "local.py", "app.py", "dump.sql"):
        (tmp_path / name).write_text(f"# {name}\n")
    (tmp_path / "notes.py").symlink_to(tmp_path / ".env")
    return tmp_path


@pytest.mark.parametrize("name", [".env", "id_ed25519", "local.py", "notes.py", "sub/../.env"])
def test_excluded_files_are_refused(root: Path, name: str) -> None:
    with pytest.raises(ToolError, match="excluded from AI context"):
        read_under(root, PurePosixPath(name))
    with pytest.raises(ToolError, match="excluded from AI context"):
        snapshot_of(root, content="x = 1\n", path=name, language=None)


def test_ordinary_files_are_read_and_settings_extend_the_rules(root: Path) -> None:
    assert read_under(root, PurePosixPath("app.py")) == "# app.py\n"
    assert read_under(root, PurePosixPath("dump.sql")) == "# dump.sql\n"
    with pytest.raises(ToolError, match="excluded"):
        read_under(root, PurePosixPath("dump.sql"), rules=ContextRules(extra=["*.sql"]))
    snapshot = snapshot_of(root, content=None, path="app.py", language=None)
    assert snapshot.text == "# app.py\n"
