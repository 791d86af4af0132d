"""FIM templates: exact sentinel layouts and detection from the served tokenizer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from inference.fim import (
    CODEGEMMA,
    CODELLAMA,
    DEEPSEEK,
    QWEN,
    STARCODER,
    TEMPLATES,
    FimTemplate,
    FimTemplateError,
    detect_template,
    template_by_name,
)

BAR = "\N{FULLWIDTH VERTICAL LINE}"  # U+FF5C, not the ASCII "|"
LOW = "\N{LOWER ONE EIGHTH BLOCK}"  # U+2581, not "_"

PREFIX = "def add(a, b):\n    return "
SUFFIX = "\n\nprint(add(1, 2))\n"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (QWEN, f"<|fim_prefix|>{PREFIX}<|fim_suffix|>{SUFFIX}<|fim_middle|>"),
        (CODEGEMMA, f"<|fim_prefix|>{PREFIX}<|fim_suffix|>{SUFFIX}<|fim_middle|>"),
        (STARCODER, f"<fim_prefix>{PREFIX}<fim_suffix>{SUFFIX}<fim_middle>"),
        (
            DEEPSEEK,
            f"<{BAR}fim{LOW}begin{BAR}>{PREFIX}<{BAR}fim{LOW}hole{BAR}>{SUFFIX}"
            f"<{BAR}fim{LOW}end{BAR}>",
        ),
        # CodeLlama: a space after <PRE>, one before <SUF> and one before <MID>.
        (CODELLAMA, f"<PRE> {PREFIX} <SUF>{SUFFIX} <MID>"),
    ],
    ids=lambda v: v.name if isinstance(v, FimTemplate) else "",
)
def test_render_exact_layout(template: FimTemplate, expected: str) -> None:
    assert template.render(PREFIX, SUFFIX) == expected


def test_deepseek_sentinels_are_not_ascii_lookalikes() -> None:
    prompt = DEEPSEEK.render("a", "b")
    assert "|" not in prompt
    assert "_" not in prompt
    assert prompt.count(BAR) == 6
    assert prompt.count(LOW) == 3


@pytest.mark.parametrize("template", list(TEMPLATES.values()), ids=lambda t: t.name)
def test_render_with_empty_prefix_and_suffix_keeps_all_sentinels(template: FimTemplate) -> None:
    prompt = template.render("", "")
    assert prompt.startswith(template.prefix)
    assert prompt.endswith(template.middle)
    assert template.suffix in prompt


def test_codegemma_stops_on_its_own_file_separator_not_qwens() -> None:
    assert CODEGEMMA.render("p", "s") == QWEN.render("p", "s")
    assert "<|file_separator|>" in CODEGEMMA.stop
    assert "<|file_separator|>" not in QWEN.stop
    assert "<|file_sep|>" in QWEN.stop
    assert "<|file_sep|>" not in CODEGEMMA.stop


@pytest.mark.parametrize("name", ["qwen", "starcoder", "deepseek", "codellama", "codegemma"])
def test_template_by_name(name: str) -> None:
    assert template_by_name(name).name == name


def test_template_by_name_unknown_lists_known_names() -> None:
    with pytest.raises(FimTemplateError, match="known: auto, codegemma, codellama"):
        template_by_name("llama3")


def vocab_counter(single_tokens: set[str]) -> Callable[[str], Awaitable[int]]:
    """A served tokenizer in which exactly `single_tokens` encode to one token."""

    async def count_tokens(text: str) -> int:
        return 1 if text in single_tokens else max(len(text) // 2, 2)

    return count_tokens


QWEN_VOCAB = {
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
}
CODEGEMMA_VOCAB = {
    "<bos>",
    "<eos>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|file_separator|>",
}
STARCODER_VOCAB = {
    "<|endoftext|>",
    "<fim_prefix>",
    "<fim_middle>",
    "<fim_suffix>",
    "<fim_pad>",
    "<repo_name>",
    "<file_sep>",
}
DEEPSEEK_VOCAB = {
    f"<{BAR}begin{LOW}of{LOW}sentence{BAR}>",
    f"<{BAR}end{LOW}of{LOW}sentence{BAR}>",
    f"<{BAR}fim{LOW}begin{BAR}>",
    f"<{BAR}fim{LOW}hole{BAR}>",
    f"<{BAR}fim{LOW}end{BAR}>",
    "<|EOT|>",
}
CODELLAMA_VOCAB = {"<s>", "</s>", "<PRE>", "<SUF>", "<MID>", "<EOT>"}
# Qwen2.5-Coder-Instruct style chat tokenizer without the FIM sentinels.
CHAT_VOCAB = {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|file_sep|>"}


@pytest.mark.parametrize(
    ("vocab", "expected"),
    [
        (QWEN_VOCAB, "qwen"),
        (CODEGEMMA_VOCAB, "codegemma"),
        (STARCODER_VOCAB, "starcoder"),
        (DEEPSEEK_VOCAB, "deepseek"),
        (CODELLAMA_VOCAB, "codellama"),
        # Qwen's three FIM sentinels without <|fim_pad|> still mean the Qwen layout.
        ({"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"}, "qwen"),
    ],
    ids=["qwen", "codegemma", "starcoder", "deepseek", "codellama", "qwen-without-pad"],
)
async def test_detect_template(vocab: set[str], expected: str) -> None:
    template = await detect_template("some/model", vocab_counter(vocab))
    assert template.name == expected


@pytest.mark.parametrize(
    "vocab",
    [
        CHAT_VOCAB,
        set(),
        # ASCII look-alikes of DeepSeek's sentinels are ordinary text, not DeepSeek.
        {f"<|fim{LOW}begin|>", f"<|fim{LOW}hole|>", f"<|fim{LOW}end|>"},
        # Only two of StarCoder's three sentinels.
        {"<fim_prefix>", "<fim_suffix>"},
    ],
    ids=["chat", "empty", "deepseek-ascii-lookalikes", "starcoder-partial"],
)
async def test_detect_template_fails_loudly_naming_the_model(vocab: set[str]) -> None:
    with pytest.raises(FimTemplateError) as excinfo:
        await detect_template("Qwen/Qwen2.5-Coder-7B-Instruct", vocab_counter(vocab))
    message = str(excinfo.value)
    assert "Qwen/Qwen2.5-Coder-7B-Instruct" in message
    assert "ZI_INFERENCE__FIM_TEMPLATE" in message


async def test_detect_template_asks_each_sentinel_once() -> None:
    asked: list[str] = []
    inner = vocab_counter(CODELLAMA_VOCAB)

    async def count_tokens(text: str) -> int:
        asked.append(text)
        return await inner(text)

    assert (await detect_template("m", count_tokens)).name == "codellama"
    assert len(asked) == len(set(asked))
