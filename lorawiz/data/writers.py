"""Write outputs atomically: a temporary file beside the target, renamed into place only on success.

A failed or interrupted run never leaves a partial file, and an existing file is replaced only when the
caller passes overwrite=True.
"""

from __future__ import annotations

import json
import os
import secrets
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
    fd, tmp_name = _create_temp(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _create_temp(path: Path) -> tuple[int, str]:
    """A new file beside `path`, with the permissions the umask gives (mkstemp's would be owner-only)."""
    for _ in range(100):
        name = str(path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp"))
        try:
            return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), name
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def write_jsonl_line(handle: IO[str], row: Any) -> None:
    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
