"""Sharded training without GPUs (issue 18, point 4): `lorawiz train --num-processes 2 --set parallelism=fsdp`
(or `deepspeed`) writes an FSDP2 accelerate config (or ZeRO-3's JSON), launches with it, and the two processes shard
builtin:tiny over gloo (fully_shard on a CPU device mesh; DeepSpeed's CPU accelerator). The loss curve matches data
parallel's, the adapter is gathered into a normal PEFT folder that PeftModel.from_pretrained loads, and a run
interrupted by Ctrl-C resumes from its sharded checkpoint to the same adapter. 4-bit weights (bitsandbytes storage)
are sharded by both. What no CPU can show, the per-GPU memory, is tested as plan (tests/unit/test_parallelism.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import subprocess_env

RUN = ["--model", "builtin:tiny", "--data", "builtin:triage", "--max-steps", "6", "--plain", "--num-processes", "2",
       "--set", "eval_steps=2", "--set", "logging_steps=1"]


def train(out: Path, *extra: str, fault: str | None = None) -> subprocess.CompletedProcess:
    env = subprocess_env(CI="true", OMP_NUM_THREADS="1")
    if fault:
        env["LORAWIZ_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "lorawiz", "train", *RUN, "--output-dir", str(out), *extra],
                          capture_output=True, text=True, env=env, timeout=600)


def losses(out: Path) -> list[float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [row["loss"] for row in rows if "loss" in row and "eval_loss" not in row]


def adapter(out: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(out / "adapter_model.safetensors")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fsdp")
    ddp, fsdp = root / "ddp", root / "fsdp"
    for out, extra in ((ddp, ()), (fsdp, ("--set", "parallelism=fsdp"))):
        done = train(out, *extra)
        assert done.returncode == 0, done.stdout + done.stderr
    return root, ddp, fsdp


def test_fsdp_writes_and_launches_with_its_accelerate_config(runs):
    _, ddp, fsdp = runs
    config = yaml.safe_load((fsdp / "accelerate_config.yaml").read_text())
    assert config["distributed_type"] == "FSDP" and config["num_processes"] == 2
    assert config["fsdp_config"]["fsdp_version"] == 2
    assert config["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"] == "LlamaDecoderLayer"
    assert config["fsdp_config"]["fsdp_state_dict_type"] == "SHARDED_STATE_DICT"
    assert not (ddp / "accelerate_config.yaml").exists()  # data parallel on one machine needs none
    # the checkpoints are FSDP's sharded ones: one file of the model per process
    shards = sorted(p.name for p in (fsdp / "checkpoint-6" / "pytorch_model_fsdp_0").glob("*.distcp"))
    assert shards == ["__0_0.distcp", "__1_0.distcp"]


def test_fsdp_follows_data_parallels_loss_curve(runs):
    _, ddp, fsdp = runs
    assert len(losses(fsdp)) == len(losses(ddp)) == 6
    assert losses(fsdp) == pytest.approx(losses(ddp), abs=1e-3)
    a, b = adapter(fsdp), adapter(ddp)
    assert sorted(a) == sorted(b)
    assert max((a[key] - b[key]).abs().max().item() for key in a) < 1e-3


def assert_loads_with_peft(folder: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from lorawiz.builtin import local_path

    base = AutoModelForCausalLM.from_pretrained(local_path("builtin:tiny"))
    model = PeftModel.from_pretrained(base, str(folder))
    loaded = {name: p for name, p in model.named_parameters() if "lora_B" in name}
    assert loaded and any(p.abs().sum() > 0 for p in loaded.values())  # trained, not the zero initialisation
    saved = adapter(folder)
    key = next(k for k in saved if "lora_B" in k)
    match = next(p for name, p in loaded.items() if name.replace(".default", "").endswith(key.split("model.", 1)[1]))
    assert torch.equal(match.detach(), saved[key])


def test_the_gathered_adapter_loads_with_peft(runs):
    assert_loads_with_peft(runs[2])


def interrupted_and_resumed(out: Path, parallelism: str) -> dict:
    """Ctrl-C at step 4, then the resume command the run prints: the adapter the resumed run saves."""
    stopped = train(out, "--set", f"parallelism={parallelism}", fault="sigint@4")
    assert stopped.returncode == 130, stopped.stdout + stopped.stderr  # as one process stopped by Ctrl-C
    assert "stopped by SIGINT at step" in stopped.stdout
    assert "ChildFailedError" not in stopped.stderr  # the children stopped as asked: torchrun reports no failure
    hint = next(line for line in stopped.stdout.splitlines() if line.startswith("resume with: "))
    assert "--num-processes 2" in hint and hint.endswith("--resume auto")  # the command the user typed
    assert not (out / "adapter_model.safetensors").exists()
    resumed = train(out, "--set", f"parallelism={parallelism}", "--resume", "auto")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming from" in resumed.stdout
    return adapter(out)


def test_an_interrupted_fsdp_run_resumes_to_the_same_adapter(runs):
    root, _, fsdp = runs
    a, b = interrupted_and_resumed(root / "interrupted", "fsdp"), adapter(fsdp)
    assert max((a[key] - b[key]).abs().max().item() for key in a) < 1e-4


def test_early_stopping_under_fsdp_keeps_the_best_checkpoint(runs):
    """No evaluation improves by 50%, so patience 1 stops at the second (step 4); the best by eval_loss is
    loaded from its sharded checkpoint and saved as the adapter: data parallel's own adapter at that step."""
    from safetensors.torch import load_file

    root, ddp, _ = runs
    out = root / "fsdp_early"
    done = train(out, "--set", "parallelism=fsdp", "--set", "early_stopping_patience=1",
                 "--set", "early_stopping_threshold=0.5")
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((out / "all_results.json").read_text())
    kept = Path(results["kept_checkpoint"]).name
    assert results["global_step"] == 4 and kept == "checkpoint-4"  # eval_loss fell, by less than 50%
    assert "early stopping at step 4: eval_loss has not improved by more than 50.00%" in done.stdout
    assert f"keeping {out / kept} (eval_loss " in done.stdout
    a, b = adapter(out), load_file(ddp / kept / "adapter_model.safetensors")
    assert sorted(a) == sorted(b)
    assert max((a[key] - b[key]).abs().max().item() for key in a) < 1e-4


