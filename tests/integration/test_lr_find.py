"""`lorawiz lr-find` on builtin:tiny: a real sweep through the training backend, its suggestion where the loss
falls, nothing saved into a run, the PNG, --json and --write, and the train command it prints."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml

from lorawiz.config.resolve import resolve_config
from lorawiz.config.schema import format_value
from lorawiz.lr_range import falling_region
from lorawiz.train.lr_find import LrFindRequest, find_learning_rate
from tests.conftest import lorawiz_exe, subprocess_env

TINY = ["--model", "builtin:tiny", "--data", "builtin:triage"]


@pytest.fixture(scope="module")
def found(tmp_path_factory):
    out = tmp_path_factory.mktemp("lr") / "would-be-run"
    resolved = resolve_config(None, flags={"model_name_or_path": "builtin:tiny", "train_file": "builtin:triage",
                                           "output_dir": str(out)}, flag_names={})
    seen = []
    result = find_learning_rate(LrFindRequest(resolved, start=1e-6, end=1.0, steps=40,
                                              progress=lambda *step: seen.append(step)))
    return result, out, seen


def test_the_suggestion_lies_where_the_loss_falls(found):
    result, _, _ = found
    region = falling_region(result.sweep)
    assert region is not None, result.sweep.losses
    low, high = region
    assert result.sweep.losses[-1] < result.sweep.losses[0] * 0.95  # the tiny model does learn over the sweep
    assert low <= result.suggestion.rate <= high, (low, result.suggestion.rate, high)
    assert result.suggested_rate == float(f"{result.suggestion.rate:.1e}")


def test_the_sweep_trains_at_each_rate_of_the_schedule_with_the_planned_settings(found):
    result, _, seen = found
    sweep = result.sweep
    assert len(sweep.rates) == 40 and sweep.rates[0] == pytest.approx(1e-6) and sweep.rates[-1] == pytest.approx(1.0)
    assert [step for step, *_ in seen] == list(range(1, 41))  # the trainer's logged rate was checked at each
    planned = result.resolved
    assert result.settings["per_device_train_batch_size"] == planned.value("per_device_train_batch_size")
    assert result.configured == planned.value("learning_rate") and result.configured_source.startswith("recommender")


def test_nothing_is_written_into_the_run_folder(found):
    _, out, _ = found
    assert not out.exists()


def run(*args, cwd):
    return subprocess.run([lorawiz_exe(), *args], capture_output=True, text=True, cwd=cwd, env=subprocess_env(),
                          stdin=subprocess.DEVNULL, timeout=600)


def test_json_write_and_the_plot_then_train_reads_the_rate(tmp_path):
    done = run("lr-find", *TINY, "--steps", "20", "--start-lr", "1e-5", "--end-lr", "1", "--json",
               "--write", "found.yaml", "--plot", "curve.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # stdout is the JSON alone; progress went to stderr
    assert "lr-find step 20/20" in done.stderr
    rate = report["suggested_learning_rate"]
    assert report["rule"] == "valley" and set(report["rules"]) == {"valley", "steepest", "minimum"}
    assert len(report["rates"]) == len(report["losses"]) == len(report["smoothed_losses"]) == 20
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG" and report["plot"] == "curve.png"
    written = yaml.safe_load((tmp_path / "found.yaml").read_text())
    assert written["training"]["learning_rate"] == rate
    assert written["model"]["model_name_or_path"] == "builtin:tiny" and "lora" not in written  # only what was given
    plan = run("train", "found.yaml", "--dry-run", "--plain", cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    line = next(ln for ln in plan.stdout.splitlines() if "learning_rate" in ln)
    assert f"learning_rate = {format_value(rate)}  [file found.yaml]" in line, line


def test_plain_output_prints_the_curve_and_a_train_command_that_runs(tmp_path):
    done = run("lr-find", *TINY, "--steps", "12", "--start-lr", "1e-5", "--end-lr", "0.1", "--no-plot",
               "--lora-r", "4", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "suggested learning rate:" in done.stdout and "learning rate (log)" in done.stdout
    assert done.stdout.isascii() and list(tmp_path.iterdir()) == []  # --no-plot: nothing written here
    command = re.search(r"^next: (lorawiz train .*)$", done.stdout, re.MULTILINE).group(1)
    assert command.startswith("lorawiz train --model builtin:tiny --data builtin:triage --lora-r 4 --learning-rate ")
    dry = run(*command.split()[1:], "--dry-run", "--plain", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--steps", "5"], "--steps 5: a sweep needs at least 10 steps"),
    (["--start-lr", "1", "--end-lr", "0.1"], "the sweep must rise from a positive rate"),
    (["--plot", "photo.png"], "--plot photo.png exists and lr-find did not write it"),
    (["--write", "nowhere/found.yaml"], "--write nowhere/found.yaml: the folder nowhere does not exist"),
])
def test_mistakes_are_refused_before_the_sweep(tmp_path, args, message):
    (tmp_path / "photo.png").write_bytes(b"mine")
    done = run("lr-find", *TINY, *args, cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert (tmp_path / "photo.png").read_bytes() == b"mine" and sorted(p.name for p in tmp_path.iterdir()) == [
        "photo.png"]
