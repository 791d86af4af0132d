"""Diagnostics per document: static checks at once, then an AI review of what changed.

On open and on save the static checks (tree-sitter syntax errors, the Python
linter) run off the event loop and are published at once. A save also asks for a
review (debounced): the lines changed since the last applied review go to the
chat model as a job; its findings replace the previous review's on those lines
and keep it elsewhere. Reviews are cached by content, so saving content that was
reviewed before republishes without a model call.

Reviews of one document run one at a time: a save while one runs waits for it,
then the newest save is reviewed (saves in between are skipped, their changes are
in the newest). So a user who saves faster than the model answers still sees
every review land, and the model gets no backlog. A review older than the one
shown (a cache hit for a newer save came first) is dropped.

Every group of diagnostics keeps the text it was computed on; a publish places
each group on the document as it is now (see ``state``).

A review may draw reference data from MCP servers (a ``ContextSource``): it is
gathered after the debounce (a save meanwhile starts over, as during the debounce),
never before the static checks nor without a chat model to review with, and waited
for at most the source's deadline (``mcp.context_deadline_s``). It is part of the
review cache's key, so the same text reviewed with other reference data is asked anew.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from server.actions.types import Snapshot
from server.cache import CompletionCache
from server.context.gather import gather, workspace_path
from server.context.types import ContextItem, ContextRequest, ContextSource, NoContext
from server.diagnostics import changes, review, state
from server.diagnostics.review_job import review_cache_key, review_spec
from server.diagnostics.state import DocState, Group
from server.diagnostics.static import looks_binary, static_diagnostics
from server.diagnostics.types import Diagnostic, Severity
from server.jobs.gateway import JobGateway
from server.notify import Level, Notifier
from server.redact.reversible import Redaction, redact_all
from server.routing import ModelRouter
from server.settings import Settings
from server.syntax import Syntax

log = logging.getLogger(__name__)

STATIC_MAX_CHARS = 2_000_000  # beyond this, even the static checks are skipped (with a notice)
REVIEW_CACHE_TTL_S = 86_400
_PUBLISH_TRIES = 3  # a document edited while its diagnostics were placed: place them again

T = TypeVar("T")
Publish = Callable[[str, "int | None", list[Diagnostic]], None]


class ReviewUnavailable(Exception):
    """A review could not be had; the message says why, for the person asking."""


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
        context: ContextSource | None = None,
        folders: Callable[[], Sequence[Path]] = tuple,
    ) -> None:
        self.settings = settings
        self.jobs = jobs
        self.models = models
        self.cache = cache
        self.notifier = notifier
        self.documents = documents
        self.publish = publish
        self.syntax = syntax or Syntax()
        self.context: ContextSource = context if context is not None else NoContext()
        self.folders = folders  # the workspace folders, for the file's name in a review
        self._states: dict[str, DocState] = {}
        # Reference data gathered for the save waiting for a document's review worker:
        # uri -> (review generation, items), so the worker need not ask again.
        self._gathered: dict[str, tuple[int, list[ContextItem]]] = {}
        # One thread for checks and placements: opening 100 files must not put 100
        # ruff processes and parses on 2 cores while the user waits for a completion
        # (bench.run measured 81 ms of completion overhead that way instead of 4).
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zi-diagnostics")

    async def _off_loop(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))
        except RuntimeError:  # closed (a settings change replaced this service): stop here
            raise asyncio.CancelledError from None
        return await future

    # -- events -------------------------------------------------------------------------

    async def opened(self, snapshot: Snapshot) -> None:
        await self._check(snapshot)

    async def saved(self, snapshot: Snapshot) -> None:
        # The review needs no lint result: it starts (after its debounce) while the
        # static checks run, and each publishes when it is ready.
        self._schedule_review(snapshot)
        await self._check(snapshot)

    def closed(self, uri: str) -> None:
        doc = self._states.pop(uri, None)
        self._gathered.pop(uri, None)
        for task in doc.tasks() if doc is not None else ():
            task.cancel()  # a running review's job is cancelled with it
        self.publish(uri, None, [])  # the client forgets a closed file's diagnostics

    async def adopt(self, previous: DiagnosticsService) -> None:
        """Take over `previous`'s documents after a settings change, and check them again
        under the new settings (reviews stay; in-flight ones were cancelled)."""
        for uri, doc in previous._states.items():
            self._states[uri] = DocState(
                static=doc.static,
                notices=doc.notices,
                review=doc.review,
                review_generation=doc.review_generation,
                applied_generation=doc.applied_generation,
            )
        for uri in list(self._states):
            snapshot = self.documents(uri)
            if snapshot is not None:
                await self._check(snapshot)

    async def current(self, uri: str) -> tuple[str, list[Diagnostic], str]:
        """Pull diagnostics: (result id, items, the text they are placed on)."""
        snapshot = self.documents(uri)
        if snapshot is None:
            return "0", [], ""
        doc = self._states.get(uri)
        if doc is None or doc.static.text is None:
            await self._check(snapshot, publish=False)
            doc = self._states.get(uri)
        if doc is None:
            return "0", [], snapshot.text
        items = await self._off_loop(self._merged, doc, snapshot.text)
        return state.result_id(items), items, snapshot.text

    async def aclose(self) -> None:
        """Stop pending reviews (the job gateway is closed by its owner)."""
        tasks = [task for doc in self._states.values() for task in doc.tasks()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- static checks ------------------------------------------------------------------

    async def _check(self, snapshot: Snapshot, *, publish: bool = True) -> None:
        if self.documents(snapshot.uri) is None:
            return  # closed before this ran
        d = self.settings.diagnostics
        doc = self._states.setdefault(snapshot.uri, DocState())
        doc.static_generation += 1
        generation = doc.static_generation
        text = snapshot.text
        notices: list[Diagnostic] = []
        found: list[Diagnostic] = []
        if looks_binary(text):
            log.info("%s looks binary: no diagnostics", snapshot.uri)
        elif len(text) > STATIC_MAX_CHARS:
            notices.append(_notice(f"Zi skipped this file's checks: {_too_big(len(text))}"))
        else:
            if d.enabled:
                found = await self._off_loop(
                    static_diagnostics,
                    self.syntax,
                    snapshot.language_id,
                    text,
                    path=str(snapshot.path) if snapshot.path else None,
                    linter=d.linter,
                )
            if self._wants_review(snapshot) and len(text) > d.max_file_chars:
                notices.append(
                    _notice(
                        f"Zi did not review this file: {len(text):,} characters, more than "
                        f"zi.diagnostics.max_file_chars ({d.max_file_chars:,})"
                    )
                )
        if generation != doc.static_generation or self._states.get(snapshot.uri) is not doc:
            return  # a newer check (or a close) got here first
        doc.static = Group(tuple(found), text)
        doc.notices = Group(tuple(notices), text)
        if publish:
            await self._publish(snapshot.uri)

    # -- review ----------------------------------------------------------------------

    def _wants_review(self, snapshot: Snapshot) -> bool:
        d = self.settings.diagnostics
        return (
            d.review
            and (not d.languages or snapshot.language_id in d.languages)
            # .env, keys, the user's patterns: never sent to a model (server.context.ignore)
            and not self.settings.context.rules().denies_uri(snapshot.uri)
        )

    def _schedule_review(self, snapshot: Snapshot) -> None:
        d = self.settings.diagnostics
        if (
            not self._wants_review(snapshot)
            or len(snapshot.text) > d.max_file_chars
            or not snapshot.text.strip()
            or looks_binary(snapshot.text)
            or self.documents(snapshot.uri) is None
        ):
            return
        doc = self._states.setdefault(snapshot.uri, DocState())
        doc.review_generation += 1
        if doc.debounce is not None and not doc.debounce.done():
            doc.debounce.cancel()  # saves within the debounce: the last one is reviewed
        doc.debounce = asyncio.get_running_loop().create_task(
            self._after_debounce(snapshot, doc, doc.review_generation)
        )

    async def _after_debounce(self, snapshot: Snapshot, doc: DocState, generation: int) -> None:
        await asyncio.sleep(self.settings.diagnostics.debounce_ms / 1000)
        context = await self._context_for(snapshot, doc)
        try:
            if await self._from_cache(snapshot, doc, generation, context):
                return
        except Exception:
            log.exception("review cache of %s failed", snapshot.uri)
        self._gathered[snapshot.uri] = (generation, context)
        doc.wanted = (snapshot, generation)
        if doc.worker is None or doc.worker.done():
            doc.worker = asyncio.get_running_loop().create_task(self._reviews(doc))

    async def _reviews(self, doc: DocState) -> None:
        """Review this document's newest wanted save, until none is waiting."""
        while doc.wanted is not None:
            snapshot, generation = doc.wanted
            doc.wanted = None
            try:
                await self._review(snapshot, doc, generation)
            except Exception:
                log.exception("review of %s failed", snapshot.uri)

    async def _context_for(self, snapshot: Snapshot, doc: DocState) -> list[ContextItem]:
        """Reference data for reviewing `snapshot`; [] when there will be no model call."""
        if doc.review.text == snapshot.text:
            return []  # republished as it is: no review, no context
        if isinstance(self.context, NoContext) or self._endpoint(snapshot) is None:
            return []  # no MCP server is started, nor tool called, for nothing on each save
        request = ContextRequest("review", snapshot.language_id, self._path(snapshot))
        return await gather(self.context, request, deadline_s=self.settings.mcp.context_deadline_s)

    def _cache_key(
        self, snapshot: Snapshot, endpoint_parts: tuple[str, ...], context: list[ContextItem]
    ) -> str:
        language_id, text = snapshot.language_id, snapshot.text
        return review_cache_key(self.settings, endpoint_parts, language_id, text, context)

    def _path(self, snapshot: Snapshot) -> str:
        return workspace_path(snapshot.path, snapshot.uri, self.folders())

    def _endpoint(self, snapshot: Snapshot) -> tuple[dict[str, Any], tuple[str, ...]] | None:
        endpoint = self.models.chat(snapshot.language_id)
        if endpoint is None:
            return None  # the router told the user why
        return endpoint.as_job_arg(), (endpoint.url, endpoint.model or "")

    async def _from_cache(
        self, snapshot: Snapshot, doc: DocState, generation: int, context: list[ContextItem]
    ) -> bool:
        if doc.review.text == snapshot.text:
            await self._apply(snapshot, doc, generation, list(doc.review.items))
            return True
        found = self._endpoint(snapshot)
        if found is None:
            return True  # nothing to review with
        cached = await self.cache.get(self._cache_key(snapshot, found[1], context))
        items = state.decode(cached) if cached is not None else None
        if items is None:
            return False
        log.info("review of %s: cached, no model call", snapshot.uri)
        await self._apply(snapshot, doc, generation, items)
        return True

    async def _review(self, snapshot: Snapshot, doc: DocState, generation: int) -> None:
        gathered = self._gathered.pop(snapshot.uri, None)
        if gathered is not None and gathered[0] == generation:
            context = gathered[1]
        else:
            context = await self._context_for(snapshot, doc)
        if await self._from_cache(snapshot, doc, generation, context):
            return  # another editor (shared cache) or an undo got there first
        found = self._endpoint(snapshot)
        if found is None:
            return
        endpoint, parts = found
        text = snapshot.text
        base = doc.review
        regions = await self._off_loop(changes.changed_regions, base.text, text)
        path = self._path(snapshot)
        # The job (its arguments in Redis, the prompt, the model) sees the text redacted;
        # lines keep their numbers, and the fixes get the secrets back here.
        redaction = await self._off_loop(redact_all, [text])
        spec = review_spec(
            self.settings,
            endpoint,
            snapshot.language_id,
            path,
            redaction.texts[0],
            regions,
            context,
        )
        result = await self.jobs.run(spec, uri=snapshot.uri, language=snapshot.language_id)
        if not result.ok:
            reason = result.error or result.status.value
            self.notifier.problem("review", f"AI review failed: {reason}", level=Level.WARNING)
            return
        self.notifier.resolved("review", "AI review works again")
        findings = _restored(result.value["findings"], redaction)
        kept = await self._off_loop(base.on, text)
        fresh = review.to_diagnostics(findings, text)
        items = [d for d in kept if not changes.in_regions(d, regions)] + fresh
        if not redaction.secrets:  # diagnostics quote lines: never put secrets in the cache
            await self.cache.set(
                self._cache_key(snapshot, parts, context), state.encode(items), REVIEW_CACHE_TTL_S
            )
        log.info(
            "review of %s: %d finding(s) in %d region(s), %d kept from before",
            snapshot.uri,
            len(fresh),
            len(regions),
            len(items) - len(fresh),
        )
        await self._apply(snapshot, doc, generation, items)

    async def review_file(
        self, *, text: str, language_id: str, path: str, uri: str
    ) -> list[review.Finding]:
        """A review of the whole of `text` for a caller outside the editor (MCP): the
        same job, queue and history as a review on save, its findings returned rather
        than published. Raises :class:`ReviewUnavailable` with the reason."""
        if len(text) > self.settings.diagnostics.max_file_chars:
            limit = self.settings.diagnostics.max_file_chars
            raise ReviewUnavailable(f"the file has {len(text)} characters; reviews take {limit}")
        endpoint = self.models.chat(language_id)
        if endpoint is None:
            raise ReviewUnavailable(f"no chat model serves {language_id}")
        request = ContextRequest("review", language_id, path)
        context = await gather(
            self.context, request, deadline_s=self.settings.mcp.context_deadline_s
        )
        redaction = await self._off_loop(redact_all, [text])
        spec = review_spec(
            self.settings, endpoint.as_job_arg(), language_id, path, redaction.texts[0], [], context
        )
        result = await self.jobs.run(spec, uri=uri, language=language_id)
        if not result.ok:
            raise ReviewUnavailable(f"the review failed: {result.error or result.status.value}")
        return _restored(result.value["findings"], redaction)

    async def _apply(
        self, snapshot: Snapshot, doc: DocState, generation: int, items: list[Diagnostic]
    ) -> None:
        if generation <= doc.applied_generation or self._states.get(snapshot.uri) is not doc:
            log.info("review of %s v%s is stale: dropped", snapshot.uri, snapshot.version)
            return
        doc.applied_generation = generation
        doc.review = Group(tuple(items), snapshot.text)
        await self._publish(snapshot.uri)

    # -- publishing ----------------------------------------------------------------------

    async def _publish(self, uri: str) -> None:
        for _ in range(_PUBLISH_TRIES):
            snapshot = self.documents(uri)
            doc = self._states.get(uri)
            if snapshot is None or doc is None:
                return
            items = await self._off_loop(self._merged, doc, snapshot.text)
            current = self.documents(uri)
            if current is not None and current.version == snapshot.version:
                self.publish(uri, snapshot.version, items)
                return
        log.debug("publish for %s skipped: the document keeps changing", uri)

    def _merged(self, doc: DocState, text: str) -> list[Diagnostic]:
        d = self.settings.diagnostics
        return state.merged(doc, text, Severity.from_name(d.min_severity), d.review)


def _notice(message: str) -> Diagnostic:
    return Diagnostic(0, 0, 0, 0, Severity.INFORMATION, message, "zi")


def _too_big(chars: int) -> str:
    return f"{chars:,} characters, more than {STATIC_MAX_CHARS:,}"


def _restored(findings: list[dict[str, Any]], redaction: Redaction) -> list[review.Finding]:
    """The job's findings, with the document's secrets back in their fixes."""
    out = []
    for raw in findings:
        finding = review.Finding.model_validate(raw)
        if finding.fix is not None and redaction.secrets:
            finding = finding.model_copy(update={"fix": redaction.restore(finding.fix)})
        out.append(finding)
    return out
