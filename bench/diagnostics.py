"""Diagnostics benchmark: static checks on save, and the AI review's round trip.

    uv run python -m bench.diagnostics [--quick] [--json PATH]

1. Static diagnostics (review off) of a 5,000-line file (``_pydecimal.py`` cut
   where it parses, padded with comments): each iteration edits one line with
   didChange (a comment appended; every third time a ``def`` line loses its
   colon instead: a syntax error), then times didSave → the first
   publishDiagnostics for that version; with ruff, then pyflakes. Also didOpen →
   first publish, once the server has booted (a tiny file is opened first: its
   time after ``initialize`` is the server's boot behind fast start).
2. Review overhead (review on, debounce 0): the scripted chat model answers at
   once with one finding on the edited line. Overhead = didSave → the publish of
   that version with a ``zi-review`` diagnostic, minus the model time: a direct
   streamed POST of the *identical* chat body the server sent (fetched from the
   model server). For ``secrets.py`` and the 5,000-line file, with the in-process
   runner, then RQ (a real Valkey, one ``zi-coder worker``). Every save changes
   the content, so the server's review cache never answers.

Prints a Markdown table; raw samples go to ``bench/results/diagnostics.json``.
The full run takes about 3.5 minutes on 2 CPUs, ``--quick`` about 1.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.jobs import _measure, _start_workers, _stop, _wait_registered
from bench.lsp_client import LspClient
from bench.model import DIRECT_TAG, DirectClient, ModelProcess
from bench.scenarios import STDLIB, Bench, ms, running_server
from bench.stats import summary

BIG_SOURCE, BIG_LINES = STDLIB / "_pydecimal.py", 5000
SMALL_SOURCE = STDLIB / "secrets.py"
GAP_S = 0.05  # between didChange and didSave, and after each save
WARMUP = 3
FAST = {"ZI_DIAGNOSTICS__DEBOUNCE_MS": "0", "ZI_DIAGNOSTICS__MAX_FILE_CHARS": "1000000"}
RQ_PARTS = {
    "save_to_enqueue_ms": "didSave → job enqueued",
    "enqueue_to_start_ms": "enqueued → started (fork)",
    "job_minus_model_ms": "started → ended, minus model",
    "job_end_to_publish_ms": "ended → review publish (polled, 10 ms backing off)",
}
SIZES = {
    "full": {"static_n": 100, "opens": 10, "review_n": 40, "noop_jobs": 50},
    "quick": {"static_n": 15, "opens": 3, "review_n": 8, "noop_jobs": 10},
}


def big_text() -> str:
    lines = BIG_SOURCE.read_text(encoding="utf-8").splitlines(keepends=True)
    cut = next(k for k in range(BIG_LINES, 0, -1) if _parses("".join(lines[:k])))
    return "".join(lines[:cut]) + "# padding\n" * (BIG_LINES - cut)


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
    except SyntaxError:
        return False
    return True


def _replace_line(line: int, old: str, new: str) -> dict[str, Any]:
    end = {"line": line, "character": len(old.encode("utf-16-le")) // 2}
    return {"range": {"start": {"line": line, "character": 0}, "end": end}, "text": new}


def sources(message: dict[str, Any]) -> set[str]:
    return {str(d.get("source")) for d in message["params"]["diagnostics"]}


class Doc:
    """A document open in the server: the original text with at most one line edited."""

    def __init__(self, lsp: LspClient, path: Path, text: str) -> None:
        path.write_text(text, encoding="utf-8")  # ruff runs in the file's directory
        self.lsp, self.uri, self.lines = lsp, path.as_uri(), text.split("\n")
        self.version, self.edited, self.edited_text = 1, -1, ""
        lsp.did_open(self.uri, text)

    def edit(self, line: int, new: str) -> int:
        """didChange: the line edited last back as it was, then `line` := `new`."""
        changes = [_replace_line(line, self.lines[line], new)]
        if self.edited >= 0:
            changes.insert(0, _replace_line(self.edited, self.edited_text, self.lines[self.edited]))
        self.version, self.edited, self.edited_text = self.version + 1, line, new
        document = {"uri": self.uri, "version": self.version}
        self.lsp.notify(
            "textDocument/didChange", {"textDocument": document, "contentChanges": changes}
        )
        return self.version

    async def published(
        self, since: int, version: int, test: Callable[[dict[str, Any]], bool] = bool
    ) -> tuple[int, float]:
        """(index, time read) of the first publish for `version` from `since` on passing `test`."""

        def match(m: dict[str, Any]) -> bool:
            p = m.get("params") or {}
            is_publish = m["method"] == "textDocument/publishDiagnostics"
            return is_publish and p.get("uri") == self.uri and p.get("version") == version

        index = await self.lsp.wait_notification(lambda m: match(m) and test(m), since, 60)
        return index, self.lsp.notification_times[index]

    async def saved(self, version: int) -> tuple[float, int, float]:
        """didSave: (time written, index and time of the first publish for `version`)."""
        since = len(self.lsp.notifications)
        sent = self.lsp.did_save(self.uri)
        return sent, *await self.published(since, version)


# ------------------------------------------------------------------ 1: static


async def static_bench(bench: Bench, linter: str, text: str, n: int, opens: int) -> dict[str, Any]:
    lines = text.split("\n")
    plain = [i for i, s in enumerate(lines) if s.strip() and not s.endswith("\\")]
    defs = [i for i, s in enumerate(lines) if s.lstrip().startswith("def ") and s.endswith(":")]
    env = {**FAST, "ZI_DIAGNOSTICS__REVIEW": "false", "ZI_DIAGNOSTICS__LINTER": linter}
    open_ms, save_ms, broken, syntax = [], [], 0, 0
    async with running_server(bench, f"static-{linter}", **env) as lsp:
        sent = time.perf_counter()  # fast start answered initialize; the server may still boot
        _, read = await Doc(lsp, bench.workdir / "tiny.py", "import os\n").published(0, 1)
        boot_ms = ms(read - sent)
        await asyncio.sleep(1.0)  # let the rest of start-up (history database) settle
        for k in range(opens):
            since, sent = len(lsp.notifications), time.perf_counter()
            doc = Doc(lsp, bench.workdir / f"big_{linter}_{k}.py", text)
            open_ms.append(ms((await doc.published(since, 1))[1] - sent))
            if k < opens - 1:
                lsp.notify("textDocument/didClose", {"textDocument": {"uri": doc.uri}})
            await asyncio.sleep(GAP_S)
        for i in range(WARMUP + n):
            breaks = i % 3 == 2
            line = (defs if breaks else plain)[(i * 7919) % len(defs if breaks else plain)]
            old = lines[line][:-1] if breaks else lines[line]  # no colon: a syntax error
            version = doc.edit(line, f"{old}  # zi-bench {i}")
            await asyncio.sleep(GAP_S)
            sent, index, read = await doc.saved(version)
            if i >= WARMUP:
                save_ms.append(ms(read - sent))
                broken += breaks
                syntax += breaks and "tree-sitter" in sources(lsp.notifications[index])
            await asyncio.sleep(GAP_S)
    return {
        "linter": linter,
        "lines": text.count("\n"),
        "save_ms": summary(save_ms),
        "open_ms": summary(open_ms),
        "boot_to_first_publish_ms": boot_ms,
        "broken_saves": broken,
        "broken_saves_with_syntax_error": syntax,
        "raw": {"save_ms": save_ms, "open_ms": open_ms},
    }


# ------------------------------------------------------------------ 2: review


def _has_review(message: dict[str, Any]) -> bool:
    return "zi-review" in sources(message)


class DirectChat(DirectClient):
    """DirectClient on /chat/completions: the model time of a chat body."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.path = self.path.removesuffix("/completions") + "/chat/completions"


