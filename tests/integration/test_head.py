"""A sequence-classification head end to end on builtin:tiny: trained with LoRA and the score head saved, scored by
`lorawiz eval` exactly as the trainer scored it, merged into a model that scores the same, and refused where it
cannot go (chat, generation-only evaluation)."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import lorawiz_exe, subprocess_env


def run(*args, cwd):
    return subprocess.run([lorawiz_exe(), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=subprocess_env(), stdin=subprocess.DEVNULL, timeout=900)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    train, val = data
    folder = tmp_path_factory.mktemp("head")
    done = run("train", "--model", "builtin:tiny", "--data", train, "--val-data", val, "--task", "classification",
               "--head", "sequence", "--max-steps", "16", "--learning-rate", "3e-3", "--set", "eval_steps=8",
               "--set", "save_steps=8", "--plain", "-o", folder / "run", cwd=folder)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return folder, folder / "run", val


def labels_of(path):
    return sorted({json.loads(line)["messages"][-1]["content"] for line in path.read_text().splitlines()})


def test_the_adapter_keeps_the_score_head_and_its_labels(trained, data):
    from safetensors import safe_open

    _, out, _ = trained
    assert json.loads((out / "adapter_config.json").read_text())["task_type"] == "SEQ_CLS"
    with safe_open(str(out / "adapter_model.safetensors"), framework="pt") as saved:
        score = [key for key in saved.keys() if ".score." in key]  # noqa: SIM118 (safe_open is no mapping)
        assert score and saved.get_tensor(score[0]).shape[0] == len(labels_of(data[0]))
    assert json.loads((out / "labels.json").read_text())["labels"] == labels_of(data[0])
    assert "labels: [" in (out / "lorawiz.yaml").read_text()  # the run re-runs with the same classes
    card = (out / "README.md").read_text()
    assert "AutoModelForSequenceClassification.from_pretrained(" in card and f"num_labels={len(labels_of(data[0]))}" \
        in card and "a sequence-classification head over" in card


def kept_eval(out):
    """The trainer's own evaluation of the model it kept (the best checkpoint, loaded at the end)."""
    results = json.loads((out / "all_results.json").read_text())
    evals = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()
             if '"type": "eval"' in line]
    return next(entry for entry in evals if entry["step"] == results["eval_step"])


def scores(report):
    found = report["results"]["fine_tuned"]["classification"]["as given"]
    return found["accuracy"], found["macro_f1"], found


def test_eval_scores_the_head_as_the_trainer_did_and_the_merged_model_the_same(trained):
    folder, out, val = trained
    done = run("eval", out, "--data", val, "--json", folder / "eval.json", cwd=folder)
    assert done.returncode == 0, done.stderr
    accuracy, f1, found = scores(json.loads((folder / "eval.json").read_text()))
    trainer = kept_eval(out)
    assert accuracy == pytest.approx(trainer["eval_accuracy"]) and f1 == pytest.approx(trainer["eval_macro_f1"])
    assert list(found["per_class"]) == json.loads((out / "labels.json").read_text())["labels"]
    assert sum(map(sum, found["confusion"]["counts"])) == 16
    assert "sequence head" in done.stdout and "Confusion matrix" in done.stdout
    merged = run("merge", out, "-o", folder / "merged", "--dtype", "fp32", cwd=folder)
    assert merged.returncode == 0, merged.stderr
    again = run("eval", folder / "merged", "--data", val, "--json", folder / "merged.json", cwd=folder)
    assert again.returncode == 0, again.stderr
    assert scores(json.loads((folder / "merged.json").read_text()))[:2] == pytest.approx((accuracy, f1))


@pytest.mark.parametrize(("args", "message"), [
    (["chat", "RUN", "--prompt", "hello"], "is a classifier (a sequence head): it scores its labels"),
    (["eval", "RUN", "--data", "VAL", "--general-data", "VAL"], "--general-data: "),
])
def test_what_a_head_cannot_do_is_refused(trained, args, message):
    folder, out, val = trained
    done = run(*[out if a == "RUN" else val if a == "VAL" else a for a in args], cwd=folder)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_head_trained_on_two_processes_takes_the_same_first_step_as_on_one(tmp_path):
    """The Trainer reads the head model's **kwargs as taking loss kwargs and multiplies its loss by the processes;
    the head's loss is already a mean over rows, so that doubled the loss and its gradients on 2 processes."""
    common = ["train", "--model", "builtin:tiny", "--data", "builtin:triage", "--task", "classification", "--head",
              "sequence", "--max-steps", "2", "--set", "eval_strategy=no", "--set", "save_strategy=no", "--set",
              "load_best_model_at_end=false", "--set", "early_stopping_patience=0", "--set", "logging_steps=1",
              "--plain"]
    firsts = []
    for processes in ("1", "2"):
        out = tmp_path / f"p{processes}"
        done = run(*common, "--num-processes", processes, "-o", out, cwd=tmp_path)
        assert done.returncode == 0, done.stdout[-1500:] + done.stderr[-1500:]
        steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()
                 if '"type": "train"' in line]
        firsts.append(steps[0])
    one, two = firsts
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-4) and one["loss"] < 2.0  # about ln 6 at the start
    # the batch split in two and padded per process sums the gradients in another order (0.3% seen); doubled was 2x
    assert two["grad_norm"] == pytest.approx(one["grad_norm"], rel=0.02)
