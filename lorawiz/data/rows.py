"""Canonical rows for training and evaluation: a data file read whole, counted, or only some of its rows; a hold-out
share; a chat row's answer."""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from lorawiz.data.convert import BadRows, iter_canonical, resolve_shape
from lorawiz.data.dedupe import DuplicateFinder
from lorawiz.data.formats import ConvertOptions, RowProblem
from lorawiz.errors import LorawizError


def read_rows(path: str | Path, opts: ConvertOptions | None = None, stopped: str = "training did not start"
              ) -> list[dict[str, Any]]:
    """Every row of a data file in canonical form; any bad row fails with line numbers (as `lorawiz format`).

    `stopped` says in the error what did not happen because of the bad rows.
    """
    bad = BadRows()
    rows = list(good_rows(path, opts, bad))
    check_rows(path, bad, len(rows), stopped)
    return rows


def count_rows(path: str | Path, opts: ConvertOptions | None = None, stopped: str = "training did not start") -> int:
    """The rows of a data file, counted in one streaming pass that fails on bad rows as read_rows does."""
    bad = BadRows()
    count = sum(1 for _ in good_rows(path, opts, bad))
    check_rows(path, bad, count, stopped)
    return count


def good_rows(path: str | Path, opts: ConvertOptions | None, bad: BadRows) -> Iterator[dict[str, Any]]:
    """The canonical rows of a data file, streamed; each bad row is noted in `bad` (check_rows reports them)."""
    path = Path(path)
    opts = opts or ConvertOptions()
    shape, _ = resolve_shape(path, opts)
    for line, row in iter_canonical(path, shape, opts):
        if isinstance(row, RowProblem):
            bad.note(line, row.kind)
        else:
            yield row


def check_rows(path: str | Path, bad: BadRows, count: int, stopped: str) -> None:
    """Fail on the bad rows good_rows noted (with their line numbers), or on a file without rows."""
    bad.raise_if_any(Path(path), stopped, hint=f"Clean it first: lorawiz format {path} -o clean.jsonl --skip-bad")
    if not count:
        raise LorawizError(f"{path} has no rows.", hint="Check the file.")


def iter_rows_at(path: str | Path, positions: Sequence[int] | None, opts: ConvertOptions | None = None
                 ) -> Iterator[dict[str, Any]]:
    """The canonical rows at `positions` (0-based, ascending; None: every row) of a file count_rows has checked,
    streamed: nothing else is kept."""
    wanted = iter(positions) if positions is not None else None
    target = next(wanted, None) if wanted is not None else 0
    for index, row in enumerate(good_rows(path, opts, BadRows())):
        if target is None:
            return
        if wanted is None or index == target:
            yield row
            if wanted is not None:
                target = next(wanted, None)


def rows_at(path: str | Path, positions: Sequence[int] | None, opts: ConvertOptions | None = None
            ) -> list[dict[str, Any]]:
    """The rows iter_rows_at streams, as a list."""
    return list(iter_rows_at(path, positions, opts))


def holdout_split(rows: Sequence[Mapping[str, Any]], ratio: float, seed: int) -> tuple[list, list]:
    """A deterministic validation share, with rows equal up to case and whitespace kept on one side."""
    finder = DuplicateFinder()
    group_of = [finder.add(row)[0] for row in rows]
    sizes = [0] * finder.group_count
    for group in group_of:
        sizes[group] += 1
    chosen = holdout_groups(sizes, len(rows), ratio, seed)
    train = [row for row, group in zip(rows, group_of, strict=True) if group not in chosen]
    val = [row for row, group in zip(rows, group_of, strict=True) if group in chosen]
    return train, val


def holdout_groups(sizes: Sequence[int], total: int, ratio: float, seed: int) -> set[int]:
    """The groups (numbered in order of first appearance, `sizes[g]` rows each) that make the validation share:
    groups in a seeded random order, each taken whole while it fits the target of round(total * ratio) rows."""
    order = list(range(len(sizes)))
    random.Random(seed).shuffle(order)
    target = max(1, round(total * ratio))
    chosen: set[int] = set()
    held = 0
    for group in order:
        if held >= target:
            break
        if held + sizes[group] <= target:
            chosen.add(group)
            held += sizes[group]
    if held >= total:
        raise LorawizError(f"{total} rows are too few to hold out a validation share.",
                           hint="Add rows, give --val-data, or set val_split=0 to train without evaluation.")
    return chosen


def split_answer(row: Mapping[str, Any], where: str = "row") -> tuple[list[Mapping[str, Any]], str]:
    """The prompt turns of a canonical chat row and its final assistant answer."""
    messages = row.get("messages") if isinstance(row, Mapping) else None
    if not messages or messages[-1].get("role") != "assistant":
        raise LorawizError(f'{where}: "messages" must end with an assistant turn holding the label.',
                           hint="Give canonical chat rows (lorawiz format converts other shapes).")
    return list(messages[:-1]), str(messages[-1].get("content", "")).strip()


def final_answer(row: Mapping[str, Any]) -> str | None:
    """The final assistant turn of a chat row, stripped; None when the row does not end with one."""
    messages = row.get("messages") or []
    if not messages or messages[-1].get("role") != "assistant":
        return None
    return str(messages[-1].get("content") or "").strip()
