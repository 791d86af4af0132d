"""What an MCP server returns, as context items: text only, cleaned, cut; tool arguments."""

from __future__ import annotations

import pytest
from mcp.types import (
    BlobResourceContents,
    CallToolResult,
    ImageContent,
    ReadResourceResult,
    ResourceLink,
    TextContent,
    TextResourceContents,
)

from server.context.types import ContextRequest
from server.mcp.client.config import ToolUse
from server.mcp.client.content import arguments_for, clean_text, resource_text, tool_text
from server.mcp.client.stdio import Ending


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain\ttext\nnext line", "plain\ttext\nnext line"),
        ("\x1b[31mred\x1b[0m and a bell\x07", "red and a bell"),
        ("evil\u202eright-to-left\u2066", "evilright-to-left"),
        ("  padded  \r\n", "padded"),
        ("\x1b]8;;http://evil\x07link\x1b]8;;\x07 text", "link text"),  # OSC hyperlink
        ("\x9b31mC1 red\x85", "C1 red"),  # one-byte CSI, next-line control
        ("tag\U000e0069\U000e0067\U000e006e chars", "tag chars"),  # invisible ASCII
    ],
)
def test_control_characters_are_stripped(text: str, expected: str) -> None:
    assert clean_text(text, 1000) == expected


def test_long_text_is_cut_with_a_marker() -> None:
    assert clean_text("x" * 250, 100) == "x" * 100 + "\n[... 150 more characters cut]"


def test_only_text_of_a_successful_tool_result_counts() -> None:
    text = TextContent(type="text", text="found")
    image = ImageContent(type="image", data="AAAA", mime_type="image/png")
    link = ResourceLink(type="resource_link", uri="file:///etc/passwd", name="passwd")
    assert tool_text(CallToolResult(content=[image, text, link])) == "found"
    assert tool_text(CallToolResult(content=[text], is_error=True)) is None
    assert tool_text(CallToolResult(content=[image])) is None
    structured = CallToolResult(content=[], structured_content={"hits": [1, 2]})
    assert tool_text(structured) == '{"hits":[1,2]}'


def test_only_text_resources_count() -> None:
    text = TextResourceContents(uri="docs://a", text="about a")
    blob = BlobResourceContents(uri="docs://a", blob="AAAA")
    assert resource_text(ReadResourceResult(contents=[blob, text])) == "about a"
    assert resource_text(ReadResourceResult(contents=[blob])) is None


def test_arguments_are_rendered_and_a_tool_without_its_values_is_skipped() -> None:
    use = ToolUse(arguments={"q": "{symbol} in {language}", "limit": 3, "tags": ["{path}"]})
    request = ContextRequest("review", "python", "src/app.py", symbol="parse")
    assert arguments_for(use, request) == {
        "q": "parse in python",
        "limit": 3,
        "tags": ["src/app.py"],
    }
    assert arguments_for(use, ContextRequest("review", "python", "src/app.py")) is None
    fixed = ToolUse(arguments={"q": "release notes", "braces": "{{literal}}"})
    assert arguments_for(fixed, ContextRequest("actions", "go", "x.go")) == {
        "q": "release notes",
        "braces": "{literal}",
    }


def test_the_stderr_tail_is_short_cleaned_and_redacted() -> None:
    ending = Ending(stderr_tail_bytes=4096)
    for _ in range(2000):  # 100 KB of noise: only a tail is kept
        ending.keep_stderr(b"debug: " + b"x" * 40 + b"\n")
    ending.keep_stderr(b"\x1b[31merror:\x1b[0m bad key sk-proj-Abc123Def456Ghi789Jkl012Mno345\n")
    ending.keep_stderr(b"fatal: giving up\n")
    tail = ending.stderr_tail()
    assert tail.endswith("| error: bad key <redacted:openai-key> | fatal: giving up")
    assert len(tail) <= 400
