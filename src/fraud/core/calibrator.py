"""A fitted calibrator: what evaluation fits on validation (evaluation/calibration.py) and
serving ships as ONNX nodes (serving/calibrated.py). Its own module at the top of the
library, so that neither of the two imports the other.

Every calibrator maps the model's LOGIT (float64) to a calibrated logit with one increasing,
piecewise-linear function, then applies the sigmoid in float64:

    calibrated logit g(z) = y0 + (min(max(z, lo), hi) - anchor) @ slopes,  p = sigmoid(g)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import PipelineError
from .params import CALIBRATION_METHODS as METHODS

# The calibrated logit is kept in this range, so the float64 sigmoid is never exactly 0 or 1
# (it rounds to 1.0 a little above 36.7 and underflows to 0.0 below about -745).
LOGIT_RANGE = (-700.0, 36.0)

Array = np.ndarray


def sigmoid(logits: Array) -> Array:
    """1 / (1 + exp(-z)) in float64: the formula the ONNX nodes use too. (ONNX Runtime's own
    float64 Sigmoid differed by up to 1e-5 relative below z = -20 and gave 0.0 at z = -200.)"""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


@dataclass(frozen=True)
class Calibrator:
    """An increasing polyline from the model's logit to the calibrated logit.

    Knots `x` (logits, strictly increasing) carry calibrated logits `y` (strictly increasing);
    beyond the first and last knot the line continues with `outer_slopes` (> 0), so the map
    is strictly increasing everywhere and ranks rows exactly as the model does.
    `details` holds the method's own parameters for the model card (beta, slope, folds...).
    """
    method: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    outer_slopes: tuple[float, float]
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        x, y = np.asarray(self.x, dtype=float), np.asarray(self.y, dtype=float)
        if self.method not in METHODS:
            raise PipelineError(f"calibration: unknown method {self.method!r}; expected one "
                                f"of {', '.join(METHODS)}")
        if len(x) == 0 or len(x) != len(y) or not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise PipelineError("calibration: knots must be finite, as many x as y, at least one")
        if np.any(np.diff(x) <= 0) or np.any(np.diff(y) <= 0) or min(self.outer_slopes) <= 0:
            raise PipelineError("calibration: the calibrator must be strictly increasing")

    def segments(self) -> tuple[float, Array, Array, Array, Array]:
        """(y0, lo, hi, anchor, slopes) of g(z) = y0 + (clip(z, lo, hi) - anchor) @ slopes:
        the left ray, each interior segment, the right ray. Every term is bounded by its own
        segment's rise, so nothing large cancels."""
        x, y = np.asarray(self.x), np.asarray(self.y)
        inner = np.diff(y) / np.diff(x)
        lo = np.concatenate([[-np.inf], x[:-1], [x[-1]]])
        hi = np.concatenate([[x[0]], x[1:], [np.inf]])
        anchor = np.concatenate([[x[0]], x[:-1], [x[-1]]])
        slopes = np.concatenate([[self.outer_slopes[0]], inner, [self.outer_slopes[1]]])
        return float(y[0]), lo, hi, anchor, slopes

    def calibrated_logit(self, logits: Array) -> Array:
        y0, lo, hi, anchor, slopes = self.segments()
        z = np.asarray(logits, dtype=np.float64).reshape(-1, 1)
        g = y0 + (np.minimum(np.maximum(z, lo), hi) - anchor) @ slopes
        return np.minimum(np.maximum(g, LOGIT_RANGE[0]), LOGIT_RANGE[1])

    def __call__(self, logits: Array) -> Array:
        """Calibrated probabilities (float64, one per logit), never exactly 0 or 1."""
        return sigmoid(self.calibrated_logit(logits))

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "x": list(self.x), "y": list(self.y),
                "outer_slopes": list(self.outer_slopes), **self.details}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        try:
            details = {k: v for k, v in data.items()
                       if k not in ("method", "x", "y", "outer_slopes")}
            return cls(str(data["method"]), tuple(map(float, data["x"])),
                       tuple(map(float, data["y"])),
                       (float(data["outer_slopes"][0]), float(data["outer_slopes"][1])),
                       details)
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise PipelineError(f"calibration: not a calibrator ({type(error).__name__}: "
                                f"{error})") from None


def linear(method: str, slope: float, intercept: float, /, **details: Any) -> Calibrator:
    """g(z) = slope · z + intercept, as a one-knot polyline."""
    return Calibrator(method, (0.0,), (float(intercept),), (float(slope), float(slope)),
                      details)


def identity() -> Calibrator:
    return linear("none", 1.0, 0.0)
