"""What `lorawiz train` and `lorawiz merge` leave on disk: weight files and folders with the permissions the umask
gives (as data files get), and a model card whose re-run command trains again from another folder."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import subprocess_env

UMASK = 0o002  # not the usual 022, so that a mode copied from elsewhere cannot pass by chance


def lorawiz(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lorawiz", *args], capture_output=True, text=True,
                          env=subprocess_env(CI="true"), cwd=cwd, umask=UMASK, timeout=300)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 4-step run started in its own folder with relative paths."""
    from lorawiz.builtin.triage import triage_rows

    home = tmp_path_factory.mktemp("home")
    (home / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in triage_rows("train")[:32]))
    (home / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in triage_rows("validation")[:8]))
    done = lorawiz("train", "--model", "builtin:tiny", "--data", "train.jsonl", "--val-data", "val.jsonl",
                   "--output-dir", "run", "--max-steps", "4", "--set", "eval_steps=2", cwd=home)
    assert done.returncode == 0, done.stdout + done.stderr
    return home / "run"


def _modes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder.parent)): p.stat().st_mode & 0o777 for p in [folder, *folder.rglob("*")]}


def _wrong_modes(folder: Path) -> dict[str, str]:
    want_file, want_dir = 0o666 & ~UMASK, 0o777 & ~UMASK
    return {name: oct(mode) for name, mode in _modes(folder).items()
            if mode != (want_dir if (folder.parent / name).is_dir() else want_file)}


def test_the_adapter_and_every_file_of_the_run_get_the_umasks_permissions(run):
    assert (run / "adapter_model.safetensors").is_file() and list(run.glob("checkpoint-*"))
    assert _wrong_modes(run) == {}


def test_the_merged_model_folder_gets_the_umasks_permissions(run, tmp_path):
    done = lorawiz("merge", str(run), "-o", str(tmp_path / "merged"), "--dtype", "fp32", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "merged" / "config.json").is_file()
    assert _wrong_modes(tmp_path / "merged") == {}  # tempfile.mkdtemp alone would leave the folder 0700


def test_the_model_cards_rerun_command_trains_again_from_another_folder(run, tmp_path):
    card = (run / "README.md").read_text()
    results = json.loads((run / "all_results.json").read_text())
    assert f"- {results['global_step']} steps, " in card
    assert f"final training loss: {results['final_loss']:.4f}" in card
    assert f"evaluation loss of the kept model ({Path(results['kept_checkpoint']).name}): " \
           f"{results['eval_loss']:.4f}" in card
    command = re.search(r"^lorawiz train .* --output-dir NEW_DIR$", card, re.MULTILINE)
    assert command, card
    argv = shlex.split(command.group().replace("NEW_DIR", str(tmp_path / "again")))
    done = lorawiz(*argv[1:], cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "again" / "adapter_model.safetensors").is_file()
    again = json.loads((tmp_path / "again" / "all_results.json").read_text())
    assert again["final_loss"] == pytest.approx(results["final_loss"], rel=1e-4)  # the same run, seed included


def test_checkpoints_of_a_run_killed_midway_get_the_umasks_permissions(tmp_path):
    """Weights are given normal permissions as each checkpoint is saved, not only when the run completes."""
    from lorawiz.builtin.triage import triage_rows

    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in triage_rows("train")[:32]))
    env = subprocess_env(CI="true", LORAWIZ_FAULT="kill@3")
    done = subprocess.run([sys.executable, "-m", "lorawiz", "train", "--model", "builtin:tiny", "--data", "train.jsonl",
                           "--output-dir", "run", "--max-steps", "6", "--set", "eval_steps=2"], capture_output=True,
                          text=True, env=env, cwd=tmp_path, umask=UMASK, timeout=300)
    assert done.returncode != 0 and not (tmp_path / "run" / "adapter_model.safetensors").exists()
    checkpoint = tmp_path / "run" / "checkpoint-2"
    assert (checkpoint / "adapter_model.safetensors").is_file()
    assert {name: mode for name, mode in _wrong_modes(checkpoint).items() if name.endswith(".safetensors")} == {}
