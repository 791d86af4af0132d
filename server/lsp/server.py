"""The language server object: pygls' server plus this process's services.

Feature modules in ``server.lsp.features`` register their handlers on it; the
handlers stay thin and call the services (``server.app.Services``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from server import __version__
from server.lsp.protocol import ZiProtocol, strict_converter
from server.notify import Level

if TYPE_CHECKING:
    from server.app import Services
    from server.settings import Settings

log = logging.getLogger(__name__)

INTERNAL_ERROR = -32603
REQUEST_FAILED = -32803  # LSP RequestFailed: a refusal with a reason for the user


class ZiLanguageServer(LanguageServer):
    def __init__(self, settings: Settings) -> None:
        super().__init__(
            "zi-coder",
            __version__,
            protocol_cls=ZiProtocol,
            converter_factory=strict_converter,
        )
        self.base_settings = settings
        self.services: Services | None = None
        self.closing: asyncio.Future[None] | None = None  # set by shutdown or exit

    def require_services(self) -> Services:
        if self.services is None:
            raise RuntimeError("the server is not initialized")
        return self.services

    def log_to_client(self, level: Level, message: str) -> None:
        try:
            self.window_log_message(
                types.LogMessageParams(type=types.MessageType(int(level)), message=message)
            )
        except Exception:  # no client attached yet (or gone): the log file has it
            log.debug("could not send logMessage", exc_info=True)

    def show_to_client(self, level: Level, message: str) -> None:
        try:
            self.window_show_message(
                types.ShowMessageParams(type=types.MessageType(int(level)), message=message)
            )
        except Exception:
            log.debug("could not send showMessage", exc_info=True)

    def shutdown(self) -> None:
        """Called by pygls once serving is over, however it ended (stdin closed, the
        connection lost, `exit`): the last history rows are written and the MCP
        servers stopped before the process goes. A client that sends `shutdown` and
        closes the pipe at once (Neovim 0.11's `:qa`) ends the loop mid-way through
        the shutdown handler's own closing."""
        super().shutdown()  # type: ignore[no-untyped-call]
        if self.services is not None:
            self.services.close_at_exit()

    def report_server_error(self, error: Exception, source: object) -> None:
        # pygls would pop up every internal error; log it instead and keep serving.
        if getattr(error, "CODE", INTERNAL_ERROR) != INTERNAL_ERROR:
            # A refusal (bad params, unknown method, an action that cannot run) is an
            # answer the client already has, not a fault of ours.
            log.info("request refused: %s", error)
            return
        log.error("internal error (%s): %s", getattr(source, "__name__", source), error)
        # The exception's text may hold code or paths: it stays in the log.
        self.log_to_client(
            Level.ERROR, f"Zi: internal error ({type(error).__name__}); details are in its log"
        )


def create_server(settings: Settings) -> ZiLanguageServer:
    from server.lsp.features import (
        actions,
        completion,
        diagnostics,
        documents,
        events,
        lifecycle,
    )

    server = ZiLanguageServer(settings)
    for feature in (lifecycle, documents, completion, actions, diagnostics, events):
        feature.register(server)
    return server
