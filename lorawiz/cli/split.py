"""`lorawiz split`: deterministic train / validation / test files with no duplicate on two sides."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lorawiz.cli._funnel import funnel, reporting_outputs
from lorawiz.errors import LorawizError


@funnel
def split_command(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="JSONL, JSON array, CSV/TSV or Parquet file.")],
    train_out: Annotated[Path, typer.Option("--train-out", help="Where to write the training rows (JSONL).")],
    val_out: Annotated[Path, typer.Option("--val-out", help="Where to write the validation rows (JSONL).")],
    test_out: Annotated[Path | None, typer.Option("--test-out", help="Where to write the test rows (JSONL); "
                                                  "needs --test-ratio or --test-size.")] = None,
    val_ratio: Annotated[float | None, typer.Option("--val-ratio", help="Share of rows for validation "
                                                    "[default: 0.1 unless --val-size].")] = None,
    val_size: Annotated[int | None, typer.Option("--val-size", help="Rows for validation (not a ratio).")] = None,
    test_ratio: Annotated[float | None, typer.Option("--test-ratio", help="Share of rows for the test file.")] = None,
    test_size: Annotated[int | None, typer.Option("--test-size", help="Rows for the test file.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Same seed and input, same split.")] = 42,
    stratify: Annotated[str | None, typer.Option(
        "--stratify", metavar="label|FIELD", help='Keep each class\'s share on every side; "label" is the label '
        "field, or a chat row's final answer.")] = None,
    dedupe: Annotated[bool, typer.Option("--dedupe", help="Drop rows equal to an earlier one, exactly or up to "
                                         "case and whitespace.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing output files "
                                            "(never a folder or an input).")] = False,
) -> None:
    """Split a dataset into training, validation and (optionally) test files.

    The same seed and input always give the same split. Rows that are equal up to case and whitespace
    always land on the same side, so no duplicate leaks from training into evaluation; --dedupe drops
    them instead. Rows keep their input order within each file, and nothing is written unless all
    outputs are complete.

    \b
    Examples:
      lorawiz split train.jsonl --train-out t.jsonl --val-out v.jsonl
      lorawiz split data.jsonl --train-out t.jsonl --val-out v.jsonl --test-out x.jsonl --test-ratio 0.1 --dedupe
      lorawiz split tickets.jsonl --train-out t.jsonl --val-out v.jsonl --val-size 500 --stratify label
    """
    from lorawiz.data.split import split_file

    sizes = _sizes(val_ratio, val_size, test_ratio, test_size, test_out is not None)
    outputs = {"train": train_out, "val": val_out}
    if test_out is not None:
        outputs["test"] = test_out
    with reporting_outputs(list(outputs.values())):
        report = split_file(input_path, outputs, sizes, seed=seed, stratify=stratify, dedupe=dedupe,
                            overwrite=overwrite)
    _render(report, dedupe)


def _sizes(val_ratio, val_size, test_ratio, test_size, with_test: bool):
    from lorawiz.data.split import SplitSizes

    if val_ratio is not None and val_size is not None:
        raise LorawizError("--val-ratio and --val-size both given.", hint="Give one of them.")
    if test_ratio is not None and test_size is not None:
        raise LorawizError("--test-ratio and --test-size both given.", hint="Give one of them.")
    for flag, ratio in (("--val-ratio", val_ratio), ("--test-ratio", test_ratio)):
        if ratio is not None and not 0 < ratio < 1:
            raise LorawizError(f"{flag} {ratio}: must be between 0 and 1.", hint=f"For example {flag} 0.1.")
    for flag, size in (("--val-size", val_size), ("--test-size", test_size)):
        if size is not None and size < 1:
            raise LorawizError(f"{flag} {size}: must be at least 1.", hint=f"For example {flag} 500.")
    if with_test and test_ratio is None and test_size is None:
        raise LorawizError("--test-out needs a size for the test file.", hint="Add --test-ratio 0.1 or --test-size N.")
    if not with_test and (test_ratio is not None or test_size is not None):
        raise LorawizError("--test-ratio/--test-size given without --test-out.",
                           hint="Add --test-out FILE, or drop the test size.")
    if val_ratio is None and val_size is None:
        val_ratio = 0.1
    if (val_ratio or 0) + (test_ratio or 0) >= 1:
        raise LorawizError(f"--val-ratio {val_ratio} and --test-ratio {test_ratio} leave nothing to train on.",
                           hint="Keep their sum below 1.")
    return SplitSizes(val_ratio=val_ratio, val_size=val_size, test_ratio=test_ratio, test_size=test_size)


def _render(report, dedupe: bool) -> None:
    from lorawiz.console import print_table, say

    kept = report.rows_read - report.removed
    if report.pairs:
        say(f"{report.pairs} preference pairs: {report.duplicates} share their prompt with an earlier pair, each "
            "kept on the same side as it" if report.duplicates else f"{report.pairs} preference pairs, each prompt "
                                                                     "once")
    elif report.duplicates:
        what = (f"{report.duplicates} duplicate rows ({report.identical} identical, {report.near} differing only "
                "in case or whitespace)")
        say(f"found {what}: " + ("removed" if dedupe else "each kept on the same side as its first copy"))
    else:
        say("found no duplicate rows")
    for side, count in report.counts.items():
        share = count / kept if kept else 0.0
        say(f"{side}: {count} rows ({share:.1%}) -> {report.outputs[side]}")
    if report.classes:
        sides = list(report.counts)
        rows = [[name, *(counts[side] for side in sides), sum(counts.values())]
                for name, counts in report.classes.items()]
        print_table(["class", *sides, "all"], rows, title="rows per class")
