"""The model registry: TOML and YAML files, defaults, validation messages, role lookup."""

from __future__ import annotations

from pathlib import Path

import pytest

from inference.registry import (
    ModelSpec,
    Registry,
    RegistryError,
    Role,
    default_registry,
    load_registry,
)

FULL_TOML = """
[models.tiny-coder]
source = "~/.cache/zi-coder/tiny-model-v1"
served_name = "tiny"
roles = ["completion", "chat"]
fim_template = "qwen"
max_model_len = 1024
port = 8001
languages = ["Python"]
dtype = "float32"
vllm_args = ["--enforce-eager"]
env = { VLLM_CPU_KVCACHE_SPACE = "1" }

[models.gpu-chat]
url = "http://gpu-box:8000/v1"
roles = ["chat"]
"""

FULL_YAML = """
models:
  tiny-coder:
    source: ~/.cache/zi-coder/tiny-model-v1
    served_name: tiny
    roles: [completion, chat]
    fim_template: qwen
    max_model_len: 1024
    port: 8001
    languages: [Python]
    dtype: float32
    vllm_args: ["--enforce-eager"]
    env: {VLLM_CPU_KVCACHE_SPACE: "1"}
  gpu-chat:
    url: http://gpu-box:8000/v1
    roles: [chat]
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("name", "text"), [("models.toml", FULL_TOML), ("models.yaml", FULL_YAML)])
def test_toml_and_yaml_read_the_same(tmp_path: Path, name: str, text: str) -> None:
    registry = load_registry(write(tmp_path, name, text))

    assert registry.path == tmp_path / name
    assert list(registry.models) == ["tiny-coder", "gpu-chat"]
    tiny = registry.get("tiny-coder")
    assert tiny == ModelSpec(
        name="tiny-coder",
        source="~/.cache/zi-coder/tiny-model-v1",
        served_name="tiny",
        roles=[Role.COMPLETION, Role.CHAT],
        fim_template="qwen",
        max_model_len=1024,
        port=8001,
        languages=["python"],  # language ids are compared lowercased
        dtype="float32",
        vllm_args=["--enforce-eager"],
        env={"VLLM_CPU_KVCACHE_SPACE": "1"},
    )
    assert tiny.local
    chat = registry.get("gpu-chat")
    assert not chat.local
    assert chat.url == "http://gpu-box:8000/v1"


def test_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path, "m.yml", "models:\n  coder:\n    source: org/coder\n    roles: [completion]\n"
    )
    spec = load_registry(path).get("coder")

    assert spec.served_name == "coder"
    assert spec.fim_template == "auto"
    assert spec.max_model_len == 2048
    assert spec.port is None
    assert spec.languages == []
    assert spec.dtype == "auto"
    assert spec.vllm_args == []
    assert spec.env == {}


def test_a_relative_source_is_relative_to_the_registry_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "models.toml",
        '[models.a]\nsource = "./weights/a"\nroles = ["completion"]\n'
        '[models.b]\nsource = "Qwen/Qwen2.5-Coder-1.5B"\nroles = ["completion"]\n',
    )
    registry = load_registry(path)

    assert registry.get("a").source == str(tmp_path / "weights" / "a")
    assert registry.get("b").source == "Qwen/Qwen2.5-Coder-1.5B"  # a Hugging Face id stays


def test_none_is_the_embedded_default() -> None:
    registry = load_registry(None)

    assert registry.path is None
    assert registry == default_registry()
    spec = registry.get("tiny-coder")
    assert spec.source == "~/.cache/zi-coder/tiny-model-v1"
    assert spec.roles == [Role.COMPLETION, Role.CHAT]
    assert (spec.port, spec.max_model_len) == (8000, 1024)


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('roles = ["completion"]', "set exactly one of `source`"),
        ('source = "x"\nurl = "http://h/v1"\nroles = ["chat"]', "set exactly one of `source`"),
        ('source = "x"', "roles: Field required"),
        ('source = "x"\nroles = []', "roles: List should have at least 1 item"),
        (
            'source = "x"\nroles = ["autocomplete"]',
            "roles.0: Input should be 'completion' or 'chat'",
        ),
        ('source = "x"\nroles = ["chat"]\nfim_template = "llama"', "unknown FIM template 'llama'"),
        ('source = "x"\nroles = ["chat"]\nmax_model_len = 0', "max_model_len: Input should be"),
        ('source = "x"\nroles = ["chat"]\nport = 70000', "port: Input should be"),
        ('source = "x"\nroles = ["chat"]\ngpu = true', "gpu: unknown setting"),
        ('url = "gpu-box:8000"\nroles = ["chat"]', "url must start with http://"),
        ('name = "other"\nsource = "x"\nroles = ["chat"]', "`name` is the table key"),
    ],
)
def test_invalid_models_are_named_with_their_file(
    tmp_path: Path, table: str, expected: str
) -> None:
    path = write(tmp_path, "models.toml", f"[models.broken]\n{table}\n")

    with pytest.raises(RegistryError) as error:
        load_registry(path)

    message = str(error.value)
    assert message.startswith(f"{path}: model 'broken': ")
    assert expected in message


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("models.json", "{}", "must be a .toml, .yaml or .yml file"),
        ("models.toml", "[models.a\n", "invalid TOML"),
        ("models.yaml", "models: [unclosed\n", "invalid YAML"),
        ("models.toml", "", "no models"),
        ("models.yaml", "- a\n- b\n", "expected a mapping"),
        ("models.toml", "[model.a]\nsource = 'x'\n", "unknown top-level key(s) model"),
        ("models.yaml", "models:\n  a: just-a-string\n", "model 'a': expected a table"),
    ],
)
def test_invalid_files(tmp_path: Path, name: str, text: str, expected: str) -> None:
    path = write(tmp_path, name, text)

    with pytest.raises(RegistryError, match=r".*") as error:
        load_registry(path)

    assert str(path) in str(error.value)
    assert expected in str(error.value)


def test_a_missing_file_is_a_registry_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=r"cannot read model registry .*missing\.toml"):
        load_registry(tmp_path / "missing.toml")


def test_get_an_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(RegistryError, match=r"no model 'gpt' in .*default.*\(models: tiny-coder\)"):
        default_registry().get("gpt")


def spec(name: str, roles: list[Role], languages: list[str] | None = None) -> ModelSpec:
    return ModelSpec(
        name=name, served_name=name, source=name, roles=roles, languages=languages or []
    )


ROUTED = Registry(
    models={
        m.name: m
        for m in (
            spec("chatty", [Role.CHAT]),
            spec("py-coder", [Role.COMPLETION], ["python"]),
            spec("any-coder", [Role.COMPLETION]),
            spec("rust-coder", [Role.COMPLETION, Role.CHAT], ["rust"]),
        )
    }
)


@pytest.mark.parametrize(
    ("role", "language", "expected"),
    [
        (Role.COMPLETION, "python", "py-coder"),  # a model listing the language wins
        (Role.COMPLETION, "Python", "py-coder"),
        (Role.COMPLETION, "rust", "rust-coder"),
        (Role.COMPLETION, "go", "any-coder"),  # else the general one
        (Role.COMPLETION, None, "any-coder"),
        (Role.CHAT, "rust", "rust-coder"),
        (Role.CHAT, "python", "chatty"),
        (Role.CHAT, None, "chatty"),
    ],
)
def test_for_role(role: Role, language: str | None, expected: str) -> None:
    found = ROUTED.for_role(role, language)

    assert found is not None
    assert found.name == expected


def test_for_role_without_a_general_model() -> None:
    registry = Registry(models={"py": spec("py", [Role.COMPLETION], ["python"])})

    assert registry.for_role(Role.COMPLETION, "go") is None  # would be the wrong language
    only = registry.for_role(Role.COMPLETION)
    assert only is not None and only.name == "py"  # no language asked: better than none
    assert registry.for_role(Role.CHAT) is None
