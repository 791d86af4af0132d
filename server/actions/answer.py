"""Read code out of a chat model's answer, and refuse answers that would break the file.

The answer is untrusted text from a small model. Where the intent is clear the
reader is tolerant: prose around the block, ``` or ~~~ fences, a missing or
differently spelled language tag, a missing closing fence (the answer was cut or
the model forgot), CRLF, a reasoning model's leading ``<think>`` section. Where it
is not, it refuses with an ``AnswerRejected`` whose message is shown to the user
as is, so it says what was wrong with the answer, not what the parser saw.
"""

from __future__ import annotations

import ast
import re
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from server.context.prompt import restore_special

if TYPE_CHECKING:
    from server.syntax import Syntax

_T = TypeVar("_T")


class AnswerRejected(ValueError):
    """The model's answer cannot be used; the message says why, for the user."""


# Tags a model writes for an LSP language id (the id itself always matches).
_TAGS = {
    "python": {"py", "python3", "py3"},
    "javascript": {"js", "node", "mjs"},
    "javascriptreact": {"jsx", "javascript", "js"},
    "typescript": {"ts"},
    "typescriptreact": {"tsx", "typescript", "ts"},
    "shellscript": {"bash", "sh", "shell", "zsh"},
    "cpp": {"c++", "cc", "cxx", "hpp"},
    "csharp": {"cs", "c#"},
    "rust": {"rs"},
    "go": {"golang"},
    "ruby": {"rb"},
    "kotlin": {"kt"},
    "markdown": {"md"},
    "yaml": {"yml"},
}
_DIFF_TAGS = {"diff", "patch", "udiff"}

_NEWLINES = re.compile(r"\r\n|\r|\n")
_OPEN_FENCE = re.compile(r"(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>.*)")
_TAG = re.compile(r"[{.]*(?P<tag>[\w+#.-]*)")
_THINKING = re.compile(r"\A\s*<think>.*?(?:</think>|\Z)", re.DOTALL)
# Something prose does not have: an unfenced answer without any of these is words.
_CODE_CHARS = re.compile(r"[(){}\[\]=;:<>\"'`/*+&|^%$@\\]")

# Compiling user code can emit SyntaxWarnings (and, with -W error, raise them);
# catch_warnings changes process-wide state, so concurrent callers take turns.
_WARNINGS_LOCK = threading.Lock()


@dataclass(frozen=True)
class _Block:
    tag: str
    code: str


def extract_code_block(
    answer: str, language_id: str | None = None, *, syntax: Syntax | None = None
) -> str:
    """The code of the answer's code block, without fences, surrounding blank lines or CRs.

    Several blocks: the first non-empty one tagged for `language_id`, else the first
    untagged one, else the first. No fence at all: the whole answer, only when it is
    code rather than prose (it parses: ``ast`` for Python, tree-sitter via `syntax`
    for other languages; an unknown language cannot tell, so it is refused).
    Special tokens the prompt's fences broke (``fenced``) are put back.
    """
    text = _NEWLINES.sub("\n", _THINKING.sub("", answer, count=1))
    if not text.strip():
        raise AnswerRejected("the model's answer is empty")
    blocks = _fenced_blocks(text.split("\n"))
    if not blocks:
        code = _strip_blank_lines(text.split("\n"))
        if not _is_code(code, language_id, syntax):
            raise AnswerRejected("the model's answer has no code block")
        return restore_special(code)
    usable = [b for b in blocks if b.code.strip()]
    if not usable:
        raise AnswerRejected("the model's code block is empty")
    wanted = _tags_for(language_id) if language_id else set()
    chosen = next(
        (b for b in usable if b.tag in wanted),
        next((b for b in usable if not b.tag), usable[0]),
    )
    if chosen.tag in _DIFF_TAGS and language_id not in _DIFF_TAGS:
        raise AnswerRejected("the model answered with a diff instead of the code")
    return restore_special(chosen.code)


def reindent(code: str, indent: str, *, newline: str = "\n") -> str:
    """`code` with its common indentation replaced by `indent` on every non-blank line.

    Blank lines become empty; lines end with `newline`; a trailing line break is
    kept exactly when `code` has one.
    """
    lines = _NEWLINES.split(code)
    trailing = len(lines) > 1 and lines[-1] == ""
    if trailing:
        lines.pop()
    margins = [line[: len(line) - len(line.lstrip())] for line in lines if line.strip()]
    common = _common_prefix(margins)
    out = [indent + line[len(common) :] if line.strip() else "" for line in lines]
    return newline.join(out) + (newline if trailing else "")


