"""`lorawiz eval --lm-eval TASKS`: lm-eval-harness benchmarks on the models already in memory (the `eval` extra).

A task is a harness task or group name (hellaswag, arc_easy, mmlu) or the path of a task YAML file, for tasks of
your own; names are checked before any model loads, and so is the tasks' data when the Hub is unreachable (it must
then come from the local cache).
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorawiz.errors import LorawizError, first_line

# What loading a task's data raises when the Hub cannot be reached or the data is not there: datasets' "Couldn't
# reach ... on the Hub" and huggingface_hub's OfflineModeIsEnabled are ConnectionErrors, a missing dataset or cache
# entry a FileNotFoundError (DatasetNotFoundError, LocalEntryNotFoundError).
DATA_ERRORS = (ConnectionError, TimeoutError, FileNotFoundError)


@dataclass
class Harness:
    manager: Any  # lm_eval.tasks.TaskManager
    names: list[str]
    # {task: {metric: True / False / None}} as lm-eval's output declares it, filled in by run_tasks
    higher_is_better: dict[str, dict[str, bool | None]] = field(default_factory=dict)


def prepare_tasks(specs: list[str]) -> Harness:
    try:
        from lm_eval.tasks import TaskManager
    except ImportError as exc:
        raise LorawizError("--lm-eval needs lm-eval-harness, which is not installed.",
                           hint='Install the eval extra: pip install "lorawiz[eval]"') from exc
    names, folders = [], []
    for spec in specs:
        path = Path(spec).expanduser()
        if spec.endswith((".yaml", ".yml")):
            if not path.is_file():
                raise LorawizError(f"--lm-eval {spec}: file not found.", hint="Give a task YAML file or a task name.")
            match = re.search(r"^task:\s*['\"]?([^'\"\s#]+)", path.read_text(encoding="utf-8"), re.MULTILINE)
            if not match:
                raise LorawizError(f"--lm-eval {spec}: no `task:` name in the file.",
                                   hint="Add a line `task: my_task` to it (lm-eval's task YAML format).")
            names.append(match.group(1))
            folders.append(str(path.parent.resolve()))
        else:
            names.append(spec)
    with _quiet():
        manager = TaskManager(include_path=folders or None)
    known = set(manager.all_tasks)
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            raise LorawizError(f"--lm-eval {name}: lm-eval has no such task.",
                               hint=(f'Did you mean "{close[0]}"? ' if close else "") + "List them with: lm-eval ls "
                                                                                        "tasks")
    _check_data_offline(manager, names)
    return Harness(manager, names)


def _check_data_offline(manager: Any, names: list[str]) -> None:
    """Offline, each task's data must be in the cache: load it now (from the cache, quick) rather than fail after
    the models have been measured. Online, the download happens in run_tasks."""
    from lorawiz.hub import cache_only, hub_reachable

    told_offline = _offline_set()
    if hub_reachable():
        return
    for name in names:
        try:
            with _quiet(), cache_only():
                manager.load_task_or_group([name])
        except DATA_ERRORS as exc:
            raise _data_error(name, exc, told_offline) from exc


def _offline_set() -> bool:
    return any(os.environ.get(name, "").lower() in ("1", "true", "yes", "on")
               for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _data_error(task: str, exc: BaseException, told_offline: bool) -> LorawizError:
    first = first_line(exc)
    why = "HF_HUB_OFFLINE is set" if told_offline else "the Hugging Face Hub is unreachable from here"
    return LorawizError(f"--lm-eval {task}: its data is not in the local cache and {why} ({first}).",
                        hint="Run it once where the Hub is reachable (the data is then cached; unset HF_HUB_OFFLINE), "
                             "or drop --lm-eval.")


def run_tasks(harness: Harness, model: Any, tokenizer: Any, limit: int | None, batch_size: int) -> dict[str, Any]:
    """Each task's metrics ({task: {metric: value}}), standard errors left out, zero-shot."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    from lorawiz.hub import cache_only, hub_reachable

    told_offline = _offline_set()
    with _quiet(), cache_only(not hub_reachable()):
        wrapped = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
        try:
            output = lm_eval.simple_evaluate(model=wrapped, tasks=harness.names, task_manager=harness.manager,
                                             limit=limit, log_samples=False, bootstrap_iters=0)
        except DATA_ERRORS as exc:  # the network went away after prepare_tasks
            raise _data_error(",".join(harness.names), exc, told_offline) from exc
    results = {}
    for task, declared in (output or {}).get("higher_is_better", {}).items():
        harness.higher_is_better[task] = {key.split(",")[0]: value for key, value in (declared or {}).items()}
    for task, metrics in (output or {}).get("results", {}).items():
        results[task] = {key.split(",")[0]: value for key, value in metrics.items()
                         if isinstance(value, int | float) and "_stderr" not in key and key != "sample_len"}
    return results


@contextlib.contextmanager
def _quiet():
    """lm-eval logs each task's defaults and the wrapping of a loaded model as warnings: keep errors only."""
    logger = logging.getLogger("lm_eval")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
