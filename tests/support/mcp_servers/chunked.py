"""A bare JSON-RPC MCP server over HTTP (``chunked.py PORT``, on 127.0.0.1) whose
`enormous` tool answers a 5 MB plain JSON body in chunks, with no Content-Length to
refuse it by; `small` answers normally. No SDK server: the point is the wire format."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from _record import record  # the script's directory is on sys.path
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

SCHEMA = {"type": "object", "properties": {"symbol": {"type": "string"}}}
TOOLS = [
    {"name": "enormous", "description": "A 5 MB answer, chunked.", "inputSchema": SCHEMA},
    {"name": "small", "description": "A short answer.", "inputSchema": SCHEMA},
]


def answer(message: dict[str, Any], result: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"jsonrpc": "2.0", "id": message["id"], "result": result})


async def enormous_body(message: dict[str, Any]) -> AsyncIterator[bytes]:
    head = {"jsonrpc": "2.0", "id": message["id"], "result": {"content": []}}
    yield json.dumps(head).removesuffix("]}}").encode() + b'{"type": "text", "text": "'
    for _ in range(80):
        yield b"x" * 65_536
    yield b'"}]}}'


async def mcp(request: Request) -> Response:
    if request.method != "POST":
        return Response(status_code=405)  # no event stream, no session to delete
    message = await request.json()
    method = message.get("method")
    if "id" not in message:
        return Response(status_code=202)  # a notification
    if method == "initialize":
        return answer(
            message,
            {
                "protocolVersion": message["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "chunked", "version": "1.0"},
            },
        )
    if method == "tools/list":
        return answer(message, {"tools": TOOLS})
    if method == "tools/call":
        name, arguments = message["params"]["name"], message["params"].get("arguments", {})
        record("call", tool=name, arguments=arguments)
        if name == "enormous":
            return StreamingResponse(enormous_body(message), media_type="application/json")
        text = f"{arguments.get('symbol')}: small answer"
        return answer(message, {"content": [{"type": "text", "text": text}]})
    error = {"code": -32601, "message": f"no method {method}"}
    return JSONResponse({"jsonrpc": "2.0", "id": message["id"], "error": error})


app = Starlette(routes=[Route("/mcp", mcp, methods=["GET", "POST", "DELETE"])])

if __name__ == "__main__":
    record("start")
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
