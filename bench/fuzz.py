"""Fuzzing for minutes: the fuzzer of tests/e2e/test_fuzz.py, run longer.

    uv run python -m bench.fuzz [--minutes 5] [--seed N] [--check-every 60] [--json PATH]

One real server (``python -m server serve`` over stdio, the scripted model in this
process, a temporary SQLite history) takes random and mutated LSP messages from
tests/support/lsp_fuzz.py as fast as it reads them. Every ``--check-every`` seconds
the fuzzing pauses for a well-formed check: an invoked inline completion on a fresh
document must come back with the scripted text. A server that dies is a crash: its
log's tail is kept and a new server carries on (the seed plus the number of crashes).
At the end every owed answer gets 30 s, then ``shutdown`` and ``exit``.

Prints messages sent, messages per second, minutes, owed answers by code (0: a
result), unanswered requests, crashes, checks passed, tracebacks in the log other
than deliberate refusals, and bytes on stdout that are not JSON-RPC; everything
goes to ``--json`` (default ``bench/results/fuzz.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.e2e.conftest import server_env
from tests.support.lsp_fuzz import FuzzSession
from tests.support.scripted_model import Reply, ScriptedModel

EXPECTED = "return a + b"
COUNTED = (
    "sent_by_kind",
    "answers_by_code",
    "unmatched_answers_by_code",
    "unanswered_by_kind",
    "notifications",
)


def _start(model: ScriptedModel, workdir: Path, seed: int) -> FuzzSession:
    workspace = workdir / "project"
    workspace.mkdir(exist_ok=True)
    env = server_env(
        ZI_INFERENCE__URL=model.url,
        ZI_DATABASE_URL=f"sqlite:///{workdir / 'history.sqlite3'}",
        ZI_LOG_LEVEL="INFO",
    )
    return FuzzSession(env, workdir / f"server-{seed}.log", seed, workspace)


def run(minutes: float, seed: int, check_every: float, workdir: Path) -> dict[str, Any]:
    sessions: list[dict[str, Any]] = []
    crashes: list[dict[str, Any]] = []
    checks = Counter[str]()
    log_crashes: set[str] = set()
    deadline = time.monotonic() + minutes * 60
    with ScriptedModel() as model:
        model.reply_with(Reply(text=EXPECTED))
        session = _start(model, workdir, seed)
        while time.monotonic() < deadline:
            session.fuzz(min(check_every, deadline - time.monotonic()))
            if session.alive():
                uri = (workdir / "project" / f"check_{checks.total()}.py").as_uri()
                checks["passed" if session.completes(uri) == EXPECTED else "failed"] += 1
            if not session.alive():  # a crash: keep its evidence, carry on with a new server
                sessions.append(session.report())
                log_crashes.update(session.stderr_crashes())
                log = session.stderr_path.read_text(errors="replace").splitlines()
                crashes.append({"exit_code": session.close(timeout=5), "log_tail": log[-30:]})
                session = _start(model, workdir, seed + len(crashes))
        session.settle(timeout=30)
        sessions.append(session.report())
        log_crashes.update(session.stderr_crashes())
        exit_code = session.close(timeout=30)
    return _summary(sessions, crashes, checks, sorted(log_crashes), exit_code)


def _summary(
    sessions: list[dict[str, Any]],
    crashes: list[dict[str, Any]],
    checks: Counter[str],
    log_crashes: list[str],
    exit_code: int | None,
) -> dict[str, Any]:
    seconds = sum(s["fuzz_seconds"] for s in sessions)
    sent = sum(s["messages_sent"] for s in sessions)
    totals: dict[str, Any] = {key: Counter() for key in COUNTED}
    for s in sessions:
        for key in COUNTED:
            totals[key].update(s[key])
    return {
        "messages_sent": sent,
        "fuzz_minutes": round(seconds / 60, 2),
        "messages_per_second": round(sent / max(seconds, 1e-9), 1),
        **{key: dict(sorted(counts.items())) for key, counts in totals.items()},
        "unanswered": sum(s["unanswered"] for s in sessions),
        "crashes": len(crashes),
        "crash_logs": crashes,
        "checks_passed": checks["passed"],
        "checks_failed": checks["failed"],
        "log_crashes": log_crashes,
        "internal_errors": sorted({e for s in sessions for e in s["internal_errors"]}),
        "duplicate_answers": sum(s["duplicate_answers"] for s in sessions),
        "stdout_junk": [j for s in sessions for j in s["stdout_junk"]],
        "exit_code_at_the_end": exit_code,
        "sessions": sessions,
    }


def report(r: dict[str, Any]) -> str:
    codes = ", ".join(f"{code}: {n}" for code, n in r["answers_by_code"].items())
    lines = [
        f"messages sent        {r['messages_sent']:,} in {r['fuzz_minutes']} min "
        f"({r['messages_per_second']} messages/s)",
        f"owed answers by code {codes}",
        f"unanswered requests  {r['unanswered']} {r['unanswered_by_kind'] or ''}",
        f"crashes              {r['crashes']} (server deaths, each replaced by a new server)",
        f"well-formed checks   {r['checks_passed']} passed, {r['checks_failed']} failed",
        f"-32603 answers       {len(r['internal_errors'])} distinct",
        f"tracebacks in log    {len(r['log_crashes'])} distinct (refusals left out)",
        f"stdout junk          {len(r['stdout_junk'])}",
        f"exit code at the end {r['exit_code_at_the_end']}",
    ]
    lines += [f"  log: {t}" for t in r["log_crashes"][:10]]
    lines += [f"  -32603: {e}" for e in r["internal_errors"][:10]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=int(time.time()) % 2**31)
    parser.add_argument("--check-every", type=float, default=60.0, help="seconds")
    default = Path(__file__).parent / "results" / "fuzz.json"
    parser.add_argument("--json", type=Path, default=default, help="raw numbers go here")
    args = parser.parse_args(argv)
    print(f"fuzzing for {args.minutes:g} min, seed {args.seed}", file=sys.stderr, flush=True)
    load_start = os.getloadavg()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="zi-fuzz-") as tmp:
        results = run(args.minutes, args.seed, args.check_every, Path(tmp))
    results.update(
        seed=args.seed,
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        wall_seconds=round(time.monotonic() - started, 1),
        cpus=os.cpu_count(),
        load_average_at_start=load_start,
        load_average_at_end=os.getloadavg(),
    )
    print(report(results))
    command = " ".join(["uv run python -m bench.fuzz", *(sys.argv[1:] if argv is None else argv)])
    print(f"\n`{command}`, {results['date']}: seed {args.seed}, {results['cpus']} CPUs, ", end="")
    print(
        f"load average {load_start[0]:.2f} at start, {results['load_average_at_end'][0]:.2f} at end"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    print(f"raw numbers: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
