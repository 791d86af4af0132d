"""Inference benchmark: TTFT and tokens/s of the served model under editor-like load.

    uv run python -m bench.inference [--quick] [--concurrency 1,8,32] [--prefix-caching on,off]

C concurrent typists each type through a different standard-library file; every
request is the fill-in-the-middle prompt the language server would send at that
keystroke (see ``bench/inference_load.py``), streamed from ``/v1/completions``
with ``ignore_eos`` so each one produces exactly ``--max-tokens`` tokens. For each
automatic-prefix-caching setting the model is served afresh (by the project's
launcher), and each concurrency level uses files no earlier level touched, so
the cache holds nothing useful when a level starts. The first ``--warmup``
requests of every typist are excluded (the first one of a file cannot hit the
cache). Prints a Markdown table and the APC on/off ratio of median TTFT; raw
samples go to ``--out`` (default ``bench/results/inference-<time>.json``).

Default: the tiny random-weight model on CPU (``~/.cache/zi-coder/tiny-model-v1``,
built by the real-model tests), two server starts plus load, about 4-5 minutes on
2 cores; ``--quick`` about 2. Its numbers show the serving stack, not a real
model: a 2-layer model makes prefill nearly free, so APC matters far less here
than with a real model.

On a GPU with a real model, the same command serves it there (the launcher
leaves out the CPU settings when it sees a GPU)::

    uv run python -m bench.inference --model Qwen/Qwen2.5-Coder-1.5B --max-tokens 64

or benchmark servers that are already running, one per prefix-caching setting
(both fit on one GPU when each takes half of its memory)::

    zi-coder inference serve --model Qwen/Qwen2.5-Coder-1.5B --served-model-name coder \
        --host 0.0.0.0 --allow-remote --port 8000 -- --gpu-memory-utilization 0.45
    zi-coder inference serve ... --port 8001 --no-prefix-caching -- --gpu-memory-utilization 0.45
    uv run python -m bench.inference --url http://gpu:8000/v1 --url http://gpu:8001/v1 \
        --prefix-caching on,off

With ``--url`` nothing is started; each URL is labelled by the matching
``--prefix-caching`` entry, or else by what the server's ``/metrics`` reports.
The served name is read from ``/v1/models`` unless ``--served-name`` says it, and
the FIM template is detected through ``/tokenize`` unless ``--fim-template``.
Prompts are cut to ``--prompt-tokens`` (default 1500) or what the server's
``max_model_len`` leaves, counted with the model's tokenizer.json when it is on
this machine and otherwise by a chars-per-token ratio measured through /tokenize.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.inference_load import (
    RatioCounter,
    Typist,
    pick_files,
    run_level,
    typing_stream,
)
from inference.client import InferenceClient
from inference.fim import FimTemplate, detect_template, template_by_name
from inference.launcher import ServeConfig, VllmServer
from inference.probes import free_port, is_loopback
from inference.tokens import LocalTokenCounter, TokenCounter

DEFAULT_MODEL = "~/.cache/zi-coder/tiny-model-v1"
RESULTS = Path(__file__).parent / "results"
# Head line, FIM sentinels and rounding: tokens the budgets do not count.
PROMPT_MARGIN_TOKENS = 48
# Measured requests each typist makes at least, so high concurrency reaches a steady state.
MIN_PER_TYPIST = 4


def _csv_ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _csv_flags(text: str) -> list[str]:
    flags = [x.strip().lower() for x in text.split(",") if x.strip()]
    for flag in flags:
        if flag not in {"on", "off"}:
            raise argparse.ArgumentTypeError(f"prefix caching is on or off, not {flag!r}")
    return flags


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--model", default=DEFAULT_MODEL, help="model to serve (directory or HF id)")
    p.add_argument("--served-name", default=None, help="default: tiny-coder, or /v1/models")
    p.add_argument("--url", action="append", default=[], help="benchmark a running server")
    p.add_argument("--concurrency", type=_csv_ints, default=[1, 8, 32])
    p.add_argument(
        "--requests",
        type=int,
        default=None,
        help=f"measured requests per level (default 96, quick 24; >= {MIN_PER_TYPIST} per typist)",
    )
    p.add_argument("--warmup", type=int, default=1, help="excluded requests per typist")
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--prompt-tokens", type=int, default=1500, help="prompt budget (max)")
    p.add_argument("--max-model-len", type=int, default=2048, help="local server's context")
    p.add_argument("--dtype", default="auto", help="local server's dtype")
    p.add_argument("--prefix-caching", type=_csv_flags, default=None, help="default: on,off")
    p.add_argument("--fim-template", default="auto", help="auto | qwen | starcoder | ...")
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="fewer requests (smoke run)")
    p.add_argument("--out", type=Path, default=None, help="raw samples (JSON)")
    args = p.parse_args(argv)
    if args.requests is None:
        args.requests = 24 if args.quick else 96
    if args.url and args.prefix_caching and len(args.prefix_caching) != len(args.url):
        p.error("with --url, give one --prefix-caching entry per URL (or none)")
    if not args.url and args.prefix_caching is None:
        args.prefix_caching = ["on", "off"]
    return args


# ------------------------------------------------------------------ servers


@contextmanager
def local_server(args: argparse.Namespace, prefix_caching: bool, log_file: Path) -> Iterator[str]:
    """Serve ``--model`` with the project's launcher; yield its ``/v1`` URL.

    The launcher adds what a CPU needs (float32, eager mode, a small KV cache) and
    shortens the context to what the model's config.json allows.
    """
    config = ServeConfig(
        source=args.model,
        served_name=args.served_name,
        port=free_port(),
        max_model_len=args.max_model_len,
        prefix_caching=prefix_caching,
        dtype=args.dtype,
        log_file=log_file,
    )
    with VllmServer(config) as server:
        yield server.url


def other_vllm_servers() -> int:
    """vLLM API servers running on this machine (other people's load makes numbers noisy)."""
    count = 0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"vllm.entrypoints" in cmdline.read_bytes():
                count += 1
        except OSError:
            continue
    return count


async def scrape_metrics(session: Any, url: str) -> dict[str, Any]:
    """Prefix-cache counters and the APC setting from vLLM's Prometheus endpoint."""
    try:
        async with session.get(f"{url.removesuffix('/v1')}/metrics") as response:
            text = await response.text() if response.status == 200 else ""
    except Exception:
        text = ""
    out: dict[str, Any] = {"queries": 0.0, "hits": 0.0, "apc": None}
    for line in text.splitlines():
        if line.startswith("vllm:prefix_cache_queries_total"):
            out["queries"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith("vllm:prefix_cache_hits_total"):
            out["hits"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith("vllm:cache_config_info"):
            found = re.search(r'enable_prefix_caching="(\w+)"', line)
            if found:
                out["apc"] = "on" if found.group(1) == "True" else "off"
    return out


# ------------------------------------------------------------------ one server


async def _prompt_setup(
    client: InferenceClient, args: argparse.Namespace, files: list[Path]
) -> tuple[str, int, FimTemplate, TokenCounter, str]:
    models = await client.list_models()
    if not models:
        raise RuntimeError(f"{client.base_url} serves no model")
    chosen = next((m for m in models if m.id == args.served_name), models[0])
    name = args.served_name or chosen.id
    max_len = chosen.max_model_len or 2048
    if args.fim_template == "auto":
        template = await detect_template(name, lambda s: client.count_tokens(name, s))
    else:
        template = template_by_name(args.fim_template)
    tokenizer = Path(chosen.root or "") / "tokenizer.json"
    if chosen.root and tokenizer.is_file():
        return name, max_len, template, LocalTokenCounter(tokenizer), "local tokenizer.json"
    sample = files[0].read_text(encoding="utf-8", errors="replace")[:20_000]
    ratio = len(sample) / max(1, await client.count_tokens(name, sample))
    return name, max_len, template, RatioCounter(ratio), f"{ratio:.2f} chars/token"


async def bench_server(url: str, label: str | None, args: argparse.Namespace) -> dict[str, Any]:
    levels = args.concurrency
    files = pick_files(1 + sum(levels), args.seed)
    client = InferenceClient(url, read_timeout_s=120.0)
    import aiohttp

    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=300),
        connector=aiohttp.TCPConnector(limit=0),
    )
    try:
        name, max_len, template, counter, counting = await _prompt_setup(client, args, files)
        budget = min(args.prompt_tokens, max_len - args.max_tokens - PROMPT_MARGIN_TOKENS)
        prefix_tokens = budget * 3 // 4
        suffix_tokens = budget - prefix_tokens
        metrics = await scrape_metrics(session, url)
        label = label or metrics["apc"] or "?"
        if metrics["apc"] and metrics["apc"] != label:
            print(
                f"warning: labelled APC {label} but the server reports {metrics['apc']}",
                file=sys.stderr,
            )

        def typists(chosen: list[Path], count: int) -> list[Typist]:
            return [
                typing_stream(
                    path,
                    count,
                    seed=args.seed,
                    template=template,
                    prefix_tokens=prefix_tokens,
                    suffix_tokens=suffix_tokens,
                    counter=counter,
                )
                for path in chosen
            ]

        # Engine warm-up on a file of its own: first requests pay one-off costs.
        warm = await run_level(
            session, url, name, typists(files[:1], 3), warmup=3, max_tokens=args.max_tokens
        )
        stagger_s = warm.samples[-1].total_s  # one unloaded request
        runs = []
        used = 1
        for c in levels:
            per_typist = max(MIN_PER_TYPIST, math.ceil(args.requests / c))
            group = typists(files[used : used + c], args.warmup + per_typist)
            used += c
            print(f"… APC {label}, concurrency {c}", file=sys.stderr, flush=True)
            before = await scrape_metrics(session, url)
            run = await run_level(
                session,
                url,
                name,
                group,
                warmup=args.warmup,
                max_tokens=args.max_tokens,
                stagger_s=stagger_s,
                seed=args.seed,
            )
            after = await scrape_metrics(session, url)
            runs.append(run.summary(label, before, after))
        return {
            "url": url,
            "served_name": name,
            "prefix_caching": label,
            "server_reports_apc": metrics["apc"],
            "max_model_len": max_len,
            "fim_template": template.name,
            "token_counting": counting,
            "budget_tokens": {"prefix": prefix_tokens, "suffix": suffix_tokens},
            "levels": runs,
        }
    finally:
        await session.close()
        await client.aclose()


# ------------------------------------------------------------------ report


def _num(value: float | None, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, fmt)


def table(levels: list[dict[str, Any]]) -> str:
    lines = [
        "| prefix caching | concurrency | requests | prompt tokens | TTFT median | TTFT p90 "
        "| total median | tok/s per request (median) | aggregate tok/s | APC hit rate |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lv in levels:
        hit = lv["prefix_cache"]["hit_rate"]
        lines.append(
            f"| {lv['prefix_caching']} | {lv['concurrency']} | {lv['requests']} "
            f"| {_num(lv['prompt_tokens']['median'], '.0f')} "
            f"| {_num(lv['ttft_ms']['median'], '.1f')} ms | {_num(lv['ttft_ms']['p90'], '.1f')} ms "
            f"| {_num(lv['total_ms']['median'], '.0f')} ms "
            f"| {_num(lv['decode_tok_s']['median'], '.1f')} "
            f"| {_num(lv['aggregate_tok_s'], '.1f')} "
            f"| {'-' if hit is None else f'{hit * 100:.0f} %'} |"
        )
    return "\n".join(lines)


def ratios(levels: list[dict[str, Any]]) -> str:
    by = {(lv["prefix_caching"], lv["concurrency"]): lv for lv in levels}
    out = []
    for (label, c), lv in by.items():
        off = by.get(("off", c))
        if label != "on" or off is None:
            continue
        on_ms, off_ms = lv["ttft_ms"]["median"], off["ttft_ms"]["median"]
        if off_ms and not math.isnan(on_ms) and not math.isnan(off_ms):
            out.append(f"concurrency {c}: TTFT median APC on/off = {on_ms / off_ms:.2f}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or RESULTS / f"inference-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    # Servers this run benchmarks on this machine are not someone else's load.
    ours = sum(is_loopback(urlsplit(u).hostname or "") for u in args.url)
    others_at_start = max(0, other_vllm_servers() - ours)
    results: dict[str, Any] = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_at_start": os.getloadavg(),
            "other_vllm_servers_at_start": others_at_start,
        },
        "servers": [],
    }
    if args.url:
        labels = args.prefix_caching or [None] * len(args.url)
        for url, label in zip(args.url, labels, strict=True):
            results["servers"].append(asyncio.run(bench_server(url.rstrip("/"), label, args)))
    else:
        default_name = "tiny-coder" if args.model == DEFAULT_MODEL else Path(args.model).name
        args.served_name = args.served_name or default_name
        for label in args.prefix_caching:
            log_file = out.with_name(f"{out.stem}-apc-{label}.log")
            print(f"… starting vLLM, APC {label} (log {log_file})", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            with local_server(args, label == "on", log_file) as url:
                startup = round(time.perf_counter() - t0, 1)
                server = asyncio.run(bench_server(url, label, args))
            server["startup_s"] = startup
            results["servers"].append(server)
    results["wall_s"] = round(time.perf_counter() - started, 1)
    results["machine"]["load_average_at_end"] = os.getloadavg()
    levels = [lv for server in results["servers"] for lv in server["levels"]]
    print(table(levels))
    extra = ratios(levels)
    if extra:
        print("\n" + extra)
    first = results["servers"][0]
    print(
        f"\nmodel {first['served_name']}, FIM {first['fim_template']}, "
        f"{args.max_tokens} tokens per request (ignore_eos), prompt budget "
        f"{first['budget_tokens']['prefix']} + {first['budget_tokens']['suffix']} tokens "
        f"(prefix + suffix; {first['token_counting']}), "
        f"{args.warmup} warm-up request(s) per typist excluded"
    )
    starts = [
        f"{s['prefix_caching']} {s['startup_s']} s" for s in results["servers"] if "startup_s" in s
    ]
    if starts:
        print(f"vLLM start-up: {', '.join(starts)}")
    errors = sum(lv["errors"] for lv in levels)
    if errors:
        examples = next(lv["error_examples"] for lv in levels if lv["errors"])
        print(f"**{errors} requests failed**, e.g. {examples}")
    load = results["machine"]
    print(
        f"wall time {results['wall_s']} s; {load['cpus']} CPUs; load average "
        f"{load['load_average_at_start'][0]:.2f} at start, {load['load_average_at_end'][0]:.2f} "
        f"at end; other vLLM servers running at start: {others_at_start}"
        + (" (their load makes these figures noisy)" if others_at_start else "")
    )
    out.write_text(json.dumps(results, indent=1))
    print(f"raw samples: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
