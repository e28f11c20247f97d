"""Data-test helpers: write rows as JSONL, read them back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def chat(question: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory):
    """A byte-level BPE with a chat template, trained here on generated text (no download)."""
    from lorawiz.builtin.tokenizer import build_tokenizer

    words = ["the", "model", "learns", "from", "data", "and", "answers", "questions", "about", "tickets", "billing",
             "refund", "password", "reset", "network", "error", "please", "help", "thanks", "today"]
    corpus = [" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(12)) + f" {i}." for i in range(400)]
    return build_tokenizer(corpus, tmp_path_factory.mktemp("tokenizer"), vocab_size=400, model_max_length=512)
