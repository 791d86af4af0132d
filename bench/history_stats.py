"""`zi-coder stats` over a large history: how long the report takes on SQLite.

    uv run python -m bench.history_stats [--rows N] [--repeat K] [--db PATH]

Builds a history of N completions (default 1,000,000) in a temporary SQLite file:
the schema from the real migrations, then bulk inserts (``sqlite3.executemany``)
of realistic rows spread over the last 60 days: eleven languages, three models,
sources in the proportions a typing user produces (about two thirds from the
model, the rest from the type-ahead, the shared cache and joined requests),
outcomes, latencies (log-normal around 220 ms), one model call per model-served
completion plus failed calls, code actions, reviews (with their jobs) and a few
replays, and survival checkpoints (30 s, 2 min, 10 min) for accepted suggestions.

Then times ``zi-coder stats`` as a user runs it: the installed command in its own
process, output to a pipe, without PYTHONDONTWRITEBYTECODE (an install has its
bytecode): the text report, ``--since 7d``, ``--json`` and ``--html FILE``, one
uncounted run of each, then K rounds (default 5) of one run of each; then the same
in this process (no interpreter start, imports done once: the difference is
start-up). It prints the command and a Markdown table of the median times, with
the load average: on a shared machine, wall time also measures the neighbours.
The target: at most 2 s for a million completions. ``--db PATH`` keeps the
generated history and reuses it on the next run while the migrations still build
the same schema (building it takes about 80 s).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

DAYS = 60
LANGUAGES = {  # language: (share of completions, how much likelier than average to be taken)
    "python": (38, 1.1),
    "typescript": (18, 1.0),
    "typescriptreact": (8, 0.9),
    "javascript": (8, 0.95),
    "rust": (7, 0.8),
    "go": (7, 1.05),
    "java": (5, 0.9),
    "c": (3, 0.7),
    "cpp": (3, 0.75),
    "markdown": (2, 0.5),
    "sql": (1, 0.85),
}
MODELS = {"qwen2.5-coder-7b": 70, "starcoder2-3b": 20, "deepseek-coder-v2-lite": 10}
SOURCES = {"model": 68, "typeahead": 22, "shared_cache": 6, "joined": 4}
CHECKPOINTS_S = (30, 120, 600)


@dataclass(frozen=True, slots=True)
class Sizes:
    completions: int
    model_calls: int
    survival: int
    jobs: int


def _stamp(at: datetime) -> str:
    """How SQLAlchemy stores a UTC DateTime in SQLite."""
    return at.strftime("%Y-%m-%d %H:%M:%S.%f")


def _weighted(rng: random.Random, table: dict[str, int]) -> list[str]:
    """A lookup list: ``rng.choice`` of it draws keys with the table's weights."""
    return [key for key, weight in table.items() for _ in range(weight)]


