"""`lorawiz push`: upload a finished run (the adapter) or a merged model to the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lorawiz.cli._funnel import funnel


@funnel
def push_command(
    folder: Annotated[Path, typer.Argument(metavar="RUN_OR_MERGED", help="A finished run folder (lorawiz train's "
                                           "--output-dir) or a merged model (lorawiz merge's -o).",
                                           show_default=False)],
    repo: Annotated[str, typer.Option("--repo", "--repo-id", "--hub-model-id", metavar="ID",
                                      help="The Hub repository: namespace/name.", show_default=False)],
    private: Annotated[bool, typer.Option("--private/--public", help="Create the repository private (the "
                                          "default) or public; an existing one keeps its visibility.")] = True,
    base_model: Annotated[str | None, typer.Option("--base-model", metavar="ID", help="The base model's Hub id, "
                                                   "for the model card, when the run loaded it from a local "
                                                   "folder.")] = None,
    include_checkpoints: Annotated[bool, typer.Option("--include-checkpoints", help="Upload the checkpoint-N "
                                                      "folders too (optimizer states: large).")] = False,
    include_secrets: Annotated[bool, typer.Option("--include-secrets", help="Upload files that look like "
                                                  "credentials (a token in a text file, a key file) anyway.")
                               ] = False,
    revision: Annotated[str | None, typer.Option("--revision", metavar="BRANCH", help="The branch to commit to "
                                                 "[default: main].")] = None,
    message: Annotated[str | None, typer.Option("--message", "-m", metavar="TEXT", help="The commit message.")
                       ] = None,
) -> None:
    """Push a finished run or a merged model to the Hugging Face Hub, with a model card made for it.

    The card (README.md) is built with huggingface_hub's ModelCard: base_model (a Hub id), library_name,
    pipeline_tag, tags, datasets, the training configuration, the final metrics and every `lorawiz eval`
    result, and how to load it from the repository; the Hub validates it before anything is uploaded. The
    repository is created private unless --public. Checkpoint folders, lock files and pickles stay behind, and a
    folder holding anything that looks like a credential is refused, unless asked. Needs a token with write
    access (`hf auth login` or HF_TOKEN).

    \b
    Examples:
      lorawiz push outputs/my-run --repo you/qwen3-4b-triage-lora
      lorawiz push merged/my-model --repo your-org/triage-7b --public
      lorawiz push outputs/local-base-run --repo you/run --base-model Qwen/Qwen3-4B
    """
    from lorawiz.console import say
    from lorawiz.publish.push import describe, push_folder

    report = push_folder(folder, repo, private=private, include_checkpoints=include_checkpoints,
                         include_secrets=include_secrets, base_model=base_model, revision=revision,
                         message=message, say=say)
    for line in describe(report):
        say(line)
