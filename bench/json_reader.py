"""The JSON array reader (lorawiz.data.readers, issue 15): rows/s streaming a JSON array of chat rows, against
`json.load` of the whole file (which holds every row in memory) in the same run.

    python bench/json_reader.py                  # 200k rows, 3 runs
    python bench/json_reader.py --rows 50000 --runs 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "json_reader.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent))
    from lorawiz.data.readers import _iter_json

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.json"
        rows = [{"messages": [{"role": "user", "content": f"question {i} " * (1 + i % 20)},
                              {"role": "assistant", "content": f"answer {i} " * (1 + i % 30)}]}
                for i in range(args.rows)]
        path.write_text(json.dumps(rows, indent=1))
        del rows
        size = path.stat().st_size
        times = {"lorawiz _iter_json (streaming)": [], "json.load (whole file)": []}
        for _ in range(args.runs):
            started = time.perf_counter()
            count = sum(1 for _ in _iter_json(path))
            times["lorawiz _iter_json (streaming)"].append(time.perf_counter() - started)
            assert count == args.rows
            started = time.perf_counter()
            with path.open(encoding="utf-8") as handle:
                assert len(json.load(handle)) == args.rows
            times["json.load (whole file)"].append(time.perf_counter() - started)
    summary = {name: {"median_s": round(statistics.median(t), 3), "rows_per_s": round(args.rows / statistics.median(t)),
                      "runs_s": [round(x, 3) for x in t]} for name, t in times.items()}
    ratio = summary["lorawiz _iter_json (streaming)"]["rows_per_s"] / summary["json.load (whole file)"]["rows_per_s"]
    for name, item in summary.items():
        print(f"{name:<34} {item['rows_per_s']:>10,} rows/s  ({item['median_s']} s)")
    print(f"streaming / json.load: {ratio:.2f}x on {args.rows:,} rows ({size / 1e6:.0f} MB)")
    if not args.no_save:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({"rows": args.rows, "bytes": size, "ratio": round(ratio, 3), **summary},
                                      indent=1) + "\n")
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
