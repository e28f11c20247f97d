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
    _check_readable(path)
    if kind == "jsonl":
        yield from _iter_jsonl(path)
    elif kind == "json":
        yield from _iter_json(path)
    elif kind in ("csv", "tsv"):
        yield from _iter_csv(path, "\t" if kind == "tsv" else ",")
    else:
        yield from _iter_parquet(path)


def _check_readable(path: Path) -> None:
    """Opening is the only test that asks the file system itself (root, ACLs, read-only binds, network mounts)."""
    try:
        path.open("rb").close()
    except PermissionError as exc:
        raise LorawizError(f"{path}: permission denied, it cannot be read.",
                           hint=f"Make it readable (chmod u+r {path}), or give another file.") from exc


def _iter_jsonl(path: Path) -> Iterator[Row]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
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


def _iter_json(path: Path, chunk_size: int = 1 << 20) -> Iterator[Row]:
    """A JSON array (or one object), decoded element by element so that memory stays flat."""
    decoder = json.JSONDecoder()
    with path.open("rb") as raw_handle:
        handle = io.TextIOWrapper(raw_handle, encoding="utf-8", errors="strict")
        buffer, line, pos = "", 1, 0
        eof = False

        def fill() -> bool:
            nonlocal buffer, eof
            try:
                chunk = handle.read(chunk_size)
            except UnicodeDecodeError as exc:
                raise LorawizError(f"{path}: invalid UTF-8 near line {line} ({exc.reason}).",
                                   hint="Re-save the file as UTF-8.") from exc
            eof = not chunk
            buffer += chunk
            return bool(chunk)

        def skip_space() -> None:
            nonlocal pos, line
            while True:
                while pos < len(buffer) and buffer[pos] in " \t\r\n":
                    line += buffer[pos] == "\n"
                    pos += 1
                if pos < len(buffer) or not fill():
                    return

        fill()
        skip_space()
        if pos >= len(buffer):
            return
        if buffer[pos] != "[":
            # A single object: read it whole.
            while fill():
                pass
            try:
                yield line, json.loads(buffer[pos:])
            except json.JSONDecodeError as exc:
                raise LorawizError(f"{path} line {line + exc.lineno - 1}: invalid JSON ({exc.msg}).",
                                   hint="Fix the file, or write one object per line as JSONL.") from exc
            return
        pos += 1
        while True:
            skip_space()
            if pos < len(buffer) and buffer[pos] == "]":
                return
            while True:
                try:
                    value, end = decoder.raw_decode(buffer, pos)
                    if end < len(buffer) or eof or not fill():  # a number cut at the chunk's end reads short
                        break
                except json.JSONDecodeError as exc:
                    if eof or not fill():
                        bad_line = line + buffer.count("\n", pos, exc.pos)
                        raise LorawizError(f"{path} line {bad_line}: invalid JSON ({exc.msg}).",
                                           hint="Fix the file, or write one object per line as JSONL.") from exc
            yield line, value
            line += buffer.count("\n", pos, end)
            buffer, pos = buffer[end:], 0
            skip_space()
            if pos < len(buffer) and buffer[pos] == ",":
                pos += 1
            elif pos < len(buffer) and buffer[pos] == "]":
                return
            else:
                raise LorawizError(f"{path} line {line}: expected , or ] between array items.",
                                   hint="Fix the file, or write one object per line as JSONL.")


def _iter_csv(path: Path, delimiter: str) -> Iterator[Row]:
    with path.open("r", encoding="utf-8", newline="", errors="strict") as handle:
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
