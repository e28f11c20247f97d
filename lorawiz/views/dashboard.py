"""The training dashboard and plain progress lines as pure functions of a RunState: state in, Rich renderable or
str out; no clock, no devices, no I/O, so they can be snapshot-tested. rich is imported where it is used."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import RenderableType

    # Type only: views sit below train, which passes its state in.
    from lorawiz.train.state import EarlyStoppingState, RunState

GiB = 1024**3
TRAIN_SPARK_POINTS = 40  # fits a width-80 terminal beside the label and the value
EVAL_SPARK_POINTS = 20
_SPARK_BLOCKS = "▁▂▃▄▅▆▇█"


# ---------------------------------------------------------------------------------------------------------
# Plain lines


# The evaluation scores the dashboard shows beside the loss, as the trainers log them without "eval_"
EVAL_SCORES = ("accuracy", "macro_f1", "rewards/accuracies", "rewards/margins")


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
    line = f"{line} (best {_loss_text(best[1])} at {best[0]})" if best else line
    return line + _scores_text(state)


def _scores_text(state: RunState) -> str:
    """The scores beside an evaluation's loss: a sequence head's (` accuracy 40.0% macro-F1 0.343`), DPO's on the
    held-out pairs (` preference accuracy 57.7% reward margin 0.0250`: how often, and by how much, the chosen
    answer's implicit reward beats the rejected one's)."""
    scores = state.eval_scores
    shown = {"accuracy": " accuracy {:.1%}", "macro_f1": " macro-F1 {:.3f}",
             "rewards/accuracies": " preference accuracy {:.1%}", "rewards/margins": " reward margin {:.4f}"}
    return "".join(shown[name].format(scores[name]) for name in EVAL_SCORES if name in scores)


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
    if state.eval_scores:
        eval_text.append(_scores_text(state))
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
            total = item["total_bytes"]  # every GPU reading has it (lorawiz.hardware.nvml._sample_gpus)
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
