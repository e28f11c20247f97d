"""`lorawiz mix`: blend datasets by share of the output, the remedy for catastrophic forgetting."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lorawiz.cli._funnel import funnel, reporting_outputs


@funnel
def mix_command(
    sources: Annotated[list[str], typer.Argument(metavar="SOURCE[:WEIGHT]...", help="Data files, each with an "
                                                 "optional share of the output (domain.jsonl:0.8).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the mixed chat JSONL.")],
    size: Annotated[int | None, typer.Option("--size", help="Rows in the output [default: the most the shares "
                                             "allow without repeating a row].")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Same seed and sources, same mix and order.")] = 42,
    allow_repeat: Annotated[bool, typer.Option("--allow-repeat", help="Repeat rows of a source that is too small "
                                               "for its share (up-sampling).")] = False,
    tag_source: Annotated[bool, typer.Option("--tag-source", help='Add a "source" field naming each row\'s file.')
                          ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file "
                                            "(never a folder or a source).")] = False,
) -> None:
    """Mix datasets into one shuffled chat JSONL, each source taking its share of the rows.

    Fine-tuning on domain data alone makes a model forget general skills; mixing in some general
    instruction data is the usual remedy. Weights are shares of the output (0.8 and 0.2, or 4 and 1);
    with no weights, sources keep their own sizes. Each source may be in any shape `lorawiz format`
    reads; rows are written in canonical form. Without --size the output is the largest that meets
    the shares without using a row twice.

    \b
    Examples:
      lorawiz mix domain.jsonl:0.8 general.jsonl:0.2 -o mixed.jsonl
      lorawiz mix domain.jsonl:0.7 alpaca_data.json:0.3 -o mixed.jsonl --size 20000 --allow-repeat
      lorawiz mix a.jsonl b.jsonl -o both.jsonl --tag-source
    """
    from lorawiz.console import print_table, say
    from lorawiz.data.mix import mix_files, parse_source

    parsed = [parse_source(spec) for spec in sources]
    with reporting_outputs([output]):
        report = mix_files(parsed, output, size=size, seed=seed, allow_repeat=allow_repeat, tag_source=tag_source,
                           overwrite=overwrite)
    rows = [[s.path, s.shape, s.rows, f"{s.share:.1%}", s.count, f"{s.count / report.total:.1%}",
             f"x{s.repeats}" if s.count > s.rows else "no"] for s in report.sources]
    print_table(["source", "shape", "rows", "target", "taken", "achieved", "repeats"], rows)
    say(f"wrote {report.total} rows to {report.output}")
