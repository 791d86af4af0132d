"""Smoke tests: the session's vLLM servers really serve the two tiny models.

Why: every other realmodel test relies on the properties checked here: each
model is listed under its served name, its FIM sentinels are single special
tokens while the other family's are not (so auto-detection has something to
tell apart), streaming completions arrive as SSE ``data:`` lines terminated by
``data: [DONE]``, and the Qwen model answers chat requests with its ChatML
template (the chat role uses it).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.realmodel.conftest import TinyServer
from tests.support.tiny_model import FAMILIES


@pytest.fixture(params=sorted(FAMILIES))
def server(request: pytest.FixtureRequest, tiny_servers: dict[str, TinyServer]) -> TinyServer:
    return tiny_servers[request.param]


def _server_root(url: str) -> str:
    """vLLM serves /tokenize and /health at the root, not under /v1."""
    return url.removesuffix("/v1")


def _count(server: TinyServer, text: str) -> int:
    response = httpx.post(
        f"{_server_root(server.url)}/tokenize",
        json={"model": server.name, "prompt": text, "add_special_tokens": False},
        timeout=30.0,
    )
    response.raise_for_status()
    body = response.json()
    assert body["count"] == len(body["tokens"])
    return int(body["count"])


def test_models_lists_served_name(server: TinyServer) -> None:
    response = httpx.get(f"{server.url}/models", timeout=30.0)
    response.raise_for_status()
    models = {model["id"]: model for model in response.json()["data"]}
    assert server.name in models
    # The backend finds the local tokenizer.json through `root`.
    assert models[server.name]["root"] == str(server.model_dir)


def test_fim_sentinels_are_single_tokens_of_one_family_only(server: TinyServer) -> None:
    family = server.family
    other = next(f for f in FAMILIES.values() if f is not family)
    for sentinel in (family.fim_prefix, family.fim_suffix, family.fim_middle):
        assert _count(server, sentinel) == 1, sentinel
    for sentinel in (other.fim_prefix, other.fim_suffix, other.fim_middle):
        assert _count(server, sentinel) > 1, sentinel


def test_streaming_fim_completion(server: TinyServer) -> None:
    family = server.family
    request = {
        "model": server.name,
        "prompt": f"{family.fim_prefix}def add(a, b):\n    return {family.fim_suffix}\n"
        f"{family.fim_middle}",
        "stream": True,
        "max_tokens": 8,
        "min_tokens": 4,
        "temperature": 0.0,
        "stream_options": {"include_usage": True},
    }
    data_lines: list[str] = []
    with httpx.stream("POST", f"{server.url}/completions", json=request, timeout=60.0) as response:
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


def test_qwen_model_answers_chat_with_its_chatml_template(qwen_server: TinyServer) -> None:
    request = {
        "model": qwen_server.name,
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": 4,
        "min_tokens": 2,
        "temperature": 0.0,
    }
    response = httpx.post(f"{qwen_server.url}/chat/completions", json=request, timeout=60.0)
    response.raise_for_status()
    body = response.json()
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["usage"]["completion_tokens"] >= 2
    # ChatML: <|im_start|>user\nSay hello.<|im_end|>\n<|im_start|>assistant\n
    expected = _count(
        qwen_server, "<|im_start|>user\nSay hello.<|im_end|>\n<|im_start|>assistant\n"
    )
    assert body["usage"]["prompt_tokens"] == expected
