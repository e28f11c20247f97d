"""Things lorawiz builds for itself: a tokenizer, a tiny model and sample data that need no download.

`resolve_builtin("builtin:tiny")` gives a model folder and `resolve_builtin("builtin:triage")` a data file, built
into the cache on first use. Importing this package is cheap: torch and transformers load only when a build runs.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from lorawiz.builtin.cache import default_cache_root

PREFIX = "builtin:"
BUILTIN_NAMES = {
    "builtin:tiny": "a 2-layer Llama with random weights and a local tokenizer (~0.9M parameters)",
    "builtin:triage": "emergency incident reports to classify into 6 categories: the training file (900 rows)",
    "builtin:triage:validation": "the triage validation file (240 rows, no report shared with training)",
    "builtin:triage-pairs": "the triage training file as preference pairs (900): the right category chosen over "
                            "a wrong one (for --method dpo)",
    "builtin:triage-pairs:validation": "the triage validation file as preference pairs (240)",
}


def is_builtin(name: str) -> bool:
    return name.startswith(PREFIX)


def triage_files(cache_root: str | Path | None = None) -> tuple[Path, Path]:
    """The triage train and validation files in the cache, written on first use."""
    from lorawiz.builtin.triage import PAIRS_FILES, TRAIN_FILE, VALIDATION_FILE, triage_digest, write_triage

    root = Path(cache_root) if cache_root is not None else default_cache_root()
    folder = root / f"triage-{triage_digest()}"
    train, validation = folder / TRAIN_FILE, folder / VALIDATION_FILE
    # each file is written atomically: present means complete
    if all((folder / name).is_file() for name in (TRAIN_FILE, VALIDATION_FILE, *PAIRS_FILES.values())):
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
    if name in ("builtin:triage-pairs", "builtin:triage-pairs:validation"):
        from lorawiz.builtin.triage import PAIRS_FILES

        folder = triage_files(cache_root)[0].parent
        return str(folder / PAIRS_FILES["validation" if name.endswith(":validation") else "train"])
    from lorawiz.errors import LorawizError

    # Compare what follows "builtin:", which every name shares (else "builtin:nope" would look like "builtin:tiny").
    tails = {known.removeprefix(PREFIX): known for known in BUILTIN_NAMES}
    close = [tails[tail] for tail in difflib.get_close_matches(name.removeprefix(PREFIX), tails, n=1, cutoff=0.5)]
    known = "\n".join(f"  {known}  {about}" for known, about in BUILTIN_NAMES.items())
    hint = (f'Did you mean "{close[0]}"? ' if close else "") + f"Known built-ins:\n{known}"
    raise LorawizError(f'unknown built-in "{name}".', hint=hint)


def local_path(name: str | None) -> str | None:
    """The path to load for a model or data name: a `builtin:` name's cached copy, anything else unchanged.

    Configurations keep the `builtin:` name (so lorawiz.yaml re-runs anywhere); loading code calls this."""
    return resolve_builtin(name) if isinstance(name, str) and is_builtin(name) else name
