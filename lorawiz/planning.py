"""Gather what the recommender needs (config, hardware, model, data) and make a plan; used by `plan` and `train`.

This is the impure edge around lorawiz.recommend: it probes NVML, reads the model's config and measures the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorawiz.errors import LorawizError
from lorawiz.recommend import DataFacts, Plan, recommend


@dataclass
class PlanInputs:
    hardware: Any  # HardwareProfile
    model: Any  # ModelFacts
    data: DataFacts | None
    data_stats: Any  # DataStats, when a data file was given
    task: str
    preset: dict[str, Any]
    user: dict[str, tuple[Any, str]]
    preset_name: str | None = None


def split_sources(values: dict[str, Any], sources: dict[str, str]
                  ) -> tuple[dict[str, Any], dict[str, tuple], str | None]:
    """The preset's values and name, and the user's values (file, --set, flags) with where each came from."""
    preset, user, preset_name = {}, {}, None
    for name, source in sources.items():
        if source.startswith("default"):
            continue
        if source.startswith("preset"):
            preset[name] = values[name]
            preset_name = source.removeprefix("preset").strip() or None
        else:
            user[name] = (values[name], source)
    return preset, user, preset_name


def gather(values: dict[str, Any], sources: dict[str, str], hardware_spec: str | None = None) -> PlanInputs:
    """Read the hardware (probed, or --hardware), the model's facts and the data's statistics."""
    from lorawiz.catalog import load_model_facts
    from lorawiz.hardware import parse_hardware_spec, probe

    model_name = values.get("model_name_or_path")
    if not model_name:
        raise LorawizError("no model to plan for.", hint="Pass --model (a hub id such as meta-llama/Llama-3.1-8B, "
                                                         "a catalog alias, or a local folder).")
    hardware = parse_hardware_spec(hardware_spec) if hardware_spec else probe(values.get("output_dir") or ".")
    model = load_model_facts(model_name)
    data, stats = None, None
    if values.get("train_file"):
        from lorawiz.data.stats import inspect_file

        tokenizer = _local_tokenizer(model_name)
        stats = inspect_file(values["train_file"], tokenizer, tokenizer_name=model_name if tokenizer else None,
                             model_limit=model.context_length)
        data = DataFacts.from_stats(stats)
    preset, user, preset_name = split_sources(values, sources)
    return PlanInputs(hardware, model, data, stats, values.get("task") or "chat", preset, user, preset_name)


def _local_tokenizer(model_name: str) -> Any:
    """The model's tokenizer when it is a local folder (exact token counts); None means estimate from characters.

    A hub id is not fetched here: planning must stay quick and work offline.
    """
    folder = Path(model_name).expanduser()
    if not (folder / "tokenizer.json").exists() and not (folder / "tokenizer_config.json").exists():
        return None
    from lorawiz.data.tokens import load_tokenizer

    return load_tokenizer(str(folder))


def make_plan(inputs: PlanInputs) -> Plan:
    return recommend(inputs.hardware, inputs.model, inputs.data, inputs.task, inputs.preset, inputs.user,
                     inputs.preset_name)
