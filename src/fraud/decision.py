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

from .errors import PipelineError, printable
from .schema import INPUT_COLUMNS

EXPECTED_COST = "expected_cost"
AMOUNT = "amount"  # cost_fn: the transaction's own amount
_AMOUNT_COLUMN = INPUT_COLUMNS.index("Amount")


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
        columns (the Amount column is each row's cost of a miss under `amount`)."""
        p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
        if self.rule != EXPECTED_COST:
            return p >= float(self.threshold if self.threshold is not None else math.nan)
        miss = features[:, _AMOUNT_COLUMN] if self.cost_fn == AMOUNT else float(self.cost_fn)
        return expected_cost_flags(p, self.cost_fp, miss)

    def describe(self) -> str:
        if self.rule != EXPECTED_COST:
            return f"at threshold {self.threshold:g}"
        miss = "Amount" if self.cost_fn == AMOUNT else f"{float(self.cost_fn):g}"
        return f"where probability x {miss} > (1 - probability) x {self.cost_fp:g}"

    def to_card(self) -> dict[str, Any]:
        """The card's `decision`: the rule and its costs, and how to apply it by hand."""
        if self.rule != EXPECTED_COST:
            return {"rule": "threshold", "threshold": self.threshold,
                    "flag_when": "probability >= threshold"}
        miss = "Amount" if self.cost_fn == AMOUNT else "cost_fn"
        return {"rule": EXPECTED_COST, "cost_fp": self.cost_fp, "cost_fn": self.cost_fn,
                "threshold": self.threshold,
                "flag_when": f"probability * {miss} > (1 - probability) * cost_fp"}


def decision_from_card(decision: Any, threshold: Any, label: str) -> Decision:
    """The card's decision (`decision` object, else its `threshold`); a one-line error for
    anything else, so a hand-edited card fails before scoring."""
    if isinstance(decision, Mapping) and decision.get("rule") == EXPECTED_COST:
        cost_fp, cost_fn = decision.get("cost_fp"), decision.get("cost_fn")
        if _cost(cost_fp) and (cost_fn == AMOUNT or (_cost(cost_fn) and cost_fp + cost_fn > 0)):
            return Decision(threshold=None if cost_fn == AMOUNT else
                            expected_cost_threshold(float(cost_fp), float(cost_fn)),
                            rule=EXPECTED_COST, cost_fp=float(cost_fp),
                            cost_fn=AMOUNT if cost_fn == AMOUNT else float(cost_fn))
        raise PipelineError(f"{label}: the card's expected_cost rule needs cost_fp >= 0 and "
                            f"cost_fn >= 0 (not both 0) or 'amount', got {printable(cost_fp)} and "
                            f"{printable(cost_fn)}; pass --threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) \
            or not 0 <= threshold <= 1:
        raise PipelineError(f"{label}: no valid 'threshold' (a number in [0, 1]) in the card; "
                            "pass --threshold")
    return Decision(threshold=float(threshold))


def _cost(value: Any) -> bool:
    return (not isinstance(value, bool) and isinstance(value, int | float)
            and math.isfinite(value) and value >= 0)
