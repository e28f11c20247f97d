"""The run monitor and the training callbacks, on a real Trainer with a one-weight model."""

from __future__ import annotations

import io
import json
import math
import os
import re
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from rich.console import Console
from transformers import Trainer, TrainerControl, TrainerState, TrainingArguments

from lorawiz.libraries import quiet_libraries
from lorawiz.train import callbacks as callbacks_module
from lorawiz.train.callbacks import EarlyStopping, FaultInjection, NonFiniteLossGuard, parse_fault
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


def make_trainer(output_dir: Path, callbacks: list, **overrides) -> Trainer:
    options = dict(output_dir=str(output_dir), max_steps=8, per_device_train_batch_size=2, learning_rate=0.05,
                   logging_steps=1, eval_strategy="steps", eval_steps=2, save_strategy="steps", save_steps=2,
                   report_to=[], use_cpu=True, disable_tqdm=True, logging_nan_inf_filter=False, seed=0)
    options.update(overrides)
    evaluating = options["eval_strategy"] != "no"
    trainer = Trainer(model=Scale(), args=TrainingArguments(**options), train_dataset=TRAIN_ROWS,
                      eval_dataset=RISING_EVAL_ROWS if evaluating else None, callbacks=callbacks)
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


def test_plain_run_writes_metrics_log_and_one_line_per_step(tmp_path, capsys):
    out, elsewhere = tmp_path / "run", tmp_path / "other-rank"
    monitor = TrainMonitor(out, plain=True, model_name="scale", backend="hf")
    other_rank = TrainMonitor(elsewhere, plain=True, is_main=False)
    stopper = EarlyStopping(patience=0, threshold=0.0, monitor=monitor)
    trainer = make_trainer(out, [monitor, other_rank, stopper], include_num_input_tokens_seen=True)

    trainer.train()

    records = read_records(out / "metrics.jsonl")
    train = [r for r in records if r["type"] == "train"]
    evals = [r for r in records if r["type"] == "eval"]
    assert [r["step"] for r in train] == list(range(1, 9))
    assert [r["step"] for r in evals] == [2, 4, 6, 8]
    assert records[-1]["type"] == "summary" and "train_loss" in records[-1]
    for record in train:
        assert {"type", "step", "epoch", "time_s", "loss", "learning_rate", "grad_norm", "tokens_per_s"} <= set(record)
    assert all("eval_loss" in r and "loss" not in r for r in evals)
    times = [r["time_s"] for r in records]
    assert times == sorted(times)

    stdout = capsys.readouterr().out
    lines = stdout.splitlines()
    step_lines = [line for line in lines if line.startswith("step ")]
    assert len(step_lines) == 8
    assert re.fullmatch(r"step 1/8 \(12\.5%\) epoch 0\.25 loss \d+\.\d{4} lr 5\.00e-02 grad \d+\.\d\d tok/s [\d,]+ "
                        r"rss \d+\.\dGiB eta \d+:\d\d:\d\d", step_lines[0]), step_lines[0]
    assert [line for line in lines if line.startswith("eval step")][0].startswith("eval step 2 eval_loss ")
    assert "\r" not in stdout and "{'loss'" not in stdout  # no tqdm bar, no PrinterCallback dicts
    assert lines[-1] == monitor.state.messages[-1] and lines[-1].startswith("finished 8 steps in ")

    log = (out / "training.log").read_text()
    assert all(line in log for line in step_lines)
    assert "training scale (hf) for 8 steps" in log and "saved checkpoint-8" in log

    assert monitor.state.status == "done" and monitor.state.tokens_seen == 16  # 8 steps x 2 rows x 1 "token"
    assert not stopper.triggered and stopper.info.evals_without_improvement == 0  # patience 0: off
    assert not elsewhere.exists()  # is_main=False: nothing written
    monitor.close()  # already closed by on_train_end: a second close is harmless


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


def test_monitor_on_another_process_writes_and_prints_nothing(tmp_path, capsys):
    monitor = TrainMonitor(tmp_path / "run", plain=True, is_main=False)
    monitor.note("out of memory: halving micro-batch to 2")
    monitor.close()
    assert not (tmp_path / "run").exists() and capsys.readouterr().out == ""
    assert monitor.state.messages == ["out of memory: halving micro-batch to 2"]


def test_a_line_cut_short_by_a_killed_run_is_ended_before_appending(tmp_path, capsys):
    (tmp_path / "training.log").write_text("2025-01-01 00:00:00 step 3/9 (33.3%) ep")
    monitor = TrainMonitor(tmp_path, plain=True)
    monitor.note("resumed from step 2")
    monitor.close()
    lines = (tmp_path / "training.log").read_text().splitlines()
    assert len(lines) == 2 and lines[1].endswith(" resumed from step 2")
    assert capsys.readouterr().out == "resumed from step 2\n"


@pytest.fixture
def restore_library_output(monkeypatch):
    import datasets.utils
    import transformers.utils.logging as transformers_logging

    for name in ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY",
                 "DATASETS_VERBOSITY"):
        monkeypatch.delenv(name, raising=False)
    verbosity = transformers_logging.get_verbosity()
    yield
    transformers_logging.enable_progress_bar()
    transformers_logging.set_verbosity(verbosity)
    datasets.utils.enable_progress_bars()
    datasets.utils.logging.set_verbosity_warning()


def test_quiet_libraries_in_plain_output(restore_library_output):
    import datasets.utils
    import transformers.utils.logging as transformers_logging

    quiet_libraries(plain=True)
    assert not transformers_logging.is_progress_bar_enabled()
    assert datasets.utils.are_progress_bars_disabled()
    assert transformers_logging.get_verbosity() == transformers_logging.ERROR
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"

    quiet_libraries(plain=False)
    assert transformers_logging.get_verbosity() == transformers_logging.WARNING
