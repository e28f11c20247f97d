"""`lorawiz eval` of a sequence-classification model (`head: sequence`): each row's prompt, tokenised as training
tokenised it (the chat template up to the assistant's turn), scored in one forward pass; the label with the highest
score is the prediction, so nothing is generated and no label has to be read out of text. Accuracy, macro-F1,
per-class scores and the confusion matrix come from lorawiz.eval.metrics, as for generated labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lorawiz.errors import LorawizError
from lorawiz.eval.metrics import classification_report
from lorawiz.eval.report import AS_GIVEN, EvalReport, ModelResult
from lorawiz.models import Target, eval_dtype_and_device, load_model, load_tokenizer_for

NOT_FOR_A_HEAD = (("--general-data", "general_data"), ("--lm-eval", "lm_eval"),
                  ("--prompt-template", "prompt_template"))


def check_head_request(request: Any, target: Target) -> None:
    """What a generating model's evaluation offers that a head cannot take: refused, never silently skipped."""
    for flag, name in NOT_FOR_A_HEAD:
        if getattr(request, name):
            raise LorawizError(f"{flag}: {target.path} is a classifier (a sequence head), which writes no text.",
                               hint=f"Drop {flag}: a head is scored on its labels only.")
    if request.compare_base:
        raise LorawizError(f"--compare-base: {target.path} is a sequence head that training created, so the base "
                           "model has no trained head to compare.", hint="Drop --compare-base.")


def run_head_eval(request: Any, target: Target, labels: list[str], rows: Sequence[dict], total: int,
                  progress: Callable[[str], None]) -> EvalReport:
    from lorawiz.data.rows import split_answer

    golds = [split_answer(row, f"--data row {i + 1}")[1] for i, row in enumerate(rows)]
    for i, gold in enumerate(golds):
        if gold not in labels:
            raise LorawizError(f'--data row {i + 1}: the answer "{gold[:80]}" is not one of the model\'s labels '
                               f'({", ".join(labels)}).', hint="Fix the row, or evaluate on data of the same labels.")
    dtype, device = eval_dtype_and_device()
    progress(f"loading {target.base or target.path}" + (f" with the adapter {target.path}" if target.is_adapter
                                                        else ""))
    model = load_model(target, dtype, device=device)
    tokenizer = load_tokenizer_for(target)
    progress(f"scoring {len(rows):,} rows with the sequence head")
    predicted = [labels[i] for i in predict(model, tokenizer, rows, request.batch_size)]
    result = ModelResult(classification={AS_GIVEN: classification_report(golds, predicted, labels)},
                         extraction={AS_GIVEN: {"head": len(rows)}})
    report = EvalReport(target, None, request.data, len(rows), total, "classification", "the model's sequence head",
                        labels, {"fine_tuned": result}, [], min_f1=request.min_f1)
    report.notes.append("a sequence head: each row scored in one forward pass, the label of the highest score "
                        "taken; the base model has no trained head, so it is not compared")
    return report


def prompt_ids(tokenizer: Any, rows: Sequence[dict]) -> list[list[int]]:
    """Each row's prompt tokens: those before its answer, as lorawiz.data.masking tokenises a row for training."""
    from lorawiz.data.masking import encode_rows, prompt_length

    return [[int(token) for token in ids[:prompt_length(labels)]] for ids, labels in encode_rows(tokenizer, rows)]


def predict(model: Any, tokenizer: Any, rows: Sequence[dict], batch_size: int) -> list[int]:
    """The index of the highest-scoring label for each row, in batches padded to their longest prompt."""
    import torch

    device = next(model.parameters()).device
    found: list[int] = []
    encoded = prompt_ids(tokenizer, rows)
    for start in range(0, len(encoded), batch_size):
        batch = tokenizer.pad({"input_ids": encoded[start:start + batch_size]}, return_tensors="pt")
        with torch.no_grad():
            logits = model(input_ids=batch["input_ids"].to(device),
                           attention_mask=batch["attention_mask"].to(device)).logits
        found += [int(i) for i in logits.argmax(-1).tolist()]
    return found
