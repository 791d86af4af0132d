"""Where the history database is, without importing the settings machinery.

``zi-coder stats`` needs only this one setting, and importing pydantic to read it
costs about 0.3 s of a 2 s budget; ``Settings.resolved_database_url`` uses the
same default, so the two cannot disagree.
"""

from __future__ import annotations

import os
from pathlib import Path

DATABASE_URL_VARIABLE = "ZI_DATABASE_URL"


def default_database_url() -> str:
    """SQLite in the user data directory (created if missing)."""
    import platformdirs

    data_dir = Path(platformdirs.user_data_dir("zi-coder", appauthor=False))
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{data_dir / 'history.sqlite3'}"


def database_url_from_environment() -> str:
    """``ZI_DATABASE_URL`` as ``Settings`` reads it (the name in any case; empty
    means unset), else the default."""
    for name, value in os.environ.items():
        if name.upper() == DATABASE_URL_VARIABLE and value:
            return value
    return default_database_url()
