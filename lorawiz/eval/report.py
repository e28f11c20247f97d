"""What `lorawiz eval` found: each model's results, the changes from base to fine-tuned (or from A to B with
--against), the forgetting verdicts, and the JSON written.

Plain data and arithmetic on it, no models: lorawiz.eval.run fills it in, lorawiz.views.eval shows it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from lorawiz.data.rows import final_answer
from lorawiz.eval.metrics import ClassificationReport, PreferenceScores, relative_change
from lorawiz.eval.scoring import LossResult
from lorawiz.eval.verdicts import FORGETTING, FORGETTING_THRESHOLD, better_side, forgetting_verdict, lower_is_better
from lorawiz.models import Target

ROLES = ("base", "fine_tuned")
ROLE_NAMES = {"base": "base", "fine_tuned": "fine-tuned"}
AB_ROLES = ("A", "B")  # `lorawiz eval RUN_A --against RUN_B`: the sides, named by their folders in what is shown
AS_GIVEN, WITH_LABELS = "as given", "label list"  # the base is also asked with the label set spelled out
YOUR_TEMPLATE = "your template"  # and with the user's own best prompt (--prompt-template)


@dataclass
class ModelResult:
    loss: LossResult | None = None
    general: LossResult | None = None
    classification: dict[str, ClassificationReport] = field(default_factory=dict)  # prompt variant -> report
    extraction: dict[str, dict[str, int]] = field(default_factory=dict)  # prompt variant -> how labels were found
    answers: dict[int, str] = field(default_factory=dict)  # sample row index -> greedy answer
    lm_eval: dict[str, dict[str, float]] = field(default_factory=dict)
    preference: PreferenceScores | None = None  # its ranking of held-out preference pairs

    def best_variant(self) -> str | None:
        if not self.classification:
            return None
        return max(self.classification, key=lambda name: self.classification[name].macro_f1)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"loss": self.loss.as_dict() if self.loss else None}
        if self.general:
            out["general"] = self.general.as_dict()
        if self.classification:
            out["classification"] = {name: report.as_dict() | {"label_found": self.extraction[name]}
                                     for name, report in self.classification.items()}
            out["best_prompt"] = self.best_variant()
        if self.lm_eval:
            out["lm_eval"] = self.lm_eval
        if self.preference:
            out["preference"] = self.preference.as_dict()
        return out


@dataclass
class Side:
    """One side of an A/B eval: what was loaded, and the name (its folder's) that the tables and the JSON use."""

    target: Target
    name: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.target.path, "adapter": self.target.is_adapter,
                "base": self.target.base}


