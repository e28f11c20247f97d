"""lorawiz.eval.report: the A/B report (two sides named by their folders, which is better on each metric) and the
forgetting verdicts of a base-vs-fine-tuned report, built by hand from plain results."""

from __future__ import annotations

from lorawiz.eval.metrics import classification_report
from lorawiz.eval.report import AS_GIVEN, EvalReport, ModelResult, Side
from lorawiz.eval.scoring import LossResult
from lorawiz.models import Target

GOLD = ["fire", "flood", "fire", "flood"]


def result(loss: float, general_ppl: float, predicted: list[str], acc: float) -> ModelResult:
    out = ModelResult(loss=LossResult(loss, 2 * loss, 40, 4, 0), general=LossResult(1.0, general_ppl, 90, 4, 0),
                      answers={0: f"answer {loss}"}, lm_eval={"mc": {"acc": acc, "word_perplexity": 10 * loss}})
    out.classification[AS_GIVEN] = classification_report(GOLD, predicted, ["fire", "flood"])
    out.extraction[AS_GIVEN] = {"exact": 4}
    return out


def ab_report() -> EvalReport:
    a, b = Target("out/run-a", "base-model", True), Target("out/run-b", "base-model", True)
    results = {"A": result(2.0, 30.0, ["fire", "fire", "fire", "flood"], 0.6),
               "B": result(1.0, 33.0, GOLD, 0.6)}
    samples = [{"row": 1, "prompt": [{"role": "user", "content": "Smoke."}], "reference": "fire", "A": "flood",
                "B": "fire"}]
    return EvalReport(a, None, "val.jsonl", 4, 4, "classification", "--task", ["fire", "flood"], results, samples,
                      general_data="wiki.jsonl", sides={"A": Side(a, "run-a"), "B": Side(b, "run-b")},
                      shared_base={"model": "base-model", "adapters": ["A", "B"]})


def test_ab_results_are_named_by_the_folders():
    report = ab_report()
    as_json = report.as_dict()
    assert list(as_json["results"]) == ["run-a", "run-b"]
    assert as_json["samples"][0]["run-a"] == "flood" and as_json["samples"][0]["run-b"] == "fire"
    assert as_json["sides"]["B"] == {"name": "run-b", "path": "out/run-b", "adapter": True, "base": "base-model"}
    assert as_json["change"]["loss"] == -0.5 and as_json["change_from"] == "run-a to run-b"
    assert as_json["shared_base"]["adapters"] == ["A", "B"]
    # neither side is the base: no forgetting verdict, no base-vs-tuned classification verdict
    assert "forgetting" not in as_json and "forgetting_warning" not in as_json
    assert "fine_tuned_beats_base" not in as_json


def test_ab_says_which_side_is_better_on_each_metric():
    report = ab_report()
    better = {metric: side for metric, _, _, side in report.better_by_metric()}
    assert better == {"loss": "run-b", "perplexity": "run-b", "general-data perplexity": "run-a",
                      "macro-F1": "run-b", "accuracy": "run-b", "mc acc": None, "mc word_perplexity": "run-b"}
    report.lm_eval_higher = {"mc": {"word_perplexity": True}}  # lm-eval's own direction wins over the name
    assert dict((m, s) for m, _, _, s in report.better_by_metric())["mc word_perplexity"] == "run-a"


def base_report() -> EvalReport:
    target = Target("out/run", "base-model", True)
    results = {"base": result(2.0, 30.0, GOLD, 0.50), "fine_tuned": result(1.0, 31.5, GOLD, 0.40)}
    return EvalReport(target, "base-model", "val.jsonl", 4, 4, "lm", "--task", [], results, [],
                      general_data="wiki.jsonl")


def test_forgetting_verdict_per_benchmark():
    report = base_report()
    checks = {(c["task"], c["metric"]): c for c in report.forgetting_checks()}
    assert checks[("wiki.jsonl", "perplexity")]["verdict"] == "worse"  # 30 -> 31.5 is +5.0%: not more than 5%
    assert checks[("mc", "acc")]["verdict"] == "forgetting" and checks[("mc", "acc")]["shown"] == \
        "forgetting (worse by 20.0%)"
    assert checks[("mc", "word_perplexity")]["verdict"] == "kept"  # lower is better: 20 -> 10
    assert report.forgetting is None  # the general-data warning keeps its rule: more than 5%
    report.mitigation = ["lorawiz mix a.jsonl:0.65 b.jsonl:0.35 -o m.jsonl"]
    as_json = report.as_dict()["forgetting"]
    assert as_json["found"] is True and as_json["threshold"] == 0.05
    assert as_json["mitigation"] == report.mitigation and len(as_json["checks"]) == 3
