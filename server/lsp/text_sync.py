"""Open documents' text, edited exactly as the client edits its own copy.

pygls' ``TextDocument`` gets several things wrong, each of which leaves the server's
text different from the editor's: it splits lines with ``str.splitlines`` (form
feeds, U+2028, U+0085 and friends are line breaks there, LSP has only ``\\n``,
``\\r\\n`` and ``\\r``), it moves a character past the end of the last line one
character back (and writes that into the request's params), it rounds a position
inside a surrogate pair or a UTF-8 sequence forward, and it re-splits and rebuilds
the whole document on every change (a 10 MB file: 110-360 ms per keystroke).

:class:`SyncedDocument` keeps the text as a list of lines (each with its line end,
the last without) so a change costs the lines it touches plus a pointer move. The
position rules are those of the LSP spec and VS Code's text model:

- a character past the end of its line means the end of the line (before ``\\r\\n``);
- a line past the end of the document means the end of the document;
- a position inside a character (the second half of a surrogate pair under UTF-16,
  a continuation byte under UTF-8) means the start of that character;
- a range whose end comes before its start is the same range turned around.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import unquote

from lsprotocol import types
from pygls.workspace.text_document import TextDocument

from server.lsp.convert import column_of, line_end_length, split_lines

if TYPE_CHECKING:
    from pygls.workspace import Workspace

log = logging.getLogger(__name__)


class SyncedDocument(TextDocument):
    """A ``TextDocument`` whose changes follow the rules in this module's docstring.

    ``_source`` (what the features read) is the joined text, joined on the first read
    after a change.
    """

    def __init__(
        self, uri: str, text: str, version: int | None, language_id: str | None, encoding: str
    ) -> None:
        self._lines: list[str] = [""]
        self._text: str | None = ""
        self._version: int | None = None
        self.encoding = encoding
        super().__init__(uri, source=text, version=version, language_id=language_id)

    @property  # pygls' attribute, made a property: the lines are the state
    def _source(self) -> str:
        if self._text is None:
            self._text = "".join(self._lines)
        return self._text

    @_source.setter
    def _source(self, text: str | None) -> None:
        self._lines = split_lines(text or "")
        self._text = text or ""

    @property
    def version(self) -> int | None:
        return self._version

    @version.setter
    def version(self, version: int | None) -> None:
        # The client holds its changes applied in the order it sent them, whatever
        # their numbers say, so they were applied in arrival order; only say so.
        # pygls sets the version after each change of a message: equal is not news.
        if version is not None and self._version is not None and version < self._version:
            log.warning(
                "%s: version %s after version %s (applied in arrival order)",
                self.uri,
                version,
                self._version,
            )
        self._version = version

    def apply_change(self, change: types.TextDocumentContentChangeEvent) -> None:
        if isinstance(change, types.TextDocumentContentChangePartial):
            self.replace(change.range, change.text)
        else:
            self._source = change.text

    def replace(self, where: types.Range, text: str) -> None:
        lines = self._lines
        first, start = self._index(where.start)
        last, end = self._index(where.end)
        if (last, end) < (first, start):
            first, start, last, end = last, end, first, start
        segment = lines[first][:start] + text + lines[last][end:]
        if first > 0 and segment.startswith("\n") and lines[first - 1].endswith("\r"):
            first -= 1  # "\r" + "\n" is now one line end
            segment = lines[first] + segment
        pieces = split_lines(segment)
        if last < len(lines) - 1:
            pieces.pop()  # the segment kept the line end of `last`: nothing follows it
        lines[first : last + 1] = pieces
        self._text = None

    def _index(self, position: types.Position) -> tuple[int, int]:
        """(line, index into the line) of a client position, per the module's rules."""
        lines = self._lines
        if position.line >= len(lines):
            return len(lines) - 1, len(lines[-1])
        line = lines[position.line]
        content = line[: len(line) - line_end_length(line)]
        return position.line, column_of(content, position.character, self.encoding)


def adopt(workspace: Workspace, uri: str) -> SyncedDocument | None:
    """Swap the ``TextDocument`` pygls just opened for a :class:`SyncedDocument`."""
    key = unquote(uri)  # pygls' key
    opened = workspace.text_documents.get(key)
    if opened is None or isinstance(opened, SyncedDocument):
        return opened
    document = SyncedDocument(
        opened.uri,
        opened._source or "",  # `source` would read the file from disk
        opened.version,
        opened.language_id,
        str(workspace.position_encoding or types.PositionEncodingKind.Utf16),
    )
    workspace.text_documents[key] = document
    return document


def opened(workspace: Workspace, uri: str) -> TextDocument | None:
    """The open document at `uri` as the client spells it (pygls keys documents by the
    unquoted URI: `a%20b.py` is open as `a b.py`), or None; never read from disk."""
    document: TextDocument | None = workspace.text_documents.get(unquote(uri))
    return document


def is_open(workspace: Workspace, uri: str) -> bool:
    """A didChange for a document that is not open has no text to apply to."""
    return opened(workspace, uri) is not None
