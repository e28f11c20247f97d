"""Is the Hugging Face Hub reachable? Asked once, in about a second, before any download.

huggingface_hub retries a failed connection for ~20 s with backoff; offline, a quick probe first lets lorawiz
fall back to the local cache at once, and say so. The probe goes through huggingface_hub's own HTTP session, so
HTTPS_PROXY, certificates and a custom client factory apply to it as to every download. An unreachable Hub never
turns the whole process offline: `cache_only()` does so around one load, and undoes it after.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Iterator

PROBE_TIMEOUT_S = 1.5
_OFFLINE_VALUES = ("1", "true", "yes", "on")


def offline_set() -> bool:
    """Whether the user turned huggingface_hub offline (HF_HUB_OFFLINE or the older TRANSFORMERS_OFFLINE)."""
    names = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    return any(os.environ.get(name, "").lower() in _OFFLINE_VALUES for name in names)


@functools.cache
def hub_reachable() -> bool:
    """False when HF_HUB_OFFLINE is set or the Hub (HF_ENDPOINT honoured) gives no HTTP answer within
    PROBE_TIMEOUT_S; any answer, an error status included, means it is there."""
    if offline_set():
        return False
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    endpoint = os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
    try:
        get_session().head(endpoint.rstrip("/") + "/api/whoami-v2", timeout=PROBE_TIMEOUT_S, follow_redirects=False)
    except Exception:  # noqa: BLE001 - the session's errors (httpx, httpx2, by version): no answer is unreachable
        return False
    return True


def cache_only_unless_local(path: str) -> contextlib.AbstractContextManager[None]:
    """cache_only() for loading `path` when it is a Hub id and the Hub does not answer (a local path needs no
    network)."""
    from pathlib import Path

    return cache_only(not Path(path).expanduser().exists() and not hub_reachable())


@contextlib.contextmanager
def cache_only(when: bool = True) -> Iterator[None]:
    """Within the block (when `when`), huggingface_hub and datasets serve from the local cache only: no request,
    no ~20 s of retries, and every lookup PEFT or transformers make without `local_files_only` included. The
    previous state is restored on the way out, so a later call in this process may still reach the Hub."""
    if not when:
        yield
        return
    from huggingface_hub import constants

    saved_env = os.environ.get("HF_HUB_OFFLINE")
    datasets_config = sys.modules.get("datasets.config")
    saved = (constants.HF_HUB_OFFLINE, getattr(datasets_config, "HF_HUB_OFFLINE", None))
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True
    if datasets_config is not None:
        datasets_config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        if saved_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved_env
        constants.HF_HUB_OFFLINE = saved[0]
        late = sys.modules.get("datasets.config")  # imported inside the block, it read the setting then
        if late is not None:
            late.HF_HUB_OFFLINE = saved[1] if datasets_config is not None else saved[0]
