"""The scripted vLLM look-alike does what the end-to-end tests rely on."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.scripted_model import (
    DEFAULT_CHAT_TEXT,
    STARCODER_FIM_VOCAB,
    Reply,
    ScriptedModel,
    chat_prompt,
    count_tokens,
    oracle_reply,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=10) as client:
        yield client


def completion_body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "model": "scripted-coder",
        "prompt": "<|fim_prefix|>def f():\n    <|fim_suffix|>\n<|fim_middle|>",
        "max_tokens": 64,
        "stream": True,
    }
    body.update(overrides)
    return body


def read_sse(response: httpx.Response) -> list[str]:
    """The `data:` payloads of an SSE response, in order."""
    return [line[len("data: ") :] for line in response.iter_lines() if line.startswith("data: ")]


def stream(http: httpx.Client, model: ScriptedModel, **overrides: object) -> list[str]:
    with http.stream("POST", f"{model.url}/completions", json=completion_body(**overrides)) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        return read_sse(r)


def texts_and_finish(payloads: list[str]) -> tuple[list[str], str | None, object]:
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    *body, last = chunks
    assert all(c["choices"][0]["finish_reason"] is None for c in body)
    assert last["choices"][0]["text"] == ""
    return (
        [c["choices"][0]["text"] for c in body],
        last["choices"][0]["finish_reason"],
        last["choices"][0]["stop_reason"],
    )


# ----------------------------------------------------------------- plain endpoints


def test_models_health_and_url(scripted_model: ScriptedModel, http: httpx.Client) -> None:
    assert scripted_model.url.startswith("http://127.0.0.1:")
    assert scripted_model.url.endswith("/v1")
    models = http.get(f"{scripted_model.url}/models").json()
    assert models["object"] == "list"
    (card,) = models["data"]
    assert card["id"] == card["root"] == "scripted-coder"
    assert card["object"] == "model"
    assert card["owned_by"] == "vllm"
    assert card["max_model_len"] == 4096
    assert isinstance(card["created"], int)
    assert http.get(f"{scripted_model.server_root}/health").status_code == 200
    assert http.get(f"{scripted_model.url}/nothing-here").status_code == 404


def test_tokenize_counts_and_special_tokens(
    scripted_model: ScriptedModel, http: httpx.Client
) -> None:
    def tokenize(prompt: str, url: str = scripted_model.server_root) -> dict[str, object]:
        body = {"model": "scripted-coder", "prompt": prompt, "add_special_tokens": False}
        r = http.post(f"{url}/tokenize", json=body)
        assert r.status_code == 200
        return r.json()

    plain = tokenize("hello world")  # "hell" "o" " " "worl" "d"
    assert plain["count"] == 5 == len(plain["tokens"])
    assert plain["max_model_len"] == 4096
    assert all(isinstance(t, int) for t in plain["tokens"])
    assert tokenize("hello world") == plain  # deterministic

    fim = tokenize("<|fim_prefix|><|fim_suffix|><|fim_middle|>")
    assert fim["count"] == 3
    assert len(set(fim["tokens"])) == 3
    assert tokenize("<|fim_prefix|>ab")["count"] == 2
    # A special token of another model family is plain text here.
    assert tokenize("<fim_prefix>")["count"] > 1
    assert tokenize("x" * 400)["count"] == 100  # about one token per 4 characters
    assert [r["prompt"] for r in scripted_model.tokenize_requests][:2] == [
        "hello world",
        "hello world",
    ]

    with ScriptedModel(model_name="starcoder", vocab=set(STARCODER_FIM_VOCAB)) as star:
        body = {"model": "starcoder", "prompt": "<fim_prefix>", "add_special_tokens": False}
        assert http.post(f"{star.server_root}/tokenize", json=body).json()["count"] == 1
        body["prompt"] = "<|fim_prefix|>"
        assert http.post(f"{star.server_root}/tokenize", json=body).json()["count"] > 1


# ------------------------------------------------------------------------ streaming


def test_stream_sends_chunks_then_finish_then_done(
    scripted_model: ScriptedModel, http: httpx.Client
) -> None:
    scripted_model.reply_with(Reply(chunks=["return ", "x", " + 1"]))
    payloads = stream(http, scripted_model)
    texts, finish, stop_reason = texts_and_finish(payloads)
    assert texts == ["return ", "x", " + 1"]
    assert finish == "stop"
    assert stop_reason is None
    first = json.loads(payloads[0])
    assert first["object"] == "text_completion"
    assert first["id"].startswith("cmpl-")
    assert first["model"] == "scripted-coder"
    assert first["choices"][0]["index"] == 0
    assert first["choices"][0]["logprobs"] is None


def test_default_chunking_is_about_three_chars(
    scripted_model: ScriptedModel, http: httpx.Client
) -> None:
    scripted_model.reply_with("abcdefgh")
    texts, finish, _ = texts_and_finish(stream(http, scripted_model))
    assert texts == ["abc", "def", "gh"]
    assert finish == "stop"


def test_stop_strings_truncate_like_vllm(scripted_model: ScriptedModel, http: httpx.Client) -> None:
    scripted_model.reply_with(Reply(text="x = 1\ny = 2\n", chunks=["x = 1\ny", " = 2\n"]))
    texts, finish, stop_reason = texts_and_finish(stream(http, scripted_model, stop=["\n"]))
    assert "".join(texts) == "x = 1"
    assert (finish, stop_reason) == ("stop", "\n")

    # The earliest stop string wins, whichever its place in the list.
    texts, _, stop_reason = texts_and_finish(stream(http, scripted_model, stop=["y", " ="]))
    assert "".join(texts) == "x"
    assert stop_reason == " ="

    # No stop string in the text: the whole text and the reply's own finish reason.
    texts, finish, _ = texts_and_finish(stream(http, scripted_model, stop=["zzz"]))
    assert "".join(texts) == "x = 1\ny = 2\n"
    assert finish == "stop"


def test_max_tokens_cuts_with_length(scripted_model: ScriptedModel, http: httpx.Client) -> None:
    scripted_model.reply_with("abcdefghijklmnop")  # 4 tokens of 4 chars
    texts, finish, _ = texts_and_finish(stream(http, scripted_model, max_tokens=2))
    assert "".join(texts) == "abcdefgh"
    assert finish == "length"
    texts, finish, _ = texts_and_finish(stream(http, scripted_model, max_tokens=4))
    assert "".join(texts) == "abcdefghijklmnop"
    assert finish == "stop"

    # Like vLLM, a request without max_tokens gets 16.
    scripted_model.reply_with("a" * 200)
    body = completion_body()
    del body["max_tokens"]
    with http.stream("POST", f"{scripted_model.url}/completions", json=body) as r:
        texts, finish, _ = texts_and_finish(read_sse(r))
    assert len("".join(texts)) == 64
    assert finish == "length"


def test_queue_then_default_and_callable(scripted_model: ScriptedModel, http: httpx.Client) -> None:
    scripted_model.queue(Reply(text="one"), "two")
    scripted_model.reply_with(lambda req: Reply(text=f"len={len(req['prompt'])}"))
    got = ["".join(texts_and_finish(stream(http, scripted_model, prompt=p))[0]) for p in "abc"]
    assert got == ["one", "two", "len=1"]
    assert [r["prompt"] for r in scripted_model.requests] == ["a", "b", "c"]
    scripted_model.wait_for_requests(3, timeout=0.1)
    with pytest.raises(TimeoutError):
        scripted_model.wait_for_requests(4, timeout=0.05)


def test_delays(scripted_model: ScriptedModel, http: httpx.Client) -> None:
    scripted_model.reply_with(Reply(chunks=["a", "b", "c"], delay_s=0.3, chunk_delay_s=0.1))
    start = time.monotonic()
    with http.stream("POST", f"{scripted_model.url}/completions", json=completion_body()) as r:
        headers_at = time.monotonic() - start
        lines = r.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        first_at = time.monotonic() - start
        rest = [line for line in lines if line.startswith("data: ")]
        done_at = time.monotonic() - start
    assert json.loads(first[6:])["choices"][0]["text"] == "a"
    assert rest[-1] == "data: [DONE]"
    assert headers_at < 0.25  # headers go out at once, like vLLM's StreamingResponse
    assert 0.28 <= first_at < 1.0
    assert done_at >= 0.48


def test_broken_json_line_mid_stream(scripted_model: ScriptedModel, http: httpx.Client) -> None:
    scripted_model.reply_with(Reply(chunks=["a", "b", "c", "d"], broken_json=True))
    payloads = stream(http, scripted_model)
    bad = []
    for p in payloads[:-1]:
        try:
            json.loads(p)
        except ValueError:
            bad.append(p)
    assert len(bad) == 1
    assert payloads.index(bad[0]) not in (0, len(payloads) - 1)
    assert payloads[-1] == "[DONE]"


def test_include_usage_adds_a_usage_chunk(
    scripted_model: ScriptedModel, http: httpx.Client
) -> None:
    scripted_model.reply_with("abcd")
    payloads = stream(http, scripted_model, stream_options={"include_usage": True})
    usage_chunk = json.loads(payloads[-2])
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == 1


# ------------------------------------------------------------------------- errors


def test_suffix_is_refused_like_vllm(scripted_model: ScriptedModel, http: httpx.Client) -> None:
    r = http.post(
        f"{scripted_model.url}/completions", json=completion_body(suffix="\n", stream=False)
    )
    assert r.status_code == 400
    err = r.json()
    assert err["object"] == "error"
    assert err["type"] == "BadRequestError"
    assert err["code"] == 400
    assert "suffix" in err["message"]
    assert len(scripted_model.requests) == 1  # recorded all the same


def test_500_reply(scripted_model: ScriptedModel, http: httpx.Client) -> None:
    scripted_model.queue(Reply(status=500), Reply(status=500, text="engine died"))
    for stream_flag, message in ((True, "Internal Server Error"), (False, "engine died")):
        r = http.post(f"{scripted_model.url}/completions", json=completion_body(stream=stream_flag))
        assert r.status_code == 500
        assert r.headers["content-type"] == "application/json"
        assert r.json() == {
            "object": "error",
            "message": message,
            "type": "InternalServerError",
            "param": None,
            "code": 500,
        }


def test_unknown_model_and_too_long_prompt(
    scripted_model: ScriptedModel, http: httpx.Client
) -> None:
    r = http.post(f"{scripted_model.url}/completions", json=completion_body(model="other"))
    assert r.status_code == 404
    assert r.json()["type"] == "NotFoundError"
    long_prompt = "x" * (4 * 4090)  # 4090 tokens
    r = http.post(
        f"{scripted_model.url}/completions", json=completion_body(prompt=long_prompt, max_tokens=10)
    )
    assert r.status_code == 400
    assert "maximum context length is 4096" in r.json()["message"]


# -------------------------------------------------------------------- non-streaming


def test_non_streaming_response(scripted_model: ScriptedModel, http: httpx.Client) -> None:
    scripted_model.reply_with("pass\nreturn")
    r = http.post(
        f"{scripted_model.url}/completions", json=completion_body(stream=False, stop=["\n"])
    )
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "text_completion"
    (choice,) = body["choices"]
    assert choice["text"] == "pass"
    assert choice["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == 1
    assert body["usage"]["prompt_tokens"] == count_tokens(str(completion_body()["prompt"]))
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + 1


# ------------------------------------------------------------------- cancellation


def test_client_disconnect_mid_stream_is_counted(
    scripted_model: ScriptedModel, http: httpx.Client
) -> None:
    scripted_model.reply_with(Reply(text="a" * 300, chunk_delay_s=0.05))
    with http.stream(
        "POST", f"{scripted_model.url}/completions", json=completion_body(max_tokens=200)
    ) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                break  # leave after the first chunk: closes the connection
    scripted_model.wait_for_cancelled(1, timeout=3)
    assert scripted_model.cancelled == 1
    assert scripted_model.completed == 0

    # A stream read to the end is not a cancellation.
    scripted_model.reply_with("done")
    stream(http, scripted_model)
    assert scripted_model.cancelled == 1
    assert scripted_model.completed == 1


def test_hang_until_client_gives_up(scripted_model: ScriptedModel) -> None:
    scripted_model.reply_with(Reply(text="never", hang=True))
    with httpx.Client(trust_env=False, timeout=httpx.Timeout(5, read=0.3)) as client:
        with client.stream(
            "POST", f"{scripted_model.url}/completions", json=completion_body()
        ) as r:
            assert r.status_code == 200  # headers came
            with pytest.raises(httpx.ReadTimeout):
                list(r.iter_lines())
        with pytest.raises(httpx.ReadTimeout):
            client.post(f"{scripted_model.url}/completions", json=completion_body(stream=False))
    scripted_model.wait_for_cancelled(2, timeout=3)


def test_many_concurrent_streams(scripted_model: ScriptedModel) -> None:
    scripted_model.reply_with(lambda req: Reply(text=req["prompt"] * 4, chunk_delay_s=0.05))

    async def one(client: httpx.AsyncClient, i: int) -> str:
        body = completion_body(prompt=f"<{i}>")
        async with client.stream("POST", f"{scripted_model.url}/completions", json=body) as r:
            texts = []
            async for line in r.aiter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    texts.append(json.loads(line[6:])["choices"][0]["text"])
            return "".join(texts)

    async def main() -> list[str]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(trust_env=False, timeout=20, limits=limits) as client:
            return await asyncio.gather(*(one(client, i) for i in range(100)))

    start = time.monotonic()
    results = asyncio.run(main())
    elapsed = time.monotonic() - start
    assert results == [f"<{i}>" * 4 for i in range(100)]
    assert elapsed < 5  # serially it would take 100 * ~0.25s
    assert len(scripted_model.requests) == 100


# ------------------------------------------------------------------ chat completions

MESSAGES = [
    {"role": "system", "content": "You write Python."},
    {"role": "user", "content": "Add a docstring to: def f(): pass"},
]


def chat_body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {"model": "scripted-coder", "messages": MESSAGES, "stream": True}
    body.update(overrides)
    return body


def chat_stream(http: httpx.Client, model: ScriptedModel, **overrides: object) -> list[str]:
    with http.stream("POST", f"{model.url}/chat/completions", json=chat_body(**overrides)) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        return read_sse(r)


def test_chat_stream_has_role_deltas_finish_usage_and_done(
    scripted_model: ScriptedModel, http: httpx.Client
) -> None:
    scripted_model.chat_reply_with(Reply(chunks=["def f():", "\n    pass"]))
    payloads = chat_stream(http, scripted_model, stream_options={"include_usage": True})
    assert payloads[-1] == "[DONE]"
    role, *deltas, usage = [json.loads(p) for p in payloads[:-1]]
    assert role["object"] == "chat.completion.chunk"
    assert role["id"].startswith("chatcmpl-")
    assert role["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"]["content"] for c in deltas] == ["def f():", "\n    pass"]
    # Like vLLM, the finish reason comes with the last text.
    assert [c["choices"][0]["finish_reason"] for c in deltas] == [None, "stop"]
    assert all(c["id"] == role["id"] and c["usage"] is None for c in deltas)
    assert usage["choices"] == []
    assert usage["usage"] == {
        "prompt_tokens": count_tokens(chat_prompt(MESSAGES)),
        "completion_tokens": count_tokens("def f():\n    pass"),
        "total_tokens": count_tokens(chat_prompt(MESSAGES)) + count_tokens("def f():\n    pass"),
    }
    (body,) = scripted_model.chat_requests
    assert body["messages"] == MESSAGES
    assert scripted_model.requests == []


def test_chat_not_streamed_and_its_default_answer(
    scripted_model: ScriptedModel, http: httpx.Client
) -> None:
    r = http.post(f"{scripted_model.url}/chat/completions", json=chat_body(stream=False))
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion"
    (choice,) = body["choices"]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == DEFAULT_CHAT_TEXT
    assert choice["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] == count_tokens(chat_prompt(MESSAGES))
    # Completions keep their own (empty) default.
    r = http.post(f"{scripted_model.url}/completions", json=completion_body(stream=False))
    assert r.json()["choices"][0]["text"] == ""


def test_chat_queue_then_default_callable_of_the_messages(
    scripted_model: ScriptedModel, http: httpx.Client
) -> None:
    scripted_model.queue_chat("one", Reply(text="two"))
    scripted_model.chat_reply_with(lambda req: f"{len(req['messages'])} messages")
    scripted_model.queue("a completion")  # not used by chat
    got = []
    for _ in range(3):
        payloads = chat_stream(http, scripted_model)
        chunks = [json.loads(p) for p in payloads[:-1]]
        got.append("".join(c["choices"][0]["delta"].get("content", "") for c in chunks))
    assert got == ["one", "two", "2 messages"]
    scripted_model.wait_for_chat_requests(3, timeout=0.1)
    texts, _, _ = texts_and_finish(stream(http, scripted_model))
    assert "".join(texts) == "a completion"


def test_chat_stop_and_max_tokens_apply(scripted_model: ScriptedModel, http: httpx.Client) -> None:
    scripted_model.chat_reply_with("abcdefghijklmnop" * 8)  # 32 tokens
    for overrides, text, finish in [
        ({}, "abcdefghijklmnop" * 8, "stop"),  # no default of 16 tokens for chat
        ({"max_tokens": 2}, "abcdefgh", "length"),
        ({"max_completion_tokens": 1}, "abcd", "length"),
        ({"stop": ["ijk"]}, "abcdefgh", "stop"),
    ]:
        r = http.post(
            f"{scripted_model.url}/chat/completions", json=chat_body(stream=False, **overrides)
        )
        (choice,) = r.json()["choices"]
        assert (choice["message"]["content"], choice["finish_reason"]) == (text, finish)


def test_chat_validation_and_faults(scripted_model: ScriptedModel, http: httpx.Client) -> None:
    url = f"{scripted_model.url}/chat/completions"
    r = http.post(url, json=chat_body(model="other"))
    assert (r.status_code, r.json()["type"]) == (404, "NotFoundError")
    assert "does not exist" in r.json()["message"]
    for messages in ([], "hello", [{"content": "no role"}]):
        r = http.post(url, json=chat_body(messages=messages))
        assert r.status_code == 400
        assert "messages" in r.json()["message"]
    long = [{"role": "user", "content": "x" * (4 * 4090)}]
    r = http.post(url, json=chat_body(messages=long, max_tokens=10))
    assert r.status_code == 400
    assert "maximum context length is 4096" in r.json()["message"]

    scripted_model.queue_chat(Reply(status=503, text="loading"), Reply(status=500))
    for flag in (True, False):
        r = http.post(url, json=chat_body(stream=flag))
        assert r.status_code == (503 if flag else 500)
    scripted_model.fail("/v1/chat/completions", Reply(status=429, headers={"Retry-After": "3"}))
    r = http.post(url, json=chat_body())
    assert (r.status_code, r.headers["retry-after"]) == (429, "3")


def test_chat_client_disconnect_is_counted(
    scripted_model: ScriptedModel, http: httpx.Client
) -> None:
    scripted_model.chat_reply_with(Reply(text="a" * 300, chunk_delay_s=0.05))
    with http.stream("POST", f"{scripted_model.url}/chat/completions", json=chat_body()) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                break
    scripted_model.wait_for_cancelled(1, timeout=3)
    assert scripted_model.completed == 0


# ------------------------------------------------------------------------- oracle

SOURCE = "import os\nimport sys\n\n\ndef main():\n    print(os.getcwd())\n    return 0\n"


def test_oracle_reply_continues_the_line() -> None:
    oracle = oracle_reply(SOURCE, latency_s=0.25)
    header = "<|repo_name|>demo\n<|file_sep|>a.py\nx = 1\n<|file_sep|>main.py\n"

    def ask(prefix: str, suffix: str = "\n") -> str:
        prompt = f"{header}<|fim_prefix|># path: main.py\n{prefix}<|fim_suffix|>{suffix}"
        reply = oracle({"prompt": prompt + "<|fim_middle|>"})
        assert reply.delay_s == 0.25
        return reply.text

    assert ask("import os\nimport s") == "ys"
    assert ask("import os\nimport sys\n\n\ndef main():\n    print(") == "os.getcwd())"
    # At a line end: the next line, with its newline.
    assert ask("import os") == "\nimport sys"
    assert ask("import os\nimport sys\n\n\ndef main():") == "\n    print(os.getcwd())"
    # End of file: nothing more to say.
    assert ask(SOURCE) == ""
    # Empty prefix: from the top of the file.
    assert oracle({"prompt": "<|fim_prefix|><|fim_suffix|><|fim_middle|>"}).text == "import os"


def test_oracle_through_the_server(scripted_model: ScriptedModel, http: httpx.Client) -> None:
    scripted_model.reply_with(oracle_reply(SOURCE, latency_s=0.0))
    prompt = (
        "<|fim_prefix|>import os\nimport sys\n\n\ndef main():\n    pri<|fim_suffix|><|fim_middle|>"
    )
    texts, finish, _ = texts_and_finish(stream(http, scripted_model, prompt=prompt))
    assert "".join(texts) == "nt(os.getcwd())"
    assert finish == "stop"


# --------------------------------------------------------------------- standalone


def test_runs_as_a_subprocess(tmp_path: Path, http: httpx.Client) -> None:
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            {
                "queue": ["first", {"text": "second"}],
                "default": "later",
                "chat": ["chat first"],
                "chat_default": {"text": "chat later"},
            }
        )
    )
    with subprocess.Popen(
        [sys.executable, "-m", "tests.support.scripted_model", "--port", "0", "--script", script],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:")
            assert url.endswith("/v1")
            got = []
            for _ in range(3):
                r = http.post(f"{url}/completions", json=completion_body(stream=False))
                got.append(r.json()["choices"][0]["text"])
            assert got == ["first", "second", "later"]
            chats = []
            for _ in range(2):
                r = http.post(f"{url}/chat/completions", json=chat_body(stream=False))
                chats.append(r.json()["choices"][0]["message"]["content"])
            assert chats == ["chat first", "chat later"]
        finally:
            proc.terminate()
            assert proc.wait(timeout=10) == 0
