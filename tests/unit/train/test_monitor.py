"""The run monitor (lorawiz/train/monitor.py) on a real Trainer with a one-weight model."""

from __future__ import annotations

import re

from lorawiz.train.callbacks import EarlyStopping
from lorawiz.train.monitor import TrainMonitor
from tests.unit.train.tiny_trainer import make_trainer, read_records


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
