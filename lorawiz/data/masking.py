"""Chat-template masking: canonical rows -> token ids and labels, with the loss on the assistant's answers only.

The mask comes from rendering each conversation with the model's chat template twice per assistant turn: the
conversation up to the turn with the generation prompt, and up to the end of the turn. The characters between
the two are the answer and its end-of-turn marker, the tokens the model learns to produce. This needs no
`{% generation %}` markers in the template, so it works for the templates real models ship. A template that
rewrites earlier turns (so the prefixes do not line up) falls back to finding the answer text itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lorawiz.builtin.tokenizer import CHATML_TEMPLATE
from lorawiz.errors import LorawizError

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


def render_rows(tokenizer: Any, rows: Sequence[Mapping[str, Any]], assistant_only: bool = True
                ) -> list[tuple[str, list[tuple[int, int]]]]:
    """(text, trained character spans) of each canonical row: the chat template applied to the whole batch at
    once (transformers' batched apply_chat_template: its per-call work is paid once per batch, not per row)."""
    out: list[Any] = [None] * len(rows)
    chats = []  # (position, messages, trained turns)
    for k, row in enumerate(rows):
        if "messages" in row:
            messages = list(row["messages"])
            chats.append((k, messages, _trained_turns(messages)))
        else:
            text = (tokenizer.bos_token or "") + str(row["text"]) + (tokenizer.eos_token or "")
            out[k] = (text, [(0, len(text))])
    texts = _render_many(tokenizer, [messages for _, messages, _ in chats], False)
    if not assistant_only:
        for (k, _, _), text in zip(chats, texts, strict=True):
            out[k] = (text, [(0, len(text))])
        return out
    prefix_asks, upto_asks = [], []
    for _, messages, turns in chats:
        for i in turns:
            prefix_asks.append(messages[:i])
            if i != len(messages) - 1:  # up to the last turn is the whole text
                upto_asks.append(messages[: i + 1])
    prefixes = iter(_render_many(tokenizer, prefix_asks, True))
    uptos = iter(_render_many(tokenizer, upto_asks, False))
    for (k, messages, turns), text in zip(chats, texts, strict=True):
        out[k] = (text, _spans(text, messages, turns, prefixes, uptos))
    return out


def _trained_turns(messages: Sequence[Mapping[str, Any]]) -> list[int]:
    return [i for i, message in enumerate(messages)
            if message.get("role") == "assistant" and message.get("weight", 1) != 0]


def _render_many(tokenizer: Any, conversations: list[list[Mapping[str, Any]]], generation_prompt: bool) -> list[str]:
    if not conversations:
        return []
    return list(tokenizer.apply_chat_template(conversations, tokenize=False, add_generation_prompt=generation_prompt))


def _spans(text: str, messages: Sequence[Mapping[str, Any]], turns: list[int], prefixes: Iterator[str],
           uptos: Iterator[str]) -> list[tuple[int, int]]:
    """The spans of one conversation, from its renders up to each trained turn (with and without that turn).

    The characters between the two renders are the answer and its end-of-turn marker. A template that rewrites
    earlier turns (so the renders do not line up) falls back to finding the answer text itself.
    """
    spans: list[tuple[int, int]] = []
    cursor = 0
    for i in turns:
        prefix = next(prefixes)
        upto = text if i == len(messages) - 1 else next(uptos)
        if text.startswith(upto) and upto.startswith(prefix) and len(prefix) >= cursor:
            end = len(upto.rstrip())  # the answer and its end-of-turn marker, not the newline after it
            spans.append((len(prefix), max(end, len(prefix))))
            cursor = len(upto)
            continue
        content = messages[i].get("content") or ""
        start = text.find(content, cursor) if content else -1
        if start < 0:
            continue  # the template dropped this turn (e.g. reasoning removed from history): nothing to train
        spans.append((start, start + len(content)))
        cursor = start + len(content)
    return spans


def _label(encoding: Any, spans: list[tuple[int, int]]) -> Any:
    """(ids, labels) as int32 numpy arrays; a token's label is its id where the token holds a character of a
    trained span, else IGNORE_INDEX. Tokens are in text order, so a span's tokens run from the one holding its
    first covered character to the one holding its last: two `char_to_token` lookups per span rather than every
    token's offsets in Python."""
    import numpy as np

    ids = np.asarray(encoding.ids, dtype=np.int32)
    labels = np.full(len(ids), IGNORE_INDEX, dtype=np.int32)
    for start, end in spans:
        first = next((t for c in range(start, end) if (t := encoding.char_to_token(c)) is not None), None)
        if first is None:
            continue  # no token holds a character of the span (whitespace the tokenizer drops)
        last = next(t for c in range(end - 1, start - 1, -1) if (t := encoding.char_to_token(c)) is not None)
        labels[first:last + 1] = ids[first:last + 1]
    return ids, labels


def prompt_length(labels: Sequence[int]) -> int:
    """How many tokens of a row come before its first trained one: its prompt (all of it when nothing is trained)."""
    return next((i for i, label in enumerate(labels) if label != IGNORE_INDEX), len(labels))


def encode_rows(tokenizer: Any, rows: Sequence[Mapping[str, Any]], assistant_only: bool = True) -> list[tuple]:
    """(input_ids, labels) of each row, untruncated, as int32 numpy arrays: one batched tokenizer call.

    The fast tokenizer is called through its Rust backend with truncation and padding off, as transformers does
    inside `tokenizer(...)`, without building Python lists of the ids and offsets it does not need.
    """
    rendered = render_rows(tokenizer, rows, assistant_only)
    texts = [text for text, _ in rendered]
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        if backend.truncation is not None:
            backend.no_truncation()
        if backend.padding is not None:
            backend.no_padding()
        encodings = backend.encode_batch(texts, add_special_tokens=False)
    else:
        encodings = tokenizer(texts, add_special_tokens=False, return_attention_mask=False).encodings
    if encodings is None:
        raise LorawizError(f"{type(tokenizer).__name__} is a slow (Python) tokenizer: lorawiz needs a fast one to "
                           "mask the loss.", hint="Give a model folder with tokenizer.json.")
    return [_label(encoding, spans) for encoding, (_, spans) in zip(encodings, rendered, strict=True)]


def tokenize_rows(tokenizer: Any, rows: Iterable[Mapping[str, Any]], max_seq_length: int,
                  assistant_only: bool = True) -> TokenizedData:
    """Token ids and labels for each row, truncated at max_seq_length; rows left with nothing to learn dropped.

    In memory, for a few thousand rows (eval); training data goes through lorawiz.data.tokenize (Arrow, cached),
    which encodes with the same `encode_rows`.
    """
    out = TokenizedData()
    batch: list[Mapping[str, Any]] = []

    def flush() -> None:
        for ids, labels in encode_rows(tokenizer, batch, assistant_only):
            out.total_tokens += len(ids)
            if len(ids) > max_seq_length:
                out.truncated += 1
                ids, labels = ids[:max_seq_length], labels[:max_seq_length]
            trained = int((labels != IGNORE_INDEX).sum())
            if trained == 0:
                out.dropped += 1
                continue
            out.trained_tokens += trained
            out.examples.append({"input_ids": ids.tolist(), "labels": labels.tolist()})
        batch.clear()

    for row in rows:
        out.rows += 1
        batch.append(row)
        if len(batch) >= BATCH_ROWS:
            flush()
    if batch:
        flush()
    return out


def show_example(tokenizer: Any, example: Mapping[str, list[int]]) -> list[tuple[str, bool]]:
    """The first example as (token text, trained?) pairs, for `--dry-run`."""
    return [(tokenizer.decode([token]), label != IGNORE_INDEX)
            for token, label in zip(example["input_ids"], example["labels"], strict=True)]
