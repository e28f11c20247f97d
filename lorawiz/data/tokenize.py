"""Training data at any size: canonical rows tokenised once, on every core, into memory-mapped Arrow, cached by content.

Two passes, neither holding all rows as Python objects:

1. The file streams through the readers and converters `lorawiz format` uses into an Arrow file of canonical rows
   (JSON text). Bad rows fail here, with their line numbers, before any model loads.
2. `datasets.Dataset.map` over that file, one process per core: chat template, one batched fast-tokenizer call per
   batch, loss mask (lorawiz.data.masking.encode_rows, the same code the in-memory path uses), written as int32
   Arrow columns: input_ids, labels, length (before truncation), first_trained (position of the first trained
   token), trained (trained tokens) and group (a stable 64-bit key of the row up to case and whitespace, so the
   hold-out split keeps near-duplicates on one side).

The result lives in `<cache root>/<file id>/<fingerprint>/` under a fingerprint of all it depends on: the file
(size, mtime and a hash of sampled blocks), the converter options, the tokenizer (vocabulary and rules, chat
template, special tokens) and the loss-mask setting. Truncation at max_seq_length and the hold-out split are views
on it (lorawiz.data.view): index selections, plus a small cached Arrow file of the rows longer than max_seq_length.
An entry is built in a temporary folder and renamed into place, so a crash or a second process never leaves half a
cache; entries of a file whose content changed are removed, and at most KEEP_PER_FILE entries are kept per file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lorawiz.data.convert import BadRows, iter_canonical, resolve_shape
from lorawiz.data.formats import ConvertOptions, RowProblem
from lorawiz.data.masking import IGNORE_INDEX, encode_rows
from lorawiz.errors import LorawizError

CACHE_VERSION = 1  # bump when the stored columns or their meaning change
KEEP_PER_FILE = 4  # entries per data file (other tokenizers or settings); the least recently used go first
ROWS_PER_BATCH = 10_000  # canonical rows per Arrow record batch in pass 1
MAP_BATCH = 256  # rows per tokenizer call in pass 2
ROWS_PER_PROCESS = 5_000  # below this many rows per process, extra processes cost more than they save
SAMPLE_BLOCK = 1 << 16
SAMPLE_BLOCKS = 16
MANIFEST = "manifest.json"
STALE_BUILD_S = 24 * 3600


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


def default_cache_root(dataset_cache_dir: str | None = None, cache_dir: str | None = None) -> Path:
    """The knob dataset_cache_dir; else `<cache_dir>/lorawiz-data` (--cache-dir); else the datasets cache
    (HF_DATASETS_CACHE, ~/.cache/huggingface/datasets)/lorawiz."""
    if dataset_cache_dir:
        return Path(dataset_cache_dir).expanduser()
    if cache_dir:
        return Path(cache_dir).expanduser() / "lorawiz-data"
    from datasets import config

    return Path(config.HF_DATASETS_CACHE).expanduser() / "lorawiz"


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


# ---------------------------------------------------------------------------------------------------------
# Fingerprints


def file_fingerprint(path: Path) -> str:
    """Size, mtime and a hash of sampled blocks (start, end and evenly between): a changed file gets a new one."""
    stat = path.stat()
    digest = hashlib.blake2b(f"{stat.st_size}:{stat.st_mtime_ns}".encode(), digest_size=16)
    with path.open("rb") as handle:
        if stat.st_size <= SAMPLE_BLOCK * SAMPLE_BLOCKS:
            digest.update(handle.read())
        else:
            step = (stat.st_size - SAMPLE_BLOCK) // (SAMPLE_BLOCKS - 1)
            for k in range(SAMPLE_BLOCKS):
                handle.seek(k * step)
                digest.update(handle.read(SAMPLE_BLOCK))
    return digest.hexdigest()


def _content_key(source: Path) -> str:
    """The file's fingerprint; for a Hub dataset id, its id and the commit it resolves to now."""
    import itertools

    from lorawiz.data.readers import HUB_ID, check_readable, iter_rows

    if source.is_file():
        check_readable(source)
        return file_fingerprint(source)
    if not source.exists() and HUB_ID.match(str(source)):
        from lorawiz.hub import hub_reachable

        if not hub_reachable():
            list(itertools.islice(iter_rows(source), 1))  # the reader's own message: unreachable, check the path
        try:
            from huggingface_hub import HfApi

            sha = HfApi().dataset_info(str(source).partition(":")[0]).sha
        except Exception as exc:  # huggingface_hub raises many types for a missing or gated repo  # noqa: BLE001
            raise LorawizError(f"{source}: not a local file, and the Hub dataset could not be looked up ({exc}).",
                               hint="Check the path, or the dataset id and your network / HF_TOKEN.") from exc
        return f"hub:{source}:{sha}"
    list(itertools.islice(iter_rows(source), 1))  # not found / not a file, as every data command says it
    raise LorawizError(f"{source} cannot be read.", hint="Check the path of the data file.")


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """What decides the tokens: the tokenizer's full definition, its chat template and special tokens."""
    digest = hashlib.blake2b(digest_size=16)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        digest.update(backend.to_str().encode())
    else:
        digest.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    for part in (type(tokenizer).__name__, tokenizer.chat_template or "", tokenizer.bos_token or "",
                 tokenizer.eos_token or "", json.dumps(getattr(tokenizer, "special_tokens_map", {}), sort_keys=True,
                                                       default=str)):
        digest.update(b"\0" + str(part).encode())
    return digest.hexdigest()


