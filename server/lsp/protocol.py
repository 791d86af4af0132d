"""pygls' LSP protocol with the lifecycle rules and error replies the spec asks for.

- `Lifecycle` answers requests that come at the wrong time: -32002 before
  ``initialize``, InvalidRequest for a second ``initialize`` and for anything after
  ``shutdown`` (pygls drops those silently, so the client waits forever).
- Params that do not fit the method's type are answered with -32602, without a
  traceback in the log for each one; `strict_converter` makes "fit" mean the JSON
  types match, not that cattrs could coerce them.
- An internal error reaches the client as one line that points to the log; the
  traceback pygls would put in the reply's ``data`` goes to the log only.
- ``exit`` records the exit code (0 after ``shutdown``, 1 without) and lets the read
  loop end normally, instead of pygls' ``sys.exit`` from inside a handler.
"""

from __future__ import annotations

import logging
from typing import Any, Union

import attrs
from cattrs.errors import ClassValidationError
from lsprotocol import types
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInternalError,
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
)
from pygls.protocol import LanguageServerProtocol, default_converter, lsp_method
from pygls.protocol.json_rpc import (
    JsonRPCNotification,
    JsonRPCRequestMessage,
    JsonRPCResponseMessage,
)

from server.lsp import text_sync
from server.lsp.wire import INVALID_REQUEST, SERVER_NOT_INITIALIZED, Problem

log = logging.getLogger(__name__)

INTERNAL_ERROR = -32603


