"""``zi-coder replay``: recorded model calls sent again to today's model, compared side by side.

Filters pick live calls from the history (``--since/--until``, ``--kind``,
``--model``, ``--language``); the newest ``--limit`` of them with a stored prompt
are replayed, ``--concurrency`` at a time, with a progress bar on stderr. The
report (a table, or ``--json`` with one row per call) goes to stdout; each failed
call is one line on stderr, and the exit status is 1 when every replay failed.
Replays are written to the history as model calls with ``replay_of`` set (live
statistics leave them out). The logic is :mod:`server.history.replay`.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC
from typing import TYPE_CHECKING, Any

from server.commands.moments import Moment, since_type, until_type

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.table import Table

    from server.completion.recorder import ModelCallEvent
    from server.history.replay import CallResult, Group, Pair, ReplayFilter, Selection
    from server.settings import Settings

KINDS = ("completion", "code_action", "review")
_WIDE = 240
NO_PROMPT_HELP = (
    "prompts are stored only while history.store_prompts is on (ZI_HISTORY__STORE_PROMPTS=true, "
    'or "zi": {"history": {"store_prompts": true}} in the editor\'s settings); calls recorded '
    "while it was off keep only lengths and timings"
)
SIMILARITY_HELP = (
    "Accepted: completions whose suggestion the user accepted (in full or in part); exact "
    "match and similarity compare the recorded and the new suggestion with what was "
    "accepted. Similarity: difflib SequenceMatcher ratio (2 x matching chars / total "
    "chars, 0..1); answer sim.: the new chat answer against the recorded one. Passes: a "
    "completion that survives post-processing, a review that validates against its schema. "
    "Latencies are medians."
)


# -- the command -----------------------------------------------------------------------------


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    replay = commands.add_parser(
        "replay",
        help="send recorded model calls again to the current model and compare the answers",
        description=(
            "Re-run recorded model calls (those recorded with history.store_prompts on) "
            "against the currently configured models and FIM templates, and compare the "
            "answers with the recorded ones and with what the user accepted."
        ),
    )
    replay.add_argument(
        "--since",
        metavar="WHEN",
        type=since_type,
        help="calls from WHEN on: a duration back from now (30m, 12h, 7d, 2w) or a UTC date "
        "or time (2025-01-31, 2025-01-31T14:00)",
    )
    replay.add_argument(
        "--until",
        metavar="WHEN",
        type=until_type,
        help="calls before WHEN: a duration back from now or a UTC date or time (a date "
        "includes that whole day)",
    )
    replay.add_argument("--kind", choices=KINDS, help="only calls of this kind")
    replay.add_argument("--model", metavar="NAME", help="only calls recorded with this model")
    replay.add_argument("--language", metavar="ID", help="only calls for this language id")
    replay.add_argument(
        "--limit",
        type=_positive,
        default=200,
        metavar="N",
        help="replay at most the N newest matching calls (default: 200)",
    )
    replay.add_argument(
        "--concurrency",
        type=_positive,
        default=4,
        metavar="N",
        help="calls in flight at once (default: 4; 1 for latencies closest to live use)",
    )
    replay.add_argument("--json", action="store_true", help="print the report as JSON")
    replay.set_defaults(run=run)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError
    from sqlalchemy.exc import SQLAlchemyError

    from server.commands import configure_cli_logging, fail
    from server.completion.recorder import ModelCallKind
    from server.errors import describe
    from server.history.database import SchemaTooNewError
    from server.history.reading import masked
    from server.history.replay import ReplayFilter
    from server.settings import Settings

    configure_cli_logging()
    try:
        settings = Settings()
        url = settings.resolved_database_url()
    except ValidationError as exc:
        return fail(f"replay: invalid settings: {' '.join(str(exc).split())}")
    since: Moment | None = args.since
    until: Moment | None = args.until
    filters = ReplayFilter(
        since=since.at if since else None,
        until=until.at if until else None,
        kind=ModelCallKind(args.kind) if args.kind else None,
        model=args.model,
        language=args.language,
        limit=args.limit,
    )
    shown_url = masked(url)
    try:
        selection = _select(url, filters)
    except (SQLAlchemyError, ImportError, OSError) as exc:
        return fail(f"replay: cannot read the history database {shown_url}: {describe(exc)}")
    if selection is None or not selection.calls:
        note = (
            f"no recorded model calls yet at {shown_url}"
            if selection is None
            else _nothing_note(selection)
        )
        _print_report(
            args, url=shown_url, filters=filters, selection=selection, results=[], note=note
        )
        return 0
    try:
        record, close = _recorder(url, settings)
    except SchemaTooNewError as exc:
        return fail(f"replay: {exc} ({shown_url})")
    except (SQLAlchemyError, ImportError, OSError) as exc:
        return fail(f"replay: cannot write to the history database {shown_url}: {describe(exc)}")
    try:
        results = _run(settings, selection, args.concurrency, record)
    finally:
        unrecorded = close()
    _print_report(
        args, url=shown_url, filters=filters, selection=selection, results=results, note=None
    )
    if unrecorded:
        fail(f"replay: {unrecorded}")
    if all(not result.ok for result in results) or unrecorded:
        return 1
    return 0


# -- reading and writing the history ---------------------------------------------------------


def _select(url: str, filters: ReplayFilter) -> Selection | None:
    """The calls to replay; None when the database has no model calls table (yet)."""
    from sqlalchemy import inspect
    from sqlalchemy.orm import Session

    from server.history.reading import open_readonly
    from server.history.replay import select_calls

    engine = open_readonly(url)
    if engine is None:
        return None
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("model_calls"):
                return None
            with Session(bind=connection) as session:
                return select_calls(session=session, filters=filters)
    finally:
        engine.dispose()


def _recorder(
    url: str, settings: Settings
) -> tuple[Callable[[ModelCallEvent], None], Callable[[], str]]:
    """A function writing one replay in its own short transaction, and a closer that
    returns a sentence about writes that failed ('' when all were written)."""
    import threading

    from sqlalchemy.orm import Session

    from server.errors import describe
    from server.history import repository
    from server.history.database import create_engine_for, upgrade_to_head

    engine = create_engine_for(url)
    try:
        upgrade_to_head(engine)  # as the server does before it writes
    except BaseException:
        engine.dispose()
        raise
    lock = threading.Lock()
    failures: list[str] = []

    def record(event: ModelCallEvent) -> None:
        try:
            with Session(engine) as session, session.begin():
                repository.record_model_call(
                    session=session,
                    event=event,
                    at=repository.now(),
                    store_prompts=settings.history.store_prompts,
                )
        except Exception as exc:  # the replay's figures stay valid; say so at the end
            with lock:
                failures.append(describe(exc))

    def close() -> str:
        engine.dispose()
        if not failures:
            return ""
        return f"{len(failures)} replays could not be recorded in the history: {failures[0]}"

    return record, close


# -- replaying, with progress ----------------------------------------------------------------


def _run(
    settings: Settings,
    selection: Selection,
    concurrency: int,
    record: Callable[[ModelCallEvent], None],
) -> list[CallResult]:
    import asyncio

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from server.history.replayer import Replayer, replay_all

    console = Console(stderr=True)
    progress = Progress(
        TextColumn("replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )

    async def main() -> list[CallResult]:
        replayer = Replayer(settings, record=record)
        task = progress.add_task("replay", total=len(selection.calls))

        def done(result: CallResult) -> None:
            if not result.ok:
                call = result.call
                where = ", ".join(x for x in (call.kind.value, call.language) if x)
                console.print(
                    f"zi-coder: replay of {call.id} ({where}) failed: {result.error}",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
            progress.advance(task)

        try:
            return await replay_all(
                replayer, selection.calls, concurrency=concurrency, on_done=done
            )
        finally:
            await replayer.aclose()

    with progress:
        return asyncio.run(main())


# -- the report --------------------------------------------------------------------------------


def _nothing_note(selection: Selection) -> str:
    if selection.matched == 0:
        return "no recorded model calls match"
    return "nothing to replay"


def _notes(selection: Selection | None, results: list[CallResult]) -> list[str]:
    if selection is None:
        return []
    notes = []
    if selection.without_prompt:
        notes.append(
            f"{selection.without_prompt} of {selection.matched} matching calls had no stored "
            f"prompt and cannot be replayed: {NO_PROMPT_HELP}"
        )
    if selection.failed:
        notes.append(f"{selection.failed} matching calls had failed when recorded: not replayed")
    if selection.left_out:
        notes.append(f"{selection.left_out} more replayable calls left out by --limit")
    failed = sum(1 for r in results if not r.ok)
    if failed:
        notes.append(f"{failed} of {len(results)} replays failed (listed on stderr)")
    return notes


def _print_report(
    args: argparse.Namespace,
    *,
    url: str,
    filters: ReplayFilter,
    selection: Selection | None,
    results: list[CallResult],
    note: str | None,
) -> None:
    from server.history.replay import summarize, to_json

    notes = ([note] if note else []) + _notes(selection, results)
    if args.json:
        data = to_json(url=url, filters=filters, selection=selection, results=results, notes=notes)
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return
    from rich.console import Console

    # A terminal's width, else (a file, a pipe, an editor's output view) wide enough
    # for the table not to wrap.
    width = None if sys.stdout.isatty() else _WIDE
    console = Console(file=sys.stdout, width=width, highlight=False)
    matched = selection.matched if selection else 0
    console.print(
        f"Zi Coder replay: {url} ({_period(filters)}): replayed {len(results)} of {matched} "
        "matching calls",
        markup=False,
        soft_wrap=True,
    )
    for line in notes:
        console.print(f"Note: {line}", markup=False, soft_wrap=True)
    groups = summarize(results)
    if groups:
        console.print(render_table(groups))
        console.print(SIMILARITY_HELP, markup=False, soft_wrap=True)


def _period(filters: ReplayFilter) -> str:
    parts = []
    if filters.since:
        parts.append(f"since {filters.since.astimezone(UTC):%Y-%m-%d %H:%M} UTC")
    if filters.until:
        parts.append(f"until {filters.until.astimezone(UTC):%Y-%m-%d %H:%M} UTC")
    for name, value in (
        ("kind", filters.kind.value if filters.kind else None),
        ("model", filters.model),
        ("language", filters.language),
    ):
        if value:
            parts.append(f"{name} {value}")
    return ", ".join(parts) or "all time"


def render_table(groups: list[Group]) -> Table:
    """Recorded and new figures side by side, one row per (kind, recorded model)."""
    from rich.table import Table

    from server.completion.recorder import ModelCallKind

    table = Table(title="recorded → new", title_justify="left")
    for header in (
        "Kind",
        "Model (recorded → now)",
        "Calls",
        "Failed",
        "Accepted",
        "Exact match",
        "Similarity",
        "Passes",
        "Answer sim.",
        "First token ms",
        "Total ms",
    ):
        text = header.startswith(("Kind", "Model"))
        table.add_column(header, justify="left" if text else "right", no_wrap=not text)
    for group in groups:
        now = ", ".join(group.models) or "-"
        table.add_row(
            group.kind.value,
            f"{group.recorded_model} → {now}",
            str(group.calls),
            str(group.failed),
            str(group.with_reference) if group.kind is ModelCallKind.COMPLETION else "-",
            _pair(group.exact, _percent),
            _pair(group.similarity, _fraction),
            _pair(group.passed, _percent),
            _fraction(group.response_similarity),
            _pair(group.first_token_ms, _ms),
            _pair(group.total_ms, _ms),
        )
    return table


def _pair(pair: Pair, shown: Any) -> str:
    if pair.recorded is None and pair.new is None:
        return "-"
    return f"{shown(pair.recorded)} → {shown(pair.new)}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
