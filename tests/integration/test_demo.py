"""`lorawiz demo` end to end on CPU: the tiny model learns the triage labels (accuracy from chance to >= 0.9)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import subprocess_env


def test_demo_learns_the_labels_and_says_where_everything_is(tmp_path):
    out = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "lorawiz", "demo", "--output-dir", str(out)], capture_output=True,
                          text=True, env=subprocess_env(CI="true"), timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((out / "demo_results.json").read_text())
    assert result["accuracy_before"] < 0.35  # six balanced classes: chance is 1/6
    assert result["accuracy_after"] >= 0.9
    assert result["loss_after"] < result["loss_before"] / 10
    for words in ("label accuracy", "validation loss", "adapter_model.safetensors", "tensorboard --logdir"):
        assert words in done.stdout
    assert (out / "adapter_model.safetensors").is_file() and (out / "lorawiz.yaml").is_file()
    logdir = done.stdout.split("tensorboard --logdir ", 1)[1].split()[0]  # the folder it names holds the events
    assert list(Path(logdir).glob("events.out.tfevents.*")), logdir
