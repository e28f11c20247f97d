"""YAML read with YAML 1.2's booleans: only true and false (any case) are booleans.

PyYAML follows YAML 1.1, where yes, no, on and off are booleans too, so `eval_strategy: no` (or
`--set eval_strategy=no`) would arrive as False and fail as "must be 'no', 'steps' or 'epoch'". With this
loader they stay strings; the boolean knobs still take them, as pydantic reads "yes"/"no"/"on"/"off" as
booleans.
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class Loader(yaml.SafeLoader):
    """SafeLoader with the YAML 1.2 core schema's booleans."""


Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                             list("tTfF"))


def load(text: str) -> Any:
    return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass


def compose(text: str) -> Any:
    return yaml.compose(text, Loader=Loader)
