"""Bearer tokens for the network listeners (``mcp --http``, ``serve --tcp``).

A token comes from an environment variable, or is made once and kept, readable by
the user alone, in the state directory (``ZI_STATE_DIR``). Callers print where it
is, never the token.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path


def kept_token(state_dir: Path, name: str, variable: str) -> tuple[str, str]:
    """The token and where it comes from (``$VARIABLE`` or the file's path).

    Raises ValueError when the kept file is empty."""
    given = os.environ.get(variable)
    if given:
        return given, f"${variable}"
    path = state_dir / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole under another name (mkstemp: mode 0600), then linked in place:
        # the link fails if another server made the token first, and no reader ever
        # sees a half-written file. Either way the file now holds the token.
        fd, draft = tempfile.mkstemp(prefix=f".{name}-", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(secrets.token_urlsafe(32) + "\n")
            os.link(draft, path)
        except FileExistsError:
            pass  # another server won the race: its token it is
        finally:
            os.unlink(draft)
    token = path.read_text(encoding="utf-8").strip()
    if not token:
        raise ValueError(f"{path} is empty: delete it for a new token, or set {variable}")
    return token, str(path)
