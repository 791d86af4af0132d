"""Smoke test: the session's vLLM fixture really serves the tiny model.

Why: every other realmodel test relies on three properties checked here: the
model is listed under its served name, the FIM sentinels are single special
tokens (so prompts built by the server mean what they say), and streaming
completions arrive as SSE ``data:`` lines terminated by ``data: [DONE]``.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.support.tiny_model import SERVED_MODEL_NAME

FIM_PROMPT = "<|fim_prefix|>def add(a, b):\n    return <|fim_suffix|>\n<|fim_middle|>"


def _server_root(vllm_url: str) -> str:
    """vLLM serves /tokenize and /health at the root, not under /v1."""
    return vllm_url.removesuffix("/v1")


def test_models_lists_served_name(vllm_url: str) -> None:
    response = httpx.get(f"{vllm_url}/models", timeout=30.0)
    response.raise_for_status()
    ids = [model["id"] for model in response.json()["data"]]
    assert SERVED_MODEL_NAME in ids


@pytest.mark.parametrize("sentinel", ["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"])
def test_fim_sentinel_is_one_token(vllm_url: str, sentinel: str) -> None:
    response = httpx.post(
        f"{_server_root(vllm_url)}/tokenize",
        json={"model": SERVED_MODEL_NAME, "prompt": sentinel, "add_special_tokens": False},
        timeout=30.0,
    )
    response.raise_for_status()
    body = response.json()
    assert body["count"] == 1
    assert len(body["tokens"]) == 1


def test_streaming_fim_completion(vllm_url: str) -> None:
    request = {
        "model": SERVED_MODEL_NAME,
        "prompt": FIM_PROMPT,
        "stream": True,
        "max_tokens": 8,
        "min_tokens": 4,
        "temperature": 0.0,
        "stream_options": {"include_usage": True},
    }
    data_lines: list[str] = []
    with httpx.stream("POST", f"{vllm_url}/completions", json=request, timeout=60.0) as response:
        response.raise_for_status()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line:
                assert line.startswith("data: "), line
                data_lines.append(line.removeprefix("data: "))

    assert data_lines[-1] == "[DONE]"
    chunks: list[dict[str, Any]] = [json.loads(line) for line in data_lines[:-1]]
    choices = [choice for chunk in chunks for choice in chunk["choices"]]
    text = "".join(choice["text"] for choice in choices)
    assert text.strip()
    assert choices[-1]["finish_reason"] == "length"
    # With include_usage, a last chunk carries usage and no choices.
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == []
    assert 4 <= usage["completion_tokens"] <= 8
