"""The completion model as the pipeline sees it: name, FIM template, tokenizer, stream.

Resolution happens once and is remembered: the model name (configured, or the
first one the server lists), its context window (``max_model_len`` from
``/v1/models``), the FIM template (configured, or detected through ``/tokenize``),
and the token counter (a local ``tokenizer.json`` when the server reports a model
directory that exists here, else ``/tokenize``).

One failure policy (:mod:`inference.resilience`) covers both resolution and
completions: the client's circuit breaker stops calls to a server that keeps
failing, and a resolution that fails for a lasting reason (a model that is not
served, a tokenizer without FIM sentinels) is retried after a cool-down of the
same kind, 2 s doubling to 60 s. When the breaker opens, the model is resolved
again once the server answers: it may have restarted with another model.

What the user hears (each once, through the Notifier, until it resolves): the
server not ready yet, the breaker opening (and its recovery), a 429 pause, a model
that is not served, a template mismatch, a prompt over the context window.
Transient failures of single requests are logged, not shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

from inference.client import (
    ClientEvent,
    CompletionRequest,
    EventKind,
    InferenceClient,
    StreamMeta,
)
from inference.errors import (
    ContextTooLong,
    ModelError,
    ModelNotFound,
    ModelPaused,
    ModelRateLimited,
    is_outage,
)
from inference.fim import FimTemplate, FimTemplateError, resolve_template
from inference.resilience import Backoff, CircuitBreaker, Clock, RetryPolicy
from inference.tokens import (
    CharEstimateCounter,
    LocalTokenCounter,
    RemoteTokenCounter,
    TokenCounter,
)
from server.notify import Level, Notifier
from server.settings import InferenceSettings

log = logging.getLogger(__name__)

MODEL_PROBLEM = "model"
RATE_PROBLEM = "model-rate-limit"
CONTEXT_PROBLEM = "model-context"
# BOS: vLLM adds the tokenizer's special tokens to a completion prompt (CodeLlama,
# DeepSeek-Coder and StarCoder-style tokenizers may add one).
_SPECIAL_TOKENS_ADDED = 1
# Extra room taken after the server said a prompt was too long (per-line counts can
# miss merges across lines).
_OVERFLOW_SLACK = 8


class ModelNotReady(RuntimeError):
    """Resolution failed recently; the reason was already reported."""


class ModelNotServed(ModelError):
    """The configured model is not among those the server lists."""

    lasting = True


@dataclass(frozen=True, slots=True)
class ModelInfo:
    name: str
    template: FimTemplate
    counter: TokenCounter
    max_model_len: int | None = None  # the served context window, when the server says
    # Prompt tokens beyond the context itself: FIM sentinels, a BOS, and whatever a
    # context-length error from the server showed the counter to miss.
    overhead_tokens: int = 0

    def prompt_limit(self, max_tokens: int) -> int | None:
        """Tokens the context (head, prefix, suffix) may use so that the prompt plus
        `max_tokens` fit the served context window; None when the window is unknown."""
        if self.max_model_len is None:
            return None
        return max(self.max_model_len - max_tokens - self.overhead_tokens, 0)


class ModelBackend:
    def __init__(
        self,
        settings: InferenceSettings,
        *,
        notifier: Notifier,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.settings = settings
        self.notifier = notifier
        self.client = InferenceClient(
            settings.url,
            api_key=settings.api_key,
            connect_timeout_s=settings.connect_timeout_s,
            read_timeout_s=settings.read_timeout_s,
            retry=retry,
            breaker=breaker,
            on_event=self._on_client_event,
            clock=clock,
        )
        self._info: ModelInfo | None = None
        self._resolved_once = False
        # Lasting resolution failures (the server answered, but not with a usable
        # model): retried after a growing cool-down, not on every keystroke.
        self._resolution = CircuitBreaker(
            failure_threshold=1, cooldown=Backoff(base_s=2.0, factor=2.0, cap_s=60.0), clock=clock
        )
        self._resolving: asyncio.Lock | None = None

    async def aclose(self) -> None:
        await self.client.aclose()

    async def info(self) -> ModelInfo:
        if self._info is not None:
            return self._info
        if self._resolving is None:
            self._resolving = asyncio.Lock()
        async with self._resolving:
            if self._info is None:  # else resolved while this caller waited
                self._info = await self._resolve_once()
            return self._info

    async def _resolve_once(self) -> ModelInfo:
        admission = self._resolution.admit()
        if not admission:
            raise ModelNotReady("model resolution failed recently")
        try:
            info = await self._resolve()
        except (ModelError, FimTemplateError) as exc:
            if isinstance(exc, ModelError) and (
                is_outage(exc) or isinstance(exc, ModelPaused | ModelRateLimited)
            ):  # the server is down or busy: the client's breaker keeps count
                self._resolution.abandoned(admission)
            else:  # it answered, but not with a usable model
                self._resolution.failed(str(exc))
            self.report(exc, resolving=True)
            raise ModelNotReady(str(exc)) from exc
        except BaseException:
            self._resolution.abandoned(admission)
            raise
        self._resolution.succeeded()
        self._resolved_once = True
        self.notifier.resolved(MODEL_PROBLEM, "the model server answers again")
        self.notifier.info(
            f"using model {info.name!r} with the {info.template.name} FIM template"
            + (f", context window {info.max_model_len} tokens" if info.max_model_len else "")
        )
        return info

    async def warm_up(self) -> None:
        """Import the HTTP stack in a thread and resolve the model before the first keystroke."""
        import importlib

        await asyncio.to_thread(importlib.import_module, "aiohttp")
        with contextlib.suppress(ModelNotReady):
            await self.info()

    def report(self, exc: Exception, *, resolving: bool = False) -> None:
        """Log a failed model call; tell the user when it is news to them."""
        url = self.settings.url
        if isinstance(exc, ModelPaused | ModelRateLimited):
            # Not sent, or the pause was already told through a client event.
            log.debug("model call not made: %s", exc)
            return
        if isinstance(exc, ModelNotFound) and not resolving:
            # The server forgot the model (restarted with another one?): resolve again;
            # resolution names the model and lists what is served if it is gone.
            log.warning("%s; resolving the model again", exc)
            self._info = None
            return
        if isinstance(exc, ContextTooLong):
            self._shrink_context(exc)
            return
        if isinstance(exc, FimTemplateError | ModelNotServed) or getattr(exc, "lasting", False):
            self.notifier.problem(MODEL_PROBLEM, str(exc), lasting=True, level=Level.ERROR)
            return
        if resolving and not self._resolved_once:
            # Refused connections and 503s before the first answer: most often vLLM is
            # still loading the model (that takes a while).
            self.notifier.problem(
                MODEL_PROBLEM,
                f"model server at {url} is not ready yet ({exc}); completions start "
                "when it answers",
                lasting=True,
                level=Level.WARNING,
            )
            return
        self.notifier.problem(MODEL_PROBLEM, str(exc), level=Level.WARNING)

    def succeeded(self) -> None:
        self.notifier.resolved(MODEL_PROBLEM, f"model server at {self.settings.url} answers again")

    def stream(
        self, request: CompletionRequest, meta: StreamMeta | None = None
    ) -> AsyncIterator[str]:
        """The client's stream itself: no wrapping generator on the per-chunk path."""
        return self.client.stream_completion(request, meta)

    @property
    def completions_url(self) -> str:
        return self.client.completions_url

    def _on_client_event(self, event: ClientEvent) -> None:
        url = self.settings.url
        if event.kind is EventKind.BREAKER_OPENED:
            # It may come back as another model, or with another context window.
            self._info = None
            self.notifier.problem(
                MODEL_PROBLEM,
                f"model server at {url} is failing ({event.cause}); pausing requests "
                f"for {event.pause_s:g} s",
                lasting=True,
                level=Level.WARNING,
            )
        elif event.kind is EventKind.BREAKER_CLOSED:
            self.notifier.resolved(MODEL_PROBLEM, f"model server at {url} answers again")
        elif event.kind is EventKind.RATE_LIMITED:
            self.notifier.problem(
                RATE_PROBLEM,
                f"model server at {url} is rate-limiting requests ({event.cause}); "
                f"pausing completions for {event.pause_s:g} s",
                lasting=True,
                level=Level.WARNING,
            )
        elif event.kind is EventKind.RATE_LIMIT_ENDED:
            self.notifier.resolved(RATE_PROBLEM, f"model server at {url} accepts requests again")

    def _shrink_context(self, exc: ContextTooLong) -> None:
        """The prompt did not fit: remember the window and the overshoot for the next ones."""
        info = self._info
        message = (
            f"a prompt was too long for the model's context window ({exc.detail}); "
            "sending shorter context from now on"
        )
        if info is not None and exc.limit:
            known = info.max_model_len
            window = min(known, exc.limit) if known else exc.limit
            if exc.requested is not None:
                overshoot = max(exc.requested - exc.limit, 0)
            else:
                overshoot = exc.limit // 10  # the server did not say by how much
            self._info = replace(
                info,
                max_model_len=window,
                overhead_tokens=info.overhead_tokens + overshoot + _OVERFLOW_SLACK,
            )
        self.notifier.problem(CONTEXT_PROBLEM, message, level=Level.WARNING)

    async def _resolve(self) -> ModelInfo:
        served = await self.client.list_models()
        if self.settings.model:
            name = self.settings.model
            match = next((m for m in served if m.id == name), None)
            if match is None:
                listed = ", ".join(m.id for m in served) or "none"
                raise ModelNotServed(
                    f"model {name!r} is not served at {self.settings.url} (served: {listed})"
                )
        elif served:
            match = served[0]
            name = match.id
        else:
            raise ModelNotServed(f"the model server at {self.settings.url} serves no model")

        counter = self._counter(name, match.root)
        local = counter if isinstance(counter, LocalTokenCounter) else None
        # A configured template is verified against the served tokenizer; `auto` detects
        # from a local tokenizer.json when there is one, and the server confirms it.
        template = await resolve_template(
            name,
            self.settings.fim_template.value,
            lambda text: self.client.count_tokens(name, text),
            local_count=local.count if local else None,
            local_source=str(local.path) if local else "its local tokenizer.json",
        )
        overhead = counter.count(template.render("", "")) + _SPECIAL_TOKENS_ADDED
        log.info(
            "model %s: template %s, tokenizer %s, max_model_len %s",
            name,
            template.name,
            type(counter).__name__,
            match.max_model_len,
        )
        return ModelInfo(
            name=name,
            template=template,
            counter=counter,
            max_model_len=match.max_model_len,
            overhead_tokens=overhead,
        )

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
