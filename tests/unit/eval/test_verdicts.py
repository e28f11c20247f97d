"""lorawiz.eval.verdicts: kept / worse by x% / forgetting around the 5% line, for metrics where higher is better
and where lower is better, and which side of an A/B eval is better."""

from __future__ import annotations

import pytest

from lorawiz.eval.verdicts import (
    FORGETTING,
    FORGETTING_THRESHOLD,
    KEPT,
    WORSE,
    better_side,
    forgetting_verdict,
    lower_is_better,
)


@pytest.mark.parametrize(("base", "after", "kind", "shown"), [
    (0.5, 0.5, KEPT, "kept"),
    (0.5, 0.6, KEPT, "kept"),  # better is kept
    (0.5, 0.49, WORSE, "worse by 2.0%"),
    (0.5, 0.475, WORSE, "worse by 5.0%"),  # exactly 5% is not more than 5%
    (0.5, 0.4749, FORGETTING, "forgetting (worse by 5.0%)"),
    (0.5, 0.4, FORGETTING, "forgetting (worse by 20.0%)"),
    (0.8, 0.7998, KEPT, "kept"),  # 0.025%: prints as 0.0%, so no change
])
def test_higher_is_better_accuracy(base, after, kind, shown):
    verdict = forgetting_verdict(base, after, lower_better=False)
    assert verdict.kind == kind and verdict.text == shown


@pytest.mark.parametrize(("base", "after", "kind"), [
    (20.0, 20.0, KEPT),
    (20.0, 18.0, KEPT),  # a lower perplexity is better
    (20.0, 21.0, WORSE),  # +5% exactly
    (20.0, 21.0001, FORGETTING),
    (2.0, 1.9, KEPT),
    (2.0, 2.2, FORGETTING),
])
def test_lower_is_better_perplexity_and_loss(base, after, kind):
    assert forgetting_verdict(base, after, lower_better=True).kind == kind


def test_exactly_the_threshold_in_both_directions():
    assert FORGETTING_THRESHOLD == 0.05
    assert forgetting_verdict(100.0, 105.0, lower_better=True).kind == WORSE
    assert forgetting_verdict(100.0, 95.0, lower_better=False).kind == WORSE
    assert forgetting_verdict(100.0, 105.01, lower_better=True).kind == FORGETTING
    assert forgetting_verdict(100.0, 94.99, lower_better=False).kind == FORGETTING


def test_no_verdict_without_a_relative_change():
    assert forgetting_verdict(0.0, 0.3, lower_better=False) is None
    assert forgetting_verdict(float("inf"), 3.0, lower_better=True) is None


@pytest.mark.parametrize(("metric", "declared", "lower"), [
    ("acc", None, False), ("acc_norm", None, False), ("exact_match", None, False), ("f1", None, False),
    ("perplexity", None, True), ("word_perplexity", None, True), ("bits_per_byte", None, True),
    ("loss", None, True), ("ter", None, True), ("acc", False, True), ("perplexity", True, False),
])
def test_direction_from_lm_eval_or_the_name(metric, declared, lower):
    assert lower_is_better(metric, declared) is lower


def test_better_side():
    assert better_side(1.0, 2.0, lower_better=True) == "A"
    assert better_side(1.0, 2.0, lower_better=False) == "B"
    assert better_side(0.5, 0.5, lower_better=False) is None
    assert better_side(float("nan"), 0.5, lower_better=False) is None
