"""When a scored transaction is flagged: the shipped decision rule, shared by evaluation (which
reports it), export (which writes it into the model card) and predict (which applies it).

Two rules. A threshold: flag when probability >= threshold (chosen on validation, or given).
Expected cost: flag when a miss costs more in expectation than a review,
p · cost_fn > (1 − p) · cost_fp, the cost-optimal decision on calibrated probabilities (no
search); `cost_fn` is one number or `amount`, each transaction's own amount.

numpy only: predict imports this, and scikit-learn's import would cost it about a second.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import PipelineError, printable

EXPECTED_COST = "expected_cost"
AMOUNT = "amount"  # cost_fn: the transaction's own amount
# The amount is the detectors' last input column (declaration.Layout.inputs); params.py
# refuses cost_fn `amount` for a table that declares no amount.
_AMOUNT_COLUMN = -1


def expected_cost_flags(probabilities: np.ndarray, cost_fp: float,
                        cost_fn: float | np.ndarray) -> np.ndarray:
    """Flag when a miss costs more in expectation than a review: p·cost_fn > (1-p)·cost_fp.
    No threshold search: on calibrated probabilities this is the cost-optimal decision.
    `cost_fn` may be one number or one per row (the transaction's amount)."""
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    miss = np.asarray(cost_fn, dtype=np.float64)
    if miss.ndim > 1 or (miss.ndim == 1 and len(miss) != len(p)):
        raise PipelineError(f"calibration: cost_fn must be a number or one per row "
                            f"({len(p):,} rows, got shape {miss.shape})")
    if cost_fp < 0 or np.any(miss < 0) or not np.isfinite(miss).all():
        raise PipelineError("calibration: costs must be finite and >= 0")
    return p * miss > (1 - p) * cost_fp


def expected_cost_threshold(cost_fp: float, cost_fn: float) -> float:
    """The probability above which `expected_cost` flags, for a constant cost_fn."""
    return cost_fp / (cost_fp + cost_fn)


@dataclass(frozen=True)
class Decision:
    """How predict flags rows: `threshold` (p >= it), or, when `rule` is expected_cost,
    p·cost_fn > (1-p)·cost_fp with cost_fn a number or `amount`."""
    threshold: float | None = None
    rule: str = "threshold"
    cost_fp: float = 0.0
    cost_fn: float | str = 0.0

    def flags(self, probabilities: np.ndarray, features: np.ndarray) -> np.ndarray:
        """One flag per row of the float64 probabilities; `features` are the raw input
        columns (the amount, the last, is each row's cost of a miss under `amount`)."""
        p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
        if self.rule != EXPECTED_COST:
            return p >= float(self.threshold if self.threshold is not None else math.nan)
        miss = features[:, _AMOUNT_COLUMN] if self.cost_fn == AMOUNT else float(self.cost_fn)
        return expected_cost_flags(p, self.cost_fp, miss)

    def describe(self) -> str:
        if self.rule != EXPECTED_COST:
            return f"at threshold {self.threshold:g}"
        miss = "amount" if self.cost_fn == AMOUNT else f"{float(self.cost_fn):g}"
        return f"where probability x {miss} > (1 - probability) x {self.cost_fp:g}"

    def to_card(self) -> dict[str, Any]:
        """The card's `decision`: the rule and its costs, and how to apply it by hand."""
        if self.rule != EXPECTED_COST:
            return {"rule": "threshold", "threshold": self.threshold,
                    "flag_when": "probability >= threshold"}
        miss = "amount" if self.cost_fn == AMOUNT else "cost_fn"
        return {"rule": EXPECTED_COST, "cost_fp": self.cost_fp, "cost_fn": self.cost_fn,
                "threshold": self.threshold,
                "flag_when": f"probability * {miss} > (1 - probability) * cost_fp"}


RULES = ("threshold", EXPECTED_COST)


def decision_from_card(decision: Any, threshold: Any, label: str) -> Decision:
    """The card's decision (`decision` object, else its `threshold`); a one-line error for
    anything else, so a hand-edited card fails before scoring. Strict: an unknown rule, a
    `decision` that is not an object, or a `decision.threshold` that differs from the card's
    `threshold` would otherwise flag by a rule the card does not state."""
    if decision is not None and not isinstance(decision, Mapping):
        raise PipelineError(f"{label}: the card's 'decision' is {printable(decision)}, not an "
                            f"object with a 'rule' ({' or '.join(RULES)}); pass --threshold")
    rule = (decision or {}).get("rule", "threshold")
    if rule not in RULES:
        raise PipelineError(f"{label}: the card's decision rule {printable(rule)} is not one "
                            f"this command applies ({' or '.join(RULES)}); pass --threshold")
    if decision is not None and "threshold" in decision \
            and not _same(decision["threshold"], threshold):
        raise PipelineError(f"{label}: the card's decision.threshold "
                            f"{printable(decision['threshold'])} differs from its threshold "
                            f"{printable(threshold)}; export the model again, or pass "
                            "--threshold")
    if rule == EXPECTED_COST:
        return _expected_cost(decision or {}, threshold, label)
    if not _probability(threshold):
        raise PipelineError(f"{label}: no valid 'threshold' (a number in [0, 1]) in the card; "
                            "pass --threshold")
    return Decision(threshold=float(threshold))


def _expected_cost(decision: Mapping[str, Any], threshold: Any, label: str) -> Decision:
    """The expected_cost rule; the card's threshold, if any, must be the one its costs
    give (monitor's estimates count the rows flagged at it)."""
    cost_fp, cost_fn = decision.get("cost_fp"), decision.get("cost_fn")
    if not (_cost(cost_fp) and (cost_fn == AMOUNT or (_cost(cost_fn)
                                                      and cost_fp + cost_fn > 0))):
        raise PipelineError(f"{label}: the card's expected_cost rule needs cost_fp >= 0 and "
                            f"cost_fn >= 0 (not both 0) or 'amount', got {printable(cost_fp)} and "
                            f"{printable(cost_fn)}; pass --threshold")
    implied = None if cost_fn == AMOUNT else \
        expected_cost_threshold(float(cost_fp), float(cost_fn))
    if not _same(threshold, implied):
        what = "no single threshold (cost_fn 'amount')" if implied is None else \
            f"the threshold cost_fp / (cost_fp + cost_fn) = {implied:.6g}"
        raise PipelineError(f"{label}: the card's threshold {printable(threshold)} disagrees "
                            f"with its expected_cost rule, which gives {what}; export the "
                            "model again, or pass --threshold")
    return Decision(threshold=implied, rule=EXPECTED_COST, cost_fp=float(cost_fp),
                    cost_fn=AMOUNT if cost_fn == AMOUNT else float(cost_fn))


def _same(left: Any, right: Any) -> bool:
    """Two thresholds of a card agree: both absent (None), or equal numbers (to rounding)."""
    if left is None or right is None:
        return left is None and right is None
    return _probability(left) and _probability(right) and \
        math.isclose(float(left), float(right), rel_tol=1e-9, abs_tol=1e-15)


def _probability(value: Any) -> bool:
    return (not isinstance(value, bool) and isinstance(value, int | float)
            and 0 <= value <= 1)


def _cost(value: Any) -> bool:
    """A finite number >= 0 (a JSON integer of 400 digits is not: float() overflows)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value) and value >= 0
    except OverflowError:
        return False
