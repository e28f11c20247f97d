"""Shape detection, conversion and validation (lorawiz/data/formats.py), plus the format pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lorawiz.data.convert import format_file
from lorawiz.data.formats import ConvertOptions, RowProblem, convert_row, detect_shape, validate_messages
from lorawiz.data.readers import iter_rows
from lorawiz.errors import LorawizError, ProblemsError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "data"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(
    ("fixture", "shape"),
    [("alpaca.json", "alpaca"), ("sharegpt.jsonl", "sharegpt"), ("messages.jsonl", "messages"),
     ("prompt_completion.csv", "prompt-completion"), ("classification.tsv", "classification"),
     ("text.jsonl", "text")],
)
def test_each_fixture_is_detected_and_converted(tmp_path, fixture, shape):
    out = tmp_path / "out.jsonl"
    report = format_file(FIXTURES / fixture, out)
    assert report.shape == shape and "rows have" in report.reason
    rows = read_jsonl(out)
    assert len(rows) == report.rows_written == report.rows_read
    for row in rows:
        if shape == "text":
            assert set(row) == {"text"}
        else:
            validate_messages(row["messages"])


def test_alpaca_history_input_and_system(tmp_path):
    out = tmp_path / "out.jsonl"
    format_file(FIXTURES / "alpaca.json", out)
    second = read_jsonl(out)[1]["messages"]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user", "assistant"]
    assert second[3]["content"] == "Translate to French\n\ncat" and second[4]["content"] == "chat"


def test_sharegpt_function_call_becomes_a_tool_call_and_tool_turn(tmp_path):
    out = tmp_path / "out.jsonl"
    format_file(FIXTURES / "sharegpt.jsonl", out)
    turns = read_jsonl(out)[1]["messages"]
    assert [m["role"] for m in turns] == ["user", "assistant", "tool", "assistant"]
    assert turns[1]["tool_calls"][0]["function"] == {"name": "weather", "arguments": {"city": "Oslo"}}


def test_messages_content_parts_are_joined_and_weight_kept(tmp_path):
    out = tmp_path / "out.jsonl"
    format_file(FIXTURES / "messages.jsonl", out)
    turns = read_jsonl(out)[1]["messages"]
    assert turns[1]["content"] == "Hello there" and turns[2]["weight"] == 1


def test_classification_records_the_label_set(tmp_path):
    out = tmp_path / "train.jsonl"
    report = format_file(FIXTURES / "classification.tsv", out)
    meta = json.loads((tmp_path / "train.meta.json").read_text())
    assert meta["labels"] == ["fire", "flood", "medical"] and report.labels == {"fire": 1, "flood": 1, "medical": 1}
    assert read_jsonl(out)[0]["messages"][1] == {"role": "assistant", "content": "fire"}


def test_labels_option_rejects_unknown_labels():
    opts = ConvertOptions(labels=("fire", "flood"))
    with pytest.raises(RowProblem, match="unknown label"):
        convert_row({"text": "x", "label": "medical"}, "classification", opts)
    assert convert_row({"text": "x", "label": 1}, "classification", opts)["messages"][1]["content"] == "flood"


def test_preference_data_is_refused_with_a_reason(tmp_path):
    with pytest.raises(LorawizError, match="preference data"):
        format_file(FIXTURES / "preference.jsonl", tmp_path / "out.jsonl")


def test_bad_rows_fail_with_a_summary_and_no_output(tmp_path):
    out = tmp_path / "out.jsonl"
    with pytest.raises(ProblemsError) as info:
        format_file(FIXTURES / "bad.jsonl", out)
    text = str(info.value)
    assert "3 bad rows; nothing was written" in text
    assert "invalid JSON: 1 row (line 2)" in text
    assert "last turn not assistant: 1 row (line 3)" in text
    assert "empty content: 1 row (line 4)" in text
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_skip_bad_writes_good_rows_and_rejects_with_lines(tmp_path):
    out, rejects = tmp_path / "out.jsonl", tmp_path / "bad-rows.jsonl"
    before = (FIXTURES / "bad.jsonl").read_bytes()
    report = format_file(FIXTURES / "bad.jsonl", out, skip_bad=True, rejects=rejects)
    assert report.rows_written == 1 and sum(report.rejected.values()) == 3
    assert [r["line"] for r in read_jsonl(rejects)] == [2, 3, 4]
    assert (FIXTURES / "bad.jsonl").read_bytes() == before  # the input is never modified


def test_existing_output_is_not_overwritten(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("keep me\n")
    with pytest.raises(LorawizError, match="already exists"):
        format_file(FIXTURES / "text.jsonl", out)
    assert out.read_text() == "keep me\n"
    format_file(FIXTURES / "text.jsonl", out, overwrite=True)
    assert len(read_jsonl(out)) == 2


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    import lorawiz.data.convert as convert

    def explode(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(convert, "write_jsonl_line", explode)
    with pytest.raises(KeyboardInterrupt):
        format_file(FIXTURES / "text.jsonl", tmp_path / "out.jsonl")
    assert list(tmp_path.iterdir()) == []


def test_json_array_reader_streams_with_line_numbers(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text('[\n  {"text": "a"},\n  {"text": "b"},\n\n  {"text": 12345}\n]\n')
    assert [(line, row) for line, row in iter_rows(path)] == [(2, {"text": "a"}), (3, {"text": "b"}),
                                                              (5, {"text": 12345})]
    import lorawiz.data.readers as readers

    small = list(readers._iter_json(path, chunk_size=3))  # chunks cut through every value
    assert [row for _, row in small] == [{"text": "a"}, {"text": "b"}, {"text": 12345}]


@pytest.mark.parametrize(
    ("messages", "kind"),
    [
        ([{"role": "assistant", "content": "hi"}], "bad role order"),
        ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}],
         "bad role order"),
        ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "system", "content": "s"}],
         "bad role order"),
        ([{"role": "system", "content": "s"}], "empty conversation"),
        ([{"role": "user", "content": "q"}], "last turn not assistant"),
    ],
)
def test_validation_catches_bad_conversations(messages, kind):
    with pytest.raises(RowProblem) as info:
        validate_messages(messages)
    assert info.value.kind == kind


ROW_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=3), max_leaves=10)
KEYS = st.sampled_from(["messages", "conversations", "instruction", "input", "output", "prompt", "completion",
                        "text", "label", "role", "content", "from", "value", "system", "history", "chosen"])


@settings(max_examples=300, deadline=None)
@given(row=st.dictionaries(KEYS, ROW_VALUES, max_size=5),
       shape=st.sampled_from(["alpaca", "sharegpt", "messages", "prompt-completion", "text", "classification"]))
def test_any_row_converts_cleanly_or_raises_a_row_problem(row, shape):
    try:
        result = convert_row(row, shape, ConvertOptions())
    except RowProblem as problem:
        assert problem.kind and problem.detail
    else:
        json.dumps(result)
        if "messages" in result:
            validate_messages(result["messages"])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.one_of(st.text(max_size=40), st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
                                st.dictionaries(KEYS, ROW_VALUES, max_size=4).map(json.dumps)), max_size=8))
def test_any_jsonl_file_formats_or_fails_cleanly(tmp_path, lines):
    source = tmp_path / "in.jsonl"
    source.write_bytes("\n".join(lines).encode("utf-8", "surrogateescape"))
    out = tmp_path / "out.jsonl"
    out.unlink(missing_ok=True)
    try:
        format_file(source, out, skip_bad=True, overwrite=True)
    except LorawizError as exc:
        assert exc.exit_code == 2
        assert not out.exists()


def test_detect_shape_explains_itself():
    detection = detect_shape([{"instruction": "a", "output": "b"}] * 3)
    assert detection.shape == "alpaca" and detection.reason.startswith("3 of the first 3 rows")
