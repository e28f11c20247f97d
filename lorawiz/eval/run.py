"""`lorawiz eval` as a library call: the base model and the fine-tuned one, measured the same way, side by side.

Each model is loaded once and measured in turn (for an adapter, the base is the same model with the adapter
switched off, so one copy is in memory): loss and perplexity on the data, greedy answers to a few rows, label
metrics for classification data, perplexity on general data (forgetting), and lm-eval-harness tasks.
"""

from __future__ import annotations

import gc
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorawiz.data.rows import count_rows, final_answer, iter_rows_at, rows_at, split_answer
from lorawiz.errors import LorawizError
from lorawiz.eval.lm_harness import prepare_tasks, run_tasks
from lorawiz.eval.metrics import classification_report, extract_label
from lorawiz.eval.report import (
    AS_GIVEN,
    ROLE_NAMES,
    WITH_LABELS,
    YOUR_TEMPLATE,
    EvalReport,
    ModelResult,
    sample_record,
)
from lorawiz.eval.scoring import generate_answers, max_seq_length_for, mean_loss_view
from lorawiz.models import (
    Target,
    describe_target,
    eval_dtype_and_device,
    head_labels,
    load_model,
    load_tokenizer_for,
)

MAX_LABELS = 50  # more distinct answers than this is not a label set
LABEL_ANSWER_MARGIN = 24  # tokens past the longest label: room for "The category is: ..." from a base model


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


