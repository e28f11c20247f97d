"""Several training sources (the `datasets` knob, Axolotl's `datasets:` list) mixed when a run loads its data, with
the code of `lorawiz mix`: weights are shares of the mix, max_samples caps a source's rows. The mix is written once
into the data cache, named by the sources' contents and the settings, and read again by later runs and plans.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from lorawiz.errors import LorawizError


def with_mixed_datasets(resolved: Any) -> Any:
    """The configuration with train_file set to the mix of its `datasets` (unchanged without them)."""
    from lorawiz.config.layers import derived

    cfg = resolved.config
    if not cfg.data.datasets or not resolved.source("train_file").is_default:
        return resolved
    path, note = mix_datasets(cfg)
    return resolved.with_values({"train_file": (str(path), derived(note))})


def mix_datasets(cfg: Any) -> tuple[Path, str]:
    """The mixed file (built now, or found from an earlier run) and a line saying what is in it."""
    from lorawiz.data.cache import content_key, default_cache_root
    from lorawiz.data.mix import MixSource, mix_files

    entries = cfg.data.datasets
    sources = [MixSource(_source_path(entry, number), weight=entry.get("weight"), limit=entry.get("max_samples"))
               for number, entry in enumerate(entries, start=1)]
    key = hashlib.sha256(json.dumps({
        "sources": [content_key(Path(source.path)) for source in sources],
        "weights": [source.weight for source in sources], "limits": [source.limit for source in sources],
        "seed": cfg.training.seed}, sort_keys=True).encode()).hexdigest()[:16]
    folder = default_cache_root(cfg.data.dataset_cache_dir, cfg.model.cache_dir) / "mixes"
    output, info = folder / f"{key}.jsonl", folder / f"{key}.json"
    if output.is_file() and info.is_file():
        return output, json.loads(info.read_text(encoding="utf-8"))["note"]
    folder.mkdir(parents=True, exist_ok=True)
    # overwrite: the same key always makes the same file (fixed seed), so a second process writing it too is harmless
    report = mix_files(sources, output, seed=cfg.training.seed, overwrite=True)
    parts = ", ".join(f"{Path(s.path).name} {s.count:,}" + (f" ({s.share:.0%})" if s.weight is not None else "")
                      for s in report.sources)
    note = f"mix of the {len(sources)} datasets: {parts}; {report.total:,} rows"
    from lorawiz.data.writers import atomic_output

    with atomic_output(info, overwrite=True) as handle:
        json.dump({"note": note, "sources": [s.path for s in report.sources]}, handle)
    return output, note


def _source_path(entry: dict[str, Any], number: int) -> str:
    """A local file, or a Hub dataset id with its split (`org/name:split`)."""
    from lorawiz.data.readers import HUB_ID

    path, split = str(entry["path"]), entry.get("split")
    if split is None or split == "train":
        return path if split is None or Path(path).exists() else f"{path}:{split}"
    if Path(path).exists() or not HUB_ID.match(path):
        raise LorawizError(f"datasets entry {number}: split {split} of the local file {path}.",
                           hint="A split names a part of a Hub dataset; for a local file, leave split out.")
    return f"{path}:{split}"
