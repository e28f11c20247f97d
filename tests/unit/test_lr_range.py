"""The range test's arithmetic: the sweep's rates, the debiased smoothing, stopping, and the suggestion rules."""

from __future__ import annotations

import math

import pytest

from lorawiz.lr_range import (
    Sweep,
    falling_region,
    round_rate,
    smoothing,
    suggestions,
    sweep_rate,
)


def curve(rate: float) -> float:
    """A loss over the rate as LoRA sweeps draw it: flat, then falling around 1e-4..1e-2, then climbing."""
    x = math.log10(rate)
    return 2.0 - 1.2 / (1 + math.exp(-2.5 * (x + 3))) + (0.0 if x < -1 else 30.0 * (x + 1) ** 2)


def swept(start=1e-7, end=10.0, steps=100, loss=curve) -> Sweep:
    sweep = Sweep(start, end, steps)
    for step in range(steps):
        rate = sweep_rate(start, end, steps, step)
        if sweep.record(rate, loss(rate)):
            break
    return sweep


def test_the_rates_rise_exponentially_from_start_to_end():
    rates = [sweep_rate(1e-6, 1.0, 7, step) for step in range(7)]
    assert rates[0] == pytest.approx(1e-6) and rates[-1] == pytest.approx(1.0)
    assert all(b / a == pytest.approx(10.0) for a, b in zip(rates, rates[1:], strict=False))


def test_the_smoothed_loss_is_debiased_and_spans_the_same_share_of_any_sweep():
    sweep = Sweep(1e-6, 1.0, 100)
    sweep.record(1e-6, 5.0)
    assert sweep.smoothed == [pytest.approx(5.0)]  # not 0.02 * 5: the average starts at zero, debiased
    sweep.record(2e-6, 3.0)
    assert sweep.smoothed[1] == pytest.approx((0.98 * 0.02 * 5 + 0.02 * 3) / (1 - 0.98 ** 2))
    assert smoothing(100) == 0.98 and smoothing(50) == pytest.approx(0.98 ** 2)


def test_it_stops_when_the_smoothed_loss_passes_four_times_the_best_or_is_not_finite():
    diverging = swept()
    assert diverging.stopped.startswith("the loss diverged") and len(diverging.rates) < 100
    assert diverging.smoothed[-1] > 4 * min(diverging.smoothed)
    assert all(s <= 4 * min(diverging.smoothed[:i + 1]) for i, s in enumerate(diverging.smoothed[:-1]))
    nan = swept(loss=lambda rate: math.nan if rate > 1e-3 else 1.0)
    assert "nan" in nan.stopped and math.isnan(nan.losses[-1])
    flat = swept(end=1e-3)
    assert flat.stopped == "" and len(flat.rates) == 100


def test_the_suggestions_lie_where_the_loss_falls():
    sweep = swept()
    found = suggestions(sweep)
    low, high = falling_region(sweep)
    assert 1e-5 < low < 1e-3 < high < 1e-1  # around the drop drawn in `curve`
    assert low <= found["valley"].rate <= high
    assert low <= found["steepest"].rate <= high
    lowest = min(range(10, len(sweep.rates) - 5), key=sweep.smoothed.__getitem__)
    assert found["minimum"].rate == pytest.approx(sweep.rates[lowest] / 10)  # a tenth of the lowest loss's rate


def test_steepest_is_where_the_smoothed_loss_falls_fastest():
    sweep = swept()
    found = suggestions(sweep)["steepest"]
    index = sweep.rates.index(found.rate)
    slope = [(sweep.smoothed[i + 1] - sweep.smoothed[i]) for i in range(10, len(sweep.rates) - 6)]
    assert sweep.smoothed[index + 1] - sweep.smoothed[index] == pytest.approx(min(slope))


def test_a_loss_that_never_falls_has_no_falling_region_and_few_steps_no_suggestion():
    assert falling_region(swept(loss=lambda rate: 1.0 + rate)) is None
    short = swept(loss=lambda rate: math.nan if rate > 1e-6 else 1.0)
    assert suggestions(short) == {}


def test_rates_are_rounded_to_two_significant_figures():
    assert round_rate(0.0014208) == 0.0014 and round_rate(3.27e-5) == 3.3e-5