def run_eval(request: EvalRequest, progress: Callable[[str], None] | None = None) -> EvalReport:
    """Measure TARGET (and its base) as the request says; `progress(text)` hears what is being done."""
    progress = progress or (lambda text: None)
    _check_request(request)
    target = describe_target(request.target, request.base)
    labels = head_labels(target)
    if labels is not None:  # a sequence head: scored, not generated (lorawiz.eval.head)
        from lorawiz.eval.head import check_head_request, run_head_eval

        check_head_request(request, target)
        data_path = _data_path(request.data)
        total = _counted(data_path, "--data")
        rows = rows_at(data_path, _sample_positions(total, request.max_samples))
        return run_head_eval(request, target, labels, rows, total, progress)
    if _holds_pairs(_data_path(request.data)):  # preference pairs: ranked, not generated (lorawiz.eval.preference)
        return _pairs_eval(request, target, progress)
    base = target.base if target.is_adapter else request.base
    compare = request.compare_base if request.compare_base is not None else base is not None
    if compare and base is None:
        raise LorawizError(f"--compare-base: {request.target} is a full model, so its base is unknown.",
                           hint="Pass --base MODEL (the model it was fine-tuned from), or --no-compare-base.")
    if request.general_data and not compare:
        raise LorawizError("--general-data compares perplexity before and after fine-tuning, which needs the base "
                           "model.", hint="Pass --base MODEL, or drop --compare-base off.")
    # fails fast on an unknown task, before any model loads
    harness = prepare_tasks(request.lm_eval) if request.lm_eval else None

    run_config = _run_config(target)
    data_path = _data_path(request.data)
    total = _counted(data_path, "--data")
    chosen = _sample_positions(total, request.max_samples)
    general = None
    if request.general_data:
        general_path = _data_path(request.general_data)
        general_total = _counted(general_path, "--general-data")
        general = (general_path, _sample_positions(general_total, request.max_samples))
        general_rows = min(general_total, request.max_samples or general_total)
    evaluated = len(chosen) if chosen is not None else total
    task, task_source = _resolve_task(request, run_config, _answers(iter_rows_at(data_path, chosen)))
    # Rows held as Python objects: those answered one by one (every evaluated row for classification, the
    # --samples rows otherwise); the loss reads the tokenised cache.
    sample_rows = _sample_indices(evaluated, request.samples)
    for flag, given in (("--prompt-template", request.prompt_template), ("--min-f1", request.min_f1)):
        if given is not None and task != "classification":
            raise LorawizError(f"{flag} is for classification data, but the task is {task}.",
                               hint=f"Use --task classification, or drop {flag}.")
    if task == "classification":
        rows = dict(enumerate(rows_at(data_path, chosen)))
        labels, golds = _labels_and_golds(request, list(rows.values()))
    else:
        labels, golds = [], []
        positions = [chosen[i] if chosen is not None else i for i in sample_rows]
        rows = dict(zip(sample_rows, rows_at(data_path, positions), strict=True))
    report = EvalReport(target, base if compare else None, request.data, evaluated, total, task,
                        task_source, labels, {}, [], request.general_data, min_f1=request.min_f1)
    if not compare:
        report.notes.append("no base model to compare with: " + (
            "--no-compare-base" if request.compare_base is False else
            f"{request.target} is a full model; pass --base MODEL to compare"))
    prompts = {i: split_answer(row, f"--data row {i + 1}")[0] if "messages" in row else None
               for i, row in rows.items()}

    for role, model, tokenizer in _models(target, base if compare else None, progress):
        result = report.results.setdefault(role, ModelResult())
        name = ROLE_NAMES[role]
        max_seq_length = max_seq_length_for(run_config, tokenizer, model)
        progress(f"{name}: loss on {evaluated:,} rows")
        view = _loss_view(data_path, chosen, tokenizer, run_config, max_seq_length, assistant_only=True)
        result.loss = mean_loss_view(model, tokenizer, view, max_seq_length)
        if general is not None:
            progress(f"{name}: perplexity on {general_rows:,} rows of general data")
            view = _loss_view(*general, tokenizer, run_config, max_seq_length, assistant_only=False)
            result.general = mean_loss_view(model, tokenizer, view, max_seq_length)
        if task == "classification":
            variants = ([AS_GIVEN, WITH_LABELS] + ([YOUR_TEMPLATE] if request.prompt_template else [])
                        if role == "base" else [AS_GIVEN])
            budget = max(len(tokenizer(label, add_special_tokens=False)["input_ids"]) for label in labels)
            ordered = [prompts[i] for i in range(evaluated)]
            for variant in variants:
                progress(f"{name}: answering {evaluated:,} rows (prompt {variant})")
                asked = (ordered if variant == AS_GIVEN else
                         [_with_label_list(p, labels) for p in ordered] if variant == WITH_LABELS else
                         [_with_template(p, request.prompt_template, labels) for p in ordered])
                answers = generate_answers(model, tokenizer, asked, budget + LABEL_ANSWER_MARGIN,
                                           request.batch_size)
                found = [extract_label(_without_reasoning(answer), labels) for answer in answers]
                result.classification[variant] = classification_report(golds, [f[0] for f in found], labels)
                result.extraction[variant] = dict(Counter(how for _, how in found))
                if variant == AS_GIVEN:
                    result.answers = {i: answers[i] for i in sample_rows}
        elif sample_rows and any(prompts[i] for i in sample_rows):
            picked = [i for i in sample_rows if prompts[i]]
            progress(f"{name}: answering {len(picked)} sample prompts")
            answers = generate_answers(model, tokenizer, [prompts[i] for i in picked], request.max_new_tokens,
                                       request.batch_size)
            result.answers = dict(zip(picked, answers, strict=True))
        if harness:
            progress(f"{name}: lm-eval {', '.join(harness.names)}")
            result.lm_eval = run_tasks(harness, model, tokenizer, request.max_samples, request.batch_size)

    report.samples = [sample_record(rows[i], prompts[i], i, report.results) for i in sample_rows
                      if prompts[i] is not None]
    return report


def _check_request(request: EvalRequest) -> None:
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


def _holds_pairs(path: Path) -> bool:
    from lorawiz.data.convert import resolve_shape
    from lorawiz.data.formats import PREFERENCE, ConvertOptions

    try:
        return resolve_shape(path, ConvertOptions(preference=True))[0] == PREFERENCE
    except LorawizError:
        return False  # an unreadable file: the usual path says why


def _pairs_eval(request: EvalRequest, target: Target, progress: Callable[[str], None]) -> EvalReport:
    from lorawiz.data.formats import ConvertOptions
    from lorawiz.eval.preference import check_pairs_request, run_pairs_eval

    check_pairs_request(request)
    path, opts = _data_path(request.data), ConvertOptions(preference=True)
    total = _counted(path, "--data", opts)
    rows = rows_at(path, _sample_positions(total, request.max_samples), opts)
    return run_pairs_eval(request, target, rows, total, _run_config(target), progress)


def _data_path(path: str) -> Path:
    from lorawiz.builtin import is_builtin, resolve_builtin

    return Path(resolve_builtin(path)) if is_builtin(path) else Path(path).expanduser()


