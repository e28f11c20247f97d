"""Views on a tokenised file (lorawiz.data.tokenize): the hold-out split, and truncation at max_seq_length.

Index selections on the memory-mapped rows: nothing is copied but the rows longer than max_seq_length, which are
cut into a small Arrow file cached in the entry, and read from there in file order. The split's validation rows
are cached in the entry too (a .npy of indices). Of each kind, the newest KEEP_VIEWS files stay.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorawiz.data.cache import CACHE_VERSION
from lorawiz.data.masking import IGNORE_INDEX
from lorawiz.data.tokenize import TokenisedFile

KEEP_VIEWS = 4  # truncated row files per entry


@dataclass
class View:
    """The rows one side of a run trains or evaluates on, truncated at max_seq_length, and what that cost."""

    dataset: Any  # datasets.Dataset: input_ids, labels, length (after truncation)
    rows: int
    truncated: int  # rows cut at max_seq_length
    dropped: int  # rows with no trained token left within max_seq_length
    trained_tokens: int
    total_tokens: int  # before truncation
    lengths: Any = None  # numpy: each row's length after truncation (the dataset's `length` column, in order)



def holdout(tokenised: TokenisedFile, ratio: float, seed: int) -> tuple[Any, Any]:
    """(train indices, validation indices) as numpy arrays: the split lorawiz.data.rows.holdout_split makes,
    cached in the entry (its seeded shuffle of the groups is most of the time at 1M rows)."""
    import numpy as np

    path = _cached(tokenised.entry, "split", f"{ratio!r}-{seed}-{CACHE_VERSION}", ".npy",
                   lambda temp: np.save(temp, _holdout_rows(tokenised, ratio, seed), allow_pickle=False))
    try:
        val = np.load(path, allow_pickle=False)
    except (OSError, ValueError):  # a damaged file: the split again (and the file again next time)
        path.unlink(missing_ok=True)
        val = _holdout_rows(tokenised, ratio, seed)
    in_val = np.zeros(tokenised.rows, dtype=bool)
    in_val[val] = True
    return np.nonzero(~in_val)[0], val


def _holdout_rows(tokenised: TokenisedFile, ratio: float, seed: int) -> Any:
    import numpy as np

    from lorawiz.data.rows import holdout_groups

    keys = tokenised.column("group")
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    groups = rank[inverse.reshape(-1)]  # group ids in order of first appearance, as DuplicateFinder numbers them
    sizes = np.bincount(groups)
    chosen = holdout_groups(sizes.tolist(), len(keys), ratio, seed)
    return np.nonzero(np.isin(groups, np.fromiter(chosen, dtype=np.int64, count=len(chosen))))[0]


def _cached(entry: Path, kind: str, key: str, suffix: str, write: Any) -> Path:
    """entry/<kind>-<key><suffix>, written by `write(temp path)` when missing (atomically: several processes may
    ask at once); of each kind, the newest KEEP_VIEWS files stay."""
    stem = f"{kind}-{key}"
    path = entry / f"{stem}{suffix}"
    if path.exists():
        with contextlib.suppress(OSError):
            os.utime(path)
        return path
    temp = entry / f".{stem}.{os.getpid()}.tmp{suffix}"
    try:
        write(temp)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    os.replace(temp, path)
    kept = sorted(entry.glob(f"{kind}-*{suffix}"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in kept[KEEP_VIEWS:]:
        with contextlib.suppress(OSError):
            old.unlink()
    return path


def training_view(tokenised: TokenisedFile, indices: Any, max_seq_length: int, *, name: str = "train") -> View:
    """The rows at `indices` (None: all), truncated at max_seq_length, rows left with nothing to learn dropped.

    An index view on the tokenised file: only the rows longer than max_seq_length are copied, truncated, into a
    small Arrow file cached in the entry, and the view reads them from there (the file order is kept).
    """
    import numpy as np
    from datasets import concatenate_datasets

    length, first = tokenised.column("length"), tokenised.column("first_trained")
    trained = tokenised.column("trained")
    picked = np.arange(len(length)) if indices is None else np.asarray(indices, dtype=np.int64)
    keep = picked[first[picked] < max_seq_length]
    long = length[keep] > max_seq_length
    stats = {"rows": int(len(keep)), "truncated": int((length[picked] > max_seq_length).sum()),
             "dropped": int(len(picked) - len(keep)), "total_tokens": int(length[picked].sum()),
             "trained_tokens": int(trained[keep[~long]].sum())}
    stats["lengths"] = np.minimum(length[keep], max_seq_length)
    base = tokenised.dataset.select_columns(["input_ids", "labels", "length"])
    key = f"{tokenised.entry.name}:{max_seq_length}"
    if long.any():
        cut = _truncated(tokenised, keep[long], max_seq_length, name)
        stats["trained_tokens"] += _trained_tokens(cut)
        positions = keep.copy()
        positions[long] = len(base) + np.arange(int(long.sum()))
        dataset = _indexed(concatenate_datasets([base, cut]), positions, key)
    elif len(keep) < len(length):
        dataset = _indexed(base, keep, key)
    else:
        dataset = base
    return View(dataset, **stats)


def pair_view(tokenised: TokenisedFile, indices: Any, max_seq_length: int, unpaired_seed: int | None = None
              ) -> View:
    """Preference pairs (lorawiz.data.pairs) at `indices` (None: all), as DPOTrainer takes them: pairs whose prompt
    alone fills max_seq_length dropped (TRL drops them too: nothing of either answer would be left), the rest left
    whole for its collator, which cuts each sequence at max_length (its keep_start truncation).

    With `unpaired_seed`, as KTOTrainer takes them: each pair as two rows, {prompt_ids, completion_ids, label},
    label true for the chosen answer and false for the rejected one (what TRL's unpair_preference_dataset makes of
    a pair), in an order shuffled once with the seed (KTO reads its rows in sequence). Still a view: both sides
    are the memory-mapped columns, the order an index."""
    import numpy as np

    from lorawiz.data.pairs import PAIR_COLUMNS

    length, prompt = tokenised.column("length"), tokenised.column("first_trained")
    picked = np.arange(len(length)) if indices is None else np.asarray(indices, dtype=np.int64)
    keep = picked[prompt[picked] < max_seq_length]
    if unpaired_seed is not None:
        return _unpaired(tokenised, keep, picked, max_seq_length, unpaired_seed)
    room = max_seq_length - prompt[keep]
    trained = int(sum(np.minimum(side[keep], room).sum() for side in _answer_lengths(tokenised)))
    base = tokenised.dataset.select_columns(list(PAIR_COLUMNS))
    dataset = base if len(keep) == len(length) else _indexed(base, keep, f"{tokenised.entry.name}:{max_seq_length}")
    return View(dataset, rows=int(len(keep)), truncated=int((length[picked] > max_seq_length).sum()),
                dropped=int(len(picked) - len(keep)), trained_tokens=trained, total_tokens=int(length[picked].sum()),
                lengths=np.minimum(length[keep], max_seq_length))


def _answer_lengths(tokenised: TokenisedFile) -> list[Any]:
    """Each pair's chosen and rejected answer lengths, as numpy arrays (from Arrow, no Python per row)."""
    import numpy as np
    import pyarrow.compute as pc

    return [np.asarray(pc.list_value_length(tokenised.dataset.data.column(side)).to_numpy())
            for side in ("chosen_ids", "rejected_ids")]


