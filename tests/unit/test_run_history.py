"""Reading a run folder for a report: metrics.jsonl as the monitor writes it (a resumed run's repeated steps), a
trainer_state.json where there is none, memory from training.log, lorawiz.yaml's values and sources, eval files;
damaged files become notes, a folder that is no run an error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lorawiz.errors import LorawizError
from lorawiz.run_history import memory_from_log, parse_run_config, read_run, run_names, series_from_log_history

RECORDS = [
    {"type": "train", "step": 1, "epoch": 0.5, "time_s": 0.2, "loss": 7.7, "grad_norm": 2.1, "learning_rate": 0.0,
     "tokens_per_s": 8142.3},
    {"type": "train", "step": 2, "epoch": 1.0, "time_s": 0.4, "loss": 7.6, "grad_norm": 2.2, "learning_rate": 2e-4,
     "tokens_per_s": 9000.0},
    {"type": "eval", "step": 2, "epoch": 1.0, "time_s": 0.5, "eval_loss": 7.5},
    # resumed from checkpoint-1: step 2 trained and logged again, the last record wins
    {"type": "train", "step": 2, "epoch": 1.0, "time_s": 0.9, "loss": 7.55, "grad_norm": "nan",
     "learning_rate": 2e-4},
    {"type": "summary", "step": 2, "train_loss": 7.6},
]
LOG = """2026-12-03 18:36:00 training builtin:tiny (hf) for 2 steps, output run
2026-12-03 18:36:00 step 1/2 (50.0%) epoch 0.50 loss 7.7067 lr 0.00e+00 grad 2.09 tok/s 8,142 rss 0.6GiB eta 0:00:01
2026-12-03 18:36:00 eval step 2 eval_loss 7.6233 (best 7.6233 at 2)
2026-12-03 18:36:01 step 2/2 (100.0%) epoch 1.00 loss 7.7054 lr 2.00e-04 grad 2.15 tok/s 13,900 rss 0.7GiB eta 0:00:00
"""


def write_run(folder: Path, records=RECORDS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + '{"type": "tra')
    (folder / "training.log").write_text(LOG)
    (folder / "lorawiz.yaml").write_text("# lorawiz 0.1.0: the resolved configuration of this run\n"
                                         "lora:\n  lora_r: 8  # recommender: 32 rows: rank 8\n"
                                         "  lora_dropout: 0.1  # default\n")
    (folder / "run.json").write_text(json.dumps({"lorawiz": "0.1.0", "command": ["train"]}))
    (folder / "eval-val-1.json").write_text(json.dumps({"results": {}}))
    (folder / "eval-broken.json").write_text("{not json")
    return folder


def test_a_lorawiz_run_folder_is_read_whole(tmp_path):
    found = read_run(write_run(tmp_path / "run"))
    assert found.name == "run" and found.source == "metrics.jsonl"
    assert found.series["loss"] == [(1, 7.7), (2, 7.55)]  # the resumed step's record replaces the first one
    assert found.series["grad_norm"] == [(1, 2.1)]  # a non-finite value ("nan" in strict JSON) is not a point
    assert found.series["eval_loss"] == [(2, 7.5)]
    assert found.series["tokens_per_s"] == [(1, 8142.3)]  # the resumed record of step 2 logged none
    assert found.series["memory_gib"] == [(1, 0.6), (2, 0.7)] and found.memory_kind == "process RSS"
    assert found.config == {"lora_r": 8, "lora_dropout": 0.1}
    assert found.sources == {"lora_r": "recommender: 32 rows: rank 8", "lora_dropout": "default"}
    assert found.info["command"] == ["train"] and [name for name, _ in found.evals] == ["eval-val-1.json"]
    assert any(note.startswith("eval-broken.json is not valid JSON") for note in found.notes)
    assert "metrics.jsonl: 1 line(s) that are not JSON were skipped." in found.notes  # a line cut short


def test_without_metrics_jsonl_the_newest_checkpoints_trainer_state_is_read(tmp_path):
    folder = tmp_path / "hf-run"
    for step in (2, 10):
        (folder / f"checkpoint-{step}").mkdir(parents=True)
        history = [{"step": s, "loss": 1.0 / s, "learning_rate": 1e-4, "grad_norm": 0.5} for s in range(1, step + 1)]
        history += [{"step": step, "eval_val_loss": 0.9}, {"step": step, "train_loss": 0.5, "train_runtime": 3.0}]
        (folder / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    found = read_run(folder)
    assert found.source == str(Path("checkpoint-10") / "trainer_state.json")
    assert len(found.series["loss"]) == 10 and found.series["eval_loss"] == [(10, 0.9)]
    assert found.eval_metric == "eval_val_loss" and "tokens_per_s" not in found.series


def test_the_summary_entry_of_a_log_history_is_no_training_point():
    series, metric = series_from_log_history([{"step": 3, "loss": 2.0}, {"step": 3, "train_loss": 2.5,
                                                                          "train_runtime": 1.0}])
    assert series == {"loss": [(3, 2.0)]} and metric == "eval_loss"


def test_gpu_memory_is_read_from_the_plain_lines():
    series, kind = memory_from_log("step 5/10 (50.0%) epoch 0.10 loss 1.0 tok/s 1,234 mem 10.2/79.6GiB eta 0:01:00\n")
    assert series == [(5, 10.2)] and kind == "GPU memory used"
    assert memory_from_log("no steps here") == ([], None)


def test_a_config_that_does_not_parse_is_a_note_and_still_text(tmp_path):
    notes: list[str] = []
    values, sources = parse_run_config("model: [unclosed\n  lora_r: 8  # flag --lora-r\n", notes)
    assert values == {} and sources == {"lora_r": "flag --lora-r"} and "could not be parsed" in notes[0]


@pytest.mark.parametrize("make", ["missing", "file", "empty", "only-evals"])
def test_a_folder_that_is_no_run_is_refused_with_its_name(tmp_path, make):
    folder = tmp_path / "x"
    if make == "file":
        folder.write_text("hi")
    elif make != "missing":
        folder.mkdir()
        if make == "only-evals":
            (folder / "eval-a.json").write_text("{}")
    with pytest.raises(LorawizError) as error:
        read_run(folder)
    assert str(folder) in error.value.message and "lorawiz report outputs/my-run" in error.value.hint


def test_run_names_are_folder_names_made_unique_by_their_parents(tmp_path):
    assert run_names([tmp_path / "a", tmp_path / "b"]) == ["a", "b"]
    assert run_names([tmp_path / "r8" / "run", tmp_path / "r16" / "run"]) == ["r8/run", "r16/run"]
