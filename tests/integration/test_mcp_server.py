"""`zi-coder mcp` over stdio, driven by the MCP SDK's own client (a real subprocess)."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from tests.support.code_actions import MODULE
from tests.support.generated_tests import FAILING_AND_PASSING, REPAIRED, REPAIRED_FILE
from tests.support.scripted_model import Reply, ScriptedModel

GITHUB_TOKEN = "ghp_0123456789abcdefghijABCDEFGHIJ012345"


def _params(db_url: str, **settings: str) -> StdioServerParameters:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZI_")}
    env["ZI_DATABASE_URL"] = db_url
    env.update(settings)
    return StdioServerParameters(command=sys.executable, args=["-m", "server", "mcp"], env=env)


TOOLS = {
    "complete_code", "review_file", "fix_diagnostic", "generate_tests", "search_history", "stats",
}  # fmt: skip


def _assert_empty_stats(result: CallToolResult) -> None:
    """The `stats` figures of a history with nothing in it: the object itself, as
    `zi-coder stats --json` prints it (not wrapped in a "result" field)."""
    assert not result.is_error, result.content
    figures = result.structured_content
    assert figures is not None
    assert (figures["shown"], figures["accepted"]) == (0, 0)
    # The server's own history writer may have created the (empty) database by now.
    assert figures["note"] is None or figures["note"].startswith("no history yet")


@pytest.mark.parametrize("era", ["legacy", "2026-07-28"])
async def test_stats_over_stdio_reports_an_empty_history(tmp_path: Path, era: str) -> None:
    """Both protocol eras: the handshake one (`initialize`) and the per-request one."""
    db_url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    async with Client(_params(db_url), mode=era, read_timeout_seconds=60) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == TOOLS
        assert tools["stats"].input_schema["properties"]["since_days"]

        _assert_empty_stats(await client.call_tool("stats", {}))

        bad = await client.call_tool("stats", {"since_days": -1})
        assert bad.is_error
        assert "since_days" in bad.content[0].text  # type: ignore[union-attr]


async def test_the_configuration_resource_masks_credentials(tmp_path: Path) -> None:
    api_key = "sk-proj-Zi7secretKEYvalue0123456789abcdef"
    params = _params(
        f"sqlite:///{tmp_path / 'history.sqlite3'}",
        ZI_INFERENCE__API_KEY=api_key,
        ZI_REDIS_URL="redis://:hunter2secret@127.0.0.1:6390/0",
        ZI_INFERENCE__EXTRA_BODY=json.dumps({"headers": {"X-Api-Key": GITHUB_TOKEN}}),
    )
    async with Client(params, mode="legacy", read_timeout_seconds=60) as client:
        body = await client.read_resource("zi://config")

    text = body.contents[0].text  # type: ignore[union-attr]
    config = json.loads(text)
    assert config["inference"]["api_key"] == "***"
    assert config["redis_url"] == "redis://127.0.0.1:6390/0"
    for secret in (api_key, "hunter2secret", GITHUB_TOKEN):
        assert secret not in text
    assert config["completion"]["debounce_ms"] == 0  # the rest as it is


async def test_search_history_over_stdio(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    async with Client(_params(db_url), mode="legacy", read_timeout_seconds=60) as client:
        empty = await client.call_tool("search_history", {"text": "billing"})
        short = await client.call_tool("search_history", {"text": "b"})
        recent = await client.read_resource("zi://history/recent")

    assert not empty.is_error and empty.structured_content is not None
    assert empty.structured_content["count"] == 0  # no database yet: nothing, no error
    assert short.is_error
    assert "at least 2 characters" in short.content[0].text  # type: ignore[union-attr]
    assert json.loads(recent.contents[0].text) == {"results": []}  # type: ignore[union-attr]


async def test_complete_code_goes_through_the_pipeline_into_the_history(
    tmp_path: Path, scripted_model: ScriptedModel
) -> None:
    scripted_model.reply_with(Reply(text="return a + b"))
    db_path = tmp_path / "history.sqlite3"
    params = _params(f"sqlite:///{db_path}", ZI_INFERENCE__URL=scripted_model.url)
    async with Client(params, mode="legacy", read_timeout_seconds=60) as client:
        content = "def add(a, b):\n    \n"
        out = await client.call_tool(
            "complete_code", {"content": content, "line": 1, "character": 4, "path": "calc.py"}
        )
        outside = await client.call_tool(
            "complete_code", {"content": content, "line": 7, "character": 0}
        )

    assert not out.is_error, out.content
    assert out.structured_content is not None
    assert out.structured_content["text"] == "return a + b"
    assert outside.is_error
    assert "outside the content" in outside.content[0].text  # type: ignore[union-attr]
    # The server flushed its history when the client closed it.
    with sqlite3.connect(db_path) as connection:
        rows = connection.execute("select id, language, uri from completions").fetchall()
    assert rows == [(out.structured_content["completion_id"], "python", "mcp:///calc.py")]


# -- streamable HTTP ------------------------------------------------------------------


def _start_http(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """`zi-coder mcp --http --port 0 ARGS`: started, not yet listening."""
    return subprocess.Popen(
        [sys.executable, "-m", "server", "mcp", "--http", "--port", "0", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _ready_line(process: subprocess.Popen[str]) -> str:
    """Its line "MCP over streamable HTTP at URL (bearer token: WHERE)", once it listens."""
    assert process.stderr is not None
    line = process.stderr.readline()
    assert re.search(r"at http://\S+", line), line
    return line


def _url(line: str) -> str:
    found = re.search(r"at (http://\S+)", line)
    assert found, line
    return found[1]


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(params=["127.0.0.1"])
def http_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """`zi-coder mcp --http --port 0 --host HOST` with a token; (URL, token) once it
    listens. HOST: the fixture's parameter (127.0.0.1, or what a test says)."""
    token = "zi-test-token-0123456789"
    env = _params(f"sqlite:///{tmp_path / 'history.sqlite3'}").env or {}
    process = _start_http(env | {"ZI_MCP_TOKEN": token}, "--host", request.param)
    try:
        yield _url(_ready_line(process)), token
    finally:
        _stop(process)


