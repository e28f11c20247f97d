"""Early stopping, the NaN guard and injected faults (lorawiz/train/callbacks.py) on a real Trainer."""

from __future__ import annotations

import io
import math
import os
import signal
from types import SimpleNamespace

import pytest
import torch
from rich.console import Console
from transformers import TrainerControl, TrainerState

from lorawiz.train import callbacks as callbacks_module
from lorawiz.train.callbacks import EarlyStopping, FaultInjection, NonFiniteLossGuard, parse_fault
from lorawiz.train.monitor import TrainMonitor
from tests.unit.train.tiny_trainer import FALLING_EVAL_ROWS, checkpoints, make_trainer, read_records


def test_early_stopping_after_patience_evaluations_names_the_kept_checkpoint(tmp_path, capsys):
    monitor = TrainMonitor(tmp_path, plain=True)
    stopper = EarlyStopping(patience=2, threshold=0.001, monitor=monitor)
    trainer = make_trainer(tmp_path, [monitor, stopper], max_steps=20, load_best_model_at_end=True,
                           metric_for_best_model="eval_loss")

    trainer.train()

    # Evaluations at 2 (the best), 4 and 6 (no improvement): stopped at 6, not 20.
    assert trainer.state.global_step == 6
    assert stopper.triggered and stopper.info.best_step == 2
    assert stopper.info.kept_checkpoint == str(tmp_path / "checkpoint-2")
    message = next(m for m in monitor.state.messages if m.startswith("early stopping"))
    assert "at step 6" in message and "by more than 0.10%" in message and "checkpoint-2" in message
    assert message in capsys.readouterr().out and message in (tmp_path / "training.log").read_text()
    assert monitor.state.status == "stopped"


def test_early_stopping_names_the_checkpoint_the_trainer_keeps(tmp_path):
    """The evaluation that stops the run can improve by less than the threshold and still be the best by the
    metric: the Trainer keeps its checkpoint, and the message names that one."""
    monitor = TrainMonitor(tmp_path, plain=True)
    stopper = EarlyStopping(patience=1, threshold=0.5, monitor=monitor)
    trainer = make_trainer(tmp_path, [monitor, stopper], max_steps=20, load_best_model_at_end=True,
                           metric_for_best_model="eval_loss", eval_rows=FALLING_EVAL_ROWS)

    trainer.train()

    assert trainer.state.global_step == 4 and stopper.info.best_step == 2
    assert trainer.state.best_model_checkpoint == str(tmp_path / "checkpoint-4")  # lower, by less than 50%
    assert stopper.info.kept_checkpoint == trainer.state.best_model_checkpoint
    message = next(m for m in monitor.state.messages if m.startswith("early stopping"))
    assert message.endswith(f"keeping {tmp_path / 'checkpoint-4'} (eval_loss {trainer.state.best_metric:.4f})")


def test_early_stopping_keeps_counting_after_a_resume(tmp_path):
    first = TrainMonitor(tmp_path, plain=True)
    make_trainer(tmp_path, [first, EarlyStopping(3, 0.0, monitor=first)], max_steps=6).train()
    before = read_records(tmp_path / "metrics.jsonl")

    monitor = TrainMonitor(tmp_path, plain=True)
    stopper = EarlyStopping(3, 0.0, monitor=monitor)
    trainer = make_trainer(tmp_path, [monitor, stopper], max_steps=20)
    trainer.train(resume_from_checkpoint=str(tmp_path / "checkpoint-6"))

    # Evaluations 4 and 6 before the resume did not improve, so the first one after it (step 8) is the third.
    assert trainer.state.global_step == 8 and stopper.triggered
    records = read_records(tmp_path / "metrics.jsonl")
    after = records[len(before):]
    assert [r["step"] for r in after if r["type"] == "train"] == [7, 8]
    assert after[0]["time_s"] >= before[-1]["time_s"]  # the clock carries on
    assert [step for step, _ in monitor.state.train_losses] == list(range(1, 9))  # chart rebuilt from the history
    assert "resumed from step 6" in (tmp_path / "training.log").read_text()


def early_stopping_decisions(values: list[float], threshold: float, greater_is_better: bool = False) -> list[int]:
    stopper = EarlyStopping(patience=10, threshold=threshold, greater_is_better=greater_is_better)
    state, control, counts = TrainerState(), TrainerControl(), []
    for step, value in enumerate(values, start=1):
        state.global_step = step
        stopper.on_evaluate(SimpleNamespace(), state, control, metrics={"eval_loss": value})
        counts.append(stopper.info.evals_without_improvement)
    return counts


def test_early_stopping_threshold_is_relative_to_the_best():
    # 1.0 -> 0.9995 is 0.05%, under the 0.1% threshold; 0.998 is 0.2% better than 1.0.
    assert early_stopping_decisions([1.0, 0.9995, 0.9992, 0.998], threshold=0.001) == [0, 1, 2, 0]
    assert early_stopping_decisions([1.0, 0.9995], threshold=0.0) == [0, 0]
    assert early_stopping_decisions([1.0, 1.0005, 1.002], threshold=0.001, greater_is_better=True) == [0, 1, 0]
    assert early_stopping_decisions([1.0, float("nan")], threshold=0.0) == [0, 1]


