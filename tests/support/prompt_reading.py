"""Reading a chat prompt the way a Markdown reader does, for the prompt-injection tests.

markdown-it (CommonMark) decides where a fenced block ends, not our own code: a
prompt is safe when hostile text is only ever inside fenced blocks or code spans.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt

SPECIAL_TOKENS = re.compile(r"<[|\uff5c][^\s<>]{1,48}[|\uff5c]>")
"""A chat template's special tokens: <|im_start|>, <|eot_id|>, DeepSeek's fullwidth-bar ones."""


def read_markdown(markdown: str) -> tuple[str, list[str]]:
    """What a Markdown reader shows as prose (outside fences and code spans), and the
    bodies of the fenced blocks."""
    outside: list[str] = []
    fences: list[str] = []
    for token in MarkdownIt("commonmark").parse(markdown):
        if token.type == "fence":
            fences.append(token.content)
        elif token.type == "inline":
            children = token.children or ()
            outside.append("".join(c.content for c in children if c.type != "code_inline"))
        elif token.content:  # html blocks, indented code blocks: outside any fence
            outside.append(token.content)
    return "\n".join(outside), fences
