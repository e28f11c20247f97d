"""Every reader (lorawiz/data/readers.py) on random and malformed files: the rows back, or a clean error.

"Clean" means a LorawizError for the file as a whole, or a RowProblem for one row: never another exception.
"""

from __future__ import annotations

import contextlib
import csv
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lorawiz.data.convert import format_file
from lorawiz.data.formats import RowProblem
from lorawiz.data.readers import iter_rows
from lorawiz.errors import LorawizError

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | TEXT,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                           max_leaves=8)
ROWS = st.lists(st.dictionaries(st.sampled_from(["text", "instruction", "output", "label", "x"]), JSON_VALUES,
                                min_size=1, max_size=4), max_size=8)


def read_all(path) -> list:
    """All rows, or the LorawizError the reader raised; any other exception fails the test."""
    try:
        return list(iter_rows(path))
    except LorawizError as exc:
        return [exc]


def is_clean(item) -> bool:
    """A whole-file LorawizError, or (line number >= 1, row) where the row is a RowProblem or a parsed JSON value
    (a non-mapping row such as `0` is the shape layer's to reject, with its line)."""
    if isinstance(item, LorawizError):
        return True
    return (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], int) and item[0] >= 1
            and isinstance(item[1], dict | list | str | int | float | bool | RowProblem | None))


def formats_cleanly(path, out) -> None:
    """format_file either writes the output or raises LorawizError; nothing else escapes."""
    with contextlib.suppress(LorawizError):
        format_file(path, out, overwrite=True)


@SETTINGS
@given(rows=ROWS, indent=st.sampled_from([None, 0, 2]), chunk=st.integers(1, 64))
def test_json_array_round_trips_at_any_chunk_size(tmp_path, rows, indent, chunk):
    from lorawiz.data import readers

    path = tmp_path / "d.json"
    path.write_text(json.dumps(rows, indent=indent, ensure_ascii=False), encoding="utf-8")
    assert [row for _, row in readers._iter_json(path, chunk_size=chunk)] == rows


@SETTINGS
@given(rows=ROWS.filter(bool), cut=st.floats(0.05, 0.95), junk=st.sampled_from(["", "}", "]]", ",", "x", "\x00"]))
def test_truncated_or_corrupted_json_array_fails_cleanly(tmp_path, rows, cut, junk):
    text = json.dumps(rows, ensure_ascii=False)
    path = tmp_path / "d.json"
    damaged = text[: int(len(text) * cut)] + junk
    path.write_text(damaged, encoding="utf-8")
    result = read_all(path)
    assert all(is_clean(item) for item in result)
    try:
        still_valid = json.loads(damaged)  # the cut and the junk can happen to close the array again
    except ValueError:
        still_valid = None
    if not damaged.strip():  # nothing left: no rows (format and train then say the file has no rows)
        assert result == []
    elif isinstance(still_valid, list) and all(isinstance(row, dict) for row in still_valid):
        assert [row for _, row in result] == still_valid
    else:  # the damage is reported, for the file or for a row: never silently a shorter list of good rows
        assert any(isinstance(item, LorawizError) or isinstance(item[1], RowProblem) for item in result)
    formats_cleanly(path, tmp_path / "o.jsonl")


@SETTINGS
@given(header=st.lists(st.text("abcxyz_", min_size=1, max_size=6), min_size=1, max_size=4, unique=True),
       cells=st.lists(st.lists(TEXT, min_size=1, max_size=4), max_size=6), delimiter=st.sampled_from([",", "\t"]))
def test_csv_and_tsv_round_trip_or_flag_the_row(tmp_path, header, cells, delimiter):
    path = tmp_path / ("d.tsv" if delimiter == "\t" else "d.csv")
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(cells)
    result = read_all(path)
    rows = [row for _, row in result if not isinstance(row, RowProblem)]
    problems = [row for _, row in result if isinstance(row, RowProblem)]
    assert rows == [dict(zip(header, row, strict=True)) for row in cells if len(row) == len(header)]
    assert len(problems) == sum(len(row) != len(header) for row in cells)
    assert all(p.kind == "wrong column count" for p in problems)
    formats_cleanly(path, tmp_path / "o.jsonl")


@SETTINGS
@given(data=st.binary(max_size=200), suffix=st.sampled_from([".jsonl", ".json", ".csv", ".tsv", ".parquet"]))
def test_random_bytes_in_any_file_kind_fail_cleanly(tmp_path, data, suffix):
    path = tmp_path / f"d{suffix}"
    path.write_bytes(data)
    for item in read_all(path):
        assert is_clean(item)
    formats_cleanly(path, tmp_path / "o.jsonl")


