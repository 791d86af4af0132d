"""Settings: environment variables, client overrides, validation."""

from __future__ import annotations

import os

import pydantic
import pytest

from server.settings import FimTemplateName, Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("ZI_"):
            monkeypatch.delenv(name)


def test_defaults_without_environment() -> None:
    settings = Settings()
    assert settings.inference.url == "http://127.0.0.1:8000/v1"
    assert settings.inference.fim_template is FimTemplateName.AUTO
    assert settings.redis_url is None


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZI_INFERENCE__URL", "http://gpu-box:9000/v1")
    monkeypatch.setenv("ZI_INFERENCE__FIM_TEMPLATE", "deepseek")
    monkeypatch.setenv("ZI_REDIS_URL", "redis://cache:6379/2")
    monkeypatch.setenv("ZI_COMPLETION__PREFIX_TOKENS", "2048")
    settings = Settings()
    assert settings.inference.url == "http://gpu-box:9000/v1"
    assert settings.inference.fim_template is FimTemplateName.DEEPSEEK
    assert settings.redis_url == "redis://cache:6379/2"
    assert settings.completion.prefix_tokens == 2048


def test_merged_overrides_only_the_given_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZI_INFERENCE__URL", "http://gpu-box:9000/v1")
    monkeypatch.setenv("ZI_INFERENCE__FIM_TEMPLATE", "starcoder")
    base = Settings()
    merged = base.merged({"inference": {"model": "x"}})
    assert merged.inference.model == "x"
    assert merged.inference.url == "http://gpu-box:9000/v1"
    assert merged.inference.fim_template is FimTemplateName.STARCODER
    assert merged.model_dump(exclude={"inference": {"model"}}) == base.model_dump(
        exclude={"inference": {"model"}}
    )
    assert base.inference.model is None  # the original is untouched


def test_merged_does_not_reread_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZI_INFERENCE__URL", "http://first/v1")
    base = Settings()
    monkeypatch.setenv("ZI_INFERENCE__URL", "http://second/v1")
    assert base.merged({"completion": {"enabled": False}}).inference.url == "http://first/v1"


@pytest.mark.parametrize("overrides", [None, {}])
def test_merged_without_overrides_is_unchanged(overrides: dict[str, object] | None) -> None:
    base = Settings()
    assert base.merged(overrides) == base


@pytest.mark.parametrize(
    "overrides",
    [
        {"inference": {"fim_template": "nope"}},
        {"inference": {"temperature": -1}},
        {"completion": {"prefix_tokens": 0}},
        {"completion": {"max_tokens_single_line": "many"}},
    ],
)
def test_merged_rejects_invalid_values(overrides: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        Settings().merged(overrides)


def test_invalid_environment_value_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZI_INFERENCE__FIM_TEMPLATE", "nope")
    with pytest.raises(pydantic.ValidationError):
        Settings()


def test_survival_checkpoints_default_and_order(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().history.survival_checkpoints_s == [30, 120, 600]
    monkeypatch.setenv("ZI_HISTORY__SURVIVAL_CHECKPOINTS_S", "[600, 1, 86400]")
    assert Settings().history.survival_checkpoints_s == [1, 600, 86_400]


@pytest.mark.parametrize(
    ("checkpoints", "message"),
    [
        ([0], "greater than or equal to 1"),
        ([30, -120], "greater than or equal to 1"),
        ([], "at least 1 item"),
        ([30, 120, 30], "each checkpoint once; repeated: [30]"),
        (list(range(1, 10)), "at most 8 items"),
        ([86_401], "less than or equal to 86400"),
        ([1.5], "valid integer"),
    ],
)
def test_bad_survival_checkpoints_are_refused_with_the_reason(
    checkpoints: list[object], message: str
) -> None:
    # Dropping them would leave the checks the user asked for silently not made.
    with pytest.raises(pydantic.ValidationError) as refused:
        Settings().merged({"history": {"survival_checkpoints_s": checkpoints}})
    [error] = refused.value.errors()
    assert error["loc"][:2] == ("history", "survival_checkpoints_s")
    assert message in error["msg"]
