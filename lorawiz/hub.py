"""Is the Hugging Face Hub reachable? Asked once, in about a second, before any download.

huggingface_hub retries a failed connection for ~20 s with backoff; offline, a quick socket probe first lets
lorawiz fall back to the local cache at once, and say so.
"""

from __future__ import annotations

import functools
import os
import socket
import sys
from urllib.parse import urlparse

PROBE_TIMEOUT_S = 1.5


@functools.cache
def hub_reachable() -> bool:
    """False when HF_HUB_OFFLINE is set or the Hub's host does not accept a connection (HF_ENDPOINT honoured)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (443 if endpoint.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        _stay_offline()
        return False


def _stay_offline() -> None:
    """Unreachable: put huggingface_hub in offline mode for this process, so that every later lookup (PEFT's
    adapter_config.json probe included, which ignores local_files_only) goes to the cache at once."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:  # already imported: it read the variable at import
        constants.HF_HUB_OFFLINE = True
