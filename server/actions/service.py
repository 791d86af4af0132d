"""Code actions: offered at once, computed on resolve by a job, returned as line edits.

``offers`` answers ``textDocument/codeAction`` from the request alone (no model
call, no job: ``server.actions.offers``). ``resolve`` submits the job (RQ or in
process, the runner decides), forwards the job's progress, cancels the job when
the caller is cancelled, and turns the result into edits against the document
*as it is now*: unchanged, the edit applies as computed; changed elsewhere, it is
rebased; changed inside the region, it is refused with a message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from server.actions import edits as edit_ops
from server.actions.answer import AnswerRejected, check_parses
from server.actions.edits import EditConflict, LineEdit, split_lines
from server.actions.offers import definitions, describe, offers_for, span, top_level_functions
from server.actions.types import ActionError, ActionRequest, Offer, Progress, Resolution, Snapshot
from server.context.gather import gather, symbol_at, with_context, workspace_path
from server.context.types import ContextRequest, ContextSource, NoContext
from server.jobs.gateway import JobGateway
from server.jobs.spec import JobResult, JobSpec
from server.notify import Notifier
from server.redact.reversible import redact_all
from server.routing import ModelRouter
from server.settings import Settings
from server.syntax import Syntax

log = logging.getLogger(__name__)

_JOBS = "server.actions.jobs"


class ActionService:
    def __init__(
        self,
        settings: Settings,
        *,
        models: ModelRouter,
        jobs: JobGateway,
        notifier: Notifier,
        documents: Callable[[str], Snapshot | None],
        folders: Callable[[], Sequence[Path]],
        syntax: Syntax | None = None,
        context: ContextSource | None = None,
    ) -> None:
        self.settings = settings
        self.models = models
        self.jobs = jobs
        # Reference data from MCP servers, gathered before each job (at most its deadline).
        self.context: ContextSource = context if context is not None else NoContext()
        self.notifier = notifier
        self.documents = documents
        self.folders = folders
        self.syntax = syntax or Syntax()

    # -- textDocument/codeAction --------------------------------------------------

    def offers(self, request: ActionRequest) -> list[Offer]:
        if not self.settings.actions.enabled or self._excluded(request.document.uri):
            return []
        return offers_for(request)

    # -- codeAction/resolve ---------------------------------------------------------

    async def resolve(self, data: dict[str, Any], progress: Progress) -> Resolution:
        action = data.get("zi")
        snapshot = self._snapshot_for(data)
        start, end = int(data["start"]), int(data["end"])
        lines = split_lines(snapshot.text)
        if not 0 <= start < end <= max(len(lines), 1):
            raise ActionError("the action's lines are outside the document; ask again")
        if action == "fix" and isinstance(data.get("fix"), str):
            replaces = data.get("replaces")
            if isinstance(replaces, str) and "".join(lines[start:end]) != replaces:
                raise ActionError(
                    "not applied: these lines changed since the review; save to review again"
                )
            new_text = _as_lines(data["fix"], lines[start:end])
            edit = self._checked_edit(snapshot, start, end, new_text)
            return Resolution((self._rebased(edit, snapshot),), summary="applied the suggested fix")
        if action == "tests":
            return await self._tests(snapshot, data, progress)
        function = {
            "fix": "fix_problem",
            "docstring": "write_docstring",
            "improve": "improve_region",
        }
        if action not in function:
            raise ActionError(f"unknown Zi action {action!r}")
        kwargs = self._common(snapshot, start, end)
        if action == "fix":
            kwargs["problem"] = str(data.get("problem") or "a problem was reported here")
        value = await self._run(function[str(action)], kwargs, progress, snapshot)
        edit = LineEdit(
            uri=snapshot.uri,
            version=snapshot.version,
            start=int(value["start"]),
            end=int(value["end"]),
            old_lines=tuple(lines[start:end]),
            new_text=str(value["new_text"]),
        )
        return Resolution((self._rebased(edit, snapshot),))

    async def explain(self, document: Snapshot, start: int, end: int, progress: Progress) -> str:
        lines = split_lines(document.text)
        end = min(max(end, start + 1), max(len(lines), 1))
        value = await self._run(
            "explain_region", self._common(document, start, end), progress, document
        )
        return str(value["markdown"])

    # -- a snapshot handed in (MCP tools: no open document, so nothing to rebase) -------

    async def fix_lines(
        self,
        snapshot: Snapshot,
        start: int,
        end: int,
        *,
        message: str,
        source: str | None = None,
        code: str | None = None,
        progress: Progress | None = None,
    ) -> LineEdit:
        """The edit of lines [start, end) that fixes the problem `message`, computed as
        "Fix with Zi" computes it (the same job, prompt, queue and history)."""
        lines = split_lines(snapshot.text)
        if not 0 <= start < end <= max(len(lines), 1):
            raise ActionError(f"lines {start + 1}-{end} are outside the document")
        kwargs = self._common(snapshot, start, end)
        kwargs["problem"] = describe(message, source, code)
        value = await self._run(
            "fix_problem", kwargs, progress or (lambda message, percentage: None), snapshot
        )
        start, end = int(value["start"]), int(value["end"])
        return self._checked_edit(snapshot, start, end, str(value["new_text"]))

    async def tests_for(self, snapshot: Snapshot, function: str, progress: Progress) -> Resolution:
        """Tests for the top-level `function` of `snapshot` (a file in a workspace folder),
        as "Generate tests" writes them: run in the sandbox, repaired, only passing ones
        kept. The one edit's new text is the whole test file."""
        nodes = top_level_functions(definitions(snapshot.text))
        node = next((n for n in nodes if n.name == function), None)
        if node is None:
            names = ", ".join(sorted({n.name for n in nodes}))
            there = (
                f"those there: {names}" if names else "there is none, or the file does not parse"
            )
            raise ActionError(f"no top-level function named {function!r} ({there})")
        first, end = span(node)
        return await self._tests(snapshot, {"start": first, "end": end, "name": function}, progress)

    # -- the pieces -------------------------------------------------------------------

    def _snapshot_for(self, data: dict[str, Any]) -> Snapshot:
        uri = data.get("uri")
        snapshot = self.documents(str(uri)) if uri else None
        if snapshot is None:
            raise ActionError("the document is no longer open")
        if snapshot.version != data.get("version"):
            raise ActionError("the document changed since the action was offered; ask again")
        if self._excluded(snapshot.uri):
            raise ActionError("this file is excluded from AI context (zi.context.ignore)")
        return snapshot

    def _excluded(self, uri: str) -> bool:
        """.env, keys, the user's patterns: never sent to a model (server.context.ignore)."""
        return self.settings.context.rules().denies_uri(uri)

    def _common(self, snapshot: Snapshot, start: int, end: int) -> dict[str, Any]:
        endpoint = self.models.chat(snapshot.language_id)
        if endpoint is None:
            raise ActionError("no chat model is available for code actions (see the log)")
        return {
            "endpoint": endpoint.as_job_arg(),
            "options": self._options(),
            "language_id": snapshot.language_id,
            "path": workspace_path(snapshot.path, snapshot.uri, self.folders()),
            "document": snapshot.text,
            "start": start,
            "end": end,
        }

    def _options(self) -> dict[str, Any]:
        a = self.settings.actions
        return {
            "max_tokens": a.max_tokens,
            "temperature": a.temperature,
            "max_document_chars": a.max_document_chars,
            "test_rounds": a.test_rounds,
            "sandbox_cpu_s": a.sandbox_cpu_s,
            "sandbox_memory_mb": a.sandbox_memory_mb,
            "sandbox_wall_s": a.sandbox_wall_s,
        }

    def _checked_edit(self, snapshot: Snapshot, start: int, end: int, new_text: str) -> LineEdit:
        lines = split_lines(snapshot.text)
        edit = LineEdit(
            snapshot.uri, snapshot.version, start, end, tuple(lines[start:end]), new_text
        )
        try:
            check_parses(
                edit_ops.apply_line_edit(snapshot.text, edit),
                snapshot.language_id,
                syntax=self.syntax,
                before=snapshot.text,
            )
        except AnswerRejected as exc:
            raise ActionError(f"the suggested fix was not applied: {exc}") from None
        return edit

    def _rebased(self, edit: LineEdit, base: Snapshot) -> LineEdit:
        """`edit` against the document as it is now (it may have changed during the job)."""
        current = self.documents(base.uri)
        if current is None:
            raise ActionError("the document was closed while the action ran")
        if current.version == base.version:
            return edit
        try:
            return edit_ops.rebase(edit, base.text, current.text, current.version)
        except EditConflict as exc:
            raise ActionError(f"not applied: {exc}") from None

    async def _with_context(
        self, kwargs: dict[str, Any], snapshot: Snapshot, progress: Progress
    ) -> dict[str, Any]:
        """`kwargs` with the job's reference data from MCP servers, if there is any."""
        if isinstance(self.context, NoContext):
            return kwargs  # the default: not even the parse for the symbol
        progress("gathering reference data", None)
        problem = str(kwargs.get("problem") or "")
        symbol = str(kwargs.get("function") or "")
        if not symbol:  # a parse of the whole document: off the loop, which serves completions
            line = int(kwargs["start"])
            symbol = await asyncio.to_thread(
                symbol_at, snapshot.language_id, snapshot.text, line, problem
            )
        path = workspace_path(snapshot.path, snapshot.uri, self.folders())
        request = ContextRequest("actions", snapshot.language_id, path, symbol, problem)
        items = await gather(self.context, request, deadline_s=self.settings.mcp.context_deadline_s)
        return with_context(kwargs, items, max_context_chars=self.settings.mcp.max_context_chars)

    async def _run(
        self, function: str, kwargs: dict[str, Any], progress: Progress, snapshot: Snapshot
    ) -> Any:
        """The job's value, its texts with the document's secrets put back: the job (its
        arguments in Redis, its prompt, the model) only ever sees them redacted."""
        existing = kwargs.get("existing_tests")
        redaction = redact_all([snapshot.text] + ([existing] if existing is not None else []))
        kwargs = {**kwargs, "document": redaction.texts[0]}
        if existing is not None:
            kwargs["existing_tests"] = redaction.texts[1]
        kwargs = await self._with_context(kwargs, snapshot, progress)
        timeout = self.settings.jobs.timeout_s
        if function == "generate_tests":
            timeout = max(timeout, self.settings.actions.tests_timeout_s)
        spec = JobSpec(function=f"{_JOBS}.{function}", kwargs=kwargs, timeout_s=timeout)
        result = await self.jobs.run(
            spec, progress, uri=snapshot.uri, language=snapshot.language_id
        )
        if not result.ok:
            raise ActionError(_user_message(result))
        value = result.value
        if isinstance(value, dict):
            value = {k: redaction.restore(v) if isinstance(v, str) else v for k, v in value.items()}
        return value

    # -- generated tests ----------------------------------------------------------------

    async def _tests(
        self, snapshot: Snapshot, data: dict[str, Any], progress: Progress
    ) -> Resolution:
        if snapshot.path is None:
            raise ActionError("tests need a file on disk")
        folders = list(self.folders())
        try:
            test_path = edit_ops.test_file_for(snapshot.path, folders)
        except ValueError as exc:
            raise ActionError(f"the file is outside the workspace folders: {exc}") from None
        if not edit_ops.inside_workspace(test_path, folders):
            raise ActionError(f"refusing to write {test_path}: outside the workspace folders")
        root = next(f for f in folders if edit_ops.inside_workspace(snapshot.path, [f])).resolve()
        test_uri = test_path.resolve().as_uri()
        open_test = self.documents(test_uri)
        if open_test is not None:
            existing: str | None = open_test.text
        elif test_path.exists():
            existing = test_path.read_text(encoding="utf-8")
        else:
            existing = None
        module_path = snapshot.path.resolve().relative_to(root)
        kwargs = self._common(snapshot, int(data["start"]), int(data["end"]))
        kwargs |= {
            "module": edit_ops.module_name(snapshot.path.resolve(), root),
            "module_path": module_path.as_posix(),
            "package_inits": _package_inits(root, module_path),
            "function": str(data.get("name") or ""),
            "test_path": test_path.resolve().relative_to(root).as_posix(),
            "existing_tests": existing,
        }
        for key in ("language_id", "path"):
            kwargs.pop(key)
        value = await self._run("generate_tests", kwargs, progress, snapshot)
        text = str(value["text"])
        passed = len(value.get("passed") or [])
        summary = f"{passed} generated test(s) pass against the current code"
        if existing is None:
            edit = LineEdit(test_uri, None, 0, 0, (), text)
            return Resolution((edit,), create=(test_uri,), summary=summary)
        old = split_lines(existing)
        version = open_test.version if open_test is not None else None
        edit = LineEdit(test_uri, version, 0, len(old), tuple(old), text)
        if open_test is not None:
            edit = self._rebased(edit, open_test)
        return Resolution((edit,), summary=summary)


def _package_inits(root: Path, module_path: Path) -> list[str]:
    """The ``__init__.py`` files of the module's packages, so the sandbox imports it alike."""
    found = []
    for parent in list(module_path.parents)[:-1]:
        if (root / parent / "__init__.py").is_file():
            found.append((parent / "__init__.py").as_posix())
    return found


def _as_lines(fix: str, old: list[str]) -> str:
    if fix and not fix.endswith("\n") and old and old[-1].endswith("\n"):
        return fix + "\n"
    return fix


def _user_message(result: JobResult) -> str:
    error = result.error or result.status.value
    # execute() prefixes the exception type; the user needs the reason.
    for prefix in ("AnswerRejected: ", "ActionError: "):
        error = error.removeprefix(prefix)
    if result.status.value == "timeout":
        return f"the action took too long: {error}"
    if result.status.value == "cancelled":
        return "the action was cancelled"
    return error
