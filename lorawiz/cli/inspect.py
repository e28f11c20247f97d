"""`lorawiz inspect`: rows, shape, roles, duplicates and token lengths of a dataset, and a max_seq_length to use."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lorawiz.cli._funnel import funnel
from lorawiz.errors import LorawizError


@funnel
def inspect_command(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="JSONL, JSON array, CSV/TSV or Parquet file.")],
    tokenizer: Annotated[str | None, typer.Option("--tokenizer", metavar="MODEL_OR_PATH", help="Count real tokens "
                                                  "with this model's tokenizer and chat template [default: estimate "
                                                  "from characters].")] = None,
    max_seq_length: Annotated[int | None, typer.Option("--max-seq-length", "--max_seq_length", metavar="N",
                                                       help="Report the rows longer than N tokens [default: the "
                                                            "suggested length].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as one JSON object.")] = False,
) -> None:
    """Describe a dataset: rows, detected shape, turns, roles, empty and duplicate rows, and token lengths.

    Lengths are measured as training will see them (the tokenizer's chat template, then the tokenizer)
    with --tokenizer, or estimated from characters without it. The suggested max_seq_length lies
    between p95 and p99, rounded up to a multiple of 64 and capped by the model's limit.

    \b
    Examples:
      lorawiz inspect train.jsonl
      lorawiz inspect train.jsonl --tokenizer meta-llama/Llama-3.1-8B-Instruct --max-seq-length 2048
      lorawiz inspect train.jsonl --json | jq .suggested_max_seq_length
    """
    from lorawiz.data.stats import inspect_file

    if max_seq_length is not None and max_seq_length < 1:
        raise LorawizError(f"--max-seq-length {max_seq_length}: must be at least 1.", hint="For example 2048.")
    loaded, limit = None, None
    if tokenizer:
        from lorawiz.data.tokens import load_tokenizer, model_limit

        loaded = load_tokenizer(tokenizer, flag="--tokenizer")
        limit = model_limit(loaded, tokenizer)
    from lorawiz.data.formats import ConvertOptions

    # preference pairs are read too: each counts as its prompt and longer answer (what a DPO batch holds)
    stats = inspect_file(input_path, loaded, tokenizer_name=tokenizer, max_seq_length=max_seq_length,
                         model_limit=limit, opts=ConvertOptions(preference=True))
    if as_json:
        import json

        print(json.dumps(stats.as_dict(), indent=2))
        return
    from lorawiz.console import get_console, is_plain
    from lorawiz.views.stats import render_stats

    plain = is_plain()
    get_console().print(render_stats(stats, plain=plain), soft_wrap=plain)