def generate(path: Path, rows: int, *, seed: int = 7) -> Sizes:
    """A history of `rows` completions (and the rest, proportionally) in SQLite `path`."""
    from server.history.database import create_engine_for, upgrade_to_head

    engine = create_engine_for(f"sqlite:///{path}")
    upgrade_to_head(engine)
    engine.dispose()

    rng = random.Random(seed)
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(days=DAYS)
    step = (end - start).total_seconds() / max(rows, 1)
    languages = _weighted(rng, {k: v for k, (v, _) in LANGUAGES.items()})
    models, sources = _weighted(rng, MODELS), _weighted(rng, SOURCES)

    completions: list[tuple[object, ...]] = []
    calls: list[tuple[object, ...]] = []
    survival: list[tuple[object, ...]] = []
    jobs: list[tuple[object, ...]] = []
    for i in range(rows):
        ident = f"{rng.getrandbits(128):032x}"
        at = start + timedelta(seconds=i * step)
        language, model, source = rng.choice(languages), rng.choice(models), rng.choice(sources)
        length = max(1, int(rng.lognormvariate(3.3, 0.8)))
        prompt_chars = rng.randint(800, 6000)
        if source == "model":
            total: float = rng.lognormvariate(math.log(220), 0.5)
            first: float | None = total * rng.uniform(0.2, 0.45)
        elif source == "joined":
            total = rng.lognormvariate(math.log(150), 0.5)
            first = total * rng.uniform(0.2, 0.45)
        else:
            total, first = rng.uniform(0.2, 4.0), None
        draw = rng.random()
        taken = 0.26 * LANGUAGES[language][1]
        if draw < 0.25:
            outcome = "generated"
        elif draw < 0.25 + taken * 0.82:
            outcome = "accepted"
        elif draw < 0.25 + taken:
            outcome = "partially_accepted"
        elif draw < 0.92:
            outcome = "rejected"
        else:
            outcome = "shown"
        accepted = rng.randint(1, length) if outcome == "partially_accepted" else None
        shown_at = None if outcome == "generated" else _stamp(at + timedelta(milliseconds=40))
        decided = outcome in ("accepted", "partially_accepted", "rejected")
        decided_at = _stamp(at + timedelta(seconds=rng.uniform(0.3, 4))) if decided else None
        stamp, day = _stamp(at), f"{at:%Y-%m-%d}"
        mode = "single_line" if rng.random() < 0.7 else "multi_line"
        uri = f"file:///src/{i % 5000}.x"
        row = (ident, None, stamp, day, uri, language, model, "qwen", mode, source, length)
        completions.append(
            (*row, prompt_chars, first, total, outcome, accepted, shown_at, decided_at)
        )
        if source == "model":
            calls.append(
                _call(rng, stamp, "completion", model, language, total, first, completion=ident)
            )
        if outcome in ("accepted", "partially_accepted"):
            chars = length if accepted is None else accepted
            kept = chars
            closed = rng.random() < 0.04
            for after in CHECKPOINTS_S:
                kept = max(0, kept - int(chars * rng.choice((0, 0, 0, 0.1, 0.3, 1.0))))
                closed_now = int(closed and after == 600)
                survival.append(
                    (ident, after, stamp, day, language, model, stamp, chars, kept, closed_now)
                )
        if rng.random() < 0.01:  # a model call that failed: no completion came of it
            calls.append(_call(rng, stamp, "completion", model, language, total, None, error=True))
        if rng.random() < 0.015:  # a code action or a review, with its job
            kind = "review" if rng.random() < 0.6 else "code_action"
            job = f"job-{rng.getrandbits(64):016x}"
            status = rng.choice(["finished"] * 95 + ["failed"] * 3 + ["timeout", "cancelled"])
            ms = rng.lognormvariate(math.log(2500), 0.6)
            finished = _stamp(at + timedelta(milliseconds=ms))
            function = f"server.jobs.{kind}"
            jobs.append((job, kind, function, "rq", None, language, status, stamp, finished, ms))
            calls.append(_call(rng, stamp, kind, model, language, ms * 0.9, ms * 0.2, job=job))
        if rng.random() < 0.002 and calls:  # a replay of an earlier call
            of = rng.choice(calls)
            kind = str(of[2])
            calls.append(_call(rng, stamp, kind, model, language, total, first, replay_of=of[0]))

    with contextlib.closing(sqlite3.connect(path)) as db:
        # A throw-away file: no journal, no fsync, a big cache for the random-id indexes.
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-300000")
        with db:
            db.executemany(
                "INSERT INTO completions (id, parent_id, created_at, created_day, uri, language,"
                " model, template, mode, source, text_length, prompt_chars, first_token_ms,"
                " total_ms, outcome, accepted_length, shown_at, decided_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                completions,
            )
            db.executemany(
                "INSERT INTO model_calls (id, created_at, kind, model, endpoint, language,"
                " template, completion_id, job_id, params, prompt_chars, response_chars,"
                " finish_reason, prompt_tokens, completion_tokens, first_token_ms, total_ms,"
                " error, failed, replay, replay_of)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                calls,
            )
            db.executemany(
                "INSERT INTO completion_survival (completion_id, after_s,"
                " completion_created_at, created_day, language, model, checked_at,"
                " accepted_chars, kept_chars, document_closed) VALUES (?,?,?,?,?,?,?,?,?,?)",
                survival,
            )
            db.executemany(
                "INSERT INTO jobs (id, kind, function, runner, uri, language, status,"
                " created_at, finished_at, duration_ms) VALUES (?,?,?,?,?,?,?,?,?,?)",
                jobs,
            )
        db.execute("PRAGMA journal_mode=WAL")  # as the server leaves it
    return Sizes(len(completions), len(calls), len(survival), len(jobs))