async def test_http_needs_the_token_and_serves_the_tools_with_it(
    http_server: tuple[str, str],
) -> None:
    url, token = http_server
    async with httpx.AsyncClient() as http:
        anonymous = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        wrong = await http.post(
            url,
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers={"Authorization": "Bearer not-the-token"},
        )
    assert anonymous.status_code == wrong.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")

    client_http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
    async with (
        client_http,
        Client(
            streamable_http_client(url, http_client=client_http),
            mode="legacy",
            read_timeout_seconds=60,
        ) as client,
    ):
        tools = {tool.name for tool in (await client.list_tools()).tools}
        stats = await client.call_tool("stats", {})
    assert tools == TOOLS
    _assert_empty_stats(stats)


# 127.0.0.2: a loopback address the SDK does not protect by itself.
@pytest.mark.parametrize("http_server", ["127.0.0.1", "127.0.0.2"], indirect=True)
async def test_http_refuses_a_foreign_host_or_origin_even_with_the_token(
    http_server: tuple[str, str],
) -> None:
    """DNS rebinding: a web page whose name resolves to the loopback address sends its
    own name as Host (and Origin); the token alone must not be enough."""
    url, token = http_server
    port = httpx.URL(url).port
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json, text/event-stream",
    }
    async with httpx.AsyncClient() as http:
        foreign_host = await http.post(
            url, json=ping, headers=headers | {"Host": f"attacker.example:{port}"}
        )
        foreign_origin = await http.post(
            url, json=ping, headers=headers | {"Origin": f"http://attacker.example:{port}"}
        )
    assert foreign_host.status_code == 421
    assert foreign_origin.status_code == 403


async def test_http_without_a_token_makes_one_in_the_state_directory(tmp_path: Path) -> None:
    """Two servers starting at once with no token yet: both end up with the one token
    file (made once, readable by the user alone), and serve whoever holds it."""
    state = tmp_path / "state"
    env = _params(f"sqlite:///{tmp_path / 'history.sqlite3'}").env or {}
    env = env | {"ZI_STATE_DIR": str(state)}
    first, second = _start_http(env), _start_http(env)
    try:
        lines = [_ready_line(first), _ready_line(second)]
        token_file = state / "mcp-token"
        token = token_file.read_text().strip()
        assert token and token_file.stat().st_mode & 0o777 == 0o600
        assert sorted(state.iterdir()) == [token_file]  # no draft left behind
        for line in lines:
            assert f"(bearer token: {token_file})" in line and token not in line
            client_http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
            async with (
                client_http,
                Client(
                    streamable_http_client(_url(line), http_client=client_http),
                    mode="legacy",
                    read_timeout_seconds=60,
                ) as client,
            ):
                _assert_empty_stats(await client.call_tool("stats", {}))
    finally:
        _stop(first)
        _stop(second)


