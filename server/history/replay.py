"""What ``zi-coder replay`` replays and how the replays compare (the figures and their JSON).

A person changing the model, the FIM template or a prompt wants to know, before
rolling it out, how the change does on real traffic. :func:`select_calls` picks
recorded live calls from ``model_calls`` (only those whose prompt was stored:
the setting ``history.store_prompts``; replays are never replayed), with, for a
completion, what the user took of its suggestion: the full text when accepted,
its accepted prefix when partially accepted (also through a type-ahead
continuation of it), nothing when it was rejected or never decided.
:mod:`server.history.replayer` sends them again; :func:`summarize` and
:func:`to_json` present the :class:`CallResult` s.

Figures, per kind of call and recorded model (recorded → new):

- completions: the recorded raw answer and the new one both go through today's
  post-processing. *Exact match* and *similarity* compare each suggestion with
  the accepted text (calls without one are left out); *passes*: a non-empty
  suggestion is left.
- reviews: *passes*: the answer validates as the review job reads it (not cut,
  schema-valid JSON). Code actions and reviews: *response similarity* of the new
  answer to the recorded one.
- latency: medians of time to first token and total model time, recorded and new.

Similarity is :func:`similarity`: difflib's ``SequenceMatcher.ratio`` (autojunk
off), 2·matches / total length, the "edit similarity" of code-completion
benchmarks (``fuzz.ratio`` / 100). Figures leave out calls whose replay failed.
"""

from __future__ import annotations

import difflib
import json
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from server.completion.recorder import ModelCallKind
from server.completion.types import Mode, Outcome

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from server.history.models import CompletionRecord

CHAT_KINDS = (ModelCallKind.CODE_ACTION, ModelCallKind.REVIEW)


# -- what to replay ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplayFilter:
    since: datetime | None = None
    until: datetime | None = None
    kind: ModelCallKind | None = None
    model: str | None = None  # the recorded model
    language: str | None = None
    limit: int = 200


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """One recorded call with a stored prompt, and what the user did with its suggestion."""

    id: str
    kind: ModelCallKind
    created_at: datetime
    model: str
    template: str | None
    language: str | None
    params: dict[str, Any]
    prompt: str
    response: str
    finish_reason: str | None
    first_token_ms: float | None
    total_ms: float
    mode: Mode | None = None  # completions: the linked suggestion's mode
    reference: str | None = None  # completions: the text the user accepted, if any


@dataclass(frozen=True, slots=True)
class Selection:
    calls: list[RecordedCall]  # newest first, at most `limit`
    matched: int  # live calls matching the filters (replays never count)
    without_prompt: int  # of those, recorded without their prompt (store_prompts off)
    failed: int  # of those with a prompt, recorded as failed: nothing to compare with
    left_out: int  # replayable, but beyond the limit


def select_calls(*, session: Session, filters: ReplayFilter) -> Selection:
    """The newest `filters.limit` replayable calls matching `filters`, and the counts."""
    from sqlalchemy import func, select
    from sqlalchemy.sql.elements import ColumnElement

    from server.history.aggregates import count_where as count
    from server.history.models import ModelCallRecord as M

    conditions: list[ColumnElement[bool]] = [M.replay.is_(False)]
    if filters.since is not None:
        conditions.append(M.created_at >= filters.since.astimezone(UTC))  # SQLite: UTC text
    if filters.until is not None:
        conditions.append(M.created_at < filters.until.astimezone(UTC))
    if filters.kind is not None:
        conditions.append(M.kind == filters.kind.value)
    if filters.model is not None:
        conditions.append(M.model == filters.model)
    if filters.language is not None:
        conditions.append(M.language == filters.language)
    replayable = M.prompt.is_not(None) & M.error.is_(None)
    matched, without_prompt, failed, usable = session.execute(
        select(
            func.count(M.id),
            count(M.prompt.is_(None)),
            count(M.prompt.is_not(None) & M.error.is_not(None)),
            count(replayable),
        ).where(*conditions)
    ).one()
    rows = session.scalars(
        select(M)
        .where(*conditions, replayable)
        .order_by(M.created_at.desc(), M.id)
        .limit(max(filters.limit, 0))
    ).all()
    suggestions = _suggestions(session, [r.completion_id for r in rows if r.completion_id])
    calls = []
    for row in rows:
        parent, children = suggestions.get(row.completion_id or "", (None, []))
        calls.append(
            RecordedCall(
                id=row.id,
                kind=ModelCallKind(row.kind),
                created_at=row.created_at.replace(tzinfo=row.created_at.tzinfo or UTC),
                model=row.model,
                template=row.template,
                language=row.language or (parent.language if parent else None),
                params=_json_object(row.params),
                prompt=row.prompt or "",
                response=row.response or "",
                finish_reason=row.finish_reason,
                first_token_ms=row.first_token_ms,
                total_ms=row.total_ms,
                mode=_mode(parent.mode) if parent else None,
                reference=accepted_reference(parent, children) if parent else None,
            )
        )
    return Selection(
        calls=calls,
        matched=int(matched),
        without_prompt=int(without_prompt),
        failed=int(failed),
        left_out=max(int(usable) - len(calls), 0),
    )


