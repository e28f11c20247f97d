"""Trainer callbacks that decide things: early stopping, stopping on a NaN loss, and injected faults for tests.

They report through a TrainMonitor when given one (dashboard, plain line, training.log), else through logging.
Every process runs them and reaches the same decision: the Trainer gathers the loss and the eval metrics across
processes before the callbacks see them.
"""

from __future__ import annotations

import logging
import math
import os
import signal
from collections.abc import Mapping
from typing import Any

from transformers import TrainerCallback

from lorawiz.train.monitor import TrainMonitor
from lorawiz.train.state import EarlyStoppingState

logger = logging.getLogger(__name__)

FAULT_ENV = "LORAWIZ_FAULT"
FAULT_KINDS = ("nan", "oom", "sigint", "kill")


def _report(monitor: TrainMonitor | None, message: str, status: str | None = None) -> None:
    if monitor is not None:
        monitor.note(message, status=status)
    else:
        logger.warning(message)


# ---------------------------------------------------------------------------------------------------------
# Early stopping


class EarlyStopping(TrainerCallback):
    """Stop after `patience` evaluations in a row without a relative improvement of more than `threshold` over the
    best value so far: with threshold 0.001 an eval loss must drop below best * (1 - 0.001) to count (for a metric
    where greater is better, rise above best * (1 + 0.001)). Patience 0 turns it off.

    "Best" is the last value that counted as an improvement, so a run that keeps improving by a little less than the
    threshold each time still counts an improvement once the small steps add up. An evaluation at the last step
    never triggers it: the run ends there anyway.

    Resuming: the counters are rebuilt in on_train_begin from the checkpoint's `state.log_history`, which holds
    every evaluation up to that checkpoint, so a resumed run carries on counting where the checkpoint left off (and
    evaluations after the checkpoint, which a resumed run repeats, are not counted twice). This needs no state of
    its own in the checkpoint and works whether or not `restore_callback_states_from_checkpoint` is set.

    The kept checkpoint it names is the Trainer's `best_model_checkpoint`; set `metric_for_best_model` to the same
    metric and `load_best_model_at_end=True` so that the best checkpoint is the one the run ends with.
    """

    def __init__(self, patience: int, threshold: float, metric: str = "eval_loss", greater_is_better: bool = False,
                 monitor: TrainMonitor | None = None):
        if patience < 0:
            raise ValueError(f"early stopping patience must be 0 (off) or more, not {patience}")
        if not 0 <= threshold < 1:
            raise ValueError(f"early stopping threshold is a relative improvement between 0 and 1, not {threshold}")
        metric = metric if metric.startswith("eval_") else f"eval_{metric}"  # as metric_for_best_model is read
        self.info = EarlyStoppingState(patience=patience, threshold=threshold, metric=metric,
                                       greater_is_better=greater_is_better)
        self.monitor = monitor
        self._warned_missing = False
        self._stopped_at = 0
        if monitor is not None:
            monitor.show_early_stopping(self.info)

    @property
    def triggered(self) -> bool:
        return self.info.triggered

    def on_train_begin(self, args, state, control, **kwargs):
        info = self.info
        info.best, info.best_step, info.evals_without_improvement = None, None, 0
        info.triggered, info.kept_checkpoint = False, None
        for entry in state.log_history:
            value = entry.get(info.metric)
            if _is_number(value):
                self._count(float(value), entry.get("step"))
        if info.enabled and info.evals_without_improvement:
            _report(self.monitor, f"early stopping resumed at {info.evals_without_improvement}/{info.patience} "
                                  f"evaluations without improvement")

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        info = self.info
        if not info.enabled or info.triggered:
            return
        value = (metrics or {}).get(info.metric)
        if not _is_number(value):
            if not self._warned_missing:
                self._warned_missing = True
                _report(self.monitor, f"early stopping is off: the evaluation reports no {info.metric} "
                                      f"(it has {', '.join(sorted(metrics or {})) or 'nothing'})")
            return
        self._count(float(value), state.global_step)
        last_step = state.max_steps > 0 and state.global_step >= state.max_steps  # ending anyway: nothing to stop
        if info.evals_without_improvement >= info.patience and not last_step:
            info.triggered, self._stopped_at = True, state.global_step
            control.should_training_stop = True

    def on_train_end(self, args, state, control, **kwargs):
        """Said here, not at the evaluation that stops the run: the Trainer picks its best checkpoint when it saves
        this step's, after that evaluation, and by the metric alone (an evaluation that improved by less than the
        threshold can be the best one)."""
        info = self.info
        if not info.triggered:
            return
        info.kept_checkpoint = str(state.best_model_checkpoint) if state.best_model_checkpoint else \
            _kept_checkpoint(args, state)
        kept_value = state.best_metric if state.best_model_checkpoint else None  # the kept checkpoint's
        _report(self.monitor, self._stop_message(self._stopped_at, kept_value), status="stopped")

    def _count(self, value: float, step: Any) -> None:
        info = self.info
        if self._improves(value):
            info.best, info.best_step, info.evals_without_improvement = value, step, 0
        else:
            info.evals_without_improvement += 1

    def _improves(self, value: float) -> bool:
        best = self.info.best
        if not math.isfinite(value):
            return False
        if best is None:
            return True
        margin = self.info.threshold * abs(best)
        return value > best + margin if self.info.greater_is_better else value < best - margin

    def _stop_message(self, step: int, kept_value: Any) -> str:
        info = self.info
        by = f" by more than {info.threshold:.2%}" if info.threshold > 0 else ""
        on = f" on {info.best:.4f} (step {info.best_step})" if info.best is not None else ""
        value = f" ({info.metric} {kept_value:.4f})" if _is_number(kept_value) else ""
        evaluations = "evaluation" if info.patience == 1 else "evaluations"
        return (f"early stopping at step {step}: {info.metric} has not improved{by}{on} for {info.patience} "
                f"{evaluations}; keeping {info.kept_checkpoint}{value}")


