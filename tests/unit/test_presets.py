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


# The documented values of the pipeline's four configs (its configs/README.md: the quick parameter reference table
# and the notes under it, "All configurations use 4-bit quantization, effective batch size = 64 [4 GPUs], AdamW with
# cosine annealing, bf16 and gradient checkpointing"), and the values every one of its JSON files shares (issue 17).
SHARED = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": "bfloat16",
          "learning_rate": 2e-4, "lr_scheduler_type": "cosine", "optim": "adamw_torch", "bf16": True,
          "gradient_checkpointing": True, "lora_target_modules": ["q_proj", "v_proj"], "weight_decay": 0.01,
          "max_grad_norm": 1.0, "eval_strategy": "epoch", "save_strategy": "epoch", "dataloader_num_workers": 4,
          "per_device_eval_batch_size": 4, "lora_alpha": 32, "warmup_steps": 100}
DOCUMENTED = {
    "default": {"lora_r": 32, "num_train_epochs": 3, "per_device_train_batch_size": 4,
                "gradient_accumulation_steps": 4, "max_seq_length": 512},
    "high_capacity": {"lora_r": 64, "lora_alpha": 64, "num_train_epochs": 3, "per_device_train_batch_size": 4,
                      "gradient_accumulation_steps": 4, "max_seq_length": 512},
    "memory_efficient": {"lora_r": 32, "num_train_epochs": 3, "per_device_train_batch_size": 2,
                         "gradient_accumulation_steps": 8, "max_seq_length": 256},
    "quick_test": {"lora_r": 16, "num_train_epochs": 1, "per_device_train_batch_size": 4,
                   "gradient_accumulation_steps": 4, "max_seq_length": 512, "warmup_steps": 50},
}


@pytest.mark.parametrize("name", NAMED)
def test_named_presets_reproduce_their_configs_documented_values(name):
    resolved = resolve_config(preset=name)
    for key, value in {**SHARED, **DOCUMENTED[name]}.items():
        assert resolved.value(key) == value, (name, key)
        assert resolved.source(key).label == f"preset {name}", (name, key)
    # 64 rows a step on the 4 GPUs the pipeline runs on
    assert resolved.value("per_device_train_batch_size") * resolved.value("gradient_accumulation_steps") * 4 == 64


def test_the_presets_comments_say_the_update_scale_they_set():
    for name in NAMED:
        resolved = resolve_config(preset=name)
        scale = resolved.value("lora_alpha") / resolved.value("lora_r")
        line = next(x for x in preset_path(name).read_text().splitlines() if x.strip().startswith("lora_alpha:"))
        assert f"alpha/r = {scale:g}" in line, (name, line)


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


def test_what_lorawiz_would_choose_instead_is_in_the_plan_not_in_the_preset():
    from lorawiz.hardware import parse_hardware_spec
    from lorawiz.planning import gather, make_plan
    from lorawiz.views.plan import plan_rows

    resolved = resolve_config(preset="default", flags={"model_name_or_path": "builtin:tiny"})
    plan = make_plan(gather(resolved, hardware=parse_hardware_spec("a100-80gb")))
    rows = {row.name: row for row in plan_rows(plan, resolved)}
    assert rows["lora_target_modules"].value == ["q_proj", "v_proj"]  # the preset's value runs
    assert rows["lora_target_modules"].reason.startswith("set by the preset default; the recommender would take "
                                                         "all-linear (")
    assert rows["optim"].value == "adamw_torch" and "would take paged_adamw_8bit" in rows["optim"].reason
