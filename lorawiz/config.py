"""The run configuration: one schema, file loading (YAML/JSON, flat or sectioned), layering and provenance.

Every knob is declared once in `SECTIONS` with its type, default and help text. That table is plain data,
so `--help` reads the help text without importing pydantic; the pydantic models that validate a
configuration are built from the same table on first use (`section_models`).

Precedence, lowest first: built-in defaults < preset < config file < command line (`--set`, then typed flags).
A default of None on an `auto` knob means "the recommender decides" (hardware- and data-dependent values).
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lorawiz.errors import LorawizError, Problem, ProblemsError

TASKS = ("chat", "instruction", "code", "domain", "classification")
OPTIMIZERS = (
    "adamw_torch",
    "adamw_torch_fused",
    "adamw_8bit",
    "adamw_bnb_8bit",
    "paged_adamw_8bit",
    "paged_adamw_32bit",
    "adafactor",
    "sgd",
    "lion_8bit",
    "paged_lion_8bit",
)
SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "reduce_lr_on_plateau",
    "cosine_with_min_lr",
    "warmup_stable_decay",
)
DTYPES = ("auto", "bfloat16", "float16", "float32")


@dataclass(frozen=True)
class Knob:
    """One configuration value: its name, type, default and the trade-off it controls."""

    name: str
    type: Any
    default: Any
    help: str
    auto: bool = False  # None means "the recommender decides"
    bounds: Mapping[str, float] = field(default_factory=dict)  # pydantic constraints: gt, ge, lt, le

    @property
    def nullable(self) -> bool:
        return self.default is None


def _k(name: str, type_: Any, default: Any, help_: str, *, auto: bool = False, **bounds: float) -> Knob:
    return Knob(name, type_, default, help_, auto=auto, bounds=bounds)


SECTIONS: dict[str, tuple[Knob, ...]] = {
    "model": (
        _k("model_name_or_path", str, None, "Base model: a Hugging Face Hub id or a local directory."),
        _k("cache_dir", str, None, "Where downloaded models are cached (default: the Hugging Face cache)."),
        _k("trust_remote_code", bool, False, "Run model code shipped with the checkpoint. Only for repos you trust."),
        _k("load_in_4bit", bool, None, "4-bit QLoRA base: about 4x less weight memory, slightly slower steps.",
           auto=True),
        _k("load_in_8bit", bool, False, "8-bit base: 2x less weight memory than 16-bit, slower than 4-bit QLoRA."),
        _k("bnb_4bit_quant_type", Literal["nf4", "fp4"], "nf4",
           "4-bit data type: nf4 (QLoRA paper, better quality) or fp4."),
        _k("bnb_4bit_compute_dtype", Literal[DTYPES], "auto",
           "Dtype of the 4-bit matmuls: auto follows bf16/fp16, float32 is slowest."),
        _k("bnb_4bit_use_double_quant", bool, True,
           "Quantize the quantization constants too: saves ~0.4 bit/param at no quality cost."),
    ),
    "data": (
        _k("train_file", str, None, "Training data: a JSONL, JSON, CSV/TSV or Parquet file."),
        _k("validation_file", str, None, "Validation data; without it, val_split of the training data is held out."),
        _k("val_split", float, 0.1, "Share of the training data held out for validation when no validation_file.",
           ge=0.0, lt=1.0),
        _k("max_seq_length", int, None, "Longest sequence in tokens: longer rows are truncated; memory grows with it.",
           auto=True, gt=0),
        _k("packing", bool, None, "Pack several short rows into one sequence: faster on short data, no padding.",
           auto=True),
        _k("group_by_length", bool, None, "Batch rows of similar length together: little padding, so faster steps "
           "(measured in bench/train_speed.py); the order stays random between groups.", auto=True),
        _k("assistant_only_loss", bool, True,
           "Learn from the assistant's answers only (true), or from every token, prompts included (false)."),
        _k("system_prompt", str, None, "System prompt added to rows that have none."),
        _k("task", Literal[TASKS], "chat",
           "What the data teaches: chat, instruction, code, domain (adaptation) or classification."),
    ),
    "lora": (
        _k("lora_r", int, None, "LoRA rank: higher = more capacity, memory and risk of overfitting.",
           auto=True, gt=0),
        _k("lora_alpha", int, None, "LoRA scale numerator (update scale = alpha / r); recommender uses 2 x r.",
           auto=True, gt=0),
        _k("lora_dropout", float, None, "Dropout on the LoRA path: higher regularises small datasets.",
           auto=True, ge=0.0, lt=1.0),
        _k("lora_target_modules", Literal["all-linear"] | list[str], "all-linear",
           "Layers that get adapters: all-linear (best quality) or a list such as [q_proj, v_proj]."),
        _k("lora_bias", Literal["none", "all", "lora_only"], "none", "Which biases train: none keeps adapters small."),
        _k("use_dora", bool, False, "DoRA: weight-decomposed LoRA, a little better quality, ~20% slower."),
        _k("use_rslora", bool, False, "rank-stabilised scaling (alpha / sqrt(r)): helps at large ranks."),
        _k("modules_to_save", list[str], None,
           "Extra modules trained in full and saved (e.g. [lm_head, embed_tokens])."),
    ),
    "training": (
        _k("learning_rate", float, None, "Peak learning rate: too high diverges, too low learns slowly.",
           auto=True, gt=0.0),
        _k("num_train_epochs", float, None, "Passes over the training data: more can overfit small datasets.",
           auto=True, gt=0.0),
        _k("max_steps", int, -1, "Stop after this many optimizer steps; -1 trains for num_train_epochs.", ge=-1),
        _k("per_device_train_batch_size", int, None, "Rows per GPU per forward pass: the main lever on memory.",
           auto=True, gt=0),
        _k("per_device_eval_batch_size", int, None, "Rows per GPU per evaluation pass (default: the training one).",
           auto=True, gt=0),
        _k("gradient_accumulation_steps", int, None, "Micro-batches per optimizer step: larger batches, same memory.",
           auto=True, gt=0),
        _k("warmup_ratio", float, None, "Share of steps spent warming up the learning rate (or set warmup_steps).",
           auto=True, ge=0.0, lt=1.0),
        _k("warmup_steps", int, None, "Warm-up steps, instead of warmup_ratio.", ge=0),
        _k("weight_decay", float, 0.0, "L2 penalty on the LoRA weights: a little helps against overfitting.", ge=0.0),
        _k("max_grad_norm", float, 1.0, "Gradient clipping: lower is steadier, 0.3 is the QLoRA paper's value.",
           ge=0.0),
        _k("lr_scheduler_type", Literal[SCHEDULERS], None, "Learning-rate schedule after warm-up.", auto=True),
        _k("seed", int, 42, "Random seed for initialisation, shuffling and the validation split."),
        _k("early_stopping_patience", int, 3,
           "Evaluations without improvement before stopping; 0 disables early stopping.", ge=0),
        _k("early_stopping_threshold", float, 0.0,
           "Relative improvement an evaluation must beat to count as better.", ge=0.0),
    ),
    "optimization": (
        _k("bf16", bool, None, "bfloat16 mixed precision: fast and stable on compute capability >= 8.0.", auto=True),
        _k("fp16", bool, None, "float16 mixed precision for older GPUs; can overflow, needs loss scaling.", auto=True),
        _k("gradient_checkpointing", bool, None, "Recompute activations: much less memory, ~30% slower steps.",
           auto=True),
        _k("optim", Literal[OPTIMIZERS], None,
           "Optimizer: paged_adamw_8bit saves memory on CUDA, adamw_torch elsewhere.", auto=True),
    ),
    "logging": (
        _k("output_dir", str, "outputs/lorawiz-run", "Where the adapter, checkpoints, logs and metrics go."),
        _k("logging_steps", int, None, "Log loss, learning rate and speed every N steps.", auto=True, gt=0),
        _k("eval_strategy", Literal["no", "steps", "epoch"], "steps",
           "When to evaluate: every eval_steps, per epoch, or never."),
        _k("eval_steps", int, None, "Evaluate every N steps (eval_strategy: steps).", auto=True, gt=0),
        _k("save_strategy", Literal["no", "steps", "epoch", "best"], "steps",
           "When to checkpoint: every save_steps, per epoch, at each new best, or never."),
        _k("save_steps", int, None, "Checkpoint every N steps (save_strategy: steps).", auto=True, gt=0),
        _k("save_total_limit", int, 3, "Checkpoints kept on disk (the best one is always kept).", gt=0),
        _k("load_best_model_at_end", bool, True, "Reload the best checkpoint by metric_for_best_model at the end."),
        _k("metric_for_best_model", str, "eval_loss",
           "Metric that picks the best checkpoint and drives early stopping."),
        _k("greater_is_better", bool, None,
           "Whether a larger metric is better (derived from the metric name if unset)."),
        _k("report_to", list[str], ["tensorboard"], "Experiment trackers: tensorboard, wandb, mlflow, or none."),
    ),
    "dataloader": (
        _k("dataloader_num_workers", int, 0, "Background processes that prepare batches; 0 loads in the main process.",
           ge=0),
    ),
}

KNOBS: dict[str, Knob] = {k.name: k for knobs in SECTIONS.values() for k in knobs}
SECTION_OF: dict[str, str] = {k.name: section for section, knobs in SECTIONS.items() for k in knobs}

# Names used by other tools or older transformers versions, mapped to ours for "did you mean".
KNOWN_ALIASES = {
    "evaluation_strategy": "eval_strategy",
    "max_seq_len": "max_seq_length",
    "lora_rank": "lora_r",
    "r": "lora_r",
    "alpha": "lora_alpha",
    "target_modules": "lora_target_modules",
    "model_name": "model_name_or_path",
    "base_model": "model_name_or_path",
    "use_4bit": "load_in_4bit",
    "use_8bit": "load_in_8bit",
    "lr": "learning_rate",
    "epochs": "num_train_epochs",
    "batch_size": "per_device_train_batch_size",
    "micro_batch_size": "per_device_train_batch_size",
    "dataset": "train_file",
    "eval_file": "validation_file",
    "sequence_len": "max_seq_length",
    "lora_target_linear": "lora_target_modules",
}

# Pairs where a higher layer setting one side clears the other side set by a lower layer
# (a file's warmup_ratio replaces a preset's warmup_steps); both set in one layer is an error.
EXCLUSIVE_PAIRS = (("warmup_ratio", "warmup_steps"), ("bf16", "fp16"), ("load_in_4bit", "load_in_8bit"))

_DTYPE_ALIASES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32", "half": "float16", "float": "float32"}
_LIST_KNOBS = ("lora_target_modules", "modules_to_save", "report_to")


def knob_help(name: str) -> str:
    """The help text of one knob, as `--help` shows it."""
    knob = KNOBS[name]
    return f"{knob.help} [{SECTION_OF[name]}.{name}]"


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    """The closest known name, for "did you mean"."""
    if name in KNOWN_ALIASES:
        return KNOWN_ALIASES[name]
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


# ---------------------------------------------------------------------------------------------------------
# Layers and provenance


@dataclass
class Layer:
    """Values from one source: defaults, a preset, a config file or the command line.

    `label` names the source in `config show` ("preset standard", "file run.yaml", "flag --lora-r");
    `where` gives each value's precise origin for error messages (a file line, a flag).
    """

    label: str
    values: dict[str, Any] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # per-value label where it differs from `label`
    problems: list[Problem] = field(default_factory=list)  # keys that could not be placed (unknown, misplaced)

    def set(self, name: str, value: Any, where: str, label: str | None = None) -> None:
        self.values[name] = value
        self.where[name] = where
        if label:
            self.labels[name] = label


def defaults_layer() -> Layer:
    layer = Layer("default")
    for name, knob in KNOBS.items():
        layer.set(name, knob.default, "built-in default")
    return layer


@dataclass
class ResolvedConfig:
    """A validated configuration and where each value came from."""

    config: Any  # a RunConfig pydantic model (built lazily, see section_models)
    sources: dict[str, str]

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return self.config.model_dump(mode="json")

    def flat(self) -> dict[str, Any]:
        return {name: value for section in self.as_dict().values() for name, value in section.items()}


def merge_layers(layers: list[Layer]) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """Apply layers in order; returns the values, each value's source label and its precise origin."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    where: dict[str, str] = {}
    for layer in layers:
        for name, value in layer.values.items():
            values[name] = value
            sources[name] = layer.labels.get(name, layer.label)
            where[name] = layer.where.get(name, layer.label)
            for a, b in EXCLUSIVE_PAIRS:
                other = b if name == a else a if name == b else None
                if other and _is_set(value) and other not in layer.values and _is_set(values.get(other)):
                    values[other] = KNOBS[other].default
                    sources[other] = f"default (cleared by {name} from {sources[name]})"
                    where[other] = where[name]
    return values, sources, where


