"""``zi-coder mcp --http``: streamable HTTP on a loopback address, a bearer token
required on every request.

The SDK's resource-server auth checks the token (401 with ``WWW-Authenticate`` when
it is missing or wrong) and its DNS-rebinding protection refuses a foreign ``Host``
(421) or ``Origin`` (403), so a web page cannot reach the server through the browser.
The SDK turns that protection on by itself only for 127.0.0.1, localhost and ::1; it
is set here for whichever loopback address is bound (127.0.0.2 too).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
from collections.abc import Callable

from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

PATH = "/mcp"


class StaticToken:
    """A TokenVerifier for one shared token, compared in constant time."""

    def __init__(self, token: str) -> None:
        self._digest = hashlib.sha256(token.encode()).digest()

    async def verify_token(self, token: str) -> AccessToken | None:
        given = hashlib.sha256(token.encode()).digest()
        if hmac.compare_digest(given, self._digest):
            return AccessToken(token="", client_id="zi-local", scopes=[])
        return None


def auth_settings() -> AuthSettings:
    # issuer_url is a required field, read only with an OAuth provider or a
    # resource_server_url; neither is set, so this placeholder is never used.
    return AuthSettings(issuer_url="http://127.0.0.1", resource_server_url=None)  # type: ignore[arg-type]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def rebinding_protection(host: str) -> TransportSecuritySettings:
    """Only requests naming a loopback address in ``Host`` (and ``Origin``, when sent)
    pass: a page whose name resolves to this machine names itself, and is refused."""
    shown = f"[{host}]" if ":" in host else host
    names = dict.fromkeys([shown, "127.0.0.1", "localhost", "[::1]"])  # ordered, unique
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[*names, *(f"{name}:*" for name in names)],  # bare: port 80
        allowed_origins=[*(f"http://{name}" for name in names)]
        + [f"http://{name}:*" for name in names],
    )


async def serve(
    server: MCPServer, *, host: str, port: int, on_ready: Callable[[str], None]
) -> None:
    """Serve until cancelled; `on_ready` gets the URL once the socket listens (with
    port 0, the port the system chose)."""
    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(64)
    bound = sock.getsockname()[1]
    app = server.streamable_http_app(
        host=host, streamable_http_path=PATH, transport_security=rebinding_protection(host)
    )
    # Our logging (stderr), no access log: nothing of uvicorn's own on stdout.
    config = uvicorn.Config(app, lifespan="on", log_config=None, access_log=False)
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    on_ready(f"http://{shown}:{bound}{PATH}")
    await uvicorn.Server(config).serve(sockets=[sock])
