"""Where the built-ins are cached."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_root() -> Path:
    """Where built-ins are cached: $LORAWIZ_CACHE, else ~/.cache/lorawiz."""
    configured = os.environ.get("LORAWIZ_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "lorawiz"