def test_http_refuses_an_address_other_machines_can_reach() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "server", "mcp", "--http", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "0.0.0.0 is not a loopback address" in done.stderr


async def test_review_file_reads_a_file_under_its_directory_and_no_other(
    tmp_path: Path, scripted_model: ScriptedModel
) -> None:
    finding = {
        "line_start": 2, "line_end": 2, "severity": "warning", "category": "bug",
        "message": "division by zero when values is empty",
        "fix": "    return sum(values) / len(values) if values else 0.0\n",
    }  # fmt: skip
    scripted_model.chat_reply_with(Reply(text=json.dumps({"findings": [finding]})))
    project = tmp_path / "project"
    project.mkdir()
    (project / "stats.py").write_text("def mean(values):\n    return sum(values) / len(values)\n")
    (tmp_path / "secret.txt").write_text("not for agents\n")
    (project / "huge.py").write_text("x = 1\n" * 1000)  # 6,000 bytes
    params = _params(
        f"sqlite:///{tmp_path / 'h.sqlite3'}",
        ZI_INFERENCE__URL=scripted_model.url,
        ZI_DIAGNOSTICS__MAX_FILE_CHARS="1000",
    )
    params = params.model_copy(update={"cwd": project})
    async with Client(params, mode="legacy", read_timeout_seconds=60) as client:
        reviewed = await client.call_tool("review_file", {"path": "stats.py"})
        outside = await client.call_tool("review_file", {"path": "../secret.txt"})
        neither = await client.call_tool("review_file", {})
        huge = await client.call_tool("review_file", {"path": "huge.py"})

    assert not reviewed.is_error, reviewed.content
    assert reviewed.structured_content is not None
    [found] = reviewed.structured_content["findings"]
    assert (found["line_start"], found["message"]) == (2, finding["message"])
    [request] = scripted_model.chat_requests
    assert "return sum(values) / len(values)" in json.dumps(request["messages"])
    assert outside.is_error
    assert "outside" in outside.content[0].text  # type: ignore[union-attr]
    assert "not for agents" not in json.dumps(scripted_model.chat_requests)
    assert neither.is_error
    # Refused by its size on disk (more than 1,000 characters can take), unread.
    too_big = "huge.py has 6,000 bytes: this tool takes files of at most 1,000 characters"
    assert too_big in _error(huge)
    assert len(scripted_model.chat_requests) == 1


# -- code actions: fix_diagnostic, generate_tests ---------------------------------------


def _chat_text(body: dict[str, object]) -> str:
    return json.dumps(body["messages"])


def _error(result: CallToolResult) -> str:
    """The message of a tool error."""
    assert result.is_error, result.content
    [block] = result.content
    assert isinstance(block, TextContent)
    return block.text