def _kept_checkpoint(args: Any, state: Any) -> str:
    if state.best_model_checkpoint:
        return str(state.best_model_checkpoint)
    if getattr(args, "load_best_model_at_end", False):
        return "the best checkpoint, loaded at the end"
    return "the final weights (load_best_model_at_end is off, so the best checkpoint is not restored)"


# ---------------------------------------------------------------------------------------------------------
# NaN guard


class NonFiniteLossGuard(TrainerCallback):
    """Stop as soon as the training loss or an eval loss is NaN or infinite, and never save that state.

    It looks at every logged `loss` (so the Trainer needs `logging_nan_inf_filter=False`; with the filter on, a NaN
    step is averaged away from the logged loss) and every eval loss. Because a loss is only seen at a logging step,
    it also checks that the trainable weights are finite before each checkpoint is written (two reductions per
    trainable tensor, cheap next to writing the checkpoint), so a checkpoint taken between a NaN step and the next
    log is refused too.

    After a trip, `tripped_at_step`, `value` (e.g. nan) and `what` ("loss", an eval loss key or "trainable weights")
    are set, training stops and nothing more is saved. The runner should then not save the final model either, and
    point the user at the last checkpoint (`transformers.trainer_utils.get_last_checkpoint(output_dir)`).
    """

    def __init__(self, monitor: TrainMonitor | None = None, check_weights_on_save: bool = True):
        self.monitor = monitor
        self.check_weights_on_save = check_weights_on_save
        self.tripped_at_step: int | None = None
        self.value: float | None = None
        self.what: str | None = None

    @property
    def tripped(self) -> bool:
        return self.tripped_at_step is not None

    def on_train_begin(self, args, state, control, **kwargs):
        if getattr(args, "logging_nan_inf_filter", False):
            logger.warning("logging_nan_inf_filter is on, so a NaN training loss is hidden from the logs; the NaN "
                           "guard then only sees eval losses and the weights at checkpoints.")

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.tripped:
            control.should_save = False
        elif control.should_save and self.check_weights_on_save and model is not None:
            bad = _first_non_finite_weight(model)
            if bad is not None:
                self._trip("trainable weights", bad, state.global_step, control)

    def on_log(self, args, state, control, logs=None, **kwargs):
        self._check(logs or {}, state.global_step, control)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self._check(metrics or {}, state.global_step, control)

    def _check(self, values: Mapping[str, Any], step: int, control: Any) -> None:
        if self.tripped:
            control.should_save = False
            control.should_training_stop = True
            return
        for key, value in values.items():
            is_loss = key == "loss" or (key.startswith("eval_") and key.endswith("loss"))
            if is_loss and _is_number(value) and not math.isfinite(value):
                self._trip(key, float(value), step, control)
                return

    def _trip(self, what: str, value: float, step: int, control: Any) -> None:
        self.tripped_at_step, self.value, self.what = step, value, what
        control.should_training_stop = True
        control.should_save = False
        _report(self.monitor, f"{what} became {value} at step {step}: stopping without saving a checkpoint",
                status="failed")


