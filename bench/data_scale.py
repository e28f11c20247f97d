"""Training data at real size (issue 15): `lorawiz train` on 100k and 1M generated chat rows.

For each size, with a fresh tokenised cache ("cold") and again from the cache ("warm"), this runs
`lorawiz train --model builtin:tiny --data rows.jsonl --max-steps 20 --plain` and measures:

- time to the first training step (the `step 1/` line of the plain log), from the start of the command;
- peak RSS of every process (the command and the tokenising workers), sampled every 0.1 s with psutil, and the
  main process's RSS at the first and the last step (memory stays flat while training);
- tokenisation throughput (tokens/s of the `Dataset.map` pass, from the cache entry's manifest) against the
  tokenizer's own batched throughput on the same rendered rows, one process, times the cores (and, for
  reference, the tokenizer run in one process per core at once, and its offset-free encode_batch_fast),
  measured just before each cold run; the ratio is the median over the cold runs;
- when training started: the step line's time less the Trainer's own time for step 1 (metrics.jsonl), and, for
  reference, before each warm run how long a fresh Python takes to import torch, transformers, peft, trl and
  datasets (key "import_floor_s"; not a strict floor: lorawiz imports less of them before its first step).

The runs get a user's environment: no LORAWIZ_DEBUG, and Python's bytecode cache on (see _env).

Goals on a 2-core machine: peak RSS <= 2 GB at 1M rows; tokenisation >= 0.7 x (tokenizer batched throughput x
cores); a cache hit starts training within 10 s.

    python bench/data_scale.py                       # 100k (3 runs) and 1M (1 cold run, 3 warm runs)
    python bench/data_scale.py --sizes 100000 --runs 1
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache" / "data_scale"
RESULTS = HERE / "results" / "data_scale.json"
GOALS = {"peak_rss_gb_at_1m": 2.0, "tokenise_ratio": 0.7, "warm_start_s": 10.0}
# Prompt and answer lengths in words, log-normal (median, sigma), as bench/train_speed.py: a long tail.
LENGTHS = {"prompt": (40, 0.8), "answer": (60, 0.9)}
MAX_WORDS = 600
STEPS = 20


def generate(path: Path, rows: int, seed: int = 0) -> None:
    """Chat rows with log-normal prompt and answer lengths, written as they are made (never all in memory)."""
    sys.path.insert(0, str(HERE.parent))
    from lorawiz.builtin.tiny import generic_sentences

    rng = random.Random(seed)
    words = [sentence.split() for sentence in generic_sentences(4000, seed=seed)]

    def text(kind: str) -> str:
        median, sigma = LENGTHS[kind]
        count = min(MAX_WORDS, max(3, round(rng.lognormvariate(math.log(median), sigma))))
        out: list[str] = []
        while len(out) < count:
            out += rng.choice(words)
        return " ".join(out[:count])

    temp = path.with_suffix(".tmp")
    with temp.open("w", encoding="utf-8") as handle:
        for i in range(rows):
            row = {"messages": [{"role": "user", "content": f"{text('prompt')} (request {i})"},
                                {"role": "assistant", "content": text("answer")}]}
            handle.write(json.dumps(row) + "\n")
    os.replace(temp, path)


def data_file(rows: int) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"chat-{rows}.jsonl"
    if not path.exists():
        print(f"generating {rows:,} rows ...", flush=True)
        generate(path, rows)
    return path


class TreeSampler:
    """Peak RSS of a process and its descendants, by pid, every `interval` seconds."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.interval = interval
        self.peaks: dict[int, int] = {}
        self.names: dict[int, str] = {}
        self.main_now = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                return
            for proc in procs:
                try:
                    rss = proc.memory_info().rss
                except psutil.Error:
                    continue
                if proc.pid == self.root.pid:
                    self.main_now = rss
                self.peaks[proc.pid] = max(self.peaks.get(proc.pid, 0), rss)
                self.names.setdefault(proc.pid, "main" if proc.pid == self.root.pid else "worker")
            self._stop.wait(self.interval)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        main = self.peaks.get(self.root.pid, 0)
        workers = [rss for pid, rss in self.peaks.items() if pid != self.root.pid]
        return {"main_peak_mb": round(main / 2**20, 1), "worker_peaks_mb": sorted(round(w / 2**20, 1)
                                                                                   for w in workers),
                "max_process_peak_mb": round(max([main, *workers]) / 2**20, 1)}


