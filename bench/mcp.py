"""MCP benchmark: Zi as an MCP server, and MCP servers as Zi's context.

    uv run python -m bench.mcp [--rounds N] [--json PATH] [--only PART ...]

1. ``complete`` — ``complete_code`` over MCP stdio: the real ``zi-coder mcp``
   subprocess driven by the SDK's own client (legacy handshake mode), against the
   scripted model (``bench.model_server``, its own process) answering at once. Each
   round rewrites one name in the document (bench.history_recording's ``Document``), so
   every call is a new prompt and reaches the model (counted). In the same rounds, taking
   turns, the same prompt as an invoked LSP inline completion from a ``zi-coder serve``
   subprocess (history_recording's ``complete_and_show``: edit the line, ask, report it
   shown): the table shows both round trips and the ratio of their medians. Warm-up
   rounds dropped.
2. ``context`` — ``McpContext.context_for`` (a review request) on this process's asyncio
   loop, as the language server calls it, against tests/support/mcp_servers/well_behaved.py
   with one resource pattern and one allowed tool (one read and one call per request).
   Cold: a fresh manager's first call (thread, spawn, handshake, listings, read, call),
   fresh managers in turn; the very first also imports the MCP SDK in the manager's
   thread, reported on its own. Warm: later calls on one manager.
3. ``hang`` — the warm gathering with a second server configured that hangs
   (tests/support/mcp_servers/hangs.py: ``call``, its allowed tool never returns; then
   ``init``, it never answers the handshake), ``context_deadline_s`` = 1.0: how long a
   call takes, how many still carried the good server's two items, and how many waited
   out the deadline (a server that left two requests in a row unanswered is set aside
   for a pause, 2 s doubling, so the calls after that do not wait for it).
4. During (3), a ticker task on the caller's loop sleeps 1 ms at a time and notes how
   late it wakes (median, p90, p99, worst); and the same ticker on an idle loop first:
   MCP work that blocked the loop would show as lateness here.
5. ``list`` — ``zi-coder mcp list`` (a subprocess, plain output) with the well-behaved
   server configured: wall time from spawn to exit.

The default (50 rounds) takes about two minutes. Numbers move with the machine's load
(printed with them). Raw samples go to ``--json`` (default ``bench/results/mcp.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.history_recording import MARK, Arm, Document, complete_and_show
from bench.lsp_client import server_env
from bench.model import ModelProcess
from bench.scenarios import FIXED_REPLY, GAP_S, Bench, ms, running_server
from bench.stats import summary
from server.context.types import ContextRequest
from server.mcp.client.config import ServerSpec, ToolUse
from server.mcp.client.manager import McpContext
from server.notify import Level, Notifier
from server.settings import McpSettings

SERVERS = Path(__file__).resolve().parents[1] / "tests" / "support" / "mcp_servers"
PARTS = ("context", "hang", "complete", "list")
REVIEW = ContextRequest("review", "python", "src/app.py", symbol="greet")
WARMUP = 10  # completion rounds per arm left out: imports, grammar, model resolution
HANG_DEADLINE_S = 1.0
TICK_S = 0.001
IDLE_TICKS_S = 2.0


class Kept(Notifier):
    """Keeps what the user would be told (reported with the numbers), logs nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []

    def problem(
        self, key: str, message: str, *, lasting: bool = False, level: Level = Level.WARNING
    ) -> None:
        self.problems.append(message)


def docs_spec() -> ServerSpec:
    return ServerSpec(
        name="docs",
        command=sys.executable,
        args=[str(SERVERS / "well_behaved.py")],
        resources=["docs://api/greet"],
        tools={"lookup": ToolUse(arguments={"symbol": "{symbol}", "language": "{language}"})},
    )


def manager(specs: list[ServerSpec], workdir: Path, deadline_s: float, told: Kept) -> McpContext:
    settings = McpSettings(context_deadline_s=deadline_s)
    return McpContext(specs, settings=settings, pins_path=workdir / "pins.json", notifier=told)


async def timed_context(context: McpContext) -> tuple[float, int]:
    """(ms, items from the well-behaved server) of one context_for."""
    started = time.perf_counter()
    items = await context.context_for(REVIEW)
    return ms(time.perf_counter() - started), sum(item.server == "docs" for item in items)


# -------------------------------------------------------------- 2: context gathering


