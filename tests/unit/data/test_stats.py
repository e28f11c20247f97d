"""`inspect` figures (lorawiz/data/stats.py, lorawiz/data/tokens.py): counts, percentiles, the suggestion."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lorawiz.data.stats import histogram, inspect_file, percentile, suggest_max_seq_length
from lorawiz.data.tokens import TokenCounter, load_tokenizer, model_limit
from lorawiz.errors import LorawizError

from .conftest import chat, write_jsonl

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "data"


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert [percentile(values, p) for p in (50, 90, 95, 99, 100)] == [50, 90, 95, 99, 100]
    assert percentile([7], 99) == 7 and percentile([], 50) == 0


@pytest.mark.parametrize(("p95", "p99", "limit", "expected"), [
    (400, 500, None, 512),  # p99 close to p95: cover p99, rounded up to 64
    (1000, 4000, None, 1536),  # long tail: 1.5 x p95
    (3000, 3100, 2048, 2048),  # capped by the model
    (10, 12, None, 64),
])
def test_suggested_max_seq_length(p95, p99, limit, expected):
    value, reason = suggest_max_seq_length(p95, p99, limit)
    assert value == expected and "multiple of 64" in reason
    assert (p95 <= value or value == limit) and (value % 64 == 0 or value == limit)


@given(st.lists(st.integers(0, 5000), min_size=1, max_size=300), st.integers(0, 5000))
def test_histogram_counts_every_row_once_and_splits_at_the_cut(values, cut):
    values.sort()
    bins = histogram(values, cut=cut)
    assert sum(b["rows"] for b in bins) == len(values)
    assert all(a["to"] == b["from"] for a, b in zip(bins, bins[1:], strict=False))
    assert not any(b["from"] <= cut < b["to"] - 1 for b in bins)  # no bin is part kept, part truncated


def test_inspect_counts_shape_roles_duplicates_and_bad_rows(tmp_path):
    rows = [chat("hello there", "hi"), chat("Hello   there", "HI"), chat("hello there", "hi"),
            {"messages": [{"role": "system", "content": "be brief"}, *chat("q", "a")["messages"]]},
            {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "x"}]}]
    stats = inspect_file(write_jsonl(tmp_path / "d.jsonl", rows))
    assert stats.shape == "messages" and stats.rows == 4
    assert stats.duplicates == {"identical": 1, "near": 1}
    assert stats.empty_rows == 1 and stats.bad_rows["empty content"] == {"count": 1, "lines": [5]}
    assert stats.roles == {"user": 4, "assistant": 4, "system": 1} and stats.rows_with_system == 1
    assert stats.turns == {"min": 2, "p50": 2, "mean": 2.25, "max": 3}
    assert stats.length.unit == "estimated tokens" and "estimate" in stats.length.method
    assert stats.suggested_max_seq_length == 64 and stats.truncated_rows == 0


def test_truncation_at_a_given_length(tmp_path):
    rows = [chat("x" * (40 * i), "y") for i in range(1, 101)]  # estimates grow 10 tokens a row
    stats = inspect_file(write_jsonl(tmp_path / "d.jsonl", rows), max_seq_length=500)
    longer = sum(1 for i in range(1, 101) if -(-(len("user: ") + 40 * i + len("\nassistant: y")) // 4) > 500)
    assert stats.truncated_rows == longer and stats.truncated_share == pytest.approx(longer / 100)
    assert stats.max_seq_length_given


def test_token_counts_match_the_tokenizer_row_by_row(tmp_path, tiny_tokenizer):
    rows = [chat(f"the model learns {i} " * (i % 9 + 1), "thanks " * (i % 4 + 1)) for i in range(2500)]
    rows.append({"messages": [{"role": "user", "content": "weather?"},
                              {"role": "assistant", "tool_calls": [{"type": "function", "function": {
                                  "name": "weather", "arguments": {"city": "Oslo"}}}]},
                              {"role": "tool", "content": "sunny"}, {"role": "assistant", "content": "Sunny."}]})
    stats = inspect_file(write_jsonl(tmp_path / "d.jsonl", rows), tiny_tokenizer, model_limit=512)
    expected = sorted(len(tiny_tokenizer.apply_chat_template(r["messages"], tokenize=True, return_dict=False))
                      for r in rows)
    assert stats.length.unit == "tokens" and "chat template" in stats.length.method
    assert (stats.length.max, stats.length.total) == (expected[-1], sum(expected))
    assert stats.length.p95 == percentile(expected, 95)


def test_text_rows_without_template_count_specials(tiny_tokenizer):
    counter = TokenCounter(tiny_tokenizer)
    counter.templated = False
    assert counter.count([{"text": "the model learns"}]) == [len(tiny_tokenizer("the model learns")["input_ids"])]


def test_load_tokenizer_errors_and_limit(tmp_path, tiny_tokenizer):
    with pytest.raises(LorawizError, match="no such folder"):
        load_tokenizer(str(tmp_path / "missing"))
    with pytest.raises(LorawizError, match="could not load a tokenizer"):
        load_tokenizer(str(tmp_path))
    assert model_limit(tiny_tokenizer) == 512


def test_inspect_every_fixture_shape():
    for name in ("alpaca.json", "sharegpt.jsonl", "messages.jsonl", "prompt_completion.csv",
                 "classification.tsv", "text.jsonl"):
        stats = inspect_file(FIXTURES / name)
        assert stats.rows > 0 and not stats.bad_rows and stats.length.max > 0, name
