"""What every model of one `lorawiz eval` is measured on, settled before any model loads: the request and its
checks, the rows sampled from the data, the task (lm or classification), the labels and the sample prompts.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorawiz.data.rows import count_rows, final_answer, iter_rows_at, rows_at, split_answer
from lorawiz.errors import LorawizError
from lorawiz.eval.lm_harness import prepare_tasks
from lorawiz.models import Target

MAX_LABELS = 50  # more distinct answers than this is not a label set


@dataclass
class EvalRequest:
    target: str
    data: str
    base: str | None = None
    compare_base: bool | None = None  # None: compare when a base is known
    task: str | None = None  # "lm" or "classification"; None: from the run's config or the data
    labels: list[str] | None = None
    general_data: str | None = None
    max_samples: int | None = None
    samples: int = 3
    lm_eval: list[str] | None = None
    max_new_tokens: int = 256
    batch_size: int = 8
    prompt_template: str | None = None  # the text of --prompt-template: {input} and optionally {labels}
    min_f1: float | None = None
    against: str | None = None  # --against RUN_B: TARGET (A) and RUN_B side by side, instead of base and target


@dataclass
class EvalPlan:
    """What every model of one eval is measured on, fixed before the first model loads: the same rows, the same
    task and labels, the same sample prompts."""

    request: EvalRequest
    run_config: Any  # the run's RunConfig (lorawiz.yaml), or None
    data_path: Path
    chosen: list[int] | None  # the evaluated row positions (None: every row)
    total: int
    evaluated: int
    task: str
    task_source: str
    labels: list[str]
    golds: list[str]
    rows: dict[int, dict[str, Any]]  # rows held as Python objects: every evaluated row (classification), else samples
    prompts: dict[int, Any]  # their prompts (None for a row without chat turns)
    sample_rows: list[int]
    general: tuple[Path, list[int] | None] | None = None  # --general-data and its evaluated positions
    general_rows: int = 0
    harness: Any = None  # lorawiz.eval.lm_harness.Harness for --lm-eval


def plan_eval(request: EvalRequest, run_config: Any) -> EvalPlan:
    """Read and count the data (and --general-data), sample the rows, settle the task and labels; prepares the
    lm-eval tasks first so that an unknown one fails before any of this."""
    harness = prepare_tasks(request.lm_eval) if request.lm_eval else None
    path = data_path(request.data)
    total = counted(path, "--data")
    chosen = sample_positions(total, request.max_samples)
    general, general_rows = None, 0
    if request.general_data:
        general_path = data_path(request.general_data)
        general_total = counted(general_path, "--general-data")
        general = (general_path, sample_positions(general_total, request.max_samples))
        general_rows = min(general_total, request.max_samples or general_total)
    evaluated = len(chosen) if chosen is not None else total
    task, task_source = _resolve_task(request, run_config, _answers(iter_rows_at(path, chosen)))
    # Rows held as Python objects: those answered one by one (every evaluated row for classification, the
    # --samples rows otherwise); the loss reads the tokenised cache.
    sample_rows = _sample_indices(evaluated, request.samples)
    for flag, given in (("--prompt-template", request.prompt_template), ("--min-f1", request.min_f1)):
        if given is not None and task != "classification":
            raise LorawizError(f"{flag} is for classification data, but the task is {task}.",
                               hint=f"Use --task classification, or drop {flag}.")
    if task == "classification":
        rows = dict(enumerate(rows_at(path, chosen)))
        labels, golds = _labels_and_golds(request, list(rows.values()))
    else:
        labels, golds = [], []
        positions = [chosen[i] if chosen is not None else i for i in sample_rows]
        rows = dict(zip(sample_rows, rows_at(path, positions), strict=True))
    prompts = {i: split_answer(row, f"--data row {i + 1}")[0] if "messages" in row else None
               for i, row in rows.items()}
    return EvalPlan(request, run_config, path, chosen, total, evaluated, task, task_source, labels, golds, rows,
                    prompts, sample_rows, general, general_rows, harness)


def check_request(request: EvalRequest) -> None:
    """The flags' own values: refused before anything is read or loaded."""
    if request.task not in (None, "lm", "classification"):
        raise LorawizError(f"--task {request.task}: unknown.", hint="Use --task lm or --task classification.")
    if request.labels is not None and request.task == "lm":
        raise LorawizError("--labels is for classification, but --task is lm.",
                           hint="Drop --labels, or use --task classification.")
    for flag, value, least in (("--max-samples", request.max_samples, 1), ("--samples", request.samples, 0),
                               ("--max-new-tokens", request.max_new_tokens, 1),
                               ("--batch-size", request.batch_size, 1)):
        if value is not None and value < least:
            raise LorawizError(f"{flag} {value}: must be at least {least}.", hint=f"Give {flag} {max(least, 1)} "
                                                                                   "or more.")
    if request.min_f1 is not None and not 0 <= request.min_f1 <= 1:
        raise LorawizError(f"--min-f1 {request.min_f1}: a macro-F1 is between 0 and 1.", hint="For example "
                                                                                             "--min-f1 0.615.")
    if request.prompt_template is not None and "{input}" not in request.prompt_template:
        raise LorawizError("--prompt-template: the template has no {input}, where each row's prompt goes.",
                           hint="Write the prompt with {input} (and {labels} for the label list if you like).")


