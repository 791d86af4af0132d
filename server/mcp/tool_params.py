"""Parameters several MCP tools take, declared once so that their limits and the
descriptions agents read stay the same in every tool.

The tool modules import these names at module level: the MCP SDK resolves each
tool's (string) annotations in its module's globals.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from server.mcp.documents import MAX_FILE_CHARS

#: The file's text, when a tool reads the file from ``path`` otherwise.
FileContent = Annotated[
    str | None, Field(max_length=MAX_FILE_CHARS, description="The file's text (or: path)")
]
#: A file a tool reads when no content is given.
FilePath = Annotated[
    str | None,
    Field(
        description="The file, under the directory the server runs in; read if "
        "content is not given, and its name tells the language"
    ),
]
LanguageId = Annotated[str | None, Field(description="Language id, e.g. python")]
