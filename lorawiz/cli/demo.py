"""`lorawiz demo`: plan, train and evaluate on built-in data in about a minute on a CPU; nothing to download."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lorawiz.cli._funnel import funnel


@funnel
def demo_command(
    output_dir: Annotated[Path | None, typer.Option("--output-dir", "-o", help="Where the demo run goes [default: "
                                                    "a new outputs/lorawiz-demo-DATE-TIME folder].")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a previous demo or training run in "
                                            "--output-dir (only one lorawiz wrote).")] = False,
) -> None:
    """Run the whole journey on built-ins: plan, train with the dashboard, evaluate before and after.

    The model is builtin:tiny, a 2-layer Llama with random weights (so it starts at chance); the data is
    builtin:triage, emergency incident reports to classify into six categories. It needs no download and
    takes about a minute on a laptop CPU.

    \b
    Examples:
      lorawiz demo
      lorawiz demo --output-dir runs/demo
    """
    from lorawiz.cli._report import reporter
    from lorawiz.console import is_plain, say
    from lorawiz.demo import run_demo

    result = run_demo(output_dir, plain=is_plain(), overwrite=overwrite, reporter=reporter())
    loss = (f"{result.loss_before:.3f} -> {result.loss_after:.3f}" if result.loss_before is not None
            and result.loss_after is not None else "n/a")
    say("")
    say(f"demo finished in {result.seconds:.0f} s")
    say(f"  validation loss     {loss}")
    say(f"  label accuracy      {result.accuracy_before:.1%} -> {result.accuracy_after:.1%}")
    say(f"  adapter             {result.output_dir}/adapter_model.safetensors (PEFT format)")
    say(f"  configuration       {result.output_dir}/lorawiz.yaml")
    say(f"  metrics and log     {result.output_dir}/metrics.jsonl, {result.output_dir}/training.log")
    say(f"  TensorBoard         tensorboard --logdir {result.output_dir}/logs")
