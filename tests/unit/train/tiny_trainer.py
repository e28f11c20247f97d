"""A real transformers Trainer over a one-weight model, for the monitor and callback tests."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import Trainer, TrainingArguments

from lorawiz.train.monitor import TrainMonitor


class Scale(torch.nn.Module):
    """y = a * x with one weight and a squared-error loss; "x" counts as the input tokens."""

    main_input_name = "x"

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(0.0))

    def forward(self, x, labels):
        return {"loss": ((self.a * x - labels) ** 2).mean()}


# Training pulls a from 0 towards 2; the eval rows want -2, so the eval loss rises at every evaluation.
TRAIN_ROWS = [{"x": torch.tensor(float(i % 3 + 1)), "labels": torch.tensor(2.0 * (i % 3 + 1))} for i in range(8)]
RISING_EVAL_ROWS = [{"x": torch.tensor(1.0), "labels": torch.tensor(-2.0)}, {"x": torch.tensor(2.0),
                                                                            "labels": torch.tensor(-4.0)}]
# ... and these want 2, as training does: the eval loss falls, a little at every evaluation.
FALLING_EVAL_ROWS = [{"x": torch.tensor(1.0), "labels": torch.tensor(2.0)}, {"x": torch.tensor(2.0),
                                                                           "labels": torch.tensor(4.0)}]


def make_trainer(output_dir: Path, callbacks: list, **overrides) -> Trainer:
    options = dict(output_dir=str(output_dir), max_steps=8, per_device_train_batch_size=2, learning_rate=0.05,
                   logging_steps=1, eval_strategy="steps", eval_steps=2, save_strategy="steps", save_steps=2,
                   report_to=[], use_cpu=True, disable_tqdm=True, logging_nan_inf_filter=False, seed=0)
    eval_rows = overrides.pop("eval_rows", RISING_EVAL_ROWS)
    options.update(overrides)
    evaluating = options["eval_strategy"] != "no"
    trainer = Trainer(model=Scale(), args=TrainingArguments(**options), train_dataset=TRAIN_ROWS,
                      eval_dataset=eval_rows if evaluating else None, callbacks=callbacks)
    monitors = [callback for callback in callbacks if isinstance(callback, TrainMonitor)]
    if monitors:
        monitors[0].attach(trainer)
    return trainer


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def checkpoints(output_dir: Path) -> list[str]:
    return sorted((p.name for p in output_dir.glob("checkpoint-*")), key=lambda name: int(name.split("-")[1]))


# ---------------------------------------------------------------------------------------------------------
# A whole run
