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

# adapter_config.json's keys (peft's LoraConfig) -> lorawiz's knobs: what a run starting from an adapter trains with
# (its dropout is no weight: the run's own lora_dropout applies, lorawiz.train.backends.hf.start_adapter)
ADAPTER_KNOBS = {"r": "lora_r", "lora_alpha": "lora_alpha", "target_modules": "lora_target_modules",
                 "bias": "lora_bias", "use_dora": "use_dora", "use_rslora": "use_rslora",
                 "modules_to_save": "modules_to_save", "layers_to_transform": "layers_to_transform"}


def with_sources(resolved: Any) -> Any:
    """The configuration with what its sources say: the mix of its `datasets`, the settings of from_adapter."""
    return with_start_adapter(with_mixed_datasets(resolved))


def with_start_adapter(resolved: Any) -> Any:
    """With from_adapter, the LoRA settings are the adapter's (its weights train on: rank, targets and the rest
    cannot change), and the base model is its base unless --model names one. A LoRA value set to something else
    is refused, since it cannot be honoured."""
    cfg = resolved.config
    if not cfg.model.from_adapter:
        return resolved
    from lorawiz.config.layers import adjusted, derived
    from lorawiz.errors import Problem, ProblemsError

    folder, config = read_adapter_config(cfg.model.from_adapter)
    changes, problems = {}, []
    for key, name in ADAPTER_KNOBS.items():
        value = config.get(key)
        if key == "target_modules" and isinstance(value, list | tuple | set):
            # peft saves all-linear as the modules it found, sometimes by full path (model.layers.0.mlp.up_proj)
            value = sorted({str(name).rsplit(".", 1)[-1] for name in value})
        if value is None and name not in ("modules_to_save", "layers_to_transform"):
            continue
        source = resolved.source(name)
        if source.is_user and resolved.value(name) != value:
            problems.append(Problem(source.where, f"{name} {resolved.value(name)} cannot apply: from_adapter "
                                                  f"{folder} trains on with its own {name} {value}."))
        changes[name] = (value, adjusted(f"the starting adapter's own (from_adapter {folder})"))
    if problems:
        raise ProblemsError("the starting adapter decides its LoRA settings", problems,
                            hint="Drop those settings, or train a new adapter without --from-adapter.")
    base = _run_model(folder) or config.get("base_model_name_or_path")
    if base and resolved.source("model_name_or_path").is_default:
        changes["model_name_or_path"] = (base, derived(f"the base of the adapter {folder}"))
    return resolved.with_values(changes)


def _run_model(folder: Path) -> str | None:
    """The model a lorawiz run folder names in its lorawiz.yaml (a hub id or builtin: name as given, where
    adapter_config.json has the path it loaded)."""
    import yaml

    from lorawiz.models import run_setting

    try:
        found = run_setting(folder, "model", "model_name_or_path")
    except (OSError, ValueError, AttributeError, yaml.YAMLError):  # a damaged file: adapter_config.json's base
        return None
    return found if isinstance(found, str) else None


def read_adapter_config(path: str) -> tuple[Path, dict[str, Any]]:
    """The adapter folder and its adapter_config.json (peft's), or a message naming what is missing."""
    folder = Path(path).expanduser()
    file = folder / "adapter_config.json"
    if not file.is_file():
        raise LorawizError(f"from_adapter {path}: no adapter_config.json there.",
                           hint="Give a lorawiz run folder (its adapter) or a peft adapter folder.")
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LorawizError(f"{file}: not readable as JSON ({exc}).", hint="Restore the adapter's files.") from exc
    if config.get("peft_type", "LORA") != "LORA":
        raise LorawizError(f"{file}: a {config.get('peft_type')} adapter; lorawiz trains LoRA adapters.",
                           hint="Give a LoRA adapter folder.")
    return folder, config


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
