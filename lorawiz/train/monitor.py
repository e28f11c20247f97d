"""Watching a training run: TrainMonitor (a transformers TrainerCallback) keeps a RunState up to date, draws it as
a Rich Live dashboard (lorawiz.views.dashboard), and turns every log step into a plain line, a metrics.jsonl record
and a training.log line.

transformers is imported with this module (TrainMonitor subclasses TrainerCallback), so import it inside the command
that trains, never at the top of lorawiz.cli. rich is imported where it is used.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from transformers import TrainerCallback

from lorawiz.hardware import ResourceSampler
from lorawiz.run_history import eval_loss_key, is_number
from lorawiz.train.state import EarlyStoppingState, RunState
from lorawiz.views.dashboard import EVAL_SCORES, format_duration, plain_eval_line, plain_line, render_dashboard

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

MAX_TRAIN_POINTS = 2000  # losses kept for the chart; the full series is in metrics.jsonl
REFRESH_PER_SECOND = 4
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "training.log"


class TrainMonitor(TrainerCallback):
    """Keeps a RunState up to date from the trainer's events and shows it: a Rich Live dashboard in a terminal, one
    plain line per log step otherwise. On the main process it also appends to `metrics.jsonl` (one JSON object per
    log, evaluation and end-of-training summary) and `training.log` (the plain lines and events, timestamped) in
    `output_dir`; both are opened in append mode, so a resumed run continues them.

    Other processes (`is_main=False`) keep the state but draw and write nothing. Stop the display if training
    raises; close() is safe to call more than once, and a later train() (a retry) starts it again:

        monitor = TrainMonitor(out, plain=is_plain())
        trainer = Trainer(..., callbacks=[monitor, NonFiniteLossGuard(monitor)])
        monitor.attach(trainer)  # takes the Trainer's own progress printer away
        try:
            trainer.train()
        except BaseException as err:
            monitor.close(err)
            raise
        finally:
            monitor.close()

    metrics.jsonl records: {"type": "train" | "eval" | "summary", "step", "epoch", "time_s", ...the logged numbers}.
    time_s is training wall time in seconds and continues across resumes (it carries on from the file's last
    record). Strict JSON has no NaN, so non-finite numbers are written as the strings "nan", "inf", "-inf". After a
    resume the steps since the checkpoint are trained and logged again: a reader should keep the last record per
    (type, step).

    Tokens/s come from `state.num_input_tokens_seen` (TrainingArguments(include_num_input_tokens_seen=True)), else
    from TRL's cumulative "num_tokens" log value.
    """

    def __init__(self, output_dir: str | os.PathLike[str], *, plain: bool, model_name: str = "", backend: str = "",
                 is_main: bool = True, console: Console | None = None, sampler: ResourceSampler | None = None):
        self.output_dir = Path(output_dir)
        self.plain = plain
        self.is_main = is_main
        self.state = RunState(model_name=model_name, backend=backend, output_dir=str(output_dir))
        self._console = console
        self._sampler = sampler
        self._active = is_main
        self._lock = threading.RLock()  # the Live refresh thread renders while callbacks update the state
        self._live: Any = None
        self._files: dict[str, IO[str]] = {}
        self._write_failed = False
        self._time_offset = 0.0
        self._mark = time.monotonic()  # end of the last step or bookkeeping: the next step's time starts here
        self._train_time = 0.0  # step time since the last train log, for tokens/s
        self._last_tokens: dict[str, int] = {}

    # -- API for the runner --------------------------------------------------------------------------------

    def attach(self, trainer: Any) -> None:
        """Add this monitor to `trainer` (unless it is there) and remove the Trainer's own progress output: its tqdm
        bar, or the PrinterCallback that prints a dict per log when `disable_tqdm=True`. Then the dashboard or the
        plain lines are the only progress output."""
        drop_trainer_progress(trainer)
        if self not in trainer.callback_handler.callbacks:
            trainer.add_callback(self)

    def note(self, message: str, *, status: str | None = None) -> None:
        """An event to show and log, e.g. "out of memory: halving micro-batch to 2"; optionally a new status."""
        with self._lock:
            if status is not None:
                self.state.status = status
            self.state.add_message(message)
        if not self._active:
            return
        self._log(message)
        if self.plain:
            print(message, flush=True)
        elif self._live is None:
            self._get_console().print(message, markup=False, highlight=False)

    def show_early_stopping(self, info: EarlyStoppingState) -> None:
        with self._lock:
            self.state.early_stopping = info

    def close(self, error: BaseException | None = None) -> None:
        """Stop the live display (its last frame stays on screen) and close the files; safe to call twice.
        With `error`, the run is marked failed (stopped for Ctrl-C) and the error is logged."""
        if error is not None and self.state.status not in ("failed", "stopped"):
            if isinstance(error, KeyboardInterrupt):
                self.note(f"interrupted at step {self.state.step}", status="stopped")
            else:
                self.note(f"failed at step {self.state.step}: {type(error).__name__}: {error}", status="failed")
        live, self._live = self._live, None
        if live is not None:
            with contextlib.suppress(Exception):
                live.stop()
        for handle in self._files.values():
            with contextlib.suppress(OSError):
                handle.close()
        self._files.clear()
        if self._sampler is not None:
            self._sampler.close()

    # -- trainer events ------------------------------------------------------------------------------------

    def on_train_begin(self, args, state, control, **kwargs):
        self._active = self.is_main and state.is_world_process_zero
        now = time.monotonic()
        resumed = state.global_step > 0
        with self._lock:
            run = self.state
            run.status = "training"
            run.step, run.max_steps, run.epoch = state.global_step, state.max_steps, float(state.epoch or 0)
            run.num_epochs = float(state.num_train_epochs or 0)
            run.started_at, run.start_step, run.eta_seconds = now, state.global_step, None
            if resumed:
                self._replay_history(state.log_history)
        self._mark, self._train_time = now, 0.0
        self._last_tokens = {"trainer": state.num_input_tokens_seen}
        if not self._active:
            return
        self._time_offset = _last_time_s(self.output_dir / METRICS_FILE) if resumed else 0.0
        self._sample_resources()
        what = self.state.model_name or "the model"
        if self.state.backend:
            what += f" ({self.state.backend})"
        if resumed:
            self._log(f"resuming {what} at step {state.global_step}/{state.max_steps}, output {self.output_dir}")
            self.note(f"resumed from step {state.global_step}")
        else:
            self._log(f"training {what} for {state.max_steps} steps, output {self.output_dir}")
        if not self.plain and self._live is None:
            self._start_live()

    def on_step_end(self, args, state, control, **kwargs):
        now = time.monotonic()
        self._train_time += now - self._mark
        self._mark = now
        with self._lock:
            self.state.step, self.state.epoch = state.global_step, float(state.epoch or 0)
            self.state.refresh_timing(now)
            self._set_activity("saving" if control.should_save else "training")
        self._sample_resources()

    def on_prediction_step(self, args, state, control, **kwargs):
        self._set_activity("evaluating")

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if any(key.startswith("eval_") for key in logs):  # evaluate() logs its metrics too; on_evaluate has them
            return
        if "train_loss" in logs and "loss" not in logs:  # the end-of-training summary (every log may have a runtime)
            self._record("summary", state, logs)
            return
        with self._lock:
            run = self.state
            run.step, run.epoch = state.global_step, float(state.epoch or 0)
            if is_number(logs.get("loss")):
                run.train_losses.append((state.global_step, float(logs["loss"])))
                del run.train_losses[:-MAX_TRAIN_POINTS]
            if is_number(logs.get("learning_rate")):
                run.learning_rate = float(logs["learning_rate"])
            if is_number(logs.get("grad_norm")):
                run.grad_norm = float(logs["grad_norm"])
            self._update_tokens(state, logs)
            run.refresh_timing(time.monotonic())
        extra = {"tokens_per_s": round(self.state.tokens_per_s, 1)} if self.state.tokens_per_s is not None else {}
        self._record("train", state, {**logs, **extra})
        if "loss" in logs:
            self._emit(plain_line(self.state))
        self._mark = time.monotonic()

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        metrics = metrics or {}
        key = eval_loss_key(metrics)
        with self._lock:
            self._set_activity("saving" if control.should_save else "training")
            if key is not None and is_number(metrics[key]):
                self.state.eval_metric = key
                self.state.eval_losses.append((state.global_step, float(metrics[key])))
            self.state.eval_scores = {name: float(metrics[f"eval_{name}"]) for name in EVAL_SCORES
                                      if is_number(metrics.get(f"eval_{name}"))}
        self._record("eval", state, metrics)
        if key is not None:
            self._emit(plain_eval_line(self.state))
        self._mark = time.monotonic()

    def on_save(self, args, state, control, **kwargs):
        self._set_activity("training")
        self._log(f"saved checkpoint-{state.global_step}")
        self._mark = time.monotonic()

    def on_train_end(self, args, state, control, **kwargs):
        with self._lock:
            run = self.state
            run.step = state.global_step
            run.refresh_timing(time.monotonic())
            finished = state.max_steps > 0 and state.global_step >= state.max_steps
            if run.status != "failed":
                run.status = "done" if finished else "stopped"
        took = format_duration(self.state.elapsed_seconds)
        if self.state.status == "done":
            self.note(f"finished {state.global_step} steps in {took}")
        else:
            self.note(f"stopped at step {state.global_step}/{state.max_steps} after {took}")
        self.close()

    # -- internals -----------------------------------------------------------------------------------------

    def _set_activity(self, status: str) -> None:
        """Training, evaluating or saving; an ending status (stopped, failed, done) stays."""
        if self.state.status in ("training", "evaluating", "saving"):
            self.state.status = status

    def _replay_history(self, history: list[dict[str, Any]]) -> None:
        """A resumed run's chart continues from the checkpoint's log history."""
        self.state.train_losses = [(int(entry["step"]), float(entry["loss"])) for entry in history
                                   if is_number(entry.get("loss")) and "step" in entry][-MAX_TRAIN_POINTS:]
        evals = []
        for entry in history:
            key = eval_loss_key(entry)
            if key is not None and is_number(entry[key]) and "step" in entry:
                evals.append((int(entry["step"]), float(entry[key])))
                self.state.eval_metric = key
        self.state.eval_losses = evals

    def _update_tokens(self, state, logs: Mapping[str, Any]) -> None:
        """Tokens/s over the step time since the last log, from the best source that is counting."""
        if state.num_input_tokens_seen > self._last_tokens.get("trainer", 0):
            source, total = "trainer", int(state.num_input_tokens_seen)
        elif is_number(logs.get("num_tokens")):
            source, total = "trl", int(logs["num_tokens"])
        else:
            self._train_time = 0.0
            return
        previous = self._last_tokens.get(source, 0)
        if self._train_time > 0 and total >= previous:
            self.state.tokens_per_s = (total - previous) / self._train_time
        self.state.tokens_seen = total
        self._last_tokens[source] = total
        self._train_time = 0.0

    def _sample_resources(self) -> None:
        if not self._active:
            return
        if self._sampler is None:
            self._sampler = ResourceSampler()
        readings = self._sampler.sample()
        with self._lock:
            self.state.resources = readings

    def _record(self, kind: str, state, values: Mapping[str, Any]) -> None:
        if not self._active:
            return
        started = self.state.started_at
        elapsed = time.monotonic() - started if started is not None else 0.0
        record: dict[str, Any] = {"type": kind, "step": state.global_step, "epoch": round(float(state.epoch or 0), 4),
                                  "time_s": round(self._time_offset + elapsed, 3)}
        for key, value in values.items():
            if key not in record and (converted := _json_value(value)) is not None:
                record[key] = converted
        self._write(METRICS_FILE, json.dumps(record, allow_nan=False))

    def _emit(self, line: str) -> None:
        if not self._active:
            return
        self._log(line)
        if self.plain:
            print(line, flush=True)

    def _log(self, line: str) -> None:
        if self._active:
            self._write(LOG_FILE, f"{datetime.now():%Y-%m-%d %H:%M:%S} {line}")

    def _write(self, name: str, line: str) -> None:
        if self._write_failed:
            return
        try:
            handle = self._files.get(name)
            if handle is None:
                handle = self._files[name] = _open_append(self.output_dir / name)
            handle.write(line + "\n")
            handle.flush()
        except OSError as err:  # a full disk must not end the run from inside a callback: say so once, go on
            self._write_failed = True
            message = f"stopped writing {name} in {self.output_dir}: {err.strerror or err}"
            with self._lock:
                self.state.add_message(message)
            if self.plain:
                print(message, flush=True)

    def _get_console(self) -> Console:
        if self._console is None:
            from lorawiz.console import get_console

            self._console = get_console()
        return self._console

    def _start_live(self) -> None:
        from rich.live import Live

        def current() -> RenderableType:
            with self._lock:
                return render_dashboard(self.state)

        self._live = Live(console=self._get_console(), get_renderable=current, refresh_per_second=REFRESH_PER_SECOND,
                          transient=False)
        self._live.start()


def _open_append(path: Path) -> IO[str]:
    """Append, line-buffered; a line cut short by a killed run is ended first so the next record stays whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cut_short = False
    with contextlib.suppress(OSError), open(path, "rb") as existing:
        if existing.seek(0, os.SEEK_END) > 0:
            existing.seek(-1, os.SEEK_END)
            cut_short = existing.read(1) != b"\n"
    handle = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - stays open for the run
    if cut_short:
        handle.write("\n")
    return handle


def _last_time_s(path: Path) -> float:
    """time_s of the last whole record in an existing metrics.jsonl, so a resumed run's clock carries on."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 65536))  # the last records are far shorter than 64 KiB
            tail = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return 0.0
    for line in reversed(tail.splitlines()):
        try:
            value = json.loads(line).get("time_s")
        except (ValueError, AttributeError):
            continue
        if is_number(value):
            return float(value)
    return 0.0


def drop_trainer_progress(trainer: Any) -> None:
    """The Trainer's own progress output off (its tqdm bar, or the PrinterCallback's dict per log)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for progress in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(progress)


def _json_value(value: Any) -> Any:
    if isinstance(value, bool | str | int) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    try:  # a 0-d tensor or numpy scalar
        return _json_value(float(value))
    except (TypeError, ValueError):
        return None
