"""lorawiz.views.eval: the eval report as plain lines and as Rich tables, from a report built by hand."""

from __future__ import annotations

from lorawiz.eval.metrics import classification_report
from lorawiz.eval.report import AS_GIVEN, WITH_LABELS, EvalReport, ModelResult
from lorawiz.eval.scoring import LossResult
from lorawiz.models import Target
from lorawiz.views.eval import render_report

LABELS = ["fire", "flood"]
GOLD = ["fire", "flood", "fire", "flood"]


def result(loss: float, general: float, predicted: list[str | None], variants: tuple[str, ...]) -> ModelResult:
    out = ModelResult(loss=LossResult(loss, 2 * loss, 40, 4, 0), general=LossResult(general, 3 * general, 90, 4, 0),
                      answers={0: "fire"}, lm_eval={"mc": {"acc": 0.5 + loss / 10}})
    for variant in variants:
        out.classification[variant] = classification_report(GOLD, predicted, LABELS)
        out.extraction[variant] = {"exact": 3, "none": 1}
    return out


def report() -> EvalReport:
    results = {"base": result(2.0, 1.0, ["flood", "flood", None, "fire"], (AS_GIVEN, WITH_LABELS)),
               "fine_tuned": result(1.0, 1.2, GOLD, (AS_GIVEN,))}
    samples = [{"row": 1, "prompt": [{"role": "user", "content": "Smoke upstairs."}], "reference": "fire",
                "base": "flood", "fine_tuned": "fire"}]
    return EvalReport(Target("out/run", "base-model", True), "base-model", "val.jsonl", 4, 10, "classification",
                      "--task", LABELS, results, samples, general_data="wiki.jsonl")


def test_plain_lines_are_tab_separated_tables():
    lines = render_report(report(), plain=True)
    assert lines[0] == ("eval out/run (adapter on base-model) on val.jsonl: 4 rows (a fixed sample of 10); task "
                        "classification (--task)")
    assert "\tbase\tfine-tuned\tchange" in lines and "loss\t2\t1\t-50.0%" in lines
    assert any(line.startswith("warning: perplexity on general data worsened by 20.0%") for line in lines)
    assert "accuracy\t25.0%\t25.0%\t100.0%" in lines and "true\tfire\tflood\t(none)" in lines
    assert "--- row 1" in lines and "fine-tuned: fire" in lines
    assert "mc acc\t0.7000\t0.6000\t-14.3%" in lines
    assert any(line.startswith("fine-tuned macro-F1 1.000 > the base model's best prompted") for line in lines)


def test_rich_output_has_the_same_figures():
    from rich.console import Console

    console = Console(record=True, width=100)
    console.print(render_report(report(), plain=False))
    text = console.export_text()
    for shown in ("Loss on val.jsonl", "-50.0%", "Confusion matrix, fine-tuned", "Samples (1, greedy)",
                  "lm-eval-harness (zero-shot)", "fine-tuning helped."):
        assert shown in text, shown


def test_preference_pairs_are_ranked_by_each_model_with_the_reward_beside():
    from lorawiz.eval.metrics import preference_scores, reward_scores

    base = ([-2.0, -1.0, -3.0, -1.0], [-1.0, -2.0, -2.0, -1.5])
    tuned = ([-1.0, -0.5, -1.0, -0.5], [-3.0, -3.0, -4.0, -2.0])
    results = {"base": ModelResult(preference=preference_scores(*base)),
               "fine_tuned": ModelResult(preference=preference_scores(*tuned))}
    pairs = EvalReport(Target("out/dpo", "base-model", True), "base-model", "pairs.jsonl", 4, 4, "preference",
                       "the data holds chosen/rejected pairs", [], results, [])
    pairs.rewards = reward_scores(0.1, tuned, base)
    lines = render_report(pairs, plain=True)
    assert "preference accuracy\t50.0%\t100.0%\t+50.0 pts" in lines
    assert "log-prob margin (chosen - rejected)\t-0.125\t2.250\t+2.375" in lines
    assert any(line.startswith("reward accuracy 100.0%, reward margin 0.2375") for line in lines)
    assert not any(line.startswith("Loss on") for line in lines)  # pairs have no answer loss to report
    as_json = pairs.as_dict()
    assert as_json["results"]["fine_tuned"]["preference"]["preference_accuracy"] == 1.0
    assert as_json["rewards"] == {"reward_accuracy": 1.0, "reward_margin": pairs.rewards.margin}


def test_forgetting_verdicts_and_the_mitigation_commands():
    shown = report()
    shown.mitigation = ["lorawiz mix train.jsonl:0.65 GENERAL.jsonl:0.35 -o run-mixed.jsonl",
                        "lorawiz train out/run/lorawiz.yaml --data run-mixed.jsonl --learning-rate 0.0001"]
    shown.mitigation_notes = ["GENERAL.jsonl: general instruction data"]
    lines = render_report(shown, plain=True)
    start = lines.index("Forgetting: the fine-tuned model against the base (more than 5% worse is forgetting)")
    assert lines[start + 1] == "benchmark\tmetric\tbase\tfine-tuned\tverdict"
    assert "general data (wiki.jsonl)\tperplexity\t3\t3.6\tforgetting (worse by 20.0%)" in lines
    assert "mc\tacc\t0.7000\t0.6000\tforgetting (worse by 14.3%)" in lines
    assert "  " + shown.mitigation[1] in lines and "  (GENERAL.jsonl: general instruction data)" in lines


def test_ab_tables_name_the_two_folders_and_the_better_side():
    from lorawiz.eval.report import Side

    results = {"A": result(2.0, 1.0, ["flood", "flood", None, "fire"], (AS_GIVEN,)),
               "B": result(1.0, 1.2, GOLD, (AS_GIVEN,))}
    a, b = Target("out/run-a", "base-model", True), Target("out/run-b", "base-model", True)
    samples = [{"row": 1, "prompt": [{"role": "user", "content": "Smoke upstairs."}], "reference": "fire",
                "A": "flood", "B": "fire"}]
    ab = EvalReport(a, None, "val.jsonl", 4, 10, "classification", "--task", LABELS, results, samples,
                    general_data="wiki.jsonl", sides={"A": Side(a, "run-a"), "B": Side(b, "run-b")})
    lines = render_report(ab, plain=True)
    assert lines[0].startswith("eval run-a (A) against run-b (B) on val.jsonl: 4 rows")
    assert "\trun-a\trun-b\tchange" in lines and "loss\t2\t1\t-50.0%" in lines
    assert "label\trows\trun-a P\trun-a R\trun-a F1\trun-b P\trun-b R\trun-b F1" in lines
    assert "run-a: flood" in lines and "run-b: fire" in lines
    assert not any("base" in line.split("\t") or "fine-tuned" in line for line in lines)
    assert not any(line.startswith(("warning:", "forgetting check", "Forgetting:")) for line in lines)
    assert "metric\trun-a\trun-b\tbetter" in lines and "macro-F1\t0.2500\t1\trun-b" in lines
    assert ("verdict: run-a is better on general-data perplexity, mc acc; run-b is better on loss, perplexity, "
            "macro-F1, accuracy.") in lines