def _suggestions(
    session: Session, ids: list[str]
) -> dict[str, tuple[CompletionRecord, list[CompletionRecord]]]:
    """Suggestions by id, with their type-ahead continuations."""
    from sqlalchemy import select

    from server.history.models import CompletionRecord as C

    if not ids:
        return {}
    found: dict[str, tuple[CompletionRecord, list[CompletionRecord]]] = {
        row.id: (row, []) for row in session.scalars(select(C).where(C.id.in_(ids)))
    }
    for child in session.scalars(select(C).where(C.parent_id.in_(ids))):
        if child.parent_id in found:
            found[child.parent_id][1].append(child)
    return found


def accepted_reference(
    suggestion: CompletionRecord, continuations: Iterable[CompletionRecord] = ()
) -> str | None:
    """What the user accepted of `suggestion` (None: nothing, or its text was not stored).

    Accepted: its whole text; partially accepted: its first ``accepted_length``
    characters. A type-ahead continuation shows the rest of the suggestion after
    what the user typed, so accepting it (in full or in part) accepts the
    suggestion up to there. The longest acceptance wins.
    """
    text = suggestion.text
    if text is None:
        return None
    taken = [_taken(suggestion.outcome, suggestion.accepted_length, len(text))]
    for child in continuations:
        typed = len(text) - child.text_length
        if typed >= 0:
            extent = _taken(child.outcome, child.accepted_length, child.text_length)
            taken.append(None if extent is None else typed + extent)
    best = max((n for n in taken if n is not None), default=None)
    return None if best is None else text[:best]


def _taken(outcome: str, accepted_length: int | None, length: int) -> int | None:
    if outcome == Outcome.ACCEPTED:
        return length
    if outcome == Outcome.PARTIALLY_ACCEPTED and accepted_length is not None:
        return min(accepted_length, length)
    return None


def _mode(value: str) -> Mode | None:
    try:
        return Mode(value)
    except ValueError:
        return None


def _json_object(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# -- comparing -------------------------------------------------------------------------------


def similarity(a: str, b: str) -> float:
    """difflib's ratio, 2·matches / (len(a) + len(b)): 1.0 for equal texts, 0.0 for disjoint.

    Autojunk is off: on code it would treat spaces and common letters as junk.
    """
    if not a and not b:
        return 1.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def review_validates(text: str, finish_reason: str | None) -> bool:
    """Whether the review job would accept this answer (not cut, schema-valid JSON)."""
    from server.diagnostics.review import AnswerInvalid, parse_answer

    if finish_reason == "length":
        return False
    try:
        parse_answer(text)
    except AnswerInvalid:
        return False
    return True


@dataclass(frozen=True, slots=True)
class CallResult:
    """One replay: the recorded call and the new one side by side."""

    call: RecordedCall
    replay_id: str | None = None  # the model_calls row of the replay (None: never sent)
    model: str | None = None  # the model asked now
    template: str | None = None  # completions: the FIM template used now
    mode: Mode | None = None  # completions: single or multi line, as sent now
    error: str | None = None
    new_text: str = ""  # the new raw answer
    recorded_suggestion: str | None = None  # completions: after today's post-processing
    new_suggestion: str | None = None
    recorded_pass: bool | None = None  # completions: a suggestion; reviews: valid JSON
    new_pass: bool | None = None
    first_token_ms: float | None = None
    total_ms: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def exact(self, new: bool) -> bool | None:
        """Whether the suggestion equals what the user accepted (None: no reference)."""
        reference = self.call.reference
        suggestion = self.new_suggestion if new else self.recorded_suggestion
        if reference is None or suggestion is None:
            return None
        return suggestion == reference

    def similarity(self, new: bool) -> float | None:
        reference = self.call.reference
        suggestion = self.new_suggestion if new else self.recorded_suggestion
        if reference is None or suggestion is None:
            return None
        return similarity(suggestion, reference)

    @property
    def response_similarity(self) -> float | None:
        """Chat calls: the new answer against the recorded one."""
        if not self.ok or self.call.kind not in CHAT_KINDS:
            return None
        return similarity(self.new_text, self.call.response)


# -- the report's figures -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pair:
    recorded: float | None
    new: float | None


@dataclass(frozen=True, slots=True)
class Group:
    """Figures of the replays of one kind of call to one recorded model."""

    kind: ModelCallKind
    recorded_model: str
    models: tuple[str, ...]  # asked now
    calls: int
    failed: int
    with_reference: int  # completions with an accepted text to compare with
    exact: Pair  # fraction of those equal to the accepted text
    similarity: Pair  # mean similarity to the accepted text
    passed: Pair  # completions: non-empty suggestion; reviews: valid review JSON
    response_similarity: float | None  # chat: mean similarity of new to recorded answers
    first_token_ms: Pair  # medians
    total_ms: Pair


def summarize(results: list[CallResult]) -> list[Group]:
    """One group per (kind, recorded model); figures over the calls that did not fail."""
    keyed: dict[tuple[ModelCallKind, str], list[CallResult]] = {}
    for result in results:
        keyed.setdefault((result.call.kind, result.call.model), []).append(result)
    order = {kind: i for i, kind in enumerate(ModelCallKind)}
    groups = []
    for (kind, model), members in sorted(keyed.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])):
        ok = [r for r in members if r.ok]
        judged = [r for r in ok if r.call.reference is not None]
        groups.append(
            Group(
                kind=kind,
                recorded_model=model,
                models=tuple(sorted({r.model for r in ok if r.model})),
                calls=len(members),
                failed=len(members) - len(ok),
                with_reference=len(judged),
                exact=Pair(
                    _mean([r.exact(new=False) for r in judged]),
                    _mean([r.exact(new=True) for r in judged]),
                ),
                similarity=Pair(
                    _mean([r.similarity(new=False) for r in judged]),
                    _mean([r.similarity(new=True) for r in judged]),
                ),
                passed=Pair(_mean([r.recorded_pass for r in ok]), _mean([r.new_pass for r in ok])),
                response_similarity=_mean([r.response_similarity for r in ok]),
                first_token_ms=Pair(
                    _median([r.call.first_token_ms for r in ok]),
                    _median([r.first_token_ms for r in ok]),
                ),
                total_ms=Pair(
                    _median([r.call.total_ms for r in ok]), _median([r.total_ms for r in ok])
                ),
            )
        )
    return groups


