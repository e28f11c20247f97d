"""`lorawiz report` in a real headless browser: two tiny training runs (one evaluated with `lorawiz eval`, so the page
has generations) become one page, which Chromium opens offline and screenshots.

Usage: python bench/report_browser.py [--out bench/results/report_browser.json] [--keep DIR]

Checked: the screenshot is not blank (many colours, a share of non-white pixels) and both runs' lines were drawn
(pixels of each run's colour, tab:blue and tab:orange, well beyond the two 10x10 swatches of the summary table);
the page made no network request (Chromium's own net log, --log-net-log: no request whose initiator is the page;
a control page with an <img> and a stylesheet from the web shows that such requests are caught), with every
host unresolvable (--host-resolver-rules), and the HTML names no http(s) or protocol-relative src/href/url().
Needs a Chromium binary (Debian: apt-get install -y chromium).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WINDOW = (1200, 6000)
RUN_COLOURS = {"tab:blue": (31, 119, 180), "tab:orange": (255, 127, 14)}  # the first two runs' colours
COLOUR_DISTANCE = 60  # antialiased line pixels are blends of the colour and white: this far still counts
LINE_PIXELS = 1000  # two 10x10 swatches are 200 pixels: lines on 5 figures are thousands
BACKGROUND_INITIATOR = "not an origin"  # Chromium's own requests (time, spell-check dictionary, accounts)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--host-resolver-rules=MAP * ~NOTFOUND"]  # offline: a request the page made would fail, not load
STATIC_REFERENCE = re.compile(r"""(?:\b(?:src|href|srcset|action)\s*=\s*["']?|url\(\s*["']?|@import\s+["']?)"""
                              r"""(?:https?:)?//""", re.IGNORECASE)


def find_chromium() -> str | None:
    return next((found for name in ("chromium", "chromium-browser", "google-chrome", "chrome")
                 if (found := shutil.which(name))), None)


