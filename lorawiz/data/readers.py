"""Stream rows out of JSONL, JSON arrays, CSV/TSV and Parquet files, each with the line it came from.

Readers yield `(line, row)` pairs; a row that cannot be read (bad JSON, bad UTF-8) comes back as a
`RowProblem` in place of the row, so that the caller decides whether it fails the run or is skipped.
Memory stays flat: nothing holds more than one chunk of the file.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lorawiz.data.formats import RowProblem
from lorawiz.errors import LorawizError

Row = tuple[int, Any]  # (line number, the parsed row or a RowProblem)
SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
            ".parquet": "parquet", ".pq": "parquet"}


def file_kind(path: Path) -> str:
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise LorawizError(f"{path}: unknown file type {path.suffix or '(no suffix)'!r}.",
                           hint="Use .jsonl, .json, .csv, .tsv or .parquet.")
    return kind


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(:[\w.-]+)?$")  # org/name, optionally :split


def iter_rows(path: str | Path) -> Iterator[Row]:
    """Every row of a data file with its line number (row number for Parquet and Hub datasets); `builtin:` names
    read their cached file."""
    from lorawiz.builtin import local_path

    path = local_path(str(path)) if str(path).startswith("builtin:") else path
    if not Path(path).exists() and HUB_ID.match(str(path)):
        yield from _iter_hub(str(path))
        return
    path = Path(path)
    if not path.is_file():
        raise LorawizError(f"{path} not found." if not path.exists() else f"{path} is not a file.",
                           hint="Check the path of the data file.")
    kind = file_kind(path)
    check_readable(path)
    if kind == "jsonl":
        yield from _iter_jsonl(path)
    elif kind == "json":
        yield from _iter_json(path)
    elif kind in ("csv", "tsv"):
        yield from _iter_csv(path, "\t" if kind == "tsv" else ",")
    else:
        yield from _iter_parquet(path)


def check_readable(path: Path) -> None:
    """Opening is the only test that asks the file system itself (root, ACLs, read-only binds, network mounts)."""
    try:
        path.open("rb").close()
    except PermissionError as exc:
        raise LorawizError(f"{path}: permission denied, it cannot be read.",
                           hint=f"Make it readable (chmod u+r {path}), or give another file.") from exc


BOM = "\ufeff"  # a UTF-8 byte-order mark, which Windows editors write: skipped in every text format


def _iter_jsonl(path: Path) -> Iterator[Row]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(BOM.encode()):
                raw = raw[len(BOM.encode()):]
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield number, RowProblem("invalid UTF-8", f"byte {exc.start} of the line")
                continue
            try:
                yield number, json.loads(text)
            except json.JSONDecodeError as exc:
                yield number, RowProblem("invalid JSON", f"{exc.msg} at column {exc.colno}")


class _JsonText:
    """A text file read in chunks, with a read position, and the line and column of that position.

    The buffer is compacted only when a chunk is appended, so reading an item costs its own length, not the
    chunk's (slicing the buffer after every item made a 1 MB chunk cost a copy per row).
    """

    def __init__(self, path: Path, chunk_size: int) -> None:
        self.path = path
        self.chunk_size = chunk_size
        self.handle = io.TextIOWrapper(path.open("rb"), encoding="utf-8-sig", errors="strict")
        self.buffer, self.pos, self.eof = "", 0, False
        self.line, self.line_start = 1, 0  # line of `pos`, and the buffer index where that line starts

    def close(self) -> None:
        self.handle.close()

    def fill(self) -> bool:
        """Append a chunk (dropping what was read); False at the end of the file."""
        if self.eof:
            return False
        try:
            chunk = self.handle.read(self.chunk_size)
        except UnicodeDecodeError as exc:
            raise LorawizError(f"{self.path}: invalid UTF-8 near line {self.line} ({exc.reason}).",
                               hint="Re-save the file as UTF-8.") from exc
        if not chunk:
            self.eof = True
            return False
        self.line_start -= self.pos
        self.buffer, self.pos = self.buffer[self.pos:] + chunk, 0
        return True

    def advance(self, end: int) -> None:
        """Move the read position to `end`, counting the lines passed."""
        passed = self.buffer.count("\n", self.pos, end)
        if passed:
            self.line += passed
            self.line_start = self.buffer.rindex("\n", self.pos, end) + 1
        self.pos = end

    def skip_space(self) -> str:
        """The next character that is not whitespace ("" at the end of the file)."""
        while True:
            end = self.pos
            while end < len(self.buffer) and self.buffer[end] in " \t\r\n":
                end += 1
            self.advance(end)
            if self.pos < len(self.buffer):
                return self.buffer[self.pos]
            if not self.fill():
                return ""

    def where(self, index: int | None = None) -> str:
        """`line L, column C` of a buffer index (default: the read position)."""
        index = self.pos if index is None else index
        line = self.line + self.buffer.count("\n", self.pos, index)
        start = self.buffer.rfind("\n", 0, index) + 1 if line != self.line else self.line_start
        return f"line {line}, column {index - start + 1}"


def _iter_json(path: Path, chunk_size: int = 1 << 20) -> Iterator[Row]:
    """A JSON array (or one object), decoded element by element so that memory stays flat."""
    text = _JsonText(path, chunk_size)
    try:
        yield from _json_items(path, text)
    finally:
        text.close()


def _json_items(path: Path, text: _JsonText) -> Iterator[Row]:
    decoder = json.JSONDecoder()
    hint = "Fix the file, or write one object per line as JSONL."
    first = text.skip_space()
    if not first:
        return
    if first != "[":
        # A single object: read it whole.
        while text.fill():
            pass
        try:
            value, end = decoder.raw_decode(text.buffer, text.pos)
        except json.JSONDecodeError as exc:
            raise LorawizError(f"{path} {text.where(exc.pos)}: invalid JSON ({exc.msg}).", hint=hint) from exc
        yield text.line, value
        text.advance(end)
        _nothing_after(path, text, "the JSON value")
        return
    text.advance(text.pos + 1)
    count = 0
    while True:
        following = text.skip_space()
        if following == "]" and count == 0:
            break
        if not following:
            raise _cut_short(path, text, count, hint)
        while True:
            try:
                value, end = decoder.raw_decode(text.buffer, text.pos)
                if end < len(text.buffer) or not text.fill():  # a number cut at the chunk's end reads short
                    break
            except json.JSONDecodeError as exc:
                if not text.fill():
                    if exc.pos >= len(text.buffer.rstrip()):
                        raise LorawizError(f"{path}: the file ends at {text.where(exc.pos)} inside item "
                                           f"{count + 1:,} of the array: it is cut short.", hint=hint) from exc
                    raise LorawizError(f"{path} {text.where(exc.pos)}: invalid JSON ({exc.msg}).",
                                       hint=hint) from exc
        yield text.line, value
        count += 1
        text.advance(end)
        following = text.skip_space()
        if following == ",":
            text.advance(text.pos + 1)
        elif following == "]":
            break
        elif not following:
            raise _cut_short(path, text, count, hint)
        else:
            raise LorawizError(f"{path} {text.where()}: expected , or ] between array items.", hint=hint)
    text.advance(text.pos + 1)
    _nothing_after(path, text, "the array")


def _cut_short(path: Path, text: _JsonText, count: int, hint: str) -> LorawizError:
    return LorawizError(f"{path}: the file ends at {text.where()} inside the array, after {count:,} item(s): it is "
                        "cut short.", hint=hint)


def _nothing_after(path: Path, text: _JsonText, what: str) -> None:
    """Only whitespace may follow the top-level value: more data after it would otherwise be dropped unseen."""
    if text.skip_space():
        raise LorawizError(f"{path} {text.where()}: more data after the end of {what} ({text.buffer[text.pos:][:20]!r}"
                           "...); only whitespace may follow it.",
                           hint="Merge the arrays into one, or write one object per line as JSONL.")


def _iter_csv(path: Path, delimiter: str) -> Iterator[Row]:
    with path.open("r", encoding="utf-8-sig", newline="", errors="strict") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        try:
            for row in reader:
                line = reader.line_num
                if None in row:
                    yield line, RowProblem("wrong column count", f"more cells than the {len(reader.fieldnames or [])} "
                                                                  "header columns")
                    continue
                if any(value is None for value in row.values()):
                    yield line, RowProblem("wrong column count", "fewer cells than header columns")
                    continue
                yield line, row
        except UnicodeDecodeError as exc:
            raise LorawizError(f"{path}: invalid UTF-8 after line {reader.line_num} ({exc.reason}).",
                               hint="Re-save the file as UTF-8.") from exc
        except csv.Error as exc:
            raise LorawizError(f"{path} line {reader.line_num}: {exc}.", hint="Fix the quoting in that line.") from exc


def _iter_parquet(path: Path) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a broken file
        raise LorawizError(f"{path}: not a readable Parquet file ({exc}).", hint="Check the file.") from exc
    number = 0
    for batch in parquet.iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            number += 1
            yield number, row


def _iter_hub(dataset_id: str) -> Iterator[Row]:
    """A Hugging Face Hub dataset (`org/name` or `org/name:split`), streamed."""
    from lorawiz.hub import hub_reachable

    name, _, split = dataset_id.partition(":")
    if not hub_reachable():  # fail at once rather than after ~20 s of connection retries
        raise LorawizError(f"{dataset_id}: not a local file, and the Hugging Face Hub is unreachable from here.",
                           hint="Check the path, or download the dataset where the Hub is reachable.")
    try:
        from datasets import load_dataset

        rows = load_dataset(name, split=split or "train", streaming=True)
        yield from enumerate(rows, start=1)
    except (OSError, ValueError, ConnectionError) as exc:
        raise LorawizError(f"{dataset_id}: not a local file, and the Hub dataset could not be loaded ({exc}).",
                           hint="Check the path, or the dataset id and your network / HF_TOKEN.") from exc
