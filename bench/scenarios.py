"""The benchmark scenarios; each returns a JSON-able dict of raw samples and summaries.

All of them drive the real server subprocess (``python -m server serve``) over
stdio with `bench.lsp_client` against the scripted model in its own subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import random
import re
import sqlite3
import sysconfig
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.lsp_client import (
    AUTOMATIC,
    INVOKED,
    LspClient,
    Response,
    read_rss_kb,
    server_env,
)
from bench.model import DIRECT_TAG, DirectClient, ModelProcess
from bench.stats import summary

STDLIB = Path(sysconfig.get_paths()["stdlib"])
OVERHEAD_FILE = STDLIB / "json" / "decoder.py"
TYPIST_FILE = STDLIB / "shlex.py"
FIXED_REPLY = "  # zi-bench"  # valid after any line end, absent from the files
MODEL_TTFT_S = 0.020
ORACLE_LATENCY_S = 0.030
GAP_S = 0.03  # idle time between measured requests (a user is never faster)


@dataclass
class Bench:
    model: ModelProcess
    workdir: Path
    quick: bool
    server_module: str = "server"  # `python -m <this> serve` is the server under test
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. ZI_BENCH_EXPERIMENTS


def ms(seconds: float) -> float:
    return round(seconds * 1000, 4)


@contextlib.asynccontextmanager
async def running_server(
    bench: Bench, name: str, module: str | None = None, **env: str
) -> AsyncIterator[LspClient]:
    log_path = bench.workdir / f"{name}.stderr.log"
    with log_path.open("wb") as stderr:
        lsp = await LspClient.spawn(
            server_env(bench.model.url, bench.workdir, **bench.extra_env, **env),
            stderr,
            module=module or bench.server_module,
        )
        try:
            await lsp.initialize()
            yield lsp
        finally:
            await lsp.close()


def recorded_sources(bench: Bench) -> Counter[str]:
    """Completions in the history database by source: model, typeahead, shared_cache, joined.

    Read from history rather than the log: the server logs per-completion lines at
    DEBUG only, and a DEBUG log would slow down the server being measured.
    """
    path = bench.workdir / "history.sqlite3"
    if not path.exists():
        return Counter()
    with contextlib.closing(sqlite3.connect(path, timeout=10)) as db:
        try:
            rows = db.execute("SELECT source, COUNT(*) FROM completions GROUP BY source")
        except sqlite3.OperationalError:  # not migrated yet
            return Counter()
        return Counter({str(source): int(n) for source, n in rows})


def line_ends(text: str) -> list[tuple[int, int]]:
    """(line, character) at the end of each line with code (not a continuation line)."""
    out = []
    for number, line in enumerate(text.split("\n")):
        if line.strip() and not line.rstrip().endswith("\\"):
            out.append((number, len(line.encode("utf-16-le")) // 2))
    return out


def stdlib_documents(count: int, max_bytes: int = 50_000) -> list[tuple[Path, str]]:
    docs = []
    for path in sorted(STDLIB.glob("*.py")):
        if path.stat().st_size > max_bytes:
            continue
        try:
            docs.append((path, path.read_text(encoding="utf-8")))
        except (UnicodeDecodeError, OSError):
            continue
        if len(docs) == count:
            break
    return docs


class ModelLog:
    """Completion requests the model has received, read incrementally."""

    def __init__(self, model: ModelProcess, seen: int = 0) -> None:
        self.model = model
        self.seen = seen

    @classmethod
    async def now(cls, model: ModelProcess) -> ModelLog:
        return cls(model, (await model.counts())["completions"])

    async def new(self) -> list[dict[str, Any]]:
        """Requests the server sent since the last call (the benchmark's own left out)."""
        bodies = await self.model.requests(self.seen)
        self.seen += len(bodies)
        return [b for b in bodies if b.get("user") != DIRECT_TAG]


async def _timed_pair(
    lsp: LspClient, direct: DirectClient, log: ModelLog, uri: str, line: int, char: int
) -> dict[str, Any]:
    """One invoked completion through the server, then the same prompt straight to the model."""
    response = await lsp.inline(uri, line, char, INVOKED)
    bodies = await log.new()
    if len(bodies) != 1:
        return {"line": line, "model_requests": len(bodies), "lsp_ms": ms(response.seconds)}
    direct_s, _ = await direct.post(direct.encode(bodies[0]))
    return {
        "line": line,
        "model_requests": 1,
        "lsp_ms": ms(response.seconds),
        "direct_ms": ms(direct_s),
        "overhead_ms": ms(response.seconds - direct_s),
        "shown": bool(response.items),
        "prompt_chars": len(bodies[0].get("prompt", "")),
    }


def _overhead_summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    paired = [s for s in samples if "overhead_ms" in s]
    return {
        "pairs": len(paired),
        "cache_hits_or_extra_requests": len(samples) - len(paired),
        "empty_answers": sum(1 for s in paired if not s["shown"]),
        "overhead_ms": summary([s["overhead_ms"] for s in paired]),
        "lsp_ms": summary([s["lsp_ms"] for s in paired]),
        "direct_ms": summary([s["direct_ms"] for s in paired]),
    }


# -------------------------------------------------------------- 1 + 2: latency


async def completion_latency(
    bench: Bench, n: int, typeahead_trials: int, name: str = "latency", **env: str
) -> dict[str, Any]:
    """Scenario 1 (server overhead per invoked completion) and 2 (type-ahead hits)."""
    text = OVERHEAD_FILE.read_text(encoding="utf-8")
    uri = OVERHEAD_FILE.as_uri()
    positions = line_ends(text)
    random.Random(1).shuffle(positions)
    warmup, rest = positions[:10], positions[10:]
    measured, spare = rest[:n], rest[n:]
    await bench.model.fixed(FIXED_REPLY, MODEL_TTFT_S)
    direct = DirectClient(bench.model.url)
    async with running_server(bench, name, **env) as lsp:
        lsp.did_open(uri, text)
        log = await ModelLog.now(bench.model)
        for line, char in warmup:  # imports, grammar, model resolution, token counts
            await _timed_pair(lsp, direct, log, uri, line, char)
        before = await bench.model.settle()
        samples = []
        for line, char in measured:
            samples.append(await _timed_pair(lsp, direct, log, uri, line, char))
            await asyncio.sleep(GAP_S)
        after = await bench.model.settle()
        typeahead = await _typeahead(
            bench, lsp, direct, log, uri, (spare or measured)[:typeahead_trials]
        )
        floor = await _transport_floor(lsp, log, uri, text, len(measured) // 2)
    await direct.close()
    overhead = _overhead_summary(samples)
    overhead.update(
        positions_available=len(rest),
        model_ttft_ms=MODEL_TTFT_S * 1000,
        document=str(OVERHEAD_FILE),
        tokenize_requests_during_measurement=after["tokenize"] - before["tokenize"],
        samples=samples,
    )
    return {"overhead": overhead, "typeahead": typeahead, "transport_floor": floor}


async def _transport_floor(
    lsp: LspClient, log: ModelLog, uri: str, text: str, n: int
) -> dict[str, Any]:
    """Requests the gate refuses at once (cursor inside a word): JSON-RPC + pygls alone.

    Measured alone, and right after a didChange (as a type-ahead hit is).
    """
    words = [
        (number, match.start() + 1)
        for number, line in enumerate(text.split("\n"))
        if line.isascii()
        for match in [re.search(r"[A-Za-z_]{3,}", line)]
        if match
    ]
    alone: list[float] = []
    after_change: list[float] = []
    version = 10_000
    for line, char in words[:n]:
        alone.append(ms((await lsp.inline(uri, line, char, AUTOMATIC)).seconds))
        version += 1
        lsp.did_change(uri, version, (line, char), (line, char), "x")
        after_change.append(ms((await lsp.inline(uri, line, char + 1, AUTOMATIC)).seconds))
        version += 1
        lsp.did_change(uri, version, (line, char), (line, char + 1), "")
        await asyncio.sleep(GAP_S)
    return {
        "model_requests": len(await log.new()),
        "request_ms": summary(alone),
        "change_then_request_ms": summary(after_change),
    }


async def _typeahead(
    bench: Bench,
    lsp: LspClient,
    direct: DirectClient,
    log: ModelLog,
    uri: str,
    positions: list[tuple[int, int]],
    labels: list[str] | None = None,
) -> dict[str, Any]:
    """Type the first characters of a shown suggestion; time each following request.

    `labels`, when given, gets one entry per inlineCompletion sent (for the profile).
    """
    labels = labels if labels is not None else []
    version = 1
    times: list[float] = []
    correct = 0
    model_requests_during_hits = 0
    for line, char in positions:
        labels.append("typeahead_setup")
        shown = await lsp.inline(uri, line, char, INVOKED)
        await log.new()
        if not shown.items:
            continue
        suggestion = shown.items[0]["insertText"]
        typed = 0
        for k in range(1, min(3, len(suggestion) - 1) + 1):
            version += 1
            here = (line, char + k - 1)
            lsp.did_change(uri, version, here, here, suggestion[k - 1])
            labels.append("typeahead_hit")
            response = await lsp.inline(uri, line, char + k, AUTOMATIC)
            typed = k
            times.append(ms(response.seconds))
            if response.items and response.items[0]["insertText"] == suggestion[k:]:
                correct += 1
        model_requests_during_hits += len(await log.new())
        version += 1
        lsp.did_change(uri, version, (line, char), (line, char + typed), "")  # undo the typing
        await asyncio.sleep(GAP_S)
    return {
        "requests": len(times),
        "served_remaining_suggestion": correct,
        "model_requests_during_hits": model_requests_during_hits,
        "latency_ms": summary(times),
        "samples_ms": times,
    }


# ------------------------------------------------------------------ 3: typist


async def typist(bench: Bench, chars: int, gap_s: float, name: str = "typist") -> dict[str, Any]:
    """Type a stdlib file into an empty document, one inlineCompletion per keystroke."""
    from server.completion import gate  # the server's own rule, for the comparison count

    source = TYPIST_FILE.read_text(encoding="utf-8")
    cut = source.find("\n", chars)
    text = source[: cut + 1 if cut >= 0 else len(source)]
    await bench.model.oracle(str(TYPIST_FILE), ORACLE_LATENCY_S)
    uri = (bench.workdir / "typed" / TYPIST_FILE.name).as_uri()
    state = {"version": 1}
    outcome: Counter[str] = Counter()
    latencies: dict[str, list[float]] = {"shown": [], "empty": [], "late": []}
    allowed = 0
    cancels_sent = 0

    async with running_server(bench, name) as lsp:
        # Warm up (imports, model resolution) in another document, then close it.
        warm_uri = (bench.workdir / "warmup.py").as_uri()
        lsp.did_open(warm_uri, "import os\n")
        await lsp.inline(warm_uri, 1, 0, INVOKED)
        lsp.notify("textDocument/didClose", {"textDocument": {"uri": warm_uri}})
        lsp.did_open(uri, "", version=1)
        counts0 = await bench.model.settle(quiet_s=0.3)
        sources_before = recorded_sources(bench)

        def on_answer(future: asyncio.Future[Response], index: int, version: int) -> None:
            if future.cancelled() or future.exception() is not None:
                outcome["lost"] += 1
                return
            response = future.result()
            if response.error is not None:
                outcome["cancelled" if response.error.get("code") == -32800 else "error"] += 1
                return
            if not response.items:
                outcome["empty"] += 1
                latencies["empty"].append(ms(response.seconds))
                return
            if state["version"] != version:
                outcome["late"] += 1  # the user typed on before it came
                latencies["late"].append(ms(response.seconds))
                return
            outcome["shown"] += 1
            latencies["shown"].append(ms(response.seconds))
            item = response.items[0]
            if text[index + 1 :].startswith(item["insertText"]):
                outcome["shown_correct"] += 1
            arguments = (item.get("command") or {}).get("arguments") or []
            if arguments:
                lsp.notify("zi/didShowCompletion", {"id": arguments[0]})

        typed = ""
        line = col = 0
        previous = None
        started = time.perf_counter()
        for index, ch in enumerate(text):
            delay = started + index * gap_s - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if previous is not None and not previous.future.done():
                lsp.cancel(previous.id)  # as editors do when the next keystroke comes
                cancels_sent += 1
            state["version"] += 1
            lsp.did_change(uri, state["version"], (line, col), (line, col), ch)
            typed += ch
            if ch == "\n":
                line, col = line + 1, 0
            else:
                col += len(ch.encode("utf-16-le")) // 2
            allowed += gate.allows(typed, len(typed))
            previous = lsp.send_inline(uri, line, col, AUTOMATIC)
            previous.future.add_done_callback(
                functools.partial(on_answer, index=index, version=state["version"])
            )
        elapsed = time.perf_counter() - started
        if previous is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(previous.future), 10)
        counts1 = await bench.model.settle(quiet_s=0.3)
    await asyncio.sleep(0.5)  # history is written in batches every 200 ms
    sources = recorded_sources(bench) - sources_before
    keystrokes = len(text)
    model_requests = counts1["completions"] - counts0["completions"]
    hits = sources["typeahead"] + sources["shared_cache"]
    per100 = 100 / keystrokes
    return {
        "file": str(TYPIST_FILE),
        "keystrokes": keystrokes,
        "gap_ms": gap_s * 1000,
        "typing_seconds": round(elapsed, 2),
        "model_latency_ms": ORACLE_LATENCY_S * 1000,
        "model_requests": model_requests,
        "model_requests_per_100": round(model_requests * per100, 2),
        "model_streams_cancelled": counts1["cancelled"] - counts0["cancelled"],
        "tokenize_requests_per_100": round((counts1["tokenize"] - counts0["tokenize"]) * per100, 2),
        "gate_allowed_per_100": round(allowed * per100, 2),
        "cancel_requests_sent": cancels_sent,
        "answers": dict(outcome),
        "sources": dict(sources),
        "cache_hit_rate": round(hits / keystrokes, 4),
        "cache_hit_rate_of_answers": round(hits / max(sum(sources.values()), 1), 4),
        "shown_per_100": round(outcome["shown"] * per100, 2),
        "shown_correct_per_100": round(outcome["shown_correct"] * per100, 2),
        "latency_ms": {k: summary(v) for k, v in latencies.items()},
        "latency_samples_ms": latencies,
    }


# -------------------------------------------------------------- 4: initialize


async def initialize_latency(bench: Bench, runs: int) -> dict[str, Any]:
    """Spawn → initialize answer, with and without fast start; and spawn → first completion."""
    modes = ("fast_start", "no_fast_start")
    text = OVERHEAD_FILE.read_text(encoding="utf-8")
    uri = OVERHEAD_FILE.as_uri()
    line, char = line_ends(text)[40]
    await bench.model.fixed(FIXED_REPLY, MODEL_TTFT_S)
    results: dict[str, dict[str, list[float]]] = {
        mode: {"initialize_ms": [], "first_completion_ms": []} for mode in modes
    }
    for run in range(runs + 1):  # run 0 warms the OS file cache and is not counted
        for mode in modes if run % 2 else modes[::-1]:  # alternate who goes first
            env = server_env(
                bench.model.url,
                bench.workdir,
                **bench.extra_env,
                ZI_FAST_START="true" if mode == "fast_start" else "false",
            )
            with (bench.workdir / f"init-{mode}.stderr.log").open("ab") as stderr:
                started = time.perf_counter()
                lsp = await LspClient.spawn(env, stderr, module=bench.server_module)
                try:
                    init = await lsp.initialize()
                    lsp.did_open(uri, text)
                    first = await lsp.inline(uri, line, char, INVOKED)
                finally:
                    await lsp.close()
            if run:
                results[mode]["initialize_ms"].append(ms(init.received - started))
                results[mode]["first_completion_ms"].append(ms(first.received - started))
    return {
        mode: {
            "initialize_ms": summary(r["initialize_ms"]),
            "first_completion_ms": summary(r["first_completion_ms"]),
            "samples": r,
        }
        for mode, r in results.items()
    }


# -------------------------------------------------------------------- 5: RSS


async def memory(bench: Bench, completions: int) -> dict[str, Any]:
    """RSS with 100 open stdlib documents, after completions in some of them."""
    docs = stdlib_documents(100)
    await bench.model.fixed(FIXED_REPLY, MODEL_TTFT_S)
    direct = DirectClient(bench.model.url)
    rng = random.Random(5)
    samples = []
    async with running_server(bench, "memory") as lsp:
        first_path, first_text = docs[0]
        lsp.did_open(first_path.as_uri(), first_text)
        log = await ModelLog.now(bench.model)
        line, char = rng.choice(line_ends(first_text))
        await _timed_pair(lsp, direct, log, first_path.as_uri(), line, char)
        await bench.model.settle()
        baseline = read_rss_kb(lsp.pid)
        for path, text in docs[1:]:
            lsp.did_open(path.as_uri(), text)
        await lsp.drain()
        few = docs[1 :: max(len(docs) // completions, 1)][:completions]
        for path, text in few:
            line, char = rng.choice(line_ends(text))
            samples.append(await _timed_pair(lsp, direct, log, path.as_uri(), line, char))
            await asyncio.sleep(GAP_S)
        await bench.model.settle()
        loaded = read_rss_kb(lsp.pid)
        # Snippet indexes grow with each document completed in: complete in all of them.
        for path, text in docs[1:]:
            if (path, text) not in few:
                line, char = rng.choice(line_ends(text))
                await _timed_pair(lsp, direct, log, path.as_uri(), line, char)
        await bench.model.settle()
        everywhere = read_rss_kb(lsp.pid)
    await direct.close()
    return {
        "documents": len(docs),
        "document_bytes": sum(len(t.encode()) for _, t in docs),
        "completions": len(few),
        "rss_mb": round(loaded["VmRSS"] / 1024, 1),
        "peak_rss_mb": round(loaded["VmHWM"] / 1024, 1),
        "rss_one_document_mb": round(baseline["VmRSS"] / 1024, 1),
        "rss_after_completing_in_every_document_mb": round(everywhere["VmRSS"] / 1024, 1),
        "overhead_with_100_documents": _overhead_summary(samples) | {"samples": samples},
    }


# ------------------------------------------------------------ stage profile


async def stage_profile(bench: Bench, n: int, typeahead_trials: int) -> dict[str, Any]:
    """Where the time goes: the profiled server, with 1 and then 100 open documents.

    Every inlineCompletion gets one profile record, in order; `labels` says which
    phase each request belonged to.
    """
    profile = bench.workdir / "profile.jsonl"
    profile.unlink(missing_ok=True)
    text = OVERHEAD_FILE.read_text(encoding="utf-8")
    uri = OVERHEAD_FILE.as_uri()
    positions = line_ends(text)
    random.Random(3).shuffle(positions)
    await bench.model.fixed(FIXED_REPLY, MODEL_TTFT_S)
    direct = DirectClient(bench.model.url)
    labels: list[str] = []
    pairs: list[dict[str, Any] | None] = []  # None: a request that was not a timed pair
    tokenize: dict[str, int] = {}

    async def measure(phase: str, chosen: list[tuple[int, int]]) -> None:
        before = await bench.model.settle(quiet_s=0.3)
        for line, char in chosen:
            labels.append(phase)
            pairs.append(await _timed_pair(lsp, direct, log, uri, line, char))
            await asyncio.sleep(GAP_S)
        after = await bench.model.settle(quiet_s=0.3)
        tokenize[phase] = after["tokenize"] - before["tokenize"]

    async with running_server(
        bench, "profile", module="bench.profiled_server", ZI_BENCH_PROFILE=str(profile)
    ) as lsp:
        lsp.did_open(uri, text)
        log = await ModelLog.now(bench.model)
        await measure("warmup", positions[:10])
        await measure("one_document", positions[10 : 10 + n])
        hits = await _typeahead(
            bench, lsp, direct, log, uri, positions[10 + n : 10 + n + typeahead_trials], labels
        )
        pairs.extend([None] * (len(labels) - len(pairs)))
        for path, other in stdlib_documents(100):
            if path != OVERHEAD_FILE:
                lsp.did_open(path.as_uri(), other)
        await lsp.drain()
        start = 10 + n + typeahead_trials
        await measure("100_documents", positions[start : start + n])
    await direct.close()
    records = _profile_lines(profile)
    out: dict[str, Any] = {"tokenize_requests": tokenize, "typeahead_hits": hits["latency_ms"]}
    for phase in ("one_document", "typeahead_hit", "100_documents"):
        chosen = [
            (pair, record)
            for label, pair, record in zip(labels, pairs, records, strict=False)
            if label == phase
        ]
        stages: dict[str, list[float]] = {}
        for _, record in chosen:
            for stage, value in record.items():
                stages.setdefault(stage, []).append(value)
        samples = [pair | {"stages_ms": record} for pair, record in chosen if pair]
        out[phase] = {
            "requests": len(chosen),
            "overhead_ms": _overhead_summary(samples)["overhead_ms"] if samples else None,
            "split_ms": _split(samples),
            "stages_ms": {stage: summary(v) for stage, v in stages.items()},
            "records": [record for _, record in chosen],
        }
    return out


def _split(samples: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Overhead in three parts: JSON-RPC/pygls, the pipeline's own work, the HTTP client."""
    parts: dict[str, list[float]] = {"transport": [], "pipeline": [], "http_client": []}
    for sample in samples:
        stages = sample.get("stages_ms", {})
        if "direct_ms" not in sample or "model_stream" not in stages:
            continue
        parts["transport"].append(sample["lsp_ms"] - stages["handler"])
        parts["pipeline"].append(stages["handler"] - stages["model_stream"])
        parts["http_client"].append(stages["model_stream"] - sample["direct_ms"])
    return {name: summary(values) for name, values in parts.items() if values}


def _profile_lines(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