def check_parses(new_document: str, language_id: str, *, syntax: Syntax, before: str) -> None:
    """Raise AnswerRejected when `new_document` has syntax errors `before` did not have.

    Python: the edited document must compile when the original did (this also
    catches a ``return`` or ``await`` moved where it is not allowed). Otherwise,
    and for other languages, the tree-sitter ERROR/MISSING node count must not
    grow. A language without a grammar is accepted: there is nothing to check with.
    """
    if language_id == "python" and _python_error(before) is None:
        problem = _python_error(new_document)
        if problem is not None:
            raise AnswerRejected(f"the model's code does not parse: {problem}")
        return
    errors_before = syntax.error_count(language_id, before)
    if errors_before is None:
        return
    errors_after = syntax.error_count(language_id, new_document) or 0
    added = errors_after - errors_before
    if added > 0:
        plural = "s" if added > 1 else ""
        raise AnswerRejected(f"the model's code adds {added} syntax error{plural}")


# -- fences -------------------------------------------------------------------------


def _fenced_blocks(lines: list[str]) -> list[_Block]:
    """Every fenced block, CommonMark-style, an unclosed last one running to the end."""
    blocks: list[_Block] = []
    i = 0
    while i < len(lines):
        opening = _OPEN_FENCE.fullmatch(lines[i])
        if opening is None or (opening["fence"][0] == "`" and "`" in opening["info"]):
            i += 1  # not a fence (``` inside a backtick info string is inline code)
            continue
        fence = opening["fence"]
        tag_match = _TAG.match(opening["info"].strip().lower())
        tag = tag_match["tag"] if tag_match else ""
        body: list[str] = []
        i += 1
        closed = False
        while i < len(lines):
            if _closes(lines[i], fence):
                closed = True
                break
            body.append(lines[i])
            i += 1
        i += 1
        if not closed:
            _drop_glued_fence(body, fence)
        width = len(opening["indent"])
        body = [_drop_margin(line, width) for line in body]
        blocks.append(_Block(tag, _strip_blank_lines(body)))
    return blocks


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return len(stripped) >= len(fence) and stripped == fence[0] * len(stripped)


def _drop_glued_fence(body: list[str], fence: str) -> None:
    """An unclosed block whose last line ends with the fence: ``return x```."""
    for index in range(len(body) - 1, -1, -1):
        line = body[index].rstrip()
        if not line:
            continue
        run = len(line) - len(line.rstrip(fence[0]))
        if run >= len(fence):
            body[index] = line[: len(line) - run]
        return


def _drop_margin(line: str, width: int) -> str:
    """A fence indented by `width` indents its content too (lists in Markdown)."""
    cut = 0
    while cut < width and cut < len(line) and line[cut] in " \t":
        cut += 1
    return line[cut:]


def _strip_blank_lines(lines: list[str]) -> str:
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return "\n".join(line.rstrip() for line in lines[start:end])


def _tags_for(language_id: str) -> set[str]:
    language = language_id.lower()
    return _TAGS.get(language, set()) | {language}


def _common_prefix(margins: list[str]) -> str:
    if not margins:
        return ""
    first, last = min(margins), max(margins)
    size = 0
    while size < len(first) and first[size] == last[size]:
        size += 1
    return first[:size]


# -- is it code? ----------------------------------------------------------------------


def _is_code(text: str, language_id: str | None, syntax: Syntax | None) -> bool:
    """Whether an unfenced answer is code: it parses and is more than a few words."""
    if language_id is None:
        return False
    if language_id == "python":
        try:
            tree = _quietly(lambda: ast.parse(_dedent(text)))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return False
        # "Sure" or "Yes, done" parse as expressions; a code answer is more than that.
        return not all(isinstance(s, ast.Expr) and _is_words(s.value) for s in tree.body)
    if not _CODE_CHARS.search(text):
        return False
    if syntax is None:
        from server.syntax import Syntax

        syntax = Syntax()
    return syntax.error_count(language_id, text) == 0


def _is_words(node: ast.expr) -> bool:
    if isinstance(node, ast.Tuple):
        return all(_is_words(e) for e in node.elts)
    return isinstance(node, ast.Name | ast.Constant)


def _dedent(text: str) -> str:
    return reindent(text, "")


def _python_error(source: str) -> str | None:
    """Why `source` does not compile ("invalid syntax (line 3)"), or None. Nothing runs."""
    try:
        _quietly(lambda: compile(source, "<edited>", "exec", dont_inherit=True))
    except SyntaxError as exc:
        where = f" (line {exc.lineno})" if exc.lineno else ""
        return f"{exc.msg}{where}"
    except ValueError as exc:  # null bytes (3.11)
        return str(exc)
    except (RecursionError, MemoryError):
        return "the code is nested too deeply to check"
    return None


def _quietly(parse: Callable[[], _T]) -> _T:
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return parse()
