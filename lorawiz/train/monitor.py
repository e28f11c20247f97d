"""Watching a training run: TrainMonitor (a transformers TrainerCallback) keeps a small RunState up to date, a pure
function draws that state as a Rich dashboard, and every log step also becomes a plain line, a metrics.jsonl record
and a training.log line.

transformers is imported with this module (TrainMonitor subclasses TrainerCallback), so import it inside the command
that trains, never at the top of lorawiz.cli. rich, pynvml and psutil are imported where they are used.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from transformers import TrainerCallback

from lorawiz import hardware

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

GiB = 1024**3
STATUSES = ("starting", "training", "evaluating", "saving", "stopped", "done", "failed")
MAX_MESSAGES = 5  # the dashboard shows the last few events; training.log keeps them all
MAX_TRAIN_POINTS = 2000  # losses kept for the chart; the full series is in metrics.jsonl
TRAIN_SPARK_POINTS = 40  # fits a width-80 terminal beside the label and the value
EVAL_SPARK_POINTS = 20
SAMPLE_INTERVAL_S = 2.0  # one NVML/psutil read every 2 s is plenty for a display and costs well under 1 ms
REFRESH_PER_SECOND = 4
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "training.log"
_SPARK_BLOCKS = "▁▂▃▄▅▆▇█"


@dataclass
class EarlyStoppingState:
    """What the early-stopping callback has counted so far, as the dashboard shows it."""

    patience: int
    """Evaluations in a row without improvement that stop the run; 0 turns early stopping off."""
    threshold: float
    """Smallest relative improvement that counts: 0.001 means a loss must drop below best * (1 - 0.001)."""
    metric: str = "eval_loss"
    greater_is_better: bool = False
    best: float | None = None
    """The reference value: the last evaluation that improved by more than the threshold."""
    best_step: int | None = None
    evals_without_improvement: int = 0
    triggered: bool = False
    kept_checkpoint: str | None = None
    """Set when it triggers: the trainer's best checkpoint folder, or a phrase when no folder is known."""

    @property
    def enabled(self) -> bool:
        return self.patience > 0


@dataclass
class RunState:
    """Everything the dashboard and the plain lines show; plain data, updated by TrainMonitor."""

    model_name: str = ""
    backend: str = ""
    output_dir: str = ""
    status: str = "starting"
    """One of STATUSES."""
    step: int = 0
    max_steps: int = 0
    epoch: float = 0.0
    num_epochs: float = 0.0
    started_at: float | None = None
    """time.monotonic() when this training session began (a resumed run starts a new session)."""
    start_step: int = 0
    """The step this session began at: 0, or the checkpoint's step when resuming. ETA counts from here."""
    elapsed_seconds: float = 0.0
    eta_seconds: float | None = None
    """Computed by refresh_timing() from this session's average time per step, evaluations and saves included."""
    train_losses: list[tuple[int, float]] = field(default_factory=list)
    eval_losses: list[tuple[int, float]] = field(default_factory=list)
    eval_metric: str = "eval_loss"
    learning_rate: float | None = None
    grad_norm: float | None = None
    tokens_per_s: float | None = None
    """Training throughput between the last two logs, evaluation and checkpoint time left out."""
    tokens_seen: int | None = None
    resources: list[dict[str, Any]] = field(default_factory=list)
    """ResourceSampler.sample(): one dict per visible GPU, or one CPU dict on a machine without GPU."""
    early_stopping: EarlyStoppingState | None = None
    messages: list[str] = field(default_factory=list)
    """The last few notable events, oldest first."""

    @property
    def loss(self) -> float | None:
        return self.train_losses[-1][1] if self.train_losses else None

    @property
    def eval_loss(self) -> float | None:
        return self.eval_losses[-1][1] if self.eval_losses else None

    @property
    def best_eval(self) -> tuple[int, float] | None:
        """(step, value) of the lowest finite eval loss so far."""
        finite = [point for point in self.eval_losses if math.isfinite(point[1])]
        return min(finite, key=lambda point: point[1]) if finite else None

    @property
    def fraction_done(self) -> float | None:
        return min(1.0, self.step / self.max_steps) if self.max_steps > 0 else None

    def refresh_timing(self, now: float) -> None:
        """Elapsed time and ETA as of `now` (time.monotonic)."""
        if self.started_at is None:
            return
        self.elapsed_seconds = max(0.0, now - self.started_at)
        steps_done = self.step - self.start_step
        if self.max_steps > 0 and self.step >= self.max_steps:
            self.eta_seconds = 0.0
        elif steps_done > 0 and self.max_steps > 0:
            self.eta_seconds = self.elapsed_seconds / steps_done * (self.max_steps - self.step)
        else:
            self.eta_seconds = None

    def add_message(self, message: str) -> None:
        self.messages.append(message)
        del self.messages[:-MAX_MESSAGES]