async def context_gathering(workdir: Path, rounds: int, cold_runs: int) -> dict[str, Any]:
    told = Kept()
    cold: list[dict[str, Any]] = []
    for _ in range(1 + cold_runs):  # the first one also imports the SDK
        sdk_imported = "mcp" in sys.modules
        context = manager([docs_spec()], workdir, 30.0, told)
        try:
            took, items = await timed_context(context)
        finally:
            await context.aclose()
        cold.append({"ms": took, "docs_items": items, "sdk_imported_before": sdk_imported})
    warm: list[dict[str, Any]] = []
    context = manager([docs_spec()], workdir, 30.0, told)
    try:
        await timed_context(context)  # cold, not counted
        for _ in range(rounds):
            took, items = await timed_context(context)
            warm.append({"ms": took, "docs_items": items})
            await asyncio.sleep(GAP_S)
    finally:
        await context.aclose()
    return {
        "first_cold": cold[0],
        "cold_ms": summary([c["ms"] for c in cold[1:]]),
        "warm_ms": summary([w["ms"] for w in warm]),
        "cold_with_both_items": sum(c["docs_items"] == 2 for c in cold),
        "warm_with_both_items": sum(w["docs_items"] == 2 for w in warm),
        "told": told.problems,
        "samples": {"cold": cold, "warm": warm},
    }


# ----------------------------------------------------- 3 + 4: a hanging server, the loop


async def ticking(work: Callable[[], Awaitable[Any]]) -> tuple[Any, list[float]]:
    """Run `work` while a ticker sleeps TICK_S at a time; (its result, lateness ms)."""
    lateness: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await asyncio.sleep(TICK_S)
            lateness.append(ms(time.perf_counter() - started - TICK_S))

    ticker = asyncio.create_task(tick())
    try:
        result = await work()
    finally:
        done.set()
        await ticker
    return result, lateness


def lateness_summary(lateness: list[float]) -> dict[str, float]:
    return {k: v for k, v in summary(lateness).items() if k in ("n", "median", "p90", "p99", "max")}


async def with_hanging_server(workdir: Path, mode: str, rounds: int) -> dict[str, Any]:
    told = Kept()
    stuck = ServerSpec(
        name="stuck",
        command=sys.executable,
        args=[str(SERVERS / "hangs.py"), mode],
        tools={"wait": ToolUse(arguments={"symbol": "{symbol}"})},
    )
    context = manager([stuck, docs_spec()], workdir, HANG_DEADLINE_S, told)
    warmup = 0
    try:
        while warmup < 15:  # both started and the good one ready (its cold > the deadline)
            warmup += 1
            if (await timed_context(context))[1]:
                break

        async def measure() -> list[tuple[float, int]]:
            out = []
            for _ in range(rounds):
                out.append(await timed_context(context))
                await asyncio.sleep(GAP_S)
            return out

        samples, lateness = await ticking(measure)
    finally:
        await context.aclose()
    return {
        "mode": mode,
        "deadline_s": HANG_DEADLINE_S,
        "warmup_calls": warmup,
        "call_ms": summary([took for took, _ in samples]),
        "with_both_items": sum(items == 2 for _, items in samples),
        # The rest came at once: the manager had set the hanging server aside (its pause).
        "waited_out_the_deadline": sum(took >= 500 * HANG_DEADLINE_S for took, _ in samples),
        "calls": len(samples),
        "ticker_lateness_ms": lateness_summary(lateness),
        "told": told.problems,
        "samples_ms": [took for took, _ in samples],
    }