def _is_set(value: Any) -> bool:
    return value is not None and value is not False


# ---------------------------------------------------------------------------------------------------------
# Reading config files


def read_config_file(path: str | Path) -> Layer:
    """Load a YAML or JSON config, flat (`lora_r: 16`) or sectioned (`lora: {lora_r: 16}`), into a Layer.

    Unknown keys and keys in the wrong section are kept in `layer.problems`, with the line they are on, so
    that they are reported together with the value problems; an unreadable file raises at once.
    """
    path = Path(path)
    text = _read_text(path)
    data, lines = _parse(path, text)
    layer = Layer(f"file {path}")
    problems = layer.problems

    def at(key_path: tuple[str, ...]) -> str:
        line = lines.get(key_path)
        return f"{path} line {line}" if line else str(path)

    for key, value in data.items():
        key = str(key)
        if key in SECTIONS and isinstance(value, dict):
            for sub, sub_value in value.items():
                sub = str(sub)
                where = at((key, sub))
                if sub in KNOBS and SECTION_OF[sub] == key:
                    _add(layer, sub, sub_value, where, problems)
                elif sub in KNOBS:
                    problems.append(Problem(where, f'"{sub}" belongs in section "{SECTION_OF[sub]}", not "{key}". '
                                                   f"Move it under {SECTION_OF[sub]}:."))
                else:
                    problems.append(Problem(where, _unknown_key_message(sub, key)))
        elif key in KNOBS:
            _add(layer, key, value, at((key,)), problems)
        elif key in SECTIONS:
            problems.append(Problem(at((key,)), f'section "{key}" must be a mapping of keys to values.'))
        else:
            problems.append(Problem(at((key,)), _unknown_key_message(key, None)))
    return layer


