"""FIM template detection from a local tokenizer.json, and verification of a configured one.

Why: `auto` must pick the family whose sentinels the model really has as single
tokens, and a configured template whose sentinels the model splits into pieces
must fail loudly, naming the model, what was expected and what was found; the
model would otherwise read the sentinels as text and complete garbage.
The tokenizers here are real byte-level BPEs, trained in milliseconds on a few
lines, with each family's sentinels as special tokens.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from inference.fim import (
    CODEGEMMA,
    CODELLAMA,
    DEEPSEEK,
    QWEN,
    STARCODER,
    FimTemplate,
    FimTemplateError,
    count_with_tokenizer_file,
    detect_template,
    detect_template_from_tokenizer_file,
    detect_template_local,
    resolve_template,
    template_mismatch,
    verify_template,
)

CORPUS = ["def add(a, b):\n    return a + b\n", "import os\nprint(os.sep)\n"] * 20

VOCABULARIES: dict[str, tuple[str, ...]] = {
    "qwen": (
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
    "qwen-minimal": ("<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>"),
    "codegemma": (
        "<eos>",
        "<|fim_prefix|>",
        "<|fim_middle|>",
        "<|fim_suffix|>",
        "<|file_separator|>",
    ),
    "starcoder": ("<|endoftext|>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>"),
    "deepseek": (
        "<\uff5cend\u2581of\u2581sentence\uff5c>",
        "<\uff5cfim\u2581begin\uff5c>",
        "<\uff5cfim\u2581hole\uff5c>",
        "<\uff5cfim\u2581end\uff5c>",
    ),
    "codellama": ("</s>", "<PRE>", "<SUF>", "<MID>", "<EOT>"),
    "chat-only": ("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
}


def _tokenizer(special_tokens: Iterable[str]) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS, trainer=trainer)
    return tokenizer


def _tokenizer_file(tmp_path: Path, vocabulary: str) -> Path:
    path = tmp_path / vocabulary / "tokenizer.json"
    path.parent.mkdir(parents=True)
    _tokenizer(VOCABULARIES[vocabulary]).save(str(path))
    return path


def _served(vocabulary: str, calls: list[str] | None = None) -> Callable[[str], Awaitable[int]]:
    """A stand-in for vLLM's /tokenize, counting with a real tokenizer."""
    tokenizer = _tokenizer(VOCABULARIES[vocabulary])

    async def count(text: str) -> int:
        if calls is not None:
            calls.append(text)
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return count


@pytest.mark.parametrize(
    ("vocabulary", "expected"),
    [
        ("qwen", QWEN),
        ("qwen-minimal", QWEN),
        ("codegemma", CODEGEMMA),
        ("starcoder", STARCODER),
        ("deepseek", DEEPSEEK),
        ("codellama", CODELLAMA),
    ],
)
def test_detects_the_family_from_a_local_tokenizer_json(
    tmp_path: Path, vocabulary: str, expected: FimTemplate
) -> None:
    path = _tokenizer_file(tmp_path, vocabulary)

    assert detect_template_from_tokenizer_file("some-model", path) is expected


@pytest.mark.parametrize("vocabulary", sorted(set(VOCABULARIES) - {"chat-only"}))
async def test_local_and_served_detection_agree(tmp_path: Path, vocabulary: str) -> None:
    local = detect_template_from_tokenizer_file("m", _tokenizer_file(tmp_path, vocabulary))

    assert await detect_template("m", _served(vocabulary)) is local


def test_a_tokenizer_without_fim_sentinels_is_an_error_naming_model_and_file(
    tmp_path: Path,
) -> None:
    path = _tokenizer_file(tmp_path, "chat-only")

    with pytest.raises(FimTemplateError) as error:
        detect_template_from_tokenizer_file("chatty-7b", path)

    assert "'chatty-7b'" in str(error.value)
    assert str(path) in str(error.value)
    assert "fill-in-the-middle" in str(error.value)


