"""The accelerate configs lorawiz writes for sharded and multi-machine runs, and what a launched process reads
back from accelerate's environment (issue 18, points 2 and 3)."""

from __future__ import annotations

import contextlib
import json

import pytest
import yaml

from lorawiz.config.resolve import resolve_config
from lorawiz.errors import LorawizError
from lorawiz.train import launcher
from lorawiz.train.distributed import (
    CONFIG_ENV,
    accelerate_config,
    decoder_layer_class,
    deepspeed_config,
    launched_layout,
    record_launch_config,
    write_launch_files,
)


def config(**values):
    return resolve_config(None, flags={"model_name_or_path": "builtin:tiny", **values}, environ={})


def test_fsdp2_config_with_offload_and_activation_checkpointing():
    cfg = config(parallelism="fsdp", cpu_offload=True, gradient_checkpointing=True).config
    written = accelerate_config(cfg, processes=16, machines=2, machine_rank=1, main_process_ip="10.0.0.1",
                                layer_class="LlamaDecoderLayer")
    assert written["distributed_type"] == "FSDP" and written["num_processes"] == 16
    assert (written["num_machines"], written["machine_rank"], written["main_process_ip"],
            written["main_process_port"]) == (2, 1, "10.0.0.1", 29500)
    fsdp = written["fsdp_config"]
    assert fsdp["fsdp_version"] == 2 and fsdp["fsdp_offload_params"] is True
    assert fsdp["fsdp_activation_checkpointing"] is True and fsdp["fsdp_cpu_ram_efficient_loading"] is True


def test_zero3_json_and_its_accelerate_config(tmp_path):
    from lorawiz.catalog import find_model

    cfg = config(parallelism="deepspeed", cpu_offload=True).config
    path = write_launch_files(tmp_path, cfg, find_model("llama3.1-8b"), processes=8)
    written = yaml.safe_load(path.read_text())
    assert written["distributed_type"] == "DEEPSPEED"
    assert written["deepspeed_config"]["zero3_init_flag"] is True
    assert "mixed_precision" not in written  # accelerate refuses it beside a DeepSpeed JSON: the JSON's "auto" rules
    zero = json.loads((tmp_path / "deepspeed_zero3.json").read_text())["zero_optimization"]
    assert zero["stage"] == 3 and zero["offload_param"]["device"] == "cpu"
    layer = find_model("llama3.1-8b").parameters()["layers"] // 32
    assert zero["stage3_max_live_parameters"] == 2 * layer
    assert deepspeed_config(config(parallelism="deepspeed").config, 10)["zero_optimization"]["offload_optimizer"] \
        == {"device": "none"}


def test_zero3_without_deepspeed_installed_is_refused_with_the_install_line(monkeypatch):
    import importlib.util

    from lorawiz.train.distributed import require_deepspeed

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "deepspeed" else real(name, *a))
    with pytest.raises(LorawizError, match=r"parallelism deepspeed \(--set parallelism\) needs the deepspeed") as err:
        require_deepspeed("--set parallelism")
    assert '.[deepspeed]' in err.value.hint


def test_the_decoder_layer_class_comes_from_the_model_class():
    from lorawiz.builtin import local_path

    assert decoder_layer_class(local_path("builtin:tiny")) == "LlamaDecoderLayer"


def test_sharded_4_bit_weights_are_stored_in_the_model_dtype():
    import torch

    from lorawiz.train.args import quantization_config

    sharded = quantization_config(config(load_in_4bit=True, bf16=True, parallelism="fsdp").config)
    plain = quantization_config(config(load_in_4bit=True, bf16=True).config)
    assert sharded.bnb_4bit_quant_storage == torch.bfloat16
    assert plain.bnb_4bit_quant_storage == torch.uint8  # bitsandbytes' own default


def test_a_launched_process_reads_its_layout_from_accelerate(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_OFFLOAD_PARAMS", "true")
    resolved = launched_layout(config())
    assert resolved.value("parallelism") == "fsdp" and resolved.value("cpu_offload") is True
    assert resolved.source("parallelism").kind == "adjusted"
    with pytest.raises(LorawizError, match="was launched with parallelism fsdp"):
        launched_layout(config(parallelism="deepspeed"))


def test_the_launch_config_is_recorded_in_the_run_folder(tmp_path, monkeypatch):
    launch, run = tmp_path / "launch", tmp_path / "run"
    run.mkdir()
    path = write_launch_files(launch, config(parallelism="fsdp", gradient_checkpointing=False).config, None,
                              processes=2)
    monkeypatch.setenv(CONFIG_ENV, str(path))
    record_launch_config(run)
    assert yaml.safe_load((run / "accelerate_config.yaml").read_text())["distributed_type"] == "FSDP"


def test_several_machines_need_the_main_address_and_a_rank_in_range():
    with pytest.raises(LorawizError, match="needs --main-process-ip"):
        launcher.Launch(8, machines=2).check()
    with pytest.raises(LorawizError, match="must be 0 to 1"):
        launcher.Launch(8, machines=2, machine_rank=2, main_process_ip="10.0.0.1").check()
    launcher.Launch(8, machines=2, machine_rank=1, main_process_ip="10.0.0.1").check()


def test_the_machine_flags_stay_with_the_launcher():
    argv = ["train", "--num-machines", "2", "--machine-rank=1", "--main-process-ip", "10.0.0.1",
            "--main-process-port", "29501", "--lora-r", "8"]
    assert launcher.child_args(argv) == ["train", "--lora-r", "8"]


def test_a_training_process_leaves_its_process_group_only_when_it_ends_well(monkeypatch):
    """Destroyed after a run that finished or stopped with the others (exit 0), and the process ends before the
    interpreter's teardown, whose torch threads can abort it; kept after an error, when the others may still wait
    in a collective."""
    import torch.distributed as dist

    from lorawiz.train import process_group
    from lorawiz.train.process_group import leaving_the_process_group

    destroyed, exits = [], []
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "destroy_process_group", lambda: destroyed.append(True))
    monkeypatch.setattr(process_group.os, "_exit", exits.append)  # before the interpreter's teardown

    def ends(outcome):
        destroyed.clear()
        exits.clear()
        with contextlib.suppress(SystemExit, Exception), leaving_the_process_group():
            if outcome is not None:
                raise outcome
        assert exits == ([0] if destroyed else [])
        return bool(destroyed)

    assert ends(None) and ends(SystemExit(0))
    assert not ends(SystemExit(130)) and not ends(LorawizError("bad row")) and not ends(RuntimeError("bug"))
