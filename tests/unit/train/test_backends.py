"""Backend choice (lorawiz/train/backends/base.py): unsloth only where it can run, and the reason said."""

from __future__ import annotations

import pytest

from lorawiz.errors import LorawizError
from lorawiz.hardware import parse_hardware_spec
from lorawiz.train.backends import base


@pytest.fixture
def unsloth_installed(monkeypatch):
    real = base.importlib.util.find_spec
    monkeypatch.setattr(base.importlib.util, "find_spec",
                        lambda name, *a: object() if name == "unsloth" else real(name, *a))


def test_auto_takes_hf_without_unsloth():
    name, why = base.choose_backend("auto", parse_hardware_spec("h100-80gb"), "llama")
    assert name == "hf" and "not installed" in why


def test_auto_takes_unsloth_where_it_runs(unsloth_installed):
    assert base.choose_backend("auto", parse_hardware_spec("a100-80gb"), "qwen2")[0] == "unsloth"
    assert base.choose_backend("auto", parse_hardware_spec("cpu"), "qwen2")[0] == "hf"
    assert base.choose_backend("auto", parse_hardware_spec("a100-80gb"), "gpt_neox")[0] == "hf"


def test_asking_for_unsloth_where_it_cannot_run_says_why():
    with pytest.raises(LorawizError, match="not installed.*CUDA GPU"):
        base.choose_backend("unsloth", parse_hardware_spec("cpu"), "llama")
    with pytest.raises(LorawizError, match="unknown backend"):
        base.choose_backend("fast", parse_hardware_spec("cpu"), "llama")


@pytest.mark.parametrize(("group", "packing", "strategy"), [
    (True, False, "group_by_length"), (False, False, "random"), (True, True, "random"), (None, False, "random"),
])
def test_group_by_length_reaches_the_trainer(tmp_path, group, packing, strategy):
    from lorawiz.train.runner import training_args

    values = {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 1, "learning_rate": 1e-4,
              "max_seq_length": 128, "group_by_length": group, "packing": packing}
    assert training_args(values, tmp_path, on_gpu=False).train_sampling_strategy == strategy
