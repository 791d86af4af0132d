"""Token counters for prompt budgets: local tokenizer.json, remote /tokenize, estimate."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from inference.tokens import CharEstimateCounter, LocalTokenCounter, RemoteTokenCounter


@pytest.fixture(scope="module")
def tokenizer_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny word-level tokenizer: one token per word or punctuation mark."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, "def": 1, "return": 2, "x": 3, "(": 4, ")": 5, ":": 6, "f": 7}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tokenizer.save(str(path))
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("def", 1),
        ("def f(x):", 6),
        ("def f(x):\n    return x\n", 8),
        ("return x\nreturn x\nreturn x", 6),
        ("lambda", 1),  # not in the vocabulary: [UNK] is still one token
        ("\n\n", 0),
    ],
)
def test_local_counter_counts_the_tokenizers_tokens(
    tokenizer_json: Path, text: str, expected: int
) -> None:
    counter = LocalTokenCounter(tokenizer_json)
    assert counter.exact is True
    assert counter.count(text) == expected


def test_local_counter_is_additive_over_lines(tokenizer_json: Path) -> None:
    counter = LocalTokenCounter(tokenizer_json, cache_lines=2)
    lines = ["def f(x):\n", "    return x\n", "f(x)\n", "x\n"]
    total = counter.count("".join(lines))
    assert total == sum(counter.count(line) for line in lines)
    assert counter.count("".join(lines)) == total  # after evictions from a tiny cache


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", 0), ("a", 1), ("abcd", 1), ("abcde", 2), ("x" * 40, 10)],
)
def test_char_estimate_counter(text: str, expected: int) -> None:
    counter = CharEstimateCounter()
    assert counter.exact is False
    assert counter.count(text) == expected


class FakeTokenize:
    """The model server's /tokenize: one token per whitespace-separated word."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[str] = []
        self.answered = 0
        self.fail = fail

    async def __call__(self, text: str) -> int:
        self.calls.append(text)
        await asyncio.sleep(0)  # a round trip
        if self.fail:
            raise ConnectionError("model server down")
        self.answered += 1
        return len(text.split())


async def answered(tokenize: FakeTokenize, n: int) -> None:
    """Let the background fill run until `n` lines have been answered."""
    for _ in range(200):
        if tokenize.answered >= n:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"only {tokenize.answered} of {n} lines were tokenized")


TEXT = "def compute(alpha, beta):\n    return alpha * beta\n"
EXACT = 3 + 4  # words per line, as FakeTokenize counts them
ESTIMATE = sum(math.ceil(len(line) / 3) for line in TEXT.splitlines(keepends=True))


async def test_remote_counter_estimates_first_then_counts_exactly() -> None:
    tokenize = FakeTokenize()
    counter = RemoteTokenCounter(tokenize, pause_s=0)
    assert ESTIMATE != EXACT
    assert counter.count(TEXT) == ESTIMATE  # no round trip on the latency path
    await answered(tokenize, 2)
    assert counter.count(TEXT) == EXACT
    assert sorted(tokenize.calls) == sorted(TEXT.splitlines(keepends=True))


async def test_remote_counter_estimate_is_conservative() -> None:
    """3 chars per token overstates typical code, so budgets built on estimates fit."""
    counter = RemoteTokenCounter(FakeTokenize())
    assert counter.count(TEXT) >= EXACT


async def test_remote_counter_asks_only_for_unknown_lines() -> None:
    tokenize = FakeTokenize()
    counter = RemoteTokenCounter(tokenize, pause_s=0)
    counter.count("alpha beta\n")
    await answered(tokenize, 1)
    assert counter.count("alpha beta\ngamma\n") == 2 + math.ceil(len("gamma\n") / 3)
    await answered(tokenize, 2)
    assert counter.count("alpha beta\ngamma\n") == 3
    assert tokenize.calls == ["alpha beta\n", "gamma\n"]


async def test_remote_counter_keeps_estimates_when_tokenize_fails() -> None:
    counter = RemoteTokenCounter(FakeTokenize(fail=True))
    assert counter.count(TEXT) == ESTIMATE
    for _ in range(20):
        await asyncio.sleep(0)
    assert counter.count(TEXT) == ESTIMATE


def test_remote_counter_without_an_event_loop_estimates() -> None:
    tokenize = FakeTokenize()
    counter = RemoteTokenCounter(tokenize, pause_s=0)
    assert counter.count(TEXT) == ESTIMATE
    assert counter.count(TEXT) == ESTIMATE
    assert tokenize.calls == []
