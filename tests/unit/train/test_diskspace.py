"""lorawiz.train.diskspace: the sizes it predicts match what PEFT and torch write, and a run too big is refused."""

from __future__ import annotations

import shutil
from collections import namedtuple

import pytest

from lorawiz.config.resolve import resolve_config
from lorawiz.errors import LorawizError
from lorawiz.train.diskspace import check_disk_space, checkpoints_at_peak, estimate_disk_need


def config(**values):
    flags = {"model_name_or_path": "builtin:tiny", "lora_r": 8, "optim": "adamw_torch", **values}
    return resolve_config(None, flags=flags, flag_names={}).config


@pytest.fixture(scope="module")
def tiny():
    from lorawiz.builtin import local_path
    from lorawiz.model_facts import load_model_facts

    return load_model_facts(local_path("builtin:tiny"))


def test_adapter_and_optimizer_sizes_match_what_is_written(tmp_path, tiny):
    """A real PEFT adapter and a real AdamW state of builtin:tiny, saved the way the Trainer saves them."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from lorawiz.builtin import local_path

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(local_path("builtin:tiny")),
                           LoraConfig(r=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    model.save_pretrained(tmp_path / "adapter")
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable)
    sum(p.sum() for p in trainable).backward()
    optimizer.step()
    torch.save(optimizer.state_dict(), tmp_path / "optimizer.pt")

    need = estimate_disk_need(config(), tiny, steps=10)
    written = (tmp_path / "adapter" / "adapter_model.safetensors").stat().st_size
    assert need.adapter <= written <= need.adapter * 1.05  # the safetensors header is a few KB
    assert need.optimizer <= (tmp_path / "optimizer.pt").stat().st_size <= need.optimizer * 1.1


@pytest.mark.parametrize(("values", "steps", "expected"), [
    ({"save_steps": 2, "save_total_limit": 3}, 6, 3),  # three saves in all: never more than that
    ({"save_steps": 2, "save_total_limit": 3}, 100, 4),  # three kept + the one being written
    ({"save_steps": 2, "save_total_limit": 1, "load_best_model_at_end": True}, 100, 3),  # the best one stays too
    ({"save_steps": 2, "save_total_limit": 1, "load_best_model_at_end": False}, 100, 2),
    ({"save_strategy": "no", "load_best_model_at_end": False}, 100, 1),  # Ctrl-C still saves one
])
def test_checkpoints_at_the_fullest_moment(values, steps, expected):
    assert checkpoints_at_peak(config(**values), steps) == expected


def test_a_run_that_does_not_fit_is_refused_with_the_sizes(tmp_path, tiny, monkeypatch):
    cfg = config(save_steps=2, save_total_limit=3)
    need = estimate_disk_need(cfg, tiny, steps=100)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 0, need.total - 1))
    with pytest.raises(LorawizError) as refused:
        check_disk_space(tmp_path / "run", cfg, tiny, steps=100)
    text = refused.value.message
    assert text.startswith(f"not enough disk space for the run in {tmp_path / 'run'}: it needs about ")
    assert "4 checkpoints of " in text and f"free on the disk holding {tmp_path}." in text
    assert "save_total_limit=1" in refused.value.hint
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 0, need.total))
    assert check_disk_space(tmp_path / "run", cfg, tiny, steps=100) == need


def test_checkpoints_already_on_disk_are_not_counted_again(tmp_path, tiny, monkeypatch):
    """--resume: the checkpoints present already take their space; only the rest must fit."""
    cfg = config(save_steps=2, save_total_limit=3)
    for step in (2, 4):
        (tmp_path / f"checkpoint-{step}").mkdir()
    resumed = estimate_disk_need(cfg, tiny, 100, existing_checkpoints=2)
    assert resumed.checkpoints == 2  # four at the fullest moment, two of them there
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 0, resumed.total))
    assert check_disk_space(tmp_path, cfg, tiny, steps=100) == resumed


def test_modules_to_save_count_their_full_size(tiny):
    plain = estimate_disk_need(config(), tiny, steps=10).adapter
    with_head = estimate_disk_need(config(modules_to_save=["lm_head"]), tiny, steps=10).adapter
    assert with_head - plain == tiny.vocab * tiny.hidden * 4