@SETTINGS
@given(texts=st.lists(TEXT, min_size=1, max_size=20), labels=st.lists(st.sampled_from(["a", "b", None]),
                                                                       min_size=20, max_size=20))
def test_parquet_round_trips(tmp_path, texts, labels):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = [{"text": t, "label": labels[i]} for i, t in enumerate(texts)]
    path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    assert [row for _, row in iter_rows(path)] == rows
    formats_cleanly(path, tmp_path / "o.jsonl")


def _position(text: str, index: int) -> str:
    """`line L, column C` of a character index, as the readers name positions."""
    line = text.count("\n", 0, index) + 1
    return f"line {line}, column {index - (text.rfind(chr(10), 0, index) + 1) + 1}"


@SETTINGS
@given(rows=ROWS, gap=st.sampled_from(["", " ", "\n", "\n\n  "]),
       junk=st.sampled_from(["[]", '[{"text": "b"}]', '{"text": "b"}', "x", "1", '"s"', ",", "]"]),
       chunk=st.integers(1, 64))
def test_anything_but_whitespace_after_the_array_is_an_error_at_its_position(tmp_path, rows, gap, junk, chunk):
    from lorawiz.data import readers

    array = json.dumps(rows, indent=1, ensure_ascii=False)
    text = array + gap + junk + "\n"
    path = tmp_path / "d.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LorawizError) as caught:
        list(readers._iter_json(path, chunk_size=chunk))
    assert _position(text, len(array) + len(gap)) in caught.value.message
    assert "after the end of the array" in caught.value.message


@SETTINGS
@given(rows=ROWS.filter(bool), cut=st.floats(0.05, 0.99), chunk=st.integers(1, 64))
def test_a_cut_array_names_where_the_file_ends(tmp_path, rows, cut, chunk):
    from lorawiz.data import readers

    text = json.dumps(rows, indent=1, ensure_ascii=False)
    damaged = text[: int(len(text) * cut)].rstrip()
    if not damaged or damaged == text:
        return
    path = tmp_path / "d.json"
    path.write_text(damaged, encoding="utf-8")
    with pytest.raises(LorawizError) as caught:
        list(readers._iter_json(path, chunk_size=chunk))
    message = caught.value.message
    assert "line " in message and ", column " in message
    if "cut short" in message:
        assert f"ends at {_position(damaged, len(damaged))}" in message or "inside item" in message


@SETTINGS
@given(rows=ROWS.filter(bool), indent=st.sampled_from([None, 1, 2]), chunk=st.integers(1, 64))
def test_json_array_items_keep_their_line_numbers_at_any_chunk_size(tmp_path, rows, indent, chunk):
    from lorawiz.data import readers

    text = json.dumps(rows, indent=indent, ensure_ascii=False)
    path = tmp_path / "d.json"
    path.write_text(text, encoding="utf-8")
    decoder, index, expected = json.JSONDecoder(), 1, []
    for _ in rows:  # where each item starts, found independently of the reader
        while text[index] in " \n,":
            index += 1
        expected.append(text.count("\n", 0, index) + 1)
        index = decoder.raw_decode(text, index)[1]
    assert [line for line, _ in readers._iter_json(path, chunk_size=chunk)] == expected


def _write_kind(path, rows: list[dict], kind: str) -> None:
    if kind == "jsonl":
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    elif kind == "json":
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    else:
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["instruction", "output"],
                                    delimiter="\t" if kind == "tsv" else ",")
            writer.writeheader()
            writer.writerows(rows)


@SETTINGS
@given(texts=st.lists(st.tuples(st.text("abc xyz\u00e9", min_size=1, max_size=12),
                                st.text("abc xyz", min_size=1, max_size=12)), min_size=1, max_size=6),
       kind=st.sampled_from(["jsonl", "json", "csv", "tsv"]))
def test_a_utf8_byte_order_mark_reads_as_the_same_rows(tmp_path, texts, kind):
    rows = [{"instruction": a, "output": b} for a, b in texts]
    plain, marked = tmp_path / f"plain.{kind}", tmp_path / f"marked.{kind}"
    _write_kind(plain, rows, kind)
    marked.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    assert read_all(marked) == read_all(plain)
    assert not any(isinstance(item, LorawizError) for item in read_all(marked))
