"""Training backends behind one interface: `hf` (transformers + peft + TRL) and `unsloth`."""

from __future__ import annotations

from typing import Any


def get_backend(name: str) -> Any:
    """The backend named `name` (see base.choose_backend), imported on demand: unsloth must come before transformers."""
    if name == "unsloth":
        from lorawiz.train.backends.unsloth import UnslothBackend

        return UnslothBackend()
    from lorawiz.train.backends.hf import HFBackend

    return HFBackend()
