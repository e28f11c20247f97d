"""Canonical rows for training and evaluation: a data file read whole, a hold-out share, a chat row's answer."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
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
    path = Path(path)
    opts = opts or ConvertOptions()
    shape, _ = resolve_shape(path, opts)
    rows, bad = [], BadRows()
    for line, row in iter_canonical(path, shape, opts):
        if isinstance(row, RowProblem):
            bad.note(line, row.kind)
        else:
            rows.append(row)
    bad.raise_if_any(path, stopped, hint=f"Clean it first: lorawiz format {path} -o clean.jsonl "
                                                          "--skip-bad")
    if not rows:
        raise LorawizError(f"{path} has no rows.", hint="Check the file.")
    return rows


def holdout_split(rows: Sequence[Mapping[str, Any]], ratio: float, seed: int) -> tuple[list, list]:
    """A deterministic validation share, with rows equal up to case and whitespace kept on one side."""
    finder = DuplicateFinder()
    groups: dict[int, list[int]] = {}
    for index, row in enumerate(rows):
        group, _ = finder.add(row)
        groups.setdefault(group, []).append(index)
    order = list(groups)
    random.Random(seed).shuffle(order)
    target = max(1, round(len(rows) * ratio))
    val_idx: set[int] = set()
    for group in order:
        if len(val_idx) >= target:
            break
        if len(val_idx) + len(groups[group]) <= target:
            val_idx.update(groups[group])
    if len(val_idx) >= len(rows):
        raise LorawizError(f"{len(rows)} rows are too few to hold out a validation share.",
                           hint="Add rows, give --val-data, or set val_split=0 to train without evaluation.")
    train = [row for i, row in enumerate(rows) if i not in val_idx]
    val = [row for i, row in enumerate(rows) if i in val_idx]
    return train, val


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
