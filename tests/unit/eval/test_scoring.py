"""The label scorer and answer spans (lorawiz/eval/scoring.py), on builtin:tiny and on a rigged model."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lorawiz.builtin.triage import CATEGORIES, triage_rows
from lorawiz.errors import LorawizError
from lorawiz.eval.scoring import classification_accuracy, tokenize_with_answer


@pytest.fixture(scope="module")
def tiny():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lorawiz.builtin import resolve_builtin

    folder = resolve_builtin("builtin:tiny")
    return AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)

def _category_echo(tokenizer):
    """A rigged causal LM: at each position it predicts the label token seen last so far, and end-of-turn right
    after a label token. Scoring must read each position's logits for the *next* token and cope with left padding,
    or it cannot find the label this model plainly prefers."""
    import torch

    labels = {tokenizer(c, add_special_tokens=False)["input_ids"][0] for c in CATEGORIES}

    class CategoryEcho(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.unused = torch.nn.Parameter(torch.zeros(1))

        def forward(self, input_ids, attention_mask=None, position_ids=None, logits_to_keep=0):
            logits = torch.zeros(*input_ids.shape, len(tokenizer))
            for b, ids in enumerate(input_ids.tolist()):
                last = None
                for t, token in enumerate(ids):
                    if token in labels:
                        logits[b, t, tokenizer.eos_token_id] = 20.0
                        last = token
                    elif last is not None:
                        logits[b, t, last] = 20.0
            return SimpleNamespace(logits=logits[:, -logits_to_keep:] if logits_to_keep else logits)

    return CategoryEcho()


def _rows_naming(shift: int) -> list[dict]:
    """Rows of different lengths whose report ends with a label line: the gold one, or with `shift` another."""
    rows = []
    for i in range(20):
        gold = CATEGORIES[i % len(CATEGORIES)]
        named = CATEGORIES[(i + shift) % len(CATEGORIES)]
        report = f"{'Report line. ' * (i % 5)}Caller number {i}.\n{named}"
        rows.append({"messages": [{"role": "user", "content": report}, {"role": "assistant", "content": gold}]})
    return rows


def test_scorer_finds_the_label_a_rigged_model_prefers(tiny):
    _, tokenizer = tiny
    echo = _category_echo(tokenizer)
    assert classification_accuracy(echo, tokenizer, _rows_naming(0), CATEGORIES, batch_size=7) == 1.0
    assert classification_accuracy(echo, tokenizer, _rows_naming(1), CATEGORIES, batch_size=7) == 0.0


def test_a_random_model_scores_near_chance_and_peft_wrapping_changes_nothing(tiny):
    from peft import LoraConfig, get_peft_model

    model, tokenizer = tiny
    rows = triage_rows("validation")[:30]
    model.train()
    accuracy = classification_accuracy(model, tokenizer, rows, CATEGORIES)
    assert model.training  # scored in eval mode, then put back as it was
    model.eval()
    assert 0.0 <= accuracy <= 0.5  # random weights cannot know the labels (chance is 1/6)
    wrapped = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear"))  # B = 0: same outputs
    try:
        assert classification_accuracy(wrapped, tokenizer, rows, CATEGORIES, batch_size=13) == accuracy
    finally:
        wrapped.unload()


def test_answer_span_is_the_label_and_the_end_of_turn(tiny):
    _, tokenizer = tiny
    prompt = triage_rows("validation")[0]["messages"][:-1]
    ids, start, end = tokenize_with_answer(tokenizer, prompt, "hazmat")
    assert tokenizer.decode(ids[start:end]) == "hazmat<|im_end|>"
    prompt_text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    assert ids[:start] == tokenizer(prompt_text, add_special_tokens=False)["input_ids"]


def test_scorer_refuses_labels_outside_the_categories(tiny):
    model, tokenizer = tiny
    row = {"messages": [{"role": "user", "content": "smoke"}, {"role": "assistant", "content": "arson"}]}
    with pytest.raises(LorawizError, match='row 1: the label "arson"'):
        classification_accuracy(model, tokenizer, [row], CATEGORIES)
    with pytest.raises(LorawizError, match="no rows"):
        classification_accuracy(model, tokenizer, [], CATEGORIES)
