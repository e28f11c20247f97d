"""Chat-template masking: canonical rows -> token ids and labels, with the loss on the assistant's answers only.

The mask comes from rendering each conversation with the model's chat template twice per assistant turn: the
conversation up to the turn with the generation prompt, and up to the end of the turn. The characters between
the two are the answer and its end-of-turn marker, the tokens the model learns to produce. This needs no
`{% generation %}` markers in the template, so it works for the templates real models ship. A template that
rewrites earlier turns (so the prefixes do not line up) falls back to finding the answer text itself.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lorawiz.builtin.tokenizer import CHATML_TEMPLATE

IGNORE_INDEX = -100  # labels the loss skips (PyTorch cross_entropy's ignore_index)
BATCH_ROWS = 512


@dataclass
class TokenizedData:
    examples: list[dict[str, list[int]]] = field(default_factory=list)
    rows: int = 0
    truncated: int = 0  # rows cut at max_seq_length
    dropped: int = 0  # rows with no trained token left after truncation
    trained_tokens: int = 0
    total_tokens: int = 0


def ensure_chat_template(tokenizer: Any) -> bool:
    """Give a tokenizer without a chat template the ChatML one; True when it had to."""
    if getattr(tokenizer, "chat_template", None):
        return False
    tokenizer.chat_template = CHATML_TEMPLATE
    return True


def answer_spans(tokenizer: Any, messages: list[Mapping[str, Any]], assistant_only: bool = True
                 ) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans the loss covers."""
    text = tokenizer.apply_chat_template(list(messages), tokenize=False)
    if not assistant_only:
        return text, [(0, len(text))]
    spans = []
    cursor = 0
    for i, message in enumerate(messages):
        if message.get("role") != "assistant" or message.get("weight", 1) == 0:
            continue
        prefix = tokenizer.apply_chat_template(list(messages[:i]), tokenize=False, add_generation_prompt=True)
        upto = tokenizer.apply_chat_template(list(messages[: i + 1]), tokenize=False)
        if text.startswith(upto) and upto.startswith(prefix) and len(prefix) >= cursor:
            end = len(upto.rstrip())  # the answer and its end-of-turn marker, not the newline after it
            spans.append((len(prefix), max(end, len(prefix))))
            cursor = len(upto)
            continue
        content = message.get("content") or ""
        start = text.find(content, cursor) if content else -1
        if start < 0:
            continue  # the template dropped this turn (e.g. reasoning removed from history): nothing to train
        spans.append((start, start + len(content)))
        cursor = start + len(content)
    return text, spans


def _label(offsets: Sequence[tuple[int, int]], ids: Sequence[int], spans: list[tuple[int, int]]) -> list[int]:
    starts = [s for s, _ in spans]
    labels = []
    for token, (begin, end) in zip(ids, offsets, strict=True):
        k = bisect.bisect_right(starts, begin) - 1
        inside = k >= 0 and begin < spans[k][1] and end > spans[k][0] and end > begin
        labels.append(token if inside else IGNORE_INDEX)
    return labels


def tokenize_rows(tokenizer: Any, rows: Iterable[Mapping[str, Any]], max_seq_length: int,
                  assistant_only: bool = True) -> TokenizedData:
    """Token ids and labels for each row, truncated at max_seq_length; rows left with nothing to learn dropped."""
    out = TokenizedData()
    batch: list[tuple[str, list[tuple[int, int]]]] = []

    def flush() -> None:
        texts = [text for text, _ in batch]
        encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True,
                            return_attention_mask=False)
        for (_, spans), ids, offsets in zip(batch, encoded["input_ids"], encoded["offset_mapping"], strict=True):
            labels = _label(offsets, ids, spans)
            out.total_tokens += len(ids)
            if len(ids) > max_seq_length:
                out.truncated += 1
                ids, labels = ids[:max_seq_length], labels[:max_seq_length]
            trained = sum(1 for label in labels if label != IGNORE_INDEX)
            if trained == 0:
                out.dropped += 1
                continue
            out.trained_tokens += trained
            out.examples.append({"input_ids": list(ids), "labels": labels})
        batch.clear()

    for row in rows:
        out.rows += 1
        if "messages" in row:
            batch.append(answer_spans(tokenizer, row["messages"], assistant_only))
        else:
            text = (tokenizer.bos_token or "") + str(row["text"]) + (tokenizer.eos_token or "")
            batch.append((text, [(0, len(text))]))
        if len(batch) >= BATCH_ROWS:
            flush()
    if batch:
        flush()
    return out


def show_example(tokenizer: Any, example: Mapping[str, list[int]]) -> list[tuple[str, bool]]:
    """The first example as (token text, trained?) pairs, for `--dry-run`."""
    return [(tokenizer.decode([token]), label != IGNORE_INDEX)
            for token, label in zip(example["input_ids"], example["labels"], strict=True)]
