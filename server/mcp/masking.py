"""The configuration as an agent may see it: no credential, no URL's user or query."""

from __future__ import annotations

import re
from typing import Any

from server.history.repository import safe_endpoint
from server.redact import redact
from server.settings import Settings

# Settings whose value is a credential whatever it looks like.
_SECRET_NAME = re.compile(r"api_key|token|password|secret", re.IGNORECASE)


def masked_settings(settings: Settings) -> dict[str, Any]:
    """`settings` as JSON, safe to show an agent: credentials as ``***``, URLs without
    user, password or query, every other text redacted (``server.redact``)."""

    def mask(value: Any, name: str) -> Any:
        if isinstance(value, dict):
            return {key: mask(item, key) for key, item in value.items()}
        if isinstance(value, list):
            return [mask(item, name) for item in value]
        if isinstance(value, str):
            if value and _SECRET_NAME.search(name):
                return "***"
            return safe_endpoint(value) if "://" in value else redact(value)
        return value

    masked: dict[str, Any] = mask(settings.model_dump(mode="json"), "")
    return masked
