"""Write outputs atomically: a temporary file beside the target, renamed into place only on success.

A failed or interrupted run never leaves a partial file, and an existing file is replaced only when the
caller passes overwrite=True.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from lorawiz.errors import LorawizError


def check_writable(path: Path, overwrite: bool, flag: str = "--overwrite") -> None:
    """Refuse to clobber an existing output, or to write into a folder that does not exist."""
    if path.exists() and not overwrite:
        raise LorawizError(f"{path} already exists.", hint=f"Choose another output path, or pass {flag} to replace it.")
    if path.is_dir():
        raise LorawizError(f"{path} is a directory.", hint="Give a file path for the output.")
    if not path.parent.exists():
        raise LorawizError(f"folder {path.parent} does not exist.", hint=f"Create it first: mkdir -p {path.parent}")


@contextmanager
def atomic_output(path: str | Path, overwrite: bool = False, flag: str = "--overwrite") -> Iterator[IO[str]]:
    """A text handle whose contents appear at `path` only if the block finishes without an exception."""
    path = Path(path)
    check_writable(path, overwrite, flag)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_jsonl_line(handle: IO[str], row: Any) -> None:
    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
