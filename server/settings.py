"""Settings: one typed object per process.

Read from the environment (prefix ``ZI_``, nested delimiter ``__``) at the entry
point and passed down. A client may override any key through
``initializationOptions`` or ``workspace/configuration`` (section ``zi``) with the
same keys in nested form; :func:`Settings.merged` validates such overrides into a
new object, so the rest of the code only ever sees a validated ``Settings``.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from server.context.ignore import ContextRules


class FimTemplateName(StrEnum):
    AUTO = "auto"
    QWEN = "qwen"
    STARCODER = "starcoder"
    DEEPSEEK = "deepseek"
    CODELLAMA = "codellama"
    CODEGEMMA = "codegemma"


class InferenceSettings(BaseModel):
    url: str = Field(
        default="http://127.0.0.1:8000/v1",
        description="OpenAI-compatible base URL (vLLM's default address).",
    )
    model: str | None = Field(
        default=None, description="Served model name; default: the first one GET /models lists."
    )
    fim_template: FimTemplateName = Field(
        default=FimTemplateName.AUTO,
        description="Fill-in-the-middle family; auto detects it from the served tokenizer.",
    )
    api_key: str | None = Field(default=None, description="Bearer token for the model server.")
    tokenizer_path: Path | None = Field(
        default=None,
        description="A local tokenizer.json for exact token budgets without a round trip.",
    )
    connect_timeout_s: float = Field(default=2.0, gt=0)
    read_timeout_s: float = Field(default=10.0, gt=0, description="Max silence within a stream.")
    temperature: float = Field(default=0.2, ge=0)
    extra_body: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra fields merged into every /completions request (e.g. min_tokens).",
    )


class CompletionSettings(BaseModel):
    enabled: bool = True
    prefix_tokens: int = Field(default=1536, gt=0, description="Token budget for the prefix.")
    suffix_tokens: int = Field(default=512, ge=0, description="Token budget for the suffix.")
    snippet_tokens: int = Field(
        default=384, ge=0, description="Token budget for snippets from other open documents."
    )
    snippet_time_limit_ms: float = Field(default=8.0, gt=0)
    max_tokens_single_line: int = Field(default=64, gt=0)
    max_tokens_multi_line: int = Field(default=256, gt=0)
    debounce_ms: float = Field(
        default=0.0, ge=0, description="Wait this long before calling the model; 0 disables."
    )
    cache_ttl_s: int = Field(default=600, gt=0, description="Shared completion cache TTL.")


class JobSettings(BaseModel):
    """The heavy path's job queue (RQ on ``queue_redis_url``/``redis_url``, else in-process)."""

    concurrency: int = Field(
        default=2, gt=0, description="In-process runner: jobs run at once (RQ: one per worker)."
    )
    timeout_s: int = Field(default=120, gt=0, description="A job's own time limit.")
    result_ttl_s: int = Field(
        default=600, gt=0, description="How long a result is kept (identical requests reuse it)."
    )
    failure_ttl_s: int = Field(
        default=86_400, gt=0, description="How long a failed job stays inspectable."
    )
    retry_intervals_s: tuple[int, ...] = Field(
        default=(1, 5), description="Pauses before retrying a transient model failure."
    )


class ActionSettings(BaseModel):
    """AI code actions: quick fixes, docstrings, tests, rewrites, explanations."""

    enabled: bool = True
    chat_model: str | None = Field(
        default=None,
        description="Simple path: served name of the chat model; default: inference.model.",
    )
    max_tokens: int = Field(default=1024, gt=0, description="Longest model answer.")
    temperature: float = Field(default=0.2, ge=0)
    max_document_chars: int = Field(
        default=24_000, gt=0, description="Context beyond this many characters is cut."
    )
    test_rounds: int = Field(
        default=3, gt=0, description="Generate-run-repair rounds for generated tests."
    )
    tests_timeout_s: int = Field(default=300, gt=0, description="Time limit of a tests job.")
    sandbox_cpu_s: int = Field(default=10, gt=0, description="CPU seconds per sandbox run.")
    sandbox_memory_mb: int = Field(default=1024, gt=0, description="Address space per run.")
    sandbox_wall_s: float = Field(default=30.0, gt=0, description="Wall clock per run.")


class DiagnosticsSettings(BaseModel):
    """Static checks on open and save, then an AI review of what changed (on save)."""

    enabled: bool = Field(default=True, description="Static checks (syntax, pyflakes/ruff).")
    linter: Literal["auto", "ruff", "pyflakes", "off"] = Field(
        default="auto", description="Python linter: auto uses ruff when installed, else pyflakes."
    )
    review: bool = Field(default=True, description="AI review on save (a job on the queue).")
    min_severity: Literal["error", "warning", "information", "hint"] = Field(
        default="hint", description="Review findings less severe than this are not shown."
    )
    max_file_chars: int = Field(
        default=60_000, gt=0, description="Larger files are not reviewed (a notice says why)."
    )
    languages: tuple[str, ...] = Field(
        default=(), description="Language ids to review; empty: every language."
    )
    debounce_ms: float = Field(
        default=750.0, ge=0, description="Saves closer together than this start one review."
    )
    mode: Literal["auto", "push", "pull"] = Field(
        default="auto",
        description="auto: pull when the client can pull and be asked to refresh, else push.",
    )
    max_tokens: int = Field(default=1024, gt=0, description="Longest review answer.")
    temperature: float = Field(default=0.0, ge=0)


MAX_SURVIVAL_CHECKPOINTS = 8
MAX_SURVIVAL_CHECKPOINT_S = 86_400  # a day