async def review_bench(bench: Bench, name: str, text: str, n: int, **env: str) -> dict[str, Any]:
    lines = text.split("\n")  # edited each time: the first `return` in the second half
    line = next(
        i for i in range(len(lines) // 2, len(lines)) if lines[i].lstrip().startswith("return ")
    )
    finding = {"line_start": line + 1, "line_end": line + 1, "severity": "warning"}
    finding |= {"category": "bug", "message": "m", "fix": None}
    await bench.model.call(cmd="chat_fixed", text=json.dumps({"findings": [finding]}), delay_s=0)
    direct, samples = DirectChat(bench.model.url), []
    async with running_server(bench, name, **FAST, **env) as lsp:
        doc = Doc(lsp, bench.workdir / f"{name}.py", text)
        await doc.published(0, 1)
        seen = (await bench.model.call(cmd="chat_requests", since=1 << 30))["count"]
        for i in range(WARMUP + n):
            version = doc.edit(line, lines[line] + f"  # zi-bench {i}")
            await asyncio.sleep(GAP_S)
            sent, static, static_read = await doc.saved(version)
            _, review_read = await doc.published(static + 1, version, _has_review)
            wall = time.time() - (time.perf_counter() - review_read)
            reply = await bench.model.call(cmd="chat_requests", since=seen)
            bodies = [b for b in reply["requests"] if b.get("user") != DIRECT_TAG]
            if len(bodies) != 1:
                raise RuntimeError(f"{name}: {len(bodies)} chat requests for one save")
            model_s, _ = await direct.post(direct.encode(bodies[0]))
            seen = reply["count"] + 1  # and the replay
            total = review_read - sent
            if i >= WARMUP:
                samples.append(
                    {
                        "total_ms": ms(total),
                        "model_ms": ms(model_s),
                        "overhead_ms": ms(total - model_s),
                        "static_ms": ms(static_read - sent),
                        "after_static_ms": ms(review_read - static_read - model_s),
                        "saved_wall": wall - total,
                        "published_wall": wall,
                        "prompt_chars": sum(len(m["content"]) for m in bodies[0]["messages"]),
                    }
                )
            await asyncio.sleep(GAP_S)
    await direct.close()
    out: dict[str, Any] = {"lines": text.count("\n"), "prompt_chars": samples[0]["prompt_chars"]}
    for key in ("overhead_ms", "total_ms", "model_ms", "static_ms", "after_static_ms"):
        out[key] = summary([s[key] for s in samples])
    return out | {"raw": samples}


def rq_stamps(url: str, done: set[str]) -> list[tuple[float, float, float]]:
    """(enqueued, started, ended) of the review jobs finished since the last call, in order."""
    import redis
    from rq.job import Job
    from rq.registry import FinishedJobRegistry
    from rq.serializers import JSONSerializer

    from server.jobs import BACKGROUND_QUEUE

    connection = redis.Redis.from_url(url)
    registry = FinishedJobRegistry(BACKGROUND_QUEUE, connection)
    ids = [i for i in registry.get_job_ids() if i not in done]
    done.update(ids)
    jobs = [j for j in Job.fetch_many(ids, connection, JSONSerializer) if j is not None]
    connection.close()
    return sorted(
        (j.enqueued_at.timestamp(), j.started_at.timestamp(), j.ended_at.timestamp())
        for j in jobs
        if j.enqueued_at and j.started_at and j.ended_at
    )


async def rq_benches(bench: Bench, files: dict[str, str], n: int, noop_jobs: int) -> dict[str, Any]:
    from tests.support.redis_server import RedisServer

    out: dict[str, Any] = {}
    redis_server = RedisServer()
    redis_server.start()
    url = redis_server.url
    workers = _start_workers("fork", 1, url, bench.workdir / "worker.log")
    try:
        await asyncio.to_thread(_wait_registered, url, 1)
        done: set[str] = set()
        for label, text in files.items():
            result = await review_bench(bench, f"rq-{label}", text, n, ZI_REDIS_URL=url)
            jobs = rq_stamps(url, done)[-n:]
            parts = [
                (
                    e - x["saved_wall"],
                    st - e,
                    end - st - x["model_ms"] / 1000,
                    x["published_wall"] - end,
                )
                for x, (e, st, end) in zip(result["raw"], jobs, strict=True)
            ]
            for key, values in zip(RQ_PARTS, zip(*parts, strict=True), strict=True):
                result[key] = summary([ms(v) for v in values])
            out[label] = result
        out["noop"] = await _measure(url, noop_jobs, max(1, noop_jobs // 5))
    finally:
        _stop(workers)
        redis_server.stop()
    return out


# ------------------------------------------------------------------ run + report


async def run(quick: bool) -> dict[str, Any]:
    sizes = SIZES["quick" if quick else "full"]
    files = {"small": SMALL_SOURCE.read_text(encoding="utf-8"), "big": big_text()}
    results: dict[str, Any] = {"quick": quick, "sizes": sizes, "cpus": os.cpu_count()}
    results["load_average_at_start"] = os.getloadavg()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="zi-bench-diag-") as tmp:
        model = await ModelProcess.start()
        await model.call(cmd="max_model_len", tokens=1_000_000)  # the big file's whole listing
        bench = Bench(model=model, workdir=Path(tmp), quick=quick)
        try:
            for linter in ("ruff", "pyflakes"):
                print(f"… static, {linter}", file=sys.stderr, flush=True)
                results[f"static_{linter}"] = await static_bench(
                    bench, linter, files["big"], sizes["static_n"], sizes["opens"]
                )
            for label, text in files.items():
                print(f"… review in process, {label}", file=sys.stderr, flush=True)
                results[f"review_{label}"] = await review_bench(
                    bench, f"inproc-{label}", text, sizes["review_n"]
                )
            print("… review on RQ", file=sys.stderr, flush=True)
            results["rq"] = await rq_benches(bench, files, sizes["review_n"], sizes["noop_jobs"])
        finally:
            await model.stop()
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    results["load_average_at_end"] = os.getloadavg()
    return results


def table(r: dict[str, Any]) -> str:
    rows: list[tuple[str, ...]] = []

    def row(label: str, s: dict[str, float], target: str = "", ok: bool | None = None) -> None:
        verdict = "" if ok is None else ("PASS" if ok else "**FAIL**")
        cells = (f"{s['median']:.1f} ms", f"{s['p90']:.1f} ms", str(s["n"]))
        rows.append((label, *cells, target, verdict))

    for linter in ("ruff", "pyflakes"):
        st = r[f"static_{linter}"]
        s = st["save_ms"]
        head = f"1. Static, {st['lines']:,} lines, {linter}: didSave → publish"
        row(head, s, "≤100 ms", s["median"] <= 100)
        row("   didOpen → first publish (server booted)", st["open_ms"])
        boot = f"{st['boot_to_first_publish_ms']:.0f} ms"
        rows.append(("   initialize → first publish, tiny file (boot)", boot, "", "1", "", ""))
        errors = f"{st['broken_saves_with_syntax_error']}/{st['broken_saves']}"
        rows.append(("   broken saves published with a tree-sitter error", errors, "", "", "", ""))
    runs = (
        ("in process", r["review_small"], r["review_big"]),
        ("RQ", r["rq"]["small"], r["rq"]["big"]),
    )
    for runner, *reviews in runs:
        for rv in reviews:
            s, inproc = rv["overhead_ms"], runner == "in process"
            head = f"2. Review overhead, {runner}, {rv['lines']:,} lines"
            row(head, s, "≤20 ms" if inproc else "", s["median"] <= 20 if inproc else None)
            row("   didSave → review publish", rv["total_ms"])
            row(f"   model: direct replay ({rv['prompt_chars']:,}-char prompt)", rv["model_ms"])
            row("   didSave → static publish (the review starts after it)", rv["static_ms"])
            row("   static publish → review publish, minus model", rv["after_static_ms"])
            for key, label in RQ_PARTS.items() if not inproc else ():
                row(f"   RQ: {label}", rv[key])
    noop = r["rq"]["noop"]
    cells = (f"{noop['latency_median_ms']:.1f} ms", f"p99 {noop['latency_p99_ms']:.1f} ms")
    rows.append(("   bench.jobs: no-op enqueued → started (fork, 1 worker)", *cells, "", "", ""))
    lines = ["| Measure | Median | p90 | n | Target | Verdict |", "|---|---:|---:|---:|---|---|"]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.diagnostics", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    default = Path(__file__).parent / "results" / "diagnostics.json"
    parser.add_argument("--json", type=Path, default=default, help="raw numbers go here")
    args = parser.parse_args(argv)
    results = asyncio.run(run(args.quick))
    print(table(results))
    command = "uv run python -m bench.diagnostics" + (" --quick" if args.quick else "")
    start, end = results["load_average_at_start"][0], results["load_average_at_end"][0]
    print(f"\n`{command}`: {results['wall_seconds']} s, {results['cpus']} CPUs, ", end="")
    print(f"load average {start:.2f} at start, {end:.2f} at end")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    print(f"raw numbers: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
