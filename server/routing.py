"""Which served model does a task use: the registry's model for its role and language.

Two ways to name the model, and one rule between them:

- the simple path: ``ZI_INFERENCE__URL`` / ``ZI_INFERENCE__MODEL`` (or their
  client-side equivalents) point at one OpenAI-compatible server, used for every
  language. This is what you get when no model registry is configured, and it
  wins whenever the URL is set explicitly;
- the registry (``ZI_MODELS_FILE``): models by role (``completion``, ``chat``),
  optionally per language. A model with a ``url`` is served elsewhere; a local
  one is reached at the address ``zi-coder models load`` (or ``zi-coder up``)
  recorded for it, or at its fixed ``port``.

One :class:`ModelBackend` per distinct model, created on first use and kept, so a
polyglot workspace does not resolve the same model twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from server.completion.backend import MODEL_PROBLEM, ModelBackend
from server.notify import Level, Notifier
from server.settings import FimTemplateName, InferenceSettings, Settings

if TYPE_CHECKING:
    from inference.registry import ModelSpec, Registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChatEndpoint:
    """Where the chat model for code actions is served; travels in job arguments, so a
    worker on another machine needs no configuration of its own."""

    url: str
    model: str | None  # None: the first model the server lists
    api_key: str | None = None

    def as_job_arg(self) -> dict[str, Any]:
        return {"url": self.url, "model": self.model, "api_key": self.api_key}


class _Unread:
    pass


_UNREAD = _Unread()


class ModelRouter:
    def __init__(self, settings: Settings, *, notifier: Notifier) -> None:
        self.settings = settings
        self.notifier = notifier
        # Read on first use, not while `initialize` is being answered: a broken file is
        # reported to a client that is ready to show the message.
        self._registry: Registry | _Unread | None = _UNREAD
        self._backends: dict[str, ModelBackend] = {}
        self._by_language: dict[str, ModelBackend | None] = {}

    @property
    def registry(self) -> Registry | None:
        """The registry followed, or None on the simple path."""
        if isinstance(self._registry, _Unread):
            self._registry = _registry_for(self.settings, self.notifier)
        return self._registry

    def completion(self, language_id: str) -> ModelBackend | None:
        """The backend of the completion model for `language_id`; None if it is not served."""
        backend = self._by_language.get(language_id)
        if backend is not None:
            return backend
        backend = self._completion_backend(language_id)
        if backend is not None:
            # Only a found backend is remembered: an unloaded model may be loaded later.
            self._by_language[language_id] = backend
        return backend

    def chat(self, language_id: str) -> ChatEndpoint | None:
        """The chat model for `language_id` (code actions, review); None if it is not served."""
        registry = self.registry
        inference = self.settings.inference
        if registry is None:
            model = self.settings.actions.chat_model or inference.model
            return ChatEndpoint(inference.url, model, inference.api_key)
        from inference.registry import Role

        spec = registry.for_role(Role.CHAT, language_id or None)
        if spec is None:
            self.notifier.problem(
                "chat-model",
                f"no chat model in {registry.path or 'the default model registry'}: "
                "code actions need a model with the `chat` role",
                lasting=True,
                level=Level.ERROR,
            )
            return None
        url = self.url_of(spec)
        if url is None:
            self.notifier.problem(
                "chat-model",
                f"chat model {spec.name!r} is not loaded: run `zi-coder models load {spec.name}` "
                "or `zi-coder up`",
                lasting=True,
                level=Level.ERROR,
            )
            return None
        return ChatEndpoint(url, spec.served_name, inference.api_key)

    def backends(self) -> list[ModelBackend]:
        return list(self._backends.values())

    async def warm_up(self) -> None:
        backend = self.completion("")
        if backend is not None:
            await backend.warm_up()

    async def aclose(self) -> None:
        for backend in self._backends.values():
            await backend.aclose()

    def _completion_backend(self, language_id: str) -> ModelBackend | None:
        registry = self.registry
        if registry is None:
            return self._backend("", self.settings.inference.url, None)
        from inference.registry import Role

        spec = registry.for_role(Role.COMPLETION, language_id or None)
        if spec is None:
            self.notifier.problem(
                MODEL_PROBLEM,
                f"no completion model for {language_id or 'this language'} in "
                f"{registry.path or 'the default model registry'}",
                lasting=True,
                level=Level.ERROR,
            )
            return None
        url = self.url_of(spec)
        if url is None:
            self.notifier.problem(
                MODEL_PROBLEM,
                f"model {spec.name!r} is not loaded: run `zi-coder models load {spec.name}` "
                "or `zi-coder up`",
                lasting=True,
                level=Level.ERROR,
            )
            return None
        return self._backend(spec.name, url, spec)

    def url_of(self, spec: ModelSpec) -> str | None:
        """Where `spec` is served: its url, where it was loaded, or its fixed port."""
        if spec.url:
            return spec.url
        from inference.state import read_state

        loaded = read_state(self.settings.resolved_state_dir(), spec.name)
        if loaded is not None:
            return loaded.url
        if spec.port is not None:
            return f"http://127.0.0.1:{spec.port}/v1"
        return None

    def _backend(self, key: str, url: str, spec: ModelSpec | None) -> ModelBackend:
        backend = self._backends.get(key)
        if backend is None:
            inference = self.settings.inference
            if spec is not None:
                inference = inference.model_copy(
                    update={
                        "url": url,
                        "model": spec.served_name,
                        "fim_template": FimTemplateName(spec.fim_template),
                    }
                )
                log.info("completion model %s at %s", spec.name, url)
            backend = self._backends[key] = ModelBackend(inference, notifier=self.notifier)
        return backend


def _registry_for(settings: Settings, notifier: Notifier) -> Registry | None:
    """The registry the language server follows, or None for the simple path."""
    # An explicit URL is the simple path even with a registry configured. (Compared
    # with the default rather than through `model_fields_set`, which a client's
    # settings merge fills with every field.)
    if settings.models_file is None or settings.inference.url != _DEFAULT_URL:
        return None
    from inference.registry import RegistryError, load_registry

    try:
        return load_registry(settings.models_file.expanduser())
    except (RegistryError, OSError) as exc:
        log.error("model registry %s unusable: %s", settings.models_file, exc)
        notifier.problem(
            "registry",
            f"{exc}; using {settings.inference.url}",
            lasting=True,
            level=Level.ERROR,
        )
        return None


_DEFAULT_URL = InferenceSettings.model_fields["url"].default
