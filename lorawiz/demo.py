"""`lorawiz demo`: the whole journey on built-ins: plan, train with the dashboard, evaluate before and after.

The model is builtin:tiny (random weights, so it starts at chance) and the data builtin:triage (incident
reports to classify). The settings are the measured ones in lorawiz.builtin.triage.DEMO_SETTINGS.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class DemoResult:
    output_dir: Path
    accuracy_before: float
    accuracy_after: float
    loss_before: float | None
    loss_after: float | None
    seconds: float


def default_output_dir() -> Path:
    """A new folder per demo run, so that a second run never overwrites the first."""
    return Path("outputs") / f"lorawiz-demo-{time.strftime('%Y%m%d-%H%M%S')}"


def _accuracy(model_dir: str, adapter_dir: Path | None, rows: list[dict[str, Any]]) -> float:
    from lorawiz.builtin.triage import CATEGORIES
    from lorawiz.eval.scoring import classification_accuracy
    from lorawiz.models import Target, load_model, load_tokenizer_for

    target = Target(str(adapter_dir), model_dir, True) if adapter_dir else Target(model_dir, None, False)
    return classification_accuracy(load_model(target, "fp32"), load_tokenizer_for(target), rows, CATEGORIES)


def run_demo(output_dir: Path | None, plain: bool, overwrite: bool = False, reporter: Any = None) -> DemoResult:
    from lorawiz.ownership import hold_output_dir
    from lorawiz.train.runner import Reporter

    reporter = reporter or Reporter()
    output_dir = output_dir or default_output_dir()
    with hold_output_dir(output_dir, reporter.say):  # the whole demo, evaluations included: one demo per folder
        return _run_demo(output_dir, plain, overwrite, reporter)


def _run_demo(output_dir: Path, plain: bool, overwrite: bool, reporter: Any) -> DemoResult:
    from lorawiz.builtin import resolve_builtin
    from lorawiz.builtin.triage import DEMO_SETTINGS
    from lorawiz.config.resolve import resolve_config
    from lorawiz.data.rows import read_rows
    from lorawiz.data.writers import atomic_output
    from lorawiz.train.checkpoints import check_output_dir
    from lorawiz.train.runner import TrainRequest, run_training

    say = reporter.say
    started = time.monotonic()
    check_output_dir(output_dir, None, overwrite, say)  # before the first evaluation: refuse at once, not later
    say("lorawiz demo: fine-tune builtin:tiny (a 2-layer Llama with random weights) to classify emergency incident "
        "reports (builtin:triage) into fire, flood, medical, hazmat, traffic or collapse.")
    model_dir = resolve_builtin("builtin:tiny")
    val_file = resolve_builtin("builtin:triage:validation")
    val_rows = read_rows(val_file)
    before = _accuracy(model_dir, None, val_rows)
    say(f"before training: label accuracy {before:.1%} on {len(val_rows)} validation reports (chance is "
        f"{1 / 6:.1%})")

    flags = {**DEMO_SETTINGS,
             "model_name_or_path": "builtin:tiny", "train_file": "builtin:triage",
             "validation_file": "builtin:triage:validation",
             "output_dir": str(output_dir), "early_stopping_patience": 0}
    resolved = resolve_config(None, flags=flags, flag_names={name: "demo settings" for name in flags})
    request = TrainRequest(resolved, overwrite=overwrite, plain=plain, argv=["train", str(output_dir / "lorawiz.yaml")],
                           extra_args={"eval_on_start": True}, reporter=reporter)
    run_training(request)

    after = _accuracy(model_dir, output_dir, val_rows)
    evals = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in evals if r.get("type") == "eval" and isinstance(r.get("eval_loss"), int | float)]
    loss_before = evals[0]["eval_loss"] if evals and evals[0]["step"] == 0 else None
    results = json.loads((output_dir / "all_results.json").read_text())
    result = DemoResult(output_dir, before, after, loss_before, results.get("eval_loss"),
                        time.monotonic() - started)
    with atomic_output(output_dir / "demo_results.json", overwrite=True) as handle:
        json.dump(result.__dict__ | {"output_dir": str(output_dir)}, handle, indent=2)
    return result
