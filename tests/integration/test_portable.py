"""A run's lorawiz.yaml re-runs from any folder: relative paths are recorded absolute, built-ins by name."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from tests.conftest import subprocess_env


def test_lorawiz_yaml_reruns_from_another_folder(tmp_path):
    from lorawiz.builtin.triage import triage_rows

    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    (project / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in triage_rows("train")[:48]))
    env = subprocess_env(CI="true")
    first = subprocess.run([sys.executable, "-m", "lorawiz", "train", "--model", "builtin:tiny", "--data",
                            "train.jsonl", "--output-dir", "runs/a", "--max-steps", "2", "--set", "eval_steps=2"],
                           cwd=project, capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    saved = yaml.safe_load((project / "runs/a/lorawiz.yaml").read_text())
    assert saved["model"]["model_name_or_path"] == "builtin:tiny"
    assert saved["data"]["train_file"] == str(project / "train.jsonl")
    assert saved["logging"]["output_dir"] == str(project / "runs/a")
    again = subprocess.run([sys.executable, "-m", "lorawiz", "train", str(project / "runs/a/lorawiz.yaml"),
                            "--output-dir", "b", "--dry-run"],
                           cwd=elsewhere, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "dry run: nothing trained" in again.stdout
