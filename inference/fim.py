"""Fill-in-the-middle prompt templates, rendered here for each model family.

vLLM's ``/v1/completions`` rejects the OpenAI ``suffix`` field, so the FIM prompt
is rendered client-side with each family's exact sentinels. ``auto`` detection
asks the *served tokenizer* which sentinels encode to a single token (a model's
name says nothing reliable about its vocabulary); when the served model is a
local directory, its ``tokenizer.json`` answers first without a round trip and
the served tokenizer confirms. A configured template is verified the same way:
a wrong or missing template is a clear error naming the model, never a prompt
whose sentinels the model reads as ordinary text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

AUTO = "auto"
#: Sync and async ways to ask a tokenizer how many tokens it makes of a string
#: (without special-token additions such as BOS).
CountTokens = Callable[[str], int]
CountTokensAsync = Callable[[str], Awaitable[int]]


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

    @property
    def sentinels(self) -> tuple[str, str, str]:
        """The three a prompt is built from: they must be single tokens for the model."""
        return (self.prefix, self.suffix, self.middle)

    def render(self, prefix: str, suffix: str) -> str:
        """The prompt in prefix-suffix-middle order; the model writes the middle."""
        start, between, end = self._frame()
        return f"{start}{prefix}{between}{suffix}{end}"

    def split(self, prompt: str) -> tuple[str, str]:
        """The prefix and suffix :meth:`render` made `prompt` from (its inverse).

        For ``zi-coder replay``, which re-renders recorded prompts with another
        template. Raises ValueError when `prompt` is not this template's rendering,
        or when the suffix sentinel occurs more than once (code containing the
        sentinel's text: where the suffix starts cannot be told).
        """
        start, between, end = self._frame()
        if (
            len(prompt) < len(start) + len(end)
            or not prompt.startswith(start)
            or not prompt.endswith(end)
        ):
            raise ValueError(f"not a prompt of the {self.name} FIM template")
        body = prompt[len(start) : len(prompt) - len(end)]
        found = body.count(between)
        if found != 1:
            raise ValueError(
                f"the {self.name} suffix sentinel {self.suffix} occurs {found} times in the "
                "prompt; where the suffix starts is ambiguous"
            )
        prefix, suffix = body.split(between)
        return prefix, suffix

    def _frame(self) -> tuple[str, str, str]:
        """What goes before the prefix, between prefix and suffix, and after the suffix:
        :meth:`render` and :meth:`split` share it so that they stay each other's inverse."""
        if self.spaced:
            return f"{self.prefix} ", f" {self.suffix}", f" {self.middle}"
        return self.prefix, self.suffix, self.middle


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


async def detect_template(model: str, count_tokens: CountTokensAsync) -> FimTemplate:
    """The family whose whole signature encodes to single tokens in `model`'s tokenizer.

    `count_tokens` returns how many tokens the served tokenizer makes of a string
    (without special-token additions such as BOS). Sentinels are asked lazily, in
    detection order, so a common model costs a handful of calls.
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
    raise _no_template(model, "in its tokenizer")


def detect_template_local(model: str, count: CountTokens, *, where: str = "") -> FimTemplate:
    """`detect_template` for a tokenizer at hand (a local tokenizer.json): no I/O."""
    for template in _DETECTION_ORDER:
        if all(count(s) == 1 for s in template.signature):
            return template
    if all(count(s) == 1 for s in QWEN.signature[:3]):
        return QWEN
    raise _no_template(model, where or "in its tokenizer")


def count_with_tokenizer_file(path: Path) -> CountTokens:
    """Token counts from a local ``tokenizer.json``, as vLLM's /tokenize would give them.

    Added (special) tokens are matched whole before pre-tokenization, both here and
    in transformers, so sentinel counts agree even where the pipelines differ.
    Raises FimTemplateError if the file cannot be loaded.
    """
    from tokenizers import Tokenizer  # lazy: only model resolution needs it

    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises plain Exceptions for bad files
        raise FimTemplateError(f"cannot load the tokenizer {path}: {exc}") from exc

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return count


def detect_template_from_tokenizer_file(model: str, path: Path) -> FimTemplate:
    """The FIM family of `model` according to its local ``tokenizer.json`` at `path`.

    Blocking (loads the file): call it off the event loop.
    """
    return detect_template_local(model, count_with_tokenizer_file(path), where=f"in {path}")


async def verify_template(
    model: str, template: FimTemplate, count_tokens: CountTokensAsync
) -> None:
    """Raise FimTemplateError unless `template`'s sentinels are single tokens for `model`.

    For a configured (non-auto) template: sentinels the model does not know as
    tokens are just text to it, and it would complete garbage without any error.
    The message names the model, what was expected and what was found, and the
    family its tokenizer does have, if any.
    """
    problems = await _mismatch(template, count_tokens)
    if not problems:
        return
    try:
        fits = await detect_template(model, count_tokens)
        hint = (
            f"its tokenizer has the {fits.name} sentinels: set inference.fim_template "
            f"to {fits.name} or auto"
        )
    except FimTemplateError:
        hint = "its tokenizer has no known FIM sentinels (is it an instruct/chat model?)"
    raise FimTemplateError(
        f"model {model!r} does not fit the {template.name} FIM template: expected "
        f"{', '.join(template.sentinels)} to be single tokens, but {problems}; {hint}"
    )


def template_mismatch(template: FimTemplate, counts: Mapping[str, int]) -> str:
    """What is wrong with `template`'s sentinels given their token counts ('' if nothing)."""
    wrong = [f"{s} is {counts.get(s, 0)} tokens" for s in template.sentinels if counts.get(s) != 1]
    return ", ".join(wrong)


async def _mismatch(template: FimTemplate, count_tokens: CountTokensAsync) -> str:
    sentinels = template.sentinels
    counts = await asyncio.gather(*(count_tokens(s) for s in sentinels))
    return template_mismatch(template, dict(zip(sentinels, counts, strict=True)))


async def resolve_template(
    model: str,
    configured: str,
    count_tokens: CountTokensAsync,
    *,
    local_count: CountTokens | None = None,
    local_source: str = "its local tokenizer.json",
) -> FimTemplate:
    """The FIM template to use for `model`: configured and verified, or detected.

    `configured` is a template name or ``auto``. `count_tokens` asks the served
    tokenizer (vLLM's /tokenize). `local_count` counts with the model's local
    tokenizer.json when the served model is a directory on this machine: `auto`
    then detects from it without a round trip per sentinel, and the served
    tokenizer confirms the result (3 calls), so a tokenizer.json that is not the
    served one is caught rather than trusted.
    """
    if configured != AUTO:
        template = template_by_name(configured)
        await verify_template(model, template, count_tokens)
        return template
    if local_count is None:
        return await detect_template(model, count_tokens)
    template = detect_template_local(model, local_count, where=f"in {local_source}")
    problems = await _mismatch(template, count_tokens)
    if problems:
        raise FimTemplateError(
            f"model {model!r}: {local_source} has the {template.name} FIM sentinels, but the "
            f"served tokenizer disagrees ({problems}); the local file is not the served "
            "model's tokenizer"
        )
    return template


def _no_template(model: str, where: str) -> FimTemplateError:
    return FimTemplateError(
        f"model {model!r} has no known fill-in-the-middle sentinels {where} "
        "(is it an instruct/chat model?); set ZI_INFERENCE__FIM_TEMPLATE or serve a "
        "base code model such as Qwen2.5-Coder, StarCoder2, DeepSeek-Coder, CodeLlama "
        "or CodeGemma"
    )
