"""Diagnostics per document: static checks at once, then an AI review of what changed.

On open and on save the static checks (tree-sitter syntax errors, the Python
linter) run off the event loop and are published at once. A save also schedules a
review (debounced): the regions changed since the last *completed* review go to the
chat model as a job; its findings replace the previous review's on those lines and
keep it elsewhere. Results are cached by content, so saving content that was
reviewed before republishes without a model call.

Every group of diagnostics (static, review, notices) is stored with the text it
was computed on. A publish moves each group onto the document as it is now (lines
that did not change keep their findings; findings on changed lines are dropped),
so static and review results never overwrite each other and never point at the
wrong lines. A result superseded by a newer one (an older save's review arriving
after a newer save's) is dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from server.actions.types import Snapshot
from server.cache import CompletionCache
from server.diagnostics import changes
from server.diagnostics.review import PROMPT_VERSION
from server.diagnostics.static import looks_binary, static_diagnostics
from server.diagnostics.types import Diagnostic, Severity
from server.jobs import BACKGROUND_QUEUE
from server.jobs.gateway import JobGateway
from server.jobs.spec import JobSpec
from server.notify import Level, Notifier
from server.routing import ModelRouter
from server.settings import Settings
from server.syntax import Syntax

log = logging.getLogger(__name__)

STATIC_MAX_CHARS = 2_000_000  # beyond this, even the static checks are skipped (with a notice)
REVIEW_CACHE_TTL_S = 86_400
_REVIEW_JOB = "server.diagnostics.jobs.review_document"

Publish = Callable[[str, "int | None", list[Diagnostic]], None]


@dataclass
class _Group:
    """Diagnostics and the text they were computed on."""

    items: list[Diagnostic] = field(default_factory=list)
    text: str | None = None

    def on(self, text: str) -> list[Diagnostic]:
        """The items moved onto `text` (kept in place when they already are)."""
        if self.text is None or self.text == text:
            return self.items
        self.items = changes.carry_over(self.items, self.text, text)
        self.text = text
        return self.items


@dataclass
class _State:
    static: _Group = field(default_factory=_Group)
    notices: _Group = field(default_factory=_Group)
    shown_review: _Group = field(default_factory=_Group)
    # The last completed review, exactly as computed: the base for "what changed".
    reviewed: _Group = field(default_factory=_Group)
    static_generation: int = 0
    review_generation: int = 0
    pending: asyncio.Task[None] | None = None
    # Publishes move groups onto the current text in worker threads: one at a time.
    lock: threading.Lock = field(default_factory=threading.Lock)


class DiagnosticsService:
    def __init__(
        self,
        settings: Settings,
        *,
        jobs: JobGateway,
        models: ModelRouter,
        cache: CompletionCache,
        notifier: Notifier,
        documents: Callable[[str], Snapshot | None],
        publish: Publish,
        syntax: Syntax | None = None,
    ) -> None:
        self.settings = settings
        self.jobs = jobs
        self.models = models
        self.cache = cache
        self.notifier = notifier
        self.documents = documents
        self.publish = publish
        self.syntax = syntax or Syntax()
        self._states: dict[str, _State] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- events -------------------------------------------------------------------------

    async def opened(self, snapshot: Snapshot) -> None:
        await self._check(snapshot)

    async def saved(self, snapshot: Snapshot) -> None:
        # The review needs no lint result: it starts (after its debounce) while the
        # static checks run, and each publishes when it is ready.
        self._schedule_review(snapshot)
        await self._check(snapshot)

    def closed(self, uri: str) -> None:
        state = self._states.pop(uri, None)
        if state is not None and state.pending is not None:
            state.pending.cancel()
        self.publish(uri, None, [])  # the client forgets a closed file's diagnostics

    async def current(self, uri: str) -> tuple[str, list[Diagnostic]]:
        """Pull diagnostics: (result id, items) for the document as it is now."""
        snapshot = self.documents(uri)
        if snapshot is None:
            return "0", []
        state = self._states.get(uri)
        if state is None or state.static.text is None:
            await self._check(snapshot, publish=False)
            state = self._states.get(uri)
        if state is None:
            return "0", []
        items = await asyncio.to_thread(self._merged, state, snapshot.text)
        return _result_id(items), items

    async def aclose(self) -> None:
        """Stop pending reviews (the job gateway is closed by its owner)."""
        for task in list(self._tasks):
            task.cancel()
        self._states.clear()

    # -- static checks ------------------------------------------------------------------

    async def _check(self, snapshot: Snapshot, *, publish: bool = True) -> bool:
        """Static diagnostics for `snapshot`, published; False when the file is not checked."""
        d = self.settings.diagnostics
        state = self._states.setdefault(snapshot.uri, _State())
        state.static_generation += 1
        generation = state.static_generation
        text = snapshot.text
        notices: list[Diagnostic] = []
        found: list[Diagnostic] = []
        checked = True
        if looks_binary(text):
            log.info("%s looks binary: no diagnostics", snapshot.uri)
            checked = False
        elif len(text) > STATIC_MAX_CHARS:
            notices.append(_notice(f"Zi skipped this file's checks: {_too_big(len(text))}"))
            checked = False
        elif d.enabled:
            found = await asyncio.to_thread(
                static_diagnostics,
                self.syntax,
                snapshot.language_id,
                text,
                path=str(snapshot.path) if snapshot.path else None,
                linter=d.linter,
            )
        if checked and self._wants_review(snapshot) and len(text) > d.max_file_chars:
            notices.append(
                _notice(
                    f"Zi did not review this file: {len(text):,} characters, more than "
                    f"zi.diagnostics.max_file_chars ({d.max_file_chars:,})"
                )
            )
        if generation != state.static_generation or self._states.get(snapshot.uri) is not state:
            return False  # a newer save (or a close) got here first
        state.static = _Group(found, text)
        state.notices = _Group(notices, text)
        if not checked:
            state.shown_review = _Group()
        if publish:
            await self._publish(snapshot.uri)
        return checked

    # -- review ----------------------------------------------------------------------

    def _wants_review(self, snapshot: Snapshot) -> bool:
        d = self.settings.diagnostics
        return d.review and (not d.languages or snapshot.language_id in d.languages)

    def _schedule_review(self, snapshot: Snapshot) -> None:
        d = self.settings.diagnostics
        if not self._wants_review(snapshot) or len(snapshot.text) > d.max_file_chars:
            return
        if looks_binary(snapshot.text):
            return
        state = self._states.setdefault(snapshot.uri, _State())
        state.review_generation += 1
        if state.pending is not None and not state.pending.done():
            state.pending.cancel()  # still debouncing: this save replaces it
        task = asyncio.get_running_loop().create_task(
            self._review(snapshot, state, state.review_generation)
        )
        state.pending = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _review(self, snapshot: Snapshot, state: _State, generation: int) -> None:
        await asyncio.sleep(self.settings.diagnostics.debounce_ms / 1000)
        state.pending = None  # from here on, a newer save does not cancel this review
        try:
            await self._review_now(snapshot, state, generation)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("review of %s failed", snapshot.uri)

    async def _review_now(self, snapshot: Snapshot, state: _State, generation: int) -> None:
        text = snapshot.text
        if state.reviewed.text == text:
            return  # reviewed already; the save's publish showed it
        endpoint = self.models.chat(snapshot.language_id)
        if endpoint is None:
            return  # the router told the user why
        key = _cache_key(endpoint.url, endpoint.model, snapshot.language_id, text)
        cached = await self.cache.get(key)
        if cached is not None:
            log.info("review of %s: cached, no model call", snapshot.uri)
            await self._apply_review(snapshot, state, generation, _decode(cached))
            return
        regions = await asyncio.to_thread(changes.changed_regions, state.reviewed.text, text)
        if not regions:
            return
        d = self.settings.diagnostics
        spec = JobSpec(
            function=_REVIEW_JOB,
            kwargs={
                "endpoint": endpoint.as_job_arg(),
                "options": {
                    "max_tokens": d.max_tokens,
                    "temperature": d.temperature,
                    "max_chars": d.max_file_chars,
                },
                "language_id": snapshot.language_id,
                "path": snapshot.path.name if snapshot.path else snapshot.uri,
                "document": _sendable(text),
                "regions": [list(r) for r in regions],
            },
            queue=BACKGROUND_QUEUE,
            timeout_s=self.settings.jobs.timeout_s,
        )
        result = await self.jobs.run(spec)
        if not result.ok:
            reason = result.error or result.status.value
            self.notifier.problem("review", f"AI review failed: {reason}", level=Level.WARNING)
            return
        self.notifier.resolved("review", "AI review works again")
        from server.diagnostics.review import Finding, to_diagnostics

        findings = [Finding.model_validate(f) for f in result.value["findings"]]
        before = state.reviewed
        kept = await asyncio.to_thread(changes.carry_over, before.items, before.text or "", text)
        fresh = to_diagnostics(findings, text)
        merged = [d for d in kept if not changes.in_regions(d, regions)] + fresh
        await self.cache.set(key, _encode(merged), REVIEW_CACHE_TTL_S)
        log.info(
            "review of %s: %d finding(s) in %d region(s), %d kept from before",
            snapshot.uri,
            len(fresh),
            len(regions),
            len(merged) - len(fresh),
        )
        await self._apply_review(snapshot, state, generation, merged)

    async def _apply_review(
        self, snapshot: Snapshot, state: _State, generation: int, items: list[Diagnostic]
    ) -> None:
        if generation != state.review_generation or self._states.get(snapshot.uri) is not state:
            log.info("review of %s v%s is stale: dropped", snapshot.uri, snapshot.version)
            return
        state.reviewed = _Group(list(items), snapshot.text)
        state.shown_review = _Group(list(items), snapshot.text)
        await self._publish(snapshot.uri)

    # -- publishing ----------------------------------------------------------------------

    async def _publish(self, uri: str) -> None:
        snapshot = self.documents(uri)
        state = self._states.get(uri)
        if snapshot is None or state is None:
            return
        items = await asyncio.to_thread(self._merged, state, snapshot.text)
        current = self.documents(uri)
        if current is None or current.version != snapshot.version:
            # Edited meanwhile: the next publish (or the client's pull) places them.
            log.debug("publish for %s v%s skipped: edited", uri, snapshot.version)
            return
        self.publish(uri, snapshot.version, items)

    def _merged(self, state: _State, text: str) -> list[Diagnostic]:
        least = Severity.from_name(self.settings.diagnostics.min_severity)
        with state.lock:
            review = [d for d in state.shown_review.on(text) if d.severity <= least]
            return [*state.notices.on(text), *state.static.on(text), *review]


def _sendable(text: str) -> str:
    """`text` with lone surrogates (undecodable bytes an editor passed through) as `?`.

    They cannot be encoded as UTF-8, so neither Redis nor the model server could take
    them; one character for one keeps every line and column where it was.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _notice(message: str) -> Diagnostic:
    return Diagnostic(0, 0, 0, 0, Severity.INFORMATION, message, "zi")


def _too_big(chars: int) -> str:
    return f"{chars:,} characters, more than {STATIC_MAX_CHARS:,}"


def _cache_key(url: str, model: str | None, language_id: str, text: str) -> str:
    digest = hashlib.sha256()
    for part in (PROMPT_VERSION, url, model or "", language_id):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(text.encode("utf-8", "surrogatepass"))
    return f"zi:review:{digest.hexdigest()}"


def _encode(items: list[Diagnostic]) -> str:
    return json.dumps([asdict(d) for d in items])


def _decode(raw: str) -> list[Diagnostic]:
    out = []
    for item in json.loads(raw):
        item["severity"] = Severity(item["severity"])
        out.append(Diagnostic(**item))
    return out


def _result_id(items: list[Diagnostic]) -> str:
    digest = hashlib.sha256(repr([d.key() for d in items]).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:16]
