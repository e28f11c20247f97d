"""A run that starts from an adapter (`from_adapter`) trains with that adapter's LoRA settings, takes its base from
the run that made it, and refuses LoRA settings it cannot honour (lorawiz.train.sources.with_start_adapter)."""

from __future__ import annotations

import json

import pytest

from lorawiz.config.layers import defaults_layer, flags_layer
from lorawiz.config.resolve import resolve_layers
from lorawiz.errors import LorawizError
from lorawiz.train.sources import with_start_adapter


def flags(**values):
    return flags_layer(values, {})


@pytest.fixture
def adapter(tmp_path):
    folder = tmp_path / "sft"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "r": 4, "lora_alpha": 8, "lora_dropout": 0.1, "bias": "none", "use_dora": False,
        "target_modules": ["model.layers.0.self_attn.q_proj", "v_proj"], "modules_to_save": None,
        "base_model_name_or_path": "/cache/tiny-llama"}))
    (folder / "lorawiz.yaml").write_text("model:\n  model_name_or_path: builtin:tiny\n")
    return folder


def test_the_adapters_settings_and_its_runs_model_are_the_runs(adapter):
    resolved = with_start_adapter(resolve_layers([defaults_layer(), flags(from_adapter=str(adapter))]))
    assert resolved.value("lora_r") == 4 and resolved.value("lora_alpha") == 8
    assert resolved.value("lora_target_modules") == ["q_proj", "v_proj"]
    assert resolved.source("lora_r").kind == "adjusted" and str(adapter) in resolved.source("lora_r").reason
    assert resolved.value("model_name_or_path") == "builtin:tiny"  # lorawiz.yaml's name, not the loaded path
    assert resolved.value("lora_dropout") is None  # no weight: the plan decides it


def test_a_lora_setting_the_adapter_cannot_take_is_refused(adapter):
    resolved = resolve_layers([defaults_layer(), flags(from_adapter=str(adapter), lora_r=16)])
    with pytest.raises(LorawizError, match="lora_r 16 cannot apply"):
        with_start_adapter(resolved)
    same = with_start_adapter(resolve_layers([defaults_layer(), flags(from_adapter=str(adapter), lora_r=4)]))
    assert same.value("lora_r") == 4


def test_a_folder_without_an_adapter_is_named(tmp_path):
    resolved = resolve_layers([defaults_layer(), flags(from_adapter=str(tmp_path))])
    with pytest.raises(LorawizError, match="no adapter_config.json"):
        with_start_adapter(resolved)