async def hanging(workdir: Path, rounds: int) -> dict[str, Any]:
    _, idle = await ticking(lambda: asyncio.sleep(IDLE_TICKS_S))
    return {
        "idle_ticker_lateness_ms": lateness_summary(idle),
        "call": await with_hanging_server(workdir, "call", rounds),
        "init": await with_hanging_server(workdir, "init", max(3, rounds // 5)),
    }


# ------------------------------------------------------- 1: complete_code, MCP vs LSP


async def completion_round_trips(workdir: Path, rounds: int) -> dict[str, Any]:
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    model = await ModelProcess.start()
    lsp_dir, mcp_dir = workdir / "lsp", workdir / "mcp"
    lsp_dir.mkdir()
    mcp_dir.mkdir()
    samples: dict[str, list[float]] = {"mcp": [], "lsp": []}
    model_calls = {"mcp": 0, "lsp": 0}
    failed = {"mcp": 0, "lsp": 0}
    try:
        await model.fixed(FIXED_REPLY, 0.0)
        doc = Document.make(workdir)
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "server", "mcp"], env=server_env(model.url, mcp_dir)
        )
        bench = Bench(model=model, workdir=lsp_dir, quick=False)
        with (mcp_dir / "stderr.log").open("w") as errlog:
            transport = stdio_client(params, errlog=errlog)  # its log in a file, not ours
            async with (
                running_server(bench, "lsp") as lsp,
                Client(transport, mode="legacy", read_timeout_seconds=60) as client,
            ):
                lsp.did_open(doc.uri, doc.text)
                arm = Arm("lsp", lsp, lsp_dir)

                async def via_mcp(serial: int) -> float:
                    arguments = {
                        "content": doc.text.replace(MARK, f"result_{serial:06d}"),
                        "line": doc.line,
                        "character": doc.character,
                        "path": "bench_history.py",
                    }
                    started = time.perf_counter()
                    result = await client.call_tool("complete_code", arguments)
                    took = time.perf_counter() - started
                    if result.is_error or not (result.structured_content or {}).get("text"):
                        failed["mcp"] += 1
                    return ms(took)

                async def via_lsp(serial: int) -> float:
                    return await complete_and_show(arm, doc, serial)

                arms = {"mcp": via_mcp, "lsp": via_lsp}
                for round_ in range(WARMUP + rounds):
                    order = ["mcp", "lsp"] if round_ % 2 else ["lsp", "mcp"]
                    for name in order:
                        before = (await model.counts())["completions"]
                        took = await arms[name](2 * round_ + (name == "mcp"))
                        if round_ >= WARMUP:
                            samples[name].append(took)
                            model_calls[name] += (await model.counts())["completions"] - before
                        await asyncio.sleep(GAP_S)
                failed["lsp"] = arm.empty + arm.errors
    finally:
        await model.stop()
    return {
        "rounds": rounds,
        "warmup": WARMUP,
        "model_ttft_ms": 0.0,
        "mcp_ms": summary(samples["mcp"]),
        "lsp_ms": summary(samples["lsp"]),
        "model_calls": model_calls,
        "failed_or_empty": failed,
        "samples_ms": samples,
    }


# ---------------------------------------------------------------- 5: zi-coder mcp list


def mcp_list_wall(workdir: Path, runs: int) -> dict[str, Any]:
    spec = docs_spec()
    servers = workdir / "mcp.toml"
    servers.write_text(
        f"[servers.docs]\ncommand = {json.dumps(spec.command)}\nargs = {json.dumps(spec.args)}\n"
        f"resources = {json.dumps(spec.resources)}\n[servers.docs.tools.lookup]\n"
        'arguments = { symbol = "{symbol}", language = "{language}" }\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZI_")}
    env |= {"ZI_MCP__SERVERS_FILE": str(servers), "ZI_STATE_DIR": str(workdir / "state")}
    walls, ready = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "server", "mcp", "list"],
            env=env,
            capture_output=True,
            text=True,
            timeout=100,
        )
        walls.append(ms(time.perf_counter() - started))
        ready += done.returncode == 0 and "  ready  " in done.stdout
    return {"wall_ms": summary(walls), "ready": ready, "runs": runs, "samples_ms": walls}


# ------------------------------------------------------------------ run + report


async def run(rounds: int, only: set[str]) -> dict[str, Any]:
    few = min(5, max(rounds, 1))  # cold managers, `mcp list` runs
    results: dict[str, Any] = {"rounds": rounds, "cpus": os.cpu_count()}
    results["date"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    results["load_average_at_start"] = os.getloadavg()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="zi-bench-mcp-") as tmp:
        # The context parts first: the first cold manager then imports the SDK itself.
        for part in PARTS:
            if only and part not in only:
                continue
            print(f"… {part}", file=sys.stderr, flush=True)
            workdir = Path(tmp) / part
            workdir.mkdir()
            if part == "context":
                results[part] = await context_gathering(workdir, rounds, few)
            elif part == "hang":
                results[part] = await hanging(workdir, rounds)
            elif part == "complete":
                results[part] = await completion_round_trips(workdir, rounds)
            else:
                results[part] = await asyncio.to_thread(mcp_list_wall, workdir, few)
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    results["load_average_at_end"] = os.getloadavg()
    return results


