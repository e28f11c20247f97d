"""The small state a training run's callbacks keep up to date and the dashboard draws: RunState and the
early-stopping counts in it. Plain data, standard library only."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

STATUSES = ("starting", "training", "evaluating", "saving", "stopped", "done", "failed")
MAX_MESSAGES = 5  # the dashboard shows the last few events; training.log keeps them all


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
    eval_scores: dict[str, float] = field(default_factory=dict)  # a sequence head's latest accuracy and macro-F1
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
