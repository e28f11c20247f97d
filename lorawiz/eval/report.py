"""What `lorawiz eval` found: each model's results, the changes from base to fine-tuned, and the JSON written.

Plain data and arithmetic on it, no models: lorawiz.eval.run fills it in, lorawiz.views.eval shows it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from lorawiz.data.rows import final_answer
from lorawiz.eval.metrics import ClassificationReport, PreferenceScores, relative_change
from lorawiz.eval.scoring import LossResult
from lorawiz.models import Target

ROLES = ("base", "fine_tuned")
ROLE_NAMES = {"base": "base", "fine_tuned": "fine-tuned"}
FORGETTING_THRESHOLD = 0.05  # a general-data perplexity rise above 5% is reported as forgetting (issue 7)
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
    # for the view, which does not import lorawiz.eval (dependencies point downward)
    role_names: ClassVar[Mapping[str, str]] = ROLE_NAMES
    forgetting_threshold: ClassVar[float] = FORGETTING_THRESHOLD

    @property
    def roles(self) -> list[str]:
        """The roles measured, base first."""
        return [role for role in ROLES if role in self.results]

    def change(self, attribute: str, metric: str) -> float | None:
        """Relative change of a loss metric from base to fine-tuned, or None without both."""
        if not set(ROLES) <= set(self.results):
            return None
        before = getattr(self.results["base"], attribute)
        after = getattr(self.results["fine_tuned"], attribute)
        if before is None or after is None:
            return None
        return relative_change(getattr(before, metric), getattr(after, metric))

    def lm_eval_change(self, task: str, metric: str) -> float | None:
        """Relative change of an lm-eval metric from base to fine-tuned, or None without both."""
        values = [self.results[role].lm_eval.get(task, {}).get(metric) if role in self.results else None
                  for role in ROLES]
        return relative_change(values[0], values[1]) if None not in values else None

    @property
    def forgetting(self) -> float | None:
        """Relative rise of the general-data perplexity, when it exceeds the threshold."""
        change = self.change("general", "perplexity")
        return change if change is not None and change > FORGETTING_THRESHOLD else None

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
        out = {
            "target": self.target.path, "adapter": self.target.is_adapter, "base": self.base,
            "data": self.data, "rows": self.rows, "rows_in_file": self.total_rows,
            "task": self.task, "task_source": self.task_source,
            "results": {role: result.as_dict() for role, result in self.results.items()},
            "change": {"loss": self.change("loss", "loss"), "perplexity": self.change("loss", "perplexity")},
            "samples": self.samples, "notes": self.notes,
        }
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
            out["forgetting_warning"] = self.forgetting is not None
        return out


def sample_record(row: Mapping[str, Any], prompt: Sequence[Mapping[str, Any]], index: int,
                  results: Mapping[str, ModelResult]) -> dict[str, Any]:
    """One row shown side by side: its prompt, the reference answer and each model's answer."""
    reference = final_answer(row)
    return {"row": index + 1, "prompt": list(prompt), "reference": reference,
            **{role: result.answers.get(index) for role, result in results.items()}}
