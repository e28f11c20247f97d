"""lorawiz.eval.mitigation: the mix-and-retrain commands printed on forgetting are valid: their flags go through
the real command line parser, the mix step runs on small data, and the train step resolves to the mixed file at
half the run's learning rate."""

from __future__ import annotations

import json
import shlex

import pytest
import typer.main
import yaml

from lorawiz.eval.mitigation import GENERAL_PLACEHOLDER, TRAIN_PLACEHOLDER, mitigation_commands
from lorawiz.eval.plan import run_config_of
from lorawiz.models import Target


def chat_rows(path, count, word):
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"{word} question {i}?"},
                                                     {"role": "assistant", "content": f"{word} answer {i}."}]})
                            + "\n" for i in range(count)))
    return path


def run_folder(tmp_path, data: dict):
    run = tmp_path / "runs" / "my-run"
    run.mkdir(parents=True)
    (run / "lorawiz.yaml").write_text(yaml.safe_dump({"model": {"model_name_or_path": "builtin:tiny"}, "data": data,
                                                      "training": {"learning_rate": 2e-4}}))
    return Target(str(run), "builtin:tiny", True)


def command(name):
    from lorawiz.cli import app

    return typer.main.get_command(app).commands[name]


def parsed(line):
    """The command line's words and click's parse of them by the real `lorawiz` command (unknown flags fail)."""
    words = shlex.split(line)
    assert words[0] == "lorawiz"
    return words, command(words[1]).make_context(words[1], words[2:])


def test_mix_then_train_at_half_the_learning_rate(tmp_path):
    from typer.testing import CliRunner

    from lorawiz.cli import app
    from lorawiz.config.resolve import resolve_config

    domain, general = chat_rows(tmp_path / "domain.jsonl", 26, "domain"), chat_rows(tmp_path / "general.jsonl", 14,
                                                                                     "general")
    target = run_folder(tmp_path, {"train_file": str(domain)})
    found = mitigation_commands(target, run_config_of(target), str(general))
    mix, train = found.commands
    mixed = tmp_path / "runs" / "my-run-mixed.jsonl"
    assert mix == f"lorawiz mix {domain}:0.65 {general}:0.35 -o {mixed}"
    words, _ = parsed(mix)
    done = CliRunner().invoke(app, words[1:])  # the mix step, for real
    assert done.exit_code == 0, done.output
    rows = [json.loads(line) for line in mixed.read_text().splitlines()]
    from_general = sum(row["messages"][0]["content"].startswith("general") for row in rows)
    assert rows and from_general / len(rows) == pytest.approx(0.35, abs=0.05)

    _, context = parsed(train)
    params = context.params
    assert str(params["config"]) == f"{target.path}/lorawiz.yaml"
    resolved = resolve_config(params["config"], set_items=params["set_"] or (),
                              flags={k: params[k] for k in ("train_file", "learning_rate", "output_dir")}).config
    assert resolved.data.train_file == str(mixed) and resolved.training.learning_rate == pytest.approx(1e-4)
    assert resolved.logging.output_dir == str(tmp_path / "runs" / "my-run-mixed")
    assert any("not in the mix" in note for note in found.notes)  # the general file is now training data


def test_a_run_of_several_datasets_gets_them_back_with_the_general_share(tmp_path):
    from lorawiz.config.resolve import resolve_config

    one, two = chat_rows(tmp_path / "one.jsonl", 4, "one"), chat_rows(tmp_path / "two.jsonl", 4, "two")
    general = chat_rows(tmp_path / "general.jsonl", 4, "general")
    target = run_folder(tmp_path, {"datasets": [{"path": str(one), "weight": 0.8}, {"path": str(two), "weight": 0.2}]})
    mix, train = mitigation_commands(target, run_config_of(target), str(general)).commands
    assert f"{one}:0.52 {two}:0.13 {general}:0.35" in mix
    _, context = parsed(train)
    params = context.params
    assert params["set_"] == ["datasets=null"]
    resolved = resolve_config(params["config"], set_items=params["set_"],
                              flags={k: params[k] for k in ("train_file", "learning_rate")}).config
    assert resolved.data.datasets is None and resolved.data.train_file.endswith("my-run-mixed.jsonl")


def test_plain_text_general_data_cannot_join_chat_data_so_a_placeholder_says_so(tmp_path):
    domain = chat_rows(tmp_path / "domain.jsonl", 4, "domain")
    text = tmp_path / "wiki.jsonl"
    text.write_text("".join(json.dumps({"text": f"Sentence {i}."}) + "\n" for i in range(4)))
    target = run_folder(tmp_path, {"train_file": str(domain)})
    found = mitigation_commands(target, run_config_of(target), str(text))
    assert f"{GENERAL_PLACEHOLDER}:0.35" in found.commands[0]
    assert any("is plain text, which lorawiz mix cannot blend with chat data" in note for note in found.notes)
    parsed(found.commands[0])


def test_without_the_runs_config_the_commands_still_parse(tmp_path):
    merged = Target(str(tmp_path / "merged"), None, False)
    found = mitigation_commands(merged, None, None, base="Qwen/Qwen3-4B")
    mix, train = found.commands
    assert f"{TRAIN_PLACEHOLDER}:0.65 {GENERAL_PLACEHOLDER}:0.35" in mix and "--learning-rate" not in train
    assert "--model Qwen/Qwen3-4B --data" in train
    assert any("--learning-rate half" in note for note in found.notes)
    for line in found.commands:
        parsed(line)
