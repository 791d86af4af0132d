"""The load side of ``bench.inference``: typists, their prompt streams, and timed requests.

A typist types through one real source file (from the standard library, so every
machine has the same ones). Each prompt is what the language server would send
at that keystroke: a fill-in-the-middle prompt of the text before the cursor and
the rest of the file after it, cut to the token budgets by the server's own
``budget_prefix``/``budget_suffix`` (so the prompt head stays byte-identical
while the user types, which is what automatic prefix caching can exploit). Each
next prompt extends the previous one by a few typed characters. Typists run in a
closed loop: the next keystroke's request leaves when the previous answer ends.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import sysconfig
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.stats import summary
from inference.fim import FimTemplate
from inference.tokens import TokenCounter
from server.completion.context import budget_prefix, budget_suffix

# Files big enough that a typist never reaches the end and both budgets fill up.
MIN_FILE_CHARS = 12_000
MAX_FILE_CHARS = 400_000
# Characters typed between two requests: what editors send after their debounce.
TYPED_CHARS = (2, 6)


class RatioCounter:
    """Characters per token measured on the served tokenizer, with a safety margin.

    Used when the model's tokenizer.json is not on this machine (a remote server).
    """

    exact = False

    def __init__(self, chars_per_token: float, margin: float = 1.1) -> None:
        self._chars_per_token = chars_per_token / margin

    def count(self, text: str) -> int:
        return math.ceil(len(text) / self._chars_per_token)


def stdlib_sources(min_chars: int = MIN_FILE_CHARS, max_chars: int = MAX_FILE_CHARS) -> list[Path]:
    """Python files of this interpreter's standard library, in a stable order (no tests)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).parts
        if any(p in {"site-packages", "test", "tests", "idle_test"} for p in rel):
            continue
        try:
            size = path.stat().st_size
        except OSError:
            continue
        if min_chars <= size <= max_chars:
            found.append(path)
    return found


def pick_files(count: int, seed: int) -> list[Path]:
    """`count` distinct source files, the same ones for the same seed and Python."""
    candidates = stdlib_sources()
    if len(candidates) < count:
        raise RuntimeError(f"only {len(candidates)} standard-library files; {count} needed")
    return random.Random(seed).sample(candidates, count)


@dataclass(frozen=True, slots=True)
class Typist:
    name: str  # path shown in the prompt header and the raw samples
    prompts: tuple[str, ...]


def typing_stream(
    path: Path,
    count: int,
    *,
    seed: int,
    template: FimTemplate,
    prefix_tokens: int,
    suffix_tokens: int,
    counter: TokenCounter,
) -> Typist:
    """`count` prompts of someone typing `path` from a point in its middle."""
    text = path.read_text(encoding="utf-8", errors="replace")
    rng = random.Random(f"{seed}:{path.name}")
    cursor = int(len(text) * rng.uniform(0.35, 0.6))
    head = f"# Path: {path.name}\n"
    prompts = []
    for _ in range(count):
        prefix = budget_prefix(text, cursor, prefix_tokens, counter)
        suffix = budget_suffix(text, cursor, suffix_tokens, counter)
        prompts.append(template.render(head + prefix, suffix))
        cursor = min(len(text), cursor + rng.randint(*TYPED_CHARS))
    return Typist(name=path.name, prompts=tuple(prompts))


@dataclass(frozen=True, slots=True)
class Sample:
    typist: int
    index: int
    warmup: bool
    start_s: float  # since the level started
    ttft_s: float | None
    total_s: float
    tokens: int  # completion tokens the server reported (or text chunks if it did not)
    prompt_tokens: int | None
    chunks: int
    error: str | None = None

    @property
    def decode_tok_s(self) -> float | None:
        """Per-request generation speed after the first token: (n - 1) / (total - TTFT)."""
        if self.ttft_s is None or self.tokens < 2 or self.total_s <= self.ttft_s:
            return None
        return (self.tokens - 1) / (self.total_s - self.ttft_s)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "decode_tok_s": self.decode_tok_s}