class HistorySettings(BaseModel):
    enabled: bool = Field(
        default=True,
        description="Record completions, outcomes, model calls and jobs in the history "
        "database. Off: nothing is written (zi-coder stats has nothing new to report).",
    )
    store_prompts: bool = Field(
        default=False,
        description="Store prompts and model responses in the history (secrets redacted "
        "first). Off: only lengths, timings and outcomes are stored.",
    )
    survival: bool = Field(
        default=True,
        description="Check whether accepted suggestions are still in the document "
        "30 s, 2 min and 10 min later.",
    )
    # Each acceptance is held in memory until its last checkpoint: a few, within a day.
    survival_checkpoints_s: list[Annotated[int, Field(ge=1, le=MAX_SURVIVAL_CHECKPOINT_S)]] = Field(
        default=[30, 120, 600],
        min_length=1,
        max_length=MAX_SURVIVAL_CHECKPOINTS,
        description="When, in seconds after acceptance, survival is judged "
        f"(1 to {MAX_SURVIVAL_CHECKPOINTS} distinct values, each 1 s to 1 day).",
        json_schema_extra={"uniqueItems": True},
    )

    @field_validator("survival_checkpoints_s")
    @classmethod
    def _distinct(cls, checkpoints: list[int]) -> list[int]:
        repeated = sorted({c for c in checkpoints if checkpoints.count(c) > 1})
        if repeated:
            raise ValueError(f"each checkpoint once; repeated: {repeated}")
        return sorted(checkpoints)


class McpSettings(BaseModel):
    """Other MCP servers drawn on as context by reviews and code actions."""

    servers_file: Path | None = Field(
        default=None,
        description="TOML or YAML file listing MCP servers used as context for reviews and "
        "code actions (command or URL, resources, allowed tools); unset: none.",
    )
    context_deadline_s: float = Field(
        default=3.0,
        gt=0,
        le=60,
        description="How long a review or code action waits for MCP context before going "
        "on without it.",
    )
    max_item_chars: int = Field(
        default=4000,
        ge=100,
        le=100_000,
        description="Each MCP resource or tool result is cut to this many characters.",
    )
    max_context_chars: int = Field(
        default=12_000,
        ge=100,
        le=400_000,
        description="All MCP context in one prompt is cut to this many characters.",
    )


class ContextSettings(BaseModel):
    """Which files are never read as context nor get AI features (server.context.ignore)."""

    ignore: list[str] = Field(
        default_factory=list,
        description="Extra gitignore-style patterns of files never used as context nor "
        "completed, reviewed or acted on, on top of the built-in list (.env, keys, "
        "credential files); `!pattern` re-includes a built-in.",
    )
    gitignore: bool = Field(
        default=True,
        description="Also exclude the files the repository's .gitignore files ignore.",
    )

    def rules(self) -> ContextRules:
        """The rules these settings make, shared by every holder of equal settings."""
        from server.context.ignore import rules_for

        return rules_for(tuple(self.ignore), self.gitignore)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ZI_", env_nested_delimiter="__", extra="ignore", validate_default=True
    )

    inference: InferenceSettings = Field(default_factory=InferenceSettings)
    completion: CompletionSettings = Field(default_factory=CompletionSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    actions: ActionSettings = Field(default_factory=ActionSettings)
    diagnostics: DiagnosticsSettings = Field(default_factory=DiagnosticsSettings)
    history: HistorySettings = Field(default_factory=HistorySettings)
    mcp: McpSettings = Field(default_factory=McpSettings)
    context: ContextSettings = Field(default_factory=ContextSettings)
    redis_url: str | None = Field(
        default=None,
        description="Unset: in-process cache and jobs; set: shared Redis cache and RQ queue.",
    )
    queue_redis_url: str | None = Field(
        default=None,
        description="A separate Redis for the job queue (default: redis_url); use one when "
        "the cache's Redis evicts keys (maxmemory-policy allkeys-*).",
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite in the user data directory."
    )
    models_file: Path | None = Field(
        default=None,
        description="TOML or YAML model registry (models by role); unset: the embedded default.",
    )
    state_dir: Path | None = Field(
        default=None,
        description="Where `zi-coder models load` records running models (default: user state).",
    )
    vllm_python: Path | None = Field(
        default=None,
        description="Python that has vLLM; default: this one, else the venv `make setup` makes.",
    )
    log_file: Path | None = Field(default=None, description="Also write the log to this file.")
    log_level: str = "INFO"
    fast_start: bool = Field(
        default=True, description="Answer initialize while pygls is still importing."
    )

    def merged(self, overrides: dict[str, Any] | None) -> Settings:
        """A new validated Settings with a client's nested overrides applied on top."""
        if not overrides:
            return self
        data = _deep_merge(self.model_dump(), overrides)
        # Validate without re-reading the environment: the env already shaped `self`.
        return Settings.model_validate(data)

    @property
    def resolved_queue_url(self) -> str | None:
        """The job queue's Redis: ``queue_redis_url``, else ``redis_url``, else none."""
        return self.queue_redis_url or self.redis_url

    def resolved_state_dir(self) -> Path:
        """Where loaded models are recorded: ``state_dir`` or the user state directory."""
        if self.state_dir is not None:
            return self.state_dir.expanduser()
        from inference.state import default_state_dir

        return default_state_dir()

    def resolved_database_url(self) -> str:
        from server.history.location import default_database_url

        return self.database_url or default_database_url()


def _deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
