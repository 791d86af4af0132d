"""The completion request, where reading stops and the suggestion, shared by live use and replay."""

from __future__ import annotations

import pytest

from inference.client import CompletionRequest
from inference.fim import CODELLAMA, QWEN, STARCODER, FimTemplate
from inference.tokens import CharEstimateCounter
from server.completion import model_call
from server.completion.backend import ModelInfo
from server.completion.types import Mode
from server.settings import CompletionSettings, InferenceSettings
from server.syntax import Syntax
from tests.unit.cursor import split_cursor

COMPLETION = CompletionSettings(max_tokens_single_line=32, max_tokens_multi_line=200)
INFERENCE = InferenceSettings(temperature=0.1, extra_body={"top_p": 0.9})


def _request(template: FimTemplate, mode: Mode) -> CompletionRequest:
    info = ModelInfo(name="coder", template=template, counter=CharEstimateCounter())
    return model_call.model_request(
        info, "PROMPT", mode, completion=COMPLETION, inference=INFERENCE
    )


@pytest.mark.parametrize(
    ("template", "mode", "stop", "max_tokens"),
    [
        # At most 4 stop strings (vLLM's limit): the mode's own first.
        (QWEN, Mode.SINGLE_LINE, ["\n", "<|endoftext|>", "<|fim_pad|>", "<|file_sep|>"], 32),
        (QWEN, Mode.MULTI_LINE, ["\n\n\n", "<|endoftext|>", "<|fim_pad|>", "<|file_sep|>"], 200),
        (CODELLAMA, Mode.SINGLE_LINE, ["\n", "<EOT>", "</s>"], 32),
        (
            STARCODER,
            Mode.MULTI_LINE,
            ["\n\n\n", "<|endoftext|>", "<file_sep>", "<fim_prefix>"],
            200,
        ),
    ],
)
def test_model_request(template: FimTemplate, mode: Mode, stop: list[str], max_tokens: int) -> None:
    request = _request(template, mode)
    assert request.body() == {
        "top_p": 0.9,
        "model": "coder",
        "prompt": "PROMPT",
        "max_tokens": max_tokens,
        "stop": stop,
        "temperature": 0.1,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    # The template's end tokens the server was not asked to apply are cut here.
    assert set(request.stop_all) == set(model_call.end_strings(mode, template))


def test_an_answer_is_cut_at_the_template_end_tokens_the_server_did_not_apply() -> None:
    request = _request(QWEN, Mode.SINGLE_LINE)
    assert "<|im_start|>" not in request.stop
    around = model_call.surroundings("x = ", 4, "python")
    text = model_call.suggestion(
        "1<|im_start|>user", request.stop_all, mode=Mode.SINGLE_LINE, around=around, syntax=Syntax()
    )
    assert text == "1"


@pytest.mark.parametrize(
    ("source", "indent"),
    [
        ("def f():\n    |", 0),
        ("class A:\n    def f(self):\n\n        |", 4),
        ("|", 0),
        ("if x:\n\tif y:\n\t\t|", 1),
    ],
)
def test_header_indent(source: str, indent: int) -> None:
    text, offset = split_cursor(source)
    assert model_call.header_indent(text, offset) == indent


@pytest.mark.parametrize(
    ("raw", "mode", "done"),
    [
        ("return x", Mode.SINGLE_LINE, False),
        ("return x\n", Mode.SINGLE_LINE, True),
        ("x = 1\n    y = 2", Mode.MULTI_LINE, False),
        ("x = 1\n    y = 2\nprint(y)", Mode.MULTI_LINE, True),  # back at the header's level
    ],
)
def test_answer_complete(raw: str, mode: Mode, done: bool) -> None:
    text, offset = split_cursor("def f():\n    |")
    around = model_call.surroundings(text, offset, "python")
    assert model_call.answer_complete(raw, mode, around) is done
