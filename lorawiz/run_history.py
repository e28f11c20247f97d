"""What a training run folder tells about its training, as plain data for `lorawiz report` and the loss plot: the
series logged over steps, the configuration it ran (lorawiz.yaml), its results and the `lorawiz eval` files in it.

Only the standard library and yaml: reading a run never loads torch or transformers.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorawiz.errors import LorawizError

METRICS_FILE = "metrics.jsonl"  # lorawiz.train.monitor.METRICS_FILE (train/ is not imported here)
LOG_FILE = "training.log"  # lorawiz.train.monitor.LOG_FILE
RUN_CONFIG = "lorawiz.yaml"  # lorawiz.ownership.RUN_CONFIG
RUN_INFO = "run.json"
RESULTS_FILE = "all_results.json"
STATE_FILE = "trainer_state.json"
EVAL_FILES = "eval-*.json"  # `lorawiz eval`'s default results files in a run folder
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# The series a report plots, with what each train record calls it (the first key found wins).
TRAIN_KEYS = {"loss": ("loss",), "learning_rate": ("learning_rate",), "grad_norm": ("grad_norm",),
              "tokens_per_s": ("tokens_per_s", "train_tokens_per_second")}
# lorawiz.views.dashboard.plain_line's memory part: `mem 10.2/79.6GiB` (the fullest GPU) or `rss 0.6GiB` (CPU).
MEMORY_IN_LOG = re.compile(r"\bstep (\d+)/\d+\b.*?\b(?:mem ([\d.]+)/[\d.]+GiB|rss ([\d.]+)GiB)")

Series = list[tuple[int, float]]


@dataclass
class RunHistory:
    """One run folder read for a report. `series`: name -> [(step, value)], sorted by step, only the names logged
    (loss, eval_loss, learning_rate, grad_norm, tokens_per_s, memory_gib). `config`: lorawiz.yaml's values by knob
    name, `sources`: its comment for each (where the value came from, the plan's reason)."""

    name: str
    path: Path
    series: dict[str, Series] = field(default_factory=dict)
    source: str = ""  # where the series were read: metrics.jsonl or a trainer_state.json
    memory_kind: str | None = None  # "GPU memory used" or "process RSS"
    eval_metric: str = "eval_loss"
    config_text: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)  # run.json
    results: dict[str, Any] = field(default_factory=dict)  # all_results.json
    evals: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (file name, `lorawiz eval` JSON)
    notes: list[str] = field(default_factory=list)  # files that could not be read


def read_run(folder: Path, name: str | None = None) -> RunHistory:
    """Everything a report shows of the run in `folder`; a folder with no training log and no lorawiz.yaml is not
    a run (LorawizError). A damaged file is a note in the result, never an error: the rest is still shown."""
    folder = Path(folder)
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is a file, not a run folder"
        raise LorawizError(f"{folder} {what}.", hint="Give the folder of a training run (lorawiz train "
                                                     "--output-dir), e.g. lorawiz report outputs/my-run.")
    run = RunHistory(name or folder.name, folder)
    records = _read_jsonl(folder / METRICS_FILE, run.notes)
    state = _trainer_state(folder, run.notes)
    if records:
        run.series, run.eval_metric = series_from_records(records)
        run.source = METRICS_FILE
    elif state is not None:
        run.series, run.eval_metric = series_from_log_history(state[1].get("log_history") or [])
        run.source = str(state[0].relative_to(folder))
    memory, run.memory_kind = memory_from_log(_read_text(folder / LOG_FILE, run.notes) or "")
    if memory:
        run.series["memory_gib"] = memory
    run.config_text = _read_text(folder / RUN_CONFIG, run.notes)
    if run.config_text is not None:
        run.config, run.sources = parse_run_config(run.config_text, run.notes)
    run.info = _read_json(folder / RUN_INFO, run.notes) or {}
    run.results = _read_json(folder / RESULTS_FILE, run.notes) or {}
    for path in sorted(folder.glob(EVAL_FILES)):
        found = _read_json(path, run.notes)
        if found:
            run.evals.append((path.name, found))
    if records is None and state is None and run.config_text is None and not run.info:
        raise LorawizError(f"{folder} is not a training run: it holds no {METRICS_FILE}, {STATE_FILE}, "
                           f"{RUN_CONFIG} or {RUN_INFO}.",
                           hint="Give the folder lorawiz train wrote (its --output-dir), e.g. lorawiz report "
                                "outputs/my-run.")
    return run


def run_names(folders: Iterable[Path]) -> list[str]:
    """A legend name per run: its folder name, with as many parent folders as it takes to tell two apart."""
    paths = [Path(folder).resolve() for folder in folders]
    depth = 1
    while True:
        names = ["/".join(path.parts[-depth:]) for path in paths]
        if len(set(names)) == len(names) or depth >= max(len(path.parts) for path in paths):
            return names
        depth += 1


def series_from_records(records: Iterable[Mapping[str, Any]]) -> tuple[dict[str, Series], str]:
    """metrics.jsonl's train and eval records as series. A resumed run logs the steps since its checkpoint again:
    the last record per (type, step) wins, as the monitor's docstring asks of a reader."""
    last: dict[tuple[str, int], Mapping[str, Any]] = {}
    for record in records:
        if record.get("type") in ("train", "eval") and is_number(record.get("step")):
            last[(record["type"], int(record["step"]))] = record
    train = [values for (kind, _), values in sorted(last.items(), key=lambda item: item[0][1]) if kind == "train"]
    evals = [values for (kind, _), values in sorted(last.items(), key=lambda item: item[0][1]) if kind == "eval"]
    return _collect(train, evals)


