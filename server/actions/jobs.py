"""The code actions' job functions: what runs on an RQ worker (or in process).

Each takes JSON arguments only (the document snapshot, the region as 0-based
line numbers, the chat endpoint and options) and returns JSON: a line region
with its replacement, a test file, or Markdown. They are plain synchronous
functions; the model call streams, checks for cancellation between chunks and
closes the stream when the job is cancelled, which makes vLLM stop generating.
A worker needs no configuration: everything it needs travels in the arguments,
reference data from MCP servers included (`context`, gathered by the language
server; absent from jobs queued by an older one).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from server.actions import answer, docstrings, prompts, pytests
from server.actions.edits import split_lines
from server.actions.sandbox import SandboxLimits, TestRun, run_pytest
from server.context.prompt import DEFAULT_MAX_CHARS, context_section
from server.context.types import ContextItem
from server.jobs.chat import chat
from server.jobs.execution import report_progress
from server.jobs.spec import job_function
from server.redact import redact

log = logging.getLogger(__name__)


def _ask(endpoint: dict[str, Any], options: dict[str, Any], messages: prompts.Messages) -> str:
    """The chat model's answer text; raises JobCancelled once the job is cancelled.

    The document arrives redacted (the server restores its secrets in the answer, see
    ``ActionService._run``); whatever else the prompt quotes (a problem, MCP context)
    is redacted here, for good."""
    sent = [{**message, "content": redact(message["content"])} for message in messages]
    reply = chat(endpoint, options, sent)
    if reply.finish_reason == "length":
        raise answer.AnswerRejected(
            f"the model's answer was cut at {int(options.get('max_tokens', 1024))} tokens "
            "(raise zi.actions.max_tokens, or select less)"
        )
    return reply.text


def _cap(document: str, options: dict[str, Any]) -> str:
    limit = int(options.get("max_document_chars", 24_000))
    return document if len(document) <= limit else document[:limit] + "\n…(cut)\n"


def _reference(context: list[dict[str, str]] | None, options: dict[str, Any]) -> str:
    """The prompt section for the job's MCP context ("" for none), capped as configured."""
    items = [ContextItem.from_job_arg(item) for item in context or ()]
    return context_section(items, int(options.get("max_context_chars", DEFAULT_MAX_CHARS)))


def _indent_of(lines: list[str]) -> str:
    for line in lines:
        if line.strip():
            return line[: len(line) - len(line.lstrip())]
    return ""


def _replacement(document: str, start: int, end: int, code: str, language_id: str) -> str:
    """`code` as the new text of lines [start, end): indented like them, parse-checked."""
    lines = split_lines(document)
    old = lines[start:end]
    newline = "\r\n" if old and old[0].endswith("\r\n") else "\n"
    new_text = answer.reindent(code, _indent_of(old), newline=newline)
    if old and old[-1].endswith(("\n", "\r")) and not new_text.endswith(("\n", "\r")):
        new_text += newline
    _check_edited(document, start, end, new_text, language_id)
    return new_text


def _check_edited(document: str, start: int, end: int, new_text: str, language_id: str) -> None:
    """AnswerRejected if lines [start, end) replaced by `new_text` add syntax errors."""
    from server.syntax import Syntax

    lines = split_lines(document)
    edited = "".join(lines[:start]) + new_text + "".join(lines[end:])
    answer.check_parses(edited, language_id, syntax=Syntax(), before=document)


def _region_job(
    messages: prompts.Messages,
    *,
    endpoint: dict[str, Any],
    options: dict[str, Any],
    document: str,
    start: int,
    end: int,
    language_id: str,
) -> dict[str, Any]:
    report_progress(message="asking the model", percentage=10)
    reply = _ask(endpoint, options, messages)
    report_progress(message="checking the answer", percentage=90)
    code = answer.extract_code_block(reply, language_id)
    new_text = _replacement(document, start, end, code, language_id)
    return {"start": start, "end": end, "new_text": new_text}


