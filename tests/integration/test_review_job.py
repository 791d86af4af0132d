"""The AI review job against the scripted model over HTTP, as a worker runs it.

The model's *answers* are scripted; the request, the stream, the retries, the
checks on the findings and the cancellation are the real ones.
"""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

import pytest

from inference.errors import ModelUnavailable
from server.diagnostics.jobs import review_document
from server.diagnostics.review import SCHEMA, AnswerInvalid
from server.jobs.execution import JobContext, execute
from tests.support.scripted_model import Reply, ScriptedModel

DOCUMENT = """\
import subprocess


def mean(values):
    total = 0
    for v in values:
        total += v
    return total / len(values)


def run(command):
    return subprocess.run(command, shell=True)
"""
JOB = "server.diagnostics.jobs.review_document"


def finding(start: int, end: int, fix: str | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "line_start": start,
        "line_end": end,
        "severity": "warning",
        "category": "bug",
        "message": "fails with ZeroDivisionError on an empty list",
        "fix": fix,
        **fields,
    }


def answer(*findings: dict[str, Any]) -> str:
    return json.dumps({"findings": list(findings)})


def job_args(model: ScriptedModel | str, **overrides: Any) -> dict[str, Any]:
    url = model if isinstance(model, str) else model.url
    args: dict[str, Any] = {
        "endpoint": {"url": url, "model": None, "api_key": None},
        "options": {"max_tokens": 512, "temperature": 0.1, "max_chars": 8000},
        "language_id": "python",
        "path": "stats.py",
        "document": DOCUMENT,
        "regions": [[4, 8]],
    }
    return {**args, **overrides}


def test_a_valid_review_comes_back_with_its_findings(scripted_model: ScriptedModel) -> None:
    fix = "    return total / len(values) if values else 0.0"
    scripted_model.chat_reply_with(answer(finding(8, 8, fix)))
    result = review_document(**job_args(scripted_model))
    assert result["attempts"] == 1
    assert result["model"] == "scripted-coder"
    (only,) = result["findings"]
    assert (only["line_start"], only["line_end"], only["category"]) == (8, 8, "bug")
    assert only["fix"] == fix + "\n"  # whole lines, with their line ending
    json.dumps(result)  # a job result crosses Redis as JSON


def test_the_request_asks_for_the_schema_and_shows_the_numbered_file(
    scripted_model: ScriptedModel,
) -> None:
    scripted_model.chat_reply_with(answer())
    review_document(**job_args(scripted_model))
    (body,) = scripted_model.chat_requests
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "zi_review", "schema": SCHEMA, "strict": True},
    }
    assert (body["max_tokens"], body["temperature"], body["model"]) == (512, 0.1, "scripted-coder")
    user = body["messages"][-1]["content"]
    assert " 8|     return total / len(values)\n" in user
    assert "Review only the changed lines: 4-8." in user


def test_an_unreadable_answer_is_asked_again_once(scripted_model: ScriptedModel) -> None:
    scripted_model.queue_chat("Looks good to me!")
    scripted_model.chat_reply_with(answer(finding(5, 5)))
    result = review_document(**job_args(scripted_model))
    assert result["attempts"] == 2
    assert [f["line_start"] for f in result["findings"]] == [5]
    first, second = scripted_model.chat_requests
    assert first == second


def test_two_unreadable_answers_fail_the_job(scripted_model: ScriptedModel) -> None:
    scripted_model.chat_reply_with('{"findings": [{"line_start": 5')
    with pytest.raises(AnswerInvalid, match="not valid JSON twice: not JSON"):
        review_document(**job_args(scripted_model))
    assert len(scripted_model.chat_requests) == 2


def test_an_answer_cut_at_max_tokens_counts_as_unreadable(scripted_model: ScriptedModel) -> None:
    scripted_model.chat_reply_with(answer(finding(5, 5), finding(6, 6), finding(7, 7)))
    args = job_args(scripted_model, options={"max_tokens": 8, "max_chars": 8000})
    with pytest.raises(AnswerInvalid, match="cut at 8 tokens"):
        review_document(**args)
    assert len(scripted_model.chat_requests) == 2


def test_the_failure_reaches_the_runner_as_a_failed_job(scripted_model: ScriptedModel) -> None:
    scripted_model.chat_reply_with("I cannot review this file.")
    outcome = execute(JOB, job_args(scripted_model), JobContext(on_progress=lambda _: None))
    assert outcome["ok"] is False and outcome["kind"] == "error"
    assert "AnswerInvalid: the model's review was not valid JSON twice" in outcome["error"]


