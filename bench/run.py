"""Latency, type-ahead, typist, startup and memory benchmark of the real server.

    uv run python -m bench.run [--quick] [--json PATH] [--only NAME ...]

Prints a Markdown table (median, p99, target, pass/fail) and a per-stage profile,
and writes every raw sample as JSON (default ``bench/results/latest.json``). See
``bench/scenarios.py`` for what each number measures. The full run takes about
7 minutes (the typist types 2000 characters at a real 10 per second); ``--quick``
about 1.5.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import scenarios
from bench.model import ModelProcess

SCENARIOS = ("init", "latency", "memory", "profile", "typist")


def settings(quick: bool) -> dict[str, Any]:
    """Sizes of each scenario; the typist keeps the real 100 ms gap in both modes."""
    if quick:
        return {
            "overhead_n": 60,
            "typeahead_trials": 15,
            "typist_chars": 300,
            "fast_typist_chars": 0,
            "init_runs": 5,
            "memory_completions": 5,
            "profile_n": 30,
        }
    return {
        "overhead_n": 250,
        "typeahead_trials": 40,
        "typist_chars": 2000,
        "fast_typist_chars": 800,
        "init_runs": 20,
        "memory_completions": 20,
        "profile_n": 100,
    }


async def run(quick: bool, only: set[str]) -> dict[str, Any]:
    sizes = settings(quick)
    results: dict[str, Any] = {
        "quick": quick,
        "sizes": sizes,
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_at_start": os.getloadavg(),
        },
        "configured_debounce_ms": 0.0,
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="zi-bench-") as tmp:
        model = await ModelProcess.start()
        bench = scenarios.Bench(model=model, workdir=Path(tmp), quick=quick)
        try:
            for name in SCENARIOS:
                if only and name not in only:
                    continue
                t0 = time.perf_counter()
                print(f"… {name}", file=sys.stderr, flush=True)
                if name == "init":
                    results["initialize"] = await scenarios.initialize_latency(
                        bench, sizes["init_runs"]
                    )
                elif name == "latency":
                    results.update(
                        await scenarios.completion_latency(
                            bench, sizes["overhead_n"], sizes["typeahead_trials"]
                        )
                    )
                elif name == "memory":
                    results["memory"] = await scenarios.memory(bench, sizes["memory_completions"])
                elif name == "profile":
                    results["profile"] = await scenarios.stage_profile(
                        bench, sizes["profile_n"], sizes["typeahead_trials"]
                    )
                elif name == "typist":
                    results["typist"] = await scenarios.typist(bench, sizes["typist_chars"], 0.1)
                    if sizes["fast_typist_chars"]:
                        results["fast_typist"] = await scenarios.typist(
                            bench, sizes["fast_typist_chars"], 0.04, name="fast-typist"
                        )
                results.setdefault("scenario_seconds", {})[name] = round(
                    time.perf_counter() - t0, 1
                )
        finally:
            await model.stop()
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    results["machine"]["load_average_at_end"] = os.getloadavg()
    return results


# ------------------------------------------------------------------ report


def _fmt(value: float | None, unit: str = "ms") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "ms":
        return f"{value:.2f} ms"
    return f"{value:g}{unit}"


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("PASS" if ok else "**FAIL**")


def table(results: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str, str, str]] = []
    if "overhead" in results:
        o = results["overhead"]
        med, p99 = o["overhead_ms"]["median"], o["overhead_ms"]["p99"]
        rows.append(
            (
                f"1. Server overhead per invoked completion (LSP - direct, n={o['pairs']})",
                _fmt(med),
                _fmt(p99),
                "≤5 ms median, ≤15 ms p99",
                _verdict(med <= 5 and p99 <= 15),
            )
        )
        rows.append(
            (
                "   LSP end to end (model TTFT 20 ms)",
                _fmt(o["lsp_ms"]["median"]),
                _fmt(o["lsp_ms"]["p99"]),
                "",
                "",
            )
        )
        rows.append(
            (
                "   direct streaming POST, same prompt",
                _fmt(o["direct_ms"]["median"]),
                _fmt(o["direct_ms"]["p99"]),
                "",
                "",
            )
        )
        rows.append(
            ("   configured debounce (ZI_COMPLETION__DEBOUNCE_MS)", "0 ms", "", "excluded", "")
        )
        rows.append(
            (
                "   background /tokenize requests per completion",
                f"{o['tokenize_requests_during_measurement'] / max(o['pairs'], 1):.2f}",
                "",
                "",
                "",
            )
        )
    if "transport_floor" in results:
        f = results["transport_floor"]
        rows.append(
            (
                "   floor: request the gate refuses (JSON-RPC + pygls only)",
                _fmt(f["request_ms"]["median"]),
                _fmt(f["request_ms"]["p99"]),
                "",
                "",
            )
        )
        rows.append(
            (
                "   floor: didChange, then a refused request",
                _fmt(f["change_then_request_ms"]["median"]),
                _fmt(f["change_then_request_ms"]["p99"]),
                "",
                "",
            )
        )
    if "typeahead" in results:
        t = results["typeahead"]
        med = t["latency_ms"]["median"]
        all_hits = t["served_remaining_suggestion"] == t["requests"]
        no_model = t["model_requests_during_hits"] == 0
        rows.append(
            (
                f"2. Type-ahead hit, end to end (n={t['requests']}, model requests: "
                f"{t['model_requests_during_hits']})",
                _fmt(med),
                _fmt(t["latency_ms"]["p99"]),
                "≤2 ms median, no model request",
                _verdict(med <= 2 and all_hits and no_model),
            )
        )
    for key, label in (("typist", "10 chars/s"), ("fast_typist", "25 chars/s")):
        if key not in results:
            continue
        ty = results[key]
        per100 = ty["model_requests_per_100"]
        targeted = key == "typist"  # the faster typist is for comparison only
        rows.append(
            (
                f"3. Typist ({label}, {ty['keystrokes']} keys): model requests / 100 keystrokes",
                f"{per100:g}",
                "",
                "≤15" if targeted else "(≤15)",
                _verdict(per100 <= 15) if targeted else "",
            )
        )
        rows.append(
            (
                "   type-ahead/cache hit rate (of keystrokes)",
                f"{ty['cache_hit_rate'] * 100:.1f} %",
                "",
                "",
                "",
            )
        )
        rows.append(
            (
                "   suggestions shown / 100 keystrokes (correct)",
                f"{ty['shown_per_100']:g} ({ty['shown_correct_per_100']:g})",
                "",
                "",
                "",
            )
        )
        rows.append(
            (
                "   /tokenize requests / 100 keystrokes; model streams cancelled",
                f"{ty['tokenize_requests_per_100']:g}; {ty['model_streams_cancelled']}",
                "",
                "",
                "",
            )
        )
        rows.append(
            (
                "   keystrokes the gate allowed / 100 (no type-ahead: all hit the model)",
                f"{ty['gate_allowed_per_100']:g}",
                "",
                "",
                "",
            )
        )
        shown = ty["latency_ms"]["shown"]
        rows.append(
            (
                "   latency of shown suggestions",
                _fmt(shown["median"]),
                _fmt(shown["p99"]),
                "",
                "",
            )
        )
    if "initialize" in results:
        fast, slow = results["initialize"]["fast_start"], results["initialize"]["no_fast_start"]
        med = fast["initialize_ms"]["median"]
        rows.append(
            (
                f"4. initialize latency, fast start (n={fast['initialize_ms']['n']})",
                _fmt(med),
                _fmt(fast["initialize_ms"]["p99"]),
                "≤300 ms median",
                _verdict(med <= 300),
            )
        )
        rows.append(
            (
                "   initialize latency, ZI_FAST_START=false",
                _fmt(slow["initialize_ms"]["median"]),
                _fmt(slow["initialize_ms"]["p99"]),
                "",
                "",
            )
        )
        rows.append(
            (
                "   spawn → first completion (fast / not fast)",
                f"{_fmt(fast['first_completion_ms']['median'])} / "
                f"{_fmt(slow['first_completion_ms']['median'])}",
                f"{_fmt(fast['first_completion_ms']['p99'])} / "
                f"{_fmt(slow['first_completion_ms']['p99'])}",
                "",
                "",
            )
        )
    if "memory" in results:
        m = results["memory"]
        rows.append(
            (
                f"5. RSS with {m['documents']} open documents, {m['completions']} completed in",
                f"{m['rss_mb']} MB",
                f"peak {m['peak_rss_mb']} MB",
                "≤120 MB",
                _verdict(m["rss_mb"] <= 120),
            )
        )
        rows.append(("   RSS with one document", f"{m['rss_one_document_mb']} MB", "", "", ""))
        rows.append(
            (
                "   RSS after a completion in every one of the 100 documents",
                f"{m['rss_after_completing_in_every_document_mb']} MB",
                "",
                "(≤120 MB)",
                "",
            )
        )
        o100 = m["overhead_with_100_documents"]
        rows.append(
            (
                f"   server overhead with 100 documents open (n={o100['pairs']})",
                _fmt(o100["overhead_ms"]["median"]),
                _fmt(o100["overhead_ms"]["p99"]),
                "(≤5 ms median)",
                "",
            )
        )
    lines = [
        "| Measure | Median | p99 | Target | Result |",
        "|---|---:|---:|---|---|",
        *(f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows),
    ]
    return "\n".join(lines)


def profile_table(results: dict[str, Any]) -> str:
    profile = results.get("profile")
    if not profile:
        return ""
    phases = [p for p in ("one_document", "typeahead_hit", "100_documents") if p in profile]
    stages: list[str] = []
    for phase in phases:
        for stage in profile[phase]["stages_ms"]:
            if stage not in stages:
                stages.append(stage)
    head = (
        "| Stage (profiled server, ms) | "
        + " | ".join(f"{p} median | {p} p99" for p in phases)
        + " |"
    )
    lines = [head, "|---|" + "---:|" * (2 * len(phases))]
    for stage in stages:
        cells = []
        for phase in phases:
            s = profile[phase]["stages_ms"].get(stage)
            cells += [f"{s['median']:.3f}", f"{s['p99']:.3f}"] if s else ["-", "-"]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    cells = []
    for phase in phases:
        o = profile[phase]["overhead_ms"] or (
            profile["typeahead_hits"] if phase == "typeahead_hit" else None
        )
        cells += [f"{o['median']:.3f}", f"{o['p99']:.3f}"] if o else ["-", "-"]
    lines.append("| (end to end: overhead, or hit latency) | " + " | ".join(cells) + " |")
    labels = {
        "transport": "= LSP - handler (JSON-RPC, pygls, pipes)",
        "pipeline": "+ handler - model stream (pipeline's own work)",
        "http_client": "+ model stream in server - direct (HTTP client)",
    }
    for part, label in labels.items():
        cells = []
        for phase in phases:
            s = (profile[phase].get("split_ms") or {}).get(part)
            cells += [f"{s['median']:.3f}", f"{s['p99']:.3f}"] if s else ["-", "-"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    tokenize = profile.get("tokenize_requests", {})
    lines.append(
        "\n/tokenize requests the server sent while measuring: "
        + ", ".join(f"{k}: {v}" for k, v in tokenize.items())
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples, shorter typist")
    parser.add_argument(
        "--json",
        type=Path,
        default=Path(__file__).parent / "results" / "latest.json",
        help="where to write the raw numbers",
    )
    parser.add_argument("--only", nargs="*", choices=SCENARIOS, default=[])
    args = parser.parse_args(argv)
    results = asyncio.run(run(args.quick, set(args.only)))
    print(table(results))
    extra = profile_table(results)
    if extra:
        print()
        print(extra)
    print(f"\nwall time {results['wall_seconds']} s; per scenario {results['scenario_seconds']}")
    machine = results["machine"]
    print(
        f"{machine['cpus']} CPUs; load average at start {machine['load_average_at_start'][0]:.2f},"
        f" at end {machine['load_average_at_end'][0]:.2f} (other load makes the tails noisy)"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    print(f"raw numbers: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
