"""The `unsloth` backend's wiring, with a stand-in `unsloth` module (the real one needs a CUDA GPU).

The stand-in implements the two calls lorawiz makes, FastLanguageModel.from_pretrained and get_peft_model, over
transformers and peft, and records the arguments. The test checks that lorawiz passes the configuration with the
same meaning as the hf backend, and that a run through it writes the same outputs.
"""

from __future__ import annotations

import json
import sys
import types

import pytest

CALLS: dict[str, dict] = {}


def fake_unsloth() -> types.ModuleType:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    class FastLanguageModel:
        @staticmethod
        def from_pretrained(model_name, max_seq_length, dtype, load_in_4bit, load_in_8bit, trust_remote_code):
            CALLS["from_pretrained"] = dict(model_name=model_name, max_seq_length=max_seq_length, dtype=dtype,
                                            load_in_4bit=load_in_4bit)
            return AutoModelForCausalLM.from_pretrained(model_name), AutoTokenizer.from_pretrained(model_name)

        @staticmethod
        def get_peft_model(model, r, lora_alpha, lora_dropout, target_modules, bias, use_gradient_checkpointing,
                           random_state, use_rslora, modules_to_save, max_seq_length):
            CALLS["get_peft_model"] = dict(r=r, lora_alpha=lora_alpha, target_modules=target_modules,
                                           use_gradient_checkpointing=use_gradient_checkpointing,
                                           random_state=random_state, modules_to_save=modules_to_save)
            config = LoraConfig(r=r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules=target_modules,
                                bias=bias, use_rslora=use_rslora, modules_to_save=modules_to_save,
                                task_type="CAUSAL_LM")
            return get_peft_model(model, config)

    module = types.ModuleType("unsloth")
    module.FastLanguageModel = FastLanguageModel
    return module


@pytest.fixture
def stand_in(monkeypatch):
    monkeypatch.setitem(sys.modules, "unsloth", fake_unsloth())
    monkeypatch.delitem(sys.modules, "lorawiz.train.backends.unsloth", raising=False)
    from lorawiz.train.backends import base

    monkeypatch.setattr(base, "choose_backend", lambda requested, hardware, arch, cfg: (requested, "test"))
    CALLS.clear()
    yield
    sys.modules.pop("lorawiz.train.backends.unsloth", None)  # it holds the stand-in: never let it outlive the test


def run(tmp_path, backend: str):
    from lorawiz.builtin.triage import triage_rows
    from lorawiz.config.resolve import resolve_config
    from lorawiz.train.runner import TrainRequest, run_training

    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in triage_rows("train")[:48]))
    out = tmp_path / backend
    flags = {"model_name_or_path": "builtin:tiny", "train_file": str(data), "output_dir": str(out), "max_steps": 3,
             "lora_r": 8, "gradient_checkpointing": True, "logging_steps": 1, "val_split": 0.25, "eval_steps": 3}
    resolved = resolve_config(None, flags=flags, flag_names={k: f"--{k}" for k in flags})
    run_training(TrainRequest(resolved, backend=backend, plain=True))
    return out


def test_unsloth_backend_passes_the_configuration_and_writes_the_same_outputs(tmp_path, stand_in):
    hf, unsloth = run(tmp_path, "hf"), run(tmp_path, "unsloth")
    assert CALLS["from_pretrained"]["max_seq_length"] > 0 and CALLS["from_pretrained"]["load_in_4bit"] is False
    peft_call = CALLS["get_peft_model"]
    assert peft_call["r"] == 8 and peft_call["lora_alpha"] == 16 and peft_call["random_state"] == 42
    assert peft_call["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                           "down_proj"]
    assert peft_call["use_gradient_checkpointing"] == "unsloth"
    skip = {"runs", "checkpoint-3"}
    assert sorted(p.name for p in hf.iterdir() if p.name not in skip) == \
        sorted(p.name for p in unsloth.iterdir() if p.name not in skip)
    assert json.loads((unsloth / "run.json").read_text())["backend"] == "unsloth"
