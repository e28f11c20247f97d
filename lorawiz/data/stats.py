"""`lorawiz inspect` as a library call: what is in a dataset, and how long its rows are in tokens.

One streaming pass: each row is converted to canonical form (the same code `format` and `train` use), counted,
keyed for duplicates and, in batches, measured in tokens. Memory holds one length and one key per row.
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lorawiz.data.convert import iter_canonical, resolve_shape
from lorawiz.data.dedupe import DuplicateFinder
from lorawiz.data.formats import ConvertOptions, RowProblem
from lorawiz.data.preference import is_preference_row, longer_conversation
from lorawiz.data.tokens import TokenCounter

BATCH_ROWS = 1000  # rows per tokenizer call: large enough for the Rust side to use every core
PERCENTILES = (50, 90, 95, 99)
SHOWN_LINES = 5
HISTOGRAM_BINS = 16
# Activation memory and step time grow with max_seq_length, so a long tail is cheaper truncated than padded
# for: the suggestion covers p99 unless p99 is more than this many times p95 (our rule of thumb).
TAIL_FACTOR = 1.5
EMPTY_KINDS = ("empty content", "empty conversation")


@dataclass
class LengthStats:
    unit: str  # "tokens" or "estimated tokens"
    method: str
    p50: int = 0
    p90: int = 0
    p95: int = 0
    p99: int = 0
    max: int = 0
    mean: float = 0.0
    total: int = 0


@dataclass
class DataStats:
    file: str
    shape: str
    shape_reason: str
    rows: int = 0  # usable rows
    bad_rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # kind -> {"count", "lines"}
    empty_rows: int = 0
    duplicates: dict[str, int] = field(default_factory=lambda: {"identical": 0, "near": 0})
    turns: dict[str, float] = field(default_factory=dict)  # min, p50, mean, max (chat rows)
    roles: dict[str, int] = field(default_factory=dict)
    rows_with_system: int = 0
    length: LengthStats | None = None
    max_seq_length: int | None = None  # the length truncation is measured at
    max_seq_length_given: bool = False
    truncated_rows: int = 0
    truncated_share: float = 0.0
    suggested_max_seq_length: int = 0
    suggestion_reason: str = ""
    model_limit: int | None = None
    histogram: list[dict[str, int]] = field(default_factory=list)  # {"from", "to", "rows"}; "to" is exclusive

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(sorted_values: list[int] | array, pct: float) -> int:
    """Nearest-rank percentile of an ascending sequence (0 when empty)."""
    if not sorted_values:
        return 0
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return int(sorted_values[rank - 1])


def round_up(value: float, multiple: int = 64) -> int:
    return max(multiple, math.ceil(value / multiple) * multiple)


def suggest_max_seq_length(p95: int, p99: int, limit: int | None) -> tuple[int, str]:
    """A max_seq_length between p95 and p99, rounded up to a multiple of 64, capped by the model's limit."""
    if p99 <= TAIL_FACTOR * p95:
        value, reason = round_up(p99), f"covers 99% of rows (p99 = {p99})"
    else:
        value = round_up(TAIL_FACTOR * p95)
        reason = (f"p99 ({p99}) is over {TAIL_FACTOR}x p95 ({p95}): covers p95 with headroom, rather than pay "
                  "memory and time for the longest 1%")
    if limit is not None and value > limit:
        value, reason = limit, f"{reason}; capped at the model's limit ({limit})"
    return value, reason + ", rounded up to a multiple of 64"


def histogram(sorted_values: list[int] | array, bins: int = HISTOGRAM_BINS, cut: int | None = None
              ) -> list[dict[str, int]]:
    """Equal-width bins from 0 to the max (to p99 when the tail is long, with one last bin for the rest).

    With `cut` (the max_seq_length), a bin edge falls just after it, so each bin is wholly kept or truncated.
    """
    if not sorted_values:
        return []
    top, p99 = int(sorted_values[-1]), percentile(sorted_values, 99)
    upper = p99 if top > 2 * p99 else top
    width = _nice(max(upper, 1) / bins)
    edges = list(range(0, upper + width, width))
    if edges[-1] <= top:
        edges.append(top + 1)
    if cut is not None and edges[0] < cut + 1 < edges[-1] and cut + 1 not in edges:
        bisect.insort(edges, cut + 1)
    out = []
    for lo, hi in zip(edges, edges[1:], strict=False):
        rows = bisect.bisect_left(sorted_values, hi) - bisect.bisect_left(sorted_values, lo)
        out.append({"from": lo, "to": hi, "rows": rows})
    return out


