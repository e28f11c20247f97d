"""`lorawiz train` end to end on CPU with the built-in tiny model: outputs, resume, faults, dry run, 4-bit.

Every run is a real subprocess (signals and SIGKILL included), on a small slice of builtin:triage.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import subprocess_env

STEPS = ["--max-steps", "8", "--set", "eval_steps=4", "--set", "logging_steps=1"]


def lorawiz(*args: str, fault: str | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    env = subprocess_env(CI="true")
    if fault:
        env["LORAWIZ_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "lorawiz", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def train(out: Path, data, *extra: str, fault: str | None = None) -> subprocess.CompletedProcess:
    train_file, val_file = data
    return lorawiz("train", "--model", "builtin:tiny", "--data", str(train_file), "--val-data", str(val_file),
                   "--output-dir", str(out), *STEPS, *extra, fault=fault)


def results(out: Path) -> dict:
    return json.loads((out / "all_results.json").read_text())


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("runs") / "baseline"
    done = train(out, data)
    assert done.returncode == 0, done.stdout + done.stderr
    return out, done


def test_a_full_run_writes_every_output(baseline):
    out, done = baseline
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "lorawiz.yaml",
                 "training.log", "metrics.jsonl", "all_results.json", "README.md", "run.json"):
        assert (out / name).is_file(), name
    assert list((out / "logs").glob("events.out.tfevents.*")), "no TensorBoard events in <output_dir>/logs"
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["type"] == "train"] == list(range(1, 9))
    assert [r["step"] for r in records if r["type"] == "eval"] == [4, 8]
    assert results(out)["global_step"] == 8
    # The adapter loads with PEFT, and lorawiz.yaml re-runs.
    from peft import PeftConfig

    assert PeftConfig.from_pretrained(str(out)).r == int(_yaml(out)["lora"]["lora_r"])
    assert _yaml(out)["data"]["group_by_length"] is True  # the recommender's default, recorded with the run
    # The plain log: one line per step, no progress bars or dict dumps.
    steps = [line for line in done.stdout.splitlines() if line.startswith("step ")]
    assert len(steps) == 8 and "{'loss'" not in done.stdout and "it/s]" not in done.stdout + done.stderr


def _yaml(out: Path) -> dict:
    import yaml

    return yaml.safe_load((out / "lorawiz.yaml").read_text())


def test_interrupt_then_resume_ends_like_the_uninterrupted_run(tmp_path, data, baseline):
    out = tmp_path / "run"
    stopped = train(out, data, fault="sigint@5")
    assert stopped.returncode == 130, stopped.stdout + stopped.stderr
    assert "resume with: lorawiz train" in stopped.stdout and "--resume auto" in stopped.stdout
    resumed = train(out, data, "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming from" in resumed.stdout
    expected = results(baseline[0])
    got = results(out)
    assert got["global_step"] == expected["global_step"]
    assert got["final_loss"] == pytest.approx(expected["final_loss"], rel=1e-4)
    assert got["eval_loss"] == pytest.approx(expected["eval_loss"], rel=1e-4)


def test_sigkill_resumes_from_the_last_complete_checkpoint(tmp_path, data, baseline):
    out = tmp_path / "run"
    killed = train(out, data, fault="kill@6")
    assert killed.returncode == -9
    half = out / "checkpoint-7"  # a checkpoint being written when the process died: never resumed from
    half.mkdir()
    (half / "trainer_state.json").write_text('{"global_step": 7')
    resumed = train(out, data, "--resume", "auto")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming from" in resumed.stdout and "checkpoint-4" in resumed.stdout
    assert results(out)["final_loss"] == pytest.approx(results(baseline[0])["final_loss"], rel=1e-4)


def test_resume_refuses_other_data(tmp_path, data):
    out = tmp_path / "run"
    assert train(out, data, fault="sigint@3").returncode == 130
    other = tmp_path / "other.jsonl"
    other.write_text(data[0].read_text().replace("fire", "blaze", 1))
    refused = train(out, (other, data[1]), "--resume")
    assert refused.returncode == 2 and "data changed" in refused.stderr


def test_resume_accepts_the_same_bytes_in_a_touched_file(tmp_path, data):
    """The run's data key (size, mtime, sampled blocks) differs after a touch; the full hash, computed in the
    background while the run started, says the bytes are the same."""
    out, copy = tmp_path / "run", tmp_path / "train.jsonl"
    copy.write_bytes(data[0].read_bytes())
    assert train(out, (copy, data[1]), fault="sigint@3").returncode == 130
    later = copy.stat().st_mtime + 60
    os.utime(copy, (later, later))
    resumed = train(out, (copy, data[1]), "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming from" in resumed.stdout


def test_nan_loss_stops_with_causes_and_keeps_the_last_good_checkpoint(tmp_path, data):
    out = tmp_path / "run"
    done = train(out, data, fault="nan@6")
    assert done.returncode == 2
    assert "the loss became nan at step 6" in done.stderr and "learning rate" in done.stderr
    assert "checkpoint-4" in done.stderr and not (out / "checkpoint-8").exists()


def test_out_of_memory_restarts_once_with_the_next_fallback(tmp_path, data, baseline):
    out = tmp_path / "run"
    done = train(out, data, "--batch-size", "4", "--gradient-accumulation-steps", "4", fault="oom@6")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "out of memory: restarting once with micro-batch 4 -> 2" in done.stdout
    assert _yaml(out)["training"]["per_device_train_batch_size"] == 2
    assert _yaml(out)["training"]["gradient_accumulation_steps"] == 8
    assert results(out)["global_step"] == 8


def test_output_folder_of_another_run_needs_overwrite(tmp_path, data, baseline):
    refused = train(baseline[0], data)
    assert refused.returncode == 2 and "already holds a training run" in refused.stderr
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    refused = train(stranger, data, "--overwrite")
    assert refused.returncode == 2 and (stranger / "notes.txt").read_text() == "mine"


def test_dry_run_shows_the_loss_mask_and_trains_nothing(tmp_path, data):
    out = tmp_path / "run"
    done = train(out, data, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "[fire]" in done.stdout or any(f"[{c}" in done.stdout for c in ("flood", "medical", "hazmat", "traffic"))
    assert "tokens are trained on" in done.stdout and not (out / "adapter_model.safetensors").exists()


def test_qlora_4bit_trains_on_cpu(tmp_path, data):
    out = tmp_path / "run"
    done = train(out, data, "--load-in-4bit", "--max-steps", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert _yaml(out)["model"]["load_in_4bit"] is True and (out / "adapter_model.safetensors").is_file()


def test_flat_default_json_config_with_overrides(tmp_path, data):
    config = tmp_path / "default.json"
    config.write_text(json.dumps({"model_name_or_path": "builtin:tiny", "train_file": str(data[0]),
                                  "validation_file": str(data[1]), "lora_r": 8, "learning_rate": 1e-4,
                                  "max_steps": 4, "eval_steps": 2, "logging_steps": 1}))
    out = tmp_path / "run"
    done = lorawiz("train", str(config), "--output-dir", str(out), "--learning_rate", "3e-4", "--lora_r", "16")
    assert done.returncode == 0, done.stdout + done.stderr
    saved = _yaml(out)
    assert saved["training"]["learning_rate"] == 3e-4 and saved["lora"]["lora_r"] == 16
    assert saved["training"]["max_steps"] == 4 and results(out)["global_step"] == 4


def test_run_help_lists_the_training_flags():
    done = lorawiz("train", "--help")
    for flag in ("--resume", "--dry-run", "--backend", "--overwrite", "--learning-rate", "--output-dir"):
        assert flag in done.stdout


def test_two_processes_train_data_parallel_over_gloo(tmp_path, data):
    out = tmp_path / "run"
    done = train(out, data, "--num-processes", "2", "--max-steps", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    import torch

    assert torch.load(out / "training_args.bin", weights_only=False).world_size == 2
    assert done.stdout.count("fits: yes") == 1  # only rank 0 prints the plan and the log
    # the plan counts both processes, which share the batch and the RAM, as the run does
    batch = next(line for line in done.stdout.splitlines() if line.startswith("batch: "))
    assert batch.endswith(" x 2 processes")
    assert "(90% of RAM / 2 processes)" in done.stdout
    assert sum(1 for line in done.stdout.splitlines() if line.startswith("step ")) == 2
    assert (out / "adapter_model.safetensors").is_file()


def test_accelerate_launch_runs_one_training_process_per_launched_process(tmp_path, data):
    # How --config_file pipelines start: `accelerate launch --num_processes 2 -m lorawiz train ...`. Each process
    # trains (no launch of its own inside), over gloo on this CPU, and one writes the outputs.
    out, (train_file, val_file) = tmp_path / "run", data
    done = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                           "-m", "lorawiz", "train", "--model", "builtin:tiny", "--data", str(train_file),
                           "--val-data", str(val_file), "--output-dir", str(out), "--max-steps", "2",
                           "--set", "logging_steps=1"],
                          capture_output=True, text=True, timeout=600,
                          # as on a machine with 2 GPUs: a process that did not know it was launched would launch 2
                          env=subprocess_env(CI="true", ACCELERATE_NUM_PROCESSES="2"))
    assert done.returncode == 0, done.stdout + done.stderr
    import torch

    assert torch.load(out / "training_args.bin", weights_only=False).world_size == 2
    assert done.stdout.count("fits: yes") == 1  # one plan: rank 0's, and no nested launch printing its own
    assert sum(1 for line in done.stdout.splitlines() if line.startswith("step ")) == 2
    assert (out / "adapter_model.safetensors").is_file()


def test_early_stopping_triggers_and_says_which_checkpoint_is_kept(tmp_path, data):
    out = tmp_path / "run"
    done = train(out, data, "--set", "eval_steps=2", "--set", "early_stopping_patience=1",
                 "--set", "early_stopping_threshold=0.5")
    assert done.returncode == 0, done.stdout + done.stderr
    kept = results(out)["kept_checkpoint"]
    assert results(out)["global_step"] < 8 and kept
    # the checkpoint the run ends with, named when it stops (eval_loss fell by less than 50%: step 4's)
    assert f"for 1 evaluation; keeping {kept} (eval_loss " in done.stdout
    assert "early stopping" in (out / "training.log").read_text().lower()


def test_loss_on_every_token_when_asked(tmp_path, data):
    done = train(tmp_path / "run", data, "--dry-run", "--set", "assistant_only_loss=false")
    assert done.returncode == 0, done.stderr
    counts = re.search(r"(\d+) of (\d+) tokens are trained on \(every token\)", done.stdout)
    assert counts and counts.group(1) == counts.group(2)


def test_a_plan_for_a_gpu_runs_on_this_cpu_with_the_changes_said(tmp_path, data):
    """`--hardware rtx4090` on a CPU: planned with bf16 and paged 8-bit AdamW, run in fp32 with AdamW, each change
    printed, and lorawiz.yaml and the trainer's arguments holding what actually ran."""
    import torch
    import yaml

    out = tmp_path / "gpu-plan"
    done = train(out, data, "--hardware", "rtx4090", "--seed", "0", "--set", "max_grad_norm=0")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "changed to run here: bf16: True -> False" in done.stdout
    assert "changed to run here: optim: paged_adamw_8bit -> adamw_torch" in done.stdout
    ran = torch.load(out / "training_args.bin", weights_only=False)
    assert (ran.bf16, str(ran.optim.value), ran.seed, ran.max_grad_norm, ran.max_steps) == (False, "adamw_torch", 0,
                                                                                            0.0, 8)
    sections = yaml.safe_load((out / "lorawiz.yaml").read_text())
    saved = {key: value for section in sections.values() for key, value in section.items()}
    assert (saved["bf16"], saved["optim"], saved["seed"], saved["max_grad_norm"]) == (False, "adamw_torch", 0, 0.0)


def test_packing_trains_from_the_tokenised_cache(tmp_path, data):
    """With packing on, TRL packs the memory-mapped rows lorawiz tokenised (the view without its length column)."""
    out = tmp_path / "run"
    done = train(out, data, "--packing", "--max-steps", "2", "--set", "eval_steps=2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert results(out)["global_step"] == 2 and (out / "adapter_model.safetensors").is_file()


def test_eval_reads_the_cache_training_built(tmp_path, data, baseline):
    """`lorawiz eval` on the training data tokenises it with the adapter's saved tokenizer: the same fingerprint
    as training's, so the cache gains no entry."""
    out, _ = baseline
    env_cache = Path(os.environ["HF_DATASETS_CACHE"]) / "lorawiz"
    train_file, _ = data
    before = sorted(p for p in env_cache.glob(f"{train_file.name}-*/*") if p.is_dir())
    done = lorawiz("eval", str(out), "--data", str(train_file), "--no-compare-base", "--samples", "0",
                   "--json", str(tmp_path / "e.json"))
    assert done.returncode == 0, done.stdout + done.stderr
    after = sorted(p for p in env_cache.glob(f"{train_file.name}-*/*") if p.is_dir())
    assert before and after == before