def _unpaired(tokenised: TokenisedFile, keep: Any, picked: Any, max_seq_length: int, seed: int) -> View:
    import numpy as np
    from datasets import Dataset, concatenate_datasets

    count = len(tokenised.dataset)
    sides = []
    for side, desirable in (("chosen_ids", True), ("rejected_ids", False)):
        answers = tokenised.dataset.select_columns(["prompt_ids", side]).rename_column(side, "completion_ids")
        labels = Dataset.from_dict({"label": np.full(count, desirable)})
        sides.append(concatenate_datasets([answers, labels], axis=1))
    rows = np.concatenate([keep, keep + count])  # row i of the file: its chosen answer at i, its rejected at count+i
    rows = rows[np.random.default_rng(seed).permutation(len(rows))]
    lengths = np.concatenate(_answer_lengths(tokenised)) + np.tile(tokenised.column("first_trained"), 2)
    both = concatenate_datasets(sides)
    dataset = _indexed(both, rows, f"{tokenised.entry.name}:{max_seq_length}:unpaired:{seed}")
    cut = np.minimum(lengths[rows], max_seq_length)
    return View(dataset, rows=len(rows), truncated=int((lengths[rows] > max_seq_length).sum()),
                dropped=2 * int(len(picked) - len(keep)),
                trained_tokens=int((cut - tokenised.column("first_trained")[rows % count]).sum()),
                total_tokens=int(lengths[rows].sum()), lengths=cut)


