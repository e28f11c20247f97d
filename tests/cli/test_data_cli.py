"""`lorawiz split`, `mix` and `inspect` from the command line: flags, messages, exit codes, nothing lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"


def write_chat(path: Path, n: int, prefix: str = "q") -> Path:
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"{prefix} {i}"},
                                                     {"role": "assistant", "content": f"label{i % 3}"}]}) + "\n"
                            for i in range(n)))
    return path


def test_split_reports_sides_and_classes(cli, tmp_path):
    source = write_chat(tmp_path / "d.jsonl", 90)
    result = cli("split", str(source), "--train-out", str(tmp_path / "t.jsonl"), "--val-out",
                 str(tmp_path / "v.jsonl"), "--test-out", str(tmp_path / "x.jsonl"), "--test-ratio", "0.1",
                 "--stratify", "label", "--seed", "1")
    assert result.exit_code == 0, result.output
    assert "found no duplicate rows" in result.output
    assert "train: 72 rows (80.0%)" in result.output and "val: 9 rows" in result.output
    assert "label0\t24\t3\t3\t30" in result.output  # plain table: class, train, val, test, all


@pytest.mark.parametrize(("flags", "message"), [
    (["--val-ratio", "0.1", "--val-size", "5"], "--val-ratio and --val-size both given"),
    (["--val-ratio", "1.5"], "--val-ratio 1.5: must be between 0 and 1"),
    (["--test-ratio", "0.1"], "without --test-out"),
    (["--test-out", "X"], "--test-out needs a size"),
    (["--val-ratio", "0.6", "--test-out", "X", "--test-ratio", "0.5"], "leave nothing to train on"),
    (["--stratify", "team"], '--stratify team'),
])
def test_split_flag_errors_exit_2_without_traceback(cli, tmp_path, flags, message):
    source = write_chat(tmp_path / "d.jsonl", 30)
    result = cli("split", str(source), "--train-out", str(tmp_path / "t.jsonl"), "--val-out",
                 str(tmp_path / "v.jsonl"), *flags)
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "t.jsonl").exists()


def test_mix_prints_achieved_shares(cli, tmp_path):
    domain = write_chat(tmp_path / "domain.jsonl", 80, "domain")
    general = write_chat(tmp_path / "general.jsonl", 500, "general")
    out = tmp_path / "mixed.jsonl"
    result = cli("mix", f"{domain}:0.8", f"{general}:0.2", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert f"{domain}\tmessages\t80\t80.0%\t80\t80.0%\tno" in result.output
    assert f"{general}\tmessages\t500\t20.0%\t20\t20.0%\tno" in result.output
    assert f"wrote 100 rows to {out}" in result.output and len(out.read_text().splitlines()) == 100
    result = cli("mix", f"{domain}:0.8", f"{general}:0.2", "-o", str(tmp_path / "m2.jsonl"), "--size", "200")
    assert result.exit_code == 2 and "--allow-repeat" in result.output and not (tmp_path / "m2.jsonl").exists()
    result = cli("mix", f"{domain}:0.8", f"{general}:0.2", "-o", str(out))
    assert result.exit_code == 2 and "already exists" in result.output


def test_inspect_text_and_json(cli, tmp_path):
    source = write_chat(tmp_path / "d.jsonl", 50)
    result = cli("inspect", str(source))
    assert result.exit_code == 0, result.output
    assert "rows: 50" in result.output and "length (estimated tokens): p50" in result.output
    assert "suggested max_seq_length: 64" in result.output and "rows by length" in result.output
    result = cli("inspect", str(source), "--json", "--max-seq-length", "3")
    data = json.loads(result.output)
    assert data["rows"] == 50 and data["length"]["unit"] == "estimated tokens"
    assert data["max_seq_length"] == 3 and data["truncated_rows"] == 50
    assert sum(b["rows"] for b in data["histogram"]) == 50


def test_inspect_reads_preference_pairs_and_refuses_bad_flags(cli, tmp_path):
    result = cli("inspect", str(FIXTURES / "preference.jsonl"))  # {"prompt": "Hi", "chosen": "Hello!", ...}
    assert result.exit_code == 0 and "shape: preference" in result.output
    assert "roles: user 1, assistant 1" in result.output  # the prompt and the longer answer, "Go away."
    result = cli("inspect", str(FIXTURES / "text.jsonl"), "--max-seq-length", "0")
    assert result.exit_code == 2 and "--max-seq-length 0" in result.output
    result = cli("inspect", str(FIXTURES / "text.jsonl"), "--tokenizer", str(tmp_path / "nope"))
    assert result.exit_code == 2 and "no such folder" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("command", ["split", "mix", "inspect"])
def test_help_has_examples(cli, command):
    result = cli(command, "--help")
    assert result.exit_code == 0 and "Examples:" in result.output and f"lorawiz {command} " in result.output


def _with_bom(path: Path, kind: str, rows: int = 30) -> Path:
    """The same chat data as JSONL, a JSON array, CSV or TSV, behind a UTF-8 byte-order mark."""
    items = [{"instruction": f"q {i}", "output": f"label{i % 3}"} for i in range(rows)]
    if kind == "jsonl":
        text = "".join(json.dumps(item) + "\n" for item in items)
    elif kind == "json":
        text = json.dumps(items, indent=1)
    else:
        sep = "\t" if kind == "tsv" else ","
        text = f"instruction{sep}output\n" + "".join(f"{i['instruction']}{sep}{i['output']}\n" for i in items)
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    return path


@pytest.mark.parametrize("kind", ["jsonl", "json", "csv", "tsv"])
def test_a_byte_order_mark_is_read_alike_by_every_data_command(cli, tmp_path, kind):
    source = _with_bom(tmp_path / f"d.{kind}", kind)
    done = cli("format", str(source), "-o", str(tmp_path / "f.jsonl"))
    assert done.exit_code == 0, done.output
    assert len((tmp_path / "f.jsonl").read_text().splitlines()) == 30
    done = cli("inspect", str(source), "--json")
    assert done.exit_code == 0 and json.loads(done.output)["rows"] == 30, done.output
    done = cli("split", str(source), "--train-out", str(tmp_path / "t.jsonl"), "--val-out", str(tmp_path / "v.jsonl"),
               "--val-size", "5")
    assert done.exit_code == 0 and "train: 25 rows" in done.output, done.output
    done = cli("train", "--model", "builtin:tiny", "--data", str(source), "--dry-run", "--plain", "-o",
               str(tmp_path / "run"))
    assert done.exit_code == 0 and "data: 27 training and 3 validation examples" in done.output, done.output
