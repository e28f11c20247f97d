"""The one error funnel: user errors print one line and a hint and exit 2; bugs exit 1.

Set LORAWIZ_DEBUG=1 to see the traceback of either.
"""

from __future__ import annotations

import functools
import os
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from lorawiz.errors import INTERNAL_ERROR, LorawizError

F = TypeVar("F", bound=Callable[..., Any])


def debug_enabled() -> bool:
    return os.environ.get("LORAWIZ_DEBUG", "").lower() in ("1", "true", "yes")


def funnel(command: F) -> F:
    """Wrap a command so that every error leaves through the same door."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        from lorawiz.console import print_error

        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit, KeyboardInterrupt):
            raise
        except LorawizError as exc:
            if debug_enabled():
                traceback.print_exc()
            print_error(exc.message, exc.hint)
            raise typer.Exit(exc.exit_code) from None
        except Exception as exc:
            if debug_enabled():
                raise
            print_error(f"internal error: {type(exc).__name__}: {exc}",
                        "This is a bug in lorawiz. Rerun with LORAWIZ_DEBUG=1 and report the traceback.")
            raise typer.Exit(INTERNAL_ERROR) from None

    return run  # type: ignore[return-value]
