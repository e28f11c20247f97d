"""`builtin:` models and data work in every command that takes a model or data."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize("args", [
    ("inspect", "builtin:triage"),
    ("inspect", "builtin:triage:validation", "--tokenizer", "builtin:tiny", "--json"),
    ("format", "builtin:triage", "-o", "{tmp}/f.jsonl"),
    ("split", "builtin:triage", "--train-out", "{tmp}/a.jsonl", "--val-out", "{tmp}/b.jsonl"),
    ("mix", "builtin:triage:0.5", "builtin:triage:validation:0.5", "-o", "{tmp}/m.jsonl"),
    ("plan", "--model", "builtin:tiny", "--data", "builtin:triage", "--json"),
    ("chat", "builtin:tiny", "--prompt", "hello", "--max-new-tokens", "2"),
])
def test_builtin_names_are_accepted(cli, tmp_path, args):
    result = cli(*(arg.format(tmp=tmp_path) for arg in args))
    assert result.exit_code == 0, result.output
    if "--json" in args:
        data = json.loads(result.output)
        if args[0] == "inspect":
            assert data["rows"] == 240 and data["length"]["unit"] == "tokens"
        else:
            assert data["values"]["model_name_or_path"]["value"] == "builtin:tiny"
