"""A model's facts from wherever they are: the built-in catalog, a local config.json, or the Hub's config.json.

The impure edge of lorawiz.catalog (which stays pure): it reads files and, for an unknown hub id, downloads one.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from lorawiz.catalog import (
    _HUB_ID,
    _LOCAL_HINT,
    ModelFacts,
    _text_config,
    catalog_names,
    facts_from_config,
    find_model,
)
from lorawiz.errors import LorawizError


def _read_config(path: Path, name: str) -> ModelFacts:
    """Facts from a config.json file on disk."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise LorawizError(f"{path} line {exc.lineno}: not valid JSON ({exc.msg}).",
                           hint="Restore the model's original config.json.") from exc
    except OSError as exc:
        raise LorawizError(f"cannot read {path}: {exc.strerror}.", hint=_LOCAL_HINT) from exc
    if not isinstance(config, dict):
        raise LorawizError(f"{path} does not hold a JSON object.", hint="Restore the model's original config.json.")
    facts = facts_from_config(config, name)
    counted = count_on_meta(config, facts)
    return dataclasses.replace(facts, counted=counted) if counted else facts


def count_on_meta(config: dict[str, Any], facts: ModelFacts) -> tuple[tuple[str, int], ...]:
    """Exact parameter counts of a config, from building its model on the meta device with accelerate's
    init_empty_weights (no memory; under a second for a 70B model, after the ~7 s import of transformers): the
    catalog's formulas cannot know every architecture. Empty when transformers cannot build it here (an unknown
    model_type, remote code). Kept per config and transformers version in the cache folder, so a second plan of
    the same model imports nothing."""
    from importlib.metadata import PackageNotFoundError, version

    from lorawiz.builtin.cache import default_cache_root

    try:
        library = version("transformers")
    except PackageNotFoundError:
        return ()
    key = hashlib.sha256(json.dumps([config, library], sort_keys=True, default=str).encode()).hexdigest()[:32]
    cached = default_cache_root() / "parameter-counts" / f"{key}.json"
    try:
        return tuple((name, int(count)) for name, count in json.loads(cached.read_text()))
    except (OSError, ValueError, TypeError):
        pass
    counts = _count_on_meta(config, facts)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        temporary = cached.with_name(f".{cached.name}.{os.getpid()}")
        temporary.write_text(json.dumps(list(counts)))
        os.replace(temporary, cached)
    except OSError:  # a read-only cache: counted again next time
        pass
    return counts


def _count_on_meta(config: dict[str, Any], facts: ModelFacts) -> tuple[tuple[str, int], ...]:
    try:
        from accelerate import init_empty_weights
        from transformers import AutoConfig, AutoModelForCausalLM

        keys, model_type = _text_config(config)
        values = {key: value for key, value in keys.items()
                  if key not in ("model_type", "text_config", "vision_config", "quantization_config",
                                 "architectures", "auto_map")}
        built = AutoConfig.for_model(model_type, **values)
        with init_empty_weights():
            model = AutoModelForCausalLM.from_config(built)
        model.tie_weights()  # init_empty_weights skips the tying from_config does on a real device
    except Exception:  # anything transformers cannot build: the formula's count stands
        return ()
    counts = dict.fromkeys(("embeddings", "layers", "lm_head", "experts"), 0)
    embedding = model.get_input_embeddings().weight
    for name, parameter in model.named_parameters():  # a tied lm_head is the embedding, listed once
        if parameter is embedding:
            counts["embeddings"] += parameter.numel()
        elif name.split(".")[0] == "lm_head":
            counts["lm_head"] += parameter.numel()
        else:
            counts["layers"] += parameter.numel()
            if ".experts." in name:
                counts["experts"] += parameter.numel()
    counts["total"] = counts["embeddings"] + counts["layers"] + counts["lm_head"]
    idle = round(counts["experts"] * (1 - facts.active_experts / facts.experts)) if facts.is_moe else 0
    counts["active"] = counts["total"] - idle
    return tuple(counts.items())


def _facts_from_hub(repo_id: str) -> ModelFacts:
    """Download only config.json of a hub repo; any failure becomes one LorawizError."""
    from lorawiz.hub import hub_reachable

    online = hub_reachable()
    try:
        from huggingface_hub import hf_hub_download

        # Offline: the local cache only, at once, rather than ~20 s of connection retries.
        config_path = hf_hub_download(repo_id, "config.json", **({} if online else {"local_files_only": True}))
    # Offline, unknown repo, gated repo, missing package: each means the architecture cannot be known here.
    except Exception as exc:
        raise LorawizError(
            f'cannot read the architecture of "{repo_id}": it is not in the built-in catalog, not a local folder, '
            + ("and the Hugging Face Hub did not answer" if online else "the Hugging Face Hub is unreachable from "
               "here, and it is not in the local cache") + f" ({type(exc).__name__}).",
            hint=f"{_LOCAL_HINT} Gated models need `hf auth login` first.",
        ) from exc
    return _read_config(Path(config_path), repo_id)


def load_model_facts(name_or_path: str) -> ModelFacts:
    """Facts for a catalog name, a local model folder (or its config.json), or a hub id fetched from the Hub."""
    if not name_or_path.strip():
        raise LorawizError("no model given.", hint=f"Name a built-in model such as llama3.1-8b. {_LOCAL_HINT}")
    facts = find_model(name_or_path)
    if facts is not None:
        return facts
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        config_path = path / "config.json"
        if not config_path.is_file():
            raise LorawizError(f"model folder {path} has no config.json, so its architecture is unknown.",
                               hint="Point at the folder that holds config.json next to the weight files.")
        return _read_config(config_path, str(path))
    if path.is_file():
        return _read_config(path, str(path.parent) if path.name == "config.json" else str(path))
    if _HUB_ID.match(name_or_path):
        return _facts_from_hub(name_or_path)
    if "/" in name_or_path or "\\" in name_or_path or name_or_path.startswith(("~", ".")):
        raise LorawizError(f"model folder {path} does not exist.",
                           hint="Check the path; a model folder holds config.json next to the weight files.")
    known = {known_name.lower(): known_name for known_name in catalog_names()}
    guess = difflib.get_close_matches(name_or_path.lower(), list(known), n=1, cutoff=0.6)
    did_you_mean = f'Did you mean "{known[guess[0]]}"? ' if guess else ""
    raise LorawizError(f'unknown model "{name_or_path}": not in the built-in catalog and not a local folder.',
                       hint=f"{did_you_mean}{_LOCAL_HINT}")