async def test_fix_diagnostic_runs_the_quick_fix_job_and_returns_the_edit(
    tmp_path: Path, scripted_model: ScriptedModel
) -> None:
    scripted_model.queue_chat(
        "Sure! The division fails on an empty list:\n\n"
        "```python\nreturn total / len(values) if values else 0.0\n```\n",
        "```python\nreturn (total /\n```",  # does not parse
    )
    db_path = tmp_path / "history.sqlite3"
    params = _params(f"sqlite:///{db_path}", ZI_INFERENCE__URL=scripted_model.url)
    problem = {"content": MODULE, "path": "stats.py", "line_start": 9, "line_end": 9}
    async with Client(params, mode="legacy", read_timeout_seconds=60) as client:
        fixed = await client.call_tool(
            "fix_diagnostic",
            problem | {"message": "Possible division by zero", "source": "mypy"},
        )
        refused = await client.call_tool(
            "fix_diagnostic", problem | {"message": "Possible division by zero"}
        )
        outside = await client.call_tool(
            "fix_diagnostic", problem | {"line_start": 12, "line_end": 14, "message": "x"}
        )
        backwards = await client.call_tool(
            "fix_diagnostic", problem | {"line_start": 9, "line_end": 2, "message": "x"}
        )

    assert not fixed.is_error, fixed.content
    out = fixed.structured_content
    assert out is not None
    new_line = "    return total / len(values) if values else 0.0\n"
    assert (out["line_start"], out["line_end"], out["new_text"]) == (9, 9, new_line)
    assert out["fixed_content"] == MODULE.replace("    return total / len(values)\n", new_line)
    assert "-    return total / len(values)\n+" + new_line in out["diff"]
    asked, _refused = scripted_model.chat_requests
    assert "Possible division by zero (mypy)" in _chat_text(asked)
    assert "return total / len(values)" in _chat_text(asked)
    assert "no fix: the model's code does not parse" in _error(refused)
    assert "lines 12-14 are outside the file (9 lines)" in _error(outside)
    assert "line_end 2 is before line_start 9" in _error(backwards)
    assert len(scripted_model.chat_requests) == 2  # no model call for a bad range
    # The same history as the editor's quick fix: a code_action job and its model call.
    with sqlite3.connect(db_path) as connection:
        jobs = connection.execute("select kind, function, status, uri from jobs").fetchall()
        calls = connection.execute("select kind, job_id from model_calls").fetchall()
    fix_job = ("code_action", "server.actions.jobs.fix_problem", "finished", "mcp:///stats.py")
    assert fix_job in jobs
    assert {kind for kind, _ in calls} == {"code_action"} and len(calls) == 2
    assert all(job_id for _, job_id in calls)


async def test_generate_tests_returns_tests_that_passed_in_the_sandbox_with_progress(
    tmp_path: Path, scripted_model: ScriptedModel
) -> None:
    scripted_model.queue_chat(FAILING_AND_PASSING, REPAIRED)
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    (project / "stats.py").write_text(MODULE)
    params = _params(f"sqlite:///{tmp_path / 'h.sqlite3'}", ZI_INFERENCE__URL=scripted_model.url)
    params = params.model_copy(update={"cwd": project})
    reports: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reports.append((progress, total, message))

    async with Client(params, mode="legacy", read_timeout_seconds=110) as client:
        written = await client.call_tool(
            "generate_tests",
            {"path": "stats.py", "function": "mean"},
            progress_callback=on_progress,
        )
        unknown = await client.call_tool(
            "generate_tests", {"path": "stats.py", "function": "median"}
        )
        outside = await client.call_tool(
            "generate_tests", {"path": "../stats.py", "function": "mean", "content": MODULE}
        )

    assert not written.is_error, written.content
    out = written.structured_content
    assert out is not None
    assert out["test_path"] == "tests/test_stats.py" and out["creates_file"]
    assert out["text"] == REPAIRED_FILE
    assert out["passed"] and "2 generated test(s) pass" in out["summary"]
    assert not (project / "tests" / "test_stats.py").exists()  # returned, not written
    _generate, repair = scripted_model.chat_requests
    assert "ZeroDivisionError" in _chat_text(repair)  # the sandbox's failure went back
    messages = [message for _, _, message in reports]
    assert "round 1/3: writing tests" in messages and "round 2/3: running tests" in messages
    assert [p for p, _, _ in reports] == sorted(p for p, _, _ in reports)
    assert "no top-level function named 'median' (those there: add, mean)" in _error(unknown)
    assert "is outside" in _error(outside)


async def test_fix_diagnostic_with_the_model_down_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    params = _params(
        f"sqlite:///{tmp_path / 'h.sqlite3'}", ZI_INFERENCE__URL=f"http://127.0.0.1:{port}"
    )
    async with Client(params, mode="legacy", read_timeout_seconds=110) as client:
        down = await client.call_tool(
            "fix_diagnostic", {"content": MODULE, "line_start": 9, "message": "division by zero"}
        )
        no_completion = await client.call_tool(
            "complete_code", {"content": MODULE, "line": 8, "character": 4, "path": "stats.py"}
        )
    assert f"no fix: ModelUnavailable: cannot connect to http://127.0.0.1:{port}" in _error(down)
    # The reason this call got nothing: the problem the pipeline reported during it.
    reason = f"no completion: model server at http://127.0.0.1:{port} is not ready yet"
    assert reason in _error(no_completion)
