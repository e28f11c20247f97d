"""`lorawiz format` from the command line: messages, exit codes, nothing lost."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"


def test_format_reports_shape_and_counts(cli, tmp_path):
    out = tmp_path / "train.jsonl"
    result = cli("format", str(FIXTURES / "sharegpt.jsonl"), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "shape: sharegpt" in result.output and f"wrote 2 of 2 rows to {out}" in result.output


def test_format_bad_rows_exit_2_and_write_nothing(cli, tmp_path):
    out = tmp_path / "train.jsonl"
    result = cli("format", str(FIXTURES / "bad.jsonl"), "-o", str(out))
    assert result.exit_code == 2
    assert "invalid JSON: 1 row (line 2)" in result.output and "--skip-bad" in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_format_refuses_to_overwrite_and_unknown_shape(cli, tmp_path):
    out = tmp_path / "train.jsonl"
    out.write_text("x\n")
    result = cli("format", str(FIXTURES / "text.jsonl"), "-o", str(out))
    assert result.exit_code == 2 and "already exists" in result.output and out.read_text() == "x\n"
    result = cli("format", str(FIXTURES / "text.jsonl"), "-o", str(tmp_path / "o.jsonl"), "--from", "alpacca")
    assert result.exit_code == 2 and "unknown shape" in result.output


def test_format_missing_input(cli, tmp_path):
    result = cli("format", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 2 and "nope.jsonl not found" in result.output


def test_preference_pairs_in_each_common_shape_become_trls_preference_rows(cli, tmp_path):
    import json

    rows = [  # LLaMA-Factory's dpo demo data, orca_dpo_pairs, UltraFeedback binarized, whole conversations
        {"conversations": [{"from": "human", "value": "Name a prime."}], "chosen": {"from": "gpt", "value": "7"},
         "rejected": {"from": "gpt", "value": "8"}},
        {"system": "Be brief.", "question": "Capital of France?", "chosen": "Paris", "rejected": "Lyon"},
        {"prompt": "2 + 2?", "chosen": [{"role": "user", "content": "2 + 2?"}, {"role": "assistant", "content": "4"}],
         "rejected": [{"role": "user", "content": "2 + 2?"}, {"role": "assistant", "content": "5"}]},
        {"chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
         "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Go away."}]},
        {"prompt": "Same?", "chosen": "x", "rejected": "x"},
    ]
    source = tmp_path / "pairs.json"
    source.write_text(json.dumps(rows))
    out = tmp_path / "out.jsonl"
    refused = cli("format", str(source), "-o", str(out))
    assert refused.exit_code == 2 and "identical pair: 1 row (line" in refused.output and not out.exists()
    result = cli("format", str(source), "-o", str(out), "--skip-bad")
    assert result.exit_code == 0, result.output
    assert "shape: preference (5 of the first 5 rows have chosen and rejected answers)" in result.output
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["chosen"][0]["content"] for row in written] == ["7", "Paris", "4", "Hello!"]
    assert [row["prompt"][-1]["content"] for row in written] == ["Name a prime.", "Capital of France?", "2 + 2?", "Hi"]
    assert written[1]["prompt"][0] == {"role": "system", "content": "Be brief."}
    assert all(set(row) == {"prompt", "chosen", "rejected"} for row in written)
    train = cli("train", "--model", "builtin:tiny", "--data", str(out), "--dry-run")
    assert train.exit_code == 2 and "this is preference data" in train.output  # supervised training refuses it
