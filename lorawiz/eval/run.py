"""`lorawiz eval` as a library call: the base model and the fine-tuned one, measured the same way, side by side.

Each model is loaded once and measured in turn (for an adapter, the base is the same model with the adapter
switched off, so one copy is in memory): loss and perplexity on the data, greedy answers to a few rows, label
metrics for classification data, perplexity on general data (forgetting), and lm-eval-harness tasks. With
--against, two fine-tuned models instead (lorawiz.eval.ab).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from lorawiz.data.rows import rows_at
from lorawiz.errors import LorawizError
from lorawiz.eval.measure import base_variants, free_memory, measure_model
from lorawiz.eval.plan import (
    EvalRequest,
    check_request,
    counted,
    data_path,
    holds_pairs,
    plan_eval,
    run_config_of,
    sample_positions,
)
from lorawiz.eval.report import AS_GIVEN, ROLE_NAMES, EvalReport, sample_record
from lorawiz.models import Target, describe_target, eval_dtype_and_device, head_labels, load_model, load_tokenizer_for

__all__ = ["EvalRequest", "run_eval"]


def run_eval(request: EvalRequest, progress: Callable[[str], None] | None = None) -> EvalReport:
    """Measure TARGET (and its base, or RUN_B with --against) as the request says; `progress(text)` hears what is
    being done."""
    progress = progress or (lambda text: None)
    check_request(request)
    if request.against is not None:
        from lorawiz.eval.ab import run_ab_eval

        return run_ab_eval(request, progress)
    target = describe_target(request.target, request.base)
    labels = head_labels(target)
    if labels is not None:  # a sequence head: scored, not generated (lorawiz.eval.head)
        from lorawiz.eval.head import check_head_request, run_head_eval

        check_head_request(request, target)
        path = data_path(request.data)
        total = counted(path, "--data")
        rows = rows_at(path, sample_positions(total, request.max_samples))
        return run_head_eval(request, target, labels, rows, total, progress)
    if holds_pairs(data_path(request.data)):  # preference pairs: ranked, not generated (lorawiz.eval.preference)
        return _pairs_eval(request, target, progress)
    base = target.base if target.is_adapter else request.base
    compare = request.compare_base if request.compare_base is not None else base is not None
    if compare and base is None:
        raise LorawizError(f"--compare-base: {request.target} is a full model, so its base is unknown.",
                           hint="Pass --base MODEL (the model it was fine-tuned from), or --no-compare-base.")
    if request.general_data and not compare:
        raise LorawizError("--general-data compares perplexity before and after fine-tuning, which needs the base "
                           "model.", hint="Pass --base MODEL, or drop --compare-base off.")

    run_config = run_config_of(target)
    plan = plan_eval(request, run_config)  # fails fast on an unknown lm-eval task, before any model loads
    report = EvalReport(target, base if compare else None, request.data, plan.evaluated, plan.total, plan.task,
                        plan.task_source, plan.labels, {}, [], request.general_data, min_f1=request.min_f1)
    if not compare:
        report.notes.append("no base model to compare with: " + (
            "--no-compare-base" if request.compare_base is False else
            f"{request.target} is a full model; pass --base MODEL to compare"))

    for role, model, tokenizer in _models(target, base if compare else None, progress):
        variants = base_variants(request) if role == "base" else [AS_GIVEN]
        report.results[role] = measure_model(plan, ROLE_NAMES[role], model, tokenizer, variants, progress)
    if plan.harness:
        report.lm_eval_higher = plan.harness.higher_is_better
    report.samples = [sample_record(plan.rows[i], plan.prompts[i], i, report.results) for i in plan.sample_rows
                      if plan.prompts[i] is not None]
    if any(check["verdict"] == "forgetting" for check in report.forgetting_checks()):
        from lorawiz.eval.mitigation import mitigation_commands

        found = mitigation_commands(target, run_config, request.general_data, base)
        report.mitigation, report.mitigation_notes = found.commands, found.notes
    return report


def _pairs_eval(request: EvalRequest, target: Target, progress: Callable[[str], None]) -> EvalReport:
    from lorawiz.data.formats import ConvertOptions
    from lorawiz.eval.preference import check_pairs_request, run_pairs_eval

    check_pairs_request(request)
    path, opts = data_path(request.data), ConvertOptions(preference=True)
    total = counted(path, "--data", opts)
    rows = rows_at(path, sample_positions(total, request.max_samples), opts)
    return run_pairs_eval(request, target, rows, total, run_config_of(target), progress)


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
        free_memory()
    progress(f"loading {target.path}")
    yield "fine_tuned", load_model(target, dtype, device=device), load_tokenizer_for(target)
