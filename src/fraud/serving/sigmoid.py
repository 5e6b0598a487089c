"""The float64 sigmoid as ONNX nodes: its one home. The peers' detectors end with it
(peer_onnx.py), and so does every calibrated detector (calibrated.py).

Its own module, with nothing but onnx and numpy, so that the peers' train stages, which
write detectors, do not depend on (and rerun for) the calibration code.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

Graph = tuple[list[onnx.NodeProto], list[onnx.TensorProto]]


def sigmoid_graph(logit: str, probability: str, prefix: str = "sigmoid") -> Graph:
    """probability = 1 / (1 + exp(-logit)) in float64, written out as four ops, as
    `calibrator.sigmoid` computes it in numpy.

    Not ONNX Runtime's `Sigmoid`: in float64 (1.32, CPU) it loses relative precision for
    negative logits (5.5e-8 at -20..-5) and returns exactly 0 below about -36.7 (p < 1e-16),
    where this form stays within 8e-16 of scipy's `expit` (what scikit-learn's
    `predict_proba` uses) and reaches 0 only where `expit` does (logit < -745).
    """
    p = f"{prefix}/"
    nodes = [helper.make_node("Neg", [logit], [p + "minus_logit"], name=p + "minus_logit"),
             helper.make_node("Exp", [p + "minus_logit"], [p + "odds_against"],
                              name=p + "odds_against"),
             helper.make_node("Add", [p + "odds_against", p + "one"], [p + "denominator"],
                              name=p + "denominator"),
             helper.make_node("Reciprocal", [p + "denominator"], [probability],
                              name=p + "probability")]
    return nodes, [numpy_helper.from_array(np.asarray(1.0, dtype=np.float64), p + "one")]
