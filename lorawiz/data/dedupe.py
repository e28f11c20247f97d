"""Row identity for dedupe: an exact key, and a key that ignores case and runs of whitespace.

Keys are Python's 64-bit string hash of the row's sorted-key JSON, so that holding one per row costs tens of
bytes, not the row. They are valid within one process only (hash randomisation) and are never stored;
`stable_key` (BLAKE2b) is the key that is the same everywhere, for the tokenised cache. At 64 bits the chance
of any false match among 10M distinct rows is about 3e-6 (birthday bound n^2 / 2^65).
"""

from __future__ import annotations

import hashlib
import json
from array import array
from dataclasses import dataclass, field
from typing import Any


def normalise_text(text: str) -> str:
    """Case-folded, with every run of whitespace made one space and the ends trimmed."""
    return " ".join(text.split()).casefold()


def _normalised(value: Any) -> Any:
    kind = type(value)  # exact types (what JSON, CSV and Parquet readers give): a call per value is the cost here
    if kind is str:
        return " ".join(value.split()).casefold()
    if kind is dict:
        return {key: _normalised(item) for key, item in value.items()}
    if kind is list or kind is tuple:
        return [_normalised(item) for item in value]
    if isinstance(value, str):
        return normalise_text(value)
    if isinstance(value, dict):
        return {key: _normalised(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_normalised(item) for item in value]
    return value


def _digest(value: Any) -> int:
    return hash(json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str))


def stable_key(row: Any) -> int:
    """A 64-bit key of the row up to case and whitespace that is the same in every process and run (BLAKE2b),
    for keys stored on disk or computed in worker processes; equal rows (so normalised) get equal keys."""
    text = json.dumps(_normalised(row), sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little", signed=True)


def row_keys(row: Any) -> tuple[int, int]:
    """(exact key, normalised key) of one row; equal exact keys imply equal normalised keys."""
    return _digest(row), _digest(_normalised(row))


@dataclass
class DuplicateFinder:
    """Groups rows by normalised key; a row that joins an existing group is a duplicate of its first row.

    `identical` counts duplicates equal to their group's first row; `near` those that differ from it only in
    case or whitespace.
    """

    groups: dict[int, int] = field(default_factory=dict)  # normalised key -> group id
    first_exact: array = field(default_factory=lambda: array("q"))  # group id -> exact key of its first row
    identical: int = 0
    near: int = 0

    def add(self, row: Any) -> tuple[int, bool]:
        """The row's group id, and whether it is the first row of that group."""
        exact, normal = row_keys(row)
        group = self.groups.get(normal)
        if group is None:
            group = self.groups[normal] = len(self.first_exact)
            self.first_exact.append(exact)
            return group, True
        if self.first_exact[group] == exact:
            self.identical += 1
        else:
            self.near += 1
        return group, False

    @property
    def duplicates(self) -> int:
        return self.identical + self.near

    @property
    def group_count(self) -> int:
        return len(self.first_exact)