@dataclass
class EvalReport:
    target: Target
    base: str | None
    data: str
    rows: int
    total_rows: int
    task: str
    task_source: str
    labels: list[str]
    results: dict[str, ModelResult]
    samples: list[dict[str, Any]]  # prompt, reference and each model's answer
    general_data: str | None = None
    notes: list[str] = field(default_factory=list)
    min_f1: float | None = None  # --min-f1: a fixed bar the fine-tuned macro-F1 must beat
    rewards: PreferenceScores | None = None  # preference pairs: DPO's implicit reward of fine-tuned over base
    sides: dict[str, Side] | None = None  # --against: "A" and "B" (the roles of `results`) instead of base/tuned
    shared_base: dict[str, Any] | None = None  # --against with two adapters: the one base and its adapters' names
    lm_eval_higher: dict[str, dict[str, bool | None]] = field(default_factory=dict)  # lm-eval's higher_is_better
    mitigation: list[str] = field(default_factory=list)  # commands that mix general data in and train again
    mitigation_notes: list[str] = field(default_factory=list)  # what to replace in them (placeholders)
    # for the view, which does not import lorawiz.eval (dependencies point downward)
    role_names: ClassVar[Mapping[str, str]] = ROLE_NAMES
    forgetting_threshold: ClassVar[float] = FORGETTING_THRESHOLD

    @property
    def roles(self) -> list[str]:
        """The roles measured, base (or A) first."""
        return [role for role in (AB_ROLES if self.sides else ROLES) if role in self.results]

    @property
    def names(self) -> dict[str, str]:
        """Each role's name in the tables: base and fine-tuned, or the two sides' folder names."""
        return {role: side.name for role, side in self.sides.items()} if self.sides else dict(ROLE_NAMES)

    def _pair(self) -> tuple[ModelResult, ModelResult] | None:
        roles = self.roles
        return (self.results[roles[0]], self.results[roles[1]]) if len(roles) == 2 else None

    def change(self, attribute: str, metric: str) -> float | None:
        """Relative change of a loss metric from base to fine-tuned (A to B), or None without both."""
        pair = self._pair()
        before, after = (getattr(result, attribute) for result in pair) if pair else (None, None)
        if before is None or after is None:
            return None
        return relative_change(getattr(before, metric), getattr(after, metric))

    def lm_eval_change(self, task: str, metric: str) -> float | None:
        """Relative change of an lm-eval metric from base to fine-tuned (A to B), or None without both."""
        pair = self._pair()
        values = [result.lm_eval.get(task, {}).get(metric) for result in pair] if pair else [None]
        return relative_change(values[0], values[1]) if None not in values else None

    @property
    def forgetting(self) -> float | None:
        """Relative rise of the general-data perplexity, when it is forgetting (more than the threshold)."""
        check = next((c for c in self.forgetting_checks() if c["check"] == "general data"), None)
        return check["worse_by"] if check and check["verdict"] == FORGETTING else None

    def forgetting_checks(self) -> list[dict[str, Any]]:
        """The fine-tuned model against its base on each general benchmark: general-data perplexity and every lm-eval
        task metric, each with its verdict (lorawiz.eval.verdicts). Empty without a base (A/B included: neither
        side is the base)."""
        if self.sides or not set(ROLES) <= set(self.results):
            return []
        base, tuned = self.results["base"], self.results["fine_tuned"]
        found = []
        if base.general and tuned.general:
            found.append(("general data", self.general_data, "perplexity", base.general.perplexity,
                          tuned.general.perplexity, True))
        for task, metrics in base.lm_eval.items():
            for metric, before in metrics.items():
                after = tuned.lm_eval.get(task, {}).get(metric)
                if after is not None:
                    declared = self.lm_eval_higher.get(task, {}).get(metric)
                    found.append(("lm-eval", task, metric, before, after, lower_is_better(metric, declared)))
        checks = []
        for check, name, metric, before, after, lower in found:
            verdict = forgetting_verdict(before, after, lower)
            if verdict is not None:
                checks.append({"check": check, "task": name, "metric": metric, "base": before, "fine_tuned": after,
                               "lower_is_better": lower, **verdict.as_dict(), "shown": verdict.text})
        return checks

    def better_by_metric(self) -> list[tuple[str, float, float, str | None]]:
        """--against: (metric, A's value, B's value, the better side's name or None for a tie) on each metric both
        sides have: loss and perplexity, macro-F1 and accuracy, general perplexity, lm-eval task metrics."""
        pair = self._pair()
        if not self.sides or pair is None:
            return []
        a, b = pair
        rows: list[tuple[str, float, float, bool]] = []  # (metric, A, B, lower is better)
        if a.loss and b.loss:
            rows += [("loss", a.loss.loss, b.loss.loss, True), ("perplexity", a.loss.perplexity, b.loss.perplexity,
                                                                True)]
        if a.general and b.general:
            rows.append(("general-data perplexity", a.general.perplexity, b.general.perplexity, True))
        if AS_GIVEN in a.classification and AS_GIVEN in b.classification:
            rows += [(name, getattr(a.classification[AS_GIVEN], key), getattr(b.classification[AS_GIVEN], key), False)
                     for name, key in (("macro-F1", "macro_f1"), ("accuracy", "accuracy"))]
        for task, metrics in a.lm_eval.items():
            for metric, value in metrics.items():
                other = b.lm_eval.get(task, {}).get(metric)
                if other is not None:
                    declared = self.lm_eval_higher.get(task, {}).get(metric)
                    rows.append((f"{task} {metric}", value, other, lower_is_better(metric, declared)))
        names = self.names
        return [(label, va, vb, names[side] if (side := better_side(va, vb, lower)) else None)
                for label, va, vb, lower in rows]

    def verdict(self) -> tuple[bool, float, float, str] | None:
        """(fine-tuned F1 > base's best prompted F1, the two F1s, the base's best prompt) for classification. A
        tie is not "fine-tuning helped": it must beat the base."""
        if self.task != "classification" or not set(ROLES) <= set(self.results):
            return None
        base = self.results["base"]
        best = base.best_variant()
        tuned = self.results["fine_tuned"].classification[AS_GIVEN].macro_f1
        best_f1 = base.classification[best].macro_f1
        return tuned > best_f1, tuned, best_f1, best

    def bar(self) -> tuple[bool, float] | None:
        """(fine-tuned macro-F1 > --min-f1, that F1), or None without a bar or a fine-tuned classification."""
        tuned = self.results.get("fine_tuned") or self.results.get("base")
        if self.min_f1 is None or self.task != "classification" or tuned is None:
            return None
        f1 = tuned.classification[AS_GIVEN].macro_f1
        return f1 > self.min_f1, f1

    def as_dict(self) -> dict[str, Any]:
        key = self.names if self.sides else {role: role for role in self.results}  # A/B: keyed by folder names
        out = {
            "target": self.target.path, "adapter": self.target.is_adapter, "base": self.base,
            "data": self.data, "rows": self.rows, "rows_in_file": self.total_rows,
            "task": self.task, "task_source": self.task_source,
            "results": {key[role]: result.as_dict() for role, result in self.results.items()},
            "change": {"loss": self.change("loss", "loss"), "perplexity": self.change("loss", "perplexity")},
            "samples": [{key.get(k, k): v for k, v in sample.items()} for sample in self.samples],
            "notes": self.notes,
        }
        if self.sides:
            out["against"] = self.sides["B"].target.path
            out["sides"] = {role: side.as_dict() for role, side in self.sides.items()}
            out["change_from"] = f"{self.sides['A'].name} to {self.sides['B'].name}"
            out["better"] = [{"metric": metric, self.sides["A"].name: va, self.sides["B"].name: vb, "better": side}
                             for metric, va, vb, side in self.better_by_metric()]
            if self.shared_base:
                out["shared_base"] = self.shared_base
        if self.labels:
            out["labels"] = self.labels
            verdict = self.verdict()
            if verdict:
                out["fine_tuned_beats_base"] = {"passed": verdict[0], "fine_tuned_macro_f1": verdict[1],
                                                "base_best_macro_f1": verdict[2], "base_best_prompt": verdict[3]}
            bar = self.bar()
            if bar:
                out["min_f1"] = {"bar": self.min_f1, "macro_f1": bar[1], "passed": bar[0]}
        if self.rewards:
            out["rewards"] = {"reward_accuracy": self.rewards.accuracy, "reward_margin": self.rewards.margin}
        if self.general_data:
            out["general_data"] = self.general_data
            out["change"]["general_perplexity"] = self.change("general", "perplexity")
            if not self.sides:  # A/B: neither side is the base (see "better")
                out["forgetting_warning"] = self.forgetting is not None
        checks = self.forgetting_checks()
        if checks:
            out["forgetting"] = {"threshold": FORGETTING_THRESHOLD, "checks": checks,
                                 "found": any(c["verdict"] == FORGETTING for c in checks),
                                 "mitigation": self.mitigation, "mitigation_notes": self.mitigation_notes}
        return out


def sample_record(row: Mapping[str, Any], prompt: Sequence[Mapping[str, Any]], index: int,
                  results: Mapping[str, ModelResult]) -> dict[str, Any]:
    """One row shown side by side: its prompt, the reference answer and each model's answer."""
    reference = final_answer(row)
    return {"row": index + 1, "prompt": list(prompt), "reference": reference,
            **{role: result.answers.get(index) for role, result in results.items()}}
