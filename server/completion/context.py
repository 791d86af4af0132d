"""Step 3, context: what the model sees around the cursor, within token budgets.

Prefix and suffix are budgeted separately in the served model's tokens and cut at
line boundaries. The prompt is ordered stable-first (file path, snippets from
other documents, then code), and the prefix's first line moves in steps of
``_START_STEP_CHARS`` characters, so while a user types, consecutive prompts share a
long head and vLLM's automatic prefix caching keeps hitting.

When the served model's context window is known, :meth:`ContextBuilder.build` gets
the tokens the context may use (``ModelInfo.prompt_limit``: the window less
``max_tokens`` and the template's own tokens) and scales the three budgets down to
fit, keeping their ratios, with a safety margin for estimated counts. A server
that rejects the prompt would cost the user every completion, so under such a
limit even a very long cursor line is cut.

Nothing secret leaves in a prompt: prefix and suffix are redacted as one text (a
secret the cursor cuts is found whole; ``server.redact.redact_pair``), snippets are
redacted when their document is indexed, and documents the context rules exclude
(``.env``, keys, .gitignored files: ``server.context.ignore``) are never snippets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from inference.tokens import TokenCounter
from server.completion.snippets import Snippet, SnippetIndex
from server.completion.types import CompletionRequest, Document
from server.context.ignore import ContextRules, rules_for
from server.redact import redact_pair

_START_STEP_CHARS = 512
_QUERY_LINES = 12
# Share of a hard limit kept free: per-line counts can miss merges across lines
# (exact counters), and estimates can be off by more.
_MARGIN_EXACT = 0.02
_MARGIN_ESTIMATED = 0.10

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


def budget_prefix(
    text: str, offset: int, budget: int, counter: TokenCounter, *, strict: bool = False
) -> str:
    """Whole lines before the cursor line, back as far as `budget` tokens allow.

    The first kept line is the first line start at or after a multiple of
    ``_START_STEP_CHARS``: characters typed after it do not move it, so the prompt's
    head stays byte-identical while the user types (prefix-cache friendly). The
    cursor line's start always comes along, unless `strict` and it alone is over
    `budget`: then only its end is kept.
    """
    line_start = text.rfind("\n", 0, offset) + 1
    used = counter.count(text[line_start:offset])
    if strict and used > budget:
        return _keep_end(text[line_start:offset], budget, counter)
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


def budget_suffix(
    text: str, offset: int, budget: int, counter: TokenCounter, *, strict: bool = False
) -> str:
    """The rest of the cursor line and whole lines after it within `budget` tokens.

    With `strict`, a rest of the line that alone is over `budget` is cut to fit.
    """
    end = text.find("\n", offset)
    if end < 0:
        if not strict:
            return text[offset:]
        end = len(text)
    used = counter.count(text[offset:end])
    if strict and used > budget:
        return _keep_start(text[offset:end], budget, counter)
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


def _keep_end(line: str, budget: int, counter: TokenCounter) -> str:
    """The longest end of `line` within `budget` tokens (binary search: a few counts)."""
    n = _longest(len(line), budget, lambda k: counter.count(line[len(line) - k :]))
    return line[len(line) - n :] if n else ""


def _keep_start(line: str, budget: int, counter: TokenCounter) -> str:
    """The longest start of `line` within `budget` tokens (binary search: a few counts)."""
    return line[: _longest(len(line), budget, lambda k: counter.count(line[:k]))]


def _longest(length: int, budget: int, cost: Callable[[int], int]) -> int:
    # Code averages under 4 characters a token: searching up to 4 per token of budget
    # keeps the search short and loses little. `cost` grows with its argument.
    lo, hi = 0, min(length, max(budget, 0) * 4)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if cost(mid) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def fit_budgets(prefix: int, suffix: int, snippets: int, available: int) -> tuple[int, int, int]:
    """The three budgets scaled down, in proportion, to sum to at most `available`."""
    total = prefix + suffix + snippets
    if total <= available:
        return prefix, suffix, snippets
    if available <= 0:
        return 0, 0, 0
    scale = available / total
    return int(prefix * scale), int(suffix * scale), int(snippets * scale)


def usable_tokens(limit: int, exact: bool) -> int:
    """`limit` less the safety margin for the counter's accuracy."""
    margin = _MARGIN_EXACT if exact else _MARGIN_ESTIMATED
    return limit - int(limit * margin + 0.999)


def _redacted(
    prefix: str, suffix: str, budgets: tuple[int, int] | None, counter: TokenCounter
) -> tuple[str, str]:
    """Prefix and suffix without secrets; under a hard limit (`budgets`), cut again if a
    placeholder made them longer than a short secret was (`"p4ss"` is 4 characters)."""
    clean_prefix, clean_suffix = redact_pair(prefix, suffix)
    if budgets is None or (clean_prefix is prefix and clean_suffix is suffix):
        return clean_prefix, clean_suffix
    return _cut_start(clean_prefix, budgets[0], counter), _cut_end(
        clean_suffix, budgets[1], counter
    )


