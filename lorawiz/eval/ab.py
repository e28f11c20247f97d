"""`lorawiz eval RUN_A --against RUN_B`: two fine-tuned models on the same rows, with the tables of base vs
fine-tuned, each side named by its folder, and which side is better on each metric.

Two adapters of one base share it: the base loads once with both adapters (PEFT's load_adapter under the names A and
B) and set_adapter switches between them. A merged model is its own model, loaded when its turn comes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from lorawiz.errors import LorawizError, first_line
from lorawiz.eval.measure import free_memory, measure_model
from lorawiz.eval.plan import EvalRequest, data_path, holds_pairs, plan_eval, run_config_of, run_file_of
from lorawiz.eval.report import AS_GIVEN, EvalReport, Side, sample_record
from lorawiz.models import (
    Target,
    check_weight_files,
    describe_target,
    eval_dtype_and_device,
    head_labels,
    load_model,
    load_tokenizer_for,
    run_setting,
)

# Flags of base-vs-fine-tuned that have no meaning between two fine-tuned models: (flag, request field, why)
NOT_WITH_AGAINST = (
    ("--base", "base", "each side's base comes from its own adapter_config.json"),
    ("--compare-base", "compare_base", "--against compares RUN_A with RUN_B, not either with its base"),
    ("--prompt-template", "prompt_template", "it is a better prompt for the base model, which --against does not "
                                             "measure"),
    ("--min-f1", "min_f1", "it is a bar for one model, and --against compares two"),
)


def check_ab_request(request: EvalRequest) -> None:
    """The options that make no sense with --against: refused, never silently ignored."""
    for flag, name, why in NOT_WITH_AGAINST:
        value = getattr(request, name)
        if value is not None:
            shown = "--no-compare-base" if name == "compare_base" and value is False else flag
            raise LorawizError(f"{shown} does not go with --against: {why}.",
                               hint=f"Drop {shown}, or run lorawiz eval on one model without --against.")


def check_sides(a: Target, b: Target) -> None:
    """Two different models, neither a sequence head, and two adapters only of the same base."""
    if Path(a.path).expanduser().resolve() == Path(b.path).expanduser().resolve():
        raise LorawizError(f"--against {b.path}: the same model as TARGET.", hint="Give --against another run or "
                                                                                  "model folder.")
    for side in (a, b):
        if head_labels(side) is not None:
            raise LorawizError(f"--against: {side.path} is a classifier (a sequence head), which --against does not "
                               "compare yet.", hint="Evaluate each classifier alone: lorawiz eval RUN --data FILE.")
    if a.is_adapter and b.is_adapter and not same_base(a, b):
        raise LorawizError(f"--against: {a.path} is an adapter of {a.base} and {b.path} one of {b.base}: two "
                           "adapters are compared on their one shared base.",
                           hint="Compare adapters trained from the same base model (base_model_name_or_path in "
                                "adapter_config.json).")


def same_base(a: Target, b: Target) -> bool:
    """The same model in both adapter_config.json files (the same string, or paths to one folder), or in both
    runs' lorawiz.yaml (model_name_or_path), which also knows a hub id that a config names by its cache path."""
    if _same_model(a.base, b.base):
        return True
    named = []
    for side in (a, b):
        found = run_file_of(side)
        named.append(run_setting(found.parent, "model", "model_name_or_path") if found else None)
    return None not in named and _same_model(*named)


def _same_model(one: str | None, other: str | None) -> bool:
    if one is None or other is None:
        return False
    if one == other:
        return True
    first, second = Path(one).expanduser(), Path(other).expanduser()
    return first.exists() and second.exists() and first.resolve() == second.resolve()