def holds_pairs(path: Path) -> bool:
    from lorawiz.data.convert import resolve_shape
    from lorawiz.data.formats import PREFERENCE, ConvertOptions

    try:
        return resolve_shape(path, ConvertOptions(preference=True))[0] == PREFERENCE
    except LorawizError:
        return False  # an unreadable file: the usual path says why


def data_path(path: str) -> Path:
    from lorawiz.builtin import is_builtin, resolve_builtin

    return Path(resolve_builtin(path)) if is_builtin(path) else Path(path).expanduser()


def counted(path: Path, flag: str, opts: Any = None) -> int:
    """The file's rows, counted in a streaming pass that fails on bad rows; errors led by the flag."""
    try:
        return count_rows(path, opts, stopped="nothing was evaluated")
    except LorawizError as exc:
        raise LorawizError(f"{flag} {exc.message}", hint=exc.hint, exit_code=exc.exit_code) from exc


def sample_positions(total: int, limit: int | None) -> list[int] | None:
    """At most `limit` row positions, a fixed spread over the file (seed 0) in file order, so reruns see the same
    rows; None for every row."""
    if limit is None or total <= limit:
        return None
    return sorted(random.Random(0).sample(range(total), limit))


@dataclass
class _Answers:
    """The final answers of the evaluated rows, summarised in one pass: enough to tell a label set."""

    rows: int = 0
    distinct: Counter | None = None  # None: more than MAX_LABELS values, or an answer of over five words
    missing: bool = False  # a row without a final assistant answer


def _answers(rows: Iterable[Mapping[str, Any]]) -> _Answers:
    out = _Answers(distinct=Counter())
    for row in rows:
        out.rows += 1
        answer = final_answer(row)
        if answer is None:
            out.missing = True
        elif out.distinct is not None:
            out.distinct[answer] += 1
            if len(out.distinct) > MAX_LABELS or len(answer.split()) > 5:
                out.distinct = None
    return out


def _sample_indices(count: int, wanted: int) -> list[int]:
    """`wanted` rows spread evenly over `count`: the first, the last and between."""
    wanted = min(wanted, count)
    if wanted <= 0:
        return []
    if wanted == 1:
        return [0]
    return sorted({round(k * (count - 1) / (wanted - 1)) for k in range(wanted)})


def run_file_of(target: Target) -> Path | None:
    """The run's lorawiz.yaml: beside the adapter, or one level up for checkpoint-N; None for other models."""
    if not target.is_adapter:
        return None
    folder = Path(target.path)
    return next((c for c in (folder / "lorawiz.yaml", folder.parent / "lorawiz.yaml") if c.is_file()), None)


def run_config_of(target: Target) -> Any:
    """The typed configuration (RunConfig) of the run's lorawiz.yaml (run_file_of); None when there is none or it
    no longer validates."""
    from lorawiz.config.files import read_config_file
    from lorawiz.config.layers import defaults_layer
    from lorawiz.config.resolve import resolve_layers

    found = run_file_of(target)
    try:
        return resolve_layers([defaults_layer(), read_config_file(found)]).config if found else None
    except LorawizError:
        return None


def _resolve_task(request: EvalRequest, run_config: Any, answers: _Answers) -> tuple[str, str]:
    if request.task:
        return request.task, "--task"
    if request.labels:
        return "classification", "--labels"
    if run_config is not None and run_config.data.task == "classification":
        return "classification", "the run's lorawiz.yaml"
    distinct = answers.distinct
    if distinct and not answers.missing and len(distinct) <= min(MAX_LABELS, answers.rows // 5):
        return "classification", f"the data's answers take {len(distinct)} values"
    return "lm", "default"


def _labels_and_golds(request: EvalRequest, rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    golds = [split_answer(row, f"--data row {i + 1}")[1] for i, row in enumerate(rows)]
    if request.labels:
        labels = list(dict.fromkeys(request.labels))
        for i, gold in enumerate(golds):
            if gold not in labels:
                raise LorawizError(f'--data row {i + 1}: the answer "{gold[:80]}" is not one of --labels '
                                   f'({", ".join(labels)}).', hint="Add it to --labels, or fix the row.")
        return labels, golds
    labels = sorted(set(golds))
    if len(labels) > MAX_LABELS:
        raise LorawizError(f"--task classification: the answers in {request.data} take {len(labels)} different "
                           f"values, too many for a label set (at most {MAX_LABELS}).",
                           hint="Pass --labels a,b,c, or use --task lm.")
    return labels, golds
