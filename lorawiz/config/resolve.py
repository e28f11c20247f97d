"""The one entry point: defaults, preset, file, `--set` and flags merged, validated, into a typed RunConfig with
the source of every value. This object, not a dict of strings, is what plan, train, init and eval receive.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorawiz.config.layers import (
    DEFAULT,
    Layer,
    Source,
    defaults_layer,
    env_layer,
    flags_layer,
    merge_layers,
    parse_set_items,
)
from lorawiz.config.schema import SECTION_OF, SECTIONS
from lorawiz.config.validate import validate


@dataclass(frozen=True)
class ResolvedConfig:
    """A validated configuration (`config`, a frozen pydantic RunConfig: `config.training.seed`) and where each
    value came from. Changing a value means `with_values`, which validates again."""

    config: Any
    sources: dict[str, Source]

    def value(self, name: str) -> Any:
        return getattr(getattr(self.config, SECTION_OF[name]), name)

    def source(self, name: str) -> Source:
        return self.sources.get(name, DEFAULT)

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return self.config.model_dump(mode="json")

    def flat(self) -> dict[str, Any]:
        return {name: self.value(name) for knobs in SECTIONS.values() for name in (k.name for k in knobs)}

    def with_values(self, changes: Mapping[str, tuple[Any, Source]]) -> ResolvedConfig:
        """A new configuration with `changes` (knob -> (value, source)) applied and validated again, so that the
        checks across fields hold for what runs, not only for what was asked."""
        values, sources = self.flat(), dict(self.sources)
        for name, (value, source) in changes.items():
            values[name], sources[name] = value, source
        config, sources = validate(values, sources)
        return ResolvedConfig(config, sources)


def resolve_layers(layers: Iterable[Layer]) -> ResolvedConfig:
    layers = list(layers)
    values, sources = merge_layers(layers)
    config, sources = validate(values, sources, [p for layer in layers for p in layer.problems])
    return ResolvedConfig(config, sources)


def resolve_config(
    config_file: str | Path | None = None,
    *,
    preset: str | None = None,
    set_items: Iterable[str] = (),
    flags: Mapping[str, Any] | None = None,
    flag_names: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ResolvedConfig:
    """Defaults < preset < environment < config file < `--set` < typed flags, validated, with the source of every
    value. `environ` defaults to this process's environment (accelerate's ACCELERATE_MIXED_PRECISION).

    The recommender's values come in later, with the plan (lorawiz.planning.fill_from_plan): above the defaults,
    below the preset and everything the user sets.
    """
    from lorawiz.config.files import read_config_file
    from lorawiz.presets import load_preset

    layers = [defaults_layer()]
    if preset:
        layers.append(load_preset(preset))
    layers.append(env_layer(os.environ if environ is None else environ))
    if config_file:
        layers.append(read_config_file(config_file))
    if set_items:
        layers.append(parse_set_items(set_items))
    layers.append(flags_layer(flags or {}, flag_names or {}))
    return resolve_layers(layers)
