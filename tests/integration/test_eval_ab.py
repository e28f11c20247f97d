"""`lorawiz eval RUN_A --against RUN_B` on the built-in tiny model: two adapters of builtin:tiny on one base, and an
adapter against a merged model."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.integration.test_eval import lorawiz


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two LoRA adapters of builtin:tiny with different random weights (lora_B not zero: each changes the model)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lorawiz.builtin import resolve_builtin

    base, folder = resolve_builtin("builtin:tiny"), tmp_path_factory.mktemp("ab")
    for name, seed in (("run-a", 1), ("run-b", 2)):
        torch.manual_seed(seed)
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                               LoraConfig(r=8, target_modules="all-linear", task_type="CAUSAL_LM",
                                          init_lora_weights=False))
        model.save_pretrained(folder / name)
        AutoTokenizer.from_pretrained(base).save_pretrained(folder / name)
    return folder / "run-a", folder / "run-b"


@pytest.fixture(scope="module")
def general(tmp_path_factory):
    from lorawiz.builtin.tiny import generic_sentences

    path = tmp_path_factory.mktemp("general") / "general.jsonl"
    path.write_text("".join(json.dumps({"text": s}) + "\n" for s in generic_sentences(20, seed=7)))
    return path


EVAL = ("--data", "builtin:triage:validation", "--max-samples", "12", "--samples", "1", "--max-new-tokens", "8")


def test_two_adapters_side_by_side_on_one_base(runs, general, tmp_path):
    a, b = runs
    out = tmp_path / "ab.json"
    done = lorawiz("eval", str(a), "--against", str(b), *EVAL, "--task", "classification", "--general-data",
                   str(general), "--json", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert list(report["results"]) == ["run-a", "run-b"] and report["against"] == str(b)
    assert report["shared_base"]["adapters"] == ["A", "B"]  # the loaded PeftModel's peft_config: one base, both
    assert done.stderr.count("... loading") == 1
    assert {"run-a", "run-b"} <= set(report["samples"][0]) and "base" not in report["samples"][0]
    for side in ("run-a", "run-b"):
        assert report["results"][side]["classification"]["as given"]["confusion"]["counts"]
        assert report["results"][side]["general"]["perplexity"] > 0
    better = {row["metric"]: row["better"] for row in report["better"]}
    assert {"loss", "perplexity", "general-data perplexity", "macro-F1", "accuracy"} <= set(better)
    loss_a, loss_b = (report["results"][s]["loss"]["loss"] for s in ("run-a", "run-b"))
    assert loss_a != loss_b and better["loss"] == ("run-a" if loss_a < loss_b else "run-b")
    for line in ("\trun-a\trun-b\tchange", "Confusion matrix, run-b (rows: true label, columns: predicted)",
                 "metric\trun-a\trun-b\tbetter", "verdict: "):
        assert line in done.stdout, line
    assert "fine-tuned" not in done.stdout and "Traceback" not in done.stderr

    # B scored with the adapters switched is B scored alone
    alone = tmp_path / "b.json"
    done = lorawiz("eval", str(b), *EVAL, "--samples", "0", "--no-compare-base", "--json", str(alone))
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(alone.read_text())["results"]["fine_tuned"]["loss"]["loss"] == pytest.approx(loss_b, rel=1e-5)


def test_one_base_holds_both_adapters_and_switches_between_them(runs):
    import torch
    from peft import PeftModel

    from lorawiz.eval.ab import load_adapters_on_one_base
    from lorawiz.models import describe_target, load_model

    a, b = (describe_target(str(run)) for run in runs)
    model = load_adapters_on_one_base(a, b, "fp32", "cpu")
    assert isinstance(model, PeftModel) and set(model.peft_config) == {"A", "B"}
    ids = torch.tensor([[1, 5, 9, 14, 3]])
    with torch.inference_mode():
        logits = {}
        for role in ("A", "B"):
            model.set_adapter(role)
            logits[role] = model(input_ids=ids).logits
        alone = load_model(b, "fp32")(input_ids=ids).logits
    assert not torch.allclose(logits["A"], logits["B"])
    assert torch.allclose(logits["B"], alone, atol=1e-5)


def test_an_adapter_against_a_merged_model(runs, tmp_path):
    from lorawiz.merge import merge_adapter

    a, b = runs
    merge_adapter(b, tmp_path / "merged-b", dtype="fp32")
    results = {}
    for name, other in (("adapter", b), ("merged", tmp_path / "merged-b")):
        out = tmp_path / f"{name}.json"
        done = lorawiz("eval", str(a), "--against", str(other), *EVAL, "--samples", "0", "--task", "lm",
                       "--json", str(out))
        assert done.returncode == 0, done.stdout + done.stderr
        results[name] = json.loads(out.read_text())
    merged = results["merged"]
    assert list(merged["results"]) == ["run-a", "merged-b"] and "shared_base" not in merged
    assert merged["sides"]["B"]["adapter"] is False
    assert merged["results"]["merged-b"]["loss"]["loss"] == pytest.approx(
        results["adapter"]["results"]["run-b"]["loss"]["loss"], rel=1e-3)


@pytest.mark.parametrize(("extra", "message"), [
    (["--compare-base"], "--compare-base does not go with --against"),
    (["--no-compare-base"], "--no-compare-base does not go with --against"),
    (["--min-f1", "0.5"], "--min-f1 does not go with --against"),
    (["--base", "builtin:tiny"], "--base does not go with --against"),
])
def test_options_that_make_no_sense_with_against_are_refused(runs, extra, message):
    from lorawiz.errors import LorawizError
    from lorawiz.eval.run import EvalRequest, run_eval

    a, b = runs
    values = {"--compare-base": ("compare_base", True), "--no-compare-base": ("compare_base", False),
              "--min-f1": ("min_f1", 0.5), "--base": ("base", "builtin:tiny")}
    field, value = values[extra[0]]
    with pytest.raises(LorawizError, match=message):
        run_eval(EvalRequest(str(a), "builtin:triage:validation", against=str(b), **{field: value}))


def test_adapters_of_different_bases_and_the_same_folder_are_refused(runs, tmp_path):
    a, b = runs
    other = tmp_path / "run-c"
    shutil.copytree(b, other)
    config = json.loads((other / "adapter_config.json").read_text())
    (other / "adapter_config.json").write_text(json.dumps(config | {"base_model_name_or_path": "org/other-model"}))
    done = lorawiz("eval", str(a), "--against", str(other), "--data", "builtin:triage:validation")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"--against: {a} is an adapter of" in done.stderr and "one of org/other-model" in done.stderr
    assert "Traceback" not in done.stderr
    done = lorawiz("eval", str(a), "--against", str(a), "--data", "builtin:triage:validation")
    assert done.returncode == 2 and "the same model as TARGET" in done.stderr
