"""Small network probes shared by the launcher and the commands: ports, loopback, GET.

Standard library only (``urllib``): these run in CLI commands and before vLLM is
up, where importing aiohttp would cost more than the probe.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.error
import urllib.parse
import urllib.request


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_host(host: str) -> str:
    """How to reach a server bound to ``host`` from this machine, URL-quoted."""
    if host in {"", "0.0.0.0"}:
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def server_root(url: str) -> str:
    """``http://h:p/v1`` -> ``http://h:p``: vLLM's /health and /metrics live at the root."""
    return url.rstrip("/").removesuffix("/v1")


def port_in_use(host: str, port: int) -> bool:
    """Whether binding ``host:port`` fails now (as vLLM's bind would, with SO_REUSEADDR)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]"), port))
        except OSError:
            return True
    return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (another process may still take it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url: str, timeout_s: float = 2.0) -> tuple[int, bytes]:
    """GET (loopback without proxies, as no proxy reaches it); status 0 when unreachable."""
    host = urllib.parse.urlsplit(url).hostname or ""
    opener = _NO_PROXY if is_loopback(host) else urllib.request.build_opener()
    try:
        with opener.open(url, timeout=timeout_s) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except (OSError, ValueError):
        return 0, b""


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    return http_get(url, timeout_s)[0] == 200
