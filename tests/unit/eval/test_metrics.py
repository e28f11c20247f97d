"""lorawiz.eval.metrics: label extraction, and classification metrics checked by hand and against scikit-learn."""

from __future__ import annotations

import math
import random

import pytest

from lorawiz.eval.metrics import NO_LABEL, classification_report, extract_label, normalise, perplexity, relative_change

LABELS = ["fire", "flood", "medical"]


def test_hand_checked_case():
    gold = ["fire", "fire", "fire", "flood", "flood", "medical"]
    predicted = ["fire", "fire", "flood", "flood", None, "fire"]
    report = classification_report(gold, predicted, LABELS)
    # fire: predicted 3 times, 2 right -> P 2/3; 3 true, 2 found -> R 2/3; F1 2/3
    # flood: predicted twice, 1 right -> P 1/2; 2 true, 1 found -> R 1/2; F1 1/2
    # medical: never predicted -> P 0; 1 true, 0 found -> R 0; F1 0
    assert report.per_class["fire"].precision == pytest.approx(2 / 3)
    assert report.per_class["fire"].recall == pytest.approx(2 / 3)
    assert report.per_class["flood"].f1 == pytest.approx(1 / 2)
    assert report.per_class["medical"].f1 == 0.0
    assert report.macro_f1 == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    assert report.accuracy == pytest.approx(3 / 6)
    assert report.unlabelled == 1
    assert report.confusion == [[2, 1, 0, 0], [0, 1, 0, 1], [1, 0, 0, 0]]
    assert report.as_dict()["confusion"]["columns_predicted"] == [*LABELS, NO_LABEL]


@pytest.mark.parametrize("seed", range(20))
def test_matches_scikit_learn_on_fixed_predictions(seed):
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    rng = random.Random(seed)
    labels = ["a", "b", "c", "d"][: rng.randint(2, 4)]
    gold = [rng.choice(labels) for _ in range(rng.randint(1, 40))]
    # some predictions name no label; some classes may never be predicted or never occur
    predicted = [rng.choice([*labels, None]) for _ in gold]
    report = classification_report(gold, predicted, labels)

    sk_predicted = [p if p is not None else NO_LABEL for p in predicted]
    assert report.accuracy == pytest.approx(accuracy_score(gold, sk_predicted))
    assert report.macro_f1 == pytest.approx(f1_score(gold, sk_predicted, labels=labels, average="macro",
                                                     zero_division=0))
    precision, recall, f1, support = precision_recall_fscore_support(gold, sk_predicted, labels=labels,
                                                                     zero_division=0)
    for i, label in enumerate(labels):
        scores = report.per_class[label]
        assert (scores.precision, scores.recall, scores.f1) == pytest.approx((precision[i], recall[i], f1[i]))
        assert scores.support == support[i]
    matrix = confusion_matrix(gold, sk_predicted, labels=[*labels, NO_LABEL])
    assert report.confusion == matrix[: len(labels)].tolist()


def test_report_refuses_mismatched_input():
    with pytest.raises(ValueError, match="2 true labels but 1"):
        classification_report(["fire", "flood"], ["fire"], LABELS)
    with pytest.raises(ValueError, match="not in the label set"):
        classification_report(["smoke"], ["fire"], LABELS)


@pytest.mark.parametrize(("output", "label", "how"), [
    ("fire", "fire", "exact"),
    ("  flood\n", "flood", "exact"),
    ("**Fire.**", "fire", "normalised"),
    ("MEDICAL", "medical", "normalised"),
    ("The category is: medical.", "medical", "mentioned"),
    ("fire or flood", None, "none"),  # two labels named: no guess
    ("firefighters are on the way", None, "none"),  # a label inside another word is not a mention
    ("I cannot tell.", None, "none"),
])
def test_extract_label(output, label, how):
    assert extract_label(output, LABELS) == (label, how)


def test_extract_label_prefers_the_longer_label_it_contains():
    labels = ["fire", "forest fire"]
    assert extract_label("This is a forest fire.", labels) == ("forest fire", "mentioned")
    assert extract_label("Forest_Fire", labels) == ("forest fire", "normalised")


def test_normalise_and_loss_helpers():
    assert normalise("  Hazmat-Spill!! ") == "hazmat spill"
    assert perplexity(0.0) == 1.0
    assert perplexity(2.0) == pytest.approx(math.e ** 2)
    assert perplexity(1e6) == math.inf
    assert relative_change(2.0, 2.2) == pytest.approx(0.1)
    assert relative_change(0.0, 1.0) is None
    assert relative_change(math.inf, 1.0) is None


def test_preference_scores_count_pairs_whose_chosen_answer_is_likelier():
    from lorawiz.eval.metrics import preference_scores, reward_scores

    scores = preference_scores([-1.0, -2.0, -3.0, -0.5], [-2.0, -1.0, -4.0, -0.5])
    assert scores.pairs == 4 and scores.accuracy == 0.5  # a tie is no preference
    assert scores.margin == pytest.approx((1 - 1 + 1 + 0) / 4)
    # DPO's implicit reward: beta x the log-ratio to the reference, chosen against rejected (TRL's rewards/*)
    tuned, base = ([-1.0, -3.0], [-5.0, -2.0]), ([-2.0, -2.0], [-4.0, -4.0])
    rewards = reward_scores(0.1, tuned, base)
    assert rewards.accuracy == 0.5  # pair 1: +0.1 vs -0.1; pair 2: -0.1 vs +0.2
    assert rewards.margin == pytest.approx(((0.1 + 0.1) + (-0.1 - 0.2)) / 2)
