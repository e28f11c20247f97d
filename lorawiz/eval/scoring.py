"""Running a model for evaluation: mean token loss, greedy generation, and label accuracy by answer scoring.

For label scoring each category's answer is scored after the prompt (the chat template with
add_generation_prompt=True) and the most likely one is the prediction: no sampling involved; `lorawiz demo`
measures before and after training with it. `lorawiz eval` (lorawiz.eval.run) uses the loss and generation here.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lorawiz.data.masking import IGNORE_INDEX, tokenize_rows
from lorawiz.data.rows import split_answer
from lorawiz.errors import LorawizError
from lorawiz.eval.metrics import perplexity

DEFAULT_MAX_SEQ_LENGTH = 4096  # when neither the run's config nor the model says less

# Tokens a batch of the loss pass may hold: with a 128k vocabulary the logits of 8k tokens take 2 GiB in bf16.
LOSS_BATCH_TOKENS = 8192
# End-of-turn markers of common chat templates (ChatML, Llama 3, Gemma, Phi-3): generation stops at any of them.
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>", "<|eom_id|>")


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


@dataclass
class LossResult:
    loss: float  # mean loss per scored token, in nats
    perplexity: float
    tokens: int  # tokens scored
    rows: int
    truncated: int  # rows cut at max_seq_length

    def as_dict(self) -> dict[str, float | int]:
        return dict(vars(self))


def mean_loss(model: Any, tokenizer: Any, rows: Sequence[Mapping[str, Any]], max_seq_length: int,
              assistant_only: bool = True, batch_tokens: int = LOSS_BATCH_TOKENS) -> LossResult:
    """The model's mean loss per token over `rows`, with the same tokens scored as in training.

    assistant_only=True scores the assistant's answers (the training loss mask); False scores every token (the
    perplexity of general text). The mean is over tokens, not over batches, so it does not depend on batching.
    """
    data = tokenize_rows(tokenizer, rows, max_seq_length, assistant_only)
    if not data.examples:
        _nothing_to_score(data.rows, max_seq_length)
    examples = sorted(data.examples, key=lambda e: len(e["input_ids"]), reverse=True)
    widths = [len(example["input_ids"]) for example in examples]
    batches = ((examples[first:last], widths[first]) for first, last in _batch_bounds(widths, batch_tokens))
    loss, count = _score(model, tokenizer, batches)
    return LossResult(loss, perplexity(loss), count, data.rows, data.truncated)


def mean_loss_view(model: Any, tokenizer: Any, view: Any, max_seq_length: int,
                   batch_tokens: int = LOSS_BATCH_TOKENS) -> LossResult:
    """`mean_loss` over a tokenised view (lorawiz.data.tokenize.View, memory-mapped Arrow): the same batches,
    longest rows first, read a batch at a time rather than held as Python lists."""
    import numpy as np

    if not view.rows:
        _nothing_to_score(view.rows + view.dropped, max_seq_length)
    lengths = np.asarray(view.lengths)
    order = np.argsort(-lengths, kind="stable")  # as sorted(..., reverse=True): ties keep the file order
    widths = lengths[order].tolist()

    def batches() -> Any:
        for first, last in _batch_bounds(widths, batch_tokens):
            part = view.dataset.select(order[first:last], keep_in_memory=True)[:]
            yield [{"input_ids": ids, "labels": labels} for ids, labels in zip(part["input_ids"], part["labels"],
                                                                              strict=True)], widths[first]

    loss, count = _score(model, tokenizer, batches())
    return LossResult(loss, perplexity(loss), count, view.rows + view.dropped, view.truncated)


def max_seq_length_for(run_config: Any, tokenizer: Any, model: Any) -> int:
    """The length rows are scored at: the run's max_seq_length, else the smallest of DEFAULT_MAX_SEQ_LENGTH, the
    model's positions and the tokenizer's limit."""
    configured = run_config.data.max_seq_length if run_config is not None else None
    if isinstance(configured, int) and configured > 0:
        return configured
    limits = [DEFAULT_MAX_SEQ_LENGTH, getattr(getattr(model, "config", None), "max_position_embeddings", None),
              getattr(tokenizer, "model_max_length", None)]
    return min(limit for limit in limits if isinstance(limit, int) and limit > 0)


def _nothing_to_score(rows: int, max_seq_length: int) -> None:
    raise LorawizError(f"none of the {rows} rows has a token to score (no assistant answer left after "
                       f"truncation at {max_seq_length} tokens).", hint="Check the data's assistant turns.")


def _batch_bounds(widths: Sequence[int], batch_tokens: int) -> Any:
    """(first, last) of each batch over rows sorted longest first: as many rows as fit batch_tokens."""
    first = 0
    while first < len(widths):
        size = max(1, batch_tokens // widths[first])  # the longest of the batch: sorted longest first
        yield first, min(first + size, len(widths))
        first += size


def _score(model: Any, tokenizer: Any, batches: Any) -> tuple[float, int]:
    """Summed token loss over (examples, width) batches, and the tokens it covers: (mean loss, tokens)."""
    import torch

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = _device_of(model)
    total, count = 0.0, 0
    with torch.inference_mode():
        for batch, width in batches:
            input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
            attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, example in enumerate(batch):
                length = len(example["input_ids"])
                input_ids[row, :length] = torch.tensor(example["input_ids"])
                labels[row, :length] = torch.tensor(example["labels"])
                attention_mask[row, :length] = 1
            logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
            targets = labels[:, 1:].to(logits.device)
            for row in range(len(batch)):  # one row at a time: the float copy of the logits stays small
                total += float(torch.nn.functional.cross_entropy(
                    logits[row, :-1].float(), targets[row], ignore_index=IGNORE_INDEX, reduction="sum"))
            count += int((targets != IGNORE_INDEX).sum())
    return total / count, count


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every token that ends an answer: the model's and tokenizer's end-of-sequence and known end-of-turn marks."""
    ids: list[int] = []
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids += configured if isinstance(configured, list) else [configured]
    ids.append(tokenizer.eos_token_id)
    vocab = tokenizer.get_vocab()
    ids += [vocab[token] for token in END_OF_TURN if token in vocab]
    return sorted({i for i in ids if isinstance(i, int)})


def generate_answers(model: Any, tokenizer: Any, prompts: Sequence[Sequence[Mapping[str, Any]]],
                     max_new_tokens: int, batch_size: int = 8) -> list[str]:
    """The greedy answer to each prompt (a list of chat turns), through the chat template, batched left-padded."""
    import torch

    texts = [render_chat(tokenizer, prompt, add_generation_prompt=True) for prompt in prompts]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # like lengths together: less padding
    answers = [""] * len(texts)
    stop = stop_token_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop[0]
    device = _device_of(model)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        with torch.inference_mode():
            for first in range(0, len(order), batch_size):
                chosen = order[first:first + batch_size]
                encoded = tokenizer([texts[i] for i in chosen], add_special_tokens=False, padding=True,
                                    return_tensors="pt").to(device)
                output = model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False,
                                        temperature=None, top_p=None, top_k=None, eos_token_id=stop,
                                        pad_token_id=pad_id)
                new = output[:, encoded["input_ids"].shape[1]:]
                for i, tokens in zip(chosen, new, strict=True):
                    answers[i] = tokenizer.decode(tokens, skip_special_tokens=True).strip()
    finally:
        tokenizer.padding_side = side
    return answers
