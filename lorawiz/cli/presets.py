"""`lorawiz presets` and `lorawiz presets show NAME`."""

from __future__ import annotations

from typing import Annotated

import typer

from lorawiz.cli._funnel import funnel
from lorawiz.cli._options import _complete_preset

app = typer.Typer(
    help="List the shipped presets, or show one with its comments.",
    invoke_without_command=True,
    rich_markup_mode=None,
)

# The values shown in the table, in order, with short labels.
KEY_VALUES = (
    ("lora_r", "r"), ("lora_alpha", "alpha"), ("learning_rate", "lr"), ("num_train_epochs", "epochs"),
    ("max_steps", "max_steps"), ("per_device_train_batch_size", "batch"), ("gradient_accumulation_steps", "accum"),
    ("max_seq_length", "seq"), ("load_in_4bit", "4-bit"), ("gradient_checkpointing", "ckpt"),
    ("packing", "packing"), ("early_stopping_patience", "patience"),
)


@app.callback()
@funnel
def list_presets(ctx: typer.Context) -> None:
    """List the presets: the five scenarios, then the named configs of `--config_file` pipelines.

    \b
    Examples:
      lorawiz presets
      lorawiz presets show standard
      lorawiz train --preset memory --model meta-llama/Llama-3.1-8B --data train.jsonl
    """
    if ctx.invoked_subcommand is not None:
        return
    from rich import box
    from rich.table import Table

    from lorawiz.console import get_console, is_plain
    from lorawiz.presets import SCENARIOS, find_presets, load_preset, preset_info

    plain = is_plain()
    table = Table(title="lorawiz presets", title_justify="left", show_lines=not plain,
                  box=None if plain else box.ROUNDED)
    table.add_column("name", style="bold cyan", no_wrap=True)
    table.add_column("kind")
    table.add_column("when to use it", ratio=3)
    table.add_column("key values (the rest: recommender)", ratio=2)
    for name in find_presets():
        info = preset_info(name)
        values = load_preset(name).values
        table.add_row(name, "scenario" if name in SCENARIOS else "config", info.use_when or info.summary,
                      describe_values(values))
    console = get_console()
    console.print(table)
    console.print("Show one with its comments: lorawiz presets show NAME")


def describe_values(values: dict) -> str:
    """A compact summary of what a preset fixes, e.g. `r=32 alpha=32 lr=2e-4 batch=4 accum=4`."""
    from lorawiz.config.schema import format_value

    parts = []
    for key, label in KEY_VALUES:
        if key not in values or values[key] is None:
            continue
        value = values[key]
        if key == "max_steps" and value == -1:
            continue
        if isinstance(value, bool):
            parts.append(label if value else f"no {label}")
        else:
            parts.append(f"{label}={format_value(value)}")
    return " ".join(parts) or "all from the recommender"


@app.command("show")
@funnel
def show(
    name: Annotated[str, typer.Argument(help="Preset name, as listed by `lorawiz presets`.",
                                        autocompletion=_complete_preset)],
) -> None:
    """Print a preset's YAML with its comments.

    \b
    Examples:
      lorawiz presets show default
      lorawiz presets show memory > my-run.yaml
    """
    from lorawiz.console import get_console, is_plain
    from lorawiz.presets import preset_path

    text = preset_path(name).read_text(encoding="utf-8")
    if is_plain():
        typer.echo(text, nl=False)
        return
    from rich.syntax import Syntax

    get_console().print(Syntax(text, "yaml", theme="ansi_dark", background_color="default"))
