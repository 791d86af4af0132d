"""The MCP servers file: TOML and YAML, `env:NAME` values, relative paths, identities,
argument templates, and a message naming file, server and field for each mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.context.types import ContextRequest
from server.mcp.client.config import (
    McpConfigError,
    ServerSpec,
    identity,
    load_servers,
    render_arguments,
)

GOOD_TOML = """
[servers.docs]
command = "./bin/docs-mcp"
args = ["--root", "."]
env = { DOCS_TOKEN = "env:ZI_TEST_DOCS_TOKEN", MODE = "fast" }
cwd = "work"
timeout_s = 2.5
resources = ["docs://api/*", "docs://guide/*.md"]

[servers.docs.tools.search_docs]
arguments = { query = "{symbol} ({language})", limit = 3, where = ["{path}"] }
use_in = ["review"]

[servers.docs.tools.explain]
arguments = { text = "{problem}" }

[servers.tracker]
url = "https://bot:secret@tracker.example:8443/mcp?key=abc#top"
headers = { Authorization = "env:ZI_TEST_TRACKER_AUTH" }
resources = ["issue://open/*"]
"""

GOOD_YAML = """
servers:
  docs:
    command: ./bin/docs-mcp
    args: ["--root", "."]
    env: {DOCS_TOKEN: "env:ZI_TEST_DOCS_TOKEN", MODE: fast}
    cwd: work
    timeout_s: 2.5
    resources: ["docs://api/*", "docs://guide/*.md"]
    tools:
      search_docs:
        arguments: {query: "{symbol} ({language})", limit: 3, where: ["{path}"]}
        use_in: [review]
      explain:
        arguments: {text: "{problem}"}
  tracker:
    url: https://bot:secret@tracker.example:8443/mcp?key=abc#top
    headers: {Authorization: "env:ZI_TEST_TRACKER_AUTH"}
    resources: ["issue://open/*"]
