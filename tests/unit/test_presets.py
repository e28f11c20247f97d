"""Every shipped preset loads, validates and documents itself (lorawiz/presets.py, presets/*.yaml)."""

from __future__ import annotations

import re

import pytest

from lorawiz.config.resolve import resolve_config
from lorawiz.errors import LorawizError
from lorawiz.presets import SCENARIOS, find_presets, load_preset, preset_dirs, preset_info, preset_path
from tests.conftest import REPO

NAMED = ("default", "high_capacity", "memory_efficient", "quick_test")
ALL = SCENARIOS + NAMED


def test_all_nine_presets_are_found_scenarios_first():
    assert tuple(find_presets()) == ALL


def test_editable_checkout_finds_the_top_level_presets_folder():
    assert (REPO / "presets").resolve() in [d.resolve() for d in preset_dirs()]
    assert preset_path("default").resolve() == (REPO / "presets" / "default.yaml").resolve()


@pytest.mark.parametrize("name", ALL)
def test_preset_loads_and_validates(name):
    layer = load_preset(name)
    assert not layer.problems, layer.problems
    resolved = resolve_config(preset=name)
    assert all(resolved.sources[key].label == f"preset {name}" and resolved.sources[key].kind == "preset"
               for key in layer.values)


@pytest.mark.parametrize("name", ALL)
def test_preset_explains_itself(name):
    info = preset_info(name)
    assert info.summary and info.use_when, info
    assert f"--preset {name}" in info.command and info.command.startswith("lorawiz train")
    # Every value line carries a one-line comment on its trade-off.
    for line in preset_path(name).read_text().splitlines():
        if re.match(r"^\s+\w+:\s*\S", line):
            assert " # " in line, f"{name}: no comment on {line.strip()!r}"


def test_named_configs_have_the_documented_values():
    d = resolve_config(preset="default").config
    assert (d.lora.lora_r, d.lora.lora_alpha, d.training.num_train_epochs) == (32, 32, 3)
    assert d.training.learning_rate == 2e-4
    assert (d.training.per_device_train_batch_size, d.training.gradient_accumulation_steps) == (4, 4)
    assert d.data.max_seq_length == 512
    assert d.model.load_in_4bit and d.model.bnb_4bit_quant_type == "nf4"
    assert d.training.lr_scheduler_type == "cosine" and d.training.warmup_steps == 100
    assert (d.training.early_stopping_patience, d.training.early_stopping_threshold) == (2, 0.01)

    h = resolve_config(preset="high_capacity").config
    assert (h.lora.lora_r, h.lora.lora_alpha) == (64, 64)
    m = resolve_config(preset="memory_efficient").config
    assert (m.training.per_device_train_batch_size, m.training.gradient_accumulation_steps) == (2, 8)
    assert m.data.max_seq_length == 256
    q = resolve_config(preset="quick_test").config
    assert (q.lora.lora_r, q.training.num_train_epochs, q.training.warmup_steps) == (16, 1, 50)


def test_named_variants_differ_from_default_only_where_documented():
    base = load_preset("default").values
    expected = {
        "high_capacity": {"lora_r", "lora_alpha"},
        "memory_efficient": {"per_device_train_batch_size", "gradient_accumulation_steps", "max_seq_length"},
        "quick_test": {"lora_r", "num_train_epochs", "warmup_steps"},
    }
    for name, keys in expected.items():
        values = load_preset(name).values
        assert values.keys() == base.keys()
        assert {k for k in base if values[k] != base[k]} == keys, name


def test_scenarios_leave_hardware_values_to_the_recommender():
    for name in SCENARIOS:
        values = load_preset(name).values
        assert "per_device_train_batch_size" not in values, name
        assert "gradient_accumulation_steps" not in values, name


def test_unknown_preset_suggests_the_closest():
    with pytest.raises(LorawizError) as info:
        preset_path("defualt")
    assert 'Did you mean "default"?' in info.value.hint


def test_env_var_folder_comes_first(tmp_path, monkeypatch):
    (tmp_path / "default.yaml").write_text("# default: mine\nlora:\n  lora_r: 4  # tiny\n")
    (tmp_path / "team.yaml").write_text("# team: ours\nlora:\n  lora_r: 12  # team standard\n")
    monkeypatch.setenv("LORAWIZ_PRESETS", str(tmp_path))
    assert preset_path("default") == tmp_path / "default.yaml"
    assert resolve_config(preset="team").config.lora.lora_r == 12


def test_a_yaml_path_works_as_a_preset(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("lora:\n  lora_r: 6\n")
    assert resolve_config(preset=str(path)).sources["lora_r"].label == "preset mine"
