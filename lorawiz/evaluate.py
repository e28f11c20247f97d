"""Evaluation of fine-tuned models: label accuracy by scoring each allowed answer, no sampling involved.

For a classification row the model is asked how likely each category's answer is after the prompt (the chat
template with add_generation_prompt=True); the most likely one is its prediction. `lorawiz demo` measures before
and after training with it, and `lorawiz eval` reuses it.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from lorawiz.errors import LorawizError


def render_chat(tokenizer: Any, messages: Sequence[Mapping[str, Any]], add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)


def tokenize_with_answer(tokenizer: Any, prompt: Sequence[Mapping[str, Any]],
                         answer: str) -> tuple[list[int], int, int]:
    """Token ids of the conversation `prompt` + assistant `answer`, and the span [start, end) of the answer.

    start is where the rendered prompt (with the generation prompt) ends; end is just past the end-of-turn token
    (the first special token after the answer), so the span is what a fine-tune learns to say and nothing more.
    """
    prompt_text = render_chat(tokenizer, prompt, add_generation_prompt=True)
    full_text = render_chat(tokenizer, [*prompt, {"role": "assistant", "content": answer}], add_generation_prompt=False)
    if not full_text.startswith(prompt_text):
        raise LorawizError("the chat template renders the prompt differently once an answer follows it, so the "
                           "answer cannot be told apart from the prompt.",
                           hint="Use a tokenizer whose chat template supports add_generation_prompt.")
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    ids = tokenizer(full_text, add_special_tokens=False)["input_ids"]
    if ids[:len(prompt_ids)] != prompt_ids:  # the tokens merged across the boundary: tokenize the two parts apart
        ids = prompt_ids + tokenizer(full_text[len(prompt_text):], add_special_tokens=False)["input_ids"]
    start = len(prompt_ids)
    special = set(tokenizer.all_special_ids)
    end = next((i + 1 for i in range(start, len(ids)) if ids[i] in special), len(ids))
    return ids, start, end


def split_answer(row: Mapping[str, Any], where: str = "row") -> tuple[list[Mapping[str, Any]], str]:
    """The prompt turns of a canonical chat row and its final assistant answer."""
    messages = row.get("messages") if isinstance(row, Mapping) else None
    if not messages or messages[-1].get("role") != "assistant":
        raise LorawizError(f'{where}: "messages" must end with an assistant turn holding the label.',
                           hint="Give canonical chat rows (lorawiz format converts other shapes).")
    return list(messages[:-1]), str(messages[-1].get("content", "")).strip()


def score_answers(model: Any, tokenizer: Any, prompts: Sequence[Sequence[Mapping[str, Any]]],
                  answers: Sequence[str], batch_size: int = 32) -> list[list[float]]:
    """Log-likelihood of each answer (its tokens and the end-of-turn token) after each prompt: prompts x answers.

    Runs prompts x answers sequences in batches of `batch_size`, left-padded so every answer ends at the last
    position; only the logits of the last few positions are computed where the model supports it.
    """
    import torch

    items = []  # (prompt index, ids, answer start) with ids cut after the end-of-turn token
    for p, prompt in enumerate(prompts):
        for answer in answers:
            ids, start, end = tokenize_with_answer(tokenizer, prompt, answer)
            items.append((p, ids[:end], start))
    scores = [[0.0] * len(answers) for _ in prompts]
    device = _device_of(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    keep_logits = _accepts_logits_to_keep(model)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for first in range(0, len(items), batch_size):
                batch = items[first:first + batch_size]
                for offset, value in enumerate(_score_batch(model, batch, pad_id, device, keep_logits)):
                    index = first + offset
                    scores[batch[offset][0]][index % len(answers)] = value
    finally:
        model.train(was_training)
    return scores


def _score_batch(model: Any, batch: list[tuple[int, list[int], int]], pad_id: int, device: Any,
                 keep_logits: bool) -> list[float]:
    import torch

    width = max(len(ids) for _, ids, _ in batch)
    answer_width = max(len(ids) - start for _, ids, start in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (_, ids, _) in enumerate(batch):
        input_ids[row, width - len(ids):] = torch.tensor(ids)
        attention_mask[row, width - len(ids):] = 1
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    kwargs = {"logits_to_keep": answer_width + 1} if keep_logits else {}
    logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                   position_ids=position_ids.to(device), **kwargs).logits
    logits = logits[:, -(answer_width + 1):-1].float()  # position width-1-k predicts the token k from the end
    logprobs = torch.log_softmax(logits, dim=-1)
    targets = input_ids[:, -answer_width:].to(logprobs.device)
    token_scores = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    values = []
    for row, (_, ids, start) in enumerate(batch):
        length = len(ids) - start
        values.append(float(token_scores[row, answer_width - length:].sum()))
    return values


def predict_labels(model: Any, tokenizer: Any, rows: Sequence[Mapping[str, Any]], categories: Sequence[str],
                   batch_size: int = 32) -> list[str]:
    """The most likely category for each row (its final assistant turn, if any, is ignored)."""
    prompts = [split_answer(row, f"row {i + 1}")[0] for i, row in enumerate(rows)]
    scores = score_answers(model, tokenizer, prompts, categories, batch_size)
    return [categories[max(range(len(categories)), key=row.__getitem__)] for row in scores]


def classification_accuracy(model: Any, tokenizer: Any, rows: Sequence[Mapping[str, Any]],
                            categories: Sequence[str], batch_size: int = 32) -> float:
    """Share of rows whose final assistant turn (the label) is the category the model finds most likely."""
    if not rows:
        raise LorawizError("no rows to evaluate.", hint="Give a validation file with at least one row.")
    gold = []
    for i, row in enumerate(rows):
        label = split_answer(row, f"row {i + 1}")[1]
        if label not in categories:
            raise LorawizError(f'row {i + 1}: the label "{label}" is not one of the categories '
                               f'({", ".join(categories)}).', hint="Fix the row, or add the label to the categories.")
        gold.append(label)
    predicted = predict_labels(model, tokenizer, rows, categories, batch_size)
    return sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(rows)


def _device_of(model: Any) -> Any:
    device = getattr(model, "device", None)
    return device if device is not None else next(model.parameters()).device


def _accepts_logits_to_keep(model: Any) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters
