"""The `lorawiz` command line: a Typer app with one module per command.

Only typer is imported here; each command imports what it needs when it runs, so that `--help` and tab
completion stay fast (tests/cli/test_imports.py holds that line).
"""

from __future__ import annotations

from typing import Annotated

import typer

from lorawiz import __version__
from lorawiz.cli import completion, config, export, presets
from lorawiz.cli.chat import chat_command
from lorawiz.cli.demo import demo_command
from lorawiz.cli.doctor import doctor_command
from lorawiz.cli.eval import eval_command
from lorawiz.cli.format import format_command
from lorawiz.cli.init import init_command
from lorawiz.cli.inspect import inspect_command
from lorawiz.cli.lr_find import lr_find_command
from lorawiz.cli.merge import merge_command
from lorawiz.cli.mix import mix_command
from lorawiz.cli.plan import plan_command
from lorawiz.cli.push import push_command
from lorawiz.cli.report import report_command
from lorawiz.cli.split import split_command
from lorawiz.cli.train import train_command

app = typer.Typer(
    name="lorawiz",
    help="Fine-tune open LLMs with LoRA or QLoRA without guessing: presets, layered configs, "
    "hardware-aware plans.",
    no_args_is_help=True,
    rich_markup_mode=None,  # plain click help: rich's help formatter alone costs ~0.12 s at start-up
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"lorawiz {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", "-V", help="Print the version and exit.",
                                          callback=_print_version, is_eager=True)] = False,
    plain: Annotated[bool, typer.Option("--plain", help="Plain text output: no colour, no live display.")] = False,
) -> None:
    """lorawiz: from a GPU, a base model and some data to a trained LoRA adapter."""
    if plain:
        from lorawiz.console import set_plain

        set_plain(True)


# In the order of the journey: set up, try, train; then data tools; then after training; then helpers.
app.command("init")(init_command)
app.command("demo")(demo_command)
app.command("plan")(plan_command)
app.command("lr-find")(lr_find_command)
app.command("train")(train_command)
app.command("doctor")(doctor_command)
app.command("format")(format_command)
app.command("split")(split_command)
app.command("mix")(mix_command)
app.command("inspect")(inspect_command)
app.command("merge")(merge_command)
app.add_typer(export.app, name="export")
app.command("push")(push_command)
app.command("eval")(eval_command)
app.command("report")(report_command)
app.command("chat")(chat_command)
app.add_typer(presets.app, name="presets")
app.add_typer(config.app, name="config")
app.command("completion")(completion.completion)


OPTIONAL_VALUE = {"--resume": "auto"}  # `--resume` alone means `--resume auto` (click has no optional values)


def with_optional_values(argv: list[str]) -> list[str]:
    """Give a value-less optional-value flag its implied value, so that it never swallows the next option."""
    out = []
    for i, arg in enumerate(argv):
        out.append(arg)
        if arg in OPTIONAL_VALUE and (i + 1 == len(argv) or argv[i + 1].startswith("-")):
            out.append(OPTIONAL_VALUE[arg])
    return out


def main() -> None:
    """Console-script entry point."""
    import sys

    app(args=with_optional_values(sys.argv[1:]), prog_name="lorawiz")
