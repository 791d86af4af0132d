"""The ``zi-coder`` subcommands, one module each.

A module offers ``register(commands)`` (adds its argparse parser and sets
``run``) and ``run(args) -> int`` (the exit status). Only argparse is imported
at module level: ``zi-coder serve`` must answer ``initialize`` fast, so every
command imports what it needs (settings, vLLM launcher, pygls) when it runs.
Output for people goes to stderr (stdout carries data: a completion, a table).
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inference.registry import Registry
    from server.settings import Settings


def fail(message: str, code: int = 1) -> int:
    """Report a problem as ``zi-coder: message`` on stderr and return the exit status."""
    sys.stderr.write(f"zi-coder: {message}\n")
    sys.stderr.flush()
    return code


def say(message: str) -> None:
    sys.stderr.write(f"zi-coder: {message}\n")
    sys.stderr.flush()


def add_models_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models",
        metavar="FILE",
        type=Path,
        help="model registry (TOML or YAML); default: ZI_MODELS_FILE, else the embedded default",
    )


def load_models(args: argparse.Namespace, settings: Settings) -> Registry:
    """The registry named by ``--models``, else by the settings, else the embedded default.

    Raises ``RegistryError`` with a message naming the file and the model.
    """
    from inference.registry import load_registry

    path: Path | None = getattr(args, "models", None) or settings.models_file
    return load_registry(path.expanduser() if path is not None else None)


class RedactingFormatter(logging.Formatter):
    """Log lines without secrets: messages quote documents (pygls logs whole LSP bodies at
    DEBUG), settings, command lines and errors, and tracebacks quote what failed.

    Only records a handler emits are formatted, so the cost falls on what is written: one
    pass per record, shared by every handler (the line is kept on the record). The redactor
    is imported on the first record, not at start-up."""

    def format(self, record: logging.LogRecord) -> str:
        done = record.__dict__.get("_zi_redacted")
        if isinstance(done, str):
            return done
        from server.redact.escaped import redact_escaped

        line = redact_escaped(super().format(record))
        record.__dict__["_zi_redacted"] = line
        return line


def configure_logging(level: str, log_file: Path | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    formatter = RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in handlers:
        handler.setFormatter(formatter)
    logging.basicConfig(level=level.upper(), handlers=handlers, force=True)
    if logging.getLogger().level > logging.DEBUG:
        # pygls logs every message body at INFO: documents would flood the log.
        logging.getLogger("pygls").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
    # Uncaught exceptions too go through the redacting formatter, not straight to stderr
    # (a settings error may quote a URL with its password).
    crashes = logging.getLogger("zi-coder.uncaught")
    sys.excepthook = lambda kind, value, tb: crashes.critical(
        "uncaught exception", exc_info=(kind, value, tb)
    )
    threading.excepthook = lambda hook: crashes.error(
        "uncaught exception in thread %s",
        getattr(hook.thread, "name", "?"),
        exc_info=(hook.exc_type, hook.exc_value, hook.exc_traceback),  # type: ignore[arg-type]
    )


def configure_cli_logging() -> None:
    """Warnings only, as ``zi-coder: message``: for commands that talk to a person."""
    logging.basicConfig(
        level=logging.WARNING, format="zi-coder: %(message)s", stream=sys.stderr, force=True
    )
