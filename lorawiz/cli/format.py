"""`lorawiz format`: any common dataset shape in, clean canonical chat JSONL out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lorawiz.cli._funnel import funnel, reporting_outputs
from lorawiz.data.formats import PREFERENCE, SHAPES  # stdlib-only module: cheap at start-up

SHAPE_CHOICES = "|".join(("auto", *SHAPES, PREFERENCE))


@funnel
def format_command(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="JSONL, JSON array, CSV/TSV or Parquet file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the canonical JSONL.")],
    shape: Annotated[str, typer.Option("--from", metavar=SHAPE_CHOICES,
                                       help="The input's shape; auto detects it and says why.")] = "auto",
    system: Annotated[str | None, typer.Option("--system", help="System prompt for rows that have none.")] = None,
    text_field: Annotated[str | None, typer.Option("--text-field", help="Field holding the text.")] = None,
    label_field: Annotated[str | None, typer.Option("--label-field", help="Field holding the class label.")] = None,
    labels: Annotated[str | None, typer.Option(
        "--labels", metavar="a,b,c", help="The allowed labels (classification); others are bad rows.")] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Write the good rows; set bad ones aside.")] = False,
    rejects: Annotated[Path | None, typer.Option("--rejects", help="Rejects file for --skip-bad "
                                                 "(default: OUTPUT's name + .rejects.jsonl).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing output files "
                                            "(never a folder or an input).")] = False,
) -> None:
    """Convert a dataset to canonical chat JSONL ({"messages": [...]} rows, or {"text": ...} for plain text).

    Preference data (chosen/rejected pairs: whole conversations, prompt + answers as UltraFeedback and TRL
    have them, LLaMA-Factory's ShareGPT pairs, orca_dpo_pairs' question/chosen/rejected) becomes TRL's
    conversational preference rows: {"prompt": [...], "chosen": [...], "rejected": [...]}.

    Every row is checked (valid JSON and UTF-8, required fields, non-empty turns, role order, an assistant
    answer last). By default any bad row fails the command with a summary and writes nothing; --skip-bad
    writes the good rows and puts the bad ones, with line numbers and reasons, in a rejects file.
    The input is never modified, and the output appears only when complete.

    \b
    Examples:
      lorawiz format alpaca_data.json -o train.jsonl
      lorawiz format tickets.csv -o train.jsonl --from classification --text-field body --label-field team
      lorawiz format raw.jsonl -o clean.jsonl --skip-bad --rejects bad.jsonl
      lorawiz format dpo_en_demo.json -o pairs.jsonl
    """
    from lorawiz.console import say
    from lorawiz.data.convert import format_file
    from lorawiz.data.formats import ConvertOptions

    opts = ConvertOptions(shape=shape, system=system, text_field=text_field, label_field=label_field,
                          labels=tuple(x.strip() for x in labels.split(",") if x.strip()) if labels else None,
                          preference=True)
    side_files = [rejects or output.with_name(output.stem + ".rejects.jsonl"),  # the names format_file gives them
                  output.with_name(output.stem + ".meta.json")]
    with reporting_outputs([output], maybe=side_files):
        report = format_file(input_path, output, opts, skip_bad=skip_bad, rejects=rejects, overwrite=overwrite)
    say(f"shape: {report.shape} ({report.reason})")
    say(f"wrote {report.rows_written} of {report.rows_read} rows to {report.output}")
    if report.rejected:
        kinds = ", ".join(f"{kind}: {count}" for kind, count in report.rejected.most_common())
        say(f"set aside {sum(report.rejected.values())} bad rows ({kinds}) in {report.rejects_path}")
    if report.meta_path:
        shown = ", ".join(f"{label} ({count})" for label, count in report.labels.items())
        say(f"labels: {shown}; recorded in {report.meta_path}")
