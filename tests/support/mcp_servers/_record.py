"""What the test servers share: appending what they were asked to the file the test
names in MCP_TEST_CALLS (one JSON object a line), so tests see what was called."""

from __future__ import annotations

import json
import os
from typing import Any


def record(event: str, **detail: Any) -> None:
    path = os.environ.get("MCP_TEST_CALLS")
    if path:
        with open(path, "a", encoding="utf-8") as calls:
            calls.write(json.dumps({"event": event, "pid": os.getpid(), **detail}) + "\n")