def _counted(path: Path, flag: str, opts: Any = None) -> int:
    """The file's rows, counted in a streaming pass that fails on bad rows; errors led by the flag."""
    try:
        return count_rows(path, opts, stopped="nothing was evaluated")
    except LorawizError as exc:
        raise LorawizError(f"{flag} {exc.message}", hint=exc.hint, exit_code=exc.exit_code) from exc


def _sample_positions(total: int, limit: int | None) -> list[int] | None:
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


def _loss_view(path: Path, chosen: list[int] | None, tokenizer: Any, run_config: Any, max_seq_length: int,
               assistant_only: bool) -> Any:
    """The evaluated rows tokenised as training tokenises them, from (or into) the same cache."""
    from lorawiz.data.cache import default_cache_root
    from lorawiz.data.tokenize import tokenise_file
    from lorawiz.data.view import training_view

    data_config = run_config.data if run_config is not None else None
    root = default_cache_root(data_config.dataset_cache_dir if data_config else None,
                              run_config.model.cache_dir if run_config is not None else None)
    tokenised = tokenise_file(path, tokenizer, assistant_only=assistant_only, cache_root=root,
                              stopped="nothing was evaluated")
    return training_view(tokenised, chosen, max_seq_length, name="eval")


def _sample_indices(count: int, wanted: int) -> list[int]:
    """`wanted` rows spread evenly over `count`: the first, the last and between."""
    wanted = min(wanted, count)
    if wanted <= 0:
        return []
    if wanted == 1:
        return [0]
    return sorted({round(k * (count - 1) / (wanted - 1)) for k in range(wanted)})


def _run_config(target: Target) -> Any:
    """The typed configuration (RunConfig) of the run's lorawiz.yaml, beside the adapter or one level up for
    checkpoint-N; None when there is none or it no longer validates."""
    from lorawiz.config.files import read_config_file
    from lorawiz.config.layers import defaults_layer
    from lorawiz.config.resolve import resolve_layers

    if not target.is_adapter:
        return None
    folder = Path(target.path)
    found = next((c for c in (folder / "lorawiz.yaml", folder.parent / "lorawiz.yaml") if c.is_file()), None)
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


def _without_reasoning(answer: str) -> str:
    """The answer after a reasoning model's <think>...</think> block, whose musings name every label."""
    return re.sub(r"^\s*<think>.*?(</think>|$)", "", answer, flags=re.DOTALL).strip()


def _with_label_list(prompt: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> list[dict[str, Any]]:
    """The prompt with the label set spelled out in the last user turn (templates without a system role exist)."""
    turns = [dict(turn) for turn in prompt]
    ask = f"Answer with exactly one of these labels and nothing else: {', '.join(labels)}."
    for turn in reversed(turns):
        if turn.get("role") == "user":
            turn["content"] = f"{turn.get('content') or ''}\n\n{ask}"
            return turns
    return [*turns, {"role": "user", "content": ask}]


def _with_template(prompt: Sequence[Mapping[str, Any]], template: str, labels: Sequence[str]) -> list[dict[str, Any]]:
    """The last user turn put into the user's template: {input} is its text, {labels} the label list."""
    turns = [dict(turn) for turn in prompt]
    for turn in reversed(turns):
        if turn.get("role") == "user":
            turn["content"] = template.replace("{labels}", ", ".join(labels)).replace("{input}",
                                                                                      turn.get("content") or "")
            return turns
    return [*turns, {"role": "user", "content": template.replace("{labels}", ", ".join(labels))
                     .replace("{input}", "")}]


def _models(target: Target, base: str | None, progress: Callable[[str], None]) -> Iterator[tuple[str, Any, Any]]:
    """(role, model, tokenizer) for the base (when compared) and then the fine-tuned model, one in memory at a time.

    An adapter's base is the same model with the adapter switched off, measured with the adapter's tokenizer.
    """
    dtype, device = eval_dtype_and_device()
    if target.is_adapter:
        progress(f"loading {target.base} with the adapter {target.path}")
        model = load_model(target, dtype, device=device)
        tokenizer = load_tokenizer_for(target)
        if base is not None:
            with model.disable_adapter():
                yield "base", model, tokenizer
        yield "fine_tuned", model, tokenizer
        return
    if base is not None:
        base_target = describe_target(base)
        progress(f"loading the base {base}")
        model = load_model(base_target, dtype, device=device)
        yield "base", model, load_tokenizer_for(base_target)
        del model
        _free_memory()
    progress(f"loading {target.path}")
    yield "fine_tuned", load_model(target, dtype, device=device), load_tokenizer_for(target)


def _free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
