"""Write outputs atomically: a temporary file beside the target, renamed into place only on success.

A failed or interrupted run never leaves a partial file, and an existing file is replaced only when the
caller passes overwrite=True.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from lorawiz.ownership import check_file_output


def check_writable(path: Path, overwrite: bool, flag: str = "--overwrite",
                   inputs: Iterable[str | Path | None] = ()) -> None:
    """Refuse to clobber an existing output (unless `overwrite`), a folder, an input, or to write into a folder that
    does not exist: the rule of lorawiz.ownership for file outputs."""
    check_file_output(Path(path), overwrite, flag, inputs)


@contextmanager
def atomic_output(path: str | Path, overwrite: bool = False, flag: str = "--overwrite",
                  binary: bool = False) -> Iterator[IO[Any]]:
    """A text handle (a bytes one when `binary`) whose contents appear at `path` only if the block finishes
    without an exception."""
    path = Path(path)
    check_writable(path, overwrite, flag)
    names: list[str] = []  # the temporary file's name is known before it exists: Ctrl-C at any moment removes it
    try:
        fd = _create_temp(path, names)
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="\n")) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(names[-1], path)
    except BaseException:
        if names:
            Path(names[-1]).unlink(missing_ok=True)
        raise


def create_temp_folder(path: Path, names: list[str], suffix: str = "") -> Path:
    """A new, empty folder `.NAME.XXXXXXXX` beside `path`, its name appended to `names` before it is created (so that
    a Ctrl-C between its creation and the caller's cleanup cannot leave it: the caller removes names[-1] in its
    `except`/`finally`, entered before this is called)."""
    for _ in range(100):
        names.append(str(path.with_name(f".{path.name}.{secrets.token_hex(4)}{suffix}")))
        try:
            os.mkdir(names[-1], 0o700)  # owner-only while it is written, as mkdtemp's; the caller sets the rest
            return Path(names[-1])
        except FileExistsError:
            names.pop()  # somebody else's folder: never removed
    raise FileExistsError(f"no free temporary name beside {path}")


def _create_temp(path: Path, names: list[str]) -> int:
    """A new file beside `path`, with the permissions the umask gives (mkstemp's would be owner-only); its name is
    appended to `names` before it is created."""
    for _ in range(100):
        names.append(str(path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")))
        try:
            return os.open(names[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            names.pop()  # somebody else's file: never removed
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def current_umask() -> int:
    current = os.umask(0)  # read by setting it: there is no other way
    os.umask(current)
    return current


def normal_permissions(folder: Path, weights_only: bool = True) -> None:
    """Give the weight files under `folder` (and with weights_only=False the folder itself) the permissions the
    umask gives, as every other file lorawiz writes has: safetensors and mkdtemp create them owner-only."""
    umask = current_umask()
    if not weights_only:
        os.chmod(folder, 0o777 & ~umask)
    for weights in Path(folder).rglob("*.safetensors"):
        os.chmod(weights, 0o666 & ~umask)


def write_jsonl_line(handle: IO[str], row: Any) -> None:
    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
