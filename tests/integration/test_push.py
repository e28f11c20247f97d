"""`lorawiz train --push-to-hub` and `lorawiz push` against a local stand-in of the Hub API (tests/hub_standin.py):
what reaches the repository, its visibility, the model card's metadata, and the refusals (credentials,
checkpoints, a card the Hub would refuse, no token)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import subprocess_env
from tests.hub_standin import TOKEN, HubStandIn


@pytest.fixture(scope="module")
def hub():
    with HubStandIn() as standin:
        yield standin


def lorawiz(hub, *args: str, cwd: Path, token: str | None = TOKEN) -> subprocess.CompletedProcess:
    env = subprocess_env(CI="true", HF_ENDPOINT=hub.endpoint, HF_HUB_DISABLE_TELEMETRY="1",
                         HF_HOME=str(cwd / "hf-home"), HF_HUB_OFFLINE="0")
    env.pop("HF_TOKEN", None)
    if token:
        env["HF_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "lorawiz", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def card_meta(text: str) -> dict:
    return yaml.safe_load(text.split("---")[1])


@pytest.fixture(scope="module")
def trained(hub, tmp_path_factory):
    """A 4-step run that pushes each checkpoint (the Trainer, hub_strategy every_save) and itself at the end
    (lorawiz), to a private repository (the default)."""
    from lorawiz.builtin.triage import triage_rows

    home = tmp_path_factory.mktemp("home")
    (home / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in triage_rows("train")[:32]))
    (home / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in triage_rows("validation")[:8]))
    done = lorawiz(hub, "train", "--model", "builtin:tiny", "--data", "train.jsonl", "--val-data", "val.jsonl",
                   "--output-dir", "run", "--max-steps", "4", "--set", "eval_steps=2", "--plain", "--push-to-hub",
                   "--hub-model-id", "tester/tiny-run", "--run-name", "tiny-trial", "--set", "hub_strategy=every_save",
                   cwd=home)
    assert done.returncode == 0, done.stdout + done.stderr
    return home, done.stdout + done.stderr


def test_a_run_with_push_to_hub_lands_in_a_private_repo_with_its_card(hub, trained):
    _, out = trained
    assert hub.repos["tester/tiny-run"] == {"private": True}
    commits = [commit for commit in hub.commits if commit["repo"] == "tester/tiny-run"]
    assert [c["summary"] for c in commits] == ["Training in progress, step 2", "Training in progress, step 4",
                                               "lorawiz: run"]
    # the Trainer's checkpoint pushes upload the whole folder; lorawiz's final commit takes its leftovers away
    assert {".lorawiz.lock", "training_args.bin"} <= set(commits[0]["files"])
    assert sorted(commits[-1]["deleted"]) == [".lorawiz.lock", "training_args.bin"]
    files = hub.files["tester/tiny-run"]
    assert {"adapter_model.safetensors", "adapter_config.json", "lorawiz.yaml", "all_results.json",
            "README.md"} <= set(files)
    assert not [name for name in files if name.startswith("checkpoint-") or name.startswith(".lorawiz")
                or name == "training_args.bin"]
    meta = card_meta(files["README.md"].decode())
    assert meta["library_name"] == "peft" and meta["pipeline_tag"] == "text-generation"
    assert "base_model" not in meta  # builtin:tiny is a local folder: the Hub refuses a path there
    assert {"lorawiz", "lora", "sft"} <= set(meta["tags"])
    loss = meta["model-index"][0]["results"][0]["metrics"][0]
    assert loss["type"] == "loss" and loss["value"] == pytest.approx(
        json.loads(files["all_results.json"])["eval_loss"], abs=1e-4)
    assert 'PeftModel.from_pretrained(base, "tester/tiny-run")' in files["README.md"].decode()
    assert "pushed" in out and "tester/tiny-run" in out
    assert "serve it with vLLM: vllm serve " in out and "--enable-lora --lora-modules run=" in out
    assert yaml.safe_load(files["lorawiz.yaml"])["logging"]["run_name"] == "tiny-trial"


def test_push_sends_a_finished_run_public_with_its_eval_results_and_never_its_checkpoints(hub, trained):
    home, _ = trained
    run = home / "run"
    assert list(run.glob("checkpoint-*"))
    (run / "eval-val-1.json").write_text(json.dumps({"data": "val.jsonl", "results": {
        "base": {"loss": {"loss": 3.0, "perplexity": 20.1}},
        "fine_tuned": {"loss": {"loss": 1.5, "perplexity": 4.48}}}}))
    done = lorawiz(hub, "push", str(run), "--repo", "tester/tiny-public", "--public", "--base-model",
                   "Qwen/Qwen3-0.6B", cwd=home)
    assert done.returncode == 0, done.stdout + done.stderr
    assert hub.repos["tester/tiny-public"] == {"private": False}
    assert hub.commits[-1]["revision"] == "main"
    files = hub.files["tester/tiny-public"]
    assert "eval-val-1.json" in files and not any(name.startswith("checkpoint-") for name in files)
    meta = card_meta(files["README.md"].decode())
    assert meta["base_model"] == "Qwen/Qwen3-0.6B"
    metrics = {m["type"]: m["value"] for r in meta["model-index"][0]["results"] for m in r["metrics"]}
    assert metrics["perplexity"] == pytest.approx(4.48)
    assert "| perplexity | 20.1000 | 4.4800 |" in files["README.md"].decode().replace("20.1 ", "20.1000 ")
    assert "left out: checkpoint-" in done.stdout + done.stderr


def test_checkpoints_go_only_when_asked(hub, trained):
    home, _ = trained
    done = lorawiz(hub, "push", str(home / "run"), "--repo", "tester/with-checkpoints", "--include-checkpoints",
                   "--revision", "step-4", "-m", "all of it", cwd=home)
    assert done.returncode == 0, done.stdout + done.stderr
    assert any(name.startswith("checkpoint-2/") for name in hub.files["tester/with-checkpoints"])
    assert hub.repos["tester/with-checkpoints"]["branches"] == ["step-4"]
    assert (hub.commits[-1]["revision"], hub.commits[-1]["summary"]) == ("step-4", "all of it")


def test_a_folder_with_a_token_in_it_is_refused_and_nothing_is_committed(hub, trained, tmp_path):
    home, _ = trained
    copy = tmp_path / "run"
    shutil.copytree(home / "run", copy, ignore=shutil.ignore_patterns("checkpoint-*"))
    (copy / "notes.txt").write_text("first line\nexport HF_TOKEN=hf_" + "a" * 34 + "\n")
    commits = len(hub.commits)
    done = lorawiz(hub, "push", str(copy), "--repo", "tester/leaky", cwd=home)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "notes.txt (a Hugging Face token, line 2)" in done.stderr and "--include-secrets" in done.stderr
    assert "Traceback" not in done.stderr and len(hub.commits) == commits and "tester/leaky" not in hub.repos


@pytest.mark.parametrize(("args", "message"), [
    (["--repo", "not a repo"], "--repo not a repo: not a Hub repository id"),
    (["--repo", "tester/x", "--base-model", "./my-base"], "--base-model ./my-base: not a Hub repository id"),
])
def test_bad_ids_are_refused_before_any_request(hub, trained, args, message):
    home, _ = trained
    before = len(hub.requests)
    done = lorawiz(hub, "push", str(home / "run"), *args, cwd=home)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert len(hub.requests) == before


def test_no_token_is_a_clear_error(hub, trained):
    home, _ = trained
    done = lorawiz(hub, "push", str(home / "run"), "--repo", "tester/x", cwd=home, token=None)
    assert done.returncode == 2 and "no Hugging Face token" in done.stderr and "hf auth login" in done.stderr


def test_train_with_push_to_hub_and_no_token_stops_before_the_model_loads(hub, tmp_path):
    done = lorawiz(hub, "train", "--model", "builtin:tiny", "--data", "builtin:triage", "--output-dir", "run",
                   "--push-to-hub", "--hub-model-id", "tester/never", "--max-steps", "1", cwd=tmp_path, token=None)
    assert done.returncode == 2 and "no Hugging Face token" in done.stderr, done.stderr
    assert not (tmp_path / "run" / "run.json").exists()
