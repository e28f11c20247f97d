"""Start-up time of the CLI: `lorawiz --help` against `python -c "import torch"`, in one run.

Usage: python bench/startup.py [--runs 21] [--out bench/results/startup.json]

Each command runs a few times untimed first (so that bytecode caches exist, as on a user's machine after the
first call), then `--runs` times; the medians and the ratio to the torch import are printed and saved.
Goal (issue 2): median of `lorawiz --help` <= 0.15 s on our 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
GOAL_S = 0.15


def time_command(cmd: list[str], runs: int, warmup: int = 2) -> list[float]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    timings = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
        if i >= warmup:
            timings.append(time.perf_counter() - start)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "startup.json")
    args = parser.parse_args()

    lorawiz = str(BIN / "lorawiz")
    cases = {
        "python -c pass": ([sys.executable, "-c", "pass"], args.runs),
        "lorawiz --help": ([lorawiz, "--help"], args.runs),
        "lorawiz --version": ([lorawiz, "--version"], args.runs),
        "lorawiz config show --help": ([lorawiz, "config", "show", "--help"], args.runs),
        "lorawiz presets": ([lorawiz, "presets"], args.runs),
        'python -c "import torch"': ([sys.executable, "-c", "import torch"], max(5, args.runs // 4)),
    }
    results = {}
    for name, (cmd, runs) in cases.items():
        timings = time_command(cmd, runs)
        results[name] = {"runs": runs, "median_s": statistics.median(timings), "min_s": min(timings),
                         "max_s": max(timings)}
    torch_s = results['python -c "import torch"']["median_s"]
    print(f"{'command':32} {'median s':>9} {'min s':>7} {'max s':>7} {'x torch':>8}")
    for name, r in results.items():
        r["ratio_to_torch_import"] = r["median_s"] / torch_s
        print(f"{name:32} {r['median_s']:9.3f} {r['min_s']:7.3f} {r['max_s']:7.3f} {r['ratio_to_torch_import']:8.2f}")
    help_s = results["lorawiz --help"]["median_s"]
    verdict = "meets" if help_s <= GOAL_S else "MISSES"
    print(f"\nlorawiz --help median {help_s:.3f} s: {verdict} the goal of <= {GOAL_S} s")
    record = {
        "benchmark": "startup",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "goal_s": GOAL_S,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
