"""A model's facts from wherever they are: the built-in catalog, a local config.json, or the Hub's config.json.

The impure edge of lorawiz.catalog (which stays pure): it reads files and, for an unknown hub id, downloads one.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

from lorawiz.catalog import _HUB_ID, _LOCAL_HINT, ModelFacts, catalog_names, facts_from_config, find_model
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
    return facts_from_config(config, name)


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