"""

ENVIRON = {"ZI_TEST_DOCS_TOKEN": "docs-secret", "ZI_TEST_TRACKER_AUTH": "Bearer t0k"}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("name", "text"), [("mcp.toml", GOOD_TOML), ("mcp.yaml", GOOD_YAML)])
def test_a_good_file_loads_in_order_with_references_and_paths_resolved(
    tmp_path: Path, name: str, text: str
) -> None:
    docs, tracker = load_servers(write(tmp_path, name, text), environ=ENVIRON)

    assert docs.name == "docs" and docs.transport == "stdio"
    assert docs.command == str(tmp_path.resolve() / "bin" / "docs-mcp")
    assert docs.args == ["--root", "."]
    assert docs.env == {"DOCS_TOKEN": "docs-secret", "MODE": "fast"}
    assert docs.cwd == tmp_path.resolve() / "work"
    assert docs.timeout_s == 2.5
    assert docs.resources == ["docs://api/*", "docs://guide/*.md"]
    assert set(docs.tools) == {"search_docs", "explain"}
    assert docs.tools["search_docs"].use_in == ["review"]
    assert docs.tools["explain"].use_in == ["review", "actions"]

    assert tracker.transport == "http" and tracker.command is None
    assert tracker.headers == {"Authorization": "Bearer t0k"}
    assert tracker.timeout_s == 5.0 and tracker.tools == {}


def test_resolved_secrets_stay_out_of_the_repr(tmp_path: Path) -> None:
    docs, tracker = load_servers(write(tmp_path, "mcp.toml", GOOD_TOML), environ=ENVIRON)
    assert "docs-secret" not in repr(docs)
    assert "t0k" not in repr(tracker)


def test_a_bare_command_is_left_for_path_lookup(tmp_path: Path) -> None:
    path = write(tmp_path, "mcp.toml", '[servers.docs]\ncommand = "uvx"\nargs = ["docs-mcp"]\n')
    (spec,) = load_servers(path, environ={})
    assert spec.command == "uvx" and spec.cwd is None


def test_identity_is_the_command_line_or_the_url_without_credentials(tmp_path: Path) -> None:
    docs, tracker = load_servers(write(tmp_path, "mcp.toml", GOOD_TOML), environ=ENVIRON)
    assert identity(docs) == f"{tmp_path.resolve()}/bin/docs-mcp --root ."
    assert identity(tracker) == "https://tracker.example:8443/mcp"


def test_arguments_are_rendered_from_the_request(tmp_path: Path) -> None:
    (docs, _) = load_servers(write(tmp_path, "mcp.toml", GOOD_TOML), environ=ENVIRON)
    request = ContextRequest(
        purpose="review", language_id="python", path="src/a.py", symbol="parse", problem="E1"
    )
    assert render_arguments(docs.tools["search_docs"].arguments, request) == {
        "query": "parse (python)",
        "limit": 3,
        "where": ["src/a.py"],
    }
    assert render_arguments(docs.tools["explain"].arguments, request) == {"text": "E1"}


def test_literal_braces_are_written_doubled(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "mcp.toml",
        '[servers.s]\ncommand = "x"\n'
        '[servers.s.tools.t]\narguments = { q = "{{json}} {symbol}" }\n',
    )
    (spec,) = load_servers(path, environ={})
    request = ContextRequest(purpose="actions", language_id="go", path="m.go", symbol="Run")
    assert render_arguments(spec.tools["t"].arguments, request) == {"q": "{json} Run"}


def test_a_spec_built_in_code_is_validated_too() -> None:
    with pytest.raises(ValueError, match="exactly one of `command`"):
        ServerSpec(name="x")


SERVER = '[servers.docs]\ncommand = "docs-mcp"\n'

ERRORS = [
    pytest.param("mcp.json", "{}", r"must be a \.toml, \.yaml or \.yml file", id="suffix"),
    pytest.param("mcp.toml", "[servers.docs\n", "invalid TOML", id="bad-toml"),
    pytest.param("mcp.yaml", "servers: [unclosed\n", "invalid YAML", id="bad-yaml"),
    pytest.param("mcp.yaml", "- a list\n", "expected a mapping with a `servers` table", id="list"),
    pytest.param("mcp.toml", "", r"no servers \(add a \[servers.NAME\] table\)", id="empty"),
    pytest.param(
        "mcp.toml", SERVER + "[models.x]\n", r"unknown top-level key\(s\) models", id="top-key"
    ),
    pytest.param(
        "mcp.toml", "[servers.docs]\n", "server 'docs': set exactly one of `command`", id="neither"
    ),
    pytest.param(
        "mcp.toml",
        SERVER + 'url = "http://h/mcp"\n',
        "server 'docs': set exactly one of `command`",
        id="both",
    ),
    pytest.param(
        "mcp.toml",
        '[servers.t]\nurl = "ftp://h/mcp"\n',
        "server 't': url must start with http:// or https://",
        id="url-scheme",
    ),
    pytest.param(
        "mcp.toml",
        '[servers.t]\nurl = "http://h/mcp"\nargs = ["x"]\n',
        "server 't': args: only for a `command` server",
        id="args-with-url",
    ),
    pytest.param(
        "mcp.toml",
        SERVER + 'headers = { A = "b" }\n',
        "server 'docs': headers: only for a `url` server",
        id="headers-with-command",
    ),
    pytest.param(
        "mcp.toml",
        SERVER + "timeout_s = 0\n",
        "server 'docs': timeout_s: .*greater than 0",
        id="timeout-zero",
    ),
    pytest.param(
        "mcp.toml",
        SERVER + "timeout_s = 600\n",
        "server 'docs': timeout_s: .*less than or equal",
        id="timeout-long",
    ),
    pytest.param(
        "mcp.toml", SERVER + "colour = 1\n", "server 'docs': colour: unknown setting", id="extra"
    ),
    pytest.param(
        "mcp.toml",
        SERVER + 'name = "other"\n',
        "server 'docs': `name` is the table key",
        id="name-field",
    ),
    pytest.param(
        "mcp.toml",
        '[servers."my docs"]\ncommand = "x"\n',
        "server 'my docs': name: server name 'my docs': use letters",
        id="server-name",
    ),
    pytest.param(
        "mcp.toml", "[servers]\ndocs = 3\n", "server 'docs': expected a table", id="not-a-table"
    ),
    pytest.param(
        "mcp.toml",
        SERVER + 'resources = ["docs://*", " "]\n',
        "server 'docs': resources: an empty pattern matches nothing",
        id="empty-pattern",
    ),
    pytest.param(
        "mcp.toml",
        SERVER + '[servers.docs.tools.search]\narguments = { q = "{file}" }\n',
        r"server 'docs': tools\.search\.arguments: '\{file\}': unknown placeholder \{file\}; "
        r"use \{symbol\}, \{language\}, \{path\}, \{problem\}",
        id="unknown-placeholder",
    ),
    pytest.param(
        "mcp.toml",
        SERVER + '[servers.docs.tools.search]\narguments = { q = ["{symbol.__class__}"] }\n',
        r"tools\.search\.arguments: .*unknown placeholder \{symbol.__class__\}",
        id="attribute-placeholder",
    ),
    pytest.param(
        "mcp.toml",
        SERVER + '[servers.docs.tools.search]\narguments = { q = "{symbol!r}" }\n',
        r"unknown placeholder \{symbol!r\}",
        id="conversion",
    ),
    pytest.param(
        "mcp.toml",
        SERVER + '[servers.docs.tools.search]\narguments = { q = "{symbol" }\n',
        "tools.search.arguments: '{symbol': unbalanced brace; write {{ or }}",
        id="unbalanced",
    ),
    pytest.param(
        "mcp.toml",
        SERVER + '[servers.docs.tools.search]\nuse_in = ["completion"]\n',
        r"tools\.search\.use_in\.0: Input should be 'review' or 'actions'",
        id="use-in",
    ),
    pytest.param(
        "mcp.toml",
        SERVER + "[servers.docs.tools.search]\nuse_in = []\n",
        r"tools\.search\.use_in: List should have at least 1 item",
        id="use-in-empty",
    ),
    pytest.param(
        "mcp.toml",
        SERVER + "[servers.docs.tools.search]\nallowed = true\n",
        r"tools\.search\.allowed: unknown setting",
        id="tool-extra",
    ),
    pytest.param(
        "mcp.toml",
        SERVER + 'env = { TOKEN = "env:ZI_TEST_SURELY_UNSET" }\n',
        "server 'docs': env.TOKEN: environment variable ZI_TEST_SURELY_UNSET is not set",
        id="env-unset",
    ),
    pytest.param(
        "mcp.toml",
        '[servers.t]\nurl = "http://h/mcp"\nheaders = { Authorization = "env:" }\n',
        "server 't': headers.Authorization: 'env:' is not `env:NAME`",
        id="env-no-name",
    ),
]


@pytest.mark.parametrize(("name", "text", "message"), ERRORS)
def test_each_mistake_is_named_with_file_server_and_field(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(McpConfigError, match=message) as caught:
        load_servers(path, environ={})
    assert str(caught.value).startswith(str(path)) or str(path) in str(caught.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(McpConfigError, match=f"cannot read MCP servers file {missing}"):
        load_servers(missing)


def test_a_wrong_url_is_repeated_without_its_credentials(tmp_path: Path) -> None:
    path = write(tmp_path, "mcp.toml", '[servers.t]\nurl = "ftp://bot:s3cret@h/mcp?key=abc"\n')
    with pytest.raises(McpConfigError) as caught:
        load_servers(path, environ={})
    assert "url must start with http:// or https://, got 'ftp://h/mcp'" in str(caught.value)
    assert "s3cret" not in str(caught.value) and "abc" not in str(caught.value)
