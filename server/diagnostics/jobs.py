"""The AI review's job function: what runs on an RQ worker (or in process) after a save.

Like the code actions' jobs it takes JSON arguments only and returns JSON, and
its model call streams and stops when the job is cancelled (it shares their
chat call). The model is asked for JSON constrained to the review schema; an
answer that still cannot be read is asked for once more, then the job fails
with :class:`~server.diagnostics.review.AnswerInvalid` and the editor keeps the
static diagnostics. Findings are checked before they leave the job: outside the
changed lines they are dropped, and a fix that would break the file is removed.
Reference data from MCP servers (`context`, gathered by the language server) leads
the prompt, fenced as untrusted data; jobs queued without it review as before.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from server.actions import answer
from server.actions.edits import split_lines
from server.context.prompt import DEFAULT_MAX_CHARS, context_section
from server.context.types import ContextItem
from server.diagnostics import review
from server.diagnostics.review import AnswerInvalid, Finding
from server.jobs.chat import chat, model_for
from server.jobs.execution import report_progress
from server.jobs.spec import job_function
from server.redact import redact

log = logging.getLogger(__name__)

_NEWLINES = re.compile(r"\r\n|\r|\n")
_NUMBERED = re.compile(r"^[ \t]*\d+\| ?")  # a line copied from the listing with its number


@job_function
def review_document(
    *,
    endpoint: dict[str, Any],
    options: dict[str, Any],
    language_id: str,
    path: str,
    document: str,
    regions: list[list[int]],
    context: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Review `regions` (1-based inclusive line ranges; none: the whole file) of `document`.

    Returns ``{"findings": [Finding as a dict, ...], "attempts": 1 or 2, "model": name}``.
    A finding's ``fix``, when there is one, is the new text of whole lines
    ``line_start``..``line_end``: with their line endings, ending with one unless
    it replaces the document's last line that has none (a ``LineEdit.new_text``).
    """
    line_count = len(split_lines(document))
    spans = [(int(start), int(end)) for start, end in regions] or [(1, max(1, line_count))]
    model = model_for(endpoint)
    messages = review.review_messages(
        language_id=language_id,
        path=path,
        document=document,
        regions=spans,
        max_chars=int(options.get("max_chars", 24_000)),
        context=context_section(
            [ContextItem.from_job_arg(item) for item in context or ()],
            int(options.get("max_context_chars", DEFAULT_MAX_CHARS)),
        ),
    )
    # The document arrives redacted (the server restores its secrets in the fixes);
    # whatever else the prompt quotes (MCP context) is redacted here, for good.
    messages = [{**message, "content": redact(message["content"])} for message in messages]
    extra = {"response_format": review.response_format()}
    max_tokens = int(options.get("max_tokens", 1024))
    reason = ""
    for attempt in (1, 2):
        report_progress(message="asking the model for a review", percentage=10 + 40 * (attempt - 1))
        reply = chat({**endpoint, "model": model}, options, messages, extra=extra)
        try:
            if reply.finish_reason == "length":
                cut = reply.completion_tokens or max_tokens  # vLLM may lower max_tokens to fit
                raise AnswerInvalid(f"the answer was cut at {cut} tokens")
            parsed = review.parse_answer(reply.text)
            break
        except AnswerInvalid as exc:
            reason = str(exc)
            log.info("review of %s, attempt %d: unusable answer: %s", path, attempt, reason)
    else:
        raise AnswerInvalid(f"the model's review was not valid JSON twice: {reason}")
    report_progress(message="checking the findings", percentage=90)
    findings = _checked(parsed.findings, document, spans, language_id)
    return {
        "findings": [finding.model_dump() for finding in findings],
        "attempts": attempt,
        "model": model,
    }


def _checked(
    findings: list[Finding], document: str, spans: list[tuple[int, int]], language_id: str
) -> list[Finding]:
    """Findings on the changed lines, each once, with fixes that keep the file parsing."""
    from server.syntax import Syntax

    syntax = Syntax()
    lines = split_lines(document)
    kept: list[Finding] = []
    seen: set[tuple[int, int, str]] = set()
    for raw in findings:
        finding = review.clamp(raw, len(lines))
        if (
            finding is None
            or not finding.message.strip()
            or not any(
                finding.line_start <= end and start <= finding.line_end for start, end in spans
            )
        ):
            continue
        key = (finding.line_start, finding.line_end, finding.message.strip())
        if key in seen:
            continue
        seen.add(key)
        fix = fix_text(lines, finding)
        if fix is not None:
            first, last = finding.line_start - 1, finding.line_end
            edited = "".join(lines[:first]) + fix + "".join(lines[last:])
            try:
                answer.check_parses(edited, language_id, syntax=syntax, before=document)
            except answer.AnswerRejected as exc:
                log.info("review fix for lines %d-%d dropped: %s", first + 1, last, exc)
                fix = None
        kept.append(finding.model_copy(update={"fix": fix}))
    return kept


def fix_text(lines: list[str], finding: Finding) -> str | None:
    """The finding's fix as the new text of its whole lines, or None if it has no usable one.

    Small models wrap a fix in a code fence, copy the listing's line numbers or
    drop the indentation: all undone here. An empty fix deletes the lines; a fix
    that changes nothing, or one on a line the model saw cut, is no fix.
    """
    old = lines[finding.line_start - 1 : finding.line_end]
    if finding.fix is None or any(len(line.rstrip("\r\n")) > review.LINE_CAP for line in old):
        return None
    code = finding.fix
    if code.lstrip().startswith(("```", "~~~")):
        try:
            code = answer.extract_code_block(code)
        except answer.AnswerRejected:
            return None
    rows = _NEWLINES.split(code)
    if any(row.strip() for row in rows) and all(_NUMBERED.match(r) for r in rows if r.strip()):
        code = "\n".join(_NUMBERED.sub("", row, count=1) for row in rows)
    if not code.strip():
        return ""
    newline = "\r\n" if old[0].endswith("\r\n") else "\r" if old[0].endswith("\r") else "\n"
    margin = _common_margin([line for line in old if line.strip()])
    text = answer.reindent(code.strip("\r\n"), margin, newline=newline)
    if old[-1].endswith(("\n", "\r")):
        text += newline
    return None if text == "".join(old) else text


def _common_margin(lines: list[str]) -> str:
    """The leading whitespace all of `lines` share."""
    margins = [line[: len(line) - len(line.lstrip())] for line in lines]
    if not margins:
        return ""
    first, last = min(margins), max(margins)
    size = 0
    while size < len(first) and first[size] == last[size]:
        size += 1
    return first[:size]
