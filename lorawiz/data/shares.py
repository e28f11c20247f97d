"""Turn fractional shares into whole row counts without drift: each count is its quota rounded down or up.

`largest_remainder` splits one total by weights (the Hamilton method). `round_table` rounds a table of quotas
(classes x split sides) so that every row total and every column total is kept exactly; such a rounding always
exists (Bacharach 1966, "Matrix rounding problems"), and we find it as an integral max flow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction


def largest_remainder(total: int, weights: Sequence[float | Fraction]) -> list[int]:
    """Split `total` into counts proportional to `weights`; each count is floor or ceil of its quota."""
    weight_sum = sum(Fraction(w) for w in weights)
    quotas = [Fraction(w) * total / weight_sum for w in weights]
    counts = [math.floor(q) for q in quotas]
    short = total - sum(counts)
    by_remainder = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in by_remainder[:short]:
        counts[i] += 1
    return counts


def round_table(quotas: Sequence[Sequence[Fraction]]) -> list[list[int]]:
    """Round each quota down or up so that row and column sums (which must be whole numbers) stay the same."""
    counts = [[math.floor(q) for q in row] for row in quotas]
    row_need = [int(sum(row)) - sum(c) for row, c in zip(quotas, counts, strict=True)]
    columns = len(quotas[0]) if quotas else 0
    col_need = [int(sum(row[j] for row in quotas)) - sum(c[j] for c in counts) for j in range(columns)]
    # Bipartite max flow: rows -> columns, one unit per fractional cell. Augment along simple paths.
    can_raise = [[j for j in sorted(range(columns), key=lambda j: -(row[j] - math.floor(row[j])))
                  if row[j] != math.floor(row[j])] for row in quotas]
    for i in range(len(quotas)):
        while row_need[i] > 0:
            path = _augmenting_path(i, can_raise, counts, quotas, col_need)
            if path is None:
                raise ValueError("quotas have no rounding that keeps the sums")  # cannot happen for whole sums
            for row, col, step in path:
                counts[row][col] += step
            row_need[i] -= 1
            col_need[path[-1][1]] -= 1
    return counts


def _augmenting_path(start: int, can_raise: list[list[int]], counts: list[list[int]],
                     quotas: Sequence[Sequence[Fraction]], col_need: list[int]) -> list[tuple[int, int, int]] | None:
    """Raise a cell in row `start`; if its column is full, lower another row's raised cell there and continue."""
    seen_cols: set[int] = set()

    def visit(row: int) -> list[tuple[int, int, int]] | None:
        for col in can_raise[row]:
            if col in seen_cols or counts[row][col] > math.floor(quotas[row][col]):
                continue
            seen_cols.add(col)
            if col_need[col] > 0:
                return [(row, col, 1)]
            for other in range(len(counts)):  # a row whose raised cell in `col` can move elsewhere
                if other != row and counts[other][col] > math.floor(quotas[other][col]):
                    rest = visit(other)
                    if rest is not None:
                        return [(row, col, 1), (other, col, -1), *rest]
        return None

    return visit(start)
