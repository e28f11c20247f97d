"""A sequence head's data: the prompt and the label read off the rows tokenised for generation, unknown labels
refused with their counts, the classes from the data when not given, and the Trainer's metrics."""

from __future__ import annotations

import numpy as np
import pytest

from lorawiz.errors import LorawizError
from lorawiz.train.head import compute_metrics, head_dataset, split_rows


def rows(answers):
    return [{"messages": [{"role": "user", "content": f"report {i}: smoke on floor {i}"},
                          {"role": "assistant", "content": answer}]} for i, answer in enumerate(answers)]


@pytest.fixture(scope="module")
def tokenizer():
    from lorawiz.builtin import local_path
    from lorawiz.data.masking import ensure_chat_template
    from lorawiz.data.tokens import load_tokenizer

    loaded = load_tokenizer(local_path("builtin:tiny"))
    ensure_chat_template(loaded)
    return loaded


def tokenised(tokenizer, answers):
    from datasets import Dataset

    from lorawiz.data.masking import encode_rows

    encoded = encode_rows(tokenizer, rows(answers))
    return Dataset.from_dict({"input_ids": [list(map(int, ids)) for ids, _ in encoded],
                              "labels": [list(map(int, labels)) for _, labels in encoded]})


def test_the_prompt_is_every_token_before_the_answer_and_the_label_its_text(tokenizer):
    from lorawiz.data.masking import encode_rows

    data = tokenised(tokenizer, ["fire", "medical"])
    split = split_rows(data[:], tokenizer)
    assert split["answer"] == ["fire", "medical"]
    expected = tokenizer.apply_chat_template(rows(["fire"])[0]["messages"][:1], add_generation_prompt=True,
                                             tokenize=False)
    assert tokenizer.decode(split["input_ids"][0]) == expected  # the template up to the assistant's turn
    ids, labels = encode_rows(tokenizer, rows(["fire"]))[0]
    assert len(split["input_ids"][0]) == int(np.argmax(labels != -100))


def test_head_rows_carry_the_label_index_and_unknown_answers_are_refused(tokenizer):
    data = tokenised(tokenizer, ["fire", "medical", "fire"])
    head = head_dataset(data, tokenizer, ["medical", "fire"], "training")
    assert head["labels"] == [1, 0, 1] and head.column_names == ["input_ids", "labels"]
    with pytest.raises(LorawizError, match=r"outside the set \['fire'\]: 'medical' \(1 rows\)"):
        head_dataset(data, tokenizer, ["fire"], "validation")


def test_the_labels_come_from_the_training_data_when_not_set(tokenizer):
    from lorawiz.config.resolve import resolve_config
    from lorawiz.train.head import fill_labels

    class File:
        dataset = tokenised(tokenizer, ["medical", "fire", "fire", "flood"])

    resolved = resolve_config(None, flags={"task": "classification", "head": "sequence"}, flag_names={})
    filled = fill_labels(resolved, File, tokenizer)
    assert filled.config.data.labels == ["fire", "flood", "medical"]
    assert filled.source("labels").reason == "the training data's 3 distinct answers"
    given = resolve_config(None, set_items=["labels=[medical, fire, flood]"],
                           flags={"task": "classification", "head": "sequence"}, flag_names={})
    assert fill_labels(given, File, tokenizer).config.data.labels == ["medical", "fire", "flood"]  # as given
    lm = resolve_config(None, flags={"task": "classification"}, flag_names={})
    assert fill_labels(lm, File, tokenizer).config.data.labels is None  # a generating run has no head


def test_the_trainers_metrics_are_accuracy_and_macro_f1_over_the_labels():
    from transformers import EvalPrediction

    logits = np.array([[2.0, 0.1], [0.3, 0.9], [1.0, 0.0], [0.0, 1.0]])
    metrics = compute_metrics(["fire", "medical"])(EvalPrediction(logits, np.array([0, 1, 1, 1])))
    assert metrics["accuracy"] == 0.75
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)  # fire P 1/2 R 1; medical P 1 R 2/3


@pytest.mark.parametrize(("settings", "message"), [
    ({"head": "sequence"}, 'head "sequence" classifies, but the task is "chat"'),
    ({"head": "sequence", "task": "classification", "packing": True}, "Set packing: false"),
    ({"labels": ["fire"]}, "at least two different classes"),
    ({"labels": ["fire", "fire"]}, "at least two different classes"),
])
def test_a_head_the_data_cannot_train_is_refused_by_the_config(settings, message):
    from lorawiz.config.resolve import resolve_config
    from lorawiz.errors import ProblemsError

    with pytest.raises(ProblemsError) as raised:
        resolve_config(None, flags=settings, flag_names={})
    assert any(message in problem.message for problem in raised.value.problems)