def _first_non_finite_weight(model: Any) -> float | None:
    """nan, inf or -inf if a trainable parameter holds one, else None. amax and amin propagate NaN and need no
    tensor-sized temporary (isfinite would allocate one per parameter); one device sync in all."""
    import torch

    params = [param.detach() for param in model.parameters()
              if param.requires_grad and param.numel() and param.is_floating_point()]
    if not params:
        return None
    extremes = torch.stack([torch.stack([param.amax(), param.amin()]).float() for param in params])
    if bool(torch.isfinite(extremes).all()):
        return None
    bad = extremes[~torch.isfinite(extremes)]
    return float("nan") if bool(torch.isnan(bad).any()) else float(bad[0])


# ---------------------------------------------------------------------------------------------------------
# Injected faults, for tests of the recovery paths


def parse_fault(text: str | None) -> tuple[str, int] | None:
    """`LORAWIZ_FAULT` as (kind, step): "nan@12", "oom@3", "sigint@5" or "kill@5"; None when unset or empty."""
    if text is None or not text.strip():
        return None
    kind, at, step_text = text.strip().partition("@")
    kind, step_text = kind.strip().lower(), step_text.strip()
    forms = "nan@STEP, oom@STEP, sigint@STEP or kill@STEP, with STEP a whole number >= 1"
    if not at or kind not in FAULT_KINDS:
        raise ValueError(f"{FAULT_ENV}={text!r} is not a fault: use {forms}.")
    if not step_text.isdigit() or int(step_text) < 1:
        raise ValueError(f"{FAULT_ENV}={text!r}: the step {step_text!r} must be a whole number >= 1 ({forms}).")
    return kind, int(step_text)


class FaultInjection(TrainerCallback):
    """Makes a real fault happen at a chosen optimizer step, once per process, to test how a run recovers:

    - nan@STEP: multiplies a trainable weight by NaN just before step STEP, so the loss logged at STEP is NaN;
    - oom@STEP: raises torch.OutOfMemoryError at the end of step STEP, as a CUDA allocation failure would;
    - sigint@STEP: sends SIGINT to this process at the end of step STEP (Ctrl-C);
    - kill@STEP: sends SIGKILL to this process at the end of step STEP (a crash or a preempted machine).
    """

    def __init__(self, fault: str | tuple[str, int]):
        parsed = parse_fault(fault) if isinstance(fault, str) else fault
        if parsed is None:
            raise ValueError(f"no fault given: use nan@STEP, oom@STEP, sigint@STEP or kill@STEP (as {FAULT_ENV}).")
        self.kind, self.step = parsed
        self.fired = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FaultInjection | None:
        from lorawiz.train.launcher import RELAUNCH_FALLBACK

        environ = os.environ if environ is None else environ
        if environ.get(RELAUNCH_FALLBACK):  # the launcher's restart after this fault: it fired once already
            return None
        parsed = parse_fault(environ.get(FAULT_ENV))
        return cls(parsed) if parsed else None

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if self.kind == "nan" and not self.fired and state.global_step + 1 == self.step:
            self.fired = True
            _poison(model)

    def on_step_end(self, args, state, control, **kwargs):
        if self.kind == "nan" or self.fired or state.global_step != self.step:
            return
        self.fired = True
        if self.kind == "oom":
            import torch

            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        if self.kind == "sigint":
            os.kill(os.getpid(), signal.SIGINT)
        else:
            os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


def _poison(model: Any) -> None:
    import torch

    param = next((param for param in model.parameters() if param.requires_grad), None) if model is not None else None
    if param is None:
        raise RuntimeError("fault nan: the model has no trainable parameter to set to NaN")
    with torch.no_grad():
        param.mul_(float("nan"))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
