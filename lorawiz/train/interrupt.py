"""Ctrl-C and SIGTERM: during training, save a checkpoint at the end of the current step and stop; before it,
unwind like Ctrl-C (locks released). Either way the exit code is the shell's, 128 + the signal's number."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

INTERRUPTED_EXIT = 128 + signal.SIGINT  # 130: the shell's code for a run stopped by Ctrl-C
TERMINATED_EXIT = 128 + signal.SIGTERM  # 143: stopped by SIGTERM (kill, a scheduler, a preempted machine)
EXIT_CODES = {"SIGINT": INTERRUPTED_EXIT, "SIGTERM": TERMINATED_EXIT}


class Terminated(KeyboardInterrupt):
    """SIGTERM outside the training loop: unwinds exactly like Ctrl-C, and exits 143."""

    exit_code = TERMINATED_EXIT


def exit_code_of(exc: BaseException) -> int:
    return getattr(exc, "exit_code", INTERRUPTED_EXIT)


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """While the block runs, SIGTERM raises Terminated (so `finally` blocks run) instead of killing the process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class StopRequest:
    """Ctrl-C or SIGTERM: save a checkpoint at the end of the current step and stop. A second Ctrl-C aborts."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        if self.signal_name is not None:  # asked twice: stop now
            self.restore()
            raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.signal_name or "", INTERRUPTED_EXIT)

    def callback(self) -> Any:
        from transformers import TrainerCallback

        request = self

        class SaveAndStop(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if request.signal_name is not None:
                    control.should_save = True
                    control.should_training_stop = True

        return SaveAndStop()
