"""Speed and peak memory of `format`, `split`, `mix` and `inspect` on generated inputs, and tokenizer throughput.

Usage: python bench/data_tools.py [--rows 100000 1000000] [--runs 3] [--work DIR] [--out FILE]

For each size it writes an alpaca-shaped JSONL of about 1 KB a row (English text from Python's own docs), then
runs each command `--runs` times as a subprocess and records wall time and peak RSS (from wait4). The baseline,
run alongside, is a bare `json.loads` + `json.dumps` loop over the same file. Token throughput is measured
in-process with a 32k byte-level BPE trained here (Llama 3's split pattern; the Hub is out of reach).

Goals (issue 3): format >= 50% of the bare loop's rows/s; format peak RSS < 200 MB on a 1 GB input;
tokenisation >= 0.8M tokens/s on our 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
GOALS = {"format_vs_bare": 0.5, "format_rss_mb_1gb": 200, "tokens_per_s": 800_000}

BARE_LOOP = """
import json, sys
with open(sys.argv[1], encoding="utf-8") as src, open(sys.argv[2], "w", encoding="utf-8") as dst:
    for line in src:
        dst.write(json.dumps(json.loads(line), ensure_ascii=False))
        dst.write("\\n")
"""


def sentences() -> list[str]:
    from pydoc_data.topics import topics

    text = " ".join(" ".join(t.split()) for t in topics.values())
    return [s.strip() + "." for s in text.split(". ") if 20 < len(s) < 400]


def stdlib_texts(limit_bytes: int = 40 * 2**20) -> list[str]:
    """Python's standard library sources: enough distinct text to train a 32k vocabulary."""
    import sysconfig

    texts, total = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        texts.append(text)
        total += len(text)
        if total > limit_bytes:
            break
    return texts


def generate(path: Path, rows: int, seed: int = 0) -> None:
    """Alpaca rows of about 1 KB: an instruction, sometimes an input, and an output, from real English."""
    pool = sentences()
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as handle:
        for i in range(rows):
            out_len = rng.randint(3, 9)
            row = {"instruction": f"{rng.choice(pool)} (task {i})",
                   "input": rng.choice(pool) if i % 3 else "",
                   "output": " ".join(rng.choice(pool) for _ in range(out_len))}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def measure(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one subprocess."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "LORAWIZ_DEBUG")}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr.read().decode()}")
    proc.stderr.close()
    return elapsed, usage.ru_maxrss / 1024  # ru_maxrss is in KB on Linux


def run_case(name: str, cmd: list[str], runs: int, rows: int, cleanup: list[Path]) -> dict:
    times, rss = [], []
    for _ in range(runs):
        for path in cleanup:
            path.unlink(missing_ok=True)
        elapsed, peak = measure(cmd)
        times.append(elapsed)
        rss.append(peak)
    median = statistics.median(times)
    result = {"command": name, "runs": runs, "median_s": round(median, 3), "rows_per_s": round(rows / median),
              "peak_rss_mb": round(max(rss), 1), "times_s": [round(t, 3) for t in times]}
    print(f"  {name:<28} {median:8.2f} s  {rows / median:>10,.0f} rows/s  peak RSS {max(rss):7.1f} MB", flush=True)
    return result