class _RefusalsAreNotErrors(logging.Filter):
    """pygls logs every JsonRpcException a handler raises with its traceback at ERROR;
    a refusal (bad params, an action that cannot run) is an answer, worth a line."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, JsonRpcException) and not isinstance(error, JsonRpcInternalError):
            record.exc_info, record.exc_text = None, None
            record.msg, record.args = "%s: %s", (record.getMessage(), error)
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


logging.getLogger("pygls.protocol.json_rpc").addFilter(_RefusalsAreNotErrors())


def strict_converter() -> Any:
    """pygls' converter, minus the coercions that hide a client's bugs: cattrs would
    read ``"line": "1"`` as 1, ``1.7`` as 1, ``true`` as 1 and ``"uri": 7`` as "7"."""
    converter = default_converter()  # type: ignore[no-untyped-call]

    def exactly(*kinds: type, name: str) -> Any:
        def hook(value: Any, target: Any) -> Any:
            if type(value) not in kinds:
                raise TypeError(f"expected {name}, got {type(value).__name__}")
            # A class hook also serves int and str enums (DiagnosticSeverity,
            # CodeActionKind): those still become members (or fail as unknown).
            return value if target in kinds or not isinstance(target, type) else target(value)

        return hook

    converter.register_structure_hook(int, exactly(int, name="an integer"))
    converter.register_structure_hook(str, exactly(str, name="a string"))
    converter.register_structure_hook(bool, exactly(bool, name="a boolean"))
    converter.register_structure_hook(float, exactly(int, float, name="a number"))
    converter.register_structure_hook(
        Union[int, str],  # noqa: UP007 (lsprotocol's request ids are typing.Union)
        exactly(int, str, name="an integer or a string"),
    )
    # lsprotocol lets any JSON value through where a known kind or any string will do.
    converter.register_structure_hook(
        Union[types.LanguageKind, str],  # noqa: UP007
        exactly(str, name="a string"),
    )
    return converter


class Lifecycle:
    """Where the session is: before ``initialize``, running, or after ``shutdown``."""

    def __init__(self) -> None:
        self.initialized = False
        self.shut_down = False

    def refuse(self, method: str, msg_id: Any) -> Problem | None:
        """Why `method` may not run now (a `Problem` to answer or log), or None."""
        is_request = msg_id is not None
        if method == types.EXIT:
            return None
        if self.shut_down:
            return Problem(INVALID_REQUEST, f"{method}: the server is shutting down", msg_id)
        if not self.initialized:
            if method == types.INITIALIZE and is_request:
                return None
            return Problem(SERVER_NOT_INITIALIZED, f"{method}: not initialized yet", msg_id)
        if method == types.INITIALIZE:
            return Problem(INVALID_REQUEST, "initialize: already initialized", msg_id)
        return None

    def admitted(self, method: str) -> None:
        if method == types.INITIALIZE:
            self.initialized = True
        elif method == types.SHUTDOWN:
            self.shut_down = True


class ZiProtocol(LanguageServerProtocol):
    def __init__(self, server: Any, converter: Any) -> None:
        super().__init__(server, converter)
        self.lifecycle = Lifecycle()
        self.exit_code: int | None = None  # set by `exit`
        self.initialize_answered = False  # fast start answered it before pygls existed

    def reply_error(self, msg_id: Any, code: int, message: str) -> None:
        self._send_response(msg_id, error=types.ResponseError(code=code, message=message))

    def structure_message(self, data: dict[str, Any]) -> Any:
        """pygls' typed message for `data` (a checked envelope: see ``server.lsp.wire``).

        pygls' own version logs a traceback per bad message and wants ``params`` even
        where JSON-RPC lets it be left out; this one raises `JsonRpcInvalidParams`
        with one readable line.
        """
        method = data.get("method")
        try:
            if method is None:
                if "error" in data:
                    return self._converter.structure(data, types.ResponseErrorMessage)
                result_type = self._result_types.pop(data["id"], None) or JsonRPCResponseMessage
                return self._converter.structure(data, result_type)
            message_type = self.get_message_type(method)
            if message_type is None:  # a method we do not know: -32601 comes later
                fields = {k: data[k] for k in ("id", "method", "params", "jsonrpc") if k in data}
                generic = JsonRPCRequestMessage if "id" in data else JsonRPCNotification
                return generic(**{"params": None, **fields})
            if "id" in data and "id" not in attrs.fields_dict(message_type):
                # pygls would drop the id and run it as a notification: no answer ever.
                raise JsonRpcInvalidRequest(f"{method} is a notification: it takes no id")
            return self._converter.structure(data, message_type)
        except JsonRpcException:
            raise
        except ClassValidationError as exc:
            detail = _first_error(exc)
        except Exception as exc:  # cattrs raises plain TypeErrors, KeyErrors…
            detail = f"{type(exc).__name__}: {exc}"[:300]
        raise JsonRpcInvalidParams(f"invalid params for {method}: {detail}")

    def _send_response(
        self, msg_id: Any, result: Any | None = None, error: types.ResponseError | None = None
    ) -> None:
        if error is not None and error.code == INTERNAL_ERROR:
            # pygls puts the exception's text and traceback here; they are in the log
            # (pygls logs the traceback, report_server_error the text).
            error = types.ResponseError(
                code=INTERNAL_ERROR, message="Zi Coder internal error: details are in its log"
            )
        super()._send_response(msg_id, result, error)

    def structure_leniently(self, data: dict[str, Any]) -> Any:
        """`data` as pygls' own converter reads it (coercing types), for an ``initialize``
        fast start has already answered: its capabilities must be kept, not refused."""
        converter = default_converter()  # type: ignore[no-untyped-call]
        return converter.structure(data, self.get_message_type(data["method"]))

    def fail_request(self, msg_id: Any, error: Exception) -> None:
        """Our request `msg_id` gets `error` as its answer (the client's was unreadable),
        so the code awaiting it goes on instead of waiting forever."""
        future = self._request_futures.pop(msg_id, None) if _is_id(msg_id) else None
        if future is not None and not future.done():
            future.set_exception(error)

    def _handle_response(self, msg_id: Any, result: Any = None, error: Any = None) -> None:
        future = self._request_futures.get(msg_id)
        if future is not None and future.done():
            # We stopped waiting (a timeout, a cancel): a late answer has no one to go to.
            self._request_futures.pop(msg_id, None)
            log.debug("late answer to our request %s ignored", msg_id)
            return
        super()._handle_response(msg_id, result, error)

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams) -> Any:
        """A change to a document that is not open has nothing to apply to (pygls
        raises KeyError): logged and ignored, as the editor will reopen it."""
        if not text_sync.is_open(self.workspace, params.text_document.uri):
            log.warning("didChange for %s, which is not open: ignored", params.text_document.uri)
            return None
        return (yield from super().lsp_text_document__did_change(params))

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args: Any) -> Any:
        """Run the server's `exit` handler, then let the read loop end with the code."""
        if (user_handler := self.fm.features.get(types.EXIT)) is not None:
            yield user_handler, args, None
        self.exit_code = 0 if self.lifecycle.shut_down else 1


def _first_error(error: ClassValidationError) -> str:
    """The innermost validation error, as one line: `expected int, got 'x'`."""
    current: BaseException = error
    while isinstance(current, ClassValidationError) and current.exceptions:
        current = current.exceptions[0]
    notes = getattr(current, "__notes__", None) or []
    where = f" ({notes[-1]})" if notes else ""
    return f"{type(current).__name__}: {current}{where}"[:300]


def _is_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
