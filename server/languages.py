"""LSP language ids of files the editor did not name: the one-shot CLI and the MCP
tools get a path, not a ``languageId``."""

from __future__ import annotations

from pathlib import PurePath

_EXTENSIONS = {
    ".py": "python",
    ".js": "javascript",
    ".jsx": "javascriptreact",
    ".ts": "typescript",
    ".tsx": "typescriptreact",
    ".rs": "rust",
    ".go": "go",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".hpp": "cpp",
    ".java": "java",
    ".rb": "ruby",
    ".sh": "shellscript",
    ".lua": "lua",
    ".cs": "csharp",
    ".php": "php",
    ".kt": "kotlin",
}


def language_of(path: PurePath) -> str:
    """The LSP language id of a file, from its extension ("plaintext" if unknown)."""
    return _EXTENSIONS.get(path.suffix, "plaintext")