def side_names(a: Target, b: Target) -> dict[str, Side]:
    """Each side named by its folder (run/checkpoint-40 for a checkpoint); more of the path when both are alike."""
    def name(target: Target, parts: int) -> str:
        path = Path(target.path)
        shown = path.parts[-parts:] if path.exists() else (target.path,)
        if path.exists() and path.name.startswith("checkpoint-") and parts == 1:
            shown = path.parts[-2:]
        return "/".join(shown)

    for parts in (1, 2, 3):
        names = name(a, parts), name(b, parts)
        if names[0] != names[1]:
            return {"A": Side(a, names[0]), "B": Side(b, names[1])}
    return {"A": Side(a, f"{name(a, 1)} (A)"), "B": Side(b, f"{name(b, 1)} (B)")}


def run_ab_eval(request: EvalRequest, progress: Callable[[str], None]) -> EvalReport:
    """Measure TARGET (A) and --against (B) the same way, on the same rows; see the module docstring."""
    check_ab_request(request)
    a, b = describe_target(request.target), describe_target(request.against)
    check_sides(a, b)
    if holds_pairs(data_path(request.data)):
        raise LorawizError(f"--against: {request.data} holds preference pairs, which --against does not compare "
                           "yet.", hint="Evaluate each run alone on the pairs, or use --against on conversations.")
    run_config = run_config_of(a) or run_config_of(b)  # the rows are cut and tokenised the same way for both
    plan = plan_eval(request, run_config)
    sides = side_names(a, b)
    report = EvalReport(a, None, request.data, plan.evaluated, plan.total, plan.task, plan.task_source,
                        plan.labels, {}, [], request.general_data, sides=sides)
    report.notes.append(f"A/B: A ({sides['A'].name}) is {a.path}, B ({sides['B'].name}) is {b.path}; each change is "
                        "from A to B")
    for role, model, tokenizer in _side_models(report, progress):
        report.results[role] = measure_model(plan, sides[role].name, model, tokenizer, [AS_GIVEN], progress)
        del model
    if plan.harness:
        report.lm_eval_higher = plan.harness.higher_is_better
    report.samples = [sample_record(plan.rows[i], plan.prompts[i], i, report.results) for i in plan.sample_rows
                      if plan.prompts[i] is not None]
    return report


def _side_models(report: EvalReport, progress: Callable[[str], None]) -> Iterator[tuple[str, Any, Any]]:
    """(role, model, tokenizer) for A, then B: one base holding both adapters, else one model at a time."""
    dtype, device = eval_dtype_and_device()
    a, b = report.sides["A"].target, report.sides["B"].target
    if a.is_adapter and b.is_adapter:
        progress(f"loading {a.base} with the adapters {a.path} (A) and {b.path} (B)")
        model = load_adapters_on_one_base(a, b, dtype, device)
        report.shared_base = {"model": a.base, "adapters": list(model.peft_config)}
        for role, side in (("A", a), ("B", b)):
            model.set_adapter(role)
            yield role, model, load_tokenizer_for(side)
        return
    for role, side in (("A", a), ("B", b)):
        progress(f"loading {side.path}" + (f" on {side.base}" if side.is_adapter else ""))
        model = load_model(side, dtype, device=device)
        yield role, model, load_tokenizer_for(side)
        del model
        free_memory()


def load_adapters_on_one_base(a: Target, b: Target, dtype: str, device: str | None) -> Any:
    """The base of `a` with a's adapter named "A" and b's named "B" (A active), in eval mode."""
    from peft import PeftModel
    from safetensors import SafetensorError

    for side in (a, b):
        check_weight_files(Path(side.path).expanduser())
    model = load_model(Target(a.base, None, False), dtype)  # on the CPU: the adapters join it there, then it moves
    for role, side in (("A", a), ("B", b)):
        try:
            if role == "A":
                model = PeftModel.from_pretrained(model, side.path, adapter_name=role)
            else:
                model.load_adapter(side.path, adapter_name=role)
        except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as exc:
            first = first_line(exc)
            raise LorawizError(f"cannot load the adapter {side.path} on {a.base}: {first}",
                               hint="Check that the folder is a whole adapter of that base model.") from exc
    if device:
        model = model.to(device)
    return model.eval()
