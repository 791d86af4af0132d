"""``zi-coder complete FILE:LINE:COL``: one completion through the whole pipeline.

The answer goes to stdout; when there is none, the reason goes to stderr (exit 1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    complete = commands.add_parser(
        "complete", help="run one completion through the whole pipeline and print it"
    )
    complete.add_argument("location", metavar="FILE:LINE:COL", help="1-based line and column")
    complete.add_argument("--language", help="language id (default: from the file extension)")
    complete.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    location: str = args.location
    language: str | None = args.language
    import asyncio

    from server.app import build_services
    from server.commands import configure_logging
    from server.completion.types import CompletionRequest, Document
    from server.languages import language_of
    from server.notify import Level, Notifier
    from server.settings import Settings

    settings = Settings()
    configure_logging(
        settings.log_level if settings.log_level != "INFO" else "WARNING", settings.log_file
    )
    try:
        path_text, line_text, col_text = location.rsplit(":", 2)
        line, col = int(line_text), int(col_text)
        path = Path(path_text)
        text = path.read_text(encoding="utf-8")
    except (ValueError, OSError) as exc:
        sys.stderr.write(f"zi-coder: cannot read {location!r}: {exc}\n")
        return 2
    lines = text.split("\n")
    if not 1 <= line <= len(lines) or not 1 <= col <= len(lines[line - 1]) + 1:
        sys.stderr.write(f"zi-coder: {location} is outside the file\n")
        return 2
    offset = sum(len(x) + 1 for x in lines[: line - 1]) + col - 1
    document = Document(
        uri=path.resolve().as_uri(),
        language_id=language or language_of(path),
        version=0,
        text=text,
    )
    notifier = Notifier()
    messages: list[str] = []
    # Keep problems (warnings, errors) to explain an empty answer; info is not a reason.
    notifier.connect(
        log_sink=lambda level, m: messages.append(m) if level <= Level.WARNING else None,
        show_sink=lambda _level, _m: None,
    )

    async def complete() -> str | None:
        services = build_services(settings, notifier=notifier)
        try:
            result = await services.completions.complete(
                CompletionRequest(document, offset, line - 1, col - 1, invoked=True)
            )
            return result.text if result else None
        finally:
            await services.aclose()

    text_out = asyncio.run(complete())
    if text_out is None:
        reason = (
            messages[-1]
            if messages
            else ("the model's suggestion was empty or filtered out (ZI_LOG_LEVEL=DEBUG shows why)")
        )
        sys.stderr.write(f"zi-coder: no completion: {reason}\n")
        return 1
    sys.stdout.write(text_out + "\n")
    return 0
