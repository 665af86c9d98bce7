"""Claim rows: whether a paper's qualitative claim holds on this pipeline's own results.

Every figure that checks a claim appends rows made by ``claim_row`` to its tidy table, marked by
``run == "claim"``: the work, the claim in words, the statistic, its measured value, the threshold
it is compared with, and the verdict ``holds`` / ``does not hold`` / ``inconclusive`` (with the
reason, e.g. a skipped run).
"""

from __future__ import annotations

import math

VERDICTS = ("holds", "does not hold", "inconclusive")


def claim_row(work: str, figure: str, claim: str, statistic: str, value: float | None,
              threshold: str, holds: bool | None, reason: str = "") -> dict:
    """One claim row. ``holds=None`` (or a missing / non-finite ``value``) gives ``inconclusive``
    and needs a ``reason``."""
    finite = value is not None and math.isfinite(value)
    if holds is None or not finite:
        if not reason:
            raise ValueError(f"claim {claim!r}: an inconclusive verdict needs a reason")
        verdict = "inconclusive"
    else:
        verdict = "holds" if holds else "does not hold"
    return {"run": "claim", "work": work, "figure": figure, "claim": claim,
            "statistic": statistic, "value": float(value) if finite else float("nan"),
            "threshold": threshold, "verdict": verdict, "reason": reason}
