"""The next commands after `lorawiz eval` finds forgetting: mix general data into the run's training data
(`lorawiz mix`) and train again on the mix with a lower learning rate (`lorawiz train`), with the run's own paths
where its lorawiz.yaml knows them and a placeholder (in capitals) where nothing does.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorawiz.errors import LorawizError
from lorawiz.eval.plan import data_path, run_file_of
from lorawiz.models import Target

# The general share of the mix: the forgetting methodology lorawiz follows recommends 30-40% general data (replay)
# when a fine-tune forgets; 35% is the middle of that range.
GENERAL_SHARE = 0.35
LEARNING_RATE_FACTOR = 0.5  # and half the learning rate: smaller steps move the weights less far from the base
GENERAL_PLACEHOLDER = "GENERAL.jsonl"
TRAIN_PLACEHOLDER = "TRAIN.jsonl"


@dataclass
class Mitigation:
    commands: list[str] = field(default_factory=list)  # ready to run, in order
    notes: list[str] = field(default_factory=list)  # what to replace or know before running them


def mitigation_commands(target: Target, run_config: Any, general_data: str | None,
                        base: str | None = None) -> Mitigation:
    """`lorawiz mix` of the run's training sources (65%) and general data (35%), then `lorawiz train` of the run's
    lorawiz.yaml on the mix at half its learning rate, into a new folder beside the run. Without the run's
    lorawiz.yaml, the train step starts from `base` (a merged model's --base)."""
    found = Mitigation()
    run_file = run_file_of(target)
    run_dir = run_file.parent if run_file else Path(target.path)
    mixed = run_dir.parent / f"{run_dir.name}-mixed.jsonl"
    data = getattr(run_config, "data", None)
    sources = _training_sources(data)
    if not sources:
        sources = [(TRAIN_PLACEHOLDER, 1.0)]
        found.notes.append(f"{TRAIN_PLACEHOLDER}: the training data of {target.path} (its lorawiz.yaml does not say).")
    general = general_data
    if general is None or not _same_kind(sources[0][0], general):
        found.notes.append(f"{GENERAL_PLACEHOLDER}: general instruction data in the training data's form" + (
            f" ({general} is {_kind(general)}, which lorawiz mix cannot blend with {_kind(sources[0][0])})"
            if general else "") + ", e.g. a slice of an open instruction dataset.")
        general = GENERAL_PLACEHOLDER
    elif general_data is not None:
        found.notes.append(f"{general} is then training data: check forgetting next time on general text not in "
                           "the mix.")
    total = sum(weight for _, weight in sources)
    specs = [f"{path}:{_share((1 - GENERAL_SHARE) * weight / total)}" for path, weight in sources]
    found.commands.append(shlex.join(["lorawiz", "mix", *specs, f"{general}:{_share(GENERAL_SHARE)}",
                                      "-o", str(mixed)]))
    train = ["lorawiz", "train"]
    if run_file:
        train.append(str(run_file))
    elif target.base or base:
        train += ["--model", target.base or base]
    train += ["--data", str(mixed)]
    if data is not None and data.datasets:
        train += ["--set", "datasets=null"]  # the mix replaces the run's own list of sources
    learning_rate = getattr(getattr(run_config, "training", None), "learning_rate", None)
    if learning_rate:
        train += ["--learning-rate", f"{learning_rate * LEARNING_RATE_FACTOR:.3g}"]
    else:
        found.notes.append("lorawiz train: give --learning-rate half the one the model was trained with (unknown "
                           "here).")
    train += ["--output-dir", str(run_dir.parent / f"{run_dir.name}-mixed")]
    found.commands.append(shlex.join(train))
    return found


def _training_sources(data: Any) -> list[tuple[str, float]]:
    """(path, weight) of what the run trained on: its train_file, or each of its datasets with its share."""
    if data is None:
        return []
    if data.datasets:
        weighted = all(entry.get("weight") is not None for entry in data.datasets)
        return [(str(entry["path"]), float(entry["weight"]) if weighted else 1.0) for entry in data.datasets]
    return [(str(data.train_file), 1.0)] if data.train_file else []


def _share(value: float) -> str:
    return f"{round(value, 4):g}"


def _kind(path: str) -> str:
    """What a data file holds, as lorawiz mix tells kinds apart: plain text, chat data or preference pairs; "data"
    when it cannot be read here (the mix step will say why)."""
    from lorawiz.data.convert import resolve_shape
    from lorawiz.data.formats import ConvertOptions
    from lorawiz.data.mix import KIND_NAMES

    if path in (TRAIN_PLACEHOLDER, GENERAL_PLACEHOLDER):
        return "data"
    try:
        shape = resolve_shape(data_path(path), ConvertOptions(preference=True))[0]
    except (LorawizError, OSError):
        return "data"
    return KIND_NAMES.get(shape, KIND_NAMES["messages"])


def _same_kind(one: str, other: str) -> bool:
    kinds = {_kind(one), _kind(other)}
    return len(kinds) == 1 or "data" in kinds
