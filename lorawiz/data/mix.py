"""`lorawiz mix` as a library call: blend sources by share of the output, shuffled, in canonical chat form.

Mixing general instruction data into domain data is the usual remedy for catastrophic forgetting. Weights are
shares of the output. Without a size, the output is the largest one that meets the shares without using any row
twice; rows repeat only when asked to.

Memory holds the chosen row numbers, never the rows: each source is streamed once to count and check it and
once to write its chosen rows into position buckets on disk, which are then sorted one at a time into the
output. The shuffle is fixed by the seed.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from lorawiz.data.convert import BadRows, iter_canonical, resolve_shape
from lorawiz.data.formats import ConvertOptions, RowProblem
from lorawiz.data.readers import HUB_ID
from lorawiz.data.shares import largest_remainder
from lorawiz.data.writers import atomic_output, check_writable
from lorawiz.errors import LorawizError

BUCKET_ROWS = 50_000  # rows sorted in memory at once when writing the shuffled output
MAX_BUCKETS = 256  # open files at once; buckets grow beyond BUCKET_ROWS rather than exceed this
# What a source holds, by the shape read ("messages" for every chat shape): only one kind mixes into a file
KIND_NAMES = {"text": "plain text", "messages": "chat data", "preference": "preference pairs"}


@dataclass
class MixSource:
    """One SOURCE[:WEIGHT] argument."""

    path: str
    weight: float | None = None
    shape: str = ""
    reason: str = ""
    rows: int = 0  # usable rows in the file
    count: int = 0  # rows it gives the output
    share: float = 0.0  # its target share of the output
    limit: int | None = None  # max_samples: only its first `limit` usable rows take part

    @property
    def repeats(self) -> int:
        """The most times one of its rows appears in the output."""
        return math.ceil(self.count / self.rows) if self.rows else 0


@dataclass
class MixReport:
    sources: list[MixSource] = field(default_factory=list)
    total: int = 0
    output: Path | None = None


def parse_source(spec: str) -> MixSource:
    """`domain.jsonl:0.8` -> path and weight; a tail that is not a number belongs to the path (`org/ds:train`)."""
    path, sep, tail = spec.rpartition(":")
    if sep and path:
        try:
            weight = float(tail)
        except ValueError:
            return MixSource(spec)
        if not math.isfinite(weight) or weight <= 0:
            raise LorawizError(f"{spec}: the weight must be a number above 0.", hint="For example domain.jsonl:0.8.")
        return MixSource(path, weight)
    return MixSource(spec)


def mix_files(sources: list[MixSource], output: str | Path, *, size: int | None = None, seed: int = 42,
              allow_repeat: bool = False, tag_source: bool = False, overwrite: bool = False,
              bucket_rows: int = BUCKET_ROWS) -> MixReport:
    """Write the mix of `sources` to `output`; see the module docstring."""
    output = Path(output)
    if not sources:
        raise LorawizError("no sources to mix.", hint="Give files as SOURCE[:WEIGHT], e.g. domain.jsonl:0.8 "
                                                      "general.jsonl:0.2.")
    weighted = [s.weight is not None for s in sources]
    if any(weighted) and not all(weighted):
        unweighted = next(s.path for s in sources if s.weight is None)
        raise LorawizError(f"{unweighted} has no weight, but other sources do.",
                           hint="Give every source a weight (SOURCE:0.3), or none to mix them in their own sizes.")
    if size is not None and size < 1:
        raise LorawizError(f"--size {size}: must be at least 1.", hint="For example --size 20000.")
    for source in sources:
        if Path(source.path).exists() and output.exists() and Path(source.path).resolve() == output.resolve():
            raise LorawizError(f"{output} is also a source.", hint="Write the mix to another path.")
    check_writable(output, overwrite, inputs=[source.path for source in sources])

    for source in sources:
        if not Path(source.path).exists() and not HUB_ID.match(source.path) and not source.path.startswith("builtin:"):
            raise LorawizError(f"{source.path} not found.", hint="Check the path; a weight follows a colon, as in "
                                                                  "domain.jsonl:0.8.")
    kinds = {source.path: _scan(source) for source in sources}
    if len(set(kinds.values())) > 1:
        (one, kind), (other, other_kind) = next(iter(kinds.items())), next(
            (path, k) for path, k in kinds.items() if k != next(iter(kinds.values())))
        raise LorawizError(f"{one} is {KIND_NAMES[kind]} and {other} is {KIND_NAMES[other_kind]}: they cannot be "
                           "mixed into one file.", hint="Mix sources of one kind.")
    weights = [s.weight if s.weight is not None else s.rows for s in sources]
    total = size if size is not None else _largest_total([s.rows for s in sources], weights)
    counts = largest_remainder(total, weights)
    for source, count, weight in zip(sources, counts, weights, strict=True):
        source.count, source.share = count, weight / sum(weights)
        if count > source.rows and not allow_repeat:
            most = _largest_total([s.rows for s in sources], weights)
            raise LorawizError(f"{source.path} has {source.rows} rows, but a {source.share:.1%} share of {total} "
                               f"needs {count}.", hint=f"Lower --size to {most} or less, or pass --allow-repeat to "
                                                       "repeat rows.")
    _write(sources, output, total, seed, tag_source, overwrite, bucket_rows)
    return MixReport(sources, total, output)


def _scan(source: MixSource) -> str:
    """Detect the shape, count the usable rows, and fail on bad ones; returns "text" or "messages"."""
    path = Path(source.path)
    opts = ConvertOptions(preference=True)
    source.shape, source.reason = resolve_shape(path, opts)
    bad = BadRows()
    for line, row in iter_canonical(path, source.shape, opts):
        if isinstance(row, RowProblem):
            bad.note(line, row.kind)
        else:
            source.rows += 1
            if source.limit is not None and source.rows >= source.limit:
                break
    bad.raise_if_any(path, "nothing was written", hint=f"Clean it first (lorawiz format {path} -o clean.jsonl "
                                                       "--skip-bad), then mix the clean file.")
    if source.rows == 0:
        raise LorawizError(f"{path} has no rows.", hint="Check the file.")
    return source.shape if source.shape in KIND_NAMES else "messages"


def _largest_total(rows: list[int], weights: list[float]) -> int:
    """The largest output whose exact shares fit every source, and whose rounded counts do too."""
    weight_sum = sum(weights)
    total = min(math.floor(n * weight_sum / w) for n, w in zip(rows, weights, strict=True))
    while total > 0 and any(c > n for c, n in zip(largest_remainder(total, weights), rows, strict=True)):
        total -= 1
    return total


def _chosen_rows(rng: random.Random, rows: int, count: int) -> list[int]:
    """Sorted row numbers to take: a sample without repeats, or whole copies plus a sample when count > rows."""
    copies, rest = divmod(count, rows)
    chosen = list(range(rows)) * copies + rng.sample(range(rows), rest)
    chosen.sort()
    return chosen


def _write(sources: list[MixSource], output: Path, total: int, seed: int, tag_source: bool, overwrite: bool,
           bucket_rows: int) -> None:
    rng = random.Random(seed)
    positions = list(range(total))
    rng.shuffle(positions)
    per_bucket = max(bucket_rows, math.ceil(total / MAX_BUCKETS))
    n_buckets = max(1, math.ceil(total / per_bucket))
    with tempfile.TemporaryDirectory(prefix=f".{output.name}.", dir=output.parent) as tmp:
        buckets = [open(Path(tmp) / f"{b}.tsv", "w", encoding="utf-8") for b in range(n_buckets)]  # noqa: SIM115
        try:
            start = 0
            for source in sources:
                chosen = _chosen_rows(rng, source.rows, source.count)
                mine = positions[start:start + source.count]
                start += source.count
                _spread(source, chosen, mine, buckets, per_bucket, tag_source)
        finally:
            for handle in buckets:
                handle.close()
        with atomic_output(output, overwrite) as out:
            for b in range(n_buckets):
                with open(Path(tmp) / f"{b}.tsv", encoding="utf-8") as handle:
                    lines = [line.split("\t", 1) for line in handle]
                lines.sort(key=lambda pair: int(pair[0]))
                out.writelines(text for _, text in lines)
                del lines


def _spread(source: MixSource, chosen: list[int], positions: list[int], buckets: list, per_bucket: int,
            tag_source: bool) -> None:
    """Stream one source and write each chosen row, once per time it was chosen, to its position's bucket."""
    k = 0
    for index, (_, row) in enumerate(_usable_rows(source)):
        if k == len(chosen):
            break
        if chosen[k] != index:
            continue
        if tag_source:
            row = {**row, "source": source.path}
        text = json.dumps(row, ensure_ascii=False)
        while k < len(chosen) and chosen[k] == index:
            position = positions[k]
            buckets[position // per_bucket].write(f"{position}\t{text}\n")
            k += 1
    if k != len(chosen):
        raise LorawizError(f"{source.path} changed while it was being mixed.", hint="Run the mix again.")


def _usable_rows(source: MixSource):
    for line, row in iter_canonical(Path(source.path), source.shape, ConvertOptions(preference=True)):
        if not isinstance(row, RowProblem):
            yield line, row
