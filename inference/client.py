"""Async client for OpenAI-compatible model servers (vLLM first).

One pooled ``httpx.AsyncClient`` per process. Streaming completions are read as
server-sent events; leaving the ``async for`` early (a stale request, a finished
block, a cancelled task) closes the HTTP stream, which makes vLLM abort the
generation instead of finishing tokens nobody will read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger(__name__)


class ModelError(RuntimeError):
    """The model server could not produce an answer; `lasting` problems deserve a user message."""

    lasting: bool = False


class ModelUnavailable(ModelError):
    """Cannot connect: the server is down or the URL is wrong."""

    lasting = True


class ModelTimeout(ModelError):
    """Connected, but the server stayed silent past the read timeout."""


class ModelHTTPError(ModelError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"model server answered HTTP {status}: {message}")
        self.status = status
        # 4xx other than 429 means our request or configuration is wrong; it will not fix itself.
        self.lasting = 400 <= status < 500 and status != 429


class ModelProtocolError(ModelError):
    """The server sent something that is not the OpenAI streaming format."""


@dataclass(frozen=True, slots=True)
class ServedModel:
    id: str
    root: str | None = None
    max_model_len: int | None = None


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    model: str
    prompt: str
    max_tokens: int
    stop: tuple[str, ...]
    temperature: float = 0.2
    extra: dict[str, Any] = field(default_factory=dict)
    # Every string that ends the answer; `stop` is what the server is asked to apply.
    stop_all: tuple[str, ...] = ()

    def body(self) -> dict[str, Any]:
        return {
            **self.extra,
            "model": self.model,
            "prompt": self.prompt,
            "max_tokens": self.max_tokens,
            "stop": list(self.stop),
            "temperature": self.temperature,
            "stream": True,
        }


class InferenceClient:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=8),
        )

    @property
    def server_root(self) -> str:
        """vLLM serves /tokenize at the root, beside /v1."""
        return self.base_url.removesuffix("/v1")

    async def aclose(self) -> None:
        await self._http.aclose()

    async def list_models(self) -> list[ServedModel]:
        data = await self._get_json(f"{self.base_url}/models")
        models = data.get("data") if isinstance(data, dict) else None
        if not isinstance(models, list):
            raise ModelProtocolError("GET /models did not return a list of models")
        return [
            ServedModel(
                id=str(m["id"]),
                root=m.get("root") if isinstance(m.get("root"), str) else None,
                max_model_len=m.get("max_model_len"),
            )
            for m in models
            if isinstance(m, dict) and "id" in m
        ]

    async def count_tokens(self, model: str, text: str) -> int:
        """Tokens the served tokenizer makes of `text`, without BOS/EOS additions."""
        body = {"model": model, "prompt": text, "add_special_tokens": False}
        data = await self._post_json(f"{self.server_root}/tokenize", body)
        if isinstance(data, dict) and isinstance(data.get("count"), int):
            return int(data["count"])
        if isinstance(data, dict) and isinstance(data.get("tokens"), list):
            return len(data["tokens"])
        raise ModelProtocolError("POST /tokenize returned no token count")

    async def stream_completion(self, request: CompletionRequest) -> AsyncIterator[str]:
        """Yield text pieces as the model produces them."""
        with self._translate_errors():
            async with self._http.stream(
                "POST", f"{self.base_url}/completions", json=request.body()
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise ModelHTTPError(response.status_code, _error_message(response))
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue  # blank separators, SSE comments, keep-alives
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        return
                    text = _chunk_text(payload)
                    if text:
                        yield text

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        """httpx's exceptions as ModelErrors that say what the user can do about them."""
        try:
            yield
        except httpx.ConnectError as exc:
            raise ModelUnavailable(f"cannot connect to {self.base_url}: {exc}") from exc
        except httpx.TimeoutException as exc:
            raise ModelTimeout(f"model server at {self.base_url} timed out") from exc
        except httpx.HTTPError as exc:
            raise ModelError(f"model server error: {exc.__class__.__name__}: {exc}") from exc

    async def _get_json(self, url: str) -> Any:
        return await self._request_json("GET", url, None)

    async def _post_json(self, url: str, body: dict[str, Any]) -> Any:
        return await self._request_json("POST", url, body)

    async def _request_json(self, method: str, url: str, body: dict[str, Any] | None) -> Any:
        try:
            response = await self._http.request(method, url, json=body)
        except httpx.ConnectError as exc:
            raise ModelUnavailable(f"cannot connect to {self.base_url}: {exc}") from exc
        except httpx.TimeoutException as exc:
            raise ModelTimeout(f"model server at {self.base_url} timed out") from exc
        except httpx.HTTPError as exc:
            raise ModelError(f"model server error: {exc.__class__.__name__}: {exc}") from exc
        if response.status_code != 200:
            raise ModelHTTPError(response.status_code, _error_message(response))
        try:
            return response.json()
        except ValueError as exc:
            raise ModelProtocolError(f"{method} {url} returned invalid JSON") from exc


def _chunk_text(payload: str) -> str:
    try:
        data = json.loads(payload)
        choice = data["choices"][0]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ModelProtocolError(f"malformed stream chunk: {payload[:200]!r}") from exc
    if not isinstance(choice, dict):
        raise ModelProtocolError(f"malformed stream chunk: {payload[:200]!r}")
    text = choice.get("text") or ""
    return text if isinstance(text, str) else ""


def _error_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(data, dict):
        message = data.get("message") or data.get("error") or data
        if isinstance(message, dict):
            message = message.get("message", message)
        return str(message)[:300]
    return str(data)[:300]
