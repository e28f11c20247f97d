"""Nothing lost, nothing run twice, every failure a clear message (issue 14, points 1-3), on real runs of the tiny
model: --overwrite replaces only what lorawiz wrote, one process per output folder, finished and half-started runs.

Each refusal is checked for its exit code, its message, and that every file is still there, byte for byte.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lorawiz.ownership import INIT_HEADER, LOCK, MERGE_MARKER
from tests.conftest import REPO, subprocess_env
from tests.integration.test_train import STEPS, lorawiz, results, train


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data):
    """runs/r1: a finished 4-step run (checkpoint-4, adapter, all_results.json)."""
    out = tmp_path_factory.mktemp("work") / "runs" / "r1"
    done = train(out, data, "--max-steps", "4")
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def copy_run(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


# --- 1. no command deletes or overwrites what it did not create -------------------------------------------------

def test_merge_never_replaces_the_adapter_a_run_or_what_is_around_them(cli, finished, tmp_path, monkeypatch):
    runs = finished.parent
    sibling = copy_run(finished, runs / "r2")
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    before = snapshot(runs), snapshot(stranger)
    monkeypatch.chdir(runs.parent)
    for output, message in ((finished, "is the adapter folder itself"),
                            (runs, "contains the adapter"),
                            (Path("."), "is the current folder"),
                            (finished / "merged", "which is a training run"),
                            (sibling, "is a training run"),
                            (stranger, f"is not a lorawiz merge output (no {MERGE_MARKER})")):
        refused = cli("merge", str(finished), "-o", str(output), "--overwrite", "--dtype", "fp32")
        assert refused.exit_code == 2 and message in refused.output, (output, refused.output)
        assert "Traceback" not in refused.output
    assert (snapshot(runs), snapshot(stranger)) == before
    shutil.rmtree(sibling)

    merged = tmp_path / "merged"
    assert cli("merge", str(finished), "-o", str(merged), "--dtype", "fp32").exit_code == 0
    replaced = cli("merge", str(finished), "-o", str(merged), "--overwrite", "--dtype", "fp32")
    assert replaced.exit_code == 0, replaced.output  # a previous merge output may be replaced
    (merged / "notes.md").write_text("mine")
    refused = cli("merge", str(finished), "-o", str(merged), "--overwrite", "--dtype", "fp32")
    assert refused.exit_code == 2 and "holds notes.md, which lorawiz merge did not write" in refused.output
    assert (merged / "notes.md").read_text() == "mine" and (merged / "config.json").is_file()


def test_train_overwrite_replaces_only_a_lorawiz_run_of_its_own_files(finished, tmp_path, data):
    runs = finished.parent
    before = snapshot(runs)
    refused = train(runs, data, "--overwrite")
    assert refused.returncode == 2 and "holds other training runs (r1)" in refused.stderr, refused.stderr
    assert snapshot(runs) == before
    mine = copy_run(finished, tmp_path / "r3")
    (mine / "notes.txt").write_text("mine")
    before = snapshot(mine)
    refused = train(mine, data, "--overwrite")
    assert refused.returncode == 2 and "holds notes.txt, which lorawiz did not write" in refused.stderr
    refused = train(mine, data, "--resume", "--overwrite")
    assert refused.returncode == 2 and "--resume auto and --overwrite together" in refused.stderr
    assert snapshot(mine) == before

    (mine / "notes.txt").unlink()
    replaced = train(mine, data, "--overwrite", "--max-steps", "2")
    assert replaced.returncode == 0, replaced.stdout + replaced.stderr
    assert f"--overwrite: removed the previous run in {mine}" in replaced.stdout
    assert results(mine)["global_step"] == 2 and not (mine / "checkpoint-4").exists()


def test_demo_overwrite_keeps_a_folder_that_is_not_a_run(tmp_path):
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    refused = lorawiz("demo", "--output-dir", str(stranger), "--overwrite")
    assert refused.returncode == 2 and "is not a lorawiz training run" in refused.stderr, refused.stderr
    assert snapshot(stranger) == {"notes.txt": b"mine"}


def test_init_overwrite_replaces_only_a_config_init_wrote(tmp_path):
    def init(config: Path, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "lorawiz", "init", "--model", "builtin:tiny", "--data",
                               "builtin:triage", "--config-out", str(config), "--output-dir", str(tmp_path / "o"),
                               "--yes", *extra], capture_output=True, text=True, env=subprocess_env(CI="true"),
                              stdin=subprocess.DEVNULL, timeout=300)

    own = tmp_path / "own.yaml"
    own.write_text("lora: {lora_r: 8}  # my own\n")
    refused = init(own, "--overwrite")
    assert refused.returncode == 2 and "lorawiz init did not write it; it is kept" in refused.stderr
    assert own.read_text() == "lora: {lora_r: 8}  # my own\n"
    written = tmp_path / "init.yaml"
    assert init(written).returncode == 0 and written.read_text().startswith(INIT_HEADER)
    again = init(written, "--overwrite")
    assert again.returncode == 0, again.stderr


def test_data_outputs_replace_a_file_never_a_folder_or_the_input(cli, tmp_path, finished, data):
    source = tmp_path / "in.jsonl"
    shutil.copy(data[0], source)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    before = snapshot(tmp_path)
    for args, message in (
            (["format", str(source), "-o", str(folder)], "is a directory"),
            (["format", str(source), "-o", str(source)], "is the input file"),
            (["format", str(source), "-o", str(tmp_path / "o.jsonl"), "--skip-bad", "--rejects", str(source)],
             "is the input file"),
            (["split", str(source), "--train-out", str(source), "--val-out", str(tmp_path / "v.jsonl")],
             "is the input file"),
            (["split", str(source), "--train-out", str(folder), "--val-out", str(tmp_path / "v.jsonl")],
             "is a directory"),
            (["mix", str(source), "-o", str(source)], "also a source"),
            (["mix", str(source), "-o", str(folder)], "is a directory"),
            (["eval", str(finished), "--data", str(source), "--json", str(source)], "is the input file"),
            (["eval", str(finished), "--data", str(source), "--json", str(folder)], "is a directory")):
        refused = cli(*args, "--overwrite")
        assert refused.exit_code == 2 and message in refused.output, (args, refused.output)
    assert snapshot(tmp_path) == before
    out = tmp_path / "out.jsonl"
    out.write_text("old\n")
    assert cli("format", str(source), "-o", str(out), "--overwrite").exit_code == 0  # a file is replaced
    assert out.read_text() != "old\n"


# --- 2. one run per output folder at a time ---------------------------------------------------------------------

def start_training(out: Path, data) -> subprocess.Popen:
    """A long run (hundreds of steps, no checkpoint until stopped) in the background."""
    train_file, val_file = data
    return subprocess.Popen([sys.executable, "-m", "lorawiz", "train", "--model", "builtin:tiny", "--data",
                             str(train_file), "--val-data", str(val_file), "--output-dir", str(out), *STEPS,
                             "--max-steps", "400", "--set", "eval_steps=1000", "--set", "save_steps=1000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(CI="true"))


def wait_for(condition, first: subprocess.Popen, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the first run never got going"
        time.sleep(0.2)


def test_a_second_run_in_the_folder_is_refused_with_the_first_ones_pid_and_sigterm_exits_143(tmp_path, data):
    out = tmp_path / "run"
    first = start_training(out, data)
    try:
        wait_for(lambda: '"type": "train"' in _text(out / "metrics.jsonl"), first)
        assert json.loads((out / LOCK).read_text())["pid"] == first.pid
        for second in (train(out, data), train(out, data, "--overwrite"),
                       lorawiz("demo", "--output-dir", str(out), "--overwrite")):
            assert second.returncode == 2, second.stdout + second.stderr
            assert f"is in use by another lorawiz process: pid {first.pid}" in second.stderr
            assert f"kill {first.pid}" in second.stderr
        assert first.poll() is None and (out / "run.json").is_file()  # the first run did not notice
        first.send_signal(signal.SIGTERM)
        stdout, stderr = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 143, stdout + stderr
    assert "stopped by SIGTERM" in stdout and "--resume auto" in stdout
    assert not (out / LOCK).exists() and list(out.glob("checkpoint-*/.lorawiz-complete"))


MERGE_HOLDER = """
import sys, time
from pathlib import Path
from lorawiz.ownership import hold_lock, merge_lock
with hold_lock(merge_lock(Path(sys.argv[1])), "-o", "-o"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_merge_to_the_same_output_is_refused_with_the_first_ones_pid(cli, finished, tmp_path):
    out = tmp_path / "merged"
    holder = subprocess.Popen([sys.executable, "-c", MERGE_HOLDER, str(out)], stdout=subprocess.PIPE, text=True,
                              cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = cli("merge", str(finished), "-o", str(out), "--dtype", "fp32")
        assert refused.exit_code == 2 and f"in use by another lorawiz process: pid {holder.pid}" in refused.output
        assert not out.exists()
    finally:
        holder.kill()
        holder.wait()


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


# --- 3. finished and half-started runs --------------------------------------------------------------------------

def test_resume_auto_on_a_finished_run_trains_nothing(finished, tmp_path, data):
    before = snapshot(finished)
    done = train(finished, data, "--max-steps", "4", "--resume", "auto")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{finished} holds a finished run (step 4, adapter and all_results.json written): nothing to train." \
        in done.stdout
    assert "step 1/" not in done.stdout and snapshot(finished) == before
    longer = copy_run(finished, tmp_path / "longer")  # asking for more steps continues from the last checkpoint
    more = train(longer, data, "--max-steps", "6", "--resume", "auto")
    assert more.returncode == 0, more.stdout + more.stderr
    assert "resuming from" in more.stdout and results(longer)["global_step"] == 6


@pytest.mark.parametrize("again", [(), ("--resume", "auto")], ids=["same-command", "resume-auto"])
def test_a_run_killed_before_its_first_checkpoint_starts_again(tmp_path, data, again):
    out = tmp_path / "run"
    killed = train(out, data, "--max-steps", "4", fault="kill@1")
    assert killed.returncode == -9
    assert (out / "run.json").is_file() and (out / "lorawiz.yaml").is_file() and not list(out.glob("checkpoint-*"))
    restarted = train(out, data, "--max-steps", "4", *again)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert f"note: {out} holds a run that stopped before its first checkpoint; starting it again" in restarted.stdout
    assert f"which is no longer running ({out / LOCK})" in restarted.stdout  # the killed run's lock, taken over
    assert results(out)["global_step"] == 4 and not (out / LOCK).exists()


def test_resume_path_must_be_a_complete_checkpoint(tmp_path, data):
    half = tmp_path / "old" / "checkpoint-3"
    half.mkdir(parents=True)
    (half / "trainer_state.json").write_text('{"global_step": 3}')  # a save that never finished: no marker
    refused = train(tmp_path / "run", data, "--resume", str(half))
    assert refused.returncode == 2 and "not a complete lorawiz checkpoint" in refused.stderr, refused.stderr
    refused = train(tmp_path / "run", data, "--resume", str(tmp_path / "nowhere"))
    assert refused.returncode == 2 and "no such checkpoint folder" in refused.stderr
    assert not (tmp_path / "run").exists()  # a refused run leaves no folder behind