def bench_tokenizer(work: Path, rows_path: Path, limit_rows: int = 100_000) -> dict:
    """Tokens/s of the batched fast tokenizer over chat-templated rows (render time reported apart)."""
    sys.path.insert(0, str(HERE.parent))
    from lorawiz.builtin.tokenizer import build_tokenizer
    from lorawiz.data.convert import iter_canonical
    from lorawiz.data.formats import ConvertOptions
    from lorawiz.data.tokens import TokenCounter

    tok_dir = work / "bench-tokenizer-32k"
    if not (tok_dir / "tokenizer.json").exists():  # the docs alone give ~8k merges; the stdlib's code adds more
        build_tokenizer([*sentences(), *stdlib_texts()], tok_dir, vocab_size=32_000)
    from transformers import AutoTokenizer

    counter = TokenCounter(AutoTokenizer.from_pretrained(str(tok_dir)))
    rows = [row for _, row in zip(range(limit_rows), (r for _, r in iter_canonical(rows_path, "alpaca",
                                                                                  ConvertOptions())), strict=False)]
    start = time.perf_counter()
    texts = [t for i in range(0, len(rows), 1000) for t in counter.render(rows[i:i + 1000])]
    render_s = time.perf_counter() - start
    speeds = []
    for _ in range(3):
        start = time.perf_counter()
        tokens = sum(sum(counter.count_texts(texts[i:i + 1000])) for i in range(0, len(texts), 1000))
        speeds.append(tokens / (time.perf_counter() - start))
    result = {"rows": len(rows), "tokens": tokens, "vocab": counter.tokenizer.vocab_size,
              "tokens_per_s_median": round(statistics.median(speeds)), "tokens_per_s_runs": [round(s) for s in speeds],
              "render_rows_per_s": round(len(rows) / render_s), "tokenizer_dir": str(tok_dir)}
    print(f"  tokenisation: {result['tokens_per_s_median']:,} tokens/s (median of 3, {tokens:,} tokens, "
          f"vocab {result['vocab']:,}); chat-template render {result['render_rows_per_s']:,} rows/s", flush=True)
    return result


def bench_size(rows: int, runs: int, work: Path) -> dict:
    lorawiz = str(BIN / "lorawiz")
    raw = work / f"alpaca-{rows}.jsonl"
    if not raw.exists():
        print(f"generating {raw} ...", flush=True)
        generate(raw, rows)
    general = work / f"general-{rows}.jsonl"
    if not general.exists():
        generate(general, max(rows // 4, 1), seed=1)
    size_mb = raw.stat().st_size / 2**20
    print(f"{rows:,} rows, {size_mb:,.0f} MB:", flush=True)
    canon, bare_out = work / f"canon-{rows}.jsonl", work / f"bare-{rows}.jsonl"
    train, val, mixed = work / f"train-{rows}.jsonl", work / f"val-{rows}.jsonl", work / f"mix-{rows}.jsonl"
    cases = [
        run_case("bare json loop", [sys.executable, "-c", BARE_LOOP, str(raw), str(bare_out)], runs, rows, [bare_out]),
        run_case("lorawiz format", [lorawiz, "format", str(raw), "-o", str(canon)], runs, rows, [canon]),
        run_case("lorawiz split --dedupe", [lorawiz, "split", str(canon), "--train-out", str(train), "--val-out",
                                            str(val), "--dedupe"], runs, rows, [train, val]),
        run_case("lorawiz mix (0.8/0.2)", [lorawiz, "mix", f"{canon}:0.8", f"{general}:0.2", "-o", str(mixed)],
                 runs, rows, [mixed]),
        run_case("lorawiz inspect", [lorawiz, "inspect", str(canon), "--json"], runs, rows, []),
    ]
    for path in (bare_out, train, val, mixed):
        path.unlink(missing_ok=True)
    by_name = {case["command"]: case for case in cases}
    ratio = by_name["lorawiz format"]["rows_per_s"] / by_name["bare json loop"]["rows_per_s"]
    print(f"  format / bare loop: {ratio:.2f} (goal >= {GOALS['format_vs_bare']})", flush=True)
    return {"rows": rows, "input_mb": round(size_mb, 1), "cases": cases, "format_vs_bare": round(ratio, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=HERE / ".cache")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "data_tools.json")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    sizes = [bench_size(rows, args.runs, args.work) for rows in args.rows]
    tokens = bench_tokenizer(args.work, args.work / f"alpaca-{min(args.rows)}.jsonl")
    result = {"machine": f"{platform.node()} {os.cpu_count()} cores, {platform.python_version()}",
              "date": time.strftime("%Y-%m-%d"), "goals": GOALS, "sizes": sizes, "tokenisation": tokens}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
