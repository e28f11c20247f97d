"""Rounding shares to whole rows (lorawiz/data/shares.py): sums kept, every count within one of its quota."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from lorawiz.data.shares import largest_remainder, round_table


@given(st.integers(0, 10_000), st.lists(st.floats(0.01, 100), min_size=1, max_size=8))
def test_largest_remainder_keeps_the_total_and_each_quota(total, weights):
    counts = largest_remainder(total, weights)
    assert sum(counts) == total
    weight_sum = sum(Fraction(w) for w in weights)
    for count, weight in zip(counts, weights, strict=True):
        assert abs(count - Fraction(weight) * total / weight_sum) < 1


@given(st.lists(st.integers(0, 60), min_size=1, max_size=15), st.data())
def test_round_table_keeps_row_and_column_sums(class_sizes, data):
    total = sum(class_sizes)
    val = data.draw(st.integers(0, total))
    test = data.draw(st.integers(0, total - val))
    sides = (total - val - test, val, test)
    quotas = [[Fraction(n * s, total) if total else Fraction(0) for s in sides] for n in class_sizes]
    counts = round_table(quotas)
    for n, row, quota in zip(class_sizes, counts, quotas, strict=True):
        assert sum(row) == n
        assert all(abs(c - q) < 1 for c, q in zip(row, quota, strict=True))
    for j, side in enumerate(sides):
        assert sum(row[j] for row in counts) == side
