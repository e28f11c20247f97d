"""`lorawiz config show`: the fully resolved configuration and where every value came from."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from lorawiz.cli import _options as opt
from lorawiz.cli._funnel import funnel

app = typer.Typer(help="Inspect configurations.", no_args_is_help=True, rich_markup_mode=None)


@app.command("show")
@opt.every_knob_as_flag
@funnel
def show(
    config: opt.ConfigArg = None,
    preset: opt.PresetOpt = None,
    set_: opt.SetOpt = None,
    as_json: opt.JsonOpt = False,
    as_format: Annotated[str | None, typer.Option("--as", metavar="lorawiz", help="Print CONFIG (an Axolotl config, "
                                                  "a flat --config_file JSON) as the equivalent lorawiz config: "
                                                  "what it sets, each key with the line it came from.",
                                                  show_default=False)] = None,
    model_name_or_path: opt.ModelOpt = None,
    train_file: opt.TrainFileOpt = None,
    validation_file: opt.ValidationFileOpt = None,
    task: opt.TaskOpt = None,
    output_dir: opt.OutputDirOpt = None,
    max_seq_length: opt.MaxSeqLengthOpt = None,
    lora_r: opt.LoraROpt = None,
    lora_alpha: opt.LoraAlphaOpt = None,
    lora_dropout: opt.LoraDropoutOpt = None,
    learning_rate: opt.LearningRateOpt = None,
    num_train_epochs: opt.EpochsOpt = None,
    max_steps: opt.MaxStepsOpt = None,
    per_device_train_batch_size: opt.BatchSizeOpt = None,
    gradient_accumulation_steps: opt.GradAccumOpt = None,
    warmup_ratio: opt.WarmupRatioOpt = None,
    warmup_steps: opt.WarmupStepsOpt = None,
    seed: opt.SeedOpt = None,
    early_stopping_patience: opt.PatienceOpt = None,
    load_in_4bit: opt.LoadIn4bitOpt = None,
    bf16: opt.Bf16Opt = None,
    fp16: opt.Fp16Opt = None,
    gradient_checkpointing: opt.GradCkptOpt = None,
    packing: opt.PackingOpt = None,
    cache_dir: opt.CacheDirOpt = None,
    config_file: opt.ConfigFileOpt = None,
    **knobs: Any,
) -> None:
    """Show the resolved configuration with the source of every value.

    Precedence, lowest first: built-in defaults < the recommender < --preset < CONFIG file < --set <
    typed flags. "auto" means nobody set the value, so the recommender picks it for your hardware and
    data when you plan or train (`lorawiz plan` shows its choices).

    \b
    Examples:
      lorawiz config show --preset standard
      lorawiz config show configs/default.json --learning_rate 3e-4 --lora_r 64
      lorawiz config show axolotl.yml --as lorawiz > lorawiz.yaml
      lorawiz config show run.yaml --set lora.lora_dropout=0.1 --json
    """
    from lorawiz.config.resolve import resolve_config

    path = opt.config_path(config, config_file)
    if as_format is not None:
        _print_as_lorawiz(path, as_format)
        return
    resolved = resolve_config(
        path,
        preset=preset,
        set_items=set_ or (),
        flags=opt.typed_flags(locals()),
        flag_names=opt.flag_spellings(),
    )
    if as_json:
        sources = {name: {"kind": s.kind, "label": s.label, "where": s.where} for name, s in resolved.sources.items()}
        typer.echo(json.dumps({"config": resolved.as_dict(), "sources": sources}, indent=2, allow_nan=False))
        return
    from lorawiz.console import get_console, is_plain
    from lorawiz.views.config import render_config

    get_console().print(render_config(resolved, is_plain()))


def _print_as_lorawiz(path: Any, as_format: str) -> None:
    """What the file sets, validated, as a sectioned lorawiz config on stdout."""
    from lorawiz.config.files import config_text, read_config_file
    from lorawiz.config.layers import defaults_layer
    from lorawiz.config.resolve import resolve_layers
    from lorawiz.errors import LorawizError

    if as_format != "lorawiz":
        raise LorawizError(f"--as {as_format}: lorawiz prints only its own format.", hint="Use --as lorawiz.")
    if path is None:
        example = "lorawiz config show axolotl.yml --as lorawiz"
        raise LorawizError("--as lorawiz needs a config file to translate.", hint=f"For example: {example}")
    layer = read_config_file(path)
    resolve_layers([defaults_layer(), layer])  # every problem of the file, reported as train would
    comments = {name: f"from {source.where}" for name, source in layer.sources.items()}
    header = f"# Translated from {path} by `lorawiz config show --as lorawiz`: a lorawiz config file."
    typer.echo(config_text(layer.values, header, comments), nl=False)