def _call(
    rng: random.Random,
    stamp: str,
    kind: str,
    model: str,
    language: str,
    total: float,
    first: float | None,
    *,
    completion: str | None = None,
    job: str | None = None,
    replay_of: object = None,
    error: bool = False,
) -> tuple[object, ...]:
    """A model_calls row, in the INSERT's column order."""
    prompt_chars = rng.randint(800, 6000)
    response_chars = 0 if error else rng.randint(5, 400)
    return (
        f"{rng.getrandbits(128):032x}",
        stamp,
        kind,
        model,
        "http://127.0.0.1:8000/v1",
        language,
        "qwen",
        completion,
        job,
        '{"max_tokens": 64, "temperature": 0.2}',
        prompt_chars,
        response_chars,
        None if error else rng.choice(["stop", "stop", "length"]),
        None if error else prompt_chars // 3,
        None if error else max(1, response_chars // 3),
        first,
        total,
        "ReadTimeout: the model did not answer in time" if error else None,
        int(error),
        int(replay_of is not None),
        replay_of,
    )


# -- timing ------------------------------------------------------------------------------

# Indexes to try on top of the migrated schema: each one's CREATE INDEX, measured in
# a second round. Empty: those this bench proposed (the stats GROUP BYs read in index
# order, covering their sums; the percentiles walk (source, column) indexes; the
# survival checks carry their completion's day, language and model) are in migration
# 0002 now. Add candidates here to measure them.
PROPOSED_INDEXES: dict[str, str] = {}


@dataclass(frozen=True, slots=True)
class Timing:
    wall_s: float  # median
    cpu_s: float  # median, this process (in-process runs) or the child's (subprocess)


VARIANTS = {  # name: the arguments after `zi-coder stats` ("{html}": the report's path)
    "text": [],
    "--since 7d": ["--since", "7d"],
    "--json": ["--json"],
    "--html FILE": ["--html", "{html}"],
}


@contextlib.contextmanager
def _database(url: str) -> Iterator[None]:
    before = os.environ.get("ZI_DATABASE_URL")
    os.environ["ZI_DATABASE_URL"] = url
    try:
        yield
    finally:
        if before is None:
            del os.environ["ZI_DATABASE_URL"]
        else:
            os.environ["ZI_DATABASE_URL"] = before


def time_in_process(args: list[str], repeat: int) -> Timing:
    """Median times of ``zi-coder stats ARGS`` run in this process (imports done once)."""
    from server.cli import main

    walls, cpus = [], []
    for _ in range(repeat):
        buffer = io.StringIO()
        wall, cpu = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(io.StringIO()):
            code = main(["stats", *args])
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        if code != 0:
            raise SystemExit(f"zi-coder stats {' '.join(args)} exited {code}")
    return Timing(statistics.median(walls), statistics.median(cpus))


def user_environment(url: str) -> dict[str, str]:
    """The environment of a user's shell, with the history at `url`.

    Without PYTHONDONTWRITEBYTECODE (a test or CI setting, not a user's): an
    installed zi-coder has its bytecode compiled (``uv sync --compile-bytecode``,
    ``make setup``), and Python writes what is missing on the first run.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "ZI_DATABASE_URL": url}


def command(args: list[str]) -> list[str]:
    """``zi-coder stats ARGS``: the installed command, as a user runs it."""
    return [str(Path(sys.executable).with_name("zi-coder")), "stats", *args]


def time_subprocesses(runs: dict[str, list[str]], url: str, repeat: int) -> dict[str, Timing]:
    """Median times of ``zi-coder stats ARGS`` for each of `runs`, each in its own
    process, output to a pipe (interpreter start and imports included). One run of
    each first, not counted: it writes any missing bytecode and brings the database
    into the page cache. Then `repeat` rounds of one run each, so that a change of
    load on a shared machine weighs on every variant alike."""
    env = user_environment(url)
    for args in runs.values():
        subprocess.run(command(args), env=env, check=True, capture_output=True)
    walls: dict[str, list[float]] = {name: [] for name in runs}
    cpus: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, args in runs.items():
            before = os.times()
            wall = time.perf_counter()
            subprocess.run(command(args), env=env, check=True, capture_output=True)
            walls[name].append(time.perf_counter() - wall)
            after = os.times()
            cpus[name].append(
                after.children_user
                - before.children_user
                + after.children_system
                - before.children_system
            )
    return {
        name: Timing(statistics.median(walls[name]), statistics.median(cpus[name])) for name in runs
    }


def calibration() -> float:
    """Seconds of CPU for ten million Python additions: how fast this machine is."""
    started, total = time.process_time(), 0
    for i in range(10_000_000):
        total += i
    return time.process_time() - started


@dataclass(frozen=True, slots=True)
class Measured:
    subprocess: dict[str, Timing]  # what a user sees
    in_process: dict[str, Timing]  # the same without interpreter start and imports


def measure(url: str, html: Path, repeat: int) -> Measured:
    runs = {name: [a.format(html=html) for a in args] for name, args in VARIANTS.items()}
    spawned = time_subprocesses(runs, url, repeat)
    for name, args in runs.items():
        print(f"… zi-coder stats {' '.join(args)}: {spawned[name]}", file=sys.stderr)
    inside = {}
    with _database(url):
        for name, args in runs.items():
            inside[name] = time_in_process(args, repeat)
            print(f"… in process, {name}: {inside[name]}", file=sys.stderr)
    return Measured(spawned, inside)


def _schema(path: Path) -> list[tuple[str, str]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
        return [(str(name), str(sql)) for name, sql in rows]


def _same_schema(path: Path, scratch: Path) -> bool:
    """Whether the SQLite history `path` has the schema the migrations build now."""
    from server.history.database import create_engine_for, upgrade_to_head

    engine = create_engine_for(f"sqlite:///{scratch}")
    upgrade_to_head(engine)
    engine.dispose()
    proposed = {statement.split()[2] for statement in PROPOSED_INDEXES.values()}
    kept = [(name, sql) for name, sql in _schema(path) if name not in proposed]
    return kept == _schema(scratch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="completions to generate")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each variant")
    parser.add_argument(
        "--db",
        "--keep",
        dest="keep",
        type=Path,
        help="keep the database at this path, and reuse it next time if its schema is"
        " still the migrations' (otherwise it is built again)",
    )
    parser.add_argument("--no-proposed-indexes", action="store_true", help="skip the second round")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="zi-bench-stats-") as tmp:
        path = args.keep or Path(tmp) / "history.sqlite3"
        started = time.perf_counter()
        if path.exists() and not _same_schema(path, Path(tmp) / "schema.sqlite3"):
            print(f"history: {path} has another schema, building it again", file=sys.stderr)
            path.unlink()
            for suffix in ("-wal", "-shm"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)
        if path.exists():
            with contextlib.closing(sqlite3.connect(path)) as db:
                rows = db.execute("SELECT count(*) FROM completions").fetchone()[0]
                for statement in PROPOSED_INDEXES.values():  # "CREATE INDEX name ON ..."
                    db.execute(f"DROP INDEX IF EXISTS {statement.split()[2]}")
            print(f"history: reusing {path} ({rows:,} completions)", file=sys.stderr)
        else:
            sizes = generate(path, args.rows)
            rows = sizes.completions
            print(
                f"history: {sizes.completions:,} completions, {sizes.model_calls:,} model "
                f"calls, {sizes.survival:,} survival checks, {sizes.jobs:,} jobs; "
                f"{path.stat().st_size / 1e6:.0f} MB, built in "
                f"{time.perf_counter() - started:.0f} s",
                file=sys.stderr,
            )
        url = f"sqlite:///{path}"
        html = Path(tmp) / "report.html"
        load_before = os.getloadavg()[0]
        plain = measure(url, html, args.repeat)
        indexed: Measured | None = None
        if PROPOSED_INDEXES and not args.no_proposed_indexes:
            with contextlib.closing(sqlite3.connect(path)) as db:
                for statement in PROPOSED_INDEXES.values():
                    db.execute(statement)
                db.commit()
            indexed = measure(url, html, args.repeat)
        load_after = os.getloadavg()[0]
        reference = calibration()

    shown = " ".join(["ZI_DATABASE_URL=" + url, *command(["[ARGS]"])])
    print(
        f"\n{rows:,} completions on SQLite; `{shown}`, output to a pipe; median of"
        f" {args.repeat} runs after one not counted, wall (CPU) seconds; load average"
        f" {load_before:.1f} before, {load_after:.1f} after, on {os.cpu_count()} CPUs;"
        f" 10M Python additions: {reference:.2f} s CPU\n"
    )
    heads = ["`zi-coder stats` ARGS", "subprocess (what a user sees)", "in process"]
    if indexed is not None:
        heads += ["subprocess, proposed indexes", "in process, proposed indexes"]
    print(f"| {' | '.join(heads)} | target |")
    print(f"|---|{'---:|' * len(heads)}")
    for name in VARIANTS:
        timings = [plain.subprocess[name], plain.in_process[name]]
        if indexed is not None:
            timings += [indexed.subprocess[name], indexed.in_process[name]]
        cells = [f"{t.wall_s:.2f} ({t.cpu_s:.2f})" for t in timings]
        print(f"| `{name}` | {' | '.join(cells)} | ≤ 2 |")


if __name__ == "__main__":
    main()