@job_function
def fix_problem(
    *,
    endpoint: dict[str, Any],
    options: dict[str, Any],
    language_id: str,
    path: str,
    document: str,
    start: int,
    end: int,
    problem: str,
    context: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Rewrite lines [start, end) so the reported problem is gone."""
    messages = prompts.fix(
        language=language_id,
        path=path,
        document=_cap(document, options),
        start=start,
        end=end,
        problem=problem,
        context=_reference(context, options),
    )
    return _region_job(
        messages,
        endpoint=endpoint,
        options=options,
        document=document,
        start=start,
        end=end,
        language_id=language_id,
    )


@job_function
def improve_region(
    *,
    endpoint: dict[str, Any],
    options: dict[str, Any],
    language_id: str,
    path: str,
    document: str,
    start: int,
    end: int,
    context: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Rewrite lines [start, end) for readability and speed, keeping behaviour."""
    region = "".join(split_lines(document)[start:end])
    messages = prompts.improve(
        language=language_id,
        path=path,
        document=_cap(document, options),
        region=region,
        context=_reference(context, options),
    )
    return _region_job(
        messages,
        endpoint=endpoint,
        options=options,
        document=document,
        start=start,
        end=end,
        language_id=language_id,
    )


@job_function
def write_docstring(
    *,
    endpoint: dict[str, Any],
    options: dict[str, Any],
    language_id: str,
    path: str,
    document: str,
    start: int,
    end: int,
    context: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The definition on lines [start, end) with a docstring from the model."""
    region = "".join(split_lines(document)[start:end])
    report_progress(message="asking the model", percentage=10)
    messages = prompts.docstring(
        language=language_id, path=path, source=region, context=_reference(context, options)
    )
    reply = _ask(endpoint, options, messages)
    report_progress(message="checking the answer", percentage=90)
    text = docstrings.docstring_of(answer.extract_code_block(reply, language_id))
    new_text = docstrings.insert_docstring(region, text)
    _check_edited(document, start, end, new_text, language_id)
    return {"start": start, "end": end, "new_text": new_text}


@job_function
def explain_region(
    *,
    endpoint: dict[str, Any],
    options: dict[str, Any],
    language_id: str,
    path: str,
    document: str,
    start: int,
    end: int,
    context: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """A Markdown explanation of lines [start, end)."""
    region = "".join(split_lines(document)[start:end])
    report_progress(message="asking the model", percentage=10)
    messages = prompts.explain(
        language=language_id,
        path=path,
        document=_cap(document, options),
        region=region,
        context=_reference(context, options),
    )
    return {"markdown": _ask(endpoint, options, messages).strip()}


@job_function
def generate_tests(
    *,
    endpoint: dict[str, Any],
    options: dict[str, Any],
    module: str,
    module_path: str,
    package_inits: list[str],
    document: str,
    function: str,
    start: int,
    end: int,
    test_path: str,
    existing_tests: str | None,
    context: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """pytest tests for one function, kept only if they pass against the current code.

    A generator writes tests, the sandbox runs them, and a reviewer gets the
    failures to fix, for up to ``rounds`` rounds; tests still failing after the
    last round are dropped, and the survivors are run once more before they are
    offered.
    """
    rounds = int(options.get("test_rounds", 3))
    limits = SandboxLimits(
        cpu_s=int(options.get("sandbox_cpu_s", 10)),
        memory_mb=int(options.get("sandbox_memory_mb", 1024)),
        wall_s=float(options.get("sandbox_wall_s", 30.0)),
    )
    source = "".join(split_lines(document)[start:end])
    files = {module_path: document, **{init: "" for init in package_inits}}

    def run(tests: str) -> TestRun:
        return run_pytest(
            {**files, test_path: tests}, test_path, limits=limits, python=sys.executable
        )

    messages = prompts.tests(
        module=module,
        function=function,
        source=source,
        module_source=_cap(document, options),
        context=_reference(context, options),
    )
    tests = ""
    result: TestRun | None = None
    for round_no in range(1, rounds + 1):
        step = f"round {round_no}/{rounds}"
        report_progress(message=f"{step}: writing tests", percentage=_pct(round_no, rounds, 0))
        try:
            tests = answer.extract_code_block(_ask(endpoint, options, messages), "python")
        except answer.AnswerRejected as exc:
            log.info("tests %s: %s", step, exc)
            continue
        report_progress(message=f"{step}: running tests", percentage=_pct(round_no, rounds, 1))
        result = run(tests)
        if result.all_passed:
            break
        messages = prompts.repair_tests(
            module=module, function=function, source=source, tests=tests, failures=_failures(result)
        )
    if result is None:
        raise answer.AnswerRejected(f"the model wrote no usable tests in {rounds} rounds")
    if not result.all_passed:
        if result.passed:  # only then did the tests parse and run
            tests = pytests.keep_tests(tests, result.passed)
            result = run(tests)
        if not result.all_passed:
            raise answer.AnswerRejected(
                f"no generated test passed against the current code after {rounds} rounds: "
                f"{_failures(result)[:300]}"
            )
    try:
        text = pytests.merge_tests(existing_tests, tests) if existing_tests else tests
    except SyntaxError as exc:
        message = f"{test_path} does not parse, so it cannot be extended: {exc}"
        raise answer.AnswerRejected(message) from None
    text = text if text.endswith("\n") else text + "\n"  # a file ends with a newline
    return {
        "test_path": test_path,
        "text": text,
        "passed": list(result.passed),
        "isolation": result.isolation,
    }


def _pct(round_no: int, rounds: int, half: int) -> int:
    return min(95, int(100 * (2 * (round_no - 1) + half) / (2 * rounds)))


def _failures(run: TestRun) -> str:
    if run.error:
        return run.error
    return "\n\n".join(f"{name}:\n{text}" for name, text in run.failed.items()) or "no test ran"
