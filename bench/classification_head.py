"""Classification two ways on builtin:triage: the label generated as the answer (`head: lm`) against a sequence
head (`head: sequence`): macro-F1 and accuracy on the validation file, training time and evaluation time.

Usage: python bench/classification_head.py [--model builtin:tiny] [--runs 3] [--out FILE]

Both arms run `lorawiz train` and then `lorawiz eval` as a user runs them, each in a fresh process, with the demo's
measured settings (lorawiz.builtin.triage.DEMO_SETTINGS: rank 16, 3e-3, 2 epochs of the 900 training rows); the
generation arm trains lm_head and the embeddings in full as the demo does, the head arm the embeddings (its new
score head is trained in full by peft). Each run uses its own seed (42, 43, ...), arms interleaved. Reported:
medians over the runs of the validation macro-F1 and accuracy (240 rows, lorawiz eval's own figures), the training
time (the Trainer's train_runtime: model loading and tokenising left out), the evaluation's wall time (process
start and loading included, the base not compared) and its own seconds (lorawiz eval's report: reading the data,
loading and scoring). Written to bench/results/classification_head.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ARMS = {
    "generation": {"head": "lm", "modules_to_save": ["lm_head", "embed_tokens"]},
    "head": {"head": "sequence", "modules_to_save": ["embed_tokens"]},
}


def lorawiz(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "lorawiz", *args], capture_output=True, text=True, cwd=cwd,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise SystemExit(f"lorawiz {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done, time.monotonic() - started


def run_arm(arm: str, model: str, seed: int, folder: Path) -> dict[str, Any]:
    from lorawiz.builtin.triage import DEMO_SETTINGS

    settings = {**DEMO_SETTINGS, **ARMS[arm], "seed": seed, "task": "classification"}
    sets = [item for name, value in settings.items() for item in ("--set", f"{name}={json.dumps(value)}")]
    out = folder / f"{arm}-{seed}"
    lorawiz("train", "--model", model, "--data", "builtin:triage", "--val-data", "builtin:triage:validation",
            "--plain", "-o", str(out), *sets, cwd=folder)
    train_seconds = json.loads((out / "all_results.json").read_text())["train_runtime"]
    report_path = folder / f"{arm}-{seed}.json"
    _, eval_seconds = lorawiz("eval", str(out), "--data", "builtin:triage:validation", "--no-compare-base",
                              "--json", str(report_path), cwd=folder)
    report = json.loads(report_path.read_text())
    scores = report["results"]["fine_tuned"]["classification"]["as given"]
    return {"arm": arm, "seed": seed, "macro_f1": scores["macro_f1"], "accuracy": scores["accuracy"],
            "train_seconds": train_seconds, "eval_seconds": eval_seconds, "scoring_seconds": report["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:tiny")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "classification_head.json")
    args = parser.parse_args()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lorawiz-bench-head-") as tmp:
        for index in range(args.runs):
            for arm in ARMS:  # interleaved: a slow stretch of the machine hits both arms alike
                result = run_arm(arm, args.model, 42 + index, Path(tmp))
                runs.append(result)
                print(json.dumps(result), flush=True)
    keys = ("macro_f1", "accuracy", "train_seconds", "eval_seconds", "scoring_seconds")
    medians = {arm: {key: statistics.median(r[key] for r in runs if r["arm"] == arm) for key in keys} for arm in ARMS}
    ratios = {"train_time_head_over_generation": medians["head"]["train_seconds"]
              / medians["generation"]["train_seconds"],
              "eval_time_head_over_generation": medians["head"]["eval_seconds"]
              / medians["generation"]["eval_seconds"],
              "scoring_time_head_over_generation": medians["head"]["scoring_seconds"]
              / medians["generation"]["scoring_seconds"],
              "macro_f1_head_minus_generation": medians["head"]["macro_f1"] - medians["generation"]["macro_f1"]}
    summary = {"model": args.model, "runs": args.runs, "machine": platform.platform(), "medians": medians,
               "ratios": ratios, "all": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    for arm, figures in medians.items():
        print(f"{arm:<10} macro-F1 {figures['macro_f1']:.3f}  accuracy {figures['accuracy']:.3f}  "
              f"train {figures['train_seconds']:.1f} s  eval {figures['eval_seconds']:.1f} s (scoring "
              f"{figures['scoring_seconds']:.1f} s)")
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
