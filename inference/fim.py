"""Fill-in-the-middle prompt templates, rendered here for each model family.

vLLM's ``/v1/completions`` rejects the OpenAI ``suffix`` field, so the FIM prompt
is rendered client-side with each family's exact sentinels. ``auto`` detection
asks the *served tokenizer* which sentinels encode to a single token (a model's
name says nothing reliable about its vocabulary).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FimTemplate:
    name: str
    prefix: str
    suffix: str
    middle: str
    # Tokens that end a FIM answer; sent as stop strings because vLLM only stops on
    # the model's own EOS id by default.
    stop: tuple[str, ...]
    # Sentinels whose presence as single tokens identifies the family in `auto`.
    signature: tuple[str, ...]
    # CodeLlama's format puts a space after <PRE> and before <SUF>/<MID>.
    spaced: bool = False

    def render(self, prefix: str, suffix: str) -> str:
        """The prompt in prefix-suffix-middle order; the model writes the middle."""
        if self.spaced:
            return f"{self.prefix} {prefix} {self.suffix}{suffix} {self.middle}"
        return f"{self.prefix}{prefix}{self.suffix}{suffix}{self.middle}"


QWEN = FimTemplate(
    name="qwen",
    prefix="<|fim_prefix|>",
    suffix="<|fim_suffix|>",
    middle="<|fim_middle|>",
    stop=(
        "<|endoftext|>",
        "<|fim_pad|>",
        "<|file_sep|>",
        "<|repo_name|>",
        "<|fim_prefix|>",
        "<|im_start|>",
    ),
    signature=("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|fim_pad|>"),
)
CODEGEMMA = FimTemplate(
    name="codegemma",
    prefix="<|fim_prefix|>",
    suffix="<|fim_suffix|>",
    middle="<|fim_middle|>",
    stop=("<|file_separator|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<eos>"),
    signature=("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_separator|>"),
)
STARCODER = FimTemplate(
    name="starcoder",
    prefix="<fim_prefix>",
    suffix="<fim_suffix>",
    middle="<fim_middle>",
    stop=("<|endoftext|>", "<file_sep>", "<fim_prefix>", "<fim_pad>"),
    signature=("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
)
DEEPSEEK = FimTemplate(
    name="deepseek",
    # Fullwidth vertical bar U+FF5C and U+2581 "lower one eighth block", as in the
    # DeepSeek-Coder tokenizer; the ASCII look-alikes are ordinary text to it.
    prefix="<\uff5cfim\u2581begin\uff5c>",
    suffix="<\uff5cfim\u2581hole\uff5c>",
    middle="<\uff5cfim\u2581end\uff5c>",
    stop=("<\uff5cend\u2581of\u2581sentence\uff5c>", "<|EOT|>", "<\uff5cfim\u2581begin\uff5c>"),
    signature=(
        "<\uff5cfim\u2581begin\uff5c>",
        "<\uff5cfim\u2581hole\uff5c>",
        "<\uff5cfim\u2581end\uff5c>",
    ),
)
CODELLAMA = FimTemplate(
    name="codellama",
    prefix="<PRE>",
    suffix="<SUF>",
    middle="<MID>",
    stop=("<EOT>", "</s>"),
    signature=("<PRE>", "<SUF>", "<MID>", "<EOT>"),
    spaced=True,
)

TEMPLATES: dict[str, FimTemplate] = {
    t.name: t for t in (QWEN, STARCODER, DEEPSEEK, CODELLAMA, CODEGEMMA)
}

# Most specific signature first: CodeGemma and Qwen share the three FIM sentinels
# and differ only in their file separators.
_DETECTION_ORDER: Sequence[FimTemplate] = (CODEGEMMA, QWEN, STARCODER, DEEPSEEK, CODELLAMA)


class FimTemplateError(RuntimeError):
    """No known FIM family fits the served model: completions would be garbage."""


def template_by_name(name: str) -> FimTemplate:
    try:
        return TEMPLATES[name]
    except KeyError:
        known = ", ".join(sorted(TEMPLATES))
        raise FimTemplateError(f"unknown FIM template {name!r}; known: auto, {known}") from None


async def detect_template(model: str, count_tokens: Callable[[str], Awaitable[int]]) -> FimTemplate:
    """The family whose whole signature encodes to single tokens in `model`'s tokenizer.

    `count_tokens` returns how many tokens the served tokenizer makes of a string
    (without special-token additions such as BOS).
    """
    single: dict[str, bool] = {}

    async def is_single(sentinel: str) -> bool:
        if sentinel not in single:
            single[sentinel] = await count_tokens(sentinel) == 1
        return single[sentinel]

    for template in _DETECTION_ORDER:
        if all([await is_single(s) for s in template.signature]):
            return template
    # Qwen-style sentinels without the Qwen extras still mean the Qwen layout.
    if all([await is_single(s) for s in QWEN.signature[:3]]):
        return QWEN
    raise FimTemplateError(
        f"model {model!r} has no known fill-in-the-middle sentinels in its tokenizer "
        "(is it an instruct/chat model?); set ZI_INFERENCE__FIM_TEMPLATE or serve a "
        "base code model such as Qwen2.5-Coder, StarCoder2, DeepSeek-Coder, CodeLlama "
        "or CodeGemma"
    )
