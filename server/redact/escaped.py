"""Redaction of text that quotes other text escaped: a log line holding a JSON message
(pygls logs whole LSP bodies) or a Python repr of parameters.

In ``{"text": "DB_PASSWORD=hunter22\\nport = 5432"}`` the value runs into the escaped
newline, and a PEM block's lines are joined by ``\\n`` escapes, so secrets are looked for
in the unescaped view (one level: ``\\n``, ``\\"``, ``\\uXXXX``…) and the spans found are
cut out of the escaped text, which otherwise keeps every character.
"""

from __future__ import annotations

import bisect
import re

from server.redact import find_secrets, redact

_ESCAPE = re.compile(r"\\(?:u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|.)", re.DOTALL)
_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "0": "\0"}


def _unescaped(sequence: str) -> str:
    code = sequence[1]
    if code in "ux" and len(sequence) > 2:  # a bare "\u" is just the letter
        return chr(int(sequence[2:], 16))
    return _SIMPLE.get(code, code)  # \" \' \\ \/ and anything else: the character itself


def redact_escaped(text: str) -> str:
    """`text` with the secrets of its unescaped view replaced by `<redacted:KIND>`; `redact`
    when it has no backslash."""
    if "\\" not in text:
        return redact(text)
    plain: list[str] = []
    # Segment starts in the unescaped view and in `text`; an escape is one character of
    # the view, so a view position inside a plain segment maps by its offset.
    view_starts: list[int] = []
    text_starts: list[int] = []
    escapes: list[bool] = []
    pos = view = 0
    for match in _ESCAPE.finditer(text):
        if match.start() > pos:
            view_starts.append(view)
            text_starts.append(pos)
            escapes.append(False)
            plain.append(text[pos : match.start()])
            view += match.start() - pos
        view_starts.append(view)
        text_starts.append(match.start())
        escapes.append(True)
        plain.append(_unescaped(match.group()))
        view += 1
        pos = match.end()
    plain.append(text[pos:])
    view_starts.append(view)
    text_starts.append(pos)
    escapes.append(False)
    findings = find_secrets("".join(plain))
    if not findings:
        return text

    def in_text(at: int) -> int:
        i = bisect.bisect_right(view_starts, at) - 1
        return text_starts[i] if escapes[i] else text_starts[i] + at - view_starts[i]

    parts: list[str] = []
    pos = 0
    for finding in findings:
        start, end = in_text(finding.start), in_text(finding.end)
        parts += (text[pos:start], f"<redacted:{finding.kind}>")
        pos = end
    parts.append(text[pos:])
    return "".join(parts)
