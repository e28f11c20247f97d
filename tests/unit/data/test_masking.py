"""Chat-template masking (lorawiz/data/masking.py): the loss covers the assistant's answers and nothing else."""

from __future__ import annotations

import pytest

from lorawiz.data.masking import IGNORE_INDEX, show_example, tokenize_rows


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from lorawiz.builtin import resolve_builtin

    return AutoTokenizer.from_pretrained(resolve_builtin("builtin:tiny"))


def trained_text(tokenizer, example) -> str:
    return "".join(token for token, trained in show_example(tokenizer, example) if trained)


def test_only_assistant_answers_and_their_end_markers_are_trained(tokenizer):
    row = {"messages": [{"role": "system", "content": "Classify the report."},
                        {"role": "user", "content": "smoke from a house"}, {"role": "assistant", "content": "fire"},
                        {"role": "user", "content": "and the river?"}, {"role": "assistant", "content": "flood"}]}
    data = tokenize_rows(tokenizer, [row], 512)
    example = data.examples[0]
    assert trained_text(tokenizer, example) == "fire<|im_end|>flood<|im_end|>"
    assert len(example["input_ids"]) == len(example["labels"])
    assert data.trained_tokens == sum(1 for label in example["labels"] if label != IGNORE_INDEX)


def test_a_turn_with_weight_zero_is_not_trained(tokenizer):
    row = {"messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "fire", "weight": 0},
                        {"role": "user", "content": "q2"}, {"role": "assistant", "content": "flood"}]}
    assert trained_text(tokenizer, tokenize_rows(tokenizer, [row], 512).examples[0]) == "flood<|im_end|>"


def test_truncation_is_counted_and_rows_without_answer_tokens_are_dropped(tokenizer):
    long_prompt = {"messages": [{"role": "user", "content": "word " * 300}, {"role": "assistant", "content": "fire"}]}
    short = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "medical"}]}
    data = tokenize_rows(tokenizer, [long_prompt, short], 64)
    assert (data.rows, data.truncated, data.dropped, len(data.examples)) == (2, 1, 1, 1)
    assert all(len(e["input_ids"]) <= 64 for e in data.examples)


def test_plain_text_rows_are_trained_whole(tokenizer):
    example = tokenize_rows(tokenizer, [{"text": "the river is rising"}], 64).examples[0]
    assert IGNORE_INDEX not in example["labels"]
