"""The launcher lorawiz starts its processes with: accelerate's `accelerate launch`, or torchrun, run here so that
a failed process ends it with that process's own exit code and without a traceback of the launcher's.

Each lorawiz process says its error in one line before it exits (a user's error exits 2). torchrun then raises
ChildFailedError, which printed a Python traceback and a table of the failures, and exited 1: an error the user
could fix read like a crash, and lost its exit code. LORAWIZ_DEBUG=1 keeps torchrun's report.

    python -m lorawiz.train.children accelerate|torchrun ARGS...
"""

from __future__ import annotations

import logging
import os
import sys

LAUNCHERS = {"accelerate": "accelerate.commands.launch", "torchrun": "torch.distributed.run"}


def main(argv: list[str]) -> int:
    import importlib

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    launcher, args = argv[0], argv[1:]
    debug = os.environ.get("LORAWIZ_DEBUG") == "1"
    if not debug:  # torchrun's agent also logs every failed process ("failed (exitcode: 2) local_rank: 0 ...")
        logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    sys.argv = [launcher, *args]
    try:
        importlib.import_module(LAUNCHERS[launcher]).main()
    except ChildFailedError as failed:
        if debug:
            raise
        _, first = failed.get_first_failure()  # the earliest: the others were stopped because of it
        return first.exitcode if first.exitcode > 0 else 128 - first.exitcode  # killed by signal N: 128 + N
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
