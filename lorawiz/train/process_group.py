"""How a training process of several leaves: its process group destroyed and the interpreter's teardown skipped
after a run that ended well (the launcher and the other processes are in train/launcher.py and distributed.py)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def leaving_the_process_group() -> Iterator[None]:
    """Around a training process's run: when it ends well (trained, or stopped with the others by a signal: exit
    code 0), its process group is destroyed and the process exits after its atexit handlers (logging, trackers)
    but before the interpreter's teardown. In that teardown a C++ thread of torch's (gloo's: pytorch#190489) can
    still be joinable and abort the process (SIGABRT, "terminate called without an active exception"), failing a
    run that had saved everything (seen twice in the test suite's resumed 2-process CPU runs, once with the group
    destroyed). Not after an error: the others may still wait in a collective, and destroying the group then can
    hang (torchtitan#1342)."""
    try:
        yield
    except SystemExit as stop:
        if stop.code:
            raise
    if _destroy_process_group():
        _exit_before_teardown()


def _destroy_process_group() -> bool:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return False
    dist.destroy_process_group()
    return True


def _exit_before_teardown() -> None:
    import atexit
    import sys

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)
