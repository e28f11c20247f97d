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


def pick_backend(requested: str, cfg: Any, machine: Any) -> tuple[str, str, Any]:
    """Choose the backend from this machine and the model's architecture, and import it (unsloth comes first, so
    call this before transformers is imported): its name, why, and the backend."""
    from lorawiz.builtin import local_path
    from lorawiz.model_facts import load_model_facts
    from lorawiz.train.backends.base import choose_backend

    architecture = load_model_facts(local_path(cfg.model.model_name_or_path)).architecture
    name, why = choose_backend(requested, machine, architecture, cfg)
    return name, why, get_backend(name)
