"""Redaction for chat prompts whose answer becomes an edit (code actions, review fixes).

The model sees ``<redacted:KIND>`` where the document has a secret; an answer that
rewrites those lines usually keeps the placeholder, and writing it into the file would
destroy the user's secret. ``Redaction.restore`` puts the originals back into the answer:
the n-th placeholder of a kind gets the n-th secret of that kind (the last one when the
answer repeats a placeholder more often), so the secret never left and the edit keeps it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from server.redact import find_secrets

_PLACEHOLDER = re.compile(r"<redacted:([a-z0-9-]{1,40})>")


@dataclass(frozen=True)
class Redaction:
    """Texts redacted together (a prompt's messages), and what they held."""

    texts: tuple[str, ...]
    secrets: dict[str, tuple[str, ...]]  # kind -> the secrets of that kind, in order

    def restore(self, answer: str) -> str:
        """`answer` with each placeholder of a kind the texts had replaced by its secret."""
        if not self.secrets or "<redacted:" not in answer:
            return answer
        seen: dict[str, int] = {}

        def original(match: re.Match[str]) -> str:
            found = self.secrets.get(match.group(1))
            if not found:
                return match.group()  # the model's own placeholder: nothing to put back
            index = seen.get(match.group(1), 0)
            seen[match.group(1)] = index + 1
            return found[min(index, len(found) - 1)]

        return _PLACEHOLDER.sub(original, answer)


def redact_all(texts: list[str]) -> Redaction:
    """`texts` redacted, remembering their secrets for `Redaction.restore`."""
    redacted: list[str] = []
    secrets: dict[str, list[str]] = {}
    for text in texts:
        parts: list[str] = []
        pos = 0
        for finding in find_secrets(text):
            secrets.setdefault(finding.kind, []).append(text[finding.start : finding.end])
            parts += (text[pos : finding.start], f"<redacted:{finding.kind}>")
            pos = finding.end
        redacted.append("".join(parts) + text[pos:] if parts else text)
    return Redaction(tuple(redacted), {kind: tuple(found) for kind, found in secrets.items()})


def redact_messages(messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], Redaction]:
    """Chat messages with their contents redacted, and the redaction to restore an answer."""
    redaction = redact_all([message["content"] for message in messages])
    clean = [
        {**message, "content": text}
        for message, text in zip(messages, redaction.texts, strict=True)
    ]
    return clean, redaction
