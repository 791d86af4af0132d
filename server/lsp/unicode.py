"""Text from the client made safe to encode: JSON may escape half of a UTF-16 pair.

``"\\ud800"`` is valid JSON, and Python decodes it to a string that cannot be encoded
as UTF-8, so it would fail wherever text leaves the process (the model request, the
history database, a job id, the log). Each unpaired surrogate becomes U+FFFD, which is
one code point and one UTF-16 unit like the surrogate, so every position in every
encoding stays where the client has it.
"""

from __future__ import annotations


def encodable(text: str) -> str:
    """`text` with each unpaired surrogate replaced by U+FFFD (ASCII text as it is)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text