def fingerprint(content: str, opts: ConvertOptions, tokenizer_fp: str, assistant_only: bool) -> str:
    options = {key: value for key, value in asdict(opts).items() if key != "seen_labels"}
    parts = {"version": CACHE_VERSION, "content": content, "options": options, "tokenizer": tokenizer_fp,
             "assistant_only": assistant_only}
    return hashlib.blake2b(json.dumps(parts, sort_keys=True, default=str).encode(), digest_size=16).hexdigest()


def _file_id(path: Path) -> str:
    name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in path.name)[:60]
    return f"{name}-{hashlib.blake2b(str(path.resolve()).encode(), digest_size=6).hexdigest()}"


# ---------------------------------------------------------------------------------------------------------
# Building


def tokenise_file(source: str | Path, tokenizer: Any, *, opts: ConvertOptions | None = None,
                  assistant_only: bool = True, cache_root: Path, processes: int | None = None,
                  stopped: str = "training did not start", say: Any = None, build: bool = True,
                  poll_s: float = 0.5) -> TokenisedFile:
    """The file's rows tokenised, from the cache when nothing it depends on changed, else built and cached.

    With build=False (the other processes of a machine under DDP) a missing entry is waited for, not built: the
    first process builds it. The wait has no timeout of its own: a launcher (torchrun, accelerate) stops every
    process when one fails, so a failed build does not leave the others waiting.
    """
    source = Path(source)
    opts = opts or ConvertOptions()
    started = time.monotonic()
    content = _content_key(source)
    key = fingerprint(content, opts, tokenizer_fingerprint(tokenizer), assistant_only)
    folder = cache_root / _file_id(source)
    entry = folder / key
    found = _load(entry, source)
    while found is None and not build:
        time.sleep(poll_s)
        found = _load(entry, source)
    if found is not None:
        _touch(entry)
        return TokenisedFile(source, found[1], found[0], entry, True, time.monotonic() - started, 0)
    folder.mkdir(parents=True, exist_ok=True)
    build = Path(_make_build_dir(folder, key))
    try:
        shape, rows = _write_canonical(source, opts, build / "rows.arrow", stopped)
        read_seconds = time.monotonic() - started
        cores = processes or available_cores()
        used = max(1, min(cores, rows // ROWS_PER_PROCESS))
        if say:
            say(f"tokenising {source} ({rows:,} rows) on {used} process{'es' if used > 1 else ''}; cached for the "
                f"next run in {cache_root}")
        files, tokens = _tokenise(build, tokenizer, assistant_only, used, key)
        tokenise_seconds = time.monotonic() - started - read_seconds
        (build / "rows.arrow").unlink()
        _write_manifest(build, {"lorawiz_cache": CACHE_VERSION, "source": str(source.resolve()), "content": content,
                                "fingerprint": key, "shape": shape, "rows": rows, "tokens": tokens,
                                "files": files, "processes": used, "read_seconds": round(read_seconds, 3),
                                "tokenise_seconds": round(tokenise_seconds, 3)})
        _publish(build, entry)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    _evict(folder, keep=entry, content=content)
    loaded = _load(entry, source)
    if loaded is None:
        raise LorawizError(f"the tokenised cache of {source} at {entry} could not be read back.",
                           hint="Check the disk, or set dataset_cache_dir to another folder.")
    return TokenisedFile(source, loaded[1], loaded[0], entry, False, time.monotonic() - started, used)


def _make_build_dir(folder: Path, key: str) -> str:
    import tempfile

    from lorawiz.data.writers import current_umask

    build = tempfile.mkdtemp(prefix=f".building-{key}-", dir=folder)
    os.chmod(build, 0o777 & ~current_umask())  # mkdtemp makes it owner-only; the cache is like any other folder
    return build


def _write_canonical(source: Path, opts: ConvertOptions, out: Path, stopped: str) -> tuple[str, int]:
    """Pass 1: canonical rows as JSON text in an Arrow stream file; every bad row reported at once."""
    import pyarrow as pa

    shape, _ = resolve_shape(source, opts)
    schema = pa.schema([("row", pa.string())])
    bad, rows, batch = BadRows(), 0, []
    with pa.OSFile(str(out), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for line, row in iter_canonical(source, shape, opts):
            if isinstance(row, RowProblem):
                bad.note(line, row.kind)
                continue
            rows += 1
            if bad.count:
                continue  # the run fails: only count the rest
            batch.append(json.dumps(row, ensure_ascii=False))
            if len(batch) >= ROWS_PER_BATCH:
                writer.write_batch(pa.record_batch([pa.array(batch, pa.string())], schema=schema))
                batch = []
        if batch:
            writer.write_batch(pa.record_batch([pa.array(batch, pa.string())], schema=schema))
    bad.raise_if_any(source, stopped, hint=f"Clean it first: lorawiz format {source} -o clean.jsonl --skip-bad")
    if not rows:
        raise LorawizError(f"{source} has no rows.", hint="Check the file.")
    return shape, rows


def _features() -> Any:
    from datasets import Features, Sequence, Value

    return Features({"input_ids": Sequence(Value("int32")), "labels": Sequence(Value("int32")),
                     "length": Value("int32"), "first_trained": Value("int32"), "trained": Value("int32"),
                     "group": Value("int64")})


def encode_batch(batch: dict[str, list], tokenizer: Any, assistant_only: bool) -> dict[str, list]:
    """Pass 2, one batch (runs in each worker): canonical JSON rows -> token columns."""
    import numpy as np

    from lorawiz.data.dedupe import stable_key

    rows = [json.loads(text) for text in batch["row"]]
    encoded = encode_rows(tokenizer, rows, assistant_only)
    out: dict[str, list] = {"input_ids": [], "labels": [], "length": [], "first_trained": [], "trained": [],
                            "group": [stable_key(row) for row in rows]}
    for ids, labels in encoded:
        trained = labels != IGNORE_INDEX
        out["input_ids"].append(ids)
        out["labels"].append(labels)
        out["length"].append(len(ids))
        out["first_trained"].append(int(np.argmax(trained)) if trained.any() else len(ids))
        out["trained"].append(int(trained.sum()))
    return out


def _tokenise(build: Path, tokenizer: Any, assistant_only: bool, processes: int, key: str) -> tuple[list[str], int]:
    """Pass 2: the map, one shard per process; the files it wrote and the tokens in them."""
    from datasets import Dataset

    rows = Dataset.from_file(str(build / "rows.arrow"))
    with _quiet_tokenizers(processes):
        tokens = rows.map(encode_batch, batched=True, batch_size=MAP_BATCH, num_proc=processes if processes > 1
                          else None, remove_columns=["row"], features=_features(),
                          fn_kwargs={"tokenizer": tokenizer, "assistant_only": assistant_only},
                          cache_file_name=str(build / "tokens.arrow"), new_fingerprint=key,
                          desc="tokenising")
    files = [Path(item["filename"]).name for item in tokens.cache_files]
    total = int(sum(chunk.sum().as_py() or 0 for chunk in tokens.data.column("length").chunks))
    del tokens, rows
    return files, total


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


def _write_manifest(folder: Path, data: dict[str, Any]) -> None:
    temp = folder / f".{MANIFEST}.tmp"
    temp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(temp, folder / MANIFEST)


def _publish(build: Path, entry: Path) -> None:
    """Rename the finished build into place; when another process got there first, keep theirs."""
    try:
        os.replace(build, entry)
    except OSError:
        if not (entry / MANIFEST).is_file():
            raise


def _load(entry: Path, source: Path) -> tuple[Any, str] | None:
    """(dataset, shape) of a complete entry, or None."""
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("lorawiz_cache") != CACHE_VERSION:
        return None
    from datasets import Dataset, concatenate_datasets

    try:
        parts = [Dataset.from_file(str(entry / name)) for name in manifest["files"]]
    except (OSError, KeyError, ValueError):
        return None
    dataset = parts[0] if len(parts) == 1 else concatenate_datasets(parts)
    if len(dataset) != manifest.get("rows"):
        return None
    return dataset, manifest.get("shape", "")


def _touch(entry: Path) -> None:
    with contextlib.suppress(OSError):
        os.utime(entry / MANIFEST)


def _evict(folder: Path, keep: Path, content: str) -> None:
    """Entries of this file made from other content go; of the rest, the newest KEEP_PER_FILE stay. Only folders
    lorawiz built (a manifest of ours, or a stale `.building-` folder) are removed."""
    entries = []
    for child in folder.iterdir():
        if child == keep or not child.is_dir():
            continue
        if child.name.startswith(".building-"):
            with contextlib.suppress(OSError):
                if time.time() - child.stat().st_mtime > STALE_BUILD_S:
                    shutil.rmtree(child, ignore_errors=True)
            continue
        try:
            manifest = json.loads((child / MANIFEST).read_text())
        except (OSError, ValueError):
            continue
        if "lorawiz_cache" not in manifest:
            continue
        if manifest.get("content") != content:
            shutil.rmtree(child, ignore_errors=True)
        else:
            entries.append(((child / MANIFEST).stat().st_mtime, child))
    for _, child in sorted(entries, reverse=True)[KEEP_PER_FILE - 1:]:
        shutil.rmtree(child, ignore_errors=True)
