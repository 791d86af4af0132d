"""The tools over the editor path's code actions: ``fix_diagnostic`` ("Fix with Zi")
and ``generate_tests`` ("Generate tests", sandboxed). Both run the actions' jobs
through the same queue and history as the editor, and return the edit: a tool
never writes a file."""

from __future__ import annotations

import asyncio
import difflib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote, urlparse

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from server.actions.edits import apply_line_edit, split_lines
from server.actions.types import ActionError, Progress
from server.mcp.documents import MAX_FILE_CHARS, file_under, name_of, snapshot_of
from server.mcp.live import Live
from server.mcp.tool_params import FileContent, FilePath, LanguageId

log = logging.getLogger(__name__)


class DiagnosticFix(BaseModel):
    line_start: int = Field(description="First line replaced, from 1")
    line_end: int = Field(description="Last line replaced, from 1, inclusive")
    new_text: str = Field(description="The new text of exactly those lines")
    fixed_content: str = Field(description="The whole file with the fix applied")
    diff: str = Field(description="The fix as a unified diff")


class GeneratedTests(BaseModel):
    test_path: str = Field(description="Where the tests go, relative to the server's directory")
    text: str = Field(description="The whole test file: any tests already there, and the new")
    creates_file: bool = Field(description="Whether the test file is new")
    passed: bool = Field(
        description="The returned tests passed in the sandbox against the given code "
        "(failing ones are repaired or dropped; none passing is an error)"
    )
    summary: str = Field(description="The sandbox's verdict")


def add_action_tools(server: MCPServer, live: Live) -> None:
    @server.tool()
    async def fix_diagnostic(
        ctx: Context[Any, Any],
        message: Annotated[
            str, Field(min_length=1, max_length=4000, description="The diagnostic's message")
        ],
        line_start: Annotated[int, Field(ge=1, description="First line of the problem, from 1")],
        line_end: Annotated[
            int | None,
            Field(
                ge=1,
                description="Last line of the problem, from 1, inclusive (default: line_start)",
            ),
        ] = None,
        content: FileContent = None,
        path: FilePath = None,
        language: LanguageId = None,
        source: Annotated[
            str | None, Field(max_length=100, description="Who reported it, e.g. mypy")
        ] = None,
        code: Annotated[
            str | None, Field(max_length=100, description="The diagnostic's code, e.g. E501")
        ] = None,
    ) -> DiagnosticFix:
        """Fix a diagnostic (a linter's, a type checker's, a compiler's) with Zi, as its
        "Fix with Zi" quick fix does in the editor: the new text of the problem's lines,
        the whole fixed file and a diff. Nothing is written."""
        services = live.running()
        snapshot = await asyncio.to_thread(
            snapshot_of,
            live.root,
            content=content,
            path=path,
            language=language,
            rules=live.settings.context.rules(),
        )
        last = line_start if line_end is None else line_end
        count = len(split_lines(snapshot.text))
        if last < line_start:
            raise ToolError(f"line_end {last} is before line_start {line_start}")
        if last > max(count, 1):
            raise ToolError(f"lines {line_start}-{last} are outside the file ({count} lines)")
        try:
            async with progress_to(ctx) as progress:
                edit = await services.actions.fix_lines(
                    snapshot,
                    line_start - 1,
                    last,
                    message=message,
                    source=source,
                    code=code,
                    progress=progress,
                )
        except ActionError as exc:
            raise ToolError(f"no fix: {exc}") from exc
        fixed = apply_line_edit(snapshot.text, edit)
        name = name_of(path).as_posix()
        diff = difflib.unified_diff(
            split_lines(snapshot.text), split_lines(fixed), f"a/{name}", f"b/{name}"
        )
        return DiagnosticFix(
            line_start=edit.start + 1,
            line_end=edit.end,
            new_text=edit.new_text,
            fixed_content=fixed,
            diff="".join(diff),
        )

    @server.tool()
    async def generate_tests(
        ctx: Context[Any, Any],
        path: Annotated[
            str,
            Field(
                description="The Python file, under the directory the server runs in (the "
                "sandbox imports it as a module from there)"
            ),
        ],
        function: Annotated[
            str,
            Field(min_length=1, max_length=200, description="A top-level function's name"),
        ],
        content: Annotated[
            str | None,
            Field(
                max_length=MAX_FILE_CHARS,
                description="The file's text, if not as saved (default: read from path)",
            ),
        ] = None,
    ) -> GeneratedTests:
        """Write pytest tests for one function with Zi, as "Generate tests" does in the
        editor: the tests run in a sandbox against the code, failures go back to the
        model for repair, and only passing tests are returned, with the test file's path
        (tests/test_<module>.py when there is a tests folder). Nothing is written.
        Reports progress; takes up to a few minutes."""
        services = live.running()
        if not path.endswith(".py"):
            raise ToolError(f"{path} is not a Python file: tests are written for Python")
        file_under(live.root, name_of(path))  # ToolError outside: the sandbox reads beside it
        snapshot = await asyncio.to_thread(
            snapshot_of,
            live.root,
            content=content,
            path=path,
            language="python",
            rules=live.settings.context.rules(),
        )
        try:
            async with progress_to(ctx) as progress:
                done = await services.actions.tests_for(snapshot, function, progress)
        except ActionError as exc:
            raise ToolError(f"no tests: {exc}") from exc
        [edit] = done.edits
        test_file = Path(unquote(urlparse(edit.uri).path))
        return GeneratedTests(
            test_path=test_file.relative_to(live.root.resolve()).as_posix(),
            text=edit.new_text,
            creates_file=bool(done.create),
            passed=True,
            summary=done.summary or "the tests pass",
        )


@asynccontextmanager
async def progress_to(ctx: Context[Any, Any]) -> AsyncIterator[Progress]:
    """A job's progress callback whose reports reach the client (when it asked for
    them) as MCP progress notifications, in order, never going back."""
    reports: asyncio.Queue[tuple[str, int | None] | None] = asyncio.Queue()

    async def forward() -> None:
        done = 0.0
        while (report := await reports.get()) is not None:
            message, percentage = report
            done = max(done, float(percentage or 0))  # MCP: progress only increases
            try:
                await ctx.report_progress(done, 100, message)
            except Exception as exc:  # the client is gone: the tool's answer says the rest
                log.debug("progress not sent: %s", exc)
                return

    forwarding = asyncio.create_task(forward())
    try:
        yield lambda message, percentage: reports.put_nowait((message, percentage))
    except BaseException:
        forwarding.cancel()
        raise
    reports.put_nowait(None)
    await forwarding  # the last reports go out before the answer