def test_findings_outside_the_changed_lines_are_dropped(scripted_model: ScriptedModel) -> None:
    shell = finding(12, 12, category="security", message="shell=True runs a shell")
    before = finding(1, 1, category="style", message="unused import")
    across = finding(2, 5, message="spans into the change")
    past_end = finding(8, 50, message="runs off the end")
    scripted_model.chat_reply_with(answer(shell, finding(6, 7), before, across, past_end))
    result = review_document(**job_args(scripted_model))
    assert [(f["line_start"], f["line_end"]) for f in result["findings"]] == [
        (6, 7),
        (2, 5),
        (8, 12),  # clamped to the last line
    ]


def test_no_regions_reviews_the_whole_file(scripted_model: ScriptedModel) -> None:
    shell = finding(12, 12, category="security", message="shell=True runs a shell")
    scripted_model.chat_reply_with(answer(shell))
    result = review_document(**job_args(scripted_model, regions=[]))
    assert [f["category"] for f in result["findings"]] == ["security"]
    assert "Review the whole file." in scripted_model.chat_requests[0]["messages"][-1]["content"]


def test_a_fix_that_breaks_the_file_is_removed_but_the_finding_stays(
    scripted_model: ScriptedModel,
) -> None:
    broken = finding(8, 8, "    return total / (len(values) if values else 1")
    scripted_model.chat_reply_with(answer(broken))
    (only,) = review_document(**job_args(scripted_model))["findings"]
    assert only["fix"] is None
    assert only["message"] == "fails with ZeroDivisionError on an empty list"


@pytest.mark.parametrize(
    "fix",
    [
        pytest.param("if not values:\n    return 0.0\nreturn total / len(values)", id="dedented"),
        pytest.param(
            "```python\n    if not values:\n        return 0.0\n"
            "    return total / len(values)\n```",
            id="fenced",
        ),
        pytest.param(
            "8|     if not values:\n8|         return 0.0\n8|     return total / len(values)",
            id="line-numbers-copied",
        ),
    ],
)
def test_a_sloppy_fix_is_made_into_whole_indented_lines(
    scripted_model: ScriptedModel, fix: str
) -> None:
    scripted_model.chat_reply_with(answer(finding(8, 8, fix)))
    (only,) = review_document(**job_args(scripted_model))["findings"]
    assert only["fix"] == (
        "    if not values:\n        return 0.0\n    return total / len(values)\n"
    )


def test_a_fix_that_changes_nothing_is_no_fix(scripted_model: ScriptedModel) -> None:
    scripted_model.chat_reply_with(answer(finding(8, 8, "    return total / len(values)")))
    (only,) = review_document(**job_args(scripted_model))["findings"]
    assert only["fix"] is None


def test_an_empty_fix_deletes_the_lines(scripted_model: ScriptedModel) -> None:
    unused = finding(5, 7, "", category="style", message="total is computed twice")
    scripted_model.chat_reply_with(answer(unused))
    (only,) = review_document(**job_args(scripted_model, language_id="plaintext"))["findings"]
    assert only["fix"] == ""


def test_crlf_documents_get_crlf_fixes(scripted_model: ScriptedModel) -> None:
    document = DOCUMENT.replace("\n", "\r\n")
    scripted_model.chat_reply_with(answer(finding(7, 7, "        total = total + v")))
    (only,) = review_document(**job_args(scripted_model, document=document))["findings"]
    assert only["fix"] == "        total = total + v\r\n"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_model_that_is_down_raises_the_inference_error() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    with pytest.raises(ModelUnavailable):
        review_document(**job_args(url))


def test_cancelling_the_job_stops_the_generation(scripted_model: ScriptedModel) -> None:
    scripted_model.chat_reply_with(Reply(hang=True))
    context = JobContext(on_progress=lambda _: None)
    outcome: list[dict[str, Any]] = []
    worker = threading.Thread(
        target=lambda: outcome.append(execute(JOB, job_args(scripted_model), context))
    )
    worker.start()
    scripted_model.wait_for_chat_requests(1)
    context.cancelled.set()
    worker.join(timeout=10)
    [result] = outcome
    [call] = result.pop("model_calls")  # the cancelled call goes back for the history
    assert result == {"ok": False, "kind": "cancelled", "error": "cancelled"}
    assert call["error"] == "cancelled" and call["response"] == ""
    scripted_model.wait_for_cancelled(1)


def test_progress_is_reported(scripted_model: ScriptedModel) -> None:
    scripted_model.chat_reply_with(answer())
    progress: list[dict[str, Any]] = []
    outcome = execute(JOB, job_args(scripted_model), JobContext(on_progress=progress.append))
    [call] = outcome.pop("model_calls")
    assert outcome == {
        "ok": True,
        "value": {"findings": [], "attempts": 1, "model": "scripted-coder"},
    }
    assert call["model"] == "scripted-coder" and call["finish_reason"] == "stop"
    assert "response_format" in call["params"] and "messages" not in call["params"]
    assert progress[0]["message"] == "asking the model for a review"
    assert progress[-1]["percentage"] == 90
