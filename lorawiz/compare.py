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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorawiz.errors import LorawizError
from lorawiz.evaluate import LossResult, generate_answers, mean_loss, split_answer
from lorawiz.metrics import ClassificationReport, classification_report, extract_label, relative_change
from lorawiz.targets import Target, describe_target, load_model, load_tokenizer_for

ROLES = ("base", "fine_tuned")
ROLE_NAMES = {"base": "base", "fine_tuned": "fine-tuned"}
FORGETTING_THRESHOLD = 0.05  # a general-data perplexity rise above 5% is reported as forgetting (issue 7)
MAX_LABELS = 50  # more distinct answers than this is not a label set
DEFAULT_MAX_SEQ_LENGTH = 4096  # when neither the run's config nor the model says less
LABEL_ANSWER_MARGIN = 24  # tokens past the longest label: room for "The category is: ..." from a base model
AS_GIVEN, WITH_LABELS = "as given", "label list"  # the base is also asked with the label set spelled out


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


@dataclass
class ModelResult:
    loss: LossResult | None = None
    general: LossResult | None = None
    classification: dict[str, ClassificationReport] = field(default_factory=dict)  # prompt variant -> report
    extraction: dict[str, dict[str, int]] = field(default_factory=dict)  # prompt variant -> how labels were found
    answers: dict[int, str] = field(default_factory=dict)  # sample row index -> greedy answer
    lm_eval: dict[str, dict[str, float]] = field(default_factory=dict)

    def best_variant(self) -> str | None:
        if not self.classification:
            return None
        return max(self.classification, key=lambda name: self.classification[name].macro_f1)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"loss": self.loss.as_dict() if self.loss else None}
        if self.general:
            out["general"] = self.general.as_dict()
        if self.classification:
            out["classification"] = {name: report.as_dict() | {"label_found": self.extraction[name]}
                                     for name, report in self.classification.items()}
            out["best_prompt"] = self.best_variant()
        if self.lm_eval:
            out["lm_eval"] = self.lm_eval
        return out


@dataclass
class EvalReport:
    target: Target
    base: str | None
    data: str
    rows: int
    total_rows: int
    task: str
    task_source: str
    labels: list[str]
    results: dict[str, ModelResult]
    samples: list[dict[str, Any]]  # prompt, reference and each model's answer
    general_data: str | None = None
    notes: list[str] = field(default_factory=list)

    def change(self, attribute: str, metric: str) -> float | None:
        """Relative change of a loss metric from base to fine-tuned, or None without both."""
        if not set(ROLES) <= set(self.results):
            return None
        before = getattr(self.results["base"], attribute)
        after = getattr(self.results["fine_tuned"], attribute)
        if before is None or after is None:
            return None
        return relative_change(getattr(before, metric), getattr(after, metric))

    @property
    def forgetting(self) -> float | None:
        """Relative rise of the general-data perplexity, when it exceeds the threshold."""
        change = self.change("general", "perplexity")
        return change if change is not None and change > FORGETTING_THRESHOLD else None

    def verdict(self) -> tuple[bool, float, float, str] | None:
        """(fine-tuned F1 >= base's best prompted F1, the two F1s, the base's best prompt) for classification."""
        if self.task != "classification" or not set(ROLES) <= set(self.results):
            return None
        base = self.results["base"]
        best = base.best_variant()
        tuned = self.results["fine_tuned"].classification[AS_GIVEN].macro_f1
        best_f1 = base.classification[best].macro_f1
        return tuned >= best_f1, tuned, best_f1, best

    def as_dict(self) -> dict[str, Any]:
        out = {
            "target": self.target.path, "adapter": self.target.is_adapter, "base": self.base,
            "data": self.data, "rows": self.rows, "rows_in_file": self.total_rows,
            "task": self.task, "task_source": self.task_source,
            "results": {role: result.as_dict() for role, result in self.results.items()},
            "change": {"loss": self.change("loss", "loss"), "perplexity": self.change("loss", "perplexity")},
            "samples": self.samples, "notes": self.notes,
        }
        if self.labels:
            out["labels"] = self.labels
            verdict = self.verdict()
            if verdict:
                out["fine_tuned_beats_base"] = {"passed": verdict[0], "fine_tuned_macro_f1": verdict[1],
                                                "base_best_macro_f1": verdict[2], "base_best_prompt": verdict[3]}
        if self.general_data:
            out["general_data"] = self.general_data
            out["change"]["general_perplexity"] = self.change("general", "perplexity")
            out["forgetting_warning"] = self.forgetting is not None
        return out


