"""Integration fixtures shared by the modules that run lorawiz end to end: a small slice of builtin:triage as
files, and a LoRA adapter of builtin:tiny. Module-scoped: each test module gets its own copy."""

from __future__ import annotations

import json

import pytest


def write_slices(folder, rows_of, train_name, val_name):
    """64 training and 16 validation rows of `rows_of(split)`, written as JSONL files of these names."""
    train, val = folder / train_name, folder / val_name
    train.write_text("".join(json.dumps(r) + "\n" for r in rows_of("train")[:64]))
    val.write_text("".join(json.dumps(r) + "\n" for r in rows_of("validation")[:16]))
    return train, val


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """64 training and 16 validation rows of the triage sample, written as JSONL."""
    from lorawiz.builtin.triage import triage_rows

    return write_slices(tmp_path_factory.mktemp("data"), triage_rows, "train.jsonl", "val.jsonl")


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """The same slices of the triage sample as preference pairs (builtin:triage-pairs)."""
    from lorawiz.builtin.triage import triage_pairs

    return write_slices(tmp_path_factory.mktemp("pairs"), triage_pairs, "pairs.jsonl", "pairs-val.jsonl")


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    """A small LoRA adapter of builtin:tiny with its tokenizer, as lorawiz train writes one."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lorawiz.builtin import resolve_builtin

    base = resolve_builtin("builtin:tiny")
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    folder = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    return folder
