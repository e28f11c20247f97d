"""Axolotl configs (issue 17, point 5): `lorawiz train axolotl.yml`, `config show`, `plan` read one, each key
mapped to lorawiz's; the keys lorawiz does not understand are named in one list; `datasets:` is mixed at load time
with lorawiz mix's code; `config show --as lorawiz` prints the equivalent lorawiz config."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO, subprocess_env

AXOLOTL = REPO / "tests/fixtures/configs/axolotl.yml"


@pytest.fixture
def project(tmp_path):
    from lorawiz.builtin.triage import triage_rows

    shutil.copy(AXOLOTL, tmp_path / "axolotl.yml")
    (tmp_path / "data").mkdir()
    (tmp_path / "data/domain.jsonl").write_text("".join(json.dumps(r) + "\n" for r in triage_rows("train")[:120]))
    alpaca = [{"instruction": f"Name a colour number {i}.", "input": "", "output": "blue"} for i in range(100)]
    (tmp_path / "data/general.jsonl").write_text("".join(json.dumps(r) + "\n" for r in alpaca))
    return tmp_path


def flat(result) -> tuple[dict, dict]:
    data = json.loads(result.output)
    return {k: v for section in data["config"].values() for k, v in section.items()}, data["sources"]


def test_an_axolotl_config_maps_every_key(cli, project, monkeypatch):
    monkeypatch.chdir(project)
    result = cli("config", "show", "axolotl.yml", "--json")
    assert result.exit_code == 0, result.output
    values, sources = flat(result)
    expected = {
        "model_name_or_path": "meta-llama/Llama-3.1-8B", "load_in_4bit": True, "lora_r": 32, "lora_alpha": 16,
        "lora_dropout": 0.05, "lora_target_modules": ["q_proj", "v_proj"], "val_split": 0.05,
        "max_seq_length": 1024, "packing": False, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 4,
        "per_device_eval_batch_size": 2, "num_train_epochs": 3, "optim": "paged_adamw_8bit",
        "lr_scheduler_type": "cosine", "learning_rate": 2e-4, "warmup_steps": 10, "weight_decay": 0.0, "bf16": True,
        "tf32": False, "gradient_checkpointing": True, "logging_steps": 10, "evals_per_epoch": 4,
        "saves_per_epoch": 1, "save_total_limit": 2, "early_stopping_patience": 3, "pad_token": "<|end_of_text|>",
    }
    for key, value in expected.items():
        assert values[key] == value, key
        assert sources[key]["label"] == "file axolotl.yml (Axolotl)", key
    assert values["output_dir"] == "./outputs/qlora-out"
    assert [entry["weight"] for entry in values["datasets"]] == [0.8, 0.2]
    assert values["datasets"][1]["max_samples"] == 40
    assert values["datasets"][0]["path"] == str(project / "data/domain.jsonl")  # next to the config


def test_keys_lorawiz_does_not_understand_are_listed_together(cli, project, monkeypatch):
    monkeypatch.chdir(project)
    text = (project / "axolotl.yml").read_text() + "rope_scaling: {type: linear}\nneftune_noise_alpha: 5\n" \
        "adapter: ia3\n"
    (project / "axolotl.yml").write_text(text.replace("adapter: qlora\n", ""))
    result = cli("config", "show", "axolotl.yml")
    assert result.exit_code == 2
    for key in ('"rope_scaling"', '"neftune_noise_alpha"', "adapter: ia3"):
        assert key in result.output, key
    assert "3 problems" in result.output and "Traceback" not in result.output
    assert "model_type" not in result.output  # cosmetic: transformers reads the class from the model's config


def test_as_lorawiz_prints_a_config_that_reads_back_the_same(cli, project, monkeypatch):
    monkeypatch.chdir(project)
    result = cli("config", "show", "axolotl.yml", "--as", "lorawiz")
    assert result.exit_code == 0, result.output
    assert "# from axolotl.yml line" in result.output
    (project / "lorawiz.yaml").write_text(result.output)
    assert set(yaml.safe_load(result.output)) <= {"model", "data", "lora", "training", "optimization", "logging"}
    original, _ = flat(cli("config", "show", "axolotl.yml", "--json"))
    translated, _ = flat(cli("config", "show", "lorawiz.yaml", "--json"))
    assert translated == original


def test_plan_mixes_the_datasets_with_their_weights_and_caps(cli, project, monkeypatch):
    monkeypatch.chdir(project)
    result = cli("plan", "axolotl.yml", "--model", "builtin:tiny", "--hardware", "a100-80gb", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    # the largest 80/20 mix without repeats: domain's 120 rows are 80% of 150 (general, capped at 40, gives 30)
    assert plan["data"]["rows"] == 150
    train_file = plan["values"]["train_file"]
    assert train_file["kind"] == "derived" and train_file["reason"].startswith("mix of the 2 datasets: domain.jsonl ")
    with open(train_file["value"], encoding="utf-8") as handle:
        mixed = [json.loads(line) for line in handle]
    assert sum(1 for row in mixed if row["messages"][-1]["content"] == "blue") == 30
    (project / "data/domain.jsonl").write_text((project / "data/domain.jsonl").read_text() * 2)  # 240 rows now
    plan = json.loads(cli("plan", "axolotl.yml", "--model", "builtin:tiny", "--hardware", "a100-80gb",
                          "--json").output)
    assert plan["data"]["rows"] == 200  # now max_samples binds: 40 general rows are 20% of 200
    assert plan["values"]["eval_steps"]["reason"].startswith("evals_per_epoch 4 of")


def test_train_reads_the_axolotl_config(project):
    done = subprocess.run([sys.executable, "-m", "lorawiz", "train", "axolotl.yml", "--model", "builtin:tiny",
                           "--no-load-in-4bit", "--no-bf16", "--optim", "adamw_torch", "--max_steps", "2",
                           "--pad_token", "<|endoftext|>"],
                          cwd=project, capture_output=True, text=True, env=subprocess_env(CI="true"), timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    out = project / "outputs/qlora-out"
    assert (out / "adapter_model.safetensors").is_file()
    saved = yaml.safe_load((out / "lorawiz.yaml").read_text())
    assert "train_file" not in saved["data"] and len(saved["data"]["datasets"]) == 2  # the mix is made again


def test_a_pad_token_the_tokenizer_lacks_is_refused(project):
    done = subprocess.run([sys.executable, "-m", "lorawiz", "train", "axolotl.yml", "--model", "builtin:tiny",
                           "--no-load-in-4bit", "--no-bf16", "--optim", "adamw_torch", "--max_steps", "1"],
                          cwd=project, capture_output=True, text=True, env=subprocess_env(CI="true"), timeout=600)
    assert done.returncode == 2
    assert "pad_token <|end_of_text|>: the tokenizer has no such token" in done.stderr


def test_an_axolotl_hub_model_id_pushes_as_axolotl_does(cli, project, monkeypatch):
    """Axolotl pushes (privately) whenever a config names hub_model_id; lorawiz reads it the same way."""
    monkeypatch.chdir(project)
    text = (project / "axolotl.yml").read_text() + "hub_model_id: you/llama-qlora\nhub_strategy: every_save\n"
    (project / "axolotl.yml").write_text(text)
    result = cli("config", "show", "axolotl.yml", "--json")
    assert result.exit_code == 0, result.output
    values, sources = flat(result)
    assert (values["hub_model_id"], values["push_to_hub"], values["hub_private_repo"], values["hub_strategy"]) == \
        ("you/llama-qlora", True, True, "every_save")
    assert sources["push_to_hub"]["label"] == "file axolotl.yml (Axolotl)"
