"""Pure: the verdicts `lorawiz eval` prints, from two numbers and the metric's direction: kept, worse by x% or
forgetting (a general benchmark measured before and after fine-tuning), and which side of an A/B eval is better.

Standard library only, so the rules are easy to check by hand (tests/unit/eval/test_verdicts.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# More than 5% worse on a general benchmark (relative to the base) is forgetting: the threshold of the forgetting
# methodology lorawiz follows (issue 7 for general-data perplexity, the same rule for lm-eval tasks); 5% exactly is
# "worse by 5.0%", not forgetting.
FORGETTING_THRESHOLD = 0.05
# A relative change that prints as 0.0% at one decimal is no change at all: "kept", never "worse by 0.0%".
KEPT_BELOW = 0.0005
# Rounding noise of float arithmetic: 0.475 against 0.5 is a 5% drop even if the division says 5.0000000000000002%.
EPSILON = 1e-9
KEPT, WORSE, FORGETTING = "kept", "worse", "forgetting"
# Metrics where lower is better when lm-eval does not say (its output's higher_is_better has it for most tasks):
# name parts, and names holding one of LOWER_IS_BETTER_NAMES anywhere (word_perplexity, byte_perplexity)
LOWER_IS_BETTER_PARTS = frozenset({"loss", "error", "wer", "ter", "cer", "bpb"})
LOWER_IS_BETTER_NAMES = ("perplexity", "bits_per_byte")


@dataclass(frozen=True)
class Verdict:
    kind: str  # KEPT, WORSE or FORGETTING
    worse_by: float  # relative worsening: (base - after) / base when higher is better; 0 or less when not worse

    @property
    def text(self) -> str:
        """What the tables print: "kept", "worse by 3.2%" or "forgetting (worse by 7.5%)"."""
        if self.kind == KEPT:
            return KEPT
        if self.kind == WORSE:
            return f"worse by {self.worse_by:.1%}"
        return f"forgetting (worse by {self.worse_by:.1%})"

    def as_dict(self) -> dict[str, object]:
        return {"verdict": self.kind, "worse_by": self.worse_by}


def lower_is_better(metric: str, declared: bool | None = None) -> bool:
    """Whether a smaller value of `metric` is better: lm-eval's own higher_is_better when it gave one (`declared`),
    else from the name (perplexity, loss, bits per byte, error rates)."""
    if declared is not None:
        return not declared
    name = metric.lower()
    return any(word in name for word in LOWER_IS_BETTER_NAMES) or bool(LOWER_IS_BETTER_PARTS & set(name.split("_")))


def relative_worsening(base: float, after: float, lower_better: bool) -> float | None:
    """How much worse `after` is than `base`, relative to the base (negative when better); None when the base is 0
    or a value is not finite (no relative change exists)."""
    if not (math.isfinite(base) and math.isfinite(after)) or base == 0:
        return None
    change = (after - base) / abs(base)
    return change if lower_better else -change


def forgetting_verdict(base: float, after: float, lower_better: bool,
                       threshold: float = FORGETTING_THRESHOLD) -> Verdict | None:
    """kept (not worse), worse by x% (up to the threshold, included) or forgetting (more than the threshold worse
    than the base); None when no relative change can be computed."""
    worse = relative_worsening(base, after, lower_better)
    if worse is None:
        return None
    if worse < KEPT_BELOW:
        return Verdict(KEPT, worse)
    return Verdict(FORGETTING if worse > threshold + EPSILON else WORSE, worse)


def better_side(a: float, b: float, lower_better: bool) -> str | None:
    """"A" or "B", whichever value is better; None for a tie or a value that is not a number."""
    if not (math.isfinite(a) and math.isfinite(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12):
        return None
    return "A" if (a < b) == lower_better else "B"
