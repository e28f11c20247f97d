"""`mix` (lorawiz/data/mix.py): shares met, no row invented or reused without --allow-repeat, deterministic."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lorawiz.data.mix import MixSource, mix_files, parse_source
from lorawiz.data.shares import largest_remainder
from lorawiz.errors import LorawizError, ProblemsError

from .conftest import chat, read_jsonl, write_jsonl

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "data"


def canon(row) -> str:
    return json.dumps(row, sort_keys=True)


def make_sources(tmp_path, sizes):
    paths = []
    for s, size in enumerate(sizes):
        paths.append(write_jsonl(tmp_path / f"s{s}.jsonl", [chat(f"source {s} row {i}", "ok") for i in range(size)]))
    return paths


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(1, 120), min_size=1, max_size=4), data=st.data())
def test_largest_mix_without_repeats_meets_the_shares(tmp_path_factory, sizes, data):
    tmp_path = tmp_path_factory.mktemp("mix")
    paths = make_sources(tmp_path, sizes)
    weights = data.draw(st.lists(st.integers(1, 9), min_size=len(sizes), max_size=len(sizes)))
    out = tmp_path / "mix.jsonl"
    report = mix_files([MixSource(str(p), w) for p, w in zip(paths, weights, strict=True)], out,
                       bucket_rows=data.draw(st.sampled_from([3, 50_000])))
    rows = read_jsonl(out)
    assert len(rows) == report.total
    source_rows = Counter(canon(r) for p in paths for r in read_jsonl(p))
    taken = Counter(map(canon, rows))
    assert all(taken[key] <= source_rows[key] for key in taken)  # nothing invented, nothing used twice
    for source, weight in zip(report.sources, weights, strict=True):
        assert source.count <= source.rows
        assert abs(source.count - report.total * weight / sum(weights)) < 1  # share within one row
    # Largest: one more row would need more than some source has, exactly or once rounded.
    bigger = largest_remainder(report.total + 1, weights)
    assert any(c > s.rows or (report.total + 1) * w / sum(weights) > s.rows
               for c, s, w in zip(bigger, report.sources, weights, strict=True))


def test_size_needs_allow_repeat_to_upsample(tmp_path):
    small, big = make_sources(tmp_path, [10, 100])
    sources = [MixSource(str(small), 0.5), MixSource(str(big), 0.5)]
    with pytest.raises(LorawizError, match=r"has 10 rows, but a 50.0% share of 60 needs 30") as exc:
        mix_files(sources, tmp_path / "m.jsonl", size=60)
    assert "--size to 20" in exc.value.hint and not (tmp_path / "m.jsonl").exists()
    report = mix_files([MixSource(str(small), 0.5), MixSource(str(big), 0.5)], tmp_path / "m.jsonl", size=60,
                       allow_repeat=True)
    rows = Counter(canon(r) for r in read_jsonl(tmp_path / "m.jsonl"))
    small_rows = {canon(r) for r in read_jsonl(small)}
    assert sum(c for key, c in rows.items() if key in small_rows) == 30 and report.sources[0].repeats == 3
    assert all(rows[key] == 3 for key in small_rows)  # whole copies: every row three times, none four


def test_deterministic_and_shuffled_and_bucket_size_does_not_change_the_output(tmp_path):
    a, b = make_sources(tmp_path, [40, 40])
    specs = [MixSource(str(a), 1), MixSource(str(b), 1)]
    mix_files(specs, tmp_path / "one.jsonl", seed=3)
    mix_files([MixSource(str(a), 1), MixSource(str(b), 1)], tmp_path / "two.jsonl", seed=3, bucket_rows=7)
    mix_files([MixSource(str(a), 1), MixSource(str(b), 1)], tmp_path / "other.jsonl", seed=4)
    one = (tmp_path / "one.jsonl").read_bytes()
    assert one == (tmp_path / "two.jsonl").read_bytes() != (tmp_path / "other.jsonl").read_bytes()
    first_half = [r["messages"][0]["content"] for r in read_jsonl(tmp_path / "one.jsonl")[:40]]
    assert any(text.startswith("source 1") for text in first_half)  # interleaved, not concatenated


def test_sources_in_other_shapes_are_converted_and_tagged(tmp_path):
    out = tmp_path / "m.jsonl"
    report = mix_files([MixSource(str(FIXTURES / "alpaca.json")), MixSource(str(FIXTURES / "sharegpt.jsonl"))],
                       out, tag_source=True)
    rows = read_jsonl(out)
    assert report.total == 4 and [s.shape for s in report.sources] == ["alpaca", "sharegpt"]
    assert all("messages" in r for r in rows)
    assert Counter(r["source"] for r in rows) == {str(FIXTURES / "alpaca.json"): 2,
                                                  str(FIXTURES / "sharegpt.jsonl"): 2}


def test_refusals(tmp_path):
    a, b = make_sources(tmp_path, [5, 5])
    with pytest.raises(LorawizError, match="has no weight"):
        mix_files([MixSource(str(a), 0.5), MixSource(str(b))], tmp_path / "m.jsonl")
    with pytest.raises(LorawizError, match="cannot be mixed"):
        mix_files([MixSource(str(a)), MixSource(str(FIXTURES / "text.jsonl"))], tmp_path / "m.jsonl")
    with pytest.raises(ProblemsError, match="bad rows"):
        mix_files([MixSource(str(a)), MixSource(str(FIXTURES / "bad.jsonl"))], tmp_path / "m.jsonl")
    with pytest.raises(LorawizError, match="also a source"):
        mix_files([MixSource(str(a))], a, overwrite=True)
    (tmp_path / "m.jsonl").write_text("keep\n")
    with pytest.raises(LorawizError, match="already exists"):
        mix_files([MixSource(str(a))], tmp_path / "m.jsonl")
    assert (tmp_path / "m.jsonl").read_text() == "keep\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.jsonl", "s0.jsonl", "s1.jsonl"]


@pytest.mark.parametrize(("spec", "path", "weight"), [
    ("domain.jsonl:0.8", "domain.jsonl", 0.8), ("general.jsonl", "general.jsonl", None),
    ("org/data:train", "org/data:train", None), ("org/data:train:2", "org/data:train", 2.0),
])
def test_parse_source(spec, path, weight):
    parsed = parse_source(spec)
    assert (parsed.path, parsed.weight) == (path, weight)


@pytest.mark.parametrize("spec", ["a.jsonl:0", "a.jsonl:-1", "a.jsonl:nan"])
def test_parse_source_refuses_bad_weights(spec):
    with pytest.raises(LorawizError, match="above 0"):
        parse_source(spec)