def open_in_chromium(chromium: str, page: Path, screenshot: Path, netlog: Path,
                     window: tuple[int, int] = WINDOW) -> subprocess.CompletedProcess:
    return subprocess.run([chromium, *CHROMIUM_FLAGS, f"--window-size={window[0]},{window[1]}",
                           f"--screenshot={screenshot}", f"--log-net-log={netlog}", page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def page_requests(netlog: Path) -> list[str]:
    """The URLs of every request the page itself started (its initiator is the page's origin, "null" for a file)."""
    log = json.loads(netlog.read_text(encoding="utf-8", errors="replace"))
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return sorted({event["params"]["url"] for event in log["events"] if event.get("type") == start
                   and event.get("params", {}).get("initiator", BACKGROUND_INITIATOR) != BACKGROUND_INITIATOR})


def static_references(html: str) -> list[str]:
    """src/href/url()/@import references to the network in the page's source (xmlns names are not fetched)."""
    return [html[max(0, m.start() - 20):m.end() + 40] for m in STATIC_REFERENCE.finditer(html)]


def screenshot_stats(path: Path) -> dict[str, Any]:
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.int32)
    height, width, _ = pixels.shape
    flat = pixels.reshape(-1, 3)
    colours = {name: int((np.abs(flat - np.array(rgb)).sum(axis=1) < COLOUR_DISTANCE).sum())
               for name, rgb in RUN_COLOURS.items()}
    distinct = len(np.unique(flat[:, 0] << 16 | flat[:, 1] << 8 | flat[:, 2]))
    return {"width": width, "height": height, "bytes": path.stat().st_size, "distinct_colours": distinct,
            "non_white_share": round(float((flat.sum(axis=1) < 3 * 245).mean()), 4), "run_colour_pixels": colours}


def check_page(chromium: str, page: Path, work: Path) -> dict[str, Any]:
    """Open `page` in Chromium and check what the module docstring says; the result names every check."""
    shot, netlog = work / "screenshot.png", work / "netlog.json"
    started = time.monotonic()
    done = open_in_chromium(chromium, page, shot, netlog)
    seconds = round(time.monotonic() - started, 2)
    if done.returncode != 0 or not shot.is_file():
        return {"ok": False, "error": f"chromium exited {done.returncode}: {done.stderr[-2000:]}"}
    stats = screenshot_stats(shot)
    requests = page_requests(netlog)
    static = static_references(page.read_text(encoding="utf-8"))
    checks = {
        "screenshot_size_is_the_window": (stats["width"], stats["height"]) == WINDOW,
        "screenshot_not_blank": stats["distinct_colours"] > 50 and stats["non_white_share"] > 0.02,
        "both_runs_drawn": all(count > LINE_PIXELS for count in stats["run_colour_pixels"].values()),
        "no_request_by_the_page": requests == [],
        "no_network_reference_in_html": static == [],
    }
    return {"ok": all(checks.values()), "checks": checks, "screenshot": stats, "page_requests": requests,
            "static_references": static, "chromium_seconds": seconds, "screenshot_path": str(shot)}


def control_requests(chromium: str, work: Path) -> list[str]:
    """A page that does load from the web: the net log must show its two requests (the detector works)."""
    page = work / "control.html"
    page.write_text('<!DOCTYPE html><html><body><img src="https://example.com/x.png">'
                    '<link rel="stylesheet" href="http://cdn.example.org/a.css"><p>control</p></body></html>')
    open_in_chromium(chromium, page, work / "control.png", work / "control-netlog.json", (400, 300))
    return page_requests(work / "control-netlog.json")


def lorawiz(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "lorawiz", *args], capture_output=True, text=True, cwd=cwd,
                          stdin=subprocess.DEVNULL, env={**__import__("os").environ, "CI": "true"})
    if done.returncode != 0:
        raise SystemExit(f"lorawiz {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def build_runs(home: Path) -> Path:
    """Two 6-step runs of builtin:tiny (rates 2e-4 with evaluation, 1e-3 without), the first one evaluated."""
    from lorawiz.builtin.triage import triage_rows

    (home / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in triage_rows("train")[:32]))
    (home / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in triage_rows("validation")[:8]))
    common = ["train", "--model", "builtin:tiny", "--data", "train.jsonl", "--max-steps", "6", "--set",
              "logging_steps=1"]
    lorawiz(*common, "--val-data", "val.jsonl", "--set", "eval_steps=2", "--output-dir", "lr-2e-4", cwd=home)
    lorawiz(*common, "--learning-rate", "1e-3", "--set", "eval_strategy=no", "--output-dir", "lr-1e-3", cwd=home)
    lorawiz("eval", "lr-2e-4", "--data", "val.jsonl", "--samples", "2", "--max-new-tokens", "16", cwd=home)
    lorawiz("report", "lr-2e-4", "lr-1e-3", "-o", "report.html", cwd=home)
    return home / "report.html"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "report_browser.json")
    parser.add_argument("--keep", type=Path, help="Build the runs, page and screenshot in this folder and keep it.")
    args = parser.parse_args()
    chromium = find_chromium()
    if chromium is None:
        raise SystemExit("no chromium binary found (Debian: apt-get install -y chromium); nothing checked.")
    version = subprocess.run([chromium, "--version"], capture_output=True, text=True).stdout.strip()
    work = args.keep or Path(tempfile.mkdtemp(prefix="lorawiz-report-browser-"))
    work.mkdir(parents=True, exist_ok=True)
    page = build_runs(work)
    result = check_page(chromium, page, work)
    result["control_page_requests"] = control_requests(chromium, work)
    result["checks"]["control_requests_caught"] = len(result["control_page_requests"]) == 2
    result["ok"] = all(result["checks"].values())
    result.update({"chromium": version, "page_bytes": page.stat().st_size, "window": list(WINDOW)})
    if args.keep is None:  # the folder goes: no path into it in the results
        result.pop("screenshot_path", None)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    raise SystemExit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
