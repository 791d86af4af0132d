"""The model registry: which models exist, what each is for, and how to serve it.

One declarative file (TOML, or YAML for those who prefer it) lists models by
name. A model is either *local* (``source``: a Hugging Face id or a directory,
which ``zi-coder models load`` / ``inference serve`` start with vLLM on this
machine) or *remote* (``url``: an OpenAI-compatible server someone else runs).
Roles say what a model is for: ``completion`` (a base model that knows FIM) or
``chat`` (an instruct model); ``languages`` narrows a model to some language ids,
so a team can route Python to one model and everything else to another.

Validation happens here, once, with messages that name the file and the model:
a typo in a registry must not surface later as a vLLM traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from inference.table_file import TableFile

#: Accepted ``fim_template`` values (the families inference/fim.py renders).
FIM_TEMPLATES = ("auto", "qwen", "starcoder", "deepseek", "codellama", "codegemma")
#: Where `make setup` builds the tiny model the embedded default registry serves.
DEFAULT_MODEL_SOURCE = "~/.cache/zi-coder/tiny-model-v1"
DEFAULT_MODEL_NAME = "tiny-coder"


class RegistryError(ValueError):
    """The registry file is missing, unreadable or invalid, or a name is unknown."""


REGISTRY_FILE = TableFile(
    kind="model registry", article="a", table="models", entry="model", error=RegistryError
)


class Role(StrEnum):
    COMPLETION = "completion"
    CHAT = "chat"


class ModelSpec(BaseModel):
    """One registry entry; ``name`` is its table key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    source: str | None = Field(
        default=None, description="Hugging Face id or local directory: served on this machine."
    )
    url: str | None = Field(
        default=None, description="OpenAI-compatible base URL of a model served elsewhere."
    )
    served_name: str = Field(min_length=1, description="The name clients send; default: name.")
    roles: list[Role] = Field(min_length=1)
    fim_template: str = "auto"
    max_model_len: int = Field(default=2048, gt=0)
    port: int | None = Field(default=None, ge=1, le=65535)
    languages: list[str] = Field(default_factory=list)
    dtype: str = "auto"
    vllm_args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _served_name_defaults_to_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("served_name"):
            return {**data, "served_name": data.get("name")}
        return data

    @field_validator("fim_template")
    @classmethod
    def _known_template(cls, value: str) -> str:
        if value not in FIM_TEMPLATES:
            raise ValueError(
                f"unknown FIM template {value!r}; use one of {', '.join(FIM_TEMPLATES)}"
            )
        return value

    @field_validator("languages")
    @classmethod
    def _lowercase_languages(cls, value: list[str]) -> list[str]:
        return [language.strip().lower() for language in value]

    @model_validator(mode="after")
    def _source_xor_url(self) -> ModelSpec:
        if (self.source is None) == (self.url is None):
            raise ValueError(
                "set exactly one of `source` (served here) or `url` (served elsewhere)"
            )
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {self.url!r}")
        return self

    @property
    def local(self) -> bool:
        """Whether this machine serves the model (``source``) rather than reaching it (``url``)."""
        return self.source is not None


@dataclass(frozen=True)
class Registry:
    """The validated models of one registry file (``path`` None: the embedded default)."""

    models: dict[str, ModelSpec] = field(default_factory=dict)
    path: Path | None = None

    @property
    def where(self) -> str:
        return str(self.path) if self.path is not None else "the embedded default registry"

    def get(self, name: str) -> ModelSpec:
        try:
            return self.models[name]
        except KeyError:
            known = ", ".join(self.models) or "none"
            raise RegistryError(f"no model {name!r} in {self.where} (models: {known})") from None

    def for_role(self, role: Role, language: str | None = None) -> ModelSpec | None:
        """The model for ``role``: one listing ``language`` wins over a general one.

        A general model has no ``languages``. Without a language, the first general
        model with the role is chosen, else the first with the role at all (better a
        narrow model than none). File order breaks ties.
        """
        with_role = [spec for spec in self.models.values() if role in spec.roles]
        if language is not None:
            wanted = language.lower()
            for spec in with_role:
                if wanted in spec.languages:
                    return spec
        for spec in with_role:
            if not spec.languages:
                return spec
        if language is None and with_role:
            return with_role[0]
        return None


def default_registry() -> Registry:
    """The tiny model `make setup` builds, for completion and chat, on vLLM's default port."""
    spec = ModelSpec(
        name=DEFAULT_MODEL_NAME,
        served_name=DEFAULT_MODEL_NAME,
        source=DEFAULT_MODEL_SOURCE,
        roles=[Role.COMPLETION, Role.CHAT],
        port=8000,
        max_model_len=1024,  # the tiny model's position limit
    )
    return Registry(models={spec.name: spec}, path=None)


def load_registry(path: Path | None) -> Registry:
    """Read and validate a registry file (``.toml``, ``.yaml`` or ``.yml``); None: the default."""
    if path is None:
        return default_registry()
    path = path.expanduser()
    tables = REGISTRY_FILE.read_tables(path)
    models = {name: _spec(path, name, table) for name, table in tables.items()}
    return Registry(models=models, path=path)


def _spec(path: Path, name: str, table: Any) -> ModelSpec:
    def relative_source(settings: dict[str, Any]) -> dict[str, Any]:
        source = settings.get("source")
        if isinstance(source, str) and source.startswith(("./", "../")):
            # Relative to the registry file, so a checked-in registry works from any directory.
            settings["source"] = str((path.parent / source).resolve())
        return settings

    return REGISTRY_FILE.validate(ModelSpec, path, name, table, adjust=relative_source)