def _add(layer: Layer, name: str, value: Any, where: str, problems: list[Problem]) -> None:
    if name in layer.values:
        problems.append(Problem(where, f'"{name}" is set twice ({layer.where[name]} and here); keep one.'))
        return
    layer.set(name, value, where)


def _unknown_key_message(key: str, section: str | None) -> str:
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


def _read_text(path: Path) -> str:
    if not path.exists():
        raise LorawizError(f"config file {path} not found.",
                           hint="Pass an existing YAML or JSON file, or leave CONFIG out to use the defaults.")
    if path.is_dir():
        raise LorawizError(f"config file {path} is a directory.", hint="Pass a YAML or JSON file.")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise LorawizError(f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason}).",
                           hint="Save the config as UTF-8.") from exc


def _parse(path: Path, text: str) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    """Parse JSON or YAML and find the line of each top-level and section key."""
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ProblemsError(f"{path} is not valid JSON",
                                [Problem(f"{path} line {exc.lineno} column {exc.colno}", exc.msg)]) from exc
        lines = _json_key_lines(text, data)
    else:
        data, lines = _load_yaml_with_lines(path, text)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProblemsError(f"{path} is not a valid lorawiz config",
                            [Problem(str(path), f"the top level must be a mapping of keys, not {type(data).__name__}")])
    return data, lines


