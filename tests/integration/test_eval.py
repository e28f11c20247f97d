"""`lorawiz eval` on the built-in tiny model: an adapter trained on builtin:triage against its base."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import subprocess_env


def lorawiz(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lorawiz", *args], capture_output=True, text=True,
                          env=subprocess_env(CI="true", OMP_NUM_THREADS="2"), timeout=timeout)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """An adapter trained for 40 steps with the demo's settings: it has learned the labels."""
    from lorawiz.builtin.triage import DEMO_SETTINGS

    folder = tmp_path_factory.mktemp("eval")
    config = folder / "run.yaml"
    config.write_text(yaml.safe_dump({**DEMO_SETTINGS, "model_name_or_path": "builtin:tiny",
                                      "train_file": "builtin:triage", "validation_file": "builtin:triage:validation",
                                      "max_steps": 40, "eval_steps": 40, "early_stopping_patience": 0}))
    done = lorawiz("train", str(config), "--output-dir", str(folder / "run"))
    assert done.returncode == 0, done.stdout + done.stderr
    return folder / "run"


@pytest.fixture(scope="module")
def general(tmp_path_factory):
    """General text the adapter never saw, for the forgetting check."""
    from lorawiz.builtin.tiny import generic_sentences

    path = tmp_path_factory.mktemp("general") / "general.jsonl"
    path.write_text("".join(json.dumps({"text": s}) + "\n" for s in generic_sentences(40, seed=7)))
    return path


