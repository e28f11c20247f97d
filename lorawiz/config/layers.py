"""Where each value comes from: typed sources, layers of values, and the one precedence rule that merges them.

Precedence, lowest first (`PRECEDENCE`): built-in default < derived default < recommender < preset < environment
(`accelerate launch --mixed_precision`) < config file < `--set` < typed flags. A value lorawiz itself changes
afterwards (to run on this machine, after an out-of-memory restart) is an `adjusted` value: it is applied last, and
always printed with its reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from lorawiz.config.schema import EXCLUSIVE_PAIRS, KNOBS, RENAMED_KEYS, SECTION_OF, suggest
from lorawiz.errors import Problem

PRECEDENCE = ("default", "derived", "recommender", "preset", "env", "file", "set", "flag", "adjusted")
USER_KINDS = frozenset({"env", "file", "set", "flag"})


@dataclass(frozen=True)
class Source:
    """Where one value came from.

    `kind` is one of PRECEDENCE; `label` is how `config show` and the plan name it ("preset standard",
    "file run.yaml", "flag --lora-r"); `where` is its precise origin for messages ("run.yaml line 12");
    `reason` says why, for values lorawiz chose (derived, recommender, adjusted).
    """

    kind: str
    label: str
    where: str = ""
    reason: str = ""

    def __post_init__(self) -> None:
        if self.kind not in PRECEDENCE:
            raise ValueError(f"unknown source kind {self.kind!r}")

    @property
    def rank(self) -> int:
        return PRECEDENCE.index(self.kind)

    @property
    def is_default(self) -> bool:
        return self.kind in ("default", "derived")

    @property
    def is_user(self) -> bool:
        return self.kind in USER_KINDS

    @property
    def explained(self) -> str:
        """The label with the reason, for a comment beside the value ("recommender: 900 rows: rank 8")."""
        return f"{self.label}: {self.reason}" if self.reason and self.reason not in self.label else self.label

    def __str__(self) -> str:
        return self.label


DEFAULT = Source("default", "default", "built-in default")


def derived(reason: str) -> Source:
    return Source("derived", f"default ({reason})", "built-in default", reason)


def recommended(reason: str) -> Source:
    return Source("recommender", "recommender", "recommender", reason)


def adjusted(reason: str) -> Source:
    return Source("adjusted", "lorawiz", "lorawiz", reason)


def outranks(new: Source, old: Source) -> bool:
    """Whether a value from `new` replaces one from `old`: the one precedence rule (later kinds win, a tie goes
    to the newer value)."""
    return new.rank >= old.rank


@dataclass
class Layer:
    """Values from one source: defaults, a preset, a config file or the command line.

    `problems` holds keys that could not be placed (unknown, misplaced, duplicated), reported together with the
    value problems at validation.
    """

    source: Source
    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def set(self, name: str, value: Any, where: str, label: str | None = None) -> None:
        self.values[name] = value
        self.sources[name] = replace(self.source, where=where, label=label or self.source.label)


def defaults_layer() -> Layer:
    layer = Layer(DEFAULT)
    for name, knob in KNOBS.items():
        layer.set(name, knob.default, "built-in default")
    return layer


def merge_layers(layers: Iterable[Layer]) -> tuple[dict[str, Any], dict[str, Source]]:
    """Apply layers in precedence order; returns the values and each value's source.

    For the pairs that exclude each other (warmup_ratio / warmup_steps, bf16 / fp16, 4-bit / 8-bit), a higher
    layer that sets one side clears the other side set by a lower layer: a file's warmup_ratio replaces a preset's
    warmup_steps. Both set in one layer is a validation error.
    """
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    for layer in sorted(layers, key=lambda layer: layer.source.rank):
        for name, value in layer.values.items():
            source = layer.sources[name]
            if name in sources and not outranks(source, sources[name]):
                continue
            values[name], sources[name] = value, source
            for a, b in EXCLUSIVE_PAIRS:
                other = b if name == a else a if name == b else None
                if other and _is_set(value) and other not in layer.values and _is_set(values.get(other)):
                    values[other] = KNOBS[other].default
                    sources[other] = derived(f"cleared by {name} from {source.label}")
    return values, sources


def _is_set(value: Any) -> bool:
    return value is not None and value is not False


def parse_set_items(items: Iterable[str]) -> Layer:
    """`--set lora.lora_r=16` or `--set lora_r=16`; values are read as YAML scalars or lists."""
    layer = Layer(Source("set", "--set"))
    problems = layer.problems
    for item in items:
        where = f"--set {item}"
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(Problem(where, "expected KEY=VALUE, e.g. --set lora.lora_r=16"))
            continue
        section, _, name = key.rpartition(".")
        name = RENAMED_KEYS.get(name, name)
        if name not in KNOBS:
            problems.append(Problem(where, unknown_key_message(name, section or None)))
            continue
        if section and section != SECTION_OF[name]:
            problems.append(Problem(where, f'"{name}" belongs in section "{SECTION_OF[name]}", not "{section}". '
                                           f"Use --set {SECTION_OF[name]}.{name}={raw}."))
            continue
        layer.set(name, _parse_scalar(raw), where, label=f"--set {key}")
    return layer


def _parse_scalar(raw: str) -> Any:
    import yaml

    from lorawiz.config import yaml12

    raw = raw.strip()
    if raw == "":
        return None
    try:
        return yaml12.load(raw)
    except yaml.YAMLError:
        return raw


def env_layer(environ: Mapping[str, str]) -> Layer:
    """Settings accelerate passes to the processes it launches: `accelerate launch --mixed_precision fp16` (or its
    config file) as ACCELERATE_MIXED_PRECISION. "no" is accelerate's default when nothing was chosen, so it is read
    as "not set": the recommender (or the config) decides, as without accelerate."""
    layer = Layer(Source("env", "env"))
    precision = environ.get("ACCELERATE_MIXED_PRECISION", "").strip().lower()
    where = f"env ACCELERATE_MIXED_PRECISION={precision}"
    if precision in ("bf16", "fp16"):
        layer.set(precision, True, where, label=where)
    elif precision not in ("", "no"):
        layer.problems.append(Problem(where, f"lorawiz trains in bf16, fp16 or fp32, not {precision}. Set "
                                             "ACCELERATE_MIXED_PRECISION (accelerate's mixed precision) to bf16, fp16 "
                                             "or no."))
    return layer


def flags_layer(flags: Mapping[str, Any], flag_names: Mapping[str, str]) -> Layer:
    """Typed command-line flags (None = not given); `flag_names` maps knob to the flag spelling to show."""
    layer = Layer(Source("flag", "flag"))
    for name, value in flags.items():
        if value is None:
            continue
        flag = flag_names.get(name, "--" + name.replace("_", "-"))
        layer.set(name, value, flag, label=f"flag {flag}")
    return layer


def unknown_key_message(key: str, section: str | None) -> str:
    guess = suggest(key, KNOBS)
    scope = f' in section "{section}"' if section else ""
    text = f'unknown key "{key}"{scope}.'
    if guess and SECTION_OF[guess] == section:
        text += f' Did you mean "{guess}"?'
    elif guess:
        text += f' Did you mean "{guess}" (section "{SECTION_OF[guess]}")?'
    else:
        text += " `lorawiz config show` lists every key."
    return text