QLORA = ("--set", "load_in_4bit=true", "--set", "gradient_checkpointing=true")


@pytest.fixture(scope="module")
def quantized_runs(tmp_path_factory):
    """QLoRA: the 4-bit weights sharded in their float storage (bnb_4bit_quant_storage), activation checkpointing
    done by FSDP (its wrappers rename every module under a decoder layer) or by the model under ZeRO-3, against
    data parallel's checkpointing. Each evaluates and saves checkpoints on the way."""
    root = tmp_path_factory.mktemp("fsdp_qlora")
    ddp, fsdp, zero3 = root / "ddp", root / "fsdp", root / "zero3"
    for out, extra in ((ddp, ()), (fsdp, ("--set", "parallelism=fsdp")), (zero3, ("--set", "parallelism=deepspeed"))):
        done = train(out, *QLORA, *extra)
        assert done.returncode == 0, done.stdout + done.stderr
        if out == fsdp:
            assert "Excluding from FSDP2 sharding" not in done.stderr  # the 4-bit weights are sharded, not kept whole
    return ddp, fsdp, zero3


def test_fsdp_with_4bit_weights_follows_data_parallel(quantized_runs):
    ddp, fsdp, _ = quantized_runs
    config = yaml.safe_load((fsdp / "accelerate_config.yaml").read_text())
    assert config["fsdp_config"]["fsdp_activation_checkpointing"] is True
    assert len(losses(fsdp)) == len(losses(ddp)) == 6
    assert losses(fsdp) == pytest.approx(losses(ddp), abs=2e-3)
    a, b = adapter(fsdp), adapter(ddp)
    assert sorted(a) == sorted(b) and len(a) > 0  # the plain model's names: no checkpoint wrappers in them
    assert max((a[key].float() - b[key].float()).abs().max().item() for key in a) < 5e-3


@pytest.fixture(scope="module")
def zero3(runs):
    out = runs[0] / "zero3"
    done = train(out, "--set", "parallelism=deepspeed")
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_deepspeed_zero3_follows_data_parallel_and_saves_a_plain_adapter(runs, zero3):
    _, ddp, _ = runs
    config = yaml.safe_load((zero3 / "accelerate_config.yaml").read_text())
    assert config["distributed_type"] == "DEEPSPEED"
    assert "mixed_precision" not in config  # accelerate refuses it beside a DeepSpeed JSON
    assert config["deepspeed_config"]["deepspeed_config_file"] == str(zero3 / "deepspeed_zero3.json")
    assert json.loads((zero3 / "deepspeed_zero3.json").read_text())["zero_optimization"]["stage"] == 3
    # the checkpoints are ZeRO-3's partitions: one of the model and one of the optimizer per process
    parts = sorted(p.name for p in (zero3 / "checkpoint-6" / "global_step6").glob("zero_pp_rank_*"))
    assert parts == [f"zero_pp_rank_{rank}_mp_rank_00_{kind}_states.pt" for rank in (0, 1)
                     for kind in ("model", "optim")]
    assert len(losses(zero3)) == len(losses(ddp)) == 6
    assert losses(zero3) == pytest.approx(losses(ddp), abs=1e-4)
    a, b = adapter(zero3), adapter(ddp)
    assert sorted(a) == sorted(b)
    assert max((a[key] - b[key]).abs().max().item() for key in a) < 1e-5
    assert_loads_with_peft(zero3)


def test_an_interrupted_zero3_run_resumes_to_the_same_adapter(runs, zero3):
    a, b = interrupted_and_resumed(runs[0] / "zero3_interrupted", "deepspeed"), adapter(zero3)
    assert max((a[key] - b[key]).abs().max().item() for key in a) < 1e-5


def test_zero3_with_4bit_weights_follows_data_parallel(quantized_runs):
    ddp, _, zero3 = quantized_runs
    assert (zero3 / "checkpoint-6" / "global_step6").is_dir()
    assert len(losses(zero3)) == len(losses(ddp)) == 6
    assert losses(zero3) == pytest.approx(losses(ddp), abs=5e-3)
    a, b = adapter(zero3), adapter(ddp)
    assert sorted(a) == sorted(b) and len(a) > 0
    assert max((a[key].float() - b[key].float()).abs().max().item() for key in a) < 5e-3