def test_an_unreadable_tokenizer_file_is_a_template_error(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_text("{not json", encoding="utf-8")

    with pytest.raises(FimTemplateError, match="cannot load the tokenizer"):
        count_with_tokenizer_file(path)


def test_counts_from_a_tokenizer_file_ignore_bos_additions(tmp_path: Path) -> None:
    count = count_with_tokenizer_file(_tokenizer_file(tmp_path, "starcoder"))

    assert count("<fim_prefix>") == 1
    assert count("<|fim_prefix|>") > 1
    assert count("") == 0


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({"<fim_prefix>": 1, "<fim_suffix>": 1, "<fim_middle>": 1}, ""),
        (
            {"<fim_prefix>": 5, "<fim_suffix>": 1, "<fim_middle>": 4},
            "<fim_prefix> is 5 tokens, <fim_middle> is 4 tokens",
        ),
        ({}, "<fim_prefix> is 0 tokens, <fim_suffix> is 0 tokens, <fim_middle> is 0 tokens"),
    ],
)
def test_template_mismatch_says_which_sentinels_are_not_single_tokens(
    counts: dict[str, int], expected: str
) -> None:
    assert template_mismatch(STARCODER, counts) == expected


def test_local_detection_is_pure() -> None:
    singles = {"<fim_prefix>", "<fim_suffix>", "<fim_middle>"}

    template = detect_template_local("m", lambda s: 1 if s in singles else 3)

    assert template is STARCODER


async def test_a_configured_template_that_fits_passes_verification() -> None:
    await verify_template("tiny-coder", QWEN, _served("qwen"))


async def test_a_wrong_configured_template_names_model_expectation_finding_and_fix() -> None:
    with pytest.raises(FimTemplateError) as error:
        await verify_template("tiny-coder", STARCODER, _served("qwen"))

    message = str(error.value)
    assert message.startswith("model 'tiny-coder' does not fit the starcoder FIM template")
    assert "expected <fim_prefix>, <fim_suffix>, <fim_middle> to be single tokens" in message
    assert "<fim_prefix> is " in message and " tokens" in message
    assert "qwen sentinels: set inference.fim_template to qwen or auto" in message


async def test_a_configured_template_for_a_chat_model_says_it_has_no_sentinels() -> None:
    with pytest.raises(FimTemplateError, match="no known FIM sentinels"):
        await verify_template("chatty-7b", QWEN, _served("chat-only"))


async def test_resolve_verifies_a_configured_template_against_the_served_tokenizer() -> None:
    assert await resolve_template("sc", "starcoder", _served("starcoder")) is STARCODER
    with pytest.raises(FimTemplateError, match="'sc' does not fit the qwen FIM template"):
        await resolve_template("sc", "qwen", _served("starcoder"))


async def test_resolve_rejects_an_unknown_template_name() -> None:
    with pytest.raises(FimTemplateError, match="unknown FIM template 'fancy'"):
        await resolve_template("m", "fancy", _served("qwen"))


async def test_resolve_auto_without_a_local_file_asks_the_served_tokenizer() -> None:
    assert await resolve_template("m", "auto", _served("deepseek")) is DEEPSEEK


async def test_resolve_auto_with_a_local_file_confirms_with_three_served_counts(
    tmp_path: Path,
) -> None:
    calls: list[str] = []
    local = count_with_tokenizer_file(_tokenizer_file(tmp_path, "starcoder"))

    template = await resolve_template("sc", "auto", _served("starcoder", calls), local_count=local)

    assert template is STARCODER
    assert sorted(calls) == sorted(STARCODER.sentinels)


async def test_resolve_auto_rejects_a_local_file_that_is_not_the_served_tokenizer(
    tmp_path: Path,
) -> None:
    path = _tokenizer_file(tmp_path, "qwen")

    with pytest.raises(FimTemplateError) as error:
        await resolve_template(
            "sc",
            "auto",
            _served("starcoder"),
            local_count=count_with_tokenizer_file(path),
            local_source=str(path),
        )

    message = str(error.value)
    assert message.startswith(f"model 'sc': {path} has the qwen FIM sentinels")
    assert "<|fim_prefix|> is " in message and "not the served model's tokenizer" in message
