"""A completion's model call, made one way: the request sent, where reading stops, the suggestion.

The live pipeline (:mod:`server.completion.service`) and ``zi-coder replay``
(:mod:`server.history.replayer`) both build the request, read the stream and turn
the answer into a suggestion with these functions, so that a replay measures what
users would get and the two cannot drift apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.completion import gate, postprocess
from server.completion.types import Mode

if TYPE_CHECKING:
    from inference.client import CompletionRequest
    from inference.fim import FimTemplate
    from server.completion.backend import ModelInfo
    from server.settings import CompletionSettings, InferenceSettings
    from server.syntax import Syntax

# Two blank lines end a multi-line answer: the block is over.
MULTI_LINE_STOPS = ("\n\n\n",)
# vLLM accepts at most 4 stop strings; the rest of a template's end tokens are the
# model's EOS (vLLM stops there anyway) or are cut by post-processing.
MAX_STOP_SEQUENCES = 4


def max_tokens(settings: CompletionSettings, mode: Mode) -> int:
    """The tokens a suggestion of `mode` may take."""
    if mode is Mode.SINGLE_LINE:
        return settings.max_tokens_single_line
    return settings.max_tokens_multi_line


def end_strings(mode: Mode, template: FimTemplate) -> tuple[str, ...]:
    """Every string that ends an answer of `mode` with `template`, the mode's own first."""
    if mode is Mode.SINGLE_LINE:
        return ("\n", *template.stop)
    return (*MULTI_LINE_STOPS, *template.stop)


def model_request(
    info: ModelInfo,
    prompt: str,
    mode: Mode,
    *,
    completion: CompletionSettings,
    inference: InferenceSettings,
) -> CompletionRequest:
    """The request sent to `info`'s model for `prompt` (already rendered with its template)."""
    from inference.client import CompletionRequest

    ends = end_strings(mode, info.template)
    stop = ends[:MAX_STOP_SEQUENCES]
    return CompletionRequest(
        model=info.name,
        prompt=prompt,
        max_tokens=max_tokens(completion, mode),
        stop=stop,
        stop_all=(*stop, *info.template.stop),
        temperature=inference.temperature,
        extra=dict(inference.extra_body),
    )


def surroundings(text: str, offset: int, language_id: str) -> postprocess.Surroundings:
    """Post-processing's view of the cursor at `offset` in `text`."""
    window = gate.parse_window(text, offset)
    return postprocess.Surroundings(
        language_id=language_id,
        before=window.before(text, offset),
        after=window.after(text, offset),
        header_indent=header_indent(text, offset),
    )


def header_indent(text: str, offset: int) -> int:
    """Indentation of the last non-blank line before the cursor's line."""
    line_start = text.rfind("\n", 0, offset) + 1
    end = line_start - 1
    while end > 0:
        start = text.rfind("\n", 0, end) + 1
        line = text[start:end]
        if line.strip():
            return len(line) - len(line.lstrip(" \t"))
        end = start - 1
    return 0


def answer_complete(raw: str, mode: Mode, around: postprocess.Surroundings) -> bool:
    """Whether the streamed answer so far holds all a suggestion can use: stop reading
    (leaving the stream closes it, and the model stops generating)."""
    if mode is Mode.SINGLE_LINE:
        return "\n" in raw
    return postprocess.block_is_complete(raw, around.header_indent)


def suggestion(
    raw: str,
    ends: tuple[str, ...],
    *,
    mode: Mode,
    around: postprocess.Surroundings,
    syntax: Syntax,
) -> str:
    """The suggestion made of a raw answer: cut at the first of `ends` (the request's
    ``stop_all``), then post-processed; '' when nothing is worth showing."""
    cut = postprocess.cut_at_stops(raw, ends)
    return postprocess.clean(cut, mode=mode, around=around, syntax=syntax) or ""
