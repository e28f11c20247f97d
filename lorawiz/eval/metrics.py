"""Pure: labels read from generated text, and the classification and language-model metrics `lorawiz eval` reports.

No torch here: plain lists and strings in, plain dicts and floats out, so the numbers are easy to check by hand.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

NO_LABEL = "(none)"  # the confusion-matrix column for outputs that name no label of the set


def normalise(text: str) -> str:
    """Case, width, punctuation, underscores and spacing removed: "**Hazmat.**" and "hazmat" compare equal."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"[_\-]+", " ", text)
    text = re.sub(r"[^\w\s]", "", text)
    return " ".join(text.split())


def extract_label(output: str, labels: Sequence[str]) -> tuple[str | None, str]:
    """The label an output names, and how it was found: "exact", "normalised", "mentioned" or "none".

    Exact: the output is the label. Normalised: equal once case, punctuation and spacing are removed.
    Mentioned: exactly one label of the set appears in the output as whole words ("The category is fire.");
    an output that mentions two labels names none, rather than one picked by chance.
    """
    stripped = output.strip()
    if stripped in labels:
        return stripped, "exact"
    by_form: dict[str, str] = {}
    for label in labels:
        by_form.setdefault(normalise(label), label)
    plain = normalise(stripped)
    if plain in by_form:
        return by_form[plain], "normalised"
    mentioned = {label for form, label in by_form.items()
                 if form and re.search(rf"(?<!\w){re.escape(form)}(?!\w)", plain)}
    # a label inside a longer one ("fire" in "wild fire") is the longer one's
    mentioned = {label for label in mentioned
                 if not any(other != label and normalise(label) in normalise(other) for other in mentioned)}
    if len(mentioned) == 1:
        return mentioned.pop(), "mentioned"
    return None, "none"


@dataclass
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class ClassificationReport:
    labels: list[str]
    accuracy: float
    macro_f1: float
    per_class: dict[str, ClassScores]
    confusion: list[list[int]]  # rows: the true label (in `labels` order); columns: `labels` then NO_LABEL
    unlabelled: int  # predictions that named no label of the set

    def as_dict(self) -> dict:
        return {"accuracy": self.accuracy, "macro_f1": self.macro_f1,
                "per_class": {label: vars(scores) for label, scores in self.per_class.items()},
                "confusion": {"rows_true": self.labels, "columns_predicted": [*self.labels, NO_LABEL],
                              "counts": self.confusion},
                "unlabelled": self.unlabelled}


def classification_report(gold: Sequence[str], predicted: Sequence[str | None],
                          labels: Sequence[str]) -> ClassificationReport:
    """Accuracy, macro-F1 over the label set, per-class precision / recall / F1 and the confusion matrix.

    A prediction of None (no label found) is wrong for its row and counts against no class's precision. A class
    with no predictions has precision 0, one with no rows recall 0, and F1 is 0 when both are 0 (scikit-learn's
    zero_division=0). Macro-F1 is the unweighted mean over `labels`, so a rare class counts as much as a common one.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} true labels but {len(predicted)} predictions")
    if not gold:
        raise ValueError("no rows to score")
    labels = list(labels)
    column = {label: i for i, label in enumerate(labels)}
    confusion = [[0] * (len(labels) + 1) for _ in labels]
    for truth, guess in zip(gold, predicted, strict=True):
        if truth not in column:
            raise ValueError(f"true label {truth!r} is not in the label set")
        confusion[column[truth]][column.get(guess, len(labels)) if guess is not None else len(labels)] += 1
    per_class = {}
    for i, label in enumerate(labels):
        hits = confusion[i][i]
        predicted_as = sum(confusion[row][i] for row in range(len(labels)))
        support = sum(confusion[i])
        precision = hits / predicted_as if predicted_as else 0.0
        recall = hits / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = ClassScores(precision, recall, f1, support)
    accuracy = sum(confusion[i][i] for i in range(len(labels))) / len(gold)
    macro_f1 = sum(scores.f1 for scores in per_class.values()) / len(labels)
    unlabelled = sum(row[-1] for row in confusion)
    return ClassificationReport(labels, accuracy, macro_f1, per_class, confusion, unlabelled)


def perplexity(loss: float) -> float:
    """exp(mean token loss in nats); inf past what a float holds."""
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf


def relative_change(before: float, after: float) -> float | None:
    """(after - before) / before, or None when before is 0 or either is not finite."""
    if not (math.isfinite(before) and math.isfinite(after)) or before == 0:
        return None
    return (after - before) / before


@dataclass
class PreferenceScores:
    """How one model ranks held-out pairs: the share where the chosen answer is likelier than the rejected one
    (summed log-probabilities of the answers' tokens), and the mean of that log-probability margin."""

    pairs: int
    accuracy: float
    margin: float

    def as_dict(self) -> dict[str, float]:
        return {"pairs": self.pairs, "preference_accuracy": self.accuracy, "log_prob_margin": self.margin}


def preference_scores(chosen: Sequence[float], rejected: Sequence[float]) -> PreferenceScores:
    margins = [c - r for c, r in zip(chosen, rejected, strict=True)]
    return PreferenceScores(len(margins), sum(m > 0 for m in margins) / len(margins), sum(margins) / len(margins))


def reward_scores(beta: float, tuned: tuple[Sequence[float], Sequence[float]],
                  reference: tuple[Sequence[float], Sequence[float]]) -> PreferenceScores:
    """DPO's implicit reward against a reference (Rafailov et al. 2023, eq. 5; TRL's rewards/accuracies and
    rewards/margins): r = beta x (log p_tuned - log p_reference) of each answer; the share of pairs where the
    chosen answer's reward is higher, and the mean reward margin."""
    chosen = [beta * (t - b) for t, b in zip(tuned[0], reference[0], strict=True)]
    rejected = [beta * (t - b) for t, b in zip(tuned[1], reference[1], strict=True)]
    return preference_scores(chosen, rejected)
