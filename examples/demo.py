"""`make demo`: one completion through the whole pipeline against a real vLLM engine.

Starts vLLM (CPU) serving the tiny model that `make setup` built, runs
`zi-coder complete FILE:LINE:COL` against it with the default settings, prints the
suggestion and stops vLLM. The tiny model has random weights, so the text is
noise: the point is the plumbing. For real suggestions, serve a base code model
(e.g. Qwen2.5-Coder) with vLLM and run `zi-coder complete` with ZI_INFERENCE__URL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from inference.launcher import LaunchError, ServeConfig, VllmServer, find_vllm_python
from inference.probes import free_port
from tests.support.tiny_model import SERVED_MODEL_NAME, ensure_tiny_model


def main(location: str) -> int:
    try:
        python = find_vllm_python()
    except LaunchError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    model_dir = ensure_tiny_model(Path("~/.cache/zi-coder/tiny-model-v1").expanduser(), python)
    with tempfile.TemporaryDirectory() as tmp:
        sys.stderr.write("starting vLLM with the tiny model (about a minute on 2 CPUs)...\n")
        config = ServeConfig(
            source=str(model_dir),
            served_name=SERVED_MODEL_NAME,
            port=free_port(),
            max_model_len=1024,
            log_file=Path(tmp) / "vllm.log",
            python=python,
            env={"HF_HUB_OFFLINE": "1"},
        )
        with VllmServer(config) as server:
            url = server.url
            env = {
                **os.environ,
                "ZI_INFERENCE__URL": url,
                # Random weights stop at once or loop; ask for a few tokens, penalise repeats.
                "ZI_INFERENCE__EXTRA_BODY": json.dumps(
                    {"min_tokens": 3, "repetition_penalty": 1.8}
                ),
                "ZI_DATABASE_URL": f"sqlite:///{Path(tmp) / 'history.sqlite3'}",
            }
            done = subprocess.run(
                [sys.executable, "-m", "server", "complete", location], env=env, check=False
            )
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "examples/calc.py:9:37"))
