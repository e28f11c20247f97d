"""`lorawiz split` as a library call: train / validation / test files with no row on two sides.

Two passes over the input, so memory holds a key and a group id per row, never the rows. Pass one groups
rows that are the same up to case and whitespace; whole groups are then dealt to the sides, so that a
duplicate can never leak from train into validation. Pass two writes each row to its side, in input order.
A stratified split deals each class separately, with class-by-side counts rounded so that every class's share
of every side is within one row of its share of the whole input.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from lorawiz.data.convert import BadRows
from lorawiz.data.dedupe import DuplicateFinder
from lorawiz.data.formats import RowProblem
from lorawiz.data.preference import convert_preference, is_preference_row
from lorawiz.data.readers import iter_rows
from lorawiz.data.shares import round_table
from lorawiz.data.writers import atomic_output, check_writable, write_jsonl_line
from lorawiz.errors import LorawizError

SIDES = ("train", "val", "test")


@dataclass
class SplitSizes:
    """How big the validation and test sides are: a ratio of the rows, or a row count (one of the two)."""

    val_ratio: float | None = None
    val_size: int | None = None
    test_ratio: float | None = None
    test_size: int | None = None

    def counts(self, total: int) -> tuple[int, int]:
        val = self.val_size if self.val_size is not None else round(total * (self.val_ratio or 0.0))
        test = self.test_size if self.test_size is not None else round(total * (self.test_ratio or 0.0))
        return val, test


@dataclass
class SplitReport:
    rows_read: int = 0
    identical: int = 0  # rows equal to an earlier row
    near: int = 0  # rows equal to an earlier row up to case and whitespace (pairs: the same prompt)
    pairs: int = 0  # preference pairs among the rows: grouped by their prompt
    removed: int = 0  # duplicates dropped (with dedupe)
    counts: dict[str, int] = field(default_factory=dict)
    classes: dict[str, dict[str, int]] = field(default_factory=dict)  # class -> side -> rows (stratified)
    outputs: dict[str, Path] = field(default_factory=dict)

    @property
    def duplicates(self) -> int:
        return self.identical + self.near


def stratum_of(row: Any, field_name: str) -> str:
    """The class of a row: its field `field_name`; for "label" on chat rows, the final assistant answer."""
    if isinstance(row, Mapping) and field_name in row:
        value = row[field_name]
        return value if isinstance(value, str) else str(value)
    if field_name == "label" and isinstance(row, Mapping) and isinstance(row.get("messages"), list) and row["messages"]:
        last = row["messages"][-1]
        if isinstance(last, Mapping) and last.get("role") == "assistant" and isinstance(last.get("content"), str):
            return last["content"]
    raise RowProblem("no class", f'no "{field_name}" field to stratify by')


def split_file(source: str | Path, outputs: Mapping[str, str | Path], sizes: SplitSizes, *, seed: int = 42,
               stratify: str | None = None, dedupe: bool = False, overwrite: bool = False) -> SplitReport:
    """Split `source` into the files in `outputs` (keys train, val and optionally test); see the module doc."""
    source = Path(source)
    paths = {side: Path(path) for side, path in outputs.items()}
    _check_outputs(source, paths, overwrite)
    report = SplitReport()
    finder = DuplicateFinder()
    row_group = array("q")  # row index -> group id
    group_size = array("q")
    group_class = array("q")
    class_ids: dict[str, int] = {}
    bad = BadRows()

    for line, row in iter_rows(source):
        report.rows_read += 1
        try:
            if isinstance(row, RowProblem):
                raise row
            name = stratum_of(row, stratify) if stratify else ""
            key = row
            if is_preference_row(row):  # the pairs of one prompt stay on one side: no prompt on two sides
                key = {"prompt": convert_preference(row)["prompt"]}
                report.pairs += 1
        except RowProblem as problem:
            bad.note(line, f"{problem.kind}: {problem.detail}")
            row_group.append(-1)
            continue
        group, first = finder.add(key)
        row_group.append(group)
        if first:  # a duplicate goes with its first copy, and so counts in that copy's class
            group_size.append(1)
            group_class.append(class_ids.setdefault(name, len(class_ids)))
        else:
            group_size[group] += 1
    hint = "Fix those rows, or clean the file first with lorawiz format --skip-bad."
    if stratify and bad.lines and all(what.startswith("no class") for what in bad.lines):
        hint = f'Check --stratify {stratify}: name a field the rows have, or "label" for chat rows.'
    bad.raise_if_any(source, "they cannot be split, so nothing was written", hint=hint)
    report.identical, report.near = finder.identical, finder.near
    if dedupe and report.pairs:
        raise LorawizError(f"--dedupe: {source} holds preference pairs, and the pairs of one prompt are kept "
                           "together, not dropped as duplicates.",
                           hint="Drop --dedupe: a repeated pair shares its prompt, so it lands on the same side "
                                "and leaks into no other.")

    weights = [1] * finder.group_count if dedupe else list(group_size)
    side_of_group = _deal(weights, group_class, len(class_ids) or 1, sizes, seed, "test" in paths, source)

    class_names = list(class_ids) if stratify else []
    with ExitStack() as stack:
        handles = {side: stack.enter_context(atomic_output(path, overwrite)) for side, path in paths.items()}
        written = bytearray(finder.group_count)
        counts = dict.fromkeys(paths, 0)
        per_class = {name: dict.fromkeys(paths, 0) for name in class_names}
        for index, (_, row) in enumerate(iter_rows(source)):
            if index >= len(row_group):
                raise LorawizError(f"{source} changed while it was being split.", hint="Run the split again.")
            group = row_group[index]
            if dedupe and written[group]:
                report.removed += 1
                continue
            written[group] = 1
            side = SIDES[side_of_group[group]]
            write_jsonl_line(handles[side], row)
            counts[side] += 1
            if stratify:
                per_class[class_names[group_class[group]]][side] += 1
    report.counts, report.classes, report.outputs = counts, per_class, paths
    return report


def _check_outputs(source: Path, paths: dict[str, Path], overwrite: bool) -> None:
    resolved = {side: path.resolve() for side, path in paths.items()}
    if source.exists() and source.resolve() in resolved.values():
        raise LorawizError(f"{source} is the input file and an output.", hint="Write the splits to other paths.")
    if len(set(resolved.values())) < len(resolved):
        raise LorawizError("two outputs name the same file.", hint="Give --train-out, --val-out and --test-out "
                                                                   "different paths.")
    for path in paths.values():
        check_writable(path, overwrite, inputs=[source])


def _deal(weights: list[int], group_class: array, n_classes: int, sizes: SplitSizes, seed: int,
          with_test: bool, source: Path) -> bytearray:
    """Give each group a side (0 train, 1 val, 2 test); whole groups, class by class, shuffled by `seed`."""
    total = sum(weights)
    val_n, test_n = sizes.counts(total)
    if not with_test:
        test_n = 0
    _check_counts(total, val_n, test_n, with_test, source)
    class_totals = [0] * n_classes
    members: list[list[int]] = [[] for _ in range(n_classes)]
    for group, weight in enumerate(weights):
        class_totals[group_class[group]] += weight
        members[group_class[group]].append(group)
    side_totals = (total - val_n - test_n, val_n, test_n)
    quotas = [[Fraction(n * s, total) for s in side_totals] for n in class_totals]
    targets = round_table(quotas)

    rng = random.Random(seed)
    side_of_group = bytearray(len(weights))  # 0 = train
    for cls, groups in enumerate(members):
        rng.shuffle(groups)
        filled = [0, 0, 0]
        for group in groups:
            weight = weights[group]
            side = next((s for s in (2, 1) if filled[s] + weight <= targets[cls][s]), 0)
            side_of_group[group] = side
            filled[side] += weight
    return side_of_group


def _check_counts(total: int, val_n: int, test_n: int, with_test: bool, source: Path) -> None:
    if total == 0:
        raise LorawizError(f"{source} has no rows to split.", hint="Check the file.")
    if val_n < 1:
        raise LorawizError(f"{source} has {total} rows: the validation share rounds to 0 rows.",
                           hint="Raise --val-ratio, or give --val-size N.")
    if with_test and test_n < 1:
        raise LorawizError(f"{source} has {total} rows: the test share rounds to 0 rows.",
                           hint="Raise --test-ratio, or give --test-size N.")
    if val_n + test_n >= total:
        raise LorawizError(f"{source} has {total} rows, too few for {val_n} validation"
                           f"{f' and {test_n} test' if with_test else ''} rows and at least one to train on.",
                           hint="Lower --val-size/--val-ratio (and --test-size/--test-ratio).")