async def timed_completion(
    session: Any,
    url: str,
    model: str,
    prompt: str,
    max_tokens: int,
    *,
    typist: int,
    index: int,
    warmup: bool,
    t0: float,
) -> Sample:
    """One streamed /completions request, timed from send to first text and to the end.

    ``ignore_eos`` and no stop strings: every request produces exactly `max_tokens`
    tokens, so runs compare equal work (random weights would stop at once).
    """
    body = {
        "model": model,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": 0.2,
        "stream": True,
        "ignore_eos": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    ttft: float | None = None
    chunks = 0
    usage: dict[str, Any] = {}
    error = None
    try:
        async with session.post(f"{url}/completions", json=body) as response:
            if response.status != 200:
                error = f"HTTP {response.status}: {(await response.read())[:200]!r}"
            else:
                async for raw in response.content:
                    if not raw.startswith(b"data:"):
                        continue
                    payload = raw[5:].strip()
                    if payload == b"[DONE]":
                        break
                    data = json.loads(payload)
                    choices = data.get("choices") or []
                    if choices and choices[0].get("text"):
                        chunks += 1
                        if ttft is None:
                            ttft = time.perf_counter() - started
                    if data.get("usage"):
                        usage = data["usage"]
    except Exception as exc:  # recorded, counted and reported; the run goes on
        error = f"{exc.__class__.__name__}: {exc}"
    total = time.perf_counter() - started
    return Sample(
        typist=typist,
        index=index,
        warmup=warmup,
        start_s=started - t0,
        ttft_s=ttft,
        total_s=total,
        tokens=int(usage.get("completion_tokens", chunks)),
        prompt_tokens=usage.get("prompt_tokens"),
        chunks=chunks,
        error=error,
    )


@dataclass(frozen=True, slots=True)
class LevelRun:
    concurrency: int
    samples: tuple[Sample, ...]
    wall_s: float

    @property
    def measured(self) -> list[Sample]:
        return [s for s in self.samples if not s.warmup and s.error is None]

    @property
    def errors(self) -> list[Sample]:
        return [s for s in self.samples if s.error is not None]

    def aggregate_tok_s(self) -> float:
        """Tokens of measured requests / the span from the first one's start to the last end."""
        measured = self.measured
        if not measured:
            return math.nan
        begin = min(s.start_s for s in measured)
        end = max(s.start_s + s.total_s for s in measured)
        return sum(s.tokens for s in measured) / (end - begin) if end > begin else math.nan

    def summary(
        self, label: str, cache_before: dict[str, Any], cache_after: dict[str, Any]
    ) -> dict[str, Any]:
        """The level's figures and raw samples; cache counters come from vLLM's /metrics."""
        measured = self.measured
        queries = cache_after["queries"] - cache_before["queries"]
        hits = cache_after["hits"] - cache_before["hits"]
        return {
            "prefix_caching": label,
            "concurrency": self.concurrency,
            "requests": len(measured),
            "errors": len(self.errors),
            "error_examples": sorted({s.error or "" for s in self.errors})[:3],
            "wall_s": round(self.wall_s, 2),
            "ttft_ms": summary([s.ttft_s * 1000 for s in measured if s.ttft_s is not None]),
            "total_ms": summary([s.total_s * 1000 for s in measured]),
            "decode_tok_s": summary([v for s in measured if (v := s.decode_tok_s) is not None]),
            "prompt_tokens": summary([s.prompt_tokens for s in measured if s.prompt_tokens]),
            "completion_tokens": summary([s.tokens for s in measured]),
            "aggregate_tok_s": self.aggregate_tok_s(),
            # vLLM's token-level hit rate over the level, warm-up requests included.
            "prefix_cache": {
                "queries": queries,
                "hits": hits,
                "hit_rate": hits / queries if queries else None,
            },
            "samples": [s.to_json() for s in self.samples],
        }


async def run_level(
    session: Any,
    url: str,
    model: str,
    typists: Sequence[Typist],
    *,
    warmup: int,
    max_tokens: int,
    stagger_s: float = 0.0,
    seed: int = 0,
) -> LevelRun:
    """All typists at once, each sending its prompts one after another.

    Typist i starts after a random delay in ``[0, stagger_s)``: started together,
    closed-loop clients with equal-length answers stay in lockstep (every round a
    burst of C simultaneous prefills), which no group of real users produces.
    """
    t0 = time.perf_counter()
    rng = random.Random(seed)
    delays = [rng.uniform(0, stagger_s) if stagger_s > 0 else 0.0 for _ in typists]

    async def type_through(number: int, typist: Typist) -> list[Sample]:
        await asyncio.sleep(delays[number])
        out = []
        for index, prompt in enumerate(typist.prompts):
            out.append(
                await timed_completion(
                    session,
                    url,
                    model,
                    prompt,
                    max_tokens,
                    typist=number,
                    index=index,
                    warmup=index < warmup,
                    t0=t0,
                )
            )
        return out

    per_typist = await asyncio.gather(*(type_through(i, t) for i, t in enumerate(typists)))
    samples = tuple(s for group in per_typist for s in group)
    return LevelRun(concurrency=len(typists), samples=samples, wall_s=time.perf_counter() - t0)
