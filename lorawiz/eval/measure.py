"""Measuring one loaded model for `lorawiz eval`, the same way for every model: loss on the data, perplexity on
general data, greedy answers (and the labels read from them for classification) and lm-eval tasks.
"""

from __future__ import annotations

import gc
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lorawiz.eval.lm_harness import run_tasks
from lorawiz.eval.metrics import classification_report, extract_label
from lorawiz.eval.plan import EvalPlan
from lorawiz.eval.report import AS_GIVEN, WITH_LABELS, YOUR_TEMPLATE, ModelResult
from lorawiz.eval.scoring import generate_answers, max_seq_length_for, mean_loss_view

LABEL_ANSWER_MARGIN = 24  # tokens past the longest label: room for "The category is: ..." from a base model


def measure_model(plan: EvalPlan, name: str, model: Any, tokenizer: Any, variants: Sequence[str],
                  progress: Callable[[str], None]) -> ModelResult:
    """Everything the plan asks of one model; `variants`: the classification prompts it is asked with (the base
    also with the label list and --prompt-template, a fine-tuned model as given)."""
    request, result, evaluated = plan.request, ModelResult(), plan.evaluated
    max_seq_length = max_seq_length_for(plan.run_config, tokenizer, model)
    progress(f"{name}: loss on {evaluated:,} rows")
    view = _loss_view(plan.data_path, plan.chosen, tokenizer, plan.run_config, max_seq_length, assistant_only=True)
    result.loss = mean_loss_view(model, tokenizer, view, max_seq_length)
    if plan.general is not None:
        progress(f"{name}: perplexity on {plan.general_rows:,} rows of general data")
        view = _loss_view(*plan.general, tokenizer, plan.run_config, max_seq_length, assistant_only=False)
        result.general = mean_loss_view(model, tokenizer, view, max_seq_length)
    prompts, sample_rows, labels = plan.prompts, plan.sample_rows, plan.labels
    if plan.task == "classification":
        budget = max(len(tokenizer(label, add_special_tokens=False)["input_ids"]) for label in labels)
        ordered = [prompts[i] for i in range(evaluated)]
        for variant in variants:
            progress(f"{name}: answering {evaluated:,} rows (prompt {variant})")
            asked = (ordered if variant == AS_GIVEN else
                     [_with_label_list(p, labels) for p in ordered] if variant == WITH_LABELS else
                     [_with_template(p, request.prompt_template, labels) for p in ordered])
            answers = generate_answers(model, tokenizer, asked, budget + LABEL_ANSWER_MARGIN, request.batch_size)
            found = [extract_label(_without_reasoning(answer), labels) for answer in answers]
            result.classification[variant] = classification_report(plan.golds, [f[0] for f in found], labels)
            result.extraction[variant] = dict(Counter(how for _, how in found))
            if variant == AS_GIVEN:
                result.answers = {i: answers[i] for i in sample_rows}
    elif sample_rows and any(prompts[i] for i in sample_rows):
        picked = [i for i in sample_rows if prompts[i]]
        progress(f"{name}: answering {len(picked)} sample prompts")
        answers = generate_answers(model, tokenizer, [prompts[i] for i in picked], request.max_new_tokens,
                                   request.batch_size)
        result.answers = dict(zip(picked, answers, strict=True))
    if plan.harness:
        progress(f"{name}: lm-eval {', '.join(plan.harness.names)}")
        result.lm_eval = run_tasks(plan.harness, model, tokenizer, request.max_samples, request.batch_size)
    return result


def base_variants(request: Any) -> list[str]:
    """The prompts a base model is asked with on classification data: as given, with the label list, and with the
    user's template."""
    return [AS_GIVEN, WITH_LABELS] + ([YOUR_TEMPLATE] if request.prompt_template else [])


def free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


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
