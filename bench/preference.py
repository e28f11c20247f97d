"""Preference tuning on builtin:triage-pairs: DPO, KTO and ORPO through `lorawiz train --method`, then `lorawiz eval`
on the 240 held-out pairs: each model's preference accuracy (the chosen answer likelier than the rejected one), base
(the adapter off) against tuned, and the tuned model's implicit reward over the base; and the training time.

Usage: python bench/preference.py [--model builtin:tiny] [--methods dpo kto orpo] [--runs 1] [--out FILE]

builtin:tiny is a random 2-layer base, so, as the demo does, the embeddings and lm_head train in full beside LoRA,
at 3e-3 for 2 epochs (micro-batch 16, no accumulation, no early stopping); everything else is the plan's. Each run
uses its own seed (42, 43, ...), methods interleaved; figures are medians over the runs. Written to
bench/results/preference.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SETTINGS = {"learning_rate": 3e-3, "num_train_epochs": 2, "modules_to_save": ["lm_head", "embed_tokens"],
            "early_stopping_patience": 0, "per_device_train_batch_size": 16, "gradient_accumulation_steps": 1,
            "eval_steps": 50, "save_steps": 50}


def lorawiz(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "lorawiz", *args], capture_output=True, text=True, cwd=cwd,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise SystemExit(f"lorawiz {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


def run_method(method: str, model: str, seed: int, folder: Path) -> dict[str, Any]:
    settings = {**SETTINGS, "seed": seed}
    sets = [item for name, value in settings.items() for item in ("--set", f"{name}={json.dumps(value)}")]
    out = folder / f"{method}-{seed}"
    lorawiz("train", "--model", model, "--data", "builtin:triage-pairs", "--val-data",
            "builtin:triage-pairs:validation", "--method", method, "--plain", "-o", str(out), *sets, cwd=folder)
    results = json.loads((out / "all_results.json").read_text())
    report_path = folder / f"{method}-{seed}.json"
    lorawiz("eval", str(out), "--data", "builtin:triage-pairs:validation", "--json", str(report_path), cwd=folder)
    report = json.loads(report_path.read_text())
    base, tuned = (report["results"][role]["preference"] for role in ("base", "fine_tuned"))
    return {"method": method, "seed": seed, "base_accuracy": base["preference_accuracy"],
            "tuned_accuracy": tuned["preference_accuracy"], "reward_accuracy": report["rewards"]["reward_accuracy"],
            "reward_margin": report["rewards"]["reward_margin"], "train_seconds": results["train_runtime"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:tiny")
    parser.add_argument("--methods", nargs="+", default=["dpo", "kto", "orpo"])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "preference.json")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="lorawiz-preference-") as tmp:
        for k in range(args.runs):
            for method in args.methods:
                runs.append(run_method(method, args.model, 42 + k, Path(tmp)))
                print(json.dumps(runs[-1]), flush=True)
    summary = {}
    for method in args.methods:
        mine = [run for run in runs if run["method"] == method]
        summary[method] = {key: statistics.median(run[key] for run in mine)
                           for key in ("base_accuracy", "tuned_accuracy", "reward_accuracy", "reward_margin",
                                       "train_seconds")}
    print("method  base  tuned  reward-acc  reward-margin  train-s")
    for method, row in summary.items():
        print(f"{method:<6} {row['base_accuracy']:6.1%} {row['tuned_accuracy']:6.1%} {row['reward_accuracy']:9.1%} "
              f"{row['reward_margin']:13.3f} {row['train_seconds']:8.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": platform.platform(), "model": args.model, "settings": SETTINGS,
                                    "runs": runs, "median": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
