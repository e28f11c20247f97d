"""Options shared by several commands, declared once. Help text comes from the config schema.

Each typed flag's parameter name is the config knob it sets, and it accepts both spellings
(`--learning-rate` and `--learning_rate`), so flat `--config_file` pipelines keep their flags.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from lorawiz.config.schema import KNOBS, knob_help

CONFIG_PANEL = "Configuration"
FLAG_PANEL = "Common settings (override presets and files)"
ALL_PANEL = "Every other config key (same names as the config file, TrainingArguments and --config_file pipelines)"
F = TypeVar("F", bound=Callable[..., Any])


def _flag(name: str, *extra: str, short: str | None = None) -> Any:
    dashed = "--" + name.replace("_", "-")
    names = [dashed, "--" + name] if "_" in name else [dashed]
    names += list(extra)
    if short:
        names.append(short)
    return typer.Option(*names, help=knob_help(name), rich_help_panel=FLAG_PANEL, show_default=False)


def _switch(name: str) -> Any:
    dashed = name.replace("_", "-")
    decls = [f"--{dashed}/--no-{dashed}"]
    if "_" in name:
        decls.append(f"--{name}/--no_{name}")
    return typer.Option(*decls, help=knob_help(name), rich_help_panel=FLAG_PANEL, show_default=False)


def _complete_preset(incomplete: str) -> list[str]:
    from lorawiz.presets import find_presets

    return [name for name in find_presets() if name.startswith(incomplete)]


ConfigArg = Annotated[
    Path | None,
    typer.Argument(help="A lorawiz config file (YAML or JSON, flat or sectioned).", show_default=False),
]
ConfigFileOpt = Annotated[
    Path | None,
    typer.Option("--config_file", "--config-file", metavar="PATH", help="The config file, given as a flag (as "
                 "`train.py --config_file default.json` pipelines pass it); the same as CONFIG.",
                 rich_help_panel=CONFIG_PANEL, show_default=False),
]
PresetOpt = Annotated[
    str | None,
    typer.Option("--preset", "-p", help="A preset name (`lorawiz presets`) or a YAML file.",
                 autocompletion=_complete_preset, rich_help_panel=CONFIG_PANEL, show_default=False),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", metavar="KEY=VALUE",
                 help="Set any config key, e.g. --set lora.lora_r=16 or --set warmup_ratio=0.05. Repeatable.",
                 rich_help_panel=CONFIG_PANEL, show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]

# Typed flags: the parameter name is the knob name.
ModelOpt = Annotated[str | None, _flag("model_name_or_path", "--model", short="-m")]
TrainFileOpt = Annotated[str | None, _flag("train_file", "--data")]
ValidationFileOpt = Annotated[str | None, _flag("validation_file", "--val-data")]
TaskOpt = Annotated[str | None, _flag("task")]
OutputDirOpt = Annotated[str | None, _flag("output_dir", short="-o")]
MaxSeqLengthOpt = Annotated[int | None, _flag("max_seq_length")]
LoraROpt = Annotated[int | None, _flag("lora_r")]
LoraAlphaOpt = Annotated[int | None, _flag("lora_alpha")]
LoraDropoutOpt = Annotated[float | None, _flag("lora_dropout")]
LearningRateOpt = Annotated[float | None, _flag("learning_rate")]
EpochsOpt = Annotated[float | None, _flag("num_train_epochs", "--epochs")]
MaxStepsOpt = Annotated[int | None, _flag("max_steps")]
BatchSizeOpt = Annotated[int | None, _flag("per_device_train_batch_size", "--batch-size")]
GradAccumOpt = Annotated[int | None, _flag("gradient_accumulation_steps")]
WarmupRatioOpt = Annotated[float | None, _flag("warmup_ratio")]
WarmupStepsOpt = Annotated[int | None, _flag("warmup_steps")]
SeedOpt = Annotated[int | None, _flag("seed")]
PatienceOpt = Annotated[int | None, _flag("early_stopping_patience")]
LoadIn4bitOpt = Annotated[bool | None, _switch("load_in_4bit")]
Bf16Opt = Annotated[bool | None, _switch("bf16")]
Fp16Opt = Annotated[bool | None, _switch("fp16")]
GradCkptOpt = Annotated[bool | None, _switch("gradient_checkpointing")]
PackingOpt = Annotated[bool | None, _switch("packing")]
CacheDirOpt = Annotated[str | None, _flag("cache_dir")]
# The typed flags by knob: a command that declares none of them gets them all from every_knob_as_flag (lr-find)
TYPED_OPTIONS = {
    "model_name_or_path": ModelOpt, "train_file": TrainFileOpt, "validation_file": ValidationFileOpt,
    "task": TaskOpt, "output_dir": OutputDirOpt, "max_seq_length": MaxSeqLengthOpt, "lora_r": LoraROpt,
    "lora_alpha": LoraAlphaOpt, "lora_dropout": LoraDropoutOpt, "learning_rate": LearningRateOpt,
    "num_train_epochs": EpochsOpt, "max_steps": MaxStepsOpt, "per_device_train_batch_size": BatchSizeOpt,
    "gradient_accumulation_steps": GradAccumOpt, "warmup_ratio": WarmupRatioOpt, "warmup_steps": WarmupStepsOpt,
    "seed": SeedOpt, "early_stopping_patience": PatienceOpt, "load_in_4bit": LoadIn4bitOpt, "bf16": Bf16Opt,
    "fp16": Fp16Opt, "gradient_checkpointing": GradCkptOpt, "packing": PackingOpt, "cache_dir": CacheDirOpt,
}

TYPED_FLAGS = (
    "model_name_or_path", "train_file", "validation_file", "task", "output_dir", "max_seq_length",
    "lora_r", "lora_alpha", "lora_dropout", "learning_rate", "num_train_epochs", "max_steps",
    "per_device_train_batch_size", "gradient_accumulation_steps", "warmup_ratio", "warmup_steps", "seed",
    "early_stopping_patience", "load_in_4bit", "bf16", "fp16", "gradient_checkpointing", "packing", "cache_dir",
)


def typed_flags(params: dict[str, Any]) -> dict[str, Any]:
    """The typed flags a command received (None = not given), keyed by knob name: its own parameters and the
    ones `every_knob_as_flag` added (in `params["knobs"]`)."""
    given = {name: params[name] for name in TYPED_FLAGS if params.get(name) is not None}
    given.update({name: value for name, value in (params.get("knobs") or {}).items() if value is not None})
    return given


def flag_spellings() -> dict[str, str]:
    """How to name each flag in messages and provenance."""
    short = {"model_name_or_path": "--model", "train_file": "--data", "validation_file": "--val-data"}
    return {name: short.get(name, "--" + name.replace("_", "-")) for name in KNOBS}


def config_path(config: Path | None, config_file: Path | None) -> Path | None:
    """CONFIG or --config_file; both is an error."""
    from lorawiz.errors import LorawizError

    if config and config_file and config != config_file:
        raise LorawizError(f"two config files: {config} and --config_file {config_file}.",
                           hint="Pass one; put further settings in it, or as flags.")
    if config and str(config).lower() in ("true", "false", "yes", "no") and not config.exists():
        raise LorawizError(f'"{config}" after a switch: switches take no value here (TrainingArguments\' '
                           '`--bf16 True` style).', hint="Write --bf16 for true and --no-bf16 for false (any switch: "
                                                         "--packing / --no-packing).")
    return config or config_file


def every_knob_as_flag(command: F) -> F:
    """Give `command` a flag for every config key it does not declare itself (both spellings, `--lora-bias` and
    `--lora_bias`; switches for booleans), in their own help panel. The command takes them as `**knobs`."""
    signature = inspect.signature(command, eval_str=True)  # the commands' annotations are strings (PEP 563)
    declared = set(signature.parameters)
    params = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    typed = not declared & set(TYPED_OPTIONS)  # none declared: the typed spellings (--model, --data) come too
    for name, knob in KNOBS.items():
        if name in declared:
            continue
        annotation = TYPED_OPTIONS[name] if typed and name in TYPED_OPTIONS else _knob_flag(name, knob.type)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation))
    command.__signature__ = signature.replace(parameters=params)  # what typer reads
    return command


def _knob_flag(name: str, kind: Any) -> Any:
    dashed = name.replace("_", "-")
    if kind is bool:
        decls = [f"--{dashed}/--no-{dashed}"] + ([f"--{name}/--no_{name}"] if "_" in name else [])
        return Annotated[bool | None, typer.Option(*decls, help=knob_help(name), rich_help_panel=ALL_PANEL,
                                                   show_default=False)]
    choices = [a for a in typing.get_args(kind) if isinstance(a, str)] if typing.get_origin(kind) is not None else []
    type_ = kind if kind in (int, float) else str
    help_ = knob_help(name)
    if len(choices) > 4:  # a long list reads better in the help than in the metavar
        metavar, help_ = "NAME", f"{help_} One of: {', '.join(choices)}."
    elif choices:
        metavar = "|".join(choices)
    elif typing.get_origin(kind) is dict:
        metavar = "YAML"
    else:
        metavar = {int: "INTEGER", float: "FLOAT", str: "TEXT"}.get(kind, "A,B,...")
    decls = [f"--{dashed}"] + ([f"--{name}"] if "_" in name else [])
    return Annotated[type_ | None, typer.Option(*decls, metavar=metavar, help=help_, rich_help_panel=ALL_PANEL,
                                                show_default=False)]
