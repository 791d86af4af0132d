"""Step 3, context: what the model sees around the cursor, within token budgets.

Prefix and suffix are budgeted separately in the served model's tokens and cut at
line boundaries. The prompt is ordered stable-first (file path, snippets from
other documents, then code), and the prefix's first line moves in steps of
``_START_STEP_CHARS`` characters, so while a user types, consecutive prompts share a
long head and vLLM's automatic prefix caching keeps hitting.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from inference.tokens import TokenCounter
from server.completion.snippets import Snippet, SnippetIndex
from server.completion.types import CompletionRequest, Document

_START_STEP_CHARS = 512
_QUERY_LINES = 12

_HASH_COMMENT = frozenset(
    {
        "python",
        "ruby",
        "shellscript",
        "bash",
        "sh",
        "yaml",
        "toml",
        "r",
        "perl",
        "elixir",
        "dockerfile",
        "makefile",
        "cmake",
        "julia",
        "nim",
        "powershell",
        "coffeescript",
    }
)
_DASH_COMMENT = frozenset(["lua", "sql", "haskell", "elm", "ada"])


def comment_prefix(language_id: str) -> str:
    if language_id in _HASH_COMMENT:
        return "#"
    if language_id in _DASH_COMMENT:
        return "--"
    return "//"


@dataclass(frozen=True, slots=True)
class PromptContext:
    head: str  # path header and snippets: stable while the user types
    prefix: str  # code before the cursor
    suffix: str  # code after the cursor
    snippets: tuple[Snippet, ...]

    @property
    def full_prefix(self) -> str:
        return self.head + self.prefix


def budget_prefix(text: str, offset: int, budget: int, counter: TokenCounter) -> str:
    """Whole lines before the cursor line, back as far as `budget` tokens allow.

    The first kept line is the first line start at or after a multiple of
    ``_START_STEP_CHARS``: characters typed after it do not move it, so the prompt's
    head stays byte-identical while the user types (prefix-cache friendly).
    """
    line_start = text.rfind("\n", 0, offset) + 1
    used = counter.count(text[line_start:offset])
    start = line_start
    while start > 0 and used < budget:
        prev = text.rfind("\n", 0, start - 1) + 1
        n = counter.count(text[prev:start])
        if used + n > budget:
            break
        used += n
        start = prev
    if start > 0:
        step = -(-start // _START_STEP_CHARS) * _START_STEP_CHARS  # round up
        if step < line_start:
            start = text.find("\n", step - 1) + 1  # first line start at or after `step`
    return text[start:offset]


def budget_suffix(text: str, offset: int, budget: int, counter: TokenCounter) -> str:
    """The rest of the cursor line and whole lines after it within `budget` tokens."""
    end = text.find("\n", offset)
    if end < 0:
        return text[offset:]
    used = counter.count(text[offset:end])
    while end < len(text) and used < budget:
        nxt = text.find("\n", end + 1)
        nxt = len(text) if nxt < 0 else nxt
        # Counted as "line\n", the same key the prefix uses, so caches are shared.
        n = counter.count(text[end + 1 : nxt + 1])
        if used + n > budget:
            break
        used += n
        end = nxt
    return text[offset:end]


def render_head(document: Document, snippets: Iterable[Snippet]) -> str:
    mark = comment_prefix(document.language_id)
    parts = []
    for snippet in snippets:
        body = "\n".join(f"{mark} {line}" if line else mark for line in snippet.text.split("\n"))
        parts.append(f"{mark} Compare this snippet from {snippet.path}:\n{body}\n")
    parts.append(f"{mark} Path: {document.path}\n")
    return "".join(parts)


class ContextBuilder:
    def __init__(
        self,
        *,
        prefix_tokens: int,
        suffix_tokens: int,
        snippet_tokens: int,
        snippet_time_limit_s: float,
        snippets: SnippetIndex,
    ) -> None:
        self.prefix_tokens = prefix_tokens
        self.suffix_tokens = suffix_tokens
        self.snippet_tokens = snippet_tokens
        self.snippet_time_limit_s = snippet_time_limit_s
        self.snippets = snippets

    def build(
        self,
        request: CompletionRequest,
        counter: TokenCounter,
        other_documents: Iterable[Document],
    ) -> PromptContext:
        doc, offset = request.document, request.offset
        prefix = budget_prefix(doc.text, offset, self.prefix_tokens, counter)
        suffix = budget_suffix(doc.text, offset, self.suffix_tokens, counter)
        # The query leaves out the cursor line: it changes on every keystroke.
        line_start = doc.text.rfind("\n", 0, offset) + 1
        query_start = line_start
        for _ in range(_QUERY_LINES):
            if query_start == 0:
                break
            query_start = doc.text.rfind("\n", 0, query_start - 1) + 1
        found = self.snippets.best(
            doc.text[query_start:line_start],
            other_documents,
            exclude_uri=doc.uri,
            language_id=doc.language_id,
            max_chars=self.snippet_tokens * 3,
            time_limit_s=self.snippet_time_limit_s,
        )
        chosen: list[Snippet] = []
        used = 0
        for snippet in found:
            n = counter.count(snippet.text)
            if used + n <= self.snippet_tokens:
                chosen.append(snippet)
                used += n
        return PromptContext(
            head=render_head(doc, chosen), prefix=prefix, suffix=suffix, snippets=tuple(chosen)
        )
