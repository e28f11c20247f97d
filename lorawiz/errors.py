"""Errors that reach the user: one message, one hint, one exit code.

Library code raises these; the CLI funnel (`lorawiz.cli._funnel`) prints them without a traceback.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

USER_ERROR = 2  # bad input: a flag, a file, a config value
INTERNAL_ERROR = 1  # a bug in lorawiz
INTERRUPTED = 130  # stopped by Ctrl-C: the shell's 128 + SIGINT


class LorawizError(Exception):
    """A problem the user can fix: `message` says what is wrong, `hint` says how to fix it."""

    def __init__(self, message: str, hint: str | None = None, exit_code: int = USER_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"


@dataclass(frozen=True)
class Problem:
    """One finding in a collected report: where it is (file and line, or flag) and what to do."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class ProblemsError(LorawizError):
    """Several problems found in one pass (a config with three mistakes reports all three at once)."""

    def __init__(self, subject: str, problems: list[Problem], hint: str | None = None) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        if count == 1:
            message = f"{subject}: {self.problems[0]}"
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            message = f"{subject}: {count} problems\n{lines}"
        super().__init__(message, hint=hint)


# OS errors that the user's files and disks cause, never lorawiz: permissions, a file where a folder should be (or
# the reverse), a read-only or full disk.
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
USER_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.EISDIR, errno.ENOTDIR, errno.EEXIST}) | DISK_FULL
RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")  # how safetensors and tokenizers (Rust) report an io error
# Atomic writes create `.NAME.XXXXXXXX.tmp` files and `.NAME.XXXXXXXX` folders (data/writers.py; merge, export) beside
# NAME: a message names NAME, the path the user gave.
TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?:[0-9a-f]{8}\.tmp|[a-z0-9_]{8})$")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none: what a one-line error
    quotes of a library's long message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def find_os_error(exc: BaseException | None) -> tuple[int, str | None] | None:
    """The errno and file name of a user-caused OS error in `exc` or in what it was raised from (`raise ... from`)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError):
            if exc.errno in USER_ERRNOS:
                return exc.errno, None if exc.filename is None else os.fsdecode(exc.filename)
        else:
            match = RUST_OS_ERROR.search(str(exc))
            if match and int(match.group(1)) in USER_ERRNOS:
                return int(match.group(1)), None
        exc = exc.__cause__
    return None


def os_error_as_user_error(exc: BaseException) -> LorawizError | None:
    """A one-line user error for an OS error the user can fix, naming the path and the fix; None for anything else."""
    found = find_os_error(exc)
    if found is None:
        return None
    code, filename = found
    path = Path(_shown_name(filename)) if filename else None
    if code in DISK_FULL:
        if path is None:
            return LorawizError(f"no space left on the disk ({os.strerror(code)}).",
                                hint="Free some space (df -h lists the disks), or write to another disk.")
        folder = existing_ancestor(path if path.is_dir() else path.parent)
        return LorawizError(f"no space left on the disk holding {folder} (writing {path}; "
                            f"{format_bytes(free_bytes(folder))} free).",
                            hint="Free some space there, or write to another disk.")
    if code == errno.EEXIST:  # mkdir where a file is: a user's; a name taken otherwise is no user's doing
        return _file_in_the_way(path, path) if path is not None and path.exists() and not path.is_dir() else None
    if path is None:
        return LorawizError(f"{os.strerror(code).lower()}.", hint="Check the paths given and their permissions.")
    if code == errno.EROFS:
        return LorawizError(f"cannot write {path}: it is on a read-only file system.",
                            hint="Write to a folder on a writable disk (give another output path).")
    if code == errno.EISDIR:
        return LorawizError(f"{path} is a folder, where a file is needed.", hint="Give the path of a file.")
    if code == errno.ENOTDIR:
        return _file_in_the_way(path, next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), path))
    return _permission_error(path)


def _file_in_the_way(path: Path, blocker: Path) -> LorawizError:
    inside = f" (in {path})" if blocker != path else ""
    return LorawizError(f"{blocker} is a file, where a folder is needed{inside}.",
                        hint="Give a folder path there, or move the file away.")


def _permission_error(path: Path) -> LorawizError:
    if path.is_dir():
        if not os.access(path, os.R_OK | os.X_OK):
            return LorawizError(f"cannot open the folder {path}: permission denied.",
                                hint=f"Make it readable (chmod u+rx {path}), or use another folder.")
        return LorawizError(f"cannot write in the folder {path}: permission denied.",
                            hint=f"Pick a folder you can write to, or make it writable (chmod u+w {path}).")
    if path.exists():
        if not os.access(path, os.R_OK):
            return LorawizError(f"cannot read {path}: permission denied.",
                                hint=f"Make it readable (chmod u+r {path}), or use another file.")
        return LorawizError(f"cannot write {path}: permission denied.",
                            hint=f"Make it writable (chmod u+w {path}), or write somewhere else.")
    folder = existing_ancestor(path)
    return LorawizError(f"cannot create {path}: no permission to write in {folder}.",
                        hint=f"Pick a folder you can write to, or make it writable (chmod u+w {folder}).")


def _shown_name(filename: str) -> str:
    path = Path(filename)
    match = TEMP_NAME.match(path.name)
    return str(path.with_name(match.group("name"))) if match else filename


def existing_ancestor(path: Path) -> Path:
    """`path` itself when it exists, else its nearest parent that does (where it would be created)."""
    return next((p for p in (path, *path.parents) if p.exists()), Path("."))


def free_bytes(path: Path) -> int | None:
    """Free space on the disk holding `path` (None when even that cannot be asked)."""
    try:
        return shutil.disk_usage(existing_ancestor(path)).free
    except OSError:
        return None


def format_bytes(size: float | None) -> str:
    if size is None:
        return "an unknown amount"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{int(size)} bytes"