def test_early_stopping_does_not_claim_the_last_step():
    stopper, state, control = EarlyStopping(patience=1, threshold=0.0), TrainerState(max_steps=2), TrainerControl()
    for step, value in ((1, 1.0), (2, 2.0)):
        state.global_step = step
        stopper.on_evaluate(SimpleNamespace(), state, control, metrics={"eval_loss": value})
    assert stopper.info.evals_without_improvement == 1 and not stopper.triggered
    assert not control.should_training_stop


def test_early_stopping_refuses_bad_settings():
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(-1, 0.0)
    with pytest.raises(ValueError, match="threshold"):
        EarlyStopping(3, 1.5)
    assert EarlyStopping(3, 0.0, metric="loss").info.metric == "eval_loss"


# ---------------------------------------------------------------------------------------------------------
# NaN guard and injected faults


def test_nan_loss_stops_training_and_nothing_is_saved_after_it(tmp_path):
    monitor = TrainMonitor(tmp_path, plain=True)
    guard = NonFiniteLossGuard(monitor=monitor)
    trainer = make_trainer(tmp_path, [monitor, guard, FaultInjection("nan@3")], max_steps=10, eval_strategy="no")

    trainer.train()

    assert trainer.state.global_step == 3
    assert guard.tripped_at_step == 3 and guard.what == "loss" and math.isnan(guard.value)
    assert checkpoints(tmp_path) == ["checkpoint-2"]
    assert "loss became nan at step 3" in " ".join(monitor.state.messages)
    assert monitor.state.status == "failed"
    assert read_records(tmp_path / "metrics.jsonl")[2]["loss"] == "nan"  # strict JSON has no NaN


def test_nan_weights_are_not_checkpointed_when_the_logged_loss_is_filtered(tmp_path):
    guard = NonFiniteLossGuard()
    trainer = make_trainer(tmp_path, [guard, FaultInjection(("nan", 3))], max_steps=10, eval_strategy="no",
                           logging_nan_inf_filter=True)

    trainer.train()

    # The filter hides step 3's NaN loss; the weight check refuses checkpoint-4.
    assert guard.tripped_at_step == 4 and guard.what == "trainable weights"
    assert checkpoints(tmp_path) == ["checkpoint-2"]


def test_injected_oom_raises_from_train_and_the_dashboard_closes_cleanly(tmp_path):
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    monitor = TrainMonitor(tmp_path, plain=False, model_name="scale", console=console)
    trainer = make_trainer(tmp_path, [monitor, FaultInjection("oom@2")], eval_strategy="no")

    with pytest.raises(torch.OutOfMemoryError, match="injected") as raised:
        trainer.train()
    monitor.close(raised.value)
    monitor.close(raised.value)

    assert monitor.state.status == "failed" and monitor._live is None
    assert "lorawiz train · scale" in screen.getvalue()  # the last frame stays on screen
    log = (tmp_path / "training.log").read_text()
    assert log.count("failed at step 2: OutOfMemoryError: CUDA out of memory (injected)") == 1


@pytest.mark.parametrize(("fault", "expected"), [("sigint@5", signal.SIGINT),
                                                 ("kill@5", getattr(signal, "SIGKILL", signal.SIGTERM))])
def test_signal_faults_signal_this_process_once_at_their_step(monkeypatch, fault, expected):
    sent = []
    monkeypatch.setattr(callbacks_module.os, "kill", lambda pid, sig: sent.append((pid, sig)))
    injection, state = FaultInjection(fault), TrainerState()
    for step in (4, 5, 5):
        state.global_step = step
        injection.on_step_end(SimpleNamespace(), state, TrainerControl())
    assert sent == [(os.getpid(), expected)]


@pytest.mark.parametrize(("text", "expected"), [
    ("nan@12", ("nan", 12)), (" OOM@3 ", ("oom", 3)), ("sigint@1", ("sigint", 1)), ("kill@40", ("kill", 40)),
    ("", None), (None, None),
])
def test_parse_fault_accepts(text, expected):
    assert parse_fault(text) == expected


@pytest.mark.parametrize("text", ["nan", "nan@", "nan@x", "nan@0", "nan@-1", "boom@3", "@3", "nan@1.5"])
def test_parse_fault_refuses_with_the_forms(text):
    with pytest.raises(ValueError, match="LORAWIZ_FAULT.*nan@STEP"):
        parse_fault(text)


def test_fault_from_env(monkeypatch):
    monkeypatch.setenv("LORAWIZ_FAULT", "oom@7")
    injection = FaultInjection.from_env()
    assert (injection.kind, injection.step) == ("oom", 7)
    assert FaultInjection.from_env({}) is None


# ---------------------------------------------------------------------------------------------------------
# Files and library settings
