"""Redaction whose answer can be restored: code actions and review fixes.

The model sees ``<redacted:KIND:N>`` where the document has a secret: one tag per
distinct secret (the same value everywhere gets the same tag). An answer that rewrites
those lines usually keeps the tags, and writing them into the file would destroy the
user's secrets, so ``Redaction.restore`` puts back exactly the secret each tag stood
for. Numbering by value, not by position, matters: with two passwords in a file, a
fix of the second must not receive the first.

A secret spanning lines (a PEM key) keeps its line breaks inside its tag
(``<redacted:private-key:1⏎⏎⏎>``), so line numbers mean the same in the redacted text:
actions and reviews address lines.

The redaction is computed from the text alone, so the server can make it again from
the snapshot it kept, and the job (and Redis, and the model) never see a secret.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from server.redact import find_secrets

_TAG = re.compile(r"<redacted:[a-z0-9-]{1,40}:[0-9]{1,6}\n*>")


@dataclass(frozen=True)
class Redaction:
    """Texts redacted together (a prompt's messages, a document), and what they held."""

    texts: tuple[str, ...]
    secrets: dict[str, str]  # tag -> the secret it stands for

    def restore(self, answer: str) -> str:
        """`answer` with each of our tags replaced by its secret; other text unchanged
        (a tag we never made, such as the model's own, stays as it is)."""
        if not self.secrets or "<redacted:" not in answer:
            return answer
        return _TAG.sub(lambda match: self.secrets.get(match.group(), match.group()), answer)


def redact_all(texts: list[str]) -> Redaction:
    """`texts` redacted, remembering their secrets for `Redaction.restore`."""
    redacted: list[str] = []
    tags: dict[tuple[str, str], str] = {}  # (kind, secret) -> tag
    counts: dict[str, int] = {}
    for text in texts:
        parts: list[str] = []
        pos = 0
        for finding in find_secrets(text):
            secret = text[finding.start : finding.end]
            tag = tags.get((finding.kind, secret))
            if tag is None:
                counts[finding.kind] = counts.get(finding.kind, 0) + 1
                breaks = "\n" * secret.count("\n")
                tag = f"<redacted:{finding.kind}:{counts[finding.kind]}{breaks}>"
                tags[finding.kind, secret] = tag
            parts += (text[pos : finding.start], tag)
            pos = finding.end
        redacted.append("".join(parts) + text[pos:] if parts else text)
    return Redaction(tuple(redacted), {tag: secret for (_, secret), tag in tags.items()})


def redact_messages(messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], Redaction]:
    """Chat messages with their contents redacted, and the redaction to restore an answer."""
    redaction = redact_all([message["content"] for message in messages])
    clean = [
        {**message, "content": text}
        for message, text in zip(messages, redaction.texts, strict=True)
    ]
    return clean, redaction