def _nice(raw: float) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is at least `raw`."""
    if raw <= 1:
        return 1
    power = 10 ** math.floor(math.log10(raw))
    return int(next(step * power for step in (1, 2, 5, 10) if step * power >= raw))


def inspect_file(source: str | Path, tokenizer: Any = None, *, tokenizer_name: str | None = None,
                 max_seq_length: int | None = None, model_limit: int | None = None,
                 opts: ConvertOptions | None = None) -> DataStats:
    """Read `source` once and describe it; see the module docstring."""
    source = Path(source)
    opts = opts or ConvertOptions()
    shape, reason = resolve_shape(source, opts)
    stats = DataStats(file=str(source), shape=shape, shape_reason=reason, model_limit=model_limit)
    counter = TokenCounter(tokenizer, tokenizer_name)
    finder = DuplicateFinder()
    lengths = array("q")
    turns = array("l")
    roles: Counter = Counter()
    batch: list[dict[str, Any]] = []
    for line, row in iter_canonical(source, shape, opts):
        if isinstance(row, RowProblem):
            entry = stats.bad_rows.setdefault(row.kind, {"count": 0, "lines": []})
            entry["count"] += 1
            if len(entry["lines"]) < SHOWN_LINES:
                entry["lines"].append(line)
            stats.empty_rows += row.kind in EMPTY_KINDS
            continue
        stats.rows += 1
        finder.add(row)
        if is_preference_row(row):  # a pair counts as its prompt and longer answer
            row = longer_conversation(row)
        messages = row.get("messages")
        if messages is not None:
            turns.append(len(messages))
            roles.update(message["role"] for message in messages)
            stats.rows_with_system += messages[0]["role"] == "system"
        batch.append(row)
        if len(batch) >= BATCH_ROWS:
            lengths.extend(counter.count(batch))
            batch.clear()
    if batch:
        lengths.extend(counter.count(batch))
    stats.duplicates = {"identical": finder.identical, "near": finder.near}
    stats.roles = dict(roles.most_common())
    if turns:
        ordered_turns = sorted(turns)
        stats.turns = {"min": ordered_turns[0], "p50": percentile(ordered_turns, 50),
                       "mean": round(sum(ordered_turns) / len(ordered_turns), 2), "max": ordered_turns[-1]}
    _lengths(stats, sorted(lengths), counter.estimate, counter.method, max_seq_length)
    return stats


def stats_from_lengths(source: str | Path, shape: str, lengths: Any, method: str, *, model_limit: int | None = None,
                       max_seq_length: int | None = None) -> DataStats:
    """The length statistics of rows already tokenised (a numpy array of exact token counts, one per row)."""
    import numpy as np

    ordered = array("q")
    ordered.frombytes(np.sort(np.asarray(lengths, dtype=np.int64)).tobytes())
    stats = DataStats(file=str(source), shape=shape, shape_reason="", rows=len(ordered), model_limit=model_limit)
    _lengths(stats, ordered, False, method, max_seq_length)
    return stats


def _lengths(stats: DataStats, ordered: list[int] | array, estimate: bool, method: str,
             max_seq_length: int | None) -> None:
    length = LengthStats(unit="estimated tokens" if estimate else "tokens", method=method)
    if ordered:
        for pct in PERCENTILES:
            setattr(length, f"p{pct}", percentile(ordered, pct))
        length.max, length.total = int(ordered[-1]), sum(ordered)
        length.mean = round(length.total / len(ordered), 1)
    stats.length = length
    stats.suggested_max_seq_length, stats.suggestion_reason = suggest_max_seq_length(
        length.p95, length.p99, stats.model_limit)
    stats.max_seq_length_given = max_seq_length is not None
    stats.max_seq_length = max_seq_length if max_seq_length is not None else stats.suggested_max_seq_length
    stats.truncated_rows = len(ordered) - bisect.bisect_right(ordered, stats.max_seq_length)
    stats.truncated_share = stats.truncated_rows / len(ordered) if ordered else 0.0
    stats.histogram = histogram(ordered, cut=stats.max_seq_length)