def series_from_log_history(history: Iterable[Mapping[str, Any]]) -> tuple[dict[str, Series], str]:
    """A Trainer's `state.log_history` (trainer_state.json) as series: entries with "loss" are training logs,
    entries with an eval loss are evaluations; the end-of-training summary (train_loss) is neither."""
    train, evals = [], []
    for entry in history:
        if not is_number(entry.get("step")):
            continue
        if eval_loss_key(entry) is not None:
            evals.append(entry)
        elif "loss" in entry or "learning_rate" in entry:
            train.append(entry)
    return _collect(train, evals)


def _collect(train: list[Mapping[str, Any]], evals: list[Mapping[str, Any]]) -> tuple[dict[str, Series], str]:
    series: dict[str, Series] = {}
    for name, keys in TRAIN_KEYS.items():
        points = []
        for entry in train:
            value = next((entry[key] for key in keys if _is_finite(entry.get(key))), None)
            if value is not None:
                points.append((int(entry["step"]), float(value)))
        if points:
            series[name] = _by_step(points)
    metric = next((key for key in map(eval_loss_key, evals) if key), "eval_loss")
    points = [(int(entry["step"]), float(entry[metric])) for entry in evals if _is_finite(entry.get(metric))]
    if points:
        series["eval_loss"] = _by_step(points)
    return series, metric


def _by_step(points: Series) -> Series:
    return sorted(dict(points).items())  # one value per step, the last logged


def memory_from_log(text: str) -> tuple[Series, str | None]:
    """Memory per step from training.log's plain lines (the only place the run records it), in GiB as logged (0.1
    GiB resolution); the kind says whether it is a GPU's used memory or the process's RSS."""
    points, kind = [], None
    for match in MEMORY_IN_LOG.finditer(text):
        gpu, rss = match.group(2), match.group(3)
        points.append((int(match.group(1)), float(gpu if gpu is not None else rss)))
        kind = "GPU memory used" if gpu is not None else "process RSS"
    return _by_step(points), kind


CONFIG_LINE = re.compile(r"^\s+([A-Za-z_][\w]*):\s.*?\s\s#\s(.*)$")  # `  lora_r: 16  # recommender: why`


def parse_run_config(text: str, notes: list[str] | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """lorawiz.yaml's values by knob name (its sections flattened) and each knob's comment, its source."""
    import yaml

    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        if notes is not None:
            notes.append(f"{RUN_CONFIG} could not be parsed ({str(exc).splitlines()[0]}); shown as text only.")
        loaded = None
    values: dict[str, Any] = {}
    for key, value in (loaded.items() if isinstance(loaded, dict) else ()):
        if isinstance(value, dict):
            values.update({str(k): v for k, v in value.items()})
        else:
            values[str(key)] = value
    sources = {match.group(1): match.group(2).strip() for line in text.splitlines()
               if (match := CONFIG_LINE.match(line))}
    return values, sources


def _trainer_state(folder: Path, notes: list[str]) -> tuple[Path, dict[str, Any]] | None:
    """trainer_state.json beside the run, else the newest checkpoint's (it holds the log history up to there)."""
    candidates = [folder / STATE_FILE]
    checkpoints = [(int(m.group(1)), child) for child in folder.iterdir() if (m := CHECKPOINT.match(child.name))]
    candidates += [child / STATE_FILE for _, child in sorted(checkpoints, reverse=True)]
    for path in candidates:
        if path.is_file():
            state = _read_json(path, notes)
            if state is not None:
                return path, state
    return None


def _read_text(path: Path, notes: list[str]) -> str | None:
    if not path.is_file():
        return None
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        notes.append(f"{path.name} could not be read ({exc.strerror or exc}).")
        return None


def _read_json(path: Path, notes: list[str]) -> dict[str, Any] | None:
    text = _read_text(path, notes)
    if text is None:
        return None
    try:
        found = json.loads(text)
    except ValueError as exc:
        notes.append(f"{path.name} is not valid JSON ({exc}); left out.")
        return None
    if not isinstance(found, dict):
        notes.append(f"{path.name} does not hold a JSON object; left out.")
        return None
    return found


def _read_jsonl(path: Path, notes: list[str]) -> list[dict[str, Any]] | None:
    """The records of a JSON-lines file; a line cut short (a killed run) is skipped and counted in a note."""
    text = _read_text(path, notes)
    if text is None:
        return None
    records, bad = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(record, dict):
            records.append(record)
    if bad:
        notes.append(f"{path.name}: {bad} line(s) that are not JSON were skipped.")
    return records


def eval_loss_key(entry: Mapping[str, Any]) -> str | None:
    """"eval_loss", or the loss of a named eval set ("eval_val_loss"): the evaluation loss of a log entry (the
    training monitor reads it the same way)."""
    if "eval_loss" in entry:
        return "eval_loss"
    return next((key for key in entry if key.startswith("eval_") and key.endswith("_loss")), None)


def is_number(value: Any) -> bool:
    """A real number, not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    return is_number(value) and math.isfinite(value)
