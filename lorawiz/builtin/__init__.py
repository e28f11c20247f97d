"""Things lorawiz builds for itself: a tokenizer, a tiny model and sample data that need no download.

`resolve_builtin("builtin:tiny")` gives a model folder and `resolve_builtin("builtin:triage")` a data file, built
into the cache on first use. Importing this package is cheap: torch and transformers load only when a build runs.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

PREFIX = "builtin:"
BUILTIN_NAMES = {
    "builtin:tiny": "a 2-layer Llama with random weights and a local tokenizer (~0.9M parameters)",
    "builtin:triage": "emergency incident reports to classify into 6 categories: the training file (900 rows)",
    "builtin:triage:validation": "the triage validation file (240 rows, no report shared with training)",
}


def default_cache_root() -> Path:
    """Where built-ins are cached: $LORAWIZ_CACHE, else ~/.cache/lorawiz."""
    configured = os.environ.get("LORAWIZ_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "lorawiz"


def is_builtin(name: str) -> bool:
    return name.startswith(PREFIX)


def triage_files(cache_root: str | Path | None = None) -> tuple[Path, Path]:
    """The triage train and validation files in the cache, written on first use."""
    from lorawiz.builtin.triage import TRAIN_FILE, VALIDATION_FILE, triage_digest, write_triage

    root = Path(cache_root) if cache_root is not None else default_cache_root()
    folder = root / f"triage-{triage_digest()}"
    train, validation = folder / TRAIN_FILE, folder / VALIDATION_FILE
    if train.is_file() and validation.is_file():  # each file is written atomically: present means complete
        return train, validation
    folder.mkdir(parents=True, exist_ok=True)
    return write_triage(folder, overwrite=True)  # a racing writer writes the same bytes


def resolve_builtin(name: str, cache_root: str | Path | None = None) -> str:
    """The local path a `builtin:` name stands for: a model folder or a data file, built on first use."""
    if name == "builtin:tiny":
        from lorawiz.builtin.tiny import tiny_model_dir

        return str(tiny_model_dir(cache_root))
    if name == "builtin:triage":
        return str(triage_files(cache_root)[0])
    if name == "builtin:triage:validation":
        return str(triage_files(cache_root)[1])
    from lorawiz.errors import LorawizError

    # Compare what follows "builtin:", which every name shares (else "builtin:nope" would look like "builtin:tiny").
    tails = {known.removeprefix(PREFIX): known for known in BUILTIN_NAMES}
    close = [tails[tail] for tail in difflib.get_close_matches(name.removeprefix(PREFIX), tails, n=1, cutoff=0.5)]
    known = "\n".join(f"  {known}  {about}" for known, about in BUILTIN_NAMES.items())
    hint = (f'Did you mean "{close[0]}"? ' if close else "") + f"Known built-ins:\n{known}"
    raise LorawizError(f'unknown built-in "{name}".', hint=hint)


def resolve_names(values: dict) -> dict:
    """A configuration with its builtin: names replaced by their cached paths; builtin:triage brings its validation
    part along when no validation file is given."""
    values = dict(values)
    if values.get("train_file") == "builtin:triage" and not values.get("validation_file"):
        values["validation_file"] = "builtin:triage:validation"
    for key in ("model_name_or_path", "train_file", "validation_file"):
        if isinstance(values.get(key), str) and is_builtin(values[key]):
            values[key] = resolve_builtin(values[key])
    return values
