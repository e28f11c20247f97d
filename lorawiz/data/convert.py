"""`lorawiz format` as a library call: any supported shape in, canonical chat JSONL out, nothing lost.

Bad rows fail the whole run by default (one summary line per kind of problem, no output written); with
skip_bad they go to a rejects file with their line number and reason.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorawiz.data.formats import (
    PREFERENCE,
    SHAPES,
    ConvertOptions,
    PreferenceData,
    RowProblem,
    convert_row,
    detect_shape,
)
from lorawiz.data.preference import convert_preference, is_preference_row
from lorawiz.data.readers import iter_rows
from lorawiz.data.writers import atomic_output, check_writable, write_jsonl_line
from lorawiz.errors import LorawizError, Problem, ProblemsError

SAMPLE_ROWS = 200  # rows read to detect the shape
SHOWN_LINES = 5  # line numbers listed per kind of problem


@dataclass
class FormatReport:
    """What a format run did: the shape and why, rows read and written, rejects by kind, the label set."""

    shape: str
    reason: str
    rows_read: int = 0
    rows_written: int = 0
    rejected: Counter = field(default_factory=Counter)
    reject_lines: dict[str, list[int]] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    output: Path | None = None
    rejects_path: Path | None = None
    meta_path: Path | None = None

    def note(self, line: int, problem: RowProblem) -> None:
        self.rejected[problem.kind] += 1
        lines = self.reject_lines.setdefault(problem.kind, [])
        if len(lines) < SHOWN_LINES:
            lines.append(line)

    def problem_lines(self) -> list[Problem]:
        found = []
        for kind, count in self.rejected.most_common():
            lines = ", ".join(map(str, self.reject_lines[kind]))
            more = ", ..." if count > len(self.reject_lines[kind]) else ""
            found.append(Problem("", f"{kind}: {count} row{'s' if count > 1 else ''} (line {lines}{more})"))
        return found


@dataclass
class BadRows:
    """Rows that could not be used, grouped by kind with their first line numbers, reported once at the end."""

    count: int = 0
    lines: dict[str, list[int]] = field(default_factory=dict)

    def note(self, line: int, kind: str) -> None:
        self.count += 1
        shown = self.lines.setdefault(kind, [])
        if len(shown) < SHOWN_LINES:
            shown.append(line)

    def raise_if_any(self, source: Path, outcome: str, hint: str) -> None:
        """`source has N bad rows; <outcome>` with one line per kind, as a ProblemsError."""
        if self.count:
            plural = "s" if self.count > 1 else ""
            raise ProblemsError(f"{source} has {self.count} bad row{plural}; {outcome}",
                                [Problem("", f"{kind} (line {', '.join(map(str, lines))})")
                                 for kind, lines in self.lines.items()], hint=hint)


def resolve_shape(source: Path, opts: ConvertOptions) -> tuple[str, str]:
    """The shape to convert from: the one given, or the one detected from the first rows."""
    if opts.shape != "auto":
        if opts.shape == PREFERENCE and not opts.preference:
            raise LorawizError(f"{source}: the preference shape (chosen/rejected pairs) is not one supervised "
                               "fine-tuning uses.", hint="Use a file of conversations or instructions for SFT.")
        if opts.shape not in SHAPES + (PREFERENCE,):
            raise LorawizError(f"--from {opts.shape}: unknown shape.",
                               hint=f"Use one of: auto, {', '.join(SHAPES + (PREFERENCE,))}.")
        return opts.shape, "given with --from"
    sample = [row for _, row in itertools.islice(iter_rows(source), SAMPLE_ROWS) if not isinstance(row, RowProblem)]
    if not sample:
        raise LorawizError(f"{source}: no readable rows to detect the shape from.",
                           hint="Check that the file is not empty and is JSONL, JSON, CSV/TSV or Parquet.")
    try:
        detection = detect_shape(sample, opts)
    except PreferenceData as exc:
        if opts.preference:
            pairs = sum(is_preference_row(row) for row in sample)
            return PREFERENCE, f"{pairs} of the first {len(sample)} rows have chosen and rejected answers"
        raise LorawizError(f"{source}: {exc}.", hint="Use a file of conversations or instructions for SFT.") from exc
    except RowProblem as exc:
        raise LorawizError(f"{source}: {exc.detail}.", hint="`lorawiz format --help` lists the shapes.") from exc
    return detection.shape, detection.reason


def iter_canonical(source: Path, shape: str, opts: ConvertOptions) -> Iterator[tuple[int, dict[str, Any] | RowProblem]]:
    """Every row of `source` converted from `shape` to canonical form, or the RowProblem that stopped it."""
    for line, row in iter_rows(source):
        if isinstance(row, RowProblem):
            yield line, row
            continue
        try:
            yield line, converted_row(row, shape, opts)
        except RowProblem as problem:
            yield line, problem


def converted_row(row: Any, shape: str, opts: ConvertOptions) -> dict[str, Any]:
    """One row in `shape` -> its canonical row: chat or text (lorawiz.data.formats), or a preference pair."""
    if shape == PREFERENCE:
        if not isinstance(row, dict):
            raise RowProblem("not an object", f"expected a JSON object, got {type(row).__name__}")
        return convert_preference(row, opts.system)
    return convert_row(row, shape, opts)


def format_file(source: str | Path, output: str | Path, opts: ConvertOptions | None = None, *,
                skip_bad: bool = False, rejects: str | Path | None = None, overwrite: bool = False) -> FormatReport:
    """Convert `source` to canonical JSONL at `output`, atomically; see the module docstring for bad rows."""
    source, output = Path(source), Path(output)
    opts = opts or ConvertOptions()
    if output.exists() and source.exists() and output.resolve() == source.resolve():
        raise LorawizError(f"{output} is the input file.", hint="Write to another path: the input is never modified.")
    check_writable(output, overwrite, inputs=[source])
    shape, reason = resolve_shape(source, opts)
    report = FormatReport(shape, reason, output=output)
    rejects_path = Path(rejects) if rejects else output.with_name(output.stem + ".rejects.jsonl")
    meta_path = output.with_name(output.stem + ".meta.json")
    if skip_bad:
        if rejects_path.resolve() == output.resolve():
            raise LorawizError(f"--rejects {rejects_path} is also the output.", hint="Give the rejects another path.")
        check_writable(rejects_path, overwrite, flag="--overwrite", inputs=[source])
    if shape == "classification":
        check_writable(meta_path, overwrite, inputs=[source])

    with atomic_output(output, overwrite) as out, _maybe_rejects(rejects_path if skip_bad else None,
                                                                 overwrite) as bad_out:
        for line, row in iter_rows(source):
            report.rows_read += 1
            try:
                if isinstance(row, RowProblem):
                    raise row
                converted = converted_row(row, shape, opts)
            except RowProblem as problem:
                report.note(line, problem)
                if bad_out is not None:
                    write_jsonl_line(bad_out, {"line": line, "reason": str(problem), "row": _jsonable(row)})
                continue
            write_jsonl_line(out, converted)
            report.rows_written += 1
        if report.rejected and not skip_bad:
            bad = sum(report.rejected.values())
            raise ProblemsError(f"{source} has {bad} bad row{'s' if bad > 1 else ''}; nothing was written",
                                report.problem_lines(),
                                hint="Fix those rows, or pass --skip-bad to write the good rows and set the bad "
                                     "ones aside in a rejects file.")
        if report.rows_written == 0:
            raise LorawizError(f"{source}: no usable rows; nothing was written.",
                               hint="Check --from and the field names (--text-field, --label-field).")
    if skip_bad and report.rejected:
        report.rejects_path = rejects_path
    elif skip_bad:
        rejects_path.unlink(missing_ok=True)  # an empty rejects file would only confuse
    if shape == "classification":
        report.labels = dict(sorted(opts.seen_labels.items()))
        with atomic_output(meta_path, overwrite=True) as meta:
            json.dump({"shape": shape, "source": str(source), "rows": report.rows_written,
                       "labels": list(opts.labels) if opts.labels else list(report.labels),
                       "label_counts": report.labels}, meta, indent=2)
        report.meta_path = meta_path
    return report


def _maybe_rejects(path: Path | None, overwrite: bool):
    return atomic_output(path, overwrite) if path is not None else contextlib.nullcontext()


def _jsonable(row: Any) -> Any:
    if isinstance(row, RowProblem):
        return None
    try:
        json.dumps(row)
        return row
    except (TypeError, ValueError):
        return repr(row)
