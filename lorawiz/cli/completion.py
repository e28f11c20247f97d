"""`lorawiz completion bash|zsh|fish`: print the shell completion script (the files in completions/)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

PROG = "lorawiz"
COMPLETE_VAR = "_LORAWIZ_COMPLETE"


class Shell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def completion_script(shell: str) -> str:
    """The script that makes `shell` complete lorawiz commands, options and preset names."""
    from typer.completion import get_completion_script

    return get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=shell) + "\n"


def completion(shell: Annotated[Shell, typer.Argument(help="The shell to print the script for.")]) -> None:
    """Print a shell completion script.

    \b
    Examples:
      lorawiz completion bash > ~/.local/share/bash-completion/completions/lorawiz
      lorawiz completion zsh > "${fpath[1]}/_lorawiz"
      lorawiz completion fish > ~/.config/fish/completions/lorawiz.fish
    """
    typer.echo(completion_script(shell.value), nl=False)