def _json_key_lines(text: str, data: Any) -> dict[tuple[str, ...], int]:
    # json keeps no positions; the first `"key":` after the section's own line is a good-enough anchor.
    lines: dict[tuple[str, ...], int] = {}
    if not isinstance(data, dict):
        return lines

    def line_of(key: str, start: int = 0) -> tuple[int, int]:
        m = re.compile(r'"' + re.escape(key) + r'"\s*:').search(text, start)
        return (text.count("\n", 0, m.start()) + 1, m.start()) if m else (0, start)

    for key, value in data.items():
        line, pos = line_of(str(key))
        if line:
            lines[(str(key),)] = line
        if isinstance(value, dict):
            for sub in value:
                sub_line, _ = line_of(str(sub), pos)
                if sub_line:
                    lines[(str(key), str(sub))] = sub_line
    return lines


def _load_yaml_with_lines(path: Path, text: str) -> tuple[Any, dict[tuple[str, ...], int]]:
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path} line {mark.line + 1} column {mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ProblemsError(f"{path} is not valid YAML", [Problem(where, problem)]) from exc
    lines: dict[tuple[str, ...], int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            lines[(str(key_node.value),)] = key_node.start_mark.line + 1
            if isinstance(value_node, yaml.MappingNode):
                for sub_key, _ in value_node.value:
                    lines[(str(key_node.value), str(sub_key.value))] = sub_key.start_mark.line + 1
    return data, lines


# ---------------------------------------------------------------------------------------------------------
# Command-line layers


def parse_set_items(items: Iterable[str]) -> Layer:
    """`--set lora.lora_r=16` or `--set lora_r=16`; values are read as YAML scalars or lists."""
    layer = Layer("--set")
    problems = layer.problems
    for item in items:
        where = f"--set {item}"
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(Problem(where, "expected KEY=VALUE, e.g. --set lora.lora_r=16"))
            continue
        section, _, name = key.rpartition(".")
        if name not in KNOBS:
            problems.append(Problem(where, _unknown_key_message(name, section or None)))
            continue
        if section and section != SECTION_OF[name]:
            problems.append(Problem(where, f'"{name}" belongs in section "{SECTION_OF[name]}", not "{section}". '
                                           f"Use --set {SECTION_OF[name]}.{name}={raw}."))
            continue
        layer.set(name, _parse_scalar(raw), where, label=f"--set {key}")
    return layer


def _parse_scalar(raw: str) -> Any:
    import yaml

    raw = raw.strip()
    if raw == "":
        return None
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def flags_layer(flags: Mapping[str, Any], flag_names: Mapping[str, str]) -> Layer:
    """Typed command-line flags (None = not given); `flag_names` maps knob to the flag spelling to show."""
    layer = Layer("flag")
    for name, value in flags.items():
        if value is None:
            continue
        flag = flag_names.get(name, "--" + name.replace("_", "-"))
        layer.set(name, value, flag, label=f"flag {flag}")
    return layer


# ---------------------------------------------------------------------------------------------------------
# Validation


@functools.cache
def section_models() -> tuple[dict[str, type], type]:
    """Build the pydantic models from `SECTIONS` (on first use, to keep `--help` free of pydantic)."""
    from typing import Annotated, Optional

    from pydantic import ConfigDict, Field, create_model

    strict = ConfigDict(extra="forbid", validate_assignment=True)
    models: dict[str, type] = {}
    for section, knobs in SECTIONS.items():
        fields: dict[str, Any] = {}
        for knob in knobs:
            type_ = Annotated[knob.type, Field(**knob.bounds)] if knob.bounds else knob.type
            if knob.nullable:
                type_ = Optional[type_]  # noqa: UP045 - a runtime type expression, not an annotation
            if isinstance(knob.default, list):
                default = Field(default_factory=lambda d=knob.default: list(d), description=knob.help)
            else:
                default = Field(knob.default, description=knob.help)
            fields[knob.name] = (type_, default)
        models[section] = create_model(f"{section.title()}Config", __config__=strict, **fields)
    run_fields = {s: (m, Field(default_factory=m)) for s, m in models.items()}
    run_config = create_model("RunConfig", __config__=ConfigDict(extra="forbid"), **run_fields)
    return models, run_config


def normalize(name: str, value: Any) -> Any:
    """Accept the spellings people use: `fp16` for float16, comma lists, `none` for no trackers."""
    if name == "bnb_4bit_compute_dtype" and isinstance(value, str):
        return _DTYPE_ALIASES.get(value.lower(), value.lower())
    if name in _LIST_KNOBS and isinstance(value, str):
        if name == "lora_target_modules" and value == "all-linear":
            return value
        parts = [p.strip() for p in value.strip("[]").split(",") if p.strip()]
        if name == "report_to" and parts in (["none"], []):
            return []
        return parts
    if name == "task" and isinstance(value, str):
        return {"domain-adaptation": "domain", "domain_adaptation": "domain"}.get(value.lower(), value.lower())
    return value


def validate(values: Mapping[str, Any], sources: Mapping[str, str], where: Mapping[str, str],
             problems: Iterable[Problem] = ()) -> ResolvedConfig:
    """Validate merged values section by section, then across fields; raise every problem at once.

    `problems` are earlier findings (unknown keys, ...) to report together with these.
    """
    from pydantic import ValidationError

    models, run_config = section_models()
    values, sources = derive_defaults(values, sources)
    found = list(problems)
    built: dict[str, Any] = {}
    for section, model in models.items():
        data = {k.name: normalize(k.name, values.get(k.name, k.default)) for k in SECTIONS[section]}
        try:
            built[section] = model(**data)
        except ValidationError as exc:
            for err in exc.errors():
                name = str(err["loc"][0])
                found.append(Problem(where.get(name, sources.get(name, "")),
                                     _field_message(section, name, err, values.get(name))))
                data[name] = KNOBS[name].default
            # Defaults stand in for the bad values so that the cross-field checks still run.
            built[section] = model(**data)
    found.extend(_cross_field_problems(built, where))
    if found:
        raise ProblemsError("invalid configuration", found,
                            hint="Fix the values above; `lorawiz config show` prints what each source sets.")
    return ResolvedConfig(run_config(**built), dict(sources))


def derive_defaults(values: Mapping[str, Any], sources: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Let built-in defaults follow what the user chose, instead of reporting a conflict with a default.

    No validation data turns evaluation off; no evaluation turns off best-model loading and early stopping;
    checkpoints follow the evaluation schedule; greater_is_better follows the metric's name.
    """
    values, sources = dict(values), dict(sources)

    def is_default(name: str) -> bool:
        return sources.get(name, "default") == "default"

    def derive(name: str, value: Any, reason: str) -> None:
        values[name] = value
        sources[name] = f"default ({reason})"

    if is_default("eval_strategy") and not values.get("validation_file") and values.get("val_split") == 0:
        derive("eval_strategy", "no", "no validation data")
    evaluating = values.get("eval_strategy") != "no"
    if not evaluating:
        if is_default("load_best_model_at_end"):
            derive("load_best_model_at_end", False, "no evaluation")
        if is_default("early_stopping_patience"):
            derive("early_stopping_patience", 0, "no evaluation")
    elif is_default("save_strategy") and values.get("save_strategy") != values.get("eval_strategy"):
        derive("save_strategy", values.get("eval_strategy"), "follows eval_strategy")
    metric = values.get("metric_for_best_model")
    if values.get("greater_is_better") is None and isinstance(metric, str):
        derive("greater_is_better", "loss" not in metric, f"from {metric}")
    return values, sources


def _field_message(section: str, name: str, err: Mapping[str, Any], raw: Any) -> str:
    text = f"{section}.{name} = {raw!r}: {err['msg'].replace('Input should be', 'must be')}"
    if err["type"] == "literal_error" and isinstance(raw, str):
        allowed = re.findall(r"'([^']+)'", err["msg"])
        guess = difflib.get_close_matches(raw, allowed, n=1, cutoff=0.5)
        if guess:
            text += f'. Did you mean "{guess[0]}"?'
    return text


def _cross_field_problems(cfg: Mapping[str, Any], where: Mapping[str, str]) -> list[Problem]:
    """Checks that no single field can make: conflicting precisions, impossible best-model tracking, ..."""
    opt, train, log, data, model = cfg["optimization"], cfg["training"], cfg["logging"], cfg["data"], cfg["model"]
    found: list[Problem] = []

    def src(*names: str) -> str:
        return ", ".join(f"{n} ({where.get(n, 'built-in default')})" for n in names)

    if opt.bf16 and opt.fp16:
        found.append(Problem(src("bf16", "fp16"), "bf16 and fp16 are both true; keep one "
                                                  "(bf16 on compute capability >= 8.0, fp16 on older GPUs)."))
    if train.warmup_ratio is not None and train.warmup_steps is not None:
        found.append(Problem(src("warmup_ratio", "warmup_steps"),
                             "warmup_ratio and warmup_steps are both set; keep one."))
    if model.load_in_4bit and model.load_in_8bit:
        found.append(Problem(src("load_in_4bit", "load_in_8bit"),
                             "load_in_4bit and load_in_8bit are both true; keep one."))
    if log.load_best_model_at_end:
        if log.eval_strategy == "no":
            found.append(Problem(src("load_best_model_at_end", "eval_strategy"),
                                 "load_best_model_at_end needs evaluations, but eval_strategy is \"no\". "
                                 "Set eval_strategy: steps, or load_best_model_at_end: false."))
        if log.save_strategy == "no":
            found.append(Problem(src("load_best_model_at_end", "save_strategy"),
                                 "load_best_model_at_end needs checkpoints, but save_strategy is \"no\". "
                                 "Set save_strategy to match eval_strategy, or load_best_model_at_end: false."))
        elif log.eval_strategy != "no" and log.save_strategy not in (log.eval_strategy, "best"):
            found.append(Problem(src("eval_strategy", "save_strategy"),
                                 f'load_best_model_at_end needs save_strategy to match eval_strategy '
                                 f'("{log.save_strategy}" vs "{log.eval_strategy}"). Make them the same.'))
        elif (log.eval_strategy == log.save_strategy == "steps" and log.eval_steps and log.save_steps
              and log.save_steps % log.eval_steps):
            found.append(Problem(src("eval_steps", "save_steps"),
                                 f"load_best_model_at_end needs save_steps ({log.save_steps}) to be a multiple of "
                                 f"eval_steps ({log.eval_steps}), so that every checkpoint has a score."))
    if train.early_stopping_patience > 0 and log.eval_strategy == "no":
        found.append(Problem(src("early_stopping_patience", "eval_strategy"),
                             "early stopping needs evaluations, but eval_strategy is \"no\". "
                             "Set eval_strategy: steps, or early_stopping_patience: 0."))
    if log.eval_strategy != "no" and not data.validation_file and data.val_split == 0:
        found.append(Problem(src("eval_strategy", "val_split"),
                             "evaluation is on but there is no validation data: set validation_file, "
                             "val_split > 0, or eval_strategy: no."))
    if log.greater_is_better and "loss" in log.metric_for_best_model:
        found.append(Problem(src("greater_is_better", "metric_for_best_model"),
                             f"greater_is_better is true but {log.metric_for_best_model} is a loss (lower is better)."))
    return found


# ---------------------------------------------------------------------------------------------------------
# The one entry point


def resolve_config(
    config_file: str | Path | None = None,
    *,
    preset: str | None = None,
    set_items: Iterable[str] = (),
    flags: Mapping[str, Any] | None = None,
    flag_names: Mapping[str, str] | None = None,
) -> ResolvedConfig:
    """Defaults < preset < config file < `--set` < typed flags, validated, with the source of every value."""
    from lorawiz import presets as preset_store

    layers = [defaults_layer()]
    if preset:
        layers.append(preset_store.load_preset(preset))
    if config_file:
        layers.append(read_config_file(config_file))
    if set_items:
        layers.append(parse_set_items(set_items))
    layers.append(flags_layer(flags or {}, flag_names or {}))
    values, sources, where = merge_layers(layers)
    return validate(values, sources, where, [p for layer in layers for p in layer.problems])


def format_value(value: Any) -> str:
    """How a value reads in tables and messages: `2e-4`, `true`, `[q_proj, v_proj]`, `-` for unset."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != 0 and abs(value) < 1e-3:
            mantissa, exponent = f"{value:e}".split("e")
            return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)