def _cut_start(text: str, budget: int, counter: TokenCounter) -> str:
    """Whole lines off the start of `text` until it fits `budget`; then, if its last line
    alone is over, the end of that line."""
    used, start = counter.count(text), 0
    while used > budget:
        end = text.find("\n", start)
        if end < 0:
            return _keep_end(text[start:], budget, counter)
        used -= counter.count(text[start : end + 1])
        start = end + 1
    return text[start:]


def _cut_end(text: str, budget: int, counter: TokenCounter) -> str:
    """Whole lines off the end of `text` until it fits `budget`; then, if its first line
    alone is over, the start of that line."""
    used, end = counter.count(text), len(text)
    while used > budget:
        start = text.rfind("\n", 0, end)
        if start < 0:
            return _keep_start(text[:end], budget, counter)
        used -= counter.count(text[start:end])
        end = start
    return text[:end]


def _snippet_block(mark: str, snippet: Snippet) -> str:
    body = "\n".join(f"{mark} {line}" if line else mark for line in snippet.text.split("\n"))
    return f"{mark} Compare this snippet from {snippet.path}:\n{body}\n"


def _path_line(mark: str, document: Document) -> str:
    return f"{mark} Path: {document.path}\n"


def render_head(document: Document, snippets: Iterable[Snippet]) -> str:
    mark = comment_prefix(document.language_id)
    parts = [_snippet_block(mark, snippet) for snippet in snippets]
    parts.append(_path_line(mark, document))
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
        rules: ContextRules | None = None,
    ) -> None:
        self.prefix_tokens = prefix_tokens
        self.suffix_tokens = suffix_tokens
        self.snippet_tokens = snippet_tokens
        self.snippet_time_limit_s = snippet_time_limit_s
        self.snippets = snippets
        self.rules = rules if rules is not None else rules_for()

    def excluded(self, document: Document) -> bool:
        """Whether `document` is kept out of AI features: no completion in it at all."""
        return self.rules.denies_uri(document.uri)

    def build(
        self,
        request: CompletionRequest,
        counter: TokenCounter,
        other_documents: Iterable[Document],
        *,
        max_prompt_tokens: int | None = None,
    ) -> PromptContext:
        """The context within the budgets, and within `max_prompt_tokens` when given
        (see ``ModelInfo.prompt_limit``): then the whole head, prefix and suffix fit."""
        doc, offset = request.document, request.offset
        mark = comment_prefix(doc.language_id)
        path_line = _path_line(mark, doc)
        prefix_tokens, suffix_tokens, snippet_tokens = (
            self.prefix_tokens,
            self.suffix_tokens,
            self.snippet_tokens,
        )
        strict = max_prompt_tokens is not None
        if max_prompt_tokens is not None:
            available = usable_tokens(max_prompt_tokens, counter.exact)
            available -= counter.count(path_line)
            if available < 0:
                path_line = ""  # a window this small has no room for the file's path
            prefix_tokens, suffix_tokens, snippet_tokens = fit_budgets(
                prefix_tokens, suffix_tokens, snippet_tokens, available
            )
        prefix, suffix = _redacted(
            budget_prefix(doc.text, offset, prefix_tokens, counter, strict=strict),
            budget_suffix(doc.text, offset, suffix_tokens, counter, strict=strict),
            (prefix_tokens, suffix_tokens) if strict else None,
            counter,
        )
        # The query leaves out the cursor line: it changes on every keystroke.
        line_start = doc.text.rfind("\n", 0, offset) + 1
        query_start = line_start
        for _ in range(_QUERY_LINES):
            if query_start == 0:
                break
            query_start = doc.text.rfind("\n", 0, query_start - 1) + 1
        if snippet_tokens <= 0:
            return PromptContext(head=path_line, prefix=prefix, suffix=suffix, snippets=())
        found = self.snippets.best(
            doc.text[query_start:line_start],
            (other for other in other_documents if not self.rules.excludes_uri(other.uri)),
            exclude_uri=doc.uri,
            language_id=doc.language_id,
            max_chars=snippet_tokens * 3,
            time_limit_s=self.snippet_time_limit_s,
        )
        chosen: list[Snippet] = []
        blocks: list[str] = []
        used = 0
        for snippet in found:
            # Counted as rendered: the comment marks and the header line cost tokens too.
            block = _snippet_block(mark, snippet)
            n = counter.count(block)
            if used + n <= snippet_tokens:
                chosen.append(snippet)
                blocks.append(block)
                used += n
        blocks.append(path_line)
        return PromptContext(
            head="".join(blocks), prefix=prefix, suffix=suffix, snippets=tuple(chosen)
        )
