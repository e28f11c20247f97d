"""lorawiz/ownership.py: what lorawiz may replace (only what it wrote) and one process per output (the lock)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lorawiz.errors import LorawizError
from lorawiz.ownership import (
    INIT_HEADER,
    LOCK,
    MERGE_MARKER,
    check_config_replaceable,
    check_file_output,
    check_merge_output,
    check_run_replaceable,
    clear_run,
    hold_lock,
    hold_output_dir,
    is_lorawiz_run,
    is_training_run,
    write_merge_marker,
)
from tests.conftest import REPO


def make_run(folder: Path, *extra: str) -> Path:
    """A folder as lorawiz train leaves it (run.json, its config, a marked checkpoint, TensorBoard events)."""
    (folder / "checkpoint-4").mkdir(parents=True)
    (folder / "checkpoint-4" / ".lorawiz-complete").write_text("{}")
    (folder / "checkpoint-4" / "optimizer.pt").write_bytes(b"\0" * 8)
    (folder / "runs" / "Dec01").mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"lorawiz": "0.1.0"}))
    (folder / "lorawiz.yaml").write_text("# lorawiz 0.1.0: the resolved configuration of this run.\nlora: {}\n")
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "metrics.jsonl",
                 "eval-val-20260101-000000.json", *extra):
        (folder / name).write_text("x")
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_run_is_recognised_by_what_lorawiz_writes(tmp_path):
    run = make_run(tmp_path / "r1")
    assert is_training_run(run) and is_lorawiz_run(run)
    other_trainer = tmp_path / "hf"
    (other_trainer / "checkpoint-10").mkdir(parents=True)
    assert is_training_run(other_trainer) and not is_lorawiz_run(other_trainer)  # protected, never replaced
    init_config = tmp_path / "here"
    init_config.mkdir()
    (init_config / "lorawiz.yaml").write_text(f"{INIT_HEADER} Train with: lorawiz train lorawiz.yaml\n")
    assert not is_training_run(init_config)  # a config from init in the current folder is not a run


def test_only_a_run_holding_only_its_own_files_may_be_replaced(tmp_path):
    run = make_run(tmp_path / "r1")
    check_run_replaceable(run)
    (run / "notes.txt").write_text("mine")
    with pytest.raises(LorawizError, match=r"holds notes.txt, which lorawiz did not write"):
        check_run_replaceable(run)
    make_run(tmp_path / "r2")
    with pytest.raises(LorawizError, match=r"holds other training runs \(r1, r2\)"):
        check_run_replaceable(tmp_path)
    (tmp_path / "hf" / "checkpoint-10").mkdir(parents=True)
    with pytest.raises(LorawizError, match="not a lorawiz training run"):
        check_run_replaceable(tmp_path / "hf")


def test_clearing_a_run_keeps_the_folder_its_lock_and_anything_foreign(tmp_path):
    run = make_run(tmp_path / "r1")
    (run / LOCK).write_text("{}")
    (run / "notes.txt").write_text("mine")  # never deleted, whoever calls
    clear_run(run)
    assert sorted(p.name for p in run.iterdir()) == [LOCK, "notes.txt"]


def test_merge_output_is_never_the_adapter_a_run_or_around_one(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    adapter = make_run(runs / "r1")
    make_run(runs / "r2")
    before = snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)
    for output, message in ((Path("."), "is the current folder"),
                            (adapter, "is the adapter folder itself"),
                            (runs, "contains the adapter"),
                            (Path(".."), "contains the adapter"),
                            (adapter / "merged", r"is inside .*r1, which is a training run"),
                            (runs / "r2", "is a training run"),
                            (runs / "r2" / "merged", "inside .*r2")):
        with pytest.raises(LorawizError, match=message):
            check_merge_output(output, adapter, overwrite=True)
    assert snapshot(tmp_path) == before


def test_merge_overwrite_replaces_only_a_previous_merge_output(tmp_path):
    adapter = make_run(tmp_path / "r1")
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "keep.txt").write_text("mine")
    with pytest.raises(LorawizError, match="already exists"):
        check_merge_output(stranger, adapter, overwrite=False)
    with pytest.raises(LorawizError, match=f"not a lorawiz merge output \\(no {MERGE_MARKER}\\)"):
        check_merge_output(stranger, adapter, overwrite=True)
    merged = tmp_path / "merged"
    merged.mkdir()
    (merged / "config.json").write_text("{}")
    (merged / "model.safetensors").write_text("w")
    write_merge_marker(merged, {"adapter": str(adapter)})
    check_merge_output(merged, adapter, overwrite=True)
    (merged / "notes.md").write_text("mine")
    with pytest.raises(LorawizError, match="holds notes.md, which lorawiz merge did not write"):
        check_merge_output(merged, adapter, overwrite=True)
    check_merge_output(tmp_path / "new", adapter, overwrite=False)


def test_a_config_is_replaced_only_when_init_wrote_it(tmp_path):
    mine = tmp_path / "init.yaml"
    mine.write_text(f"{INIT_HEADER} Train with: lorawiz train {mine}\nlora: {{}}\n")
    check_config_replaceable(mine)
    hand_written = tmp_path / "run.yaml"
    hand_written.write_text("lora: {lora_r: 8}\n")
    with pytest.raises(LorawizError, match="lorawiz init did not write it; it is kept, even with --overwrite"):
        check_config_replaceable(hand_written)
    run = make_run(tmp_path / "r1")
    with pytest.raises(LorawizError, match="configuration of the training run"):
        check_config_replaceable(run / "lorawiz.yaml")
    with pytest.raises(LorawizError, match="is a folder"):
        check_config_replaceable(tmp_path)


def test_a_file_output_is_never_a_folder_or_an_input(tmp_path):
    source = tmp_path / "data.jsonl"
    source.write_text("{}\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(source)
    hard = tmp_path / "hard.jsonl"
    os.link(source, hard)
    for output in (source, link, hard):
        with pytest.raises(LorawizError, match="is the input file"):
            check_file_output(output, overwrite=True, inputs=[str(source), None, "org/hub-dataset"])
    with pytest.raises(LorawizError, match="is a directory; --overwrite replaces a file, never a folder"):
        check_file_output(tmp_path, overwrite=True)
    (tmp_path / "old.json").write_text("old")
    with pytest.raises(LorawizError, match="already exists"):
        check_file_output(tmp_path / "old.json", overwrite=False)
    check_file_output(tmp_path / "old.json", overwrite=True, inputs=[source])


HOLDER = """
import sys, time
from pathlib import Path
from lorawiz.ownership import hold_lock
with hold_lock(Path(sys.argv[1]), "the folder", "--output-dir"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_process_is_refused_with_the_holders_pid(tmp_path):
    lock = tmp_path / LOCK
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        busy = f"in use by another lorawiz process: pid {holder.pid} on {socket.gethostname()}"
        with pytest.raises(LorawizError, match=busy) as refused, hold_lock(lock, "the folder", "--output-dir"):
            pass
        assert f"kill {holder.pid}" in refused.value.hint
    finally:
        holder.kill()
        holder.wait()
    notes: list[str] = []  # killed: the kernel dropped its lock, and the file it left is taken over with a note
    with hold_lock(lock, "the folder", "--output-dir", notes.append):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert notes == [f"note: took over the lock of pid {holder.pid}, which is no longer running ({lock})."]
    assert not lock.exists()


def test_a_lock_from_another_host_is_not_taken_over(tmp_path):
    lock = tmp_path / LOCK
    lock.write_text(json.dumps({"pid": 4242, "host": "elsewhere", "started": "2026-01-01 00:00:00",
                                "command": "lorawiz train x.yaml"}))
    with pytest.raises(LorawizError, match="pid 4242 on elsewhere") as refused, hold_lock(lock, "x", "-o"):
        pass
    assert f"delete {lock}" in refused.value.hint and lock.exists()


def test_the_lock_is_reentrant_and_released_on_error(tmp_path):
    lock = tmp_path / LOCK
    with pytest.raises(RuntimeError), hold_lock(lock, "x", "-o"):
        with hold_lock(lock, "x", "-o"):  # the demo holds it, then the training run it starts
            pass
        assert lock.exists()
        raise RuntimeError("boom")
    assert not lock.exists()


def test_an_output_folder_made_for_a_run_that_wrote_nothing_is_removed_again(tmp_path):
    folder = tmp_path / "runs" / "new"
    with pytest.raises(KeyboardInterrupt), hold_output_dir(folder):
        assert (folder / LOCK).is_file()
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with hold_output_dir(folder):
        (folder / "run.json").write_text("{}")
    assert sorted(p.name for p in folder.iterdir()) == ["run.json"]


def test_the_lock_file_names_the_holder(tmp_path):
    lock = tmp_path / LOCK
    with hold_lock(lock, "x", "-o"):
        holder = json.loads(lock.read_text())
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    assert holder["command"].startswith("lorawiz") and time.strptime(holder["started"], "%Y-%m-%d %H:%M:%S")