def run_train(data: Path, cache: Path, work: Path) -> dict[str, Any]:
    """One `lorawiz train`, timed to its first step and sampled until its last."""
    out = work / f"run-{time.monotonic_ns()}"
    cmd = [str(Path(sys.executable).parent / "lorawiz"), "train", "--model", "builtin:tiny", "--data", str(data),
           "--max-steps", str(STEPS), "--plain", "-o", str(out), "--set", "logging.report_to=[]",
           "--set", "logging.eval_strategy=no", "--set", "logging.save_strategy=no",
           "--set", "logging.load_best_model_at_end=false", "--set", "training.early_stopping_patience=0",
           "--set", "logging.logging_steps=1"]
    env = _env(cache)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    sampler = TreeSampler(proc.pid)
    first = last = None
    rss_first = rss_last = 0
    log = []
    for line in proc.stdout:
        log.append(line)
        if line.startswith("step 1/") and first is None:
            first, rss_first = time.perf_counter() - start, sampler.main_now
        if line.startswith(f"step {STEPS}/"):
            last, rss_last = time.perf_counter() - start, sampler.main_now
    proc.wait()
    memory = sampler.stop()
    if proc.returncode != 0 or first is None:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{''.join(log[-30:])}")
    # The step line comes when step 1 has run: the Trainer's own clock (metrics.jsonl time_s, from the start of
    # training) says how long that took, so training started at first - time_s.
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    step_one = next(r["time_s"] for r in records if r.get("type") == "train" and r.get("step") == 1)
    shutil.rmtree(out, ignore_errors=True)
    return {"first_step_s": round(first, 2), "training_started_s": round(first - step_one, 2),
            "last_step_s": round(last, 2) if last else None,
            "main_rss_at_first_step_mb": round(rss_first / 2**20, 1),
            "main_rss_at_last_step_mb": round(rss_last / 2**20, 1), **memory,
            "cache_line": next((line.strip() for line in log if line.startswith("tokenised data:")), None)}


def manifest(cache: Path, data: Path) -> dict[str, Any]:
    found = [json.loads(path.read_text()) for path in cache.glob("lorawiz/*/*/manifest.json")]
    mine = [m for m in found if m.get("source") == str(data.resolve())]
    return mine[-1] if mine else {}


@functools.cache
def _sample(data: Path, sample_rows: int) -> tuple[Any, list[str], int]:
    """(tokenizer, the first rows rendered for training, their tokens): made once per file."""
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    sys.path.insert(0, str(HERE.parent))
    from lorawiz.builtin import local_path
    from lorawiz.data.masking import ensure_chat_template, render_rows
    from lorawiz.data.tokens import load_tokenizer

    tokenizer = load_tokenizer(local_path("builtin:tiny"))
    ensure_chat_template(tokenizer)
    with data.open(encoding="utf-8") as handle:
        rows = [json.loads(next(handle)) for _ in range(sample_rows)]
    texts = [text for text, _ in render_rows(tokenizer, rows)]
    tokens = sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])
    return tokenizer, texts, tokens


def tokenizer_baseline(data: Path, sample_rows: int = 20_000, runs: int = 3) -> dict[str, Any]:
    """Tokens/s of the tokenizer's own batched call on the rows as rendered for training, one process; measured
    again before each cold run, so that each run's ratio compares with the machine as it was then."""
    tokenizer, texts, tokens = _sample(data, sample_rows)
    batches = [texts[i:i + 1000] for i in range(0, len(texts), 1000)]
    calls = {"tokenizer(batch)": lambda b: tokenizer(b, add_special_tokens=False),
             "backend.encode_batch_fast(batch)": lambda b: tokenizer.backend_tokenizer.encode_batch_fast(
                 b, add_special_tokens=False)}
    out = {"sample_rows": sample_rows, "tokens": tokens, "parallel": parallel_baseline(texts, tokens)}
    for name, call in calls.items():
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            for batch in batches:
                call(batch)
            times.append(time.perf_counter() - started)
        out[name] = round(tokens / statistics.median(times))
    return out


