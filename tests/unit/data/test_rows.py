"""Canonical rows (lorawiz/data/rows.py): the hold-out split."""

from __future__ import annotations

from lorawiz.data.rows import holdout_split


def test_holdout_split_is_deterministic_and_keeps_duplicates_together():
    rows = [{"messages": [{"role": "user", "content": f"q{i % 40}"}, {"role": "assistant", "content": "a"}]}
            for i in range(100)]
    train, val = holdout_split(rows, 0.2, seed=3)
    assert (train, val) == holdout_split(rows, 0.2, seed=3)
    assert len(train) + len(val) == 100 and 0 < len(val) <= 20
    assert not {r["messages"][0]["content"] for r in train} & {r["messages"][0]["content"] for r in val}
