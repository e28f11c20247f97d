"""`split` (lorawiz/data/split.py): nothing lost or invented, no duplicate on two sides, deterministic, stratified."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lorawiz.data import split as split_module
from lorawiz.data.dedupe import normalise_text, row_keys
from lorawiz.data.split import SplitSizes, split_file
from lorawiz.errors import LorawizError, ProblemsError

from .conftest import chat, read_jsonl, write_jsonl


def canon(row) -> str:
    return json.dumps(row, sort_keys=True)


def outputs(tmp_path, test=False):
    sides = {"train": tmp_path / "train.jsonl", "val": tmp_path / "val.jsonl"}
    if test:
        sides["test"] = tmp_path / "test.jsonl"
    return sides


def rows_with_duplicates(n: int) -> list[dict]:
    """n rows where every fifth repeats an earlier one exactly and every seventh differs only in case/space."""
    rows = []
    for i in range(n):
        if i % 5 == 4:
            rows.append(rows[i // 2])
        elif i % 7 == 6:
            base = rows[i - 3]["messages"]
            rows.append(chat("  " + base[0]["content"].upper() + " ", base[1]["content"]))
        else:
            rows.append(chat(f"question {i}", f"answer {i % 4}"))
    return rows


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(12, 300), seed=st.integers(0, 10**6), with_test=st.booleans())
def test_split_loses_and_invents_no_rows(tmp_path_factory, n, seed, with_test):
    tmp_path = tmp_path_factory.mktemp("split")
    rows = rows_with_duplicates(n)
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    sizes = SplitSizes(val_ratio=0.2, test_ratio=0.1 if with_test else None)
    report = split_file(source, outputs(tmp_path, with_test), sizes, seed=seed)
    written = [row for path in outputs(tmp_path, with_test).values() for row in read_jsonl(path)]
    assert Counter(map(canon, written)) == Counter(map(canon, rows))
    assert sum(report.counts.values()) == n and report.removed == 0
    # Rows equal up to case and whitespace never sit on two sides.
    sides = [{row_keys(r)[1] for r in read_jsonl(p)} for p in outputs(tmp_path, with_test).values()]
    for i, a in enumerate(sides):
        for b in sides[i + 1:]:
            assert not a & b


def test_dedupe_removes_exact_and_normalised_duplicates_and_nothing_else(tmp_path):
    rows = rows_with_duplicates(200)
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    report = split_file(source, outputs(tmp_path), SplitSizes(val_ratio=0.1), dedupe=True)
    written = [row for path in outputs(tmp_path).values() for row in read_jsonl(path)]
    keys = [row_keys(r)[1] for r in written]
    assert len(keys) == len(set(keys)) == len({row_keys(r)[1] for r in rows})
    assert report.removed == report.duplicates == len(rows) - len(written)
    assert report.identical > 0 and report.near > 0
    assert {canon(r) for r in written} <= {canon(r) for r in rows}  # invents nothing


def test_same_seed_same_split_other_seed_other_split(tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [chat(f"q{i}", "a") for i in range(100)])
    split_file(source, outputs(tmp_path), SplitSizes(val_ratio=0.2), seed=7)
    first = (tmp_path / "val.jsonl").read_bytes()
    split_file(source, outputs(tmp_path), SplitSizes(val_ratio=0.2), seed=7, overwrite=True)
    assert (tmp_path / "val.jsonl").read_bytes() == first
    split_file(source, outputs(tmp_path), SplitSizes(val_ratio=0.2), seed=8, overwrite=True)
    assert (tmp_path / "val.jsonl").read_bytes() != first


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(class_sizes=st.lists(st.integers(1, 80), min_size=2, max_size=6), seed=st.integers(0, 1000),
       val_ratio=st.sampled_from([0.05, 0.1, 0.25]))
def test_stratified_split_keeps_each_class_share_within_one_row(tmp_path_factory, class_sizes, seed, val_ratio):
    tmp_path = tmp_path_factory.mktemp("strat")
    rows = [chat(f"text {c}-{i}", f"class{c}") for c, size in enumerate(class_sizes) for i in range(size)]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    total = len(rows)
    try:
        report = split_file(source, outputs(tmp_path, True), SplitSizes(val_ratio=val_ratio, test_ratio=0.1),
                            seed=seed, stratify="label")
    except LorawizError as exc:  # too few rows for a non-empty val or test side: a clean refusal
        assert "rounds to 0 rows" in exc.message or "too few" in exc.message
        return
    for side, path in outputs(tmp_path, True).items():
        side_rows = read_jsonl(path)
        per_class = Counter(r["messages"][-1]["content"] for r in side_rows)
        for c, size in enumerate(class_sizes):
            expected = size * len(side_rows) / total
            assert abs(per_class[f"class{c}"] - expected) < 1, (side, c)
            assert report.classes[f"class{c}"][side] == per_class[f"class{c}"]


def test_val_size_is_exact_and_stratify_by_field(tmp_path):
    rows = [{"text": f"t{i}", "team": "a" if i % 3 else "b"} for i in range(90)]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    report = split_file(source, outputs(tmp_path), SplitSizes(val_size=30), stratify="team")
    assert report.counts == {"train": 60, "val": 30}
    assert report.classes == {"b": {"train": 20, "val": 10}, "a": {"train": 40, "val": 20}}


def test_bad_rows_and_missing_class_fail_with_lines_and_write_nothing(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "a"}\n{"text": \n{"text": "c"}\n')
    with pytest.raises(ProblemsError, match=r"invalid JSON.*line 2"):
        split_file(source, outputs(tmp_path), SplitSizes(val_ratio=0.5))
    source.write_text('{"text": "a", "y": 1}\n{"text": "b"}\n{"text": "c", "y": 2}\n')
    with pytest.raises(ProblemsError, match=r'no "y" field.*line 2'):
        split_file(source, outputs(tmp_path), SplitSizes(val_ratio=0.5), stratify="y")
    assert not list(tmp_path.glob("*.jsonl.*")) and not (tmp_path / "train.jsonl").exists()


@pytest.mark.parametrize(("rows", "sizes", "message"), [
    (3, SplitSizes(val_ratio=0.1), "rounds to 0 rows"),
    (5, SplitSizes(val_size=5), "too few"),
    (0, SplitSizes(val_ratio=0.1), "no rows"),
])
def test_impossible_sizes_are_refused(tmp_path, rows, sizes, message):
    source = write_jsonl(tmp_path / "in.jsonl", [chat(f"q{i}", "a") for i in range(rows)])
    with pytest.raises(LorawizError, match=message):
        split_file(source, outputs(tmp_path), sizes)
    assert not (tmp_path / "train.jsonl").exists()


def test_no_overwrite_and_input_untouched(tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [chat(f"q{i}", "a") for i in range(20)])
    before = source.read_bytes()
    (tmp_path / "val.jsonl").write_text("keep me\n")
    with pytest.raises(LorawizError, match="already exists"):
        split_file(source, outputs(tmp_path), SplitSizes(val_ratio=0.2))
    assert (tmp_path / "val.jsonl").read_text() == "keep me\n" and not (tmp_path / "train.jsonl").exists()
    with pytest.raises(LorawizError, match="input file"):
        split_file(source, {"train": source, "val": tmp_path / "v2.jsonl"}, SplitSizes(val_ratio=0.2))
    assert source.read_bytes() == before


def test_interrupted_split_leaves_no_file(tmp_path, monkeypatch):
    source = write_jsonl(tmp_path / "in.jsonl", [chat(f"q{i}", "a") for i in range(50)])
    calls = []

    def failing_write(handle, row):
        calls.append(row)
        if len(calls) == 30:
            raise KeyboardInterrupt
        handle.write(json.dumps(row) + "\n")

    monkeypatch.setattr(split_module, "write_jsonl_line", failing_write)
    with pytest.raises(KeyboardInterrupt):
        split_file(source, outputs(tmp_path), SplitSizes(val_ratio=0.2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def test_normalise_text():
    assert normalise_text("  Hello\tWORLD \n again ") == "hello world again"
