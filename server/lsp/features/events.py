"""What the client did with a suggestion: shown, accepted, partially accepted.

``zi/didShowCompletion`` {id}, ``zi/didPartiallyAcceptCompletion`` {id,
acceptedLength}, and the ``zi.acceptCompletion`` command that every item carries.
"""

from __future__ import annotations

import logging
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


def did_show(ls: ZiLanguageServer, params: Any) -> None:
    completion_id = field(params, "id")
    if isinstance(completion_id, str) and ls.services is not None:
        ls.services.completions.outcomes.shown(completion_id)
    else:
        log.warning("%s without a string id: %r", DID_SHOW, params)


def did_partially_accept(ls: ZiLanguageServer, params: Any) -> None:
    completion_id = field(params, "id")
    length = field(params, "acceptedLength", "accepted_length")
    if isinstance(completion_id, str) and isinstance(length, int) and ls.services is not None:
        ls.services.completions.outcomes.accepted(completion_id, length)
    else:
        log.warning("%s needs {id: string, acceptedLength: int}: %r", DID_PARTIALLY_ACCEPT, params)


def accept(ls: ZiLanguageServer, *args: Any) -> None:
    # pygls passes the command's arguments spread or as one list, by version.
    values = list(args[0]) if len(args) == 1 and isinstance(args[0], list) else list(args)
    if values and isinstance(values[0], str) and ls.services is not None:
        ls.services.completions.outcomes.accepted(values[0])
    else:
        log.warning("%s needs the completion id as its argument: %r", ACCEPT_COMMAND, args)
