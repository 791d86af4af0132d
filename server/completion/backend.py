"""The completion model as the pipeline sees it: name, FIM template, tokenizer, stream.

Resolution happens once and is remembered: the model name (configured, or the
first one the server lists), the FIM template (configured, or detected through
``/tokenize``), and the token counter (a local ``tokenizer.json`` when the server
reports a model directory that exists here, else ``/tokenize``). While the model
server is unreachable, resolution is retried at most every few seconds so a user
typing fast does not turn into a connection storm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from inference.client import CompletionRequest, InferenceClient, ModelError, ModelUnavailable
from inference.fim import FimTemplate, FimTemplateError, detect_template, template_by_name
from inference.tokens import (
    CharEstimateCounter,
    LocalTokenCounter,
    RemoteTokenCounter,
    TokenCounter,
)
from server.notify import Level, Notifier
from server.settings import FimTemplateName, InferenceSettings

log = logging.getLogger(__name__)

_RETRY_AFTER_S = 3.0
MODEL_PROBLEM = "model"


class ModelNotReady(RuntimeError):
    """Resolution failed recently; the reason was already reported."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    name: str
    template: FimTemplate
    counter: TokenCounter


class ModelBackend:
    def __init__(self, settings: InferenceSettings, *, notifier: Notifier) -> None:
        self.settings = settings
        self.notifier = notifier
        self.client = InferenceClient(
            settings.url,
            api_key=settings.api_key,
            connect_timeout_s=settings.connect_timeout_s,
            read_timeout_s=settings.read_timeout_s,
        )
        self._info: ModelInfo | None = None
        self._failed_at = -1e9
        self._resolving: asyncio.Lock | None = None

    async def aclose(self) -> None:
        await self.client.aclose()

    async def info(self) -> ModelInfo:
        if self._info is not None:
            return self._info
        if time.monotonic() - self._failed_at < _RETRY_AFTER_S:
            raise ModelNotReady("model resolution failed recently")
        if self._resolving is None:
            self._resolving = asyncio.Lock()
        async with self._resolving:
            if self._info is None:
                try:
                    self._info = await self._resolve()
                except (ModelError, FimTemplateError) as exc:
                    self._failed_at = time.monotonic()
                    self.report(exc)
                    raise ModelNotReady(str(exc)) from exc
                self.notifier.resolved(MODEL_PROBLEM, "the model server answers again")
                self.notifier.info(
                    f"using model {self._info.name!r} with the {self._info.template.name} "
                    "FIM template"
                )
            return self._info

    async def warm_up(self) -> None:
        """Import the HTTP stack in a thread and resolve the model before the first keystroke."""
        import importlib

        await asyncio.to_thread(importlib.import_module, "aiohttp")
        with contextlib.suppress(ModelNotReady):
            await self.info()

    def report(self, exc: Exception) -> None:
        lasting = isinstance(exc, FimTemplateError) or getattr(exc, "lasting", False)
        level = Level.ERROR if lasting else Level.WARNING
        self.notifier.problem(MODEL_PROBLEM, str(exc), lasting=lasting, level=level)
        if isinstance(exc, ModelUnavailable):
            self._info = None  # the server may come back as another model

    def succeeded(self) -> None:
        self.notifier.resolved(MODEL_PROBLEM, f"model server at {self.settings.url} answers again")

    async def stream(self, request: CompletionRequest) -> AsyncIterator[str]:
        async for piece in self.client.stream_completion(request):
            yield piece

    async def _resolve(self) -> ModelInfo:
        served = await self.client.list_models()
        if self.settings.model:
            name = self.settings.model
            match = next((m for m in served if m.id == name), None)
            if match is None:
                listed = ", ".join(m.id for m in served) or "none"
                raise FimTemplateError(
                    f"model {name!r} is not served at {self.settings.url} (served: {listed})"
                )
        elif served:
            match = served[0]
            name = match.id
        else:
            raise FimTemplateError(f"the model server at {self.settings.url} serves no model")

        if self.settings.fim_template is FimTemplateName.AUTO:
            template = await detect_template(
                name, lambda text: self.client.count_tokens(name, text)
            )
        else:
            template = template_by_name(self.settings.fim_template.value)
        counter = self._counter(name, match.root)
        log.info("model %s: template %s, tokenizer %s", name, template.name, type(counter).__name__)
        return ModelInfo(name=name, template=template, counter=counter)

    def _counter(self, name: str, root: str | None) -> TokenCounter:
        candidates = []
        if self.settings.tokenizer_path:
            candidates.append(self.settings.tokenizer_path)
        if root:
            candidates.append(Path(root) / "tokenizer.json")
        for path in candidates:
            if path.is_file():
                try:
                    return LocalTokenCounter(path)
                except Exception as exc:  # a corrupt file: fall through to the server's count
                    log.warning("cannot load %s: %s", path, exc)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return CharEstimateCounter()
        return RemoteTokenCounter(lambda text: self.client.count_tokens(name, text))
