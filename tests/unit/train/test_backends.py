"""Backend choice (lorawiz/train/backends/base.py): unsloth only where it can run, and the reason said."""

from __future__ import annotations

import pytest

from lorawiz.config.resolve import resolve_config
from lorawiz.errors import LorawizError, ProblemsError
from lorawiz.hardware import parse_hardware_spec
from lorawiz.train.backends import base

CFG = resolve_config().config


@pytest.fixture
def unsloth_installed(monkeypatch):
    real = base.importlib.util.find_spec
    monkeypatch.setattr(base.importlib.util, "find_spec",
                        lambda name, *a: object() if name == "unsloth" else real(name, *a))


def test_auto_takes_hf_without_unsloth():
    name, why = base.choose_backend("auto", parse_hardware_spec("h100-80gb"), "llama", CFG)
    assert name == "hf" and "not installed" in why


def test_auto_takes_unsloth_where_it_runs(unsloth_installed):
    assert base.choose_backend("auto", parse_hardware_spec("a100-80gb"), "qwen2", CFG)[0] == "unsloth"
    assert base.choose_backend("auto", parse_hardware_spec("cpu"), "qwen2", CFG)[0] == "hf"
    assert base.choose_backend("auto", parse_hardware_spec("a100-80gb"), "gpt_neox", CFG)[0] == "hf"


def test_asking_for_unsloth_where_it_cannot_run_says_why():
    with pytest.raises(LorawizError, match="not installed.*CUDA GPU"):
        base.choose_backend("unsloth", parse_hardware_spec("cpu"), "llama", CFG)
    with pytest.raises(LorawizError, match="unknown backend"):
        base.choose_backend("fast", parse_hardware_spec("cpu"), "llama", CFG)


def test_unsloth_is_never_given_settings_it_cannot_take(unsloth_installed):
    dora = resolve_config(set_items=["use_dora=true"]).config
    name, why = base.choose_backend("auto", parse_hardware_spec("a100-80gb"), "qwen2", dora)
    assert name == "hf" and "use_dora = True" in why
    with pytest.raises(LorawizError, match="cannot take use_dora = True"):
        base.choose_backend("unsloth", parse_hardware_spec("a100-80gb"), "qwen2", dora)


def test_packing_and_length_grouping_together_are_refused():
    with pytest.raises(ProblemsError, match="packing and group_by_length are both true"):
        resolve_config(set_items=["packing=true", "group_by_length=true"])


def test_qlora_keeps_the_frozen_weights_in_their_loaded_dtype():
    """prepare_model_for_kbit_training casts every unquantized parameter to fp32; lorawiz puts the frozen ones back
    (lorawiz.train.backends.hf.restore_loaded_dtypes), which bench/memory_truth.py measured at 1.59 GiB against
    2.60 GiB for Llama-3.2-1B. The adapters train, and the quantized Linears stay 4-bit."""
    import torch

    from lorawiz.train.backends.hf import HFBackend

    flags = {"model_name_or_path": "builtin:tiny", "load_in_4bit": True, "bf16": True, "fp16": False,
             "gradient_checkpointing": True, "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0,
             "lora_target_modules": "all-linear"}
    cfg = resolve_config(flags=flags, flag_names={name: f"--{name}" for name in flags}).config
    model = HFBackend().load(cfg).model
    frozen = {name: param.dtype for name, param in model.named_parameters() if not param.requires_grad}
    assert torch.float32 not in frozen.values(), [name for name, dtype in frozen.items() if dtype == torch.float32]
    assert torch.uint8 in frozen.values() and torch.bfloat16 in frozen.values()
    assert any(param.requires_grad for param in model.parameters())


def test_evaluating_a_4bit_model_on_the_cpu_leaves_its_weights_as_they_were():
    """bitsandbytes repacks a 4-bit weight in place the first time it runs without gradients on a CPU with
    AVX512-BF16, and training afterwards computes other gradients (and under FSDP or ZeRO-3, wrong ones):
    lorawiz.train.backends.hf.keep_cpu_4bit_layout turns that off."""
    import torch

    from lorawiz.train.backends.hf import HFBackend

    flags = {"model_name_or_path": "builtin:tiny", "load_in_4bit": True, "gradient_checkpointing": False,
             "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "lora_target_modules": "all-linear"}
    cfg = resolve_config(flags=flags, flag_names={name: f"--{name}" for name in flags}).config
    model = HFBackend().load(cfg).model
    layers = [module for module in model.modules() if hasattr(module, "support_avx512bf16_for_cpu")]
    before = [layer.weight.data.clone() for layer in layers]
    model.eval()
    with torch.no_grad():
        model(input_ids=torch.tensor([[1, 2, 3, 4]]))
    assert layers and all(torch.equal(layer.weight.data, old) for layer, old in zip(layers, before, strict=True))
    assert not any(getattr(layer.weight.quant_state, "packing_format_for_cpu", False) for layer in layers)


def test_mxfp4_checkpoints_load_dequantized_and_refuse_4_bit(tmp_path, monkeypatch):
    """gpt-oss ships MXFP4 experts: transformers trains them only dequantized (Mxfp4Config(dequantize=True)), and
    bitsandbytes cannot quantize them again."""
    import json
    import shutil

    import transformers

    from lorawiz.builtin import local_path
    from lorawiz.train.backends.hf import HFBackend

    folder = tmp_path / "mxfp4"
    shutil.copytree(local_path("builtin:tiny"), folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "quantization_config": {"quant_method": "mxfp4"}}))
    flags = {"model_name_or_path": str(folder), "load_in_4bit": True, "bf16": True, "fp16": False, "lora_r": 8,
             "lora_alpha": 16, "lora_dropout": 0.0, "lora_target_modules": "all-linear"}
    cfg = resolve_config(flags=flags, flag_names={name: f"--{name}" for name in flags}).config
    with pytest.raises(LorawizError, match="(?s)MXFP4.*load_in_4bit=false"):
        HFBackend().load(cfg)

    seen = {}

    def from_pretrained(**kwargs):
        seen.update(kwargs)
        raise ValueError("stop here")  # the real MXFP4 weights are not what this folder holds

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", from_pretrained)
    flags["load_in_4bit"] = False
    cfg = resolve_config(flags=flags, flag_names={name: f"--{name}" for name in flags}).config
    with pytest.raises(LorawizError, match="stop here"):
        HFBackend().load(cfg)
    assert isinstance(seen["quantization_config"], transformers.Mxfp4Config)
    assert seen["quantization_config"].dequantize is True