def test_adapter_against_its_base_on_classification_data(run, general, tmp_path):
    out = tmp_path / "res.json"
    done = lorawiz("eval", str(run), "--data", "builtin:triage:validation", "--max-samples", "60",
                   "--general-data", str(general), "--json", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["task"] == "classification" and report["rows"] == 60 and report["rows_in_file"] == 240
    assert report["labels"] == ["collapse", "fire", "flood", "hazmat", "medical", "traffic"]
    base, tuned = report["results"]["base"], report["results"]["fine_tuned"]
    # the base is tried with the data's prompt and with the label list; the fine-tuned model with the data's prompt
    assert set(base["classification"]) == {"as given", "label list"}
    assert set(tuned["classification"]) == {"as given"}
    tuned_f1 = tuned["classification"]["as given"]["macro_f1"]
    assert tuned_f1 > 0.5 and tuned_f1 > base["classification"][base["best_prompt"]]["macro_f1"]
    assert report["fine_tuned_beats_base"]["passed"] is True
    assert tuned["loss"]["loss"] < base["loss"]["loss"] and report["change"]["loss"] < 0
    confusion = tuned["classification"]["as given"]["confusion"]["counts"]
    assert sum(map(sum, confusion)) == 60
    # three rows side by side, each with both answers
    assert len(report["samples"]) == 3
    assert all({"prompt", "reference", "base", "fine_tuned"} <= set(s) for s in report["samples"])
    # the adapter learned labels, not English: general perplexity rose, and the tool says so
    rise = report["change"]["general_perplexity"]
    assert rise > 0.05 and report["forgetting_warning"] is True
    assert f"warning: perplexity on general data worsened by {rise:.1%}" in done.stdout
    # the verdict, and the commands that mitigate it: mix general data in, train again at half the learning rate
    forgetting = report["forgetting"]
    assert forgetting["found"] is True and forgetting["threshold"] == 0.05
    assert [(c["task"], c["verdict"]) for c in forgetting["checks"]] == [(str(general), "forgetting")]
    mix, train = forgetting["mitigation"]
    assert mix == f"lorawiz mix builtin:triage:0.65 GENERAL.jsonl:0.35 -o {run.parent / 'run-mixed.jsonl'}"
    assert train == (f"lorawiz train {run / 'lorawiz.yaml'} --data {run.parent / 'run-mixed.jsonl'} --learning-rate "
                     f"0.0015 --output-dir {run.parent / 'run-mixed'}")  # DEMO_SETTINGS: 3e-3
    assert "forgetting found: mix general data into the training data" in done.stdout and f"  {train}" in done.stdout
    _run_the_mitigation(mix, train, tmp_path)
    # the plain tables
    for line in ("accuracy\t", "macro-F1\t", "true\tcollapse\tfire", "--- row 1",
                 "fine-tuned macro-F1"):
        assert line in done.stdout, line
    assert "Traceback" not in done.stderr


def _run_the_mitigation(mix: str, train: str, tmp_path: Path) -> None:
    """The printed commands run: the mix (general data in chat form for GENERAL.jsonl, since the --general-data
    here is plain text) and the train step as a dry run."""
    import shlex

    from lorawiz.builtin.tiny import generic_sentences

    general_chat = tmp_path / "general-chat.jsonl"
    general_chat.write_text("".join(json.dumps({"messages": [{"role": "user", "content": "Say something."},
                                                             {"role": "assistant", "content": s}]}) + "\n"
                                    for s in generic_sentences(300, seed=3)))
    done = lorawiz(*shlex.split(mix.replace("GENERAL.jsonl", str(general_chat)))[1:])
    assert done.returncode == 0, done.stdout + done.stderr
    done = lorawiz(*shlex.split(train)[1:], "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0.0015" in done.stdout


def test_no_forgetting_warning_when_nothing_changed(general, tmp_path):
    """A model compared with itself: the same numbers, a passed check (the warning is not always on)."""
    from lorawiz.builtin import resolve_builtin

    out = tmp_path / "same.json"
    done = lorawiz("eval", resolve_builtin("builtin:tiny"), "--base", "builtin:tiny", "--data",
                   "builtin:triage:validation", "--max-samples", "12", "--task", "lm", "--samples", "1",
                   "--general-data", str(general), "--json", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["change"]["general_perplexity"] == pytest.approx(0.0, abs=1e-6)
    assert report["forgetting_warning"] is False and "forgetting check passed" in done.stdout
    assert "classification" not in report["results"]["fine_tuned"]
    sample = report["samples"][0]
    assert sample["base"] == sample["fine_tuned"]  # greedy answers of the same weights


def test_merged_model_against_its_base_matches_the_adapter(run, tmp_path):
    from lorawiz.merge import merge_adapter

    merge_adapter(run, tmp_path / "merged", dtype="fp32")
    results = {}
    for name, target, extra in (("adapter", str(run), []), ("merged", str(tmp_path / "merged"),
                                                            ["--base", "builtin:tiny"])):
        out = tmp_path / f"{name}.json"
        done = lorawiz("eval", target, *extra, "--data", "builtin:triage:validation", "--max-samples", "30",
                       "--samples", "0", "--task", "classification", "--json", str(out))
        assert done.returncode == 0, done.stdout + done.stderr
        results[name] = json.loads(out.read_text())["results"]
    for role in ("base", "fine_tuned"):
        adapter, merged = results["adapter"][role], results["merged"][role]
        assert merged["loss"]["loss"] == pytest.approx(adapter["loss"]["loss"], rel=1e-3)
        assert merged["classification"]["as given"]["macro_f1"] == adapter["classification"]["as given"]["macro_f1"]


def test_lm_eval_tasks_run_on_both_models(run, tmp_path):
    pytest.importorskip("lm_eval")
    rows = tmp_path / "mc.jsonl"
    rows.write_text("".join(json.dumps({"report": f"Flames are coming out of house {i}.", "choices": ["fire", "flood"],
                                        "answer": 0}) + "\n" for i in range(6)))
    task = tmp_path / "tasks" / "triage_mc.yaml"
    task.parent.mkdir()
    task.write_text(yaml.safe_dump({
        "task": "lorawiz_triage_mc", "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(rows)}},
        "test_split": "test", "output_type": "multiple_choice", "doc_to_text": "{{report}}",
        "doc_to_choice": "{{choices}}", "doc_to_target": "{{answer}}",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}]}))
    out = tmp_path / "lm.json"
    done = lorawiz("eval", str(run), "--data", "builtin:triage:validation", "--max-samples", "6", "--samples", "0",
                   "--lm-eval", str(task), "--json", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    results = report["results"]
    for role in ("base", "fine_tuned"):
        assert 0.0 <= results[role]["lm_eval"]["lorawiz_triage_mc"]["acc"] <= 1.0
    assert "lorawiz_triage_mc acc\t" in done.stdout
    # the task's forgetting verdict, from lm-eval's own higher_is_better (acc: higher is better)
    check = next(c for c in report["forgetting"]["checks"] if (c["task"], c["metric"]) == ("lorawiz_triage_mc", "acc"))
    assert check["lower_is_better"] is False and check["verdict"] in ("kept", "worse", "forgetting")
    assert "lorawiz_triage_mc\tacc\t" in done.stdout and check["shown"] in done.stdout
    assert bool(report["forgetting"]["mitigation"]) is report["forgetting"]["found"]


@pytest.mark.parametrize(("args", "message"), [
    (["--data", "missing.jsonl"], "--data missing.jsonl not found."),
    (["--data", "{val}", "--labels", "fire,flood"], '--data row 1: the answer "hazmat" is not one of --labels'),
    (["--data", "{val}", "--max-samples", "0"], "--max-samples 0: must be at least 1."),
    (["--data", "{val}", "--labels", "fire"], "--labels fire: give at least two labels."),
    (["--data", "{val}", "--task", "ner"], "--task ner: unknown."),
    (["--data", "{val}", "--lm-eval", "hellaswagg"], '--lm-eval hellaswagg: lm-eval has no such task.'),
])
def test_bad_input_is_one_line_and_exit_2(run, tmp_path, args, message):
    from lorawiz.builtin import resolve_builtin

    if "--lm-eval" in args:
        pytest.importorskip("lm_eval")
    args = [a.replace("{val}", resolve_builtin("builtin:triage:validation")) for a in args]
    done = lorawiz("eval", str(run), *args, "--json", str(tmp_path / "never.json"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "never.json").exists()


def test_full_model_without_a_base_and_existing_results(tmp_path):
    from lorawiz.builtin import resolve_builtin

    model, val = resolve_builtin("builtin:tiny"), resolve_builtin("builtin:triage:validation")
    done = lorawiz("eval", model, "--data", val, "--compare-base", "--json", str(tmp_path / "x.json"))
    assert done.returncode == 2 and "its base is unknown" in done.stderr and "--base MODEL" in done.stderr
    kept = tmp_path / "kept.json"
    kept.write_text("{}")
    done = lorawiz("eval", model, "--data", val, "--json", str(kept))
    assert done.returncode == 2 and "already exists" in done.stderr and kept.read_text() == "{}"


def test_default_results_file_lands_beside_the_adapter(run):
    done = lorawiz("eval", str(run), "--data", "builtin:triage:validation", "--max-samples", "6", "--samples", "0",
                   "--no-compare-base")
    assert done.returncode == 0, done.stdout + done.stderr
    written = sorted(Path(run).glob("eval-triage-validation-*.json"))
    assert written and f"wrote {written[-1]}" in done.stdout
    report = json.loads(written[-1].read_text())
    assert list(report["results"]) == ["fine_tuned"] and report["notes"] == ["no base model to compare with: "
                                                                             "--no-compare-base"]


def test_the_users_prompt_template_is_a_third_base_prompt_and_min_f1_a_fixed_bar(run, tmp_path):
    template = tmp_path / "best_prompt.txt"
    template.write_text("Classify this incident report as one of {labels}.\nReport: {input}\nLabel:")
    out = tmp_path / "res.json"
    done = lorawiz("eval", str(run), "--data", "builtin:triage:validation", "--max-samples", "30",
                   "--prompt-template", str(template), "--min-f1", "0.999", "--json", str(out))
    report = json.loads(out.read_text())
    base = report["results"]["base"]
    assert set(base["classification"]) == {"as given", "label list", "your template"}
    bar = report["min_f1"]
    assert bar["bar"] == 0.999 and bar["passed"] is (bar["macro_f1"] > 0.999)
    assert done.returncode == (0 if bar["passed"] else 3), done.stdout + done.stderr
    assert "--min-f1 0.999: not met" in done.stdout or bar["passed"]
    missing = tmp_path / "bad.txt"
    missing.write_text("no placeholder here")
    done = lorawiz("eval", str(run), "--data", "builtin:triage:validation", "--prompt-template", str(missing))
    assert done.returncode == 2 and "has no {input}" in done.stderr
