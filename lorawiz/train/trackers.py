"""A tracker that fails inside the Trainer (wandb without a key, an MLflow store it cannot open) is the user's
setup, not a lorawiz bug: said in one line naming the tracker and the fix, instead of an internal error."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from lorawiz.errors import LorawizError

INTEGRATIONS = "transformers/integrations/integration_utils.py"


def tracker_error(exc: BaseException) -> LorawizError | None:
    """The LorawizError for an exception raised by one of transformers' tracker callbacks, else None."""
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    names = {callback.__name__: name for name, callback in INTEGRATION_TO_CALLBACK.items()}
    tb = exc.__traceback__
    tracker = None
    while tb is not None:  # the innermost tracker callback frame on the way down
        frame = tb.tb_frame
        if frame.f_code.co_filename.replace("\\", "/").endswith(INTEGRATIONS):
            owner = type(frame.f_locals.get("self")).__name__
            tracker = names.get(owner, tracker)
        tb = tb.tb_next
    if tracker is None or isinstance(exc, KeyboardInterrupt | SystemExit):
        return None
    text = " ".join(str(exc).split())[:300] or type(exc).__name__
    fixes = {"wandb": "run `wandb login` (or set WANDB_API_KEY), or WANDB_MODE=offline",
             "mlflow": "point MLFLOW_TRACKING_URI at a server or store it can use (sqlite needs the full mlflow "
                       "package)"}
    return LorawizError(f"report_to {tracker}: the tracker failed ({type(exc).__name__}: {text}).",
                        hint=f"Fix its setup ({fixes.get(tracker, 'see its documentation')}), or drop {tracker} from "
                             "report_to (--report-to); the run's folder can be resumed with --resume auto.")


@contextlib.contextmanager
def tracker_errors() -> Iterator[None]:
    """Within the block, a tracker's failure is raised as its LorawizError."""
    try:
        yield
    except Exception as exc:
        error = tracker_error(exc)
        if error is None:
            raise
        raise error from exc
