"""The one error funnel: user errors print one line and a hint and exit 2; bugs exit 1; Ctrl-C exits 130.

An OS error the user caused (a folder that is a file, no permission, a read-only or full disk) is a user error too,
as a last resort where no better message was raised. Set LORAWIZ_DEBUG=1 to see the traceback of any of them.
"""

from __future__ import annotations

import contextlib
import functools
import os
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import typer

from lorawiz.errors import (
    DISK_FULL,
    INTERNAL_ERROR,
    INTERRUPTED,
    LorawizError,
    existing_ancestor,
    find_os_error,
    format_bytes,
    free_bytes,
    os_error_as_user_error,
)

F = TypeVar("F", bound=Callable[..., Any])


def debug_enabled() -> bool:
    return os.environ.get("LORAWIZ_DEBUG", "").lower() in ("1", "true", "yes")


def funnel(command: F) -> F:
    """Wrap a command so that every error leaves through the same door."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        from lorawiz.console import print_error, say

        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            if debug_enabled():
                traceback.print_exc()
            say("interrupted.", stderr=True)
            raise typer.Exit(INTERRUPTED) from None
        except LorawizError as exc:
            if debug_enabled():
                traceback.print_exc()
            _say_error(exc)
            raise typer.Exit(exc.exit_code) from None
        except Exception as exc:
            user_error = os_error_as_user_error(exc)
            if debug_enabled():
                if user_error is None:
                    raise
                traceback.print_exc()
            if user_error is not None:
                _say_error(user_error)
                raise typer.Exit(user_error.exit_code) from None
            print_error(f"internal error: {type(exc).__name__}: {exc}",
                        "This is a bug in lorawiz. Rerun with LORAWIZ_DEBUG=1 and report the traceback.")
            raise typer.Exit(INTERNAL_ERROR) from None

    return run  # type: ignore[return-value]


def _say_error(exc: LorawizError) -> None:
    from lorawiz.console import print_error
    from lorawiz.train.launcher import left_error

    if not left_error(exc.message, exc.hint):  # one of several processes: said once, by the launcher
        print_error(exc.message, exc.hint)


@contextlib.contextmanager
def reporting_outputs(outputs: Sequence[Path | None], maybe: Sequence[Path | None] = ()) -> Iterator[None]:
    """Around a command that writes files atomically: on Ctrl-C, say which of them were written and which were not
    and exit 130; on a full disk, a user error that names the disk and says the same.

    `outputs` are the files the command writes; `maybe` are files it writes only in some cases (a rejects file, a
    labels file), named only when they were written. A path counts as written when it appeared or was replaced
    (another inode, modification time or size) while the command ran.
    """
    expected = [Path(p) for p in outputs if p is not None]
    watched = [*expected, *(Path(p) for p in maybe if p is not None)]
    before = {path: _identity(path) for path in watched}

    def what_was_written() -> str:
        written = [path for path in watched if _identity(path) not in (None, before[path])]
        missing = [path for path in expected if path not in written]
        if not written:
            return "nothing was written"
        return "; ".join([f"wrote {', '.join(map(str, written))}"] +
                         ([f"{', '.join(map(str, missing))} not written"] if missing else []))

    try:
        yield
    except KeyboardInterrupt:
        from lorawiz.console import say

        say(f"interrupted: {what_was_written()}.", stderr=True)
        raise typer.Exit(INTERRUPTED) from None
    except Exception as exc:
        found = find_os_error(exc)
        if found is None or found[0] not in DISK_FULL or not expected:
            raise
        folder = existing_ancestor(expected[0].parent)
        raise LorawizError(f"no space left on the disk holding {folder} ({format_bytes(free_bytes(folder))} free); "
                           f"{what_was_written()}.", hint="Free some space there, or write to another disk.") from exc


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size
