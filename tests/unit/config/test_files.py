"""Config files read strictly (lorawiz/config/files.py, validate.py): duplicate keys, booleans apart from numbers,
no inf or nan, strict JSON out, and paths next to the file."""

from __future__ import annotations

import json

import pytest

from lorawiz.config.resolve import resolve_config
from lorawiz.errors import ProblemsError


def write(folder, name, text):
    path = folder / name
    path.write_text(text)
    return path


def problems_of(*args, **kwargs) -> list[str]:
    with pytest.raises(ProblemsError) as caught:
        resolve_config(*args, **kwargs)
    return [str(problem) for problem in caught.value.problems]


def test_a_key_given_twice_in_yaml_names_both_lines(tmp_path):
    path = write(tmp_path, "run.yaml", "lora_r: 8\nseed: 1\nlora_r: 16\nlora:\n  lora_alpha: 4\n  lora_alpha: 8\n")
    found = problems_of(path)
    assert f'{path} lines 1 and 3: "lora_r" is given twice' in found[0]
    assert f'{path} lines 5 and 6: "lora_alpha" is given twice' in found[1]


def test_a_key_given_twice_in_json_names_both_lines(tmp_path):
    path = write(tmp_path, "run.json", '{"lora_r": 8,\n "seed": 1,\n "lora_r": 9}\n')
    assert problems_of(path) == [f'{path} lines 1 and 3: "lora_r" is given twice; keep one (JSON would silently '
                                 "take the last)."]


@pytest.mark.parametrize(("item", "message"), [
    ("lora_r=true", "lora.lora_r = True: must be a number, not true"),
    ("learning_rate=false", "must be a number, not false"),
    ("load_in_4bit=1", "model.load_in_4bit = 1: must be true or false, not the number 1"),
    ("num_train_epochs=1e400", "training.num_train_epochs = '1e400': must be a finite number"),
    ("learning_rate=.inf", "must be a finite number"),
    ("lora_dropout=.nan", "must be a finite number"),
])
def test_booleans_numbers_inf_and_nan_are_kept_apart(item, message):
    assert any(message in problem for problem in problems_of(set_items=[item]))


def test_numbers_people_write_still_read(tmp_path):
    path = write(tmp_path, "run.yaml", "learning_rate: 2e-4\nnum_train_epochs: 3\nload_in_4bit: true\n")
    cfg = resolve_config(path).config
    assert (cfg.training.learning_rate, cfg.training.num_train_epochs, cfg.model.load_in_4bit) == (2e-4, 3.0, True)


def test_config_show_json_is_strict_json(cli, tmp_path):
    result = cli("config", "show", "--set", "learning_rate=3e-4", "--json")
    assert result.exit_code == 0

    def refuse(constant):
        raise ValueError(constant)

    json.loads(result.output, parse_constant=refuse)  # NaN, Infinity would raise
    refused = cli("config", "show", "--set", "num_train_epochs=1e400", "--json")
    assert refused.exit_code == 2 and "Infinity" not in refused.output


def test_relative_paths_in_a_file_mean_next_to_it(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "train.jsonl").write_text("{}\n")
    path = write(folder, "run.yaml", "train_file: train.jsonl\nvalidation_file: missing.jsonl\n"
                                     "model_name_or_path: Qwen/Qwen2.5-7B\noutput_dir: runs/a\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = resolve_config(path).config
    assert cfg.data.train_file == str(folder / "train.jsonl")
    # not next to the file: the usual meaning (the current folder), a hub id stays a hub id
    assert cfg.data.validation_file == "missing.jsonl" and cfg.model.model_name_or_path == "Qwen/Qwen2.5-7B"
    assert cfg.logging.output_dir == "runs/a"
