"""What the client did with a suggestion: shown, accepted, partially accepted.

``zi/didShowCompletion`` {id}, ``zi/didPartiallyAcceptCompletion`` {id,
acceptedLength}, and the ``zi.acceptCompletion`` command that every item carries.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from server.lsp.convert import field
from server.lsp.features.completion import ACCEPT_COMMAND
from server.lsp.server import ZiLanguageServer

log = logging.getLogger(__name__)

DID_SHOW = "zi/didShowCompletion"
DID_PARTIALLY_ACCEPT = "zi/didPartiallyAcceptCompletion"


def register(server: ZiLanguageServer) -> None:
    server.feature(DID_SHOW)(did_show)
    server.feature(DID_PARTIALLY_ACCEPT)(did_partially_accept)
    server.command(ACCEPT_COMMAND)(accept)


# Ids are the server's own (uuid4 hex); anything else names no completion, and
# must not reach the history (a lone surrogate or a 2**64 length cannot be stored).
_COMPLETION_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
_MAX_LENGTH = 2**31 - 1  # LSP uinteger


def _completion_id(value: Any) -> str | None:
    return value if isinstance(value, str) and _COMPLETION_ID.fullmatch(value) else None


def did_show(ls: ZiLanguageServer, params: Any) -> None:
    completion_id = _completion_id(field(params, "id"))
    if completion_id is not None and ls.services is not None:
        ls.services.completions.outcomes.shown(completion_id)
    else:
        log.warning("%s without a completion id: %.200r", DID_SHOW, params)


def did_partially_accept(ls: ZiLanguageServer, params: Any) -> None:
    completion_id = _completion_id(field(params, "id"))
    length = field(params, "acceptedLength", "accepted_length")
    valid_length = type(length) is int and 0 <= length <= _MAX_LENGTH
    if completion_id is not None and valid_length and ls.services is not None:
        ls.services.completions.outcomes.accepted(completion_id, length)
    else:
        log.warning(
            "%s needs {id: completion id, acceptedLength: uinteger}: %.200r",
            DID_PARTIALLY_ACCEPT,
            params,
        )


def accept(ls: ZiLanguageServer, *args: Any) -> None:
    # pygls passes the command's arguments spread or as one list, by version.
    values = list(args[0]) if len(args) == 1 and isinstance(args[0], list) else list(args)
    completion_id = _completion_id(values[0]) if values else None
    if completion_id is not None and ls.services is not None:
        ls.services.completions.outcomes.accepted(completion_id)
    else:
        log.warning("%s needs the completion id as its argument: %.200r", ACCEPT_COMMAND, args)
