"""Training data at any size: canonical rows tokenised once, on every core, into memory-mapped Arrow, cached by content.

Two passes, neither holding all rows as Python objects:

1. The file streams through the readers and converters `lorawiz format` uses into an Arrow file of canonical rows
   (JSON text). Bad rows fail here, with their line numbers, before any model loads.
2. `datasets.Dataset.map` over that file, one process per core: chat template, one batched fast-tokenizer call per
   batch, loss mask (lorawiz.data.masking.encode_rows, the same code the in-memory path uses), written as int32
   Arrow columns: input_ids, labels, length (before truncation), first_trained (position of the first trained
   token), trained (trained tokens) and group (a stable 64-bit key of the row up to case and whitespace, so the
   hold-out split keeps near-duplicates on one side).

The result is an entry of the tokenised cache (lorawiz.data.cache: where, under which fingerprint, for how long).
Truncation at max_seq_length and the hold-out split are views on it (lorawiz.data.view): index selections, plus a
small cached Arrow file of the rows longer than max_seq_length.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorawiz.data.cache import (
    CACHE_VERSION,
    content_key,
    evict,
    file_id,
    fingerprint,
    load_entry,
    make_build_dir,
    publish,
    tokenizer_fingerprint,
    touch,
    write_manifest,
)
from lorawiz.data.convert import BadRows, resolve_shape
from lorawiz.data.formats import PREFERENCE, ConvertOptions
from lorawiz.data.masking import IGNORE_INDEX, encode_rows
from lorawiz.data.rows import check_rows, good_rows
from lorawiz.errors import LorawizError
from lorawiz.hardware.nvml import cpu_cores

ROWS_PER_BATCH = 10_000  # canonical rows per Arrow record batch in pass 1
MAP_BATCH = 256  # rows per tokenizer call in pass 2
ROWS_PER_PROCESS = 5_000  # below this many rows per process, extra processes cost more than they save


@dataclass
class TokenisedFile:
    """A data file's rows tokenised (untruncated), as a memory-mapped datasets.Dataset, and where it is cached."""

    source: Path
    shape: str
    dataset: Any  # datasets.Dataset
    entry: Path
    hit: bool  # read from the cache
    seconds: float  # to read or build it
    processes: int  # that tokenised it (0 on a cache hit)
    content: str  # the file's content key (lorawiz.data.cache.content_key)

    @property
    def rows(self) -> int:
        return len(self.dataset)

    def column(self, name: str) -> Any:
        """A numeric column as a numpy array (no Python objects per row)."""
        import numpy as np

        return np.asarray(self.dataset.data.column(name).to_numpy())

    @property
    def files(self) -> list[Path]:
        """The Arrow files of the rows, in row order."""
        return [Path(item["filename"]) for item in self.dataset.cache_files]

    @property
    def size_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.entry.glob("*.arrow"))


# ---------------------------------------------------------------------------------------------------------
# Building


