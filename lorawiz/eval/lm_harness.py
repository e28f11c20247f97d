"""`lorawiz eval --lm-eval TASKS`: lm-eval-harness benchmarks on the models already in memory (the `eval` extra).

A task is a harness task or group name (hellaswag, arc_easy, mmlu) or the path of a task YAML file, for tasks of
your own; names are checked before any model loads.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorawiz.errors import LorawizError


@dataclass
class Harness:
    manager: Any  # lm_eval.tasks.TaskManager
    names: list[str]


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
    return Harness(manager, names)


def run_tasks(harness: Harness, model: Any, tokenizer: Any, limit: int | None, batch_size: int) -> dict[str, Any]:
    """Each task's metrics ({task: {metric: value}}), standard errors left out, zero-shot."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    with _quiet():
        wrapped = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
        output = lm_eval.simple_evaluate(model=wrapped, tasks=harness.names, task_manager=harness.manager,
                                         limit=limit, log_samples=False, bootstrap_iters=0)
    results = {}
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
