"""The dashboard and the plain progress lines (lorawiz/views/dashboard.py): pure functions of a RunState, rendered
with a recording Console."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from lorawiz.train.state import EarlyStoppingState, RunState
from lorawiz.views.dashboard import GiB, plain_eval_line, plain_line, render_dashboard


def busy_state(resources: list[dict] | None = None) -> RunState:
    return RunState(
        model_name="Qwen2.5-0.5B", backend="hf", output_dir="/runs/demo", status="training", step=120,
        max_steps=1000, epoch=0.36, num_epochs=3, elapsed_seconds=102.0, eta_seconds=754.0,
        train_losses=[(step, 2.0 - step / 100) for step in range(81, 120)] + [(120, 1.2345)],
        eval_losses=[(40, 1.5), (80, 1.1), (120, 1.2)], learning_rate=2e-4, grad_norm=0.53, tokens_per_s=1234.4,
        tokens_seen=1_234_567,
        resources=resources if resources is not None else [
            {"kind": "gpu", "index": 0, "name": "NVIDIA H100 80GB HBM3", "used_bytes": int(10.2 * GiB),
             "total_bytes": int(79.6 * GiB), "util_percent": 97}],
        early_stopping=EarlyStoppingState(patience=3, threshold=0.001, best=1.1, best_step=80,
                                          evals_without_improvement=1),
        messages=["out of memory: halving micro-batch to 2"])


def test_plain_line_and_eval_line():
    state = busy_state()
    assert plain_line(state) == ("step 120/1000 (12.0%) epoch 0.36 loss 1.2345 lr 2.00e-04 grad 0.53 tok/s 1,234 "
                                 "mem 10.2/79.6GiB eta 0:12:34")
    assert plain_eval_line(state) == "eval step 120 eval_loss 1.2000 (best 1.1000 at 80)"
    head = busy_state()
    head.eval_scores = {"accuracy": 0.4, "macro_f1": 0.34327}  # a sequence head's scores, beside its loss
    assert plain_eval_line(head) == "eval step 120 eval_loss 1.2000 (best 1.1000 at 80) accuracy 40.0% macro-F1 0.343"
    assert "accuracy 40.0% macro-F1 0.343" in render_text(head, 120)
    pairs = busy_state()
    pairs.eval_scores = {"rewards/accuracies": 0.577, "rewards/margins": 0.0250061}  # DPO's, as TRL logs them
    assert plain_eval_line(pairs).endswith("(best 1.1000 at 80) preference accuracy 57.7% reward margin 0.0250")
    assert "preference accuracy 57.7% reward margin 0.0250" in render_text(pairs, 120)
    assert plain_line(RunState()) == "step 0 epoch 0.00"
    cpu = busy_state([{"kind": "cpu", "rss_bytes": int(1.5 * GiB), "ram_used_bytes": 4 * GiB,
                       "ram_total_bytes": 16 * GiB, "cpu_percent": 50.0}])
    cpu.train_losses.append((121, float("nan")))
    assert " loss nan " in plain_line(cpu) and " rss 1.5GiB " in plain_line(cpu)


def render_text(state: RunState, width: int) -> str:
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(render_dashboard(state))
    return console.export_text()


@pytest.mark.parametrize("width", [80, 120])
def test_dashboard_shows_progress_losses_resources_and_output(width):
    text = render_text(busy_state(), width)
    for expected in ("lorawiz train · Qwen2.5-0.5B · hf", "training", "12.0%", "eta 0:12:34", "120/1000",
                     "epoch 0.36/3", "1.2345", "1.2000", "best 1.1000 at step 80", "lr 2.00e-04", "grad norm 0.53",
                     "1,234 tokens/s", "1.2M tokens seen", "GPU 0", "10.2/79.6 GiB", "util 97%",
                     "1/3 evaluations without a 0.10% improvement", "/runs/demo", "halving micro-batch to 2"):
        assert expected in text, expected
    assert "▁" in text and "█" in text  # the loss sparkline spans the scale
    assert max(len(line) for line in text.splitlines()) <= width


@pytest.mark.parametrize("width", [80, 120])
def test_dashboard_renders_a_cpu_run_a_fresh_state_and_a_nan_loss(width):
    state = busy_state([{"kind": "cpu", "rss_bytes": 2 * GiB, "ram_used_bytes": 6 * GiB,
                         "ram_total_bytes": 16 * GiB, "cpu_percent": 180.0}])
    state.train_losses.append((121, float("nan")))
    state.early_stopping = EarlyStoppingState(patience=2, threshold=0.0, best=1.1, best_step=80,
                                              evals_without_improvement=2, triggered=True,
                                              kept_checkpoint="/runs/demo/checkpoint-80")
    text = render_text(state, width)
    assert "process 2.0 GiB" in text and "system 6.0/16.0 GiB" in text and "CPU 180%" in text
    assert "!" in text  # the NaN loss in the sparkline
    assert "2/2 evaluations without improvement" in text and "keeping" in text and "checkpoint-80" in text
    assert "waiting for the first step" in render_text(RunState(output_dir="/runs/new"), width)