def import_floor() -> float:
    """Seconds a fresh Python takes to import torch, transformers, peft, trl, datasets and transformers.trainer:
    for reference beside a warm start, most of which is imports (some of these lorawiz loads only later)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, transformers, peft, trl, datasets, transformers.trainer"],
                   check=True, env=_env(None))
    return time.perf_counter() - started


def _env(cache: Path | None) -> dict[str, str]:
    """The runs' environment: a user's. Without LORAWIZ_DEBUG, and with Python's bytecode cache on (this
    sandbox sets PYTHONDONTWRITEBYTECODE=1, which compiles lorawiz's modules again at every start, ~0.9 s here;
    a user's Python caches them)."""
    env = {**os.environ, **({"HF_DATASETS_CACHE": str(cache)} if cache else {})}
    for name in ("LORAWIZ_DEBUG", "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    return env


def _tokenise_share(args: tuple[list[str], int]) -> float:
    texts, repeats = args
    from lorawiz.builtin import local_path
    from lorawiz.data.tokens import load_tokenizer

    tokenizer = load_tokenizer(local_path("builtin:tiny"))
    started = time.perf_counter()
    for _ in range(repeats):
        for i in range(0, len(texts), 1000):
            tokenizer(texts[i:i + 1000], add_special_tokens=False)
    return time.perf_counter() - started


def parallel_baseline(texts: list[str], tokens: int, repeats: int = 2) -> int:
    """Tokens/s of tokenizer(batch) in one process per core at once, each on all the sample texts: the
    tokenizer's batched throughput x cores as this machine delivers it (cores share caches and memory)."""
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(cores()) as pool:
        seconds = pool.map(_tokenise_share, [(texts, repeats)] * cores())
    return round(tokens * repeats * cores() / max(seconds))


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def bench_size(rows: int, runs_cold: int, runs_warm: int, work: Path, sample: Path) -> dict[str, Any]:
    data = data_file(rows)
    print(f"{rows:,} rows ({data.stat().st_size / 1e6:,.0f} MB):", flush=True)
    cold, warm = [], []
    cache = work / f"cache-{rows}"
    for _ in range(runs_cold):
        shutil.rmtree(cache, ignore_errors=True)
        baseline = tokenizer_baseline(sample)  # the machine as it is now: its speed drifts by 10-30% here
        result = run_train(data, cache, work)
        entry = manifest(cache, data)
        result.update(tokenise_s=entry.get("tokenise_seconds"), read_s=entry.get("read_seconds"),
                      processes=entry.get("processes"), tokens=entry.get("tokens"), baseline=baseline)
        if result["tokenise_s"]:
            speed = entry["tokens"] / entry["tokenise_seconds"]
            result.update(tokens_per_s=round(speed),
                          ratio=round(speed / (baseline["tokenizer(batch)"] * cores()), 3),
                          ratio_vs_encode_batch_fast=round(
                              speed / (baseline["backend.encode_batch_fast(batch)"] * cores()), 3),
                          ratio_vs_parallel_tokenizer=round(speed / baseline["parallel"], 3))
        cold.append(result)
        print(f"  cold: training started at {result['training_started_s']:.1f} s, peak RSS "
              f"{result['max_process_peak_mb']:,.0f} MB (main {result['main_peak_mb']:,.0f}), tokenised in "
              f"{result['tokenise_s']} s on {result['processes']} processes, {result.get('tokens_per_s', 0):,} "
              f"tokens/s = {result.get('ratio')} x tokenizer(batch) {baseline['tokenizer(batch)']:,} tokens/s x "
              f"{cores()} cores", flush=True)
    for _ in range(runs_warm):
        imports = import_floor()
        result = run_train(data, cache, work)
        result["import_floor_s"] = round(imports, 2)
        warm.append(result)
        print(f"  warm: training started at {result['training_started_s']:.1f} s (step 1 done at "
              f"{result['first_step_s']:.1f} s; importing torch, transformers, peft, trl and datasets alone took "
              f"{imports:.1f} s), peak RSS {result['max_process_peak_mb']:,.0f} MB", flush=True)
    shutil.rmtree(cache, ignore_errors=True)

    def median(runs: list[dict[str, Any]], key: str) -> Any:
        values = [r[key] for r in runs if r.get(key) is not None]
        return round(statistics.median(values), 3) if values else None

    summary = {
        "rows": rows, "file_mb": round(data.stat().st_size / 1e6, 1),
        "cold_first_step_s": median(cold, "first_step_s"), "warm_first_step_s": median(warm, "first_step_s"),
        "cold_training_started_s": median(cold, "training_started_s"),
        "warm_training_started_s": median(warm, "training_started_s"),
        "warm_import_floor_s": median(warm, "import_floor_s"),
        "peak_rss_mb": max(r["max_process_peak_mb"] for r in cold + warm),
        "tokenise_tokens_per_s": median(cold, "tokens_per_s"),
        "tokenise_ratio": median(cold, "ratio"),
        "tokenise_ratio_vs_encode_batch_fast": median(cold, "ratio_vs_encode_batch_fast"),
        "tokenise_ratio_vs_parallel_tokenizer": median(cold, "ratio_vs_parallel_tokenizer"),
        "cold": cold, "warm": warm,
    }
    print(f"  => training started after {summary['cold_training_started_s']} s cold, "
          f"{summary['warm_training_started_s']} s warm (imports alone {summary['warm_import_floor_s']} s); peak "
          f"RSS {summary['peak_rss_mb']:,.0f} MB; tokenisation {summary['tokenise_ratio']} x tokenizer(batch) x "
          f"{cores()} cores (median of the cold runs, each against the baseline measured just before it)",
          flush=True)
    return summary


def environment() -> dict[str, Any]:
    import datasets
    import tokenizers
    import transformers

    return {"machine": platform.machine(), "cores": cores(), "python": platform.python_version(),
            "datasets": datasets.__version__, "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__, "date": time.strftime("%Y-%m-%d")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=3, help="cold and warm runs per size (below 1M rows)")
    parser.add_argument("--runs-large", type=int, default=1, help="cold runs at 1M rows and more")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sample = data_file(min(args.sizes))
    with tempfile.TemporaryDirectory(prefix="lorawiz-data-scale-") as tmp:
        sizes = [bench_size(rows, args.runs if rows < 1_000_000 else args.runs_large, args.runs, Path(tmp), sample)
                 for rows in args.sizes]
    large = [s for s in sizes if s["rows"] >= 1_000_000]
    verdict = {
        "peak_rss_gb_at_1m": round(large[0]["peak_rss_mb"] / 1024, 2) if large else None,
        "tokenise_ratio": min(s["tokenise_ratio"] for s in sizes if s["tokenise_ratio"]),
        "warm_start_s": max(s["warm_training_started_s"] for s in sizes if s["warm_training_started_s"]),
    }
    met = {"peak_rss_gb_at_1m": verdict["peak_rss_gb_at_1m"] is not None
           and verdict["peak_rss_gb_at_1m"] <= GOALS["peak_rss_gb_at_1m"],
           "tokenise_ratio": verdict["tokenise_ratio"] >= GOALS["tokenise_ratio"],
           "warm_start_s": verdict["warm_start_s"] <= GOALS["warm_start_s"]}
    print(f"goals: {json.dumps(verdict)} met: {json.dumps(met)}")
    if not args.no_save:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({"environment": environment(), "goals": GOALS, "verdict": verdict,
                                       "met": met, "sizes": sizes}, indent=1) + "\n")
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