# ---------------------------------------------------------------------------------------------------------
# GPU memory and utilisation, or process and system RAM


class ResourceSampler:
    """GPU memory and utilisation through NVML for every GPU this process can see (CUDA_VISIBLE_DEVICES honoured as
    lorawiz.hardware reads it), or, without a GPU or NVML, this process's RSS and the system RAM through psutil.

    `sample()` never raises and reads the devices at most once per `min_interval_s`; in between it returns the
    previous reading. GPU memory is the device's (every process on it, as nvidia-smi shows), which is what decides
    whether the next allocation fits.
    """

    def __init__(self, min_interval_s: float = SAMPLE_INTERVAL_S, clock: Callable[[], float] = time.monotonic):
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._last: list[dict[str, Any]] = []
        self._last_at: float | None = None
        self._mode: str | None = None  # "gpu" or "cpu" once decided; NVML is tried once per open
        self._nvml: Any = None
        self._gpus: list[tuple[hardware.GpuInfo, Any]] = []
        self._process: Any = None

    def sample(self) -> list[dict[str, Any]]:
        now = self._clock()
        if self._last_at is not None and now - self._last_at < self.min_interval_s:
            return self._last
        self._last_at = now
        try:
            if self._mode is None:
                self._mode = "gpu" if self._open_nvml() else "cpu"
            self._last = self._sample_gpus() if self._mode == "gpu" else self._sample_cpu()
        except Exception:  # a display must never take a training run down: keep the last reading
            pass
        return self._last

    def close(self) -> None:
        """Shut NVML down; a later sample() opens it again."""
        if self._nvml is not None:
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()
        self._nvml, self._gpus, self._mode, self._last_at = None, [], None, None

    def _open_nvml(self) -> bool:
        try:
            import pynvml
        except ImportError:
            return False
        try:
            pynvml.nvmlInit()
        except (pynvml.NVMLError, OSError):
            return False
        try:
            devices = [hardware._read_device(pynvml, index) for index in range(pynvml.nvmlDeviceGetCount())]
            visible = hardware._visible_gpus(devices, os.environ.get("CUDA_VISIBLE_DEVICES"), [])
            self._gpus = [(gpu, _nvml_handle(pynvml, gpu)) for gpu in visible]
        except (pynvml.NVMLError, OSError, LookupError):
            self._gpus = []
        if not self._gpus:
            with contextlib.suppress(pynvml.NVMLError, OSError):
                pynvml.nvmlShutdown()
            return False
        self._nvml = pynvml
        return True

    def _sample_gpus(self) -> list[dict[str, Any]]:
        pynvml = self._nvml
        readings = []
        for gpu, handle in self._gpus:
            total, free = hardware._memory(pynvml, handle)
            try:
                util: int | None = int(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except pynvml.NVMLError:  # NotSupported on MIG slices
                util = None
            readings.append({"kind": "gpu", "index": gpu.index, "name": gpu.name, "used_bytes": total - free,
                             "total_bytes": total, "util_percent": util})
        return readings

    def _sample_cpu(self) -> list[dict[str, Any]]:
        import psutil

        if self._process is None:
            self._process = psutil.Process()
            psutil.cpu_percent(interval=None)  # the first call only starts the measuring interval
        memory = psutil.virtual_memory()
        return [{"kind": "cpu", "rss_bytes": int(self._process.memory_info().rss),
                 "ram_used_bytes": int(memory.total - memory.available), "ram_total_bytes": int(memory.total),
                 "cpu_percent": float(psutil.cpu_percent(interval=None))}]


def _nvml_handle(pynvml: Any, gpu: hardware.GpuInfo) -> Any:
    """The NVML handle of a visible GPU: by NVML index, or for a MIG slice the parent's slot with its UUID."""
    handle = pynvml.nvmlDeviceGetHandleByIndex(gpu.index)
    if not gpu.uuid.startswith("MIG-"):
        return handle
    for slot in range(pynvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
        except pynvml.NVMLError:
            continue
        if hardware._text(pynvml.nvmlDeviceGetUUID(mig)) == gpu.uuid:
            return mig
    raise LookupError(gpu.uuid)


# ---------------------------------------------------------------------------------------------------------
# Plain lines


def format_duration(seconds: float | None) -> str:
    """H:MM:SS, hours unbounded ("27:03:04"); "--" when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "--"
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _number(value: float, spec: str) -> str:
    return format(value, spec) if math.isfinite(value) else str(value)  # nan, inf, -inf


def _loss_text(value: float) -> str:
    return _number(value, ".4f")


def _grad_text(value: float) -> str:
    return _number(value, ".2f" if value == 0 or abs(value) >= 0.01 else ".1e")


def _tokens_text(count: int) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if count >= size:
            return f"{count / size:.1f}{suffix}"
    return str(count)


def _progress_text(state: RunState) -> str:
    fraction = state.fraction_done
    if fraction is None:
        return f"step {state.step}"
    return f"step {state.step}/{state.max_steps} ({fraction * 100:.1f}%)"


def _memory_plain(resources: list[dict[str, Any]]) -> str | None:
    gpus = [item for item in resources if item.get("kind") == "gpu" and item.get("total_bytes")]
    if gpus:  # the fullest GPU is the one that runs out first
        fullest = max(gpus, key=lambda item: item["used_bytes"] / item["total_bytes"])
        return f"mem {fullest['used_bytes'] / GiB:.1f}/{fullest['total_bytes'] / GiB:.1f}GiB"
    cpus = [item for item in resources if item.get("kind") == "cpu"]
    return f"rss {cpus[0]['rss_bytes'] / GiB:.1f}GiB" if cpus else None


def plain_line(state: RunState) -> str:
    """One line per logging step, e.g.
    `step 120/1000 (12.0%) epoch 0.36 loss 1.2345 lr 2.00e-04 grad 0.53 tok/s 1,234 mem 10.2/79.6GiB eta 0:12:34`;
    values not known yet are left out."""
    parts = [_progress_text(state), f"epoch {state.epoch:.2f}"]
    if state.loss is not None:
        parts.append(f"loss {_loss_text(state.loss)}")
    if state.learning_rate is not None:
        parts.append(f"lr {_number(state.learning_rate, '.2e')}")
    if state.grad_norm is not None:
        parts.append(f"grad {_grad_text(state.grad_norm)}")
    if state.tokens_per_s is not None:
        parts.append(f"tok/s {state.tokens_per_s:,.0f}")
    memory = _memory_plain(state.resources)
    if memory:
        parts.append(memory)
    if state.eta_seconds is not None:
        parts.append(f"eta {format_duration(state.eta_seconds)}")
    return " ".join(parts)


def plain_eval_line(state: RunState) -> str:
    """`eval step 120 eval_loss 1.1000 (best 1.1000 at 120)` for the latest evaluation."""
    if not state.eval_losses:
        return f"eval step {state.step}"
    step, value = state.eval_losses[-1]
    line = f"eval step {step} {state.eval_metric} {_loss_text(value)}"
    best = state.best_eval
    return f"{line} (best {_loss_text(best[1])} at {best[0]})" if best else line


# ---------------------------------------------------------------------------------------------------------
# The dashboard: a pure function of RunState


def sparkline(values: list[float], low: float, high: float) -> str:
    """One block character per value on the low..high scale; "!" marks a NaN or infinite value."""
    chars = []
    for value in values:
        if not math.isfinite(value):
            chars.append("!")
        elif high <= low:
            chars.append(_SPARK_BLOCKS[len(_SPARK_BLOCKS) // 2])
        else:
            level = round((value - low) / (high - low) * (len(_SPARK_BLOCKS) - 1))
            chars.append(_SPARK_BLOCKS[min(max(level, 0), len(_SPARK_BLOCKS) - 1)])
    return "".join(chars)


_STATUS_STYLES = {"starting": "dim", "training": "green", "evaluating": "cyan", "saving": "magenta",
                  "stopped": "yellow", "done": "bold green", "failed": "bold red"}


def render_dashboard(state: RunState) -> RenderableType:
    """The live dashboard for `state`: reads nothing else (no clock, no devices), so it can be snapshot-tested."""
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    rows = Table.grid(padding=(0, 1), expand=True)
    rows.add_column(style="bold", no_wrap=True)
    rows.add_column(ratio=1)
    rows.add_row("progress", _progress_row(state))
    rows.add_row("step", Text(_steps_text(state)))
    train, evals = _loss_rows(state)
    rows.add_row("train loss", train)
    rows.add_row("eval loss", evals)
    rows.add_row("optimizer", Text(_optimizer_text(state)))
    rows.add_row("speed", Text(_speed_text(state)))
    for label, value in _resource_rows(state.resources):
        rows.add_row(label, value)
    if state.early_stopping is not None:
        rows.add_row("early stop", _early_stopping_text(state.early_stopping))
    rows.add_row("output", Text(state.output_dir or "-", overflow="fold"))
    if state.messages:
        rows.add_row("events", Text("\n".join(state.messages), style="yellow", overflow="fold"))

    title = Text("lorawiz train", style="bold")
    for part in (state.model_name, state.backend):
        if part:
            title.append(f" · {part}")
    subtitle = Text(state.status, style=_STATUS_STYLES.get(state.status, ""))
    return Panel(rows, title=title, title_align="left", subtitle=subtitle, subtitle_align="right")


def _progress_row(state: RunState) -> RenderableType:
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    fraction = state.fraction_done
    if fraction is None:
        return Text("waiting for the first step", style="dim")
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(ratio=1)
    grid.add_column(no_wrap=True)
    grid.add_row(ProgressBar(total=state.max_steps, completed=min(state.step, state.max_steps)),
                 Text(f"{fraction * 100:5.1f}%  eta {format_duration(state.eta_seconds)}"))
    return grid


def _steps_text(state: RunState) -> str:
    steps = f"{state.step}/{state.max_steps}" if state.max_steps > 0 else str(state.step)
    epochs = f"{state.epoch:.2f}/{state.num_epochs:g}" if state.num_epochs else f"{state.epoch:.2f}"
    return f"{steps}   epoch {epochs}   elapsed {format_duration(state.elapsed_seconds)}"


def _loss_rows(state: RunState) -> tuple[Any, Any]:
    from rich.text import Text

    train = [value for _, value in state.train_losses[-TRAIN_SPARK_POINTS:]]
    evals = [value for _, value in state.eval_losses[-EVAL_SPARK_POINTS:]]
    finite = [value for value in train + evals if math.isfinite(value)]
    low, high = (min(finite), max(finite)) if finite else (0.0, 0.0)  # one scale, so train and eval compare

    train_text = Text("-" if state.loss is None else _loss_text(state.loss))
    if train:
        train_text.append("  ").append(sparkline(train, low, high), style="cyan")
    eval_text = Text("-" if state.eval_loss is None else _loss_text(state.eval_loss))
    if evals:
        eval_text.append("  ").append(sparkline(evals, low, high), style="magenta")
    best = state.best_eval
    if best is not None:
        eval_text.append(f"  best {_loss_text(best[1])} at step {best[0]}", style="dim")
    return train_text, eval_text


def _optimizer_text(state: RunState) -> str:
    lr = "-" if state.learning_rate is None else _number(state.learning_rate, ".2e")
    grad = "-" if state.grad_norm is None else _grad_text(state.grad_norm)
    return f"lr {lr}   grad norm {grad}"


def _speed_text(state: RunState) -> str:
    rate = "-" if state.tokens_per_s is None else f"{state.tokens_per_s:,.0f}"
    text = f"{rate} tokens/s"
    if state.tokens_seen:
        text += f"   {_tokens_text(state.tokens_seen)} tokens seen"
    return text


def _resource_rows(resources: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    rows: list[tuple[str, Any]] = []
    for item in resources:
        if item.get("kind") == "gpu":
            grid = Table.grid(padding=(0, 1))
            grid.add_column(no_wrap=True, overflow="ellipsis", max_width=28)
            grid.add_column(width=10)
            grid.add_column(no_wrap=True)
            total = item.get("total_bytes") or 0
            util = item.get("util_percent")
            usage = f"{item['used_bytes'] / GiB:.1f}/{total / GiB:.1f} GiB"
            usage += f"  util {util}%" if util is not None else ""
            grid.add_row(Text(str(item.get("name", ""))), ProgressBar(total=total or 1, completed=item["used_bytes"]),
                         Text(usage))
            rows.append((f"GPU {item.get('index', '?')}", grid))
        elif item.get("kind") == "cpu":
            text = (f"process {item['rss_bytes'] / GiB:.1f} GiB   system {item['ram_used_bytes'] / GiB:.1f}/"
                    f"{item['ram_total_bytes'] / GiB:.1f} GiB   CPU {item['cpu_percent']:.0f}%")
            rows.append(("memory", Text(text)))
    return rows


def _early_stopping_text(info: EarlyStoppingState) -> Any:
    from rich.text import Text

    if not info.enabled:
        return Text("off", style="dim")
    needed = f"a {info.threshold:.2%} improvement" if info.threshold > 0 else "improvement"
    text = Text(f"{info.evals_without_improvement}/{info.patience} evaluations without {needed}")
    if info.best is not None:
        text.append(f" on {_loss_text(info.best)} (step {info.best_step})", style="dim")
    if info.triggered:
        text.append(f"; stopped, keeping {info.kept_checkpoint}", style="bold yellow")
    return text


# ---------------------------------------------------------------------------------------------------------
# The callback


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
    from TRL's cumulative "num_tokens" log value, else from the count given to add_tokens().
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
        self._counted_tokens = 0

    # -- API for the runner --------------------------------------------------------------------------------

    def attach(self, trainer: Any) -> None:
        """Add this monitor to `trainer` (unless it is there) and remove the Trainer's own progress output: its tqdm
        bar, or the PrinterCallback that prints a dict per log when `disable_tqdm=True`. Then the dashboard or the
        plain lines are the only progress output."""
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        for progress in (PrinterCallback, ProgressCallback):
            trainer.remove_callback(progress)
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

    def add_tokens(self, count: int) -> None:
        """Count training tokens yourself when the trainer does not (no include_num_input_tokens_seen, not TRL)."""
        self._counted_tokens += int(count)

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
        self._last_tokens = {"trainer": state.num_input_tokens_seen, "counter": self._counted_tokens}
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
            if _is_number(logs.get("loss")):
                run.train_losses.append((state.global_step, float(logs["loss"])))
                del run.train_losses[:-MAX_TRAIN_POINTS]
            if _is_number(logs.get("learning_rate")):
                run.learning_rate = float(logs["learning_rate"])
            if _is_number(logs.get("grad_norm")):
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
        key = _eval_loss_key(metrics)
        with self._lock:
            self._set_activity("saving" if control.should_save else "training")
            if key is not None and _is_number(metrics[key]):
                self.state.eval_metric = key
                self.state.eval_losses.append((state.global_step, float(metrics[key])))
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
                                   if _is_number(entry.get("loss")) and "step" in entry][-MAX_TRAIN_POINTS:]
        evals = []
        for entry in history:
            key = _eval_loss_key(entry)
            if key is not None and _is_number(entry[key]) and "step" in entry:
                evals.append((int(entry["step"]), float(entry[key])))
                self.state.eval_metric = key
        self.state.eval_losses = evals

    def _update_tokens(self, state, logs: Mapping[str, Any]) -> None:
        """Tokens/s over the step time since the last log, from the best source that is counting."""
        if state.num_input_tokens_seen > self._last_tokens.get("trainer", 0):
            source, total = "trainer", int(state.num_input_tokens_seen)
        elif _is_number(logs.get("num_tokens")):
            source, total = "trl", int(logs["num_tokens"])
        elif self._counted_tokens > self._last_tokens.get("counter", 0):
            source, total = "counter", self._counted_tokens
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
        if _is_number(value):
            return float(value)
    return 0.0


def _eval_loss_key(metrics: Mapping[str, Any]) -> str | None:
    """"eval_loss", or the loss of a named eval set ("eval_val_loss")."""
    if "eval_loss" in metrics:
        return "eval_loss"
    return next((key for key in metrics if key.startswith("eval_") and key.endswith("_loss")), None)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_value(value: Any) -> Any:
    if isinstance(value, bool | str | int) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    try:  # a 0-d tensor or numpy scalar
        return _json_value(float(value))
    except (TypeError, ValueError):
        return None
