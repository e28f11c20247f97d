"""Preference tuning end to end on builtin:tiny: `lorawiz train --method dpo` on preference pairs, from a new adapter
(the reference is the base: the adapter off) and from an SFT run's adapter (`--from-adapter`: the reference is that
adapter as loaded), through TRL's DPOTrainer; `--method kto` through its KTOTrainer; their reward margin (and DPO's
preference accuracy) in metrics.jsonl and the log; `lorawiz eval` on held-out pairs; and the refusals: a file of
conversations, LoRA settings the starting adapter cannot take, KTO with one row a micro-batch."""

from __future__ import annotations

import json
import math
import subprocess

import pytest

from tests.conftest import lorawiz_exe, subprocess_env


def run(*args, cwd):
    return subprocess.run([lorawiz_exe(), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=subprocess_env(), stdin=subprocess.DEVNULL, timeout=900)


def dpo(folder, name, pairs, *extra, method="dpo"):
    train, val = pairs
    done = run("train", "--model", "builtin:tiny", "--data", train, "--val-data", val, "--method", method,
               "--max-steps", "4", "--learning-rate", "1e-3", "--set", "eval_steps=2", "--set", "save_steps=2",
               "--plain", "-o", folder / name, *extra, cwd=folder)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done, folder / name


def records(out, kind):
    return [row for row in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if row["type"] == kind]


@pytest.fixture(scope="module")
def sft_run(data, tmp_path_factory):
    train, val = data
    folder = tmp_path_factory.mktemp("sft")
    done = run("train", "--model", "builtin:tiny", "--data", train, "--val-data", val, "--max-steps", "8",
               "--learning-rate", "3e-3", "--lora-r", "4", "--set", "eval_strategy=no", "--set",
               "load_best_model_at_end=false", "--set", "early_stopping_patience=0", "--plain", "-o",
               folder / "sft", cwd=folder)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return folder / "sft"


def test_dpo_from_a_new_adapter_starts_at_the_reference_and_logs_preference_scores(pairs, tmp_path):
    done, out = dpo(tmp_path, "dpo", pairs)
    first = records(out, "train")[0]
    # the reference is the base with the adapter off, and a new adapter computes the base: log(2) exactly
    assert math.isclose(first["loss"], math.log(2), abs_tol=1e-4)
    evals = records(out, "eval")
    assert evals and all("eval_rewards/accuracies" in row and "eval_rewards/margins" in row for row in evals)
    assert "preference accuracy" in done.stdout and "reward margin" in done.stdout
    assert "beta = 0.1" in done.stdout and "learning_rate = 0.001" in done.stdout
    saved = json.loads((out / "adapter_config.json").read_text())
    assert saved["peft_type"] == "LORA" and not (out / "ref").exists()


def test_dpo_from_an_sft_adapter_trains_that_adapter_against_itself(pairs, sft_run, tmp_path):
    from safetensors.torch import load_file

    done, out = dpo(tmp_path, "dpo", pairs, "--from-adapter", sft_run)
    assert "lora_r = 4" in done.stdout and "from_adapter" in done.stdout
    first = records(out, "train")[0]
    # the reference is the SFT adapter as loaded: the policy starts equal to it (against the base, the SFT
    # adapter's margins would make the first loss differ from log 2)
    assert math.isclose(first["loss"], math.log(2), abs_tol=1e-4)
    before, after = load_file(sft_run / "adapter_model.safetensors"), load_file(out / "adapter_model.safetensors")
    assert before.keys() == after.keys()
    moved = max((after[k] - before[k]).abs().max().item() for k in before)
    size = max(before[k].abs().max().item() for k in before if "lora_B" in k)
    assert 0 < moved < size  # trained on from the SFT weights, not from a new adapter (whose B starts at zero)
    assert not (out / "ref").exists()  # TRL's frozen reference copy is not part of the run's adapter


def test_a_starting_adapter_refuses_another_rank(pairs, sft_run, tmp_path):
    train, _ = pairs
    done = run("train", "--data", train, "--method", "dpo", "--from-adapter", sft_run, "--lora-r", "16",
               "--dry-run", "-o", tmp_path / "x", cwd=tmp_path)
    assert done.returncode == 2
    assert "lora_r 16 cannot apply" in done.stderr and "Traceback" not in done.stderr


def test_dpo_refuses_a_file_of_conversations(data, tmp_path):
    train, _ = data
    done = run("train", "--model", "builtin:tiny", "--data", train, "--method", "dpo", "--dry-run", "-o",
               tmp_path / "x", cwd=tmp_path)
    assert done.returncode == 2
    assert "--method dpo learns from preference pairs" in done.stderr and "messages rows" in done.stderr


def test_kto_learns_each_answer_on_its_own_from_the_reference(pairs, tmp_path):
    done, out = dpo(tmp_path, "kto", pairs, method="kto")
    first = records(out, "train")[0]
    # KTO's loss with the policy equal to the reference (rewards and KL 0): 1 - sigmoid(0) = 0.5
    assert math.isclose(first["loss"], 0.5, abs_tol=1e-4)
    assert all("eval_rewards/margins" in row for row in records(out, "eval"))
    assert "reward margin" in done.stdout and "128 training rows" in done.stdout  # 64 pairs, two rows each
    assert "group_by_length = false" in done.stdout and not (out / "ref").exists()


def test_kto_refuses_one_row_a_micro_batch(pairs, tmp_path):
    train, _ = pairs
    done = run("train", "--model", "builtin:tiny", "--data", train, "--method", "kto", "--set",
               "per_device_train_batch_size=1", "--dry-run", "-o", tmp_path / "x", cwd=tmp_path)
    assert done.returncode == 2 and "must be at least 2" in done.stderr and "Traceback" not in done.stderr


def test_eval_ranks_held_out_pairs_with_the_base_and_the_tuned_model(pairs, tmp_path):
    _, out = dpo(tmp_path, "dpo", pairs)
    _, val = pairs
    done = run("eval", out, "--data", val, "--json", tmp_path / "eval.json", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["task"] == "preference"
    base, tuned = report["results"]["base"]["preference"], report["results"]["fine_tuned"]["preference"]
    assert base["pairs"] == tuned["pairs"] == 16
    assert 0 <= base["preference_accuracy"] <= 1 and 0 <= tuned["preference_accuracy"] <= 1
    assert set(report["rewards"]) == {"reward_accuracy", "reward_margin"}
    assert "preference accuracy" in done.stdout and "reward accuracy" in done.stdout
    refused = run("eval", out, "--data", val, "--lm-eval", "arc_easy", "--json", tmp_path / "x.json", cwd=tmp_path)
    assert refused.returncode == 2 and "--lm-eval" in refused.stderr and "preference pairs" in refused.stderr


def test_orpo_trains_without_a_reference_on_lorawiz_tokenised_pairs(pairs, tmp_path):
    done, out = dpo(tmp_path, "orpo", pairs, method="orpo")
    first = records(out, "train")[0]
    # ORPO's loss is the SFT loss on the chosen answer plus beta x the odds-ratio term: far above DPO's log 2
    assert first["loss"] > 1.0
    evals = records(out, "eval")
    assert evals and all("eval_rewards/accuracies" in row and "eval_nll_loss" in row for row in evals)
    assert "no reference model" in done.stdout and "remove_unused_columns = false" in done.stdout
    assert "TRLExperimentalWarning" not in done.stdout + done.stderr


def test_orpo_refuses_to_remove_the_columns_its_collator_reads(pairs, tmp_path):
    train, _ = pairs
    done = run("train", "--model", "builtin:tiny", "--data", train, "--method", "orpo", "--set",
               "remove_unused_columns=true", "--dry-run", "-o", tmp_path / "x", cwd=tmp_path)
    assert done.returncode == 2 and "Set remove_unused_columns: false" in done.stderr