def tokenise_file(source: str | Path, tokenizer: Any, *, opts: ConvertOptions | None = None,
                  assistant_only: bool = True, cache_root: Path, processes: int | None = None,
                  stopped: str = "training did not start", say: Any = None, progress: bool = False,
                  build: bool = True, poll_s: float = 0.5) -> TokenisedFile:
    """The file's rows tokenised, from the cache when nothing it depends on changed, else built and cached.

    `say(text)` hears what a build does; `progress` shows datasets' progress bar while tokenising (terminals).
    With build=False (the other processes of a machine under DDP) a missing entry is waited for, not built: the
    first process builds it. The wait has no timeout of its own: a launcher (torchrun, accelerate) stops every
    process when one fails, so a failed build does not leave the others waiting.
    """
    source = Path(source)
    opts = opts or ConvertOptions()
    started = time.monotonic()
    content = content_key(source)
    key = fingerprint(content, opts, tokenizer_fingerprint(tokenizer), assistant_only)
    folder = cache_root / file_id(source)
    entry = folder / key
    found = load_entry(entry)
    while found is None and not build:
        time.sleep(poll_s)
        found = load_entry(entry)
    if found is not None:
        touch(entry)
        return TokenisedFile(source, found[1], found[0], entry, True, time.monotonic() - started, 0, content)
    folder.mkdir(parents=True, exist_ok=True)
    building = Path(make_build_dir(folder, key))
    say = say or (lambda text: None)
    try:
        say(f"reading {source} (not in the tokenised cache yet: this happens once; cached in {cache_root})")
        shape, rows = _write_canonical(source, opts, building / "rows.arrow", stopped)
        read_seconds = time.monotonic() - started
        cores = processes or cpu_cores() or 1
        used = max(1, min(cores, rows // ROWS_PER_PROCESS))
        say(f"tokenising {rows:,} rows on {used} process{'es' if used > 1 else ''} (read in {read_seconds:.1f} s)")
        files, tokens = _tokenise(building, tokenizer, assistant_only, used, key, progress,
                                  pairs=shape == PREFERENCE)
        tokenise_seconds = time.monotonic() - started - read_seconds
        say(f"tokenised {rows:,} rows, {tokens:,} tokens, in {tokenise_seconds:.1f} s "
            f"({tokens / max(tokenise_seconds, 1e-9):,.0f} tokens/s)")
        (building / "rows.arrow").unlink()
        write_manifest(building, {"lorawiz_cache": CACHE_VERSION, "source": str(source.resolve()),
                                  "content": content, "fingerprint": key, "shape": shape, "rows": rows,
                                  "tokens": tokens, "files": files, "processes": used,
                                  "read_seconds": round(read_seconds, 3),
                                  "tokenise_seconds": round(tokenise_seconds, 3)})
        publish(building, entry)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    evict(folder, keep=entry, content=content)
    loaded = load_entry(entry)
    if loaded is None:
        raise LorawizError(f"the tokenised cache of {source} at {entry} could not be read back.",
                           hint="Check the disk, or set dataset_cache_dir to another folder.")
    return TokenisedFile(source, loaded[1], loaded[0], entry, False, time.monotonic() - started, used, content)


def _write_canonical(source: Path, opts: ConvertOptions, out: Path, stopped: str) -> tuple[str, int]:
    """Pass 1: canonical rows as JSON text in an Arrow stream file; every bad row reported at once."""
    import pyarrow as pa

    shape, _ = resolve_shape(source, opts)
    schema = pa.schema([("row", pa.string())])
    bad, rows, batch = BadRows(), 0, []
    with pa.OSFile(str(out), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for row in good_rows(source, opts, bad):
            rows += 1
            if bad.count:
                continue  # the run fails: only count the rest
            batch.append(json.dumps(row, ensure_ascii=False))
            if len(batch) >= ROWS_PER_BATCH:
                writer.write_batch(pa.record_batch([pa.array(batch, pa.string())], schema=schema))
                batch = []
        if batch:
            writer.write_batch(pa.record_batch([pa.array(batch, pa.string())], schema=schema))
    check_rows(source, bad, rows, stopped)
    return shape, rows


def _features() -> Any:
    from datasets import Features, Sequence, Value

    return Features({"input_ids": Sequence(Value("int32")), "labels": Sequence(Value("int32")),
                     "length": Value("int32"), "first_trained": Value("int32"), "trained": Value("int32"),
                     "group": Value("int64")})


def encode_batch(batch: dict[str, list], tokenizer: Any, assistant_only: bool) -> Any:
    """Pass 2, one batch (runs in each worker): canonical JSON rows -> a pyarrow table of the token columns.

    The columns are built from the batch's numpy arrays at once (offsets + one concatenated buffer each), so
    datasets writes them as they are rather than converting a Python list per row.
    """
    import numpy as np
    import pyarrow as pa

    from lorawiz.data.dedupe import stable_key

    rows = [json.loads(text) for text in batch["row"]]
    encoded = encode_rows(tokenizer, rows, assistant_only)
    count = len(encoded)
    lengths = np.fromiter((len(ids) for ids, _ in encoded), dtype=np.int32, count=count)
    offsets = np.zeros(count + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.concatenate([ids for ids, _ in encoded]) if count else np.zeros(0, np.int32)
    labels = np.concatenate([labels for _, labels in encoded]) if count else np.zeros(0, np.int32)
    owner = np.repeat(np.arange(count), lengths)  # the row of each token
    trained_at = np.flatnonzero(labels != IGNORE_INDEX)
    trained = np.bincount(owner[trained_at], minlength=count).astype(np.int32)
    first_trained = lengths.copy()  # no trained token: the row's length
    rows_with, first = np.unique(owner[trained_at], return_index=True)
    first_trained[rows_with] = trained_at[first] - offsets[rows_with]
    offsets_array = pa.array(offsets)
    return pa.table({"input_ids": pa.ListArray.from_arrays(offsets_array, pa.array(ids)),
                     "labels": pa.ListArray.from_arrays(offsets_array, pa.array(labels)),
                     "length": pa.array(lengths), "first_trained": pa.array(first_trained),
                     "trained": pa.array(trained),
                     "group": pa.array([stable_key(row) for row in rows], pa.int64())})


def _tokenise(building: Path, tokenizer: Any, assistant_only: bool, processes: int, key: str, progress: bool = False,
              pairs: bool = False) -> tuple[list[str], int]:
    """Pass 2: the map, one shard per process; the files it wrote and the tokens in them. Preference pairs
    (`pairs`) are tokenised as lorawiz.data.pairs says."""
    from datasets import Dataset

    from lorawiz.data.pairs import encode_pair_batch, pair_features

    rows = Dataset.from_file(str(building / "rows.arrow"))
    encode, features, kwargs = ((encode_pair_batch, pair_features(), {"tokenizer": tokenizer}) if pairs else
                                (encode_batch, _features(), {"tokenizer": tokenizer, "assistant_only": assistant_only}))
    with _quiet_tokenizers(processes), _progress_bar(progress):
        tokens = rows.map(encode, batched=True, batch_size=MAP_BATCH, num_proc=processes if processes > 1
                          else None, remove_columns=["row"], features=features, fn_kwargs=kwargs,
                          cache_file_name=str(building / "tokens.arrow"), new_fingerprint=key,
                          desc="tokenising")
    files = [Path(item["filename"]).name for item in tokens.cache_files]
    total = int(sum(chunk.sum().as_py() or 0 for chunk in tokens.data.column("length").chunks))
    del tokens, rows
    return files, total


@contextlib.contextmanager
def _progress_bar(show: bool) -> Iterator[None]:
    """datasets' progress bar for this map only (lorawiz.libraries turns them off for the rest of the run)."""
    if not show:
        yield
        return
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_off = are_progress_bars_disabled()
    enable_progress_bars()
    try:
        yield
    finally:
        if was_off:
            disable_progress_bars()


@contextlib.contextmanager
def _quiet_tokenizers(processes: int) -> Iterator[None]:
    """Worker processes tokenise one batch each on one core: the Rust side's own threads would only compete."""
    if processes <= 1:
        yield
        return
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before
