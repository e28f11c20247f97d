"""One value set in a user's config file: that line changed or the key added, everything else as written."""

from __future__ import annotations

import json

import pytest

from lorawiz.config.edit import set_in_config_file
from lorawiz.config.files import read_config_file
from lorawiz.errors import LorawizError


def test_a_yaml_line_is_rewritten_and_every_other_line_kept(tmp_path):
    path = tmp_path / "run.yaml"
    text = ("# my run\nmodel:\n  model_name_or_path: builtin:tiny  # the base\ntraining:\n"
            "  learning_rate: 2.0e-4  # what I used\n  seed: 7\n")
    path.write_text(text)
    done = set_in_config_file(path, "learning_rate", 0.0014, "lorawiz lr-find")
    assert done == "line 5 changed"
    lines = path.read_text().splitlines()
    assert lines[4] == "  learning_rate: 0.0014  # lorawiz lr-find"
    assert lines[:4] + lines[5:] == text.splitlines()[:4] + text.splitlines()[5:]
    assert read_config_file(path).values["learning_rate"] == 0.0014


def test_a_missing_key_is_added_under_its_section_or_at_the_end_of_a_flat_file(tmp_path):
    sectioned = tmp_path / "sectioned.yaml"
    sectioned.write_text("model:\n    model_name_or_path: builtin:tiny\ntraining:\n    seed: 7\n")
    assert set_in_config_file(sectioned, "learning_rate", 1e-05) == "added under training:"
    assert "training:\n    learning_rate: 1.0e-05\n    seed: 7\n" in sectioned.read_text()
    assert read_config_file(sectioned).values == {"model_name_or_path": "builtin:tiny", "seed": 7,
                                                  "learning_rate": 1e-05}
    other = tmp_path / "other.yaml"
    other.write_text("model:\n  model_name_or_path: builtin:tiny\n")
    assert set_in_config_file(other, "learning_rate", 3e-4) == "added in a new section training:"
    assert read_config_file(other).values["learning_rate"] == 3e-4
    flat = tmp_path / "flat.yaml"
    flat.write_text("model_name_or_path: builtin:tiny\nlora_r: 8")  # no newline at the end
    set_in_config_file(flat, "learning_rate", 3e-4)
    assert flat.read_text() == "model_name_or_path: builtin:tiny\nlora_r: 8\nlearning_rate: 0.0003\n"


def test_json_configs_flat_as_trainingarguments_files_are(tmp_path):
    path = tmp_path / "default.json"
    path.write_text('{\n    "model_name_or_path": "builtin:tiny",\n    "learning_rate": 2e-4,\n    "lora_r": 8\n}\n')
    assert set_in_config_file(path, "learning_rate", 0.0014) == "line 3 changed"
    assert path.read_text() == ('{\n    "model_name_or_path": "builtin:tiny",\n    "learning_rate": 0.0014,\n'
                                '    "lora_r": 8\n}\n')
    bare = tmp_path / "bare.json"
    bare.write_text('{"model_name_or_path": "builtin:tiny"}')
    set_in_config_file(bare, "learning_rate", 0.0014)
    assert json.loads(bare.read_text()) == {"model_name_or_path": "builtin:tiny", "learning_rate": 0.0014}


def test_an_axolotl_file_keeps_its_own_keys(tmp_path):
    path = tmp_path / "axolotl.yml"
    path.write_text("base_model: builtin:tiny\nadapter: lora\nlora_r: 8\nlearning_rate: 0.0002\nmicro_batch_size: 2\n")
    set_in_config_file(path, "learning_rate", 0.0014)
    assert path.read_text() == ("base_model: builtin:tiny\nadapter: lora\nlora_r: 8\nlearning_rate: 0.0014\n"
                                "micro_batch_size: 2\n")


def test_a_layout_it_cannot_edit_line_by_line_is_refused_and_left_as_it_is(tmp_path):
    path = tmp_path / "flow.yaml"
    text = "training: {learning_rate: 2.0e-4, seed: 7}\n"
    path.write_text(text)
    with pytest.raises(LorawizError, match="without changing its other values") as raised:
        set_in_config_file(path, "learning_rate", 0.0014)
    assert "learning_rate: 0.0014" in raised.value.hint
    assert path.read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flow.yaml"]  # no check file left behind


def test_a_file_with_problems_of_its_own_is_not_touched(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("lora_rank: 8\n")
    with pytest.raises(LorawizError, match="problems of its own"):
        set_in_config_file(path, "learning_rate", 0.0014)
    assert path.read_text() == "lora_rank: 8\n"