def table(r: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str, str]] = []

    def row(label: str, s: dict[str, float], digits: int = 1) -> None:
        if s["n"]:
            median, p90 = f"{s['median']:.{digits}f} ms", f"{s['p90']:.{digits}f} ms"
            rows.append((label, median, p90, str(s["n"])))

    def note(label: str, value: str = "") -> None:
        rows.append((label, value, "", ""))

    if "complete" in r:
        c = r["complete"]
        calls, bad = c["model_calls"], c["failed_or_empty"]
        row("1. `complete_code` over MCP stdio (zi-coder mcp, SDK client), model at once",
            c["mcp_ms"])  # fmt: skip
        row("   LSP inline completion (invoked), same prompts and model", c["lsp_ms"])
        ratio = c["mcp_ms"]["median"] / c["lsp_ms"]["median"]
        note("   MCP / LSP, ratio of medians", f"{ratio:.2f} x")
        note(f"   model calls: MCP {calls['mcp']}, LSP {calls['lsp']}; failed or empty: "
             f"MCP {bad['mcp']}, LSP {bad['lsp']}")  # fmt: skip
    if "context" in r:
        x = r["context"]
        first = x["first_cold"]
        sdk = "SDK already imported" if first["sdk_imported_before"] else "+ SDK import in thread"
        rows.append((f"2. MCP context, first cold call in the process ({sdk})",
                     f"{first['ms']:.1f} ms", "", "1"))  # fmt: skip
        row("   cold: fresh manager's first call (spawn, handshake, listings, read, call)",
            x["cold_ms"])  # fmt: skip
        row("   warm: 1 resource read + 1 tool call", x["warm_ms"])
        cold_n, warm_n = x["cold_ms"]["n"] + 1, x["warm_ms"]["n"]
        note(f"   calls with both items: cold {x['cold_with_both_items']}/{cold_n}, "
             f"warm {x['warm_with_both_items']}/{warm_n}")  # fmt: skip
    if "hang" in r:
        h = r["hang"]
        for i, mode in enumerate(("call", "init")):
            m = h[mode]
            what = "whose tool never returns" if mode == "call" else "never answering initialize"
            head = "3. " if i == 0 else "   "
            row(f"{head}warm, + a server {what}; deadline {m['deadline_s']:g} s",
                m["call_ms"])  # fmt: skip
            note(f"   calls with the good server's 2 items: {m['with_both_items']}/{m['calls']}; "
                 f"that waited out the deadline: {m['waited_out_the_deadline']}")  # fmt: skip
        for i, (label, t) in enumerate(
            (
                ("idle loop", h["idle_ticker_lateness_ms"]),
                ("during 3, tool never returns", h["call"]["ticker_lateness_ms"]),
                ("during 3, never answers initialize", h["init"]["ticker_lateness_ms"]),
            )
        ):
            head = "4. 1 ms ticker's lateness on the caller's loop, " if i == 0 else "   "
            row(f"{head}{label} (p99 {t['p99']:.2f} ms, worst {t['max']:.2f} ms)", t, 2)
    if "list" in r:
        li = r["list"]
        row(f"5. `zi-coder mcp list`, one well-behaved server, wall (ready {li['ready']}/"
            f"{li['runs']})", li["wall_ms"])  # fmt: skip
    lines = ["| Measure | Median | p90 | n |", "|---|---:|---:|---:|"]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mcp", description=__doc__)
    parser.add_argument("--rounds", type=int, default=50, help="warm calls per measure")
    parser.add_argument("--only", nargs="*", choices=PARTS, default=[])
    default = Path(__file__).parent / "results" / "mcp.json"
    parser.add_argument("--json", type=Path, default=default, help="raw numbers go here")
    args = parser.parse_args(argv)
    results = asyncio.run(run(args.rounds, set(args.only)))
    print(table(results))
    told = [m for part in ("context", "hang") for m in _told(results.get(part))]
    if told:
        print(f"\ntold the user {len(told)} times, e.g.: {told[0]}")
    start, end = results["load_average_at_start"][0], results["load_average_at_end"][0]
    command = " ".join(["uv run python -m bench.mcp", *(sys.argv[1:] if argv is None else argv)])
    print(f"\n`{command}`, {results['date']}: {results['wall_seconds']} s, ", end="")
    print(f"{results['cpus']} CPUs, load average {start:.2f} at start, {end:.2f} at end")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    print(f"raw numbers: {args.json}")
    return 0


def _told(part: dict[str, Any] | None) -> list[str]:
    if not part:
        return []
    if "told" in part:
        return list(part["told"])
    return [m for mode in ("call", "init") for m in part.get(mode, {}).get("told", [])]


if __name__ == "__main__":
    sys.exit(main())