def _indexed(dataset: Any, positions: Any, key: str) -> Any:
    """`dataset.select(positions)` (a dataset with no indices mapping yet) without select's work per index in
    Python: the same in-memory indices mapping, made from the numpy array at once (1M rows: 0.2 s down to ms)."""
    import numpy as np
    import pyarrow as pa
    from datasets import Dataset
    from datasets.table import InMemoryTable

    positions = np.asarray(positions, dtype=np.uint64)
    digest = hashlib.blake2b(positions.tobytes(), digest_size=8)
    digest.update(key.encode())  # the view's fingerprint, for datasets' caching of maps over it (TRL's packing)
    indices = InMemoryTable(pa.table({"indices": pa.array(positions)}))
    return Dataset(dataset.data, info=dataset.info.copy(), split=dataset.split, indices_table=indices,
                   fingerprint=digest.hexdigest())


def _truncated(tokenised: TokenisedFile, rows: Any, max_seq_length: int, name: str) -> Any:
    """The rows at `rows` (ascending) cut at max_seq_length, cached in the entry by (those rows, max_seq_length).

    Read batch by batch from the Arrow files with plain reads, not through the memory map: the kernel maps a few
    hundred KB around every page a mapped read touches, so picking rows spread over a 2 GB file through the map
    would put most of it in this process's RSS.
    """
    from datasets import Dataset

    digest = hashlib.blake2b(rows.astype("<i8").tobytes(), digest_size=8)
    digest.update(f"{max_seq_length}:{CACHE_VERSION}".encode())
    path = _cached(tokenised.entry, f"view-{name}", digest.hexdigest(), ".arrow",
                   lambda temp: _write_cut(tokenised, rows, max_seq_length, temp))
    return Dataset.from_file(str(path))


def _write_cut(tokenised: TokenisedFile, rows: Any, max_seq_length: int, out: Path) -> None:
    import numpy as np
    import pyarrow as pa

    schema = pa.schema([("input_ids", pa.list_(pa.int32())), ("labels", pa.list_(pa.int32())), ("length", pa.int32())])
    start, taken = 0, 0
    with pa.OSFile(str(out), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for file in tokenised.files:
            with pa.OSFile(str(file), "rb") as source:
                for batch in pa.ipc.open_stream(source):
                    stop = start + batch.num_rows
                    here = rows[taken:np.searchsorted(rows, stop)] - start
                    if len(here):
                        part = pa.Table.from_batches([batch]).select(["input_ids", "labels", "length"])
                        writer.write_table(_truncate_table(part.take(pa.array(here)), max_seq_length))
                        taken += len(here)
                    start = stop


def _truncate_table(table: Any, max_seq_length: int) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = pc.list_slice(table["input_ids"], 0, max_seq_length)
    labels = pc.list_slice(table["labels"], 0, max_seq_length)
    length = pc.min_element_wise(table["length"], pa.scalar(max_seq_length, pa.int32()))
    return pa.table({"input_ids": ids, "labels": labels, "length": length.cast(pa.int32())})


def _trained_tokens(dataset: Any) -> int:
    import pyarrow.compute as pc

    labels = pc.list_flatten(dataset.data.column("labels"))
    return int(pc.sum(pc.not_equal(labels, IGNORE_INDEX).cast("int64")).as_py() or 0)