def _mean(values: Iterable[float | bool | None]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return statistics.fmean(present) if present else None


def _median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


# -- JSON (``--json``) -------------------------------------------------------------------------


def to_json(
    *,
    url: str,
    filters: ReplayFilter,
    selection: Selection | None,
    results: list[CallResult],
    notes: list[str],
) -> dict[str, Any]:
    """The report as JSON: counts, notes, one object per group and one per call.

    `selection` None: the database has no model calls (yet)."""
    return {
        "database": url,
        "since": filters.since.astimezone(UTC).isoformat() if filters.since else None,
        "until": filters.until.astimezone(UTC).isoformat() if filters.until else None,
        "kind": filters.kind.value if filters.kind else None,
        "model": filters.model,
        "language": filters.language,
        "limit": filters.limit,
        "matched": selection.matched if selection else 0,
        "without_prompt": selection.without_prompt if selection else 0,
        "failed_when_recorded": selection.failed if selection else 0,
        "left_out_by_limit": selection.left_out if selection else 0,
        "replayed": len(results),
        "failed": sum(1 for r in results if not r.ok),
        "notes": notes,
        "similarity": "difflib.SequenceMatcher(autojunk=False).ratio()",
        "groups": [_group_json(g) for g in summarize(results)],
        "calls": [_call_json(r) for r in results],
    }


def _group_json(group: Group) -> dict[str, Any]:
    def pair(p: Pair, digits: int) -> dict[str, float | None]:
        return {"recorded": _round(p.recorded, digits), "new": _round(p.new, digits)}

    return {
        "kind": group.kind.value,
        "recorded_model": group.recorded_model,
        "models": list(group.models),
        "calls": group.calls,
        "failed": group.failed,
        "with_reference": group.with_reference,
        "exact_match": pair(group.exact, 4),
        "similarity": pair(group.similarity, 4),
        "pass_rate": pair(group.passed, 4),
        "response_similarity": _round(group.response_similarity, 4),
        "first_token_ms": pair(group.first_token_ms, 1),
        "total_ms": pair(group.total_ms, 1),
    }


def _call_json(result: CallResult) -> dict[str, Any]:
    call = result.call
    return {
        "id": call.id,
        "replay_id": result.replay_id,
        "kind": call.kind.value,
        "created_at": call.created_at.astimezone(UTC).isoformat(),
        "language": call.language,
        "recorded_model": call.model,
        "model": result.model,
        "recorded_template": call.template,
        "template": result.template,
        "mode": result.mode.value if result.mode else None,
        "error": result.error,
        "accepted": call.reference,
        "recorded": {
            "suggestion": result.recorded_suggestion,
            "exact": result.exact(new=False),
            "similarity": _round(result.similarity(new=False), 4),
            "passes": result.recorded_pass,
            "first_token_ms": _round(call.first_token_ms, 1),
            "total_ms": _round(call.total_ms, 1),
        },
        "new": {
            "text": result.new_text if result.ok else None,
            "suggestion": result.new_suggestion,
            "exact": result.exact(new=True),
            "similarity": _round(result.similarity(new=True), 4),
            "passes": result.new_pass,
            "first_token_ms": _round(result.first_token_ms, 1),
            "total_ms": _round(result.total_ms, 1),
        },
        "response_similarity": _round(result.response_similarity, 4),
    }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
