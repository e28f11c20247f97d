"""Ctrl-C and SIGTERM during training: save a checkpoint at the end of the current step and stop."""

from __future__ import annotations

import signal
from typing import Any

INTERRUPTED_EXIT = 130  # the shell's code for a run stopped by Ctrl-C


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
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    def callback(self) -> Any:
        from transformers import TrainerCallback

        request = self

        class SaveAndStop(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if request.signal_name is not None:
                    control.should_save = True
                    control.should_training_stop = True

        return SaveAndStop()
