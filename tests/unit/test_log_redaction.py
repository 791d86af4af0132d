"""The log holds no secret: every record, on stderr and in ZI_LOG_FILE, goes through the
redacting formatter, whatever quotes the secret (a JSON body as pygls logs it, a repr of
parameters, an exception's message)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.commands import configure_logging
from server.redact.escaped import redact_escaped
from tests.unit.data.secrets_corpus import NOT_SECRETS, SECRETS, SecretCase


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging replaces the root's handlers: pytest's own come back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    pygls_level = logging.getLogger("pygls").level
    yield
    for handler in root.handlers:
        handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("pygls").setLevel(pygls_level)


def _forms(secret: str) -> tuple[str, ...]:
    return secret, json.dumps(secret)[1:-1], repr(secret)[1:-1]


@pytest.mark.usefixtures("restore_logging")
def test_every_record_is_redacted_on_stderr_and_in_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "logs" / "zi.log"
    configure_logging("debug", log_file)
    rpc = logging.getLogger("pygls.protocol.json_rpc")
    for case in SECRETS:
        body = {"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"text": case.text}}
        rpc.info("Sending data: %s", json.dumps(body))  # pygls' own line, escaped JSON
        rpc.debug("Sending notification: '%s' %s", "x", {"text": case.text})  # a repr
    try:
        raise ValueError(f"bad settings: {SECRETS[0].text}")
    except ValueError:
        logging.getLogger("server.x").exception("failed for %s", "file:///w/a.py")
    for output in (log_file.read_text(encoding="utf-8"), capsys.readouterr().err):
        assert output.count("Sending data") == len(SECRETS)
        leaked = [c.id for c in SECRETS if any(form in output for form in _forms(c.secret))]
        assert leaked == []
        assert "ValueError: bad settings:" in output  # the traceback is kept, redacted


@pytest.mark.parametrize("case", SECRETS, ids=lambda case: case.id)
def test_escaped_texts_are_redacted(case: SecretCase) -> None:
    for quoted in (json.dumps({"text": "x\n" + case.text}), repr(case.text)):
        redacted = redact_escaped(f"Sending data: {quoted}")
        assert not any(form in redacted for form in _forms(case.secret))
        assert redacted.startswith("Sending data: ")


def test_escaped_ordinary_code_is_unchanged() -> None:
    for text in NOT_SECRETS:
        for quoted in (json.dumps(text), repr(text)):
            assert redact_escaped(quoted) == quoted
