"""The learning-rate range test's arithmetic (Smith 2015, "Cyclical Learning Rates", section 3.3; fastai's lr_find):
the exponential sweep of rates, the smoothed loss, when to stop, and the rules that read a suggestion off the curve.

Plain numbers in, plain numbers out: train/lr_find.py runs the sweep on a real trainer and records into a Sweep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

SMOOTHING = 0.98  # fastai's AvgSmoothLoss beta (an exponential moving average, debiased), for its 100 steps
DIVERGED = 4.0  # fastai's stop_div: stop once the smoothed loss is 4 times the best one so far
RULES = {
    "valley": "the longest stretch over which the smoothed loss keeps falling, taken halfway along it (fastai's "
              "default, valley)",
    "steepest": "where the smoothed loss falls fastest per step of log(rate) (fastai's steep)",
    "minimum": "a tenth of the rate at the lowest smoothed loss (fastai's minimum)",
}
SUGGESTED_RULE = "valley"


def smoothing(steps: int) -> float:
    """fastai's 0.98 over its 100 steps, scaled so that the average spans the same share of a longer or shorter
    sweep (0.96 over 50 steps, 0.99 over 200)."""
    return SMOOTHING ** (100 / steps)


def sweep_rate(start: float, end: float, steps: int, step: int) -> float:
    """The rate of optimizer step `step` (0 to steps-1): exponential from `start` to `end`, both included."""
    return start * (end / start) ** (step / max(1, steps - 1))


@dataclass
class Sweep:
    """What one range test saw: a rate and the training loss of each optimizer step, as they come."""

    start: float
    end: float
    steps: int
    rates: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    stopped: str = ""  # why it ended before `steps` ("the loss diverged ..."), or ""
    _average: float = 0.0
    _best: float = math.inf

    def record(self, rate: float, loss: float) -> bool:
        """Add one step; True when the sweep should stop here (the loss diverged or is not finite)."""
        self.rates.append(rate)
        self.losses.append(loss)
        if not math.isfinite(loss):
            self.smoothed.append(loss)
            self.stopped = f"the loss became {loss} at rate {rate:.2e}"
            return True
        beta = smoothing(self.steps)
        self._average = beta * self._average + (1 - beta) * loss
        value = self._average / (1 - beta ** (len(self.smoothed) + 1))  # debiased
        self.smoothed.append(value)
        self._best = min(self._best, value)
        if value > DIVERGED * self._best:
            self.stopped = (f"the loss diverged at rate {rate:.2e} (smoothed {value:.3g}, more than {DIVERGED:g} "
                            f"times the best {self._best:.3g})")
            return True
        return False


@dataclass(frozen=True)
class Suggestion:
    rule: str
    rate: float
    loss: float  # the smoothed loss there

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "rate": self.rate, "smoothed_loss": self.loss, "how": RULES[self.rule]}


def suggestions(sweep: Sweep) -> dict[str, Suggestion]:
    """Each rule's rate, read as fastai reads it: on the smoothed loss, leaving out the first tenth of the steps
    (the loss hardly moves yet) and the last five (where it climbs). Empty when too few finite steps remain."""
    finite = [(r, s) for r, s in zip(sweep.rates, sweep.smoothed, strict=True) if math.isfinite(s)]
    kept = finite[sweep.steps // 10:len(finite) - 5]
    if len(kept) < 3:
        return {}
    rates, losses = [r for r, _ in kept], [s for _, s in kept]
    found = {}
    index = _valley(losses)
    found["valley"] = Suggestion("valley", rates[index], losses[index])
    slopes = [(losses[i + 1] - losses[i]) / (math.log(rates[i + 1]) - math.log(rates[i])) for i in range(len(kept) - 1)]
    index = min(range(len(slopes)), key=slopes.__getitem__)
    found["steepest"] = Suggestion("steepest", rates[index], losses[index])
    index = min(range(len(losses)), key=losses.__getitem__)
    found["minimum"] = Suggestion("minimum", rates[index] / 10, losses[index])
    return found


def _valley(losses: list[float]) -> int:
    """fastai's valley: the longest decreasing run of the loss (as a subsequence, which rides over small bumps),
    and the index halfway along it."""
    n = len(losses)
    longest = [1] * n
    start = end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
            if longest[end] < longest[i]:
                end = i
                start = end - longest[end]
    third = (end - start) / 3
    return min(n - 1, start + int(third) + int(third / 2))


def falling_region(sweep: Sweep, share: float = 0.1, least: float = 0.02) -> tuple[float, float] | None:
    """The rates over which the loss falls: read on the raw loss (a running median of five steps, which the
    smoothed loss lags behind), from where a tenth of its whole drop is done to where nine tenths are, the drop
    being from its level over the first tenth of the sweep to its lowest. None when it falls by less than 2%."""
    import statistics

    finite = [(r, loss) for r, loss in zip(sweep.rates, sweep.losses, strict=True) if math.isfinite(loss)]
    if len(finite) < 10:
        return None
    medians = [statistics.median(loss for _, loss in finite[max(0, i - 2):i + 3]) for i in range(len(finite))]
    start = statistics.median(medians[:max(1, len(finite) // 10)])
    lowest = min(medians)
    drop = start - lowest
    if drop <= least * abs(start):
        return None
    first = next(i for i, level in enumerate(medians) if level <= start - share * drop)
    last = next(i for i, level in enumerate(medians) if level <= lowest + share * drop)
    return finite[first][0], finite[last][0]


def round_rate(rate: float) -> float:
    """A rate as people write one: two significant figures (3.2e-04)."""
    return float(f"{rate:.1e}")
