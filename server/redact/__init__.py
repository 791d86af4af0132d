"""Secret redaction, so that nothing stored (history) or sent (model prompts) holds one.

``redact(text)`` replaces each secret with ``<redacted:KIND>`` and keeps every other
character as it was, so the code around a secret stays readable and diff-able.
``find_secrets(text)`` returns the spans, for tests and log counts.

Three passes, whose findings are merged:

1. Shapes, found anywhere (`shapes`): provider tokens with a known prefix, JWTs, PEM
   private-key blocks, ``scheme://user:password@host``, webhooks, ``Authorization``
   credentials.
2. Assignments whose name says secret (`assignments`): ``password = "…"``,
   ``PGPASSWORD=…``, ``AZURE_OPENAI_KEY=…``, ``--password …``, ``.netrc`` entries.
3. Passwords given to a command by a short flag (`commands`): ``curl -u user:pass``,
   ``mysql -pS3cret``, ``sshpass -p S3cret``, ``docker login -p S3cret``.

Non-secret code stays untouched (``cache_key = "user:1"``, ``password = get_password()``,
``password: str``, ``changeme``, ``<your-key>``, ``${VAR}``, ``os.environ[...]``), and so
do the texts of the tests' corpus (tests/unit/data/secrets_corpus.py).

Speed: about 1 ms for 60 KB of code, and linear on adversarial input (200 KB of ``a``,
``"``, ``=``, ``-`` or ``sk-sk-…``): each pass is a few scans for a literal character or
stem, with bounded repetitions, none nested, tried only where the scan stops.

Not covered, by design: secrets split across string concatenations, passphrases with
spaces, XML elements (``<password>…</password>``), bare values that are plain words
(``password: hunter`` could be a variable in JS or a type in Python), a key body with
neither its BEGIN nor its END line, a ``*_KEY`` value that is a UUID or looks like a name
(``values.looks_random``), and a short flag whose command is on another line.
"""

from __future__ import annotations

import re

from server.redact.assignments import assignment_findings
from server.redact.commands import command_findings
from server.redact.shapes import shape_findings
from server.redact.values import Finding

__all__ = ["Finding", "find_secrets", "redact", "redact_pair"]

# Kinds that say where a secret is rather than what it is: `Bearer sk-…` is an OpenAI key.
_GENERIC_KINDS = frozenset(
    {"bearer-token", "basic-auth", "auth-header", "url-password", "password", "secret", "token",
     "api-key", "credentials", "auth", "aws-secret-key"}
)  # fmt: skip


def find_secrets(text: str) -> list[Finding]:
    """The secrets in `text`, in order, never overlapping (overlaps are merged)."""
    flags: list[re.Match[str]] = []
    found = shape_findings(text, flags) + assignment_findings(text) + command_findings(text, flags)
    # Where two findings cover the same text, the more specific kind names it.
    found.sort(key=lambda f: (f.start, -f.end, f.kind in _GENERIC_KINDS))
    merged: list[Finding] = []
    for finding in found:
        if merged and finding.start < merged[-1].end:
            last = merged[-1]
            if finding.end > last.end:
                merged[-1] = Finding(last.kind, last.start, finding.end)
            continue
        merged.append(finding)
    return merged


def redact(text: str) -> str:
    """`text` with each secret replaced by `<redacted:KIND>`; everything else unchanged."""
    parts = []
    pos = 0
    for finding in find_secrets(text):
        parts.append(text[pos : finding.start])
        parts.append(f"<redacted:{finding.kind}>")
        pos = finding.end
    if not parts:
        return text
    parts.append(text[pos:])
    return "".join(parts)


def redact_pair(before: str, after: str) -> tuple[str, str]:
    """`before + after` redacted as one text and split again where they met (a prompt's
    prefix and suffix): a secret the cursor cuts is found whole, and its placeholder
    ends `before`, so neither half of it is sent."""
    cut = len(before)
    findings = find_secrets(before + after)
    if not findings:
        return before, after
    text = before + after
    head: list[str] = []
    tail: list[str] = []
    pos = 0
    for finding in findings:
        placeholder = f"<redacted:{finding.kind}>"
        if finding.start < cut:  # in the head, or across the cut: then all of it goes there
            head += (text[pos : finding.start], placeholder)
        else:
            if pos < cut:
                head.append(text[pos:cut])
                pos = cut
            tail += (text[pos : finding.start], placeholder)
        pos = finding.end
    if pos < cut:
        head.append(text[pos:cut])
        pos = cut
    tail.append(text[pos:])
    return "".join(head), "".join(tail)