def run_eval(request: EvalRequest, progress: Any = None) -> EvalReport:
    """Measure TARGET (and its base) as the request says; `progress(text)` hears what is being done."""
    progress = progress or (lambda text: None)
    _check_request(request)
    target = describe_target(request.target, request.base)
    base = target.base if target.is_adapter else request.base
    compare = request.compare_base if request.compare_base is not None else base is not None
    if compare and base is None:
        raise LorawizError(f"--compare-base: {request.target} is a full model, so its base is unknown.",
                           hint="Pass --base MODEL (the model it was fine-tuned from), or --no-compare-base.")
    if request.general_data and not compare:
        raise LorawizError("--general-data compares perplexity before and after fine-tuning, which needs the base "
                           "model.", hint="Pass --base MODEL, or drop --compare-base off.")
    harness = None
    if request.lm_eval:
        from lorawiz.lm_harness import prepare_tasks

        harness = prepare_tasks(request.lm_eval)  # fails fast on an unknown task, before any model loads

    run_config = _run_config(target)
    all_rows = _read_rows(request.data, "--data")
    rows = _sample(all_rows, request.max_samples)
    general_rows = _sample(_read_rows(request.general_data, "--general-data"), request.max_samples) \
        if request.general_data else None
    task, task_source = _resolve_task(request, run_config, rows)
    labels, golds = _labels_and_golds(request, rows) if task == "classification" else ([], [])
    report = EvalReport(target, base if compare else None, request.data, len(rows), len(all_rows), task,
                        task_source, labels, {}, [], request.general_data)
    if not compare:
        report.notes.append("no base model to compare with: " + (
            "--no-compare-base" if request.compare_base is False else
            f"{request.target} is a full model; pass --base MODEL to compare"))
    sample_rows = _sample_indices(len(rows), request.samples)
    prompts = [split_answer(row, f"--data row {i + 1}")[0] if "messages" in row else None
               for i, row in enumerate(rows)]

    for role, model, tokenizer in _models(target, base if compare else None, progress):
        result = report.results.setdefault(role, ModelResult())
        name = ROLE_NAMES[role]
        max_seq_length = _max_seq_length(run_config, tokenizer, model)
        progress(f"{name}: loss on {len(rows):,} rows")
        result.loss = mean_loss(model, tokenizer, rows, max_seq_length)
        if general_rows:
            progress(f"{name}: perplexity on {len(general_rows):,} rows of general data")
            result.general = mean_loss(model, tokenizer, general_rows, max_seq_length, assistant_only=False)
        if task == "classification":
            variants = [AS_GIVEN, WITH_LABELS] if role == "base" else [AS_GIVEN]
            budget = max(len(tokenizer(label, add_special_tokens=False)["input_ids"]) for label in labels)
            for variant in variants:
                progress(f"{name}: answering {len(rows):,} rows (prompt {variant})")
                asked = prompts if variant == AS_GIVEN else [_with_label_list(p, labels) for p in prompts]
                answers = generate_answers(model, tokenizer, asked, budget + LABEL_ANSWER_MARGIN,
                                           request.batch_size)
                found = [extract_label(_without_reasoning(answer), labels) for answer in answers]
                result.classification[variant] = classification_report(golds, [f[0] for f in found], labels)
                result.extraction[variant] = dict(Counter(how for _, how in found))
                if variant == AS_GIVEN:
                    result.answers = {i: answers[i] for i in sample_rows}
        elif sample_rows and any(prompts[i] for i in sample_rows):
            chosen = [i for i in sample_rows if prompts[i]]
            progress(f"{name}: answering {len(chosen)} sample prompts")
            answers = generate_answers(model, tokenizer, [prompts[i] for i in chosen], request.max_new_tokens,
                                       request.batch_size)
            result.answers = dict(zip(chosen, answers, strict=True))
        if harness:
            from lorawiz.lm_harness import run_tasks

            progress(f"{name}: lm-eval {', '.join(harness.names)}")
            result.lm_eval = run_tasks(harness, model, tokenizer, request.max_samples, request.batch_size)

    report.samples = [_sample_record(rows[i], prompts[i], i, report.results) for i in sample_rows
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


def _read_rows(path: str, flag: str) -> list[dict[str, Any]]:
    from lorawiz.builtin import is_builtin, resolve_builtin
    from lorawiz.train.dataset import read_rows

    try:
        return read_rows(resolve_builtin(path) if is_builtin(path) else Path(path).expanduser(),
                         stopped="nothing was evaluated")
    except LorawizError as exc:
        raise LorawizError(f"{flag} {exc.message}", hint=exc.hint, exit_code=exc.exit_code) from exc


def _sample(rows: list[dict[str, Any]], limit: int | None) -> list[dict[str, Any]]:
    """At most `limit` rows, a fixed spread over the file (seed 0) in file order, so reruns see the same rows."""
    if limit is None or len(rows) <= limit:
        return rows
    keep = sorted(random.Random(0).sample(range(len(rows)), limit))
    return [rows[i] for i in keep]


def _sample_indices(count: int, wanted: int) -> list[int]:
    """`wanted` rows spread evenly over `count`: the first, the last and between."""
    wanted = min(wanted, count)
    if wanted <= 0:
        return []
    if wanted == 1:
        return [0]
    return sorted({round(k * (count - 1) / (wanted - 1)) for k in range(wanted)})


def _run_config(target: Target) -> dict[str, Any]:
    """The values of the run's lorawiz.yaml (beside the adapter, or one level up for checkpoint-N), if any."""
    from lorawiz.config import read_config_file

    if not target.is_adapter:
        return {}
    folder = Path(target.path)
    found = next((c for c in (folder / "lorawiz.yaml", folder.parent / "lorawiz.yaml") if c.is_file()), None)
    try:
        return read_config_file(found).values if found else {}
    except LorawizError:
        return {}


def _resolve_task(request: EvalRequest, run_config: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]
                  ) -> tuple[str, str]:
    if request.task:
        return request.task, "--task"
    if request.labels:
        return "classification", "--labels"
    if run_config.get("task") == "classification":
        return "classification", "the run's lorawiz.yaml"
    answers = [_final_answer(row) for row in rows]
    distinct = Counter(answer for answer in answers if answer is not None)
    if (distinct and None not in answers and len(distinct) <= min(MAX_LABELS, len(rows) // 5)
            and all(len(answer.split()) <= 5 for answer in distinct)):
        return "classification", f"the data's answers take {len(distinct)} values"
    return "lm", "default"


def _final_answer(row: Mapping[str, Any]) -> str | None:
    messages = row.get("messages") or []
    if not messages or messages[-1].get("role") != "assistant":
        return None
    return str(messages[-1].get("content") or "").strip()


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


def _max_seq_length(run_config: Mapping[str, Any], tokenizer: Any, model: Any) -> int:
    configured = run_config.get("max_seq_length")
    if isinstance(configured, int) and configured > 0:
        return configured
    limits = [DEFAULT_MAX_SEQ_LENGTH, getattr(getattr(model, "config", None), "max_position_embeddings", None),
              getattr(tokenizer, "model_max_length", None)]
    return min(limit for limit in limits if isinstance(limit, int) and limit > 0)


def _models(target: Target, base: str | None, progress: Any) -> Iterator[tuple[str, Any, Any]]:
    """(role, model, tokenizer) for the base (when compared) and then the fine-tuned model, one in memory at a time.

    An adapter's base is the same model with the adapter switched off, measured with the adapter's tokenizer.
    """
    dtype, device = _dtype_and_device()
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


def _dtype_and_device() -> tuple[str, str]:
    import torch

    from lorawiz.targets import default_device

    device = default_device()
    if device == "cuda":
        return ("bf16" if torch.cuda.is_bf16_supported() else "fp16"), device
    return "fp32", device  # CPU kernels for 16-bit are slow, and fp32 is exact


def _free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _sample_record(row: Mapping[str, Any], prompt: Sequence[Mapping[str, Any]], index: int,
                   results: Mapping[str, ModelResult]) -> dict[str, Any]:
    reference = _final_answer(row)
    return {"row": index + 1, "prompt": list(prompt), "reference": reference,
            **{role: result.answers.get(index) for role, result in results.items()}}


def render_report(report: EvalReport) -> None:
    """The report as tables: a Rich table in a terminal, tab-separated lines in a pipe."""
    from lorawiz.console import print_table, say

    what = f"adapter on {report.target.base}" if report.target.is_adapter else "model"
    rows = f"{report.rows:,} rows" + (f" (a fixed sample of {report.total_rows:,})"
                                      if report.rows < report.total_rows else "")
    say(f"eval {report.target.path} ({what}) on {report.data}: {rows}; task {report.task} ({report.task_source})")
    for note in report.notes:
        say(f"note: {note}")
    roles = [role for role in ROLES if role in report.results]
    compared = len(roles) == 2
    headers = ["", *(ROLE_NAMES[role] for role in roles), *(["change"] if compared else [])]

    def loss_rows(attribute: str) -> list[list[str]]:
        results = [getattr(report.results[role], attribute) for role in roles]
        table = []
        for metric, shown in (("loss", _number), ("perplexity", _number)):
            change = [_percent(report.change(attribute, metric))] if compared else []
            table.append([metric, *(shown(getattr(r, metric)) for r in results), *change])
        table.append(["tokens scored", *(f"{r.tokens:,}" for r in results), *([""] if compared else [])])
        return table

    print_table(headers, loss_rows("loss"), title=f"Loss on {report.data} (the assistant's answers)")
    if report.general_data:
        print_table(headers, loss_rows("general"), title=f"Forgetting check: every token of {report.general_data}")
        rise = report.change("general", "perplexity")
        if report.forgetting is not None:
            say(f"warning: perplexity on general data worsened by {rise:.1%} (more than "
                f"{FORGETTING_THRESHOLD:.0%}): the model has forgotten some of what it knew. Mix general data into "
                "training (lorawiz mix), or lower the learning rate, the epochs or lora_r.")
        elif rise is not None:
            say(f"forgetting check passed: perplexity on general data changed by {rise:+.1%} (the warning is for "
                f"more than +{FORGETTING_THRESHOLD:.0%}).")
    if report.task == "classification":
        _render_classification(report, roles)
    _render_samples(report, roles)
    _render_lm_eval(report, roles, headers, compared)


def _render_classification(report: EvalReport, roles: list[str]) -> None:
    from lorawiz.console import print_table, say

    columns = [(role, variant) for role in roles for variant in report.results[role].classification]
    names = [ROLE_NAMES[role] + (f" ({variant})" if role == "base" else "") for role, variant in columns]
    reports = [report.results[role].classification[variant] for role, variant in columns]
    found = [report.results[role].extraction[variant] for role, variant in columns]
    total = report.rows
    summary = [["accuracy", *(f"{r.accuracy:.1%}" for r in reports)],
               ["macro-F1", *(f"{r.macro_f1:.3f}" for r in reports)],
               ["label said exactly", *(f"{f.get('exact', 0) / total:.1%}" for f in found)],
               ["label found loosely", *(f"{(f.get('normalised', 0) + f.get('mentioned', 0)) / total:.1%}"
                                         for f in found)],
               ["no label found", *(f"{f.get('none', 0) / total:.1%}" for f in found)]]
    print_table(["", *names], summary, title=f"Classification: {len(report.labels)} labels, {total:,} rows")

    best = {role: report.results[role].best_variant() for role in roles}
    per_class = []
    for label in report.labels:
        cells = [label, str(report.results[roles[0]].classification[best[roles[0]]].per_class[label].support)]
        for role in roles:
            scores = report.results[role].classification[best[role]].per_class[label]
            cells += [f"{scores.precision:.2f}", f"{scores.recall:.2f}", f"{scores.f1:.2f}"]
        per_class.append(cells)
    short = {"base": "base", "fine_tuned": "tuned"}  # eight columns fit in 80
    headers = ["label", "rows"] + [f"{short[role]} {m}" for role in roles for m in ("P", "R", "F1")]
    print_table(headers, per_class, title="Per class" + (f" (base: prompt {best['base']})" if "base" in best
                                                         else ""))
    for role in roles:
        matrix = report.results[role].classification[best[role]]
        print_table(["true", *matrix.labels, "(none)"],
                    [[label, *map(str, counts)] for label, counts in zip(matrix.labels, matrix.confusion,
                                                                         strict=True)],
                    title=f"Confusion matrix, {ROLE_NAMES[role]} (rows: true label, columns: predicted)")
    verdict = report.verdict()
    if verdict:
        passed, tuned, base_f1, prompt = verdict
        say(f"fine-tuned macro-F1 {tuned:.3f} {'>=' if passed else '<'} the base model's best prompted macro-F1 "
            f"{base_f1:.3f} (prompt {prompt}): " + ("fine-tuning helped." if passed else
                                                    "fine-tuning has not beaten prompting the base model."))


def _render_samples(report: EvalReport, roles: list[str]) -> None:
    import sys

    from lorawiz.console import get_console, is_plain, say

    if not report.samples:
        return
    labels = {"reference": "reference", **{role: ROLE_NAMES[role] for role in roles}}
    if is_plain(sys.stdout):
        say(f"Samples ({len(report.samples)}, greedy):")
        for sample in report.samples:
            say(f"--- row {sample['row']}")
            say(f"prompt: {_one_line(_last_user_turn(sample['prompt']))}")
            for key, name in labels.items():
                say(f"{name}: {_one_line(sample.get(key) or '')}")
        return
    from rich.table import Table

    get_console().print(f"Samples ({len(report.samples)}, greedy)", style="bold", markup=False, highlight=False)
    table = Table(header_style="bold", show_lines=True)
    table.add_column("row", justify="right")
    table.add_column("prompt", ratio=2, overflow="fold")
    for name in labels.values():
        table.add_column(name, ratio=1, overflow="fold")
    for sample in report.samples:
        table.add_row(str(sample["row"]), _clip(_last_user_turn(sample["prompt"])),
                      *(_clip(sample.get(key) or "") for key in labels))
    get_console().print(table)


def _render_lm_eval(report: EvalReport, roles: list[str], headers: list[str], compared: bool) -> None:
    from lorawiz.console import print_table

    tasks = report.results[roles[-1]].lm_eval
    if not tasks:
        return
    rows = []
    for task, metrics in tasks.items():
        for metric in metrics:
            values = [report.results[role].lm_eval.get(task, {}).get(metric) for role in roles]
            change = [_percent(relative_change(values[0], values[1]) if None not in values else None)] \
                if compared else []
            rows.append([f"{task} {metric}", *(_number(v) if v is not None else "-" for v in values), *change])
    print_table(["task metric", *headers[1:]], rows, title="lm-eval-harness (zero-shot)")


def _last_user_turn(prompt: Sequence[Mapping[str, Any]]) -> str:
    users = [turn for turn in prompt if turn.get("role") == "user"]
    return str((users or list(prompt) or [{}])[-1].get("content") or "")


def _one_line(text: str, limit: int = 300) -> str:
    return _clip(" ".join(text.split()), limit)


def _clip(text: str, limit: int = 400) -> str:
    """At most `limit` characters, control characters (a random model's output has some) shown as \ufffd."""
    text = "".join(ch if ch.isprintable() or ch in "\n\t" else "\ufffd" for ch in text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _number(value: float) -> str:
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}" if abs(value) >= 1 else f"{value:.4f}"


def _percent(change: float | None) -> str:
    return "" if change is None else f"{change:+.1%}"
