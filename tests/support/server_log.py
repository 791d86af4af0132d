"""What a server's log says went wrong: tracebacks, and handlers that failed.

`crashes(text)` lists, one line each, the tracebacks in a log other than deliberate
refusals (a RequestFailed with a reason, an unknown method or command, a
cancellation, invalid params answered with -32602), and the notification handlers
that failed (``ZiLanguageServer.report_server_error`` logs those without a traceback).
"""

from __future__ import annotations

REFUSALS = (
    "server.lsp.features.actions.ActionFailed",
    "pygls.exceptions.JsonRpcMethodNotFound",
    "pygls.exceptions.JsonRpcRequestCancelled",
    "pygls.exceptions.JsonRpcInvalidParams",  # the -32602 answer is the designed reply
)


def _without_time(line: str) -> str:
    return line.split(" ", 2)[-1] if line[:2] == "20" else line  # "2026-11-22 09:07:48,039 …"


def tracebacks(text: str) -> list[str]:
    """Each traceback, as 'the log line before it | the exception line'."""
    lines = text.splitlines()
    found = []
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            end = next(
                (j for j in range(i + 1, len(lines)) if not lines[j].startswith(" ")),
                len(lines) - 1,
            )
            before = _without_time(lines[i - 1])[-160:] if i else ""
            found.append(f"{before} | {lines[end][:200]}")
    return found


def crashes(text: str) -> list[str]:
    found = [t for t in tracebacks(text) if not t.split(" | ")[-1].startswith(REFUSALS)]
    for line in text.splitlines():
        # A request's refusal sent as a notification has nobody to answer: a log line.
        if "internal error (FeatureNotificationError)" in line and not any(
            refusal in line for refusal in REFUSALS
        ):
            found.append(_without_time(line)[:200])
    return found
