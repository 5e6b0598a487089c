"""The detectors' shared ONNX parts: the opset, the batch dimension's name and the raw
columns' preprocessing as float64 ONNX nodes (what the scale stage does, for raw rows). Their
one home: the network's detector (detector.py) and the peers' (peer_onnx.py) both start with
these nodes. onnx and numpy only, so that neither TensorFlow nor scikit-learn comes with it.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from ..kinds.base import const
from ..schema import PREPROCESS_NAME
from .contract import INPUT_NAME, ScalerStats
from .sigmoid import Graph

OPSET = 17
ROWS = "rows"  # the symbolic batch dimension



def preprocess_graph(stats: ScalerStats, eps: float, features32: str) -> Graph:
    """Raw inputs (float64) → `features32`: the amount (the last input, if declared) as
    log(amount + eps), standardise and clip in float64 (export.py PREPROCESSING_STEPS), then
    float32, as the scale stage stores the features. The network's detector passes its
    network's input name; the peers pass a float32 tensor that they widen again."""
    n_plain = stats.n_plain
    p = f"{PREPROCESS_NAME}/"
    constants = []
    if stats.log_input is not None:  # slice the plain block and the amount, log the amount
        constants += [const(p + "v_start", [0], np.int64),
                      const(p + "v_end", [n_plain], np.int64),
                      const(p + "amount_start", [n_plain], np.int64),
                      const(p + "amount_end", [n_plain + 1], np.int64),
                      const(p + "axis", [1], np.int64), const(p + "eps", eps, np.float64)]
    constants += [const(p + "mean", stats.mean, np.float64),
                  const(p + "scale", stats.scale, np.float64),
                  const(p + "clip_min", -stats.clip, np.float64),
                  const(p + "clip_max", stats.clip, np.float64)]
    if stats.log_input is not None:
        steps = [("Slice", "v1_v28", [INPUT_NAME, p + "v_start", p + "v_end", p + "axis"], {}),
                 ("Slice", "amount", [INPUT_NAME, p + "amount_start", p + "amount_end",
                                      p + "axis"], {}),
                 ("Add", "amount_plus_eps", [p + "amount", p + "eps"], {}),
                 ("Log", "log_amount", [p + "amount_plus_eps"], {}),
                 ("Concat", "features64", [p + "v1_v28", p + "log_amount"], {"axis": 1})]
    else:
        steps = [("Identity", "features64", [INPUT_NAME], {})]
    steps += [("Sub", "standardise_centre", [p + "features64", p + "mean"], {}),
              ("Div", "standardise_scale", [p + "standardise_centre", p + "scale"], {}),
              ("Clip", "clip", [p + "standardise_scale", p + "clip_min", p + "clip_max"], {})]
    nodes = [helper.make_node(op, inputs, [p + name], name=p + name, **attributes)
             for op, name, inputs, attributes in steps]
    nodes.append(helper.make_node("Cast", [p + "clip"], [features32], name=p + "to_float32",
                                  to=TensorProto.FLOAT))
    return nodes, constants
