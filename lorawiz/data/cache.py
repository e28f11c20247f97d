"""The tokenised cache's entries: where they live, the fingerprint that names them, and how they come and go.

`<root>/<file id>/<fingerprint>/` holds one tokenised file (lorawiz.data.tokenize): its Arrow files and a
manifest. The fingerprint covers all the tokens depend on: the file (size, mtime and a hash of sampled blocks, or
a Hub dataset's commit), the converter options, the tokenizer (vocabulary and rules, chat template, special
tokens) and the loss-mask setting. An entry is built in a `.building-` folder and renamed into place, so a crash
or a second process never leaves half an entry; entries of a file whose content changed are removed, and at most
KEEP_PER_FILE entries stay per file. Only folders lorawiz built are ever removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lorawiz.data.formats import ConvertOptions
from lorawiz.errors import LorawizError

CACHE_VERSION = 1  # bump when the stored columns or their meaning change
KEEP_PER_FILE = 4  # entries per data file (other tokenizers or settings); the least recently used go first
SAMPLE_BLOCK = 1 << 16
SAMPLE_BLOCKS = 16
MANIFEST = "manifest.json"
STALE_BUILD_S = 24 * 3600


def default_cache_root(dataset_cache_dir: str | None = None, cache_dir: str | None = None) -> Path:
    """The knob dataset_cache_dir; else `<cache_dir>/lorawiz-data` (--cache-dir); else the datasets cache
    (HF_DATASETS_CACHE, ~/.cache/huggingface/datasets)/lorawiz."""
    if dataset_cache_dir:
        return Path(dataset_cache_dir).expanduser()
    if cache_dir:
        return Path(cache_dir).expanduser() / "lorawiz-data"
    from datasets import config

    return Path(config.HF_DATASETS_CACHE).expanduser() / "lorawiz"


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


def content_key(source: Path) -> str:
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


def file_id(path: Path) -> str:
    name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in path.name)[:60]
    return f"{name}-{hashlib.blake2b(str(path.resolve()).encode(), digest_size=6).hexdigest()}"


def make_build_dir(folder: Path, key: str) -> str:
    import tempfile

    from lorawiz.data.writers import current_umask

    build = tempfile.mkdtemp(prefix=f".building-{key}-", dir=folder)
    os.chmod(build, 0o777 & ~current_umask())  # mkdtemp makes it owner-only; the cache is like any other folder
    return build


def write_manifest(folder: Path, data: dict[str, Any]) -> None:
    from lorawiz.data.writers import atomic_output

    with atomic_output(folder / MANIFEST, overwrite=True) as handle:
        handle.write(json.dumps(data, indent=1) + "\n")


def publish(build: Path, entry: Path) -> None:
    """Rename the finished build into place; when another process got there first, keep theirs."""
    try:
        os.replace(build, entry)
    except OSError:
        if not (entry / MANIFEST).is_file():
            raise


def load_entry(entry: Path) -> tuple[Any, str] | None:
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


def touch(entry: Path) -> None:
    with contextlib.suppress(OSError):
        os.utime(entry / MANIFEST)


def evict(folder: Path, keep: Path, content: str) -> None:
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
