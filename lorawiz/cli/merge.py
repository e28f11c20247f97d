"""`lorawiz merge`: fold a trained adapter into its base model and write a model that loads on its own."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from lorawiz.cli._funnel import funnel, reporting_outputs


@funnel
def merge_command(
    adapter_dir: Annotated[Path | None, typer.Argument(metavar="ADAPTER_DIR", help="The output folder of lorawiz "
                                                       "train (or a checkpoint-N folder).", show_default=False)
                           ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", "--output_dir", "--output-dir",
                                                help="Where to write the merged model (a new folder).",
                                                show_default=False)] = None,
    base: Annotated[str | None, typer.Option("--base", "--base_model", "--base-model", metavar="MODEL",
                                             help="The base model [default: the one named in adapter_config.json]."
                                             )] = None,
    adapter_path: Annotated[Path | None, typer.Option("--adapter_path", "--adapter-path", metavar="PATH",
                                                      help="The adapter, as a flag (as --config_file pipelines' "
                                                           "merge scripts take it); the same as ADAPTER_DIR.",
                                                      show_default=False)] = None,
    dtype: Annotated[str, typer.Option("--dtype", metavar="bf16|fp16|fp32", help="Precision of the merged "
                                       "weights.")] = "bf16",
    max_shard_size: Annotated[str, typer.Option("--max-shard-size", metavar="SIZE", help="Largest weight file, "
                                                "e.g. 5GB.")] = "5GB",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a previous merge output (only a folder "
                                            "lorawiz merge wrote).")] = False,
) -> None:
    """Merge a LoRA adapter into its base model: one model folder that loads with from_pretrained.

    The base is loaded in 16-bit even if the adapter was trained on a 4-bit base. Before writing, the
    merged model's logits are compared with base + adapter on a few inputs; disk space is checked; the
    tokenizer and chat template are copied; the folder appears only when complete. -o is never the
    adapter, a training run or a folder inside or around one.

    \b
    Examples:
      lorawiz merge outputs/my-run -o merged/my-model
      lorawiz merge outputs/my-run/checkpoint-400 -o merged/step400 --dtype fp16 --max-shard-size 2GB
      lorawiz merge --base_model meta-llama/Llama-3.1-8B --adapter_path ./results --output_dir ./merged
    """
    from lorawiz.console import is_plain, say
    from lorawiz.errors import LorawizError
    from lorawiz.libraries import hide_optional_kernel_warning, quiet_libraries
    from lorawiz.merge import merge_adapter

    hide_optional_kernel_warning()
    quiet_libraries(plain=is_plain())

    adapter_dir = _one_adapter(adapter_dir, adapter_path)
    if output is None:
        raise LorawizError("no output folder.", hint="Pass -o DIR (or --output_dir DIR): a new folder for the merged "
                                                     "model.")
    check_shard_size(max_shard_size)
    with reporting_outputs([output]):
        report = merge_adapter(adapter_dir, output, base=base, dtype=dtype, max_shard_size=max_shard_size,
                               overwrite=overwrite, say=say)
    say(f"merged {adapter_dir} into {report.base} ({report.dtype})")
    say(f"check: largest logit difference from base + adapter {report.max_abs_diff:.3g} (tolerance "
        f"{report.tolerance:.3g}) on {report.inputs} inputs")
    size = report.bytes_written
    say(f"wrote {report.output} ({size / 2**30:.2f} GiB)" if size >= 2**30 else
        f"wrote {report.output} ({size / 2**20:.1f} MiB)")
    from lorawiz.serving import describe, vllm_hint

    for line in describe(vllm_hint(report.output)):
        say(line)


def _one_adapter(positional: Path | None, flag: Path | None) -> Path:
    from lorawiz.errors import LorawizError

    if positional and flag and positional != flag:
        raise LorawizError(f"two adapters: {positional} and --adapter_path {flag}.", hint="Pass one.")
    if not (positional or flag):
        raise LorawizError("no adapter to merge.", hint="Pass the run folder: lorawiz merge outputs/my-run -o DIR "
                                                        "(or --adapter_path outputs/my-run).")
    return positional or flag


SHARD_SIZE = re.compile(r"^\s*(\d+(\.\d*)?|\.\d+)\s*(TB|GB|MB|KB)\s*$", re.IGNORECASE)  # huggingface_hub's units


def check_shard_size(text: str) -> None:
    """--max-shard-size as huggingface_hub reads it (a number and TB, GB, MB or KB), checked before any model loads."""
    from lorawiz.errors import LorawizError

    match = SHARD_SIZE.match(text)
    if not match or float(match.group(1)) <= 0:
        raise LorawizError(f"--max-shard-size {text}: not a size.", hint="Give a number and a unit: 5GB, 500MB or "
                                                                         "0.5TB.")
